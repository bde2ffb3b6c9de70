//! Builds the XDP object (`xdp-prog`, nightly + bpf-linker) and leaves it in OUT_DIR, where
//! `src/object.rs` embeds it.
use std::path::PathBuf;

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?);
    let ebpf_dir = manifest_dir.join("../xdp-prog");
    let ebpf_dir = ebpf_dir.to_str().context("non-UTF-8 path to xdp-prog")?;
    // aya-build runs `rustup run nightly cargo build -Z build-std=core --target bpfel-unknown-none`
    // with BTF on; scripts/setup.sh installs nightly's rust-src and bpf-linker.
    aya_build::build_ebpf(
        [aya_build::Package { name: "tickgate-xdp", root_dir: ebpf_dir, ..Default::default() }],
        aya_build::Toolchain::default(),
    )
    .context("building the XDP object failed: run scripts/setup.sh (nightly rust-src, bpf-linker)")
}
