//! The XDP object built by `build.rs`, embedded in the binary.

/// Name of the device-bound program that reads the NIC timestamp.
pub const HW_PROGRAM: &str = "tickgate_hw";
/// Name of the program that uses the XDP-hook TAI clock only.
pub const TAI_PROGRAM: &str = "tickgate_tai";
/// Map of game UDP ports.
pub const PORTS_MAP: &str = "GAME_PORTS";
/// Map of RX queue -> AF_XDP socket.
pub const XSKS_MAP: &str = "XSKS";
/// Per-CPU counter array.
pub const COUNTERS_MAP: &str = "COUNTERS";
/// One-element array holding the per-source rate limit.
pub const RATE_LIMIT_MAP: &str = "RATE_LIMIT";

/// The ELF bytes, unpatched (the kfunc placeholder is still in `tickgate_hw`).
pub fn elf() -> &'static [u8] {
    // libbpf copies the bytes it needs, so alignment of this static does not matter.
    include_bytes!(concat!(env!("OUT_DIR"), "/tickgate-xdp"))
}
