//! The packet classifier: Ethernet (up to two VLAN tags), IPv4 or IPv6, UDP, tickgate header.
//!
//! Written once over the [`Packet`] trait, so the XDP program runs it on the live frame and the
//! host runs it on byte slices in unit tests and fuzzers. Every read goes through
//! [`Packet::load`], which is a bounds-checked copy of a constant size: the form of access the
//! eBPF verifier accepts.

use crate::wire::{self, Header, HeaderError};

/// Bytes of a frame, starting at the Ethernet header.
pub trait Packet {
    /// Copies the `N` bytes at `offset`, or `None` if the frame is shorter than `offset + N`.
    fn load<const N: usize>(&self, offset: usize) -> Option<[u8; N]>;
    /// Number of bytes in the frame.
    fn len(&self) -> usize;

    /// Whether the frame has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Packet for [u8] {
    #[inline(always)]
    fn load<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        self.get(offset..)?.first_chunk::<N>().copied()
    }

    #[inline(always)]
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }
}

/// Why a packet for a game port was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// First fragment of a fragmented IPv4 or IPv6 datagram.
    Fragment,
    /// UDP payload shorter than the tickgate header.
    TooShort,
    /// The UDP length claims more bytes than the frame holds.
    Truncated,
    /// Header magic is not `0xF1F2`.
    BadMagic,
    /// Header version unknown.
    BadVersion,
    /// Message kind unknown.
    BadKind,
    /// Header payload length disagrees with the UDP length.
    BadLength,
}

impl From<HeaderError> for DropReason {
    fn from(e: HeaderError) -> Self {
        match e {
            HeaderError::TooShort => Self::TooShort,
            HeaderError::BadMagic => Self::BadMagic,
            HeaderError::BadVersion => Self::BadVersion,
            HeaderError::BadKind => Self::BadKind,
            HeaderError::BadLength => Self::BadLength,
        }
    }
}

/// A valid game packet, ready to be steered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GamePacket {
    /// Offset of the UDP payload (the tickgate header) from the start of the frame.
    pub payload_offset: u16,
    /// UDP payload length: header plus payload.
    pub payload_len: u16,
    /// Whether it arrived over IPv6.
    pub ipv6: bool,
    /// Source address as a key for per-source state: IPv6 as is, IPv4 as the v4-mapped IPv6
    /// address `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2), so both families share one map without
    /// colliding.
    pub source: [u8; 16],
    /// UDP source port.
    pub source_port: u16,
    /// The parsed header.
    pub header: Framing,
}

/// The header of a steered packet, by protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Version 1: unauthenticated, checksummed (`--insecure-v1` only, once v2 is the default).
    V1(Header),
    /// Version 2: sealed, sessions enforced in XDP.
    V2(wire::v2::Header),
}

/// What to do with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not game traffic (or not parseable as such): leave it to the kernel, untouched.
    Pass,
    /// Game-port traffic that fails a check.
    Drop(DropReason),
    /// A game packet that passed every check XDP makes.
    Steer(GamePacket),
}

const ETH_HLEN: usize = 14;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const VLAN_HLEN: usize = 4;
const IPPROTO_UDP: u8 = 17;
const IPV6_HLEN: usize = 40;
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_DEST_OPTS: u8 = 60;
/// IPv6 extension headers walked before giving up (and passing the packet).
const MAX_IPV6_EXT_HEADERS: usize = 4;
/// Largest L4 offset considered; beyond it the packet is passed. Keeps every offset small and
/// bounded, which the verifier needs for packet-pointer arithmetic.
const MAX_L4_OFFSET: usize = 512;
const UDP_HLEN: usize = 8;

/// Where the UDP header starts, and whether the datagram is the first fragment of several.
struct L4 {
    offset: usize,
    first_fragment: bool,
    ipv6: bool,
    source: [u8; 16],
}

