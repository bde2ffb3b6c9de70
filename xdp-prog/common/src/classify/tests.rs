use std::{
    net::{Ipv4Addr, Ipv6Addr},
    vec,
    vec::Vec,
};

use super::*;
use crate::{
    frame::{Frame, Ip, arp_request},
    wire::{HEADER_LEN, Kind, write_header},
};

const GAME: u16 = 7777;

fn game_port(p: u16) -> bool {
    p == GAME
}

fn tickgate_payload(body: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; HEADER_LEN];
    let header = Header {
        kind: Kind::Input,
        payload_len: body.len() as u16,
        client_id: 42,
        client_frame: 7,
        seq: 1000,
        checksum: 0,
    };
    write_header(&header, &mut p).unwrap();
    p.extend_from_slice(body);
    p
}

fn v4() -> Ip {
    Ip::V4 { src: [10, 0, 0, 1], dst: [10, 0, 0, 2], options: 0, fragment: None }
}

fn v6() -> Ip {
    let mut src = [0u8; 16];
    src[0] = 0xfd;
    src[15] = 1;
    let mut dst = src;
    dst[15] = 2;
    Ip::V6 { src, dst, hop_by_hop: false, fragment: None }
}

fn classify_frame(f: &Frame) -> Verdict {
    classify(f.build().as_slice(), game_port)
}

fn steered(v: Verdict) -> GamePacket {
    match v {
        Verdict::Steer(g) => g,
        other => panic!("expected Steer, got {other:?}"),
    }
}

#[test]
fn ipv4_game_packet_is_steered_with_offsets() {
    let payload = tickgate_payload(b"hello");
    let g = steered(classify_frame(&Frame::udp(v4(), 5000, GAME, &payload)));
    assert_eq!(g.payload_offset, 14 + 20 + 8);
    assert_eq!(g.payload_len as usize, payload.len());
    assert!(!g.ipv6);
    // 10.0.0.1 as a v4-mapped IPv6 key, computed independently of the classifier.
    assert_eq!(g.source, Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped().octets());
    let Framing::V1(header) = g.header else { panic!("not v1: {g:?}") };
    assert_eq!((header.client_id, header.seq, g.source_port), (42, 1000, 5000));
}

#[test]
fn ipv6_game_packet_is_steered() {
    let g = steered(classify_frame(&Frame::udp(v6(), 5000, GAME, &tickgate_payload(b"x"))));
    assert_eq!(g.payload_offset, 14 + 40 + 8);
    assert!(g.ipv6);
    assert_eq!(Ipv6Addr::from(g.source), "fd00::1".parse::<Ipv6Addr>().unwrap());
}

#[test]
fn source_is_the_sender_whatever_the_headers_in_front() {
    let v4_src = [192, 0, 2, 77];
    let v6_src: [u8; 16] = "2001:db8::77".parse::<Ipv6Addr>().unwrap().octets();
    let ips = [
        (Ip::V4 { src: v4_src, dst: [10, 0, 0, 2], options: 0, fragment: None }, false),
        (Ip::V4 { src: v4_src, dst: [10, 0, 0, 2], options: 40, fragment: None }, false),
        (Ip::V6 { src: v6_src, dst: [0xfd; 16], hop_by_hop: false, fragment: None }, true),
        (Ip::V6 { src: v6_src, dst: [0xfd; 16], hop_by_hop: true, fragment: Some((false, 0)) }, true),
    ];
    for vlans in [vec![], vec![100], vec![100, 200]] {
        for (ip, ipv6) in &ips {
            let mut f = Frame::udp(ip.clone(), 5000, GAME, &tickgate_payload(b"src"));
            f.vlans = vlans.clone();
            let g = steered(classify_frame(&f));
            let expected = if *ipv6 { v6_src } else { Ipv4Addr::from(v4_src).to_ipv6_mapped().octets() };
            assert_eq!(g.source, expected, "{ip:?} vlans {vlans:?}");
        }
    }
    // A v4 sender and the same address sent as v4-mapped IPv6 share one bucket key.
    let mapped = Ipv4Addr::from(v4_src).to_ipv6_mapped().octets();
    let from_v4 = steered(classify_frame(&Frame::udp(ips[0].0.clone(), 1, GAME, &tickgate_payload(b""))));
    let as_v6 = Ip::V6 { src: mapped, dst: [0xfd; 16], hop_by_hop: false, fragment: None };
    let from_v6 = steered(classify_frame(&Frame::udp(as_v6, 1, GAME, &tickgate_payload(b""))));
    assert_eq!(from_v4.source, from_v6.source);
}

