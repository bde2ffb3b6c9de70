//! The metadata the XDP program writes in front of each steered packet.
//!
//! `bpf_xdp_adjust_meta(-META_LEN)` opens [`META_LEN`] bytes just before the frame data; in the
//! UMEM they sit at `descriptor.addr - META_LEN` (native and copy mode alike).

/// Metadata layout, native byte order (written and read on the same host).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct RxMeta {
    /// Receive timestamp in nanoseconds; the clock is given by `flags` ([`flags::TS_NIC`] or
    /// [`flags::TS_XDP`]).
    pub rx_ts_ns: u64,
    /// [`flags`] bits.
    pub flags: u32,
    /// Return value of `bpf_xdp_metadata_rx_timestamp` (0 or -errno), [`KFUNC_NOT_CALLED`] in the
    /// `tai` program.
    pub kfunc_ret: i32,
    /// Offset of the UDP payload (tickgate header) from the start of the frame.
    pub payload_offset: u16,
    /// UDP payload length (header + payload).
    pub payload_len: u16,
    /// [`MAGIC`]: tells userspace the metadata is there and of this layout.
    pub magic: u32,
}

/// Bytes of metadata (a multiple of 4, as `bpf_xdp_adjust_meta` requires).
pub const META_LEN: usize = core::mem::size_of::<RxMeta>();
const _: () = assert!(META_LEN == 24 && META_LEN.is_multiple_of(4));

/// Value of [`RxMeta::magic`]: "tgm1".
pub const MAGIC: u32 = u32::from_be_bytes(*b"tgm1");
/// [`RxMeta::kfunc_ret`] when the program does not call the kfunc.
pub const KFUNC_NOT_CALLED: i32 = i32::MAX;

/// Bits of [`RxMeta::flags`].
pub mod flags {
    /// The timestamp comes from the NIC hardware clock (PHC).
    pub const TS_NIC: u32 = 1 << 0;
    /// The timestamp comes from `bpf_ktime_get_tai_ns()` at the XDP hook (CLOCK_TAI).
    pub const TS_XDP: u32 = 1 << 1;
    /// Produced by the device-bound `hw` program.
    pub const HW_PROGRAM: u32 = 1 << 2;
    /// The packet arrived over IPv6.
    pub const IPV6: u32 = 1 << 3;
}

impl RxMeta {
    /// Reads metadata from the [`META_LEN`] bytes before a frame; `None` if the magic is wrong.
    pub fn from_bytes(bytes: &[u8; META_LEN]) -> Option<Self> {
        let u32_at = |o: usize| u32::from_ne_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        let u16_at = |o: usize| u16::from_ne_bytes([bytes[o], bytes[o + 1]]);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&bytes[0..8]);
        let meta = Self {
            rx_ts_ns: u64::from_ne_bytes(ts),
            flags: u32_at(8),
            kfunc_ret: u32_at(12) as i32,
            payload_offset: u16_at(16),
            payload_len: u16_at(18),
            magic: u32_at(20),
        };
        (meta.magic == MAGIC).then_some(meta)
    }
}
