# usage: ab.sh OUT ROUNDS "BENCH ARGS" BIN...
# Each round runs every binary once with the same arguments, binaries alternated; the seed scenario,
# one round per run. Results in OUT/<binary>-<round>/ (report.md, report.json, raw/runs.json).
out=$1; rounds=$2; args=$3; shift 3
mkdir -p "$out"
for r in $(seq 1 "$rounds"); do
  for bin in "$@"; do
    name=$(basename "$bin")-$r
    # shellcheck disable=SC2086 # the arguments are meant to split
    "$bin" --scenarios seed --rounds 1 --max-rounds 1 --sockperf-seconds 0 --no-png $args \
      --out "$out/$name" > "$out/$name.log" 2>&1 || echo "FAIL $name"
  done
done
