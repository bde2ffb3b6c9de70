//! Traffic like a NIC's: frames injected into the sender veth with `BPF_PROG_RUN` in live-frame
//! mode (`BPF_F_TEST_XDP_LIVE_FRAMES`, the way xdp-trafficgen sends). The kernel runs a
//! two-instruction XDP program (`return XDP_TX`) on each copy of the frame as if the sender veth
//! had received it, and XDP_TX there becomes an `ndo_xdp_xmit` into the peer: the receiver veth
//! gets `xdp_frame`s, runs its XDP program on them without building an skb first (as a NIC
//! driver does), and builds an skb only for what goes on to the kernel stack (the socket path,
//! and what tickgate's program passes). A frame the peer's ring cannot take is counted by veth as
//! the sender's `tx_dropped`, which the bench's accounting already reads.
//!
//! Every copy of a call is the same bytes, so traffic that may repeat goes many copies a call:
//! junk, and the ceiling's packets that XDP drops anyway. Sealed protocol v2 inputs are unique
//! per packet: with `--generators live-inputs` each is a call of one copy (a call of more copies
//! switches the kernel's XDP dispatcher to the program and back, some 24 ms here; see
//! [`GenPath::LiveInputs`](crate::generator::GenPath::LiveInputs) for what one copy costs).

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use tickgate_common::frame::{Frame, Ip};
use tickgate_testkit::lab::{RX_IP4, RX_MAC, TX_IP4, TX_MAC};

use libbpf_rs::libbpf_sys;

/// Copies of a frame the kernel sends per `BPF_PROG_RUN` call at most (it batches them by 64
/// and checks for signals in between).
pub const MAX_REPEAT: u32 = 1 << 16;

/// `r0 = XDP_TX; exit`, as raw eBPF instructions (opcode, registers, offset, immediate).
const XDP_TX_PROGRAM: [u64; 2] = [
    // BPF_ALU64 | BPF_MOV | BPF_K, dst r0, imm 3 (XDP_TX).
    0xb7 | (3 << 32),
    // BPF_JMP | BPF_EXIT.
    0x95,
];

/// The UDP source port of live frames (nothing in the lab sends from it otherwise).
pub const LIVE_SRC_PORT: u16 = 40_404;

/// An XDP_TX program loaded for live-frame injection through one interface of the calling
/// thread's network namespace.
#[derive(Debug)]
pub struct LiveFrames {
    prog: OwnedFd,
    ifindex: u32,
}

impl LiveFrames {
    /// Loads the program; `ifname` is the interface to send through (the sender veth), looked up
    /// in the calling thread's namespace, where every later `send` must run too.
    pub fn new(ifname: &str) -> io::Result<Self> {
        let name = CString::new(ifname).map_err(|_| io::Error::other("interface name with a NUL"))?;
        // SAFETY: `name` is a NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        let prog_name = c"tg_live_tx";
        let license = c"GPL";
        // SAFETY: the instruction array outlives the call and has the layout of `bpf_insn` (8
        // bytes each, little-endian code/regs/off/imm on x86-64); a null `opts` is allowed.
        let fd = unsafe {
            libbpf_sys::bpf_prog_load(
                libbpf_sys::BPF_PROG_TYPE_XDP,
                prog_name.as_ptr(),
                license.as_ptr(),
                XDP_TX_PROGRAM.as_ptr().cast(),
                XDP_TX_PROGRAM.len() as u64,
                std::ptr::null_mut(),
            )
        };
        if fd < 0 {
            return Err(io::Error::from_raw_os_error(-fd));
        }
        // SAFETY: a new fd that nothing else owns.
        let prog = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { prog, ifindex })
    }

    /// Sends `copies` copies of `frame` (an Ethernet frame) out of the interface. Returns once
    /// the kernel has run them all (or a signal interrupted it: then fewer went).
    pub fn send(&self, frame: &[u8], copies: u32) -> io::Result<()> {
        let ctx = libbpf_sys::xdp_md {
            data: 0,
            data_end: frame.len() as u32,
            data_meta: 0,
            ingress_ifindex: self.ifindex,
            rx_queue_index: 0,
            egress_ifindex: 0,
        };
        let mut opts = libbpf_sys::bpf_test_run_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_test_run_opts>() as _,
            data_in: frame.as_ptr().cast(),
            data_size_in: frame.len() as u32,
            ctx_in: (&raw const ctx).cast(),
            ctx_size_in: std::mem::size_of::<libbpf_sys::xdp_md>() as u32,
            repeat: copies.clamp(1, MAX_REPEAT) as i32,
            flags: libbpf_sys::BPF_F_TEST_XDP_LIVE_FRAMES,
            ..Default::default()
        };
        // SAFETY: `opts` points at live buffers of the sizes it states, for the whole call.
        let ret = unsafe { libbpf_sys::bpf_prog_test_run_opts(self.prog.as_raw_fd(), &raw mut opts) };
        if ret < 0 {
            return Err(io::Error::from_raw_os_error(-ret));
        }
        Ok(())
    }
}

/// An Ethernet + IPv4 + UDP frame from the lab's sender to its receiver, from
/// [`LIVE_SRC_PORT`] to `dst_port`, carrying `payload` (the fixtures' frame builder, with the
/// lab's addresses).
pub fn udp_frame(dst_port: u16, payload: &[u8]) -> Vec<u8> {
    udp_frame_from(LIVE_SRC_PORT, dst_port, payload)
}

/// As [`udp_frame`], from `src_port` (a legit input's flow, whose session is keyed by it).
pub fn udp_frame_from(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let ip = Ip::between(TX_IP4.into(), RX_IP4.into());
    Frame { dst_mac: RX_MAC, src_mac: TX_MAC, ..Frame::udp(ip, src_port, dst_port, payload) }.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one's-complement sum of an IPv4 header with its checksum in place is all ones.
    fn checksum_verifies(header: &[u8]) -> bool {
        let mut sum: u32 = header.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum == 0xffff
    }

    #[test]
    fn a_udp_frame_has_a_valid_ipv4_header_and_the_lab_addresses() {
        let payload = [0u8; 36];
        let f = udp_frame(7777, &payload);
        assert_eq!(f.len(), 14 + 20 + 8 + 36);
        assert_eq!(&f[0..6], &RX_MAC);
        assert_eq!(&f[6..12], &TX_MAC);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert!(checksum_verifies(&f[14..34]), "IPv4 header checksum");
        assert!(!checksum_verifies(&[
            0x45, 0, 0, 64, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 77, 0, 1, 10, 77, 0, 2
        ]));
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 64);
        assert_eq!(&f[26..30], &TX_IP4.octets());
        assert_eq!(&f[30..34], &RX_IP4.octets());
        assert_eq!(u16::from_be_bytes([f[34], f[35]]), LIVE_SRC_PORT);
        assert_eq!(u16::from_be_bytes([f[36], f[37]]), 7777);
        assert_eq!(u16::from_be_bytes([f[38], f[39]]), 44);
        assert!(tickgate::wire::decode(&f[42..]).is_err(), "bad magic must not decode");
    }
}
