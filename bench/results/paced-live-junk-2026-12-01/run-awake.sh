#!/bin/bash
# The keep-awake runs of README.md (after run.sh's, on the build that added --keep-awake): as
# game-fifo-N, with the NAPI thread's core kept from halting. As root, from the repository's
# root: bash bench/results/paced-live-junk-2026-12-01/run-awake.sh
set -euo pipefail
out=bench/results/paced-live-junk-2026-12-01
bench=target/release/tickgate-bench
common=(--scenarios flood --generators live-inputs
  --receivers tickgate-wakeup,tickgate-paced,socket-recv,socket-recvmmsg,socket-paced
  --rounds 1 --max-rounds 1 --duration 3 --flood-junk-rates 100k,200k,300k,400k,600k,800k,1200k,1600k
  --sockperf-seconds 0 --junk-ports game --napi threaded-fifo --keep-awake)
for n in 1 2 3; do
  "$bench" "${common[@]}" --out "$out/game-fifo-awake-$n"
done