/// Classifies one frame. `is_game_port` gets the UDP destination port in host byte order.
#[inline(always)]
pub fn classify<P: Packet + ?Sized>(pkt: &P, is_game_port: impl Fn(u16) -> bool) -> Verdict {
    let Some(l4) = find_udp(pkt) else {
        return Verdict::Pass;
    };
    let Some(udp) = pkt.load::<UDP_HLEN>(l4.offset) else {
        return Verdict::Pass;
    };
    if !is_game_port(u16::from_be_bytes([udp[2], udp[3]])) {
        return Verdict::Pass;
    }
    if l4.first_fragment {
        return Verdict::Drop(DropReason::Fragment);
    }
    let udp_len = u16::from_be_bytes([udp[4], udp[5]]) as usize;
    if udp_len < UDP_HLEN + wire::HEADER_LEN {
        return Verdict::Drop(DropReason::TooShort);
    }
    if l4.offset + udp_len > pkt.len() {
        return Verdict::Drop(DropReason::Truncated);
    }
    let payload_offset = l4.offset + UDP_HLEN;
    let Some(header) = pkt.load::<{ wire::HEADER_LEN }>(payload_offset) else {
        return Verdict::Drop(DropReason::Truncated);
    };
    let checked = if header[wire::offset::VERSION] == wire::v2::VERSION {
        wire::v2::check_inbound(&header, udp_len - UDP_HLEN).map(Framing::V2)
    } else {
        wire::check_header(&header, udp_len - UDP_HLEN).map(Framing::V1)
    };
    match checked {
        Ok(header) => Verdict::Steer(GamePacket {
            payload_offset: payload_offset as u16,
            payload_len: (udp_len - UDP_HLEN) as u16,
            ipv6: l4.ipv6,
            source: l4.source,
            source_port: u16::from_be_bytes([udp[0], udp[1]]),
            header,
        }),
        Err(e) => Verdict::Drop(e.into()),
    }
}

/// Finds the UDP header of an unfragmented or first-fragment datagram. `None` for anything else:
/// not IP, not UDP, a later fragment (its port is unknown), or headers too deep to follow.
#[inline(always)]
fn find_udp<P: Packet + ?Sized>(pkt: &P) -> Option<L4> {
    let mut l3 = ETH_HLEN;
    let mut ethertype = be16(pkt.load::<2>(12)?);
    for _ in 0..2 {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        ethertype = be16(pkt.load::<2>(l3 + 2)?);
        l3 += VLAN_HLEN;
    }
    match ethertype {
        ETH_P_IPV4 => ipv4_udp(pkt, l3),
        ETH_P_IPV6 => ipv6_udp(pkt, l3),
        _ => None,
    }
}

#[inline(always)]
fn ipv4_udp<P: Packet + ?Sized>(pkt: &P, l3: usize) -> Option<L4> {
    let ip = pkt.load::<20>(l3)?;
    let ihl = (ip[0] & 0x0f) as usize * 4;
    if ip[0] >> 4 != 4 || ihl < 20 || ip[9] != IPPROTO_UDP {
        return None;
    }
    let frag = be16([ip[6], ip[7]]);
    let more_fragments = frag & 0x2000 != 0;
    if frag & 0x1fff != 0 {
        return None;
    }
    Some(L4 { offset: l3 + ihl, first_fragment: more_fragments, ipv6: false, source: v4_mapped(&ip) })
}

#[inline(always)]
fn ipv6_udp<P: Packet + ?Sized>(pkt: &P, l3: usize) -> Option<L4> {
    let ip = pkt.load::<8>(l3)?;
    if ip[0] >> 4 != 6 {
        return None;
    }
    let source = pkt.load::<16>(l3 + 8)?;
    let mut next = ip[6];
    let mut offset = l3 + IPV6_HLEN;
    let mut first_fragment = false;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        if next == IPPROTO_UDP || offset > MAX_L4_OFFSET {
            break;
        }
        let ext = pkt.load::<4>(offset)?;
        match next {
            IPV6_FRAGMENT => {
                let frag = be16([ext[2], ext[3]]);
                if frag >> 3 != 0 {
                    return None;
                }
                first_fragment = frag & 1 != 0;
                offset += 8;
            }
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS => offset += (ext[1] as usize + 1) * 8,
            _ => return None,
        }
        next = ext[0];
    }
    if next != IPPROTO_UDP || offset > MAX_L4_OFFSET {
        return None;
    }
    Some(L4 { offset, first_fragment, ipv6: true, source })
}

/// The IPv4 source address of header `ip` as `::ffff:a.b.c.d`.
#[inline(always)]
fn v4_mapped(ip: &[u8; 20]) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[10] = 0xff;
    key[11] = 0xff;
    key[12] = ip[12];
    key[13] = ip[13];
    key[14] = ip[14];
    key[15] = ip[15];
    key
}

#[inline(always)]
fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

#[cfg(test)]
pub(crate) mod tests;
