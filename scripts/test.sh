#!/usr/bin/env bash
# Installs what a fresh machine lacks, builds, and runs every test: host unit tests, the XDP
# fixtures (BPF_PROG_TEST_RUN) and the root veth-lab integration tests. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "test.sh: the XDP fixtures and veth-lab tests load BPF programs and create network namespaces:" >&2
  echo "         run it as root (sudo scripts/test.sh)" >&2
  exit 1
fi
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"

echo "test.sh: format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --exclude tickgate-xdp --all-targets --locked -- -D warnings

echo "test.sh: host tests (what 'cargo test' runs at the root for any user)"
cargo test --locked --no-fail-fast

echo "test.sh: the Go reader of the frame ring (userspace/go, standard library only)"
(
  cd userspace/go
  unformatted=$(gofmt -l .)
  if [ -n "$unformatted" ]; then
    echo "test.sh: gofmt would change: $unformatted" >&2
    exit 1
  fi
  go vet ./...
  go test ./...
)

echo "test.sh: root tests (userspace/integration-test: XDP fixtures, veth labs, demo and bench smoke)"
# The root suites drive the tickgate and tickgate-bench binaries, which cargo does not build for
# another crate's tests. Two test threads: every lab test makes its own namespaces, and the
# machine has two cores.
cargo build --workspace --exclude tickgate-xdp --bins --locked
cargo test -p tickgate-integration-test --locked --no-fail-fast -- --test-threads=2

echo "test.sh: fuzz targets, briefly"
bash scripts/fuzz.sh 15

leftover=$(ip netns list | grep -c '^tgt-' || true)
if [ "$leftover" -ne 0 ]; then
  echo "test.sh: $leftover test namespaces were left behind (a Drop guard failed):" >&2
  ip netns list | grep '^tgt-' >&2
  exit 1
fi
echo "test.sh: all tests passed"
