#!/usr/bin/env bash
# Installs everything a fresh machine lacks to build and test tickgate. Idempotent: when all is
# present it only checks and returns in a second or two. Needs root (apt-get) on a fresh machine.
set -euo pipefail

APT_PACKAGES=(
  # libbpf-rs (vendored libbpf) build
  make pkg-config gcc libelf-dev zlib1g-dev
  # bpf-linker against the LLVM that nightly rustc uses
  llvm-22-dev libpolly-22-dev libzstd-dev
  # veth lab and tests
  iproute2 ethtool sockperf
  # protocol v2: the independent Python reference the tests run against (scripts/reference/)
  python3 python3-cryptography
  # the Go reader of the frame ring (userspace/go: standard library only)
  golang-go
)
BPF_LINKER_VERSION=0.13.0

log() { printf 'setup: %s\n' "$*"; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages ${missing[*]} and not root: run scripts/setup.sh as root" >&2
    exit 1
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! rustup toolchain list | grep -q '^nightly'; then
  log "installing the nightly toolchain (builds the eBPF crate)"
  rustup toolchain install nightly --profile minimal
fi
if ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
  log "adding rust-src to nightly (-Z build-std=core for bpfel-unknown-none)"
  rustup component add rust-src --toolchain nightly
fi
for c in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$c"; then
    rustup component add "$c"
  fi
done

if ! command -v bpf-linker >/dev/null 2>&1 || ! bpf-linker --version 2>/dev/null | grep -q "$BPF_LINKER_VERSION"; then
  log "installing bpf-linker $BPF_LINKER_VERSION (LLVM 22)"
  PATH=/usr/lib/llvm-22/bin:$PATH LLVM_SYS_221_PREFIX=/usr/lib/llvm-22 \
    cargo install bpf-linker --locked --version "$BPF_LINKER_VERSION" --no-default-features --features llvm-22
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz (scripts/fuzz.sh; runs on nightly)"
  cargo install cargo-fuzz --locked
fi

if ! mountpoint -q /sys/fs/bpf 2>/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    log "mounting bpffs at /sys/fs/bpf (pins of 'tickgate load' live there)"
    mount -t bpf bpf /sys/fs/bpf
  else
    log "bpffs is not mounted at /sys/fs/bpf; as root: mount -t bpf bpf /sys/fs/bpf"
  fi
fi
log "ok"
