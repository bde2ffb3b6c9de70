# usage: pair.sh OUT ROUNDS RATE VARIANT...   (binaries /tmp/ab/bench-VARIANT), alternated
out=$1; rounds=$2; rate=$3; shift 3
mkdir -p $out
for r in $(seq 1 $rounds); do for v in "$@"; do
  /tmp/ab/bench-$v --scenarios seed --generators live-inputs --rate $rate --fast-tick-hz 0 \
    --receivers tickgate-paced,socket-recvmmsg --rounds 2 --max-rounds 2 --duration 5 \
    --sockperf-seconds 0 --out $out/$v-$r > $out/$v-$r.log 2>&1
done; done
echo done > $out/DONE
