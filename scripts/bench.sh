#!/usr/bin/env bash
# Runs the benchmark harness as root: installs what is missing, builds tickgate-bench (release),
# runs every scenario (seed, sweep, flood, ceiling) and the sockperf cross-check in a veth lab it
# creates and removes, and writes bench/results/latest/ (report.md, report.json, hgrm/, charts).
# Extra arguments go to tickgate-bench, e.g. `scripts/bench.sh --scenarios seed --rounds 1`;
# `target/release/tickgate-bench --help` lists them. A full run takes about ten minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "bench.sh: the bench creates network namespaces, loads XDP programs and raises socket buffers:" >&2
  echo "          run it as root (sudo scripts/bench.sh)" >&2
  exit 1
fi
bash scripts/setup.sh >/dev/null
export PATH="$HOME/.cargo/bin:$PATH"

echo "bench.sh: building tickgate-bench (release)"
cargo build --release --locked -q -p tickgate-bench

OUT=bench/results/latest
# Every measurement stops by itself (its duration and its packet budget); the whole run is capped
# as well. On SIGTERM the bench finishes the measurement under way, removes its lab and writes
# what it has.
timeout --signal=TERM --kill-after=60 1800 target/release/tickgate-bench --out "$OUT" "$@"
echo "bench.sh: results in $OUT/report.md (JSON: $OUT/report.json, percentiles: $OUT/hgrm/, charts: $OUT/*.svg, *.png)"
