//! Where a received packet came from and went to, and the frame of a reply to it.
//!
//! Replies go out through the AF_XDP TX ring as whole Ethernet frames, so tickgate writes their
//! headers itself: the request's, with source and destination swapped at every layer (MAC, the
//! same VLAN tags, IP, UDP), a fresh IPv4 header checksum and the UDP checksum over the
//! pseudo-header (mandatory over IPv6, written over IPv4 too). IPv6 extension headers of the
//! request are not repeated. The frame the XDP program steered was already classified, but it is
//! parsed again here with every read bounds-checked: the UMEM is shared with the kernel.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const VLAN_HLEN: usize = 4;
const IPV4_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;
const UDP_HLEN: usize = 8;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const IPPROTO_UDP: u8 = 17;
/// Hop limit (TTL) of replies, as Linux's default.
const HOP_LIMIT: u8 = 64;
/// Most VLAN tags followed (as the XDP classifier).
const MAX_VLANS: usize = 2;

/// The link and transport endpoints of one received UDP frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// Destination MAC of the request (ours).
    pub local_mac: [u8; 6],
    /// Source MAC of the request (the peer's, or the router's).
    pub peer_mac: [u8; 6],
    /// VLAN tags as they were (TPID and TCI each), outermost first; `vlan_count` are used.
    vlans: [[u8; 4]; MAX_VLANS],
    vlan_count: usize,
    /// The client's address.
    pub peer: SocketAddr,
    /// The address the client sent to (ours).
    pub local: SocketAddr,
}

impl Endpoints {
    /// Reads the endpoints of an Ethernet/VLAN/IP/UDP frame; `None` if it is not one.
    pub fn parse(frame: &[u8]) -> Option<Self> {
        let local_mac: [u8; 6] = frame.get(0..6)?.try_into().ok()?;
        let peer_mac: [u8; 6] = frame.get(6..12)?.try_into().ok()?;
        let mut vlans = [[0u8; 4]; MAX_VLANS];
        let mut vlan_count = 0;
        let mut at = 12;
        let mut ethertype = be16(frame, at)?;
        while (ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD) && vlan_count < MAX_VLANS {
            vlans[vlan_count] = frame.get(at..at + VLAN_HLEN)?.try_into().ok()?;
            vlan_count += 1;
            at += VLAN_HLEN;
            ethertype = be16(frame, at)?;
        }
        let l3 = at + 2;
        let (src, dst, l4) = match ethertype {
            ETH_P_IPV4 => {
                let ip = frame.get(l3..l3 + IPV4_HLEN)?;
                let ihl = usize::from(ip[0] & 0x0f) * 4;
                if ip[0] >> 4 != 4 || ihl < IPV4_HLEN || ip[9] != IPPROTO_UDP {
                    return None;
                }
                let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
                let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
                (IpAddr::V4(src), IpAddr::V4(dst), l3 + ihl)
            }
            ETH_P_IPV6 => {
                let ip = frame.get(l3..l3 + IPV6_HLEN)?;
                let src: [u8; 16] = ip[8..24].try_into().ok()?;
                let dst: [u8; 16] = ip[24..40].try_into().ok()?;
                // Extension headers: follow the chain as the classifier does.
                let (mut next, mut off) = (ip[6], l3 + IPV6_HLEN);
                for _ in 0..4 {
                    match next {
                        IPPROTO_UDP => break,
                        0 | 43 | 60 => {
                            let ext = frame.get(off..off + 2)?;
                            next = ext[0];
                            off += (usize::from(ext[1]) + 1) * 8;
                        }
                        44 => {
                            next = *frame.get(off)?;
                            off += 8;
                        }
                        _ => return None,
                    }
                }
                if next != IPPROTO_UDP {
                    return None;
                }
                (IpAddr::V6(Ipv6Addr::from(src)), IpAddr::V6(Ipv6Addr::from(dst)), off)
            }
            _ => return None,
        };
        let udp = frame.get(l4..l4 + UDP_HLEN)?;
        let sport = u16::from_be_bytes([udp[0], udp[1]]);
        let dport = u16::from_be_bytes([udp[2], udp[3]]);
        Some(Self {
            local_mac,
            peer_mac,
            vlans,
            vlan_count,
            peer: SocketAddr::new(src, sport),
            local: SocketAddr::new(dst, dport),
        })
    }

