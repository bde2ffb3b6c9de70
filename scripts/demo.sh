#!/usr/bin/env bash
# The README's main command (run as root): installs what is missing, builds tickgate in release
# mode and runs `tickgate demo`: a throwaway veth lab, the whole receive pipeline, synthetic
# clients at 60 Hz with injected loss, duplication and reordering, a junk flood, one live line per
# second, a summary that accounts for every packet; the lab is removed at the end, also on Ctrl-C.
#
# Extra arguments go to `tickgate demo` and override the defaults below, e.g.
#   sudo scripts/demo.sh --clients 32 --seconds 20
#   sudo scripts/demo.sh --loss 0 --junk-pps 0 --mode skb
# (`target/release/tickgate demo --help` lists every option.)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "demo.sh: the demo creates network namespaces and loads XDP programs: run it as root (sudo scripts/demo.sh)" >&2
  exit 1
fi
export PATH="$HOME/.cargo/bin:$PATH"

# Setup is quiet when it succeeds; its whole output is shown when it fails.
log=$(mktemp /tmp/tickgate-setup.XXXXXX)
echo "demo.sh: checking prerequisites (scripts/setup.sh)"
if ! bash scripts/setup.sh >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  echo "demo.sh: scripts/setup.sh failed (output above)" >&2
  exit 1
fi
rm -f "$log"

echo "demo.sh: building tickgate (release; the first build takes a few minutes)"
cargo build --release --locked -q -p tickgate-cli

# 2% of the client packets lost, 2% duplicated, 2% reordered, and 5000 junk packets a second:
# enough to see every counter move; the clients' redundancy (3) makes the loss cost no input.
exec target/release/tickgate demo --loss 2 --duplicate 2 --reorder 2 --junk-pps 5000 "$@"
