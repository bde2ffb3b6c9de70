#!/bin/bash
# The runs of README.md, in the order they were made. As root, from the repository's root:
#   bash bench/results/paced-live-junk-2026-12-01/run.sh          # the five runs (build of 16e60dd)
#   bash bench/results/paced-live-junk-2026-12-01/run.sh awake    # the three --keep-awake runs (7e7aa23)
# The five: game-port junk with a real-time NAPI thread three times, between them the two
# variations (half the junk to another port; NAPI at SCHED_OTHER).
set -euo pipefail
out=bench/results/paced-live-junk-2026-12-01
bench=target/release/tickgate-bench
common=(--scenarios flood --generators live-inputs
  --receivers tickgate-wakeup,tickgate-paced,socket-recv,socket-recvmmsg,socket-paced
  --rounds 1 --max-rounds 1 --duration 3 --flood-junk-rates 100k,200k,300k,400k,600k,800k,1200k,1600k
  --sockperf-seconds 0)
if [ "${1:-}" = awake ]; then
  for n in 1 2 3; do
    "$bench" "${common[@]}" --junk-ports game --napi threaded-fifo --keep-awake --out "$out/game-fifo-awake-$n"
  done
  exit 0
fi
"$bench" "${common[@]}" --junk-ports game --napi threaded-fifo --out "$out/game-fifo-1"
"$bench" "${common[@]}" --junk-ports both --napi threaded-fifo --out "$out/both-fifo-1"
"$bench" "${common[@]}" --junk-ports game --napi threaded-fifo --out "$out/game-fifo-2"
"$bench" "${common[@]}" --junk-ports game --napi threaded --out "$out/game-other-1"
"$bench" "${common[@]}" --junk-ports game --napi threaded-fifo --out "$out/game-fifo-3"
