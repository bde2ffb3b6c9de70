# usage: sweep.sh OUTDIR ROUNDS VARIANT...  (binaries /tmp/ab/bench-VARIANT, as root)
# The rate sweep with live inputs, the four receivers of the per-core figure, one round each,
# variants alternated. ../ingest-2026-12-01/percore.py -v OUTDIR/VARIANT-N reads one.
out=$1; rounds=$2; shift 2
mkdir -p "$out"
cd "$(dirname "$0")/../../.."
for r in $(seq 1 "$rounds"); do for v in "$@"; do
  /tmp/ab/bench-$v --scenarios sweep --sweep-generator live-inputs \
    --receivers tickgate-wakeup,tickgate-paced,socket-recvmmsg,socket-paced --rounds 1 --max-rounds 1 \
    --sockperf-seconds 0 --out "$out/$v-$r" > "$out/$v-$r.log" 2>&1
done; done
echo done > "$out/DONE"