    /// Writes the frame of a reply carrying `payload` (a UDP payload) into `out` (cleared first).
    pub fn reply(&self, payload: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.peer_mac);
        out.extend_from_slice(&self.local_mac);
        for tag in &self.vlans[..self.vlan_count] {
            out.extend_from_slice(tag);
        }
        let udp_len = UDP_HLEN + payload.len();
        let mut udp = [0u8; UDP_HLEN];
        udp[0..2].copy_from_slice(&self.local.port().to_be_bytes());
        udp[2..4].copy_from_slice(&self.peer.port().to_be_bytes());
        udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        match (self.local.ip(), self.peer.ip()) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                out.extend_from_slice(&ETH_P_IPV4.to_be_bytes());
                let mut ip = [0u8; IPV4_HLEN];
                ip[0] = 0x45;
                ip[2..4].copy_from_slice(&((IPV4_HLEN + udp_len) as u16).to_be_bytes());
                ip[6] = 0x40; // don't fragment
                ip[8] = HOP_LIMIT;
                ip[9] = IPPROTO_UDP;
                ip[12..16].copy_from_slice(&src.octets());
                ip[16..20].copy_from_slice(&dst.octets());
                let sum = !fold(sum16(0, &ip));
                ip[10..12].copy_from_slice(&sum.to_be_bytes());
                let mut pseudo = [0u8; 12];
                pseudo[0..4].copy_from_slice(&src.octets());
                pseudo[4..8].copy_from_slice(&dst.octets());
                pseudo[9] = IPPROTO_UDP;
                pseudo[10..12].copy_from_slice(&(udp_len as u16).to_be_bytes());
                write_udp_checksum(&mut udp, &pseudo, payload);
                out.extend_from_slice(&ip);
            }
            (src, dst) => {
                let to16 = |ip: IpAddr| match ip {
                    IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
                    IpAddr::V6(v6) => v6.octets(),
                };
                let (src, dst) = (to16(src), to16(dst));
                out.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
                let mut ip = [0u8; IPV6_HLEN];
                ip[0] = 0x60;
                ip[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
                ip[6] = IPPROTO_UDP;
                ip[7] = HOP_LIMIT;
                ip[8..24].copy_from_slice(&src);
                ip[24..40].copy_from_slice(&dst);
                let mut pseudo = [0u8; 40];
                pseudo[0..16].copy_from_slice(&src);
                pseudo[16..32].copy_from_slice(&dst);
                pseudo[32..36].copy_from_slice(&(udp_len as u32).to_be_bytes());
                pseudo[39] = IPPROTO_UDP;
                write_udp_checksum(&mut udp, &pseudo, payload);
                out.extend_from_slice(&ip);
            }
        }
        out.extend_from_slice(&udp);
        out.extend_from_slice(payload);
    }
}

