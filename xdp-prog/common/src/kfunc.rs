//! The placeholder kfunc call that userspace patches before loading the `hw` program.
//!
//! rustc emits no BTF for `extern` functions, so the XDP program emits the raw call instruction
//! to `bpf_xdp_metadata_rx_timestamp` with a placeholder BTF id; the loader replaces the
//! placeholder with the id of that FUNC in `/sys/kernel/btf/vmlinux`.

/// The kfunc the `hw` program calls.
pub const RX_TIMESTAMP_KFUNC: &str = "bpf_xdp_metadata_rx_timestamp";
/// `imm` of the placeholder call.
pub const PLACEHOLDER_IMM: u32 = 0x7fff_fff0;
/// The whole placeholder instruction, as a little-endian `u64`: code 0x85 (BPF_JMP | BPF_CALL),
/// dst_reg 0, src_reg 2 (BPF_PSEUDO_KFUNC_CALL), off 0 (vmlinux BTF), imm [`PLACEHOLDER_IMM`].
pub const PLACEHOLDER_INSN: u64 = ((PLACEHOLDER_IMM as u64) << 32) | 0x2085;
