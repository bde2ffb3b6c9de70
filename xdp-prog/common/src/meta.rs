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
    /// The packet's number on its RX queue: the program counts every packet it steers on a
    /// queue (`RX_SEQ`, before stamping it) and writes the count here. A worker that has read
    /// the packet numbered as the queue's count it saw before reading has every packet the
    /// program stamped before then (`docs/architecture.md`, "A caught-up worker's watermark").
    pub rx_seq: u64,
}

/// Bytes of metadata (a multiple of 4, as `bpf_xdp_adjust_meta` requires).
pub const META_LEN: usize = core::mem::size_of::<RxMeta>();
const _: () = assert!(META_LEN == 32 && META_LEN.is_multiple_of(4));

/// RX queue indexes the program serves: entries of `XSKS` (one socket each) and of `RX_SEQ` (one
/// `u64` count each, which userspace maps, `BPF_F_MMAPABLE`, and only loads from).
pub const RX_QUEUES: u32 = 256;

/// Value of [`RxMeta::magic`]: "tgm2" (`rx_seq` added to "tgm1"'s 24 bytes).
pub const MAGIC: u32 = u32::from_be_bytes(*b"tgm2");
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
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[o..o + 8]);
            u64::from_ne_bytes(b)
        };
        let meta = Self {
            rx_ts_ns: u64_at(0),
            flags: u32_at(8),
            kfunc_ret: u32_at(12) as i32,
            payload_offset: u16_at(16),
            payload_len: u16_at(18),
            magic: u32_at(20),
            rx_seq: u64_at(24),
        };
        (meta.magic == MAGIC).then_some(meta)
    }
}
