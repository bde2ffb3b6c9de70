# usage: redundancy3.sh OUTDIR ROUNDS VARIANT...  (binaries /tmp/ab/bench-VARIANT, as root)
# The seed at 250 000 packets/s with three inputs a packet (the newest and two resent, as the
# demo's clients send), tickgate-paced and socket-recvmmsg one at a time, 5 s each, alternated.
out=$1; rounds=$2; shift 2
mkdir -p "$out"
for r in $(seq 1 "$rounds"); do for v in "$@"; do
  /tmp/ab/bench-$v --scenarios seed --receivers tickgate-paced,socket-recvmmsg --redundancy 3 \
    --rate 250000 --duration 5 --rounds 1 --max-rounds 1 --fast-tick-hz 0 --sockperf-seconds 0 \
    --out "$out/$v-$r" > "$out/$v-$r.log" 2>&1
done; done
echo done > "$out/DONE"
