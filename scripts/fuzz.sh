#!/usr/bin/env bash
# Runs every cargo-fuzz target in userspace/fuzz for SECONDS_PER_TARGET seconds (default 20),
# one after the other, starting from corpus/<target>/; fails if any target crashes, panics,
# hangs or runs out of memory. scripts/test.sh (CI) runs it briefly: `bash scripts/fuzz.sh 15`.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]
#
# Long runs, from userspace/fuzz (nightly and cargo-fuzz come from scripts/setup.sh):
#   bash scripts/fuzz.sh 3600                                   # an hour per target
#   cargo +nightly fuzz run decode corpus/decode -- -timeout=10 # one target until it crashes
#   cargo +nightly fuzz run decode corpus/decode --jobs 2 -- -timeout=10   # both cores
# Inputs that reach new code are added to corpus/<target>/ (ignored by git; only seed-* files
# are committed). A crash leaves its input in artifacts/<target>/; replay it with
#   cargo +nightly fuzz run <target> artifacts/<target>/crash-...
# and turn it into a regression test next to the code it broke. The targets and what they
# assert: docs/architecture.md, "Fuzzing".
set -euo pipefail
cd "$(dirname "$0")/../userspace/fuzz"
export PATH="$HOME/.cargo/bin:$PATH"

seconds=${1:-20}
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]" >&2
  exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: cargo-fuzz or the nightly toolchain is missing: run scripts/setup.sh" >&2
  exit 1
fi

targets=(header classify decode record token handshake open frames ring)
# One build for all targets (the first one also builds the XDP object, through tickgate's build.rs).
echo "fuzz.sh: building ${targets[*]}"
cargo +nightly fuzz build

failed=()
for t in "${targets[@]}"; do
  echo "fuzz.sh: $t for ${seconds}s"
  # -timeout: an input that takes 10 s is a hang, not a slow input (all of these take µs).
  # -rss_limit_mb: every target here works in kilobytes; 2 GB is a leak or an unbounded allocation.
  if ! cargo +nightly fuzz run "$t" "corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: FAILED: ${failed[*]}; the inputs are in userspace/fuzz/artifacts/<target>/" >&2
  exit 1
fi
echo "fuzz.sh: ${targets[*]}: no crash in ${seconds}s each"