fn be16(frame: &[u8], at: usize) -> Option<u16> {
    let b = frame.get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// One's-complement sum of `bytes` (big-endian 16-bit words, odd byte padded) added to `acc`.
fn sum16(mut acc: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for w in &mut chunks {
        acc = acc.wrapping_add(u32::from(u16::from_be_bytes([w[0], w[1]])));
        acc = (acc & 0xffff) + (acc >> 16);
    }
    if let [last] = chunks.remainder() {
        acc = acc.wrapping_add(u32::from(*last) << 8);
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

fn write_udp_checksum(udp: &mut [u8; UDP_HLEN], pseudo: &[u8], payload: &[u8]) {
    let sum = sum16(sum16(sum16(0, pseudo), udp), payload);
    // A computed 0 is sent as all ones (RFC 768; mandatory for IPv6, RFC 8200 §8.1).
    let sum = match !fold(sum) {
        0 => 0xffff,
        s => s,
    };
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use tickgate_common::frame::{Frame, Ip};

    use super::*;

    /// The one's-complement sum over a header with its checksum in place is all ones.
    fn verifies(bytes: &[u8]) -> bool {
        fold(sum16(0, bytes)) == 0xffff
    }

    fn request(ip: Ip, vlans: &[u16]) -> Vec<u8> {
        let mut f = Frame::udp(ip, 40_001, 7777, b"request bytes");
        f.src_mac = [2, 0, 0, 0, 0, 1];
        f.dst_mac = [2, 0, 0, 0, 0, 2];
        f.vlans = vlans.to_vec();
        f.build()
    }

    #[test]
    fn replies_swap_every_layer_and_carry_valid_checksums() {
        let v4 = Ip::V4 { src: [10, 77, 0, 1], dst: [10, 77, 0, 2], options: 8, fragment: None };
        let mut src6 = [0u8; 16];
        src6[0] = 0xfd;
        src6[15] = 1;
        let mut dst6 = src6;
        dst6[15] = 2;
        let v6 = Ip::V6 { src: src6, dst: dst6, hop_by_hop: true, fragment: None };
        for (ip, vlans) in [(v4.clone(), vec![]), (v6.clone(), vec![]), (v4, vec![100, 200]), (v6, vec![7])] {
            let req = request(ip, &vlans);
            let e = Endpoints::parse(&req).unwrap();
            assert_eq!((e.peer.port(), e.local.port()), (40_001, 7777));
            let mut reply = Vec::new();
            e.reply(b"odd-length reply!", &mut reply);
            // Parsed back: every endpoint swapped.
            let back = Endpoints::parse(&reply).unwrap();
            assert_eq!(
                (back.peer, back.local, back.peer_mac, back.local_mac),
                (e.local, e.peer, e.local_mac, e.peer_mac)
            );
            assert_eq!(back.vlans[..back.vlan_count], e.vlans[..e.vlan_count]);
            let l3 = 14 + 4 * vlans.len();
            let payload_at = reply.len() - 17;
            assert_eq!(&reply[payload_at..], b"odd-length reply!");
            if e.peer.is_ipv4() {
                assert!(verifies(&reply[l3..l3 + 20]), "IPv4 header checksum");
                let udp = &reply[l3 + 20..];
                let mut pseudo = reply[l3 + 12..l3 + 20].to_vec();
                pseudo.extend_from_slice(&[0, 17]);
                pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
                assert!(verifies(&[pseudo, udp.to_vec()].concat()), "UDP checksum over IPv4");
            } else {
                let udp = &reply[l3 + 40..];
                let mut pseudo = reply[l3 + 8..l3 + 40].to_vec();
                pseudo.extend_from_slice(&(udp.len() as u32).to_be_bytes());
                pseudo.extend_from_slice(&[0, 0, 0, 17]);
                assert!(verifies(&[pseudo, udp.to_vec()].concat()), "UDP checksum over IPv6");
            }
        }
    }

    #[test]
    fn what_is_not_udp_over_ip_has_no_endpoints() {
        assert_eq!(Endpoints::parse(&[]), None);
        assert_eq!(Endpoints::parse(&tickgate_common::frame::arp_request()), None);
        let req = request(Ip::V4 { src: [1, 1, 1, 1], dst: [2, 2, 2, 2], options: 0, fragment: None }, &[]);
        // Ethernet, IPv4 and UDP headers end at byte 42: every shorter prefix has no endpoints.
        for len in 0..=req.len() {
            assert_eq!(Endpoints::parse(&req[..len]).is_some(), len >= 14 + 20 + 8, "prefix of {len}");
        }
    }
}
