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

# The lab tests name their namespaces tgt-<id>-tx/-rx and remove them on Drop. A run that was
# killed (SIGKILL, a lost machine) cannot: remove what such a run left, so that it neither gets in
# this run's way nor is blamed on it. A namespace that still has a process inside belongs to
# something alive and is left alone; the check at the end counts only namespaces this run made.
namespaces() { ip netns list | awk '/^tgt-/ {print $1}' | sort; }
for ns in $(namespaces); do
  if [ -z "$(ip netns pids "$ns")" ]; then
    echo "test.sh: removing $ns, left by an earlier run that did not finish" >&2
    ip netns del "$ns"
    id=${ns#tgt-}
    rm -rf "${TMPDIR:-/tmp}/tickgate-run-tgtr${id%-*}"  # its run directory (tests/support/mod.rs)
  fi
done
before=$(namespaces)

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

leftover=$(comm -13 <(echo "$before") <(namespaces) | sed '/^$/d')
if [ -n "$leftover" ]; then
  echo "test.sh: $(echo "$leftover" | wc -l) test namespaces were left behind (a Drop guard failed):" >&2
  echo "$leftover" >&2
  exit 1
fi
echo "test.sh: all tests passed"
