//! The XDP object built by `build.rs`, embedded in the binary: its programs, its maps, and
//! where under bpffs `tickgate load` pins them.

/// Name of the device-bound program that reads the NIC timestamp.
pub const HW_PROGRAM: &str = "tickgate_hw";
/// Name of the program that uses the XDP-hook TAI clock only.
pub const TAI_PROGRAM: &str = "tickgate_tai";
/// Map of game UDP ports.
pub const PORTS_MAP: &str = "GAME_PORTS";
/// Map of RX queue -> AF_XDP socket.
pub const XSKS_MAP: &str = "XSKS";
/// RX queue -> packets steered on it (mmapable, read by the workers).
pub const RX_SEQ_MAP: &str = "RX_SEQ";
/// Per-CPU counter array.
pub const COUNTERS_MAP: &str = "COUNTERS";
/// One-element array holding the per-source rate limit.
pub const RATE_LIMIT_MAP: &str = "RATE_LIMIT";
/// One-element array: which protocol versions are served (bit 0: v1).
pub const PROTOCOL_MAP: &str = "PROTOCOL";
/// Client address and port -> session id (protocol v2).
pub const SESSIONS_MAP: &str = "SESSIONS";
/// One-element array holding the handshake budget (protocol v2).
pub const HANDSHAKE_LIMIT_MAP: &str = "HANDSHAKE_LIMIT";

/// The ELF bytes, unpatched (the kfunc placeholder is still in `tickgate_hw`).
pub fn elf() -> &'static [u8] {
    // libbpf copies the bytes it needs, so alignment of this static does not matter.
    include_bytes!(concat!(env!("OUT_DIR"), "/tickgate-xdp"))
}

/// Where bpffs must be mounted.
pub const BPFFS: &str = "/sys/fs/bpf";
/// Directory under bpffs holding one sub-directory of pins per interface.
pub const PIN_ROOT: &str = "/sys/fs/bpf/tickgate";
/// `statfs` magic of bpffs (`BPF_FS_MAGIC`, include/uapi/linux/magic.h).
pub(super) const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// The pinned bpf_link, in an interface's pin directory.
pub(super) const LINK_PIN: &str = "link";

/// Maps pinned beside the link: what `status` reads and `unload` removes. The rate buckets are
/// not pinned: they are per-source state of one program, rebuilt after a replace.
pub(super) const PINNED_MAPS: [&str; 5] = [PORTS_MAP, XSKS_MAP, COUNTERS_MAP, RATE_LIMIT_MAP, PROTOCOL_MAP];