#[test]
fn ipv6_hop_by_hop_is_followed() {
    let Ip::V6 { src, dst, .. } = v6() else { unreachable!() };
    let ip = Ip::V6 { src, dst, hop_by_hop: true, fragment: None };
    let g = steered(classify_frame(&Frame::udp(ip, 5000, GAME, &tickgate_payload(b""))));
    assert_eq!(g.payload_offset, 14 + 40 + 8 + 8);
}

#[test]
fn one_and_two_vlan_tags() {
    for (tags, extra) in [(vec![100], 4u16), (vec![100, 200], 8)] {
        for ip in [v4(), v6()] {
            let base = if matches!(ip, Ip::V6 { .. }) { 14 + 40 + 8 } else { 14 + 20 + 8 };
            let mut f = Frame::udp(ip, 5000, GAME, &tickgate_payload(b"abc"));
            f.vlans = tags.clone();
            let g = steered(classify_frame(&f));
            assert_eq!(g.payload_offset, base + extra, "tags {tags:?}");
        }
    }
}

#[test]
fn three_vlan_tags_are_not_followed() {
    let mut f = Frame::udp(v4(), 5000, GAME, &tickgate_payload(b""));
    f.vlans = vec![1, 2, 3];
    assert_eq!(classify_frame(&f), Verdict::Pass);
}

#[test]
fn ipv4_options_of_every_length() {
    for options in (0..=40).step_by(4) {
        let Ip::V4 { src, dst, .. } = v4() else { unreachable!() };
        let ip = Ip::V4 { src, dst, options, fragment: None };
        let g = steered(classify_frame(&Frame::udp(ip, 5000, GAME, &tickgate_payload(b"p"))));
        assert_eq!(g.payload_offset as usize, 14 + 20 + options + 8);
    }
}

#[test]
fn fragments() {
    let Ip::V4 { src, dst, .. } = v4() else { unreachable!() };
    let first = Ip::V4 { src, dst, options: 0, fragment: Some((true, 0)) };
    let f = Frame::udp(first, 5000, GAME, &tickgate_payload(b"p"));
    assert_eq!(classify_frame(&f), Verdict::Drop(DropReason::Fragment));
    // A later fragment has no UDP header: its port is unknown, so it is left to the kernel.
    let later = Ip::V4 { src, dst, options: 0, fragment: Some((false, 185)) };
    assert_eq!(classify_frame(&Frame::udp(later, 5000, GAME, &tickgate_payload(b"p"))), Verdict::Pass);
    // A fragment of another port's datagram is not ours.
    let first = Ip::V4 { src, dst, options: 0, fragment: Some((true, 0)) };
    assert_eq!(classify_frame(&Frame::udp(first, 5000, 53, &tickgate_payload(b"p"))), Verdict::Pass);

    let Ip::V6 { src, dst, .. } = v6() else { unreachable!() };
    let first6 = Ip::V6 { src, dst, hop_by_hop: false, fragment: Some((true, 0)) };
    assert_eq!(
        classify_frame(&Frame::udp(first6, 5000, GAME, &tickgate_payload(b"p"))),
        Verdict::Drop(DropReason::Fragment)
    );
    let later6 = Ip::V6 { src, dst, hop_by_hop: true, fragment: Some((false, 100)) };
    assert_eq!(classify_frame(&Frame::udp(later6, 5000, GAME, &tickgate_payload(b"p"))), Verdict::Pass);
    // An atomic fragment (offset 0, no more fragments) is a whole datagram.
    let atomic = Ip::V6 { src, dst, hop_by_hop: false, fragment: Some((false, 0)) };
    steered(classify_frame(&Frame::udp(atomic, 5000, GAME, &tickgate_payload(b"p"))));
}

#[test]
fn header_failures_are_dropped_by_reason() {
    let good = tickgate_payload(b"body");
    let mut bad_magic = good.clone();
    bad_magic[0] = 0;
    let mut bad_version = good.clone();
    bad_version[2] = 9;
    let mut bad_kind = good.clone();
    bad_kind[3] = 0;
    let mut bad_length = good.clone();
    bad_length.push(0);
    let cases = [
        (bad_magic, DropReason::BadMagic),
        (bad_version, DropReason::BadVersion),
        (bad_kind, DropReason::BadKind),
        (bad_length, DropReason::BadLength),
        (good[..HEADER_LEN - 1].to_vec(), DropReason::TooShort),
        (Vec::new(), DropReason::TooShort),
    ];
    for (payload, reason) in cases {
        for ip in [v4(), v6()] {
            assert_eq!(
                classify_frame(&Frame::udp(ip, 1, GAME, &payload)),
                Verdict::Drop(reason),
                "{reason:?}"
            );
        }
    }
}

