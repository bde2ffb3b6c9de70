//! Builds Ethernet frames for tests, fixtures and fuzz seeds (userspace only).
//!
//! Deliberately independent of [`crate::classify`]: it writes the bytes field by field, so the
//! classifier is checked against a second description of the same formats.

use std::{net::IpAddr, vec::Vec};

/// The IP layer of a test frame.
#[derive(Clone, Debug)]
pub enum Ip {
    /// IPv4 with `options` extra bytes of header (a multiple of 4, at most 40).
    V4 {
        /// Source address.
        src: [u8; 4],
        /// Destination address.
        dst: [u8; 4],
        /// Bytes of IP options (NOPs).
        options: usize,
        /// `(more_fragments, fragment_offset_in_8_byte_units)`.
        fragment: Option<(bool, u16)>,
    },
    /// IPv6, optionally with a hop-by-hop header and a fragment header.
    V6 {
        /// Source address.
        src: [u8; 16],
        /// Destination address.
        dst: [u8; 16],
        /// Put an 8-byte hop-by-hop options header first.
        hop_by_hop: bool,
        /// `(more_fragments, fragment_offset_in_8_byte_units)` in a fragment header.
        fragment: Option<(bool, u16)>,
    },
}

impl Ip {
    /// Plain IPv4 or IPv6 between two addresses of the same family.
    pub fn between(src: IpAddr, dst: IpAddr) -> Self {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                Self::V4 { src: s.octets(), dst: d.octets(), options: 0, fragment: None }
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                Self::V6 { src: s.octets(), dst: d.octets(), hop_by_hop: false, fragment: None }
            }
            _ => panic!("mixed address families"),
        }
    }
}

/// A UDP frame to build.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// VLAN tags, outermost first (0x88A8 for the outer one when there are two).
    pub vlans: Vec<u16>,
    /// IP layer.
    pub ip: Ip,
    /// IP protocol number (17 for UDP).
    pub protocol: u8,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
    /// UDP payload.
    pub payload: Vec<u8>,
    /// Replaces the computed UDP length field.
    pub udp_len_override: Option<u16>,
}

impl Frame {
    /// A UDP frame with no VLAN tags.
    pub fn udp(ip: Ip, src_port: u16, dst_port: u16, payload: &[u8]) -> Self {
        Self {
            dst_mac: [0x02, 0, 0, 0, 0, 2],
            src_mac: [0x02, 0, 0, 0, 0, 1],
            vlans: Vec::new(),
            ip,
            protocol: 17,
            src_port,
            dst_port,
            payload: payload.to_vec(),
            udp_len_override: None,
        }
    }

    /// The frame's bytes.
    pub fn build(&self) -> Vec<u8> {
        let mut f = Vec::with_capacity(128 + self.payload.len());
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        for (i, vid) in self.vlans.iter().enumerate() {
            let tpid: u16 = if i == 0 && self.vlans.len() == 2 { 0x88A8 } else { 0x8100 };
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&vid.to_be_bytes());
        }
        let udp_len = (8 + self.payload.len()) as u16;
        let mut udp = Vec::with_capacity(udp_len as usize);
        udp.extend_from_slice(&self.src_port.to_be_bytes());
        udp.extend_from_slice(&self.dst_port.to_be_bytes());
        udp.extend_from_slice(&self.udp_len_override.unwrap_or(udp_len).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(&self.payload);
        match &self.ip {
            Ip::V4 { src, dst, options, fragment } => {
                f.extend_from_slice(&0x0800u16.to_be_bytes());
                let ihl = 20 + options;
                let start = f.len();
                f.push(0x40 | (ihl / 4) as u8);
                f.push(0);
                f.extend_from_slice(&((ihl + udp.len()) as u16).to_be_bytes());
                f.extend_from_slice(&[0x12, 0x34]);
                let frag = match fragment {
                    Some((more, off)) => (u16::from(*more) << 13) | (off & 0x1fff),
                    None => 0x4000, // don't fragment
                };
                f.extend_from_slice(&frag.to_be_bytes());
                f.push(64);
                f.push(self.protocol);
                f.extend_from_slice(&[0, 0]);
                f.extend_from_slice(src);
                f.extend_from_slice(dst);
                f.extend(std::iter::repeat_n(1u8, *options)); // NOP options
                let csum = ipv4_checksum(&f[start..]);
                f[start + 10..start + 12].copy_from_slice(&csum.to_be_bytes());
            }
            Ip::V6 { src, dst, hop_by_hop, fragment } => {
                f.extend_from_slice(&0x86DDu16.to_be_bytes());
                let mut ext = Vec::new();
                let mut first_next = self.protocol;
                if fragment.is_some() {
                    first_next = 44;
                }
                if *hop_by_hop {
                    // next header, length 0 (8 bytes), PadN option filling 6 bytes
                    ext.extend_from_slice(&[first_next, 0, 1, 4, 0, 0, 0, 0]);
                    first_next = 0;
                }
                if let Some((more, off)) = fragment {
                    let fo = (off << 3) | u16::from(*more);
                    ext.extend_from_slice(&[self.protocol, 0]);
                    ext.extend_from_slice(&fo.to_be_bytes());
                    ext.extend_from_slice(&[0, 0, 0, 1]);
                }
                f.extend_from_slice(&[0x60, 0, 0, 0]);
                f.extend_from_slice(&((ext.len() + udp.len()) as u16).to_be_bytes());
                f.push(first_next);
                f.push(64);
                f.extend_from_slice(src);
                f.extend_from_slice(dst);
                f.extend_from_slice(&ext);
            }
        }
        f.extend_from_slice(&udp);
        f
    }
}

fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 =
        header.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ARP request frame (not IP at all).
pub fn arp_request() -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&0x0806u16.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 10, 0, 0, 1]);
    f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
    f.resize(60, 0);
    f
}