#[test]
fn udp_length_beyond_the_frame_is_truncated() {
    let mut f = Frame::udp(v4(), 5000, GAME, &tickgate_payload(b"body"));
    f.udp_len_override = Some(400);
    assert_eq!(classify_frame(&f), Verdict::Drop(DropReason::Truncated));
    // The frame cut short on the wire, with an honest UDP length.
    let bytes = Frame::udp(v6(), 5000, GAME, &tickgate_payload(b"body")).build();
    let cut = &bytes[..bytes.len() - 3];
    assert_eq!(classify(cut, game_port), Verdict::Drop(DropReason::Truncated));
}

#[test]
fn ethernet_padding_does_not_count_as_payload() {
    let mut bytes = Frame::udp(v4(), 5000, GAME, &tickgate_payload(b"")).build();
    bytes.resize(bytes.len() + 6, 0);
    let g = steered(classify(bytes.as_slice(), game_port));
    assert_eq!(g.payload_len as usize, HEADER_LEN);
}

#[test]
fn other_traffic_passes_untouched() {
    let payload = tickgate_payload(b"x");
    assert_eq!(classify_frame(&Frame::udp(v4(), 5000, 53, &payload)), Verdict::Pass);
    assert_eq!(classify_frame(&Frame::udp(v6(), 5000, 7778, &payload)), Verdict::Pass);
    let mut tcp = Frame::udp(v4(), 5000, GAME, &payload);
    tcp.protocol = 6;
    assert_eq!(classify_frame(&tcp), Verdict::Pass);
    assert_eq!(classify(arp_request().as_slice(), game_port), Verdict::Pass);
    // Junk with a game port but bad magic is still dropped, not passed.
    assert_eq!(
        classify_frame(&Frame::udp(v4(), 5000, GAME, &[0u8; 40])),
        Verdict::Drop(DropReason::BadMagic)
    );
}

#[test]
fn every_truncation_of_a_valid_frame_is_safe() {
    for ip in [v4(), v6()] {
        let mut f = Frame::udp(ip, 5000, GAME, &tickgate_payload(b"0123456789"));
        f.vlans = vec![5, 6];
        let bytes = f.build();
        for n in 0..bytes.len() {
            let v = classify(&bytes[..n], game_port);
            assert!(!matches!(v, Verdict::Steer(_)), "prefix of {n} bytes steered");
        }
        assert!(matches!(classify(bytes.as_slice(), game_port), Verdict::Steer(_)));
    }
}

#[test]
fn random_bytes_never_panic_and_steer_only_checked_headers() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let template = Frame::udp(v4(), 5000, GAME, &tickgate_payload(b"abcdef")).build();
    for round in 0..50_000 {
        let mut bytes = template.clone();
        // Mutate a few bytes of a valid frame, or start from noise.
        let flips = if round % 5 == 0 { bytes.len() } else { 3 };
        for _ in 0..flips {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let i = (state as usize) % bytes.len();
            bytes[i] = (state >> 32) as u8;
        }
        let len = if round % 3 == 0 { (state >> 48) as usize % bytes.len() } else { bytes.len() };
        if let Verdict::Steer(g) = classify(&bytes[..len], |_| true) {
            let at = g.payload_offset as usize;
            assert!(at + g.payload_len as usize <= len);
            assert!(wire::check_header(&bytes[at..len], g.payload_len as usize).is_ok());
        }
    }
}

fn v2_payload(kind: wire::v2::Kind, payload_len: usize) -> Vec<u8> {
    let header = wire::v2::Header { kind, payload_len: payload_len as u16, session: 7, seq: 99 };
    let mut p = wire::v2::encode(&header).to_vec();
    p.resize(wire::v2::HEADER_LEN + payload_len, 0xab);
    p
}

#[test]
fn v2_packets_are_steered_with_their_session_and_source_port() {
    use wire::v2::{Kind as K, REQUEST_PAYLOAD_LEN};
    for (kind, len) in [(K::Input, 40), (K::Keepalive, 16), (K::Request, REQUEST_PAYLOAD_LEN)] {
        for ip in [v4(), v6()] {
            let g = steered(classify_frame(&Frame::udp(ip, 40001, GAME, &v2_payload(kind, len))));
            let Framing::V2(h) = g.header else { panic!("not v2: {g:?}") };
            assert_eq!((h.kind, h.session, h.seq, g.source_port), (kind, 7, 99, 40001));
        }
    }
    // Server -> client kinds never arrive at a server; handshake packets have one size.
    let drops = [
        (v2_payload(K::Challenge, 40), DropReason::BadKind),
        (v2_payload(K::Denied, 16), DropReason::BadKind),
        (v2_payload(K::Request, REQUEST_PAYLOAD_LEN - 1), DropReason::BadLength),
        (v2_payload(K::Response, 40), DropReason::BadLength),
    ];
    for (payload, reason) in drops {
        assert_eq!(classify_frame(&Frame::udp(v4(), 1, GAME, &payload)), Verdict::Drop(reason));
    }
}
