//! The XDP programs run on fixture frames through `BPF_PROG_TEST_RUN`: each frame's verdict
//! and exactly which counter it moves. Needs root (loads BPF programs); CI runs it as root.
#![expect(clippy::unwrap_used, reason = "integration tests: a failed step should fail loudly")]

mod support;

use std::time::{Duration, Instant};

use tickgate::{
    steer::rate_limit::RateLimit,
    steer::{Loaded, Program},
    wire::v2::{self, Kind},
};
use tickgate_common::{
    frame::{Frame, Ip, arp_request},
    rate::RateConfig,
    session::HandshakeLimit,
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const GAME: u16 = 7777;

fn v4(options: usize, fragment: Option<(bool, u16)>) -> Ip {
    Ip::V4 { src: [10, 0, 0, 1], dst: [10, 0, 0, 2], options, fragment }
}

fn v6(hop_by_hop: bool, fragment: Option<(bool, u16)>) -> Ip {
    let mut src = [0u8; 16];
    src[0] = 0xfd;
    src[15] = 1;
    let mut dst = src;
    dst[15] = 2;
    Ip::V6 { src, dst, hop_by_hop, fragment }
}

fn game(ip: Ip) -> Frame {
    Frame::udp(ip, 40_000, GAME, &support::game_payload(7, 1, b"input"))
}

fn with_payload(ip: Ip, payload: Vec<u8>) -> Frame {
    Frame::udp(ip, 40_000, GAME, &payload)
}

fn tagged(mut f: Frame, vlans: &[u16]) -> Frame {
    f.vlans = vlans.to_vec();
    f
}

/// Runs one frame and returns its action and the counters (JSON) after it.
fn run(loaded: &Loaded, frame: &[u8]) -> (u32, serde_json::Value) {
    let action = loaded.test_run(frame).unwrap();
    let (counters, timestamps) = loaded.counters().unwrap();
    let mut json = serde_json::to_value(&counters).unwrap();
    json["timestamps"] = serde_json::to_value(&timestamps).unwrap();
    (action, json)
}

#[test]
fn every_fixture_gets_its_verdict_and_moves_exactly_its_counter() {
    support::require_root();
    let loaded = Loaded::load(Program::Tai, 1).unwrap();
    loaded.set_ports(&[GAME]).unwrap();
    // These fixtures are protocol v1 packets: admitted only with --insecure-v1.
    let v1_frame = game(v4(0, None)).build();
    assert_eq!(loaded.test_run(&v1_frame).unwrap(), XDP_DROP, "v1 is off by default");
    assert_eq!(loaded.counters().unwrap().0.dropped["bad_version"], 1);
    loaded.set_insecure_v1(true).unwrap();
    assert!(loaded.insecure_v1().unwrap());

    let mut bad_magic = support::game_payload(7, 1, b"x");
    bad_magic[0] = 0xAB;
    let mut bad_version = support::game_payload(7, 1, b"x");
    bad_version[2] = 99;
    let mut bad_length = support::game_payload(7, 1, b"x");
    bad_length.extend_from_slice(b"extra");
    let mut bad_kind = support::game_payload(7, 1, b"x");
    bad_kind[3] = 200;
    let mut long_udp = game(v4(0, None));
    long_udp.udp_len_override = Some(1000);
    let mut tcp = game(v4(0, None));
    tcp.protocol = 6;

    // (name, frame, expected action, counter path that must grow by one)
    let fixtures: Vec<(&str, Vec<u8>, u32, &str)> = vec![
        ("ipv4", game(v4(0, None)).build(), XDP_PASS, "no_socket"),
        ("ipv6", game(v6(false, None)).build(), XDP_PASS, "no_socket"),
        ("ipv6 hop-by-hop", game(v6(true, None)).build(), XDP_PASS, "no_socket"),
        ("one vlan tag", tagged(game(v4(0, None)), &[100]).build(), XDP_PASS, "no_socket"),
        ("two vlan tags", tagged(game(v6(false, None)), &[100, 200]).build(), XDP_PASS, "no_socket"),
        ("ipv4 with options", game(v4(12, None)).build(), XDP_PASS, "no_socket"),
        ("ipv4 first fragment", game(v4(0, Some((true, 0)))).build(), XDP_DROP, "dropped.fragment"),
        ("ipv6 first fragment", game(v6(false, Some((true, 0)))).build(), XDP_DROP, "dropped.fragment"),
        ("ipv4 later fragment", game(v4(0, Some((false, 64)))).build(), XDP_PASS, "passed"),
        ("short", with_payload(v4(0, None), vec![0xF1, 0xF2, 1]).build(), XDP_DROP, "dropped.too_short"),
        ("truncated", long_udp.build(), XDP_DROP, "dropped.truncated"),
        ("bad magic", with_payload(v4(0, None), bad_magic).build(), XDP_DROP, "dropped.bad_magic"),
        ("bad version", with_payload(v6(false, None), bad_version).build(), XDP_DROP, "dropped.bad_version"),
        ("bad kind", with_payload(v4(0, None), bad_kind).build(), XDP_DROP, "dropped.bad_kind"),
        ("length mismatch", with_payload(v4(0, None), bad_length).build(), XDP_DROP, "dropped.bad_length"),
        ("non-game udp", Frame::udp(v4(0, None), 40_000, 53, b"dns?").build(), XDP_PASS, "passed"),
        ("tcp", tcp.build(), XDP_PASS, "passed"),
        ("arp", arp_request(), XDP_PASS, "passed"),
    ];

    let get = |json: &serde_json::Value, path: &str| -> u64 {
        path.split('.').fold(json, |v, k| &v[k]).as_u64().unwrap_or_else(|| panic!("no counter {path}"))
    };
    let (_, mut before) = run(&loaded, &arp_request());
    for (name, frame, expected_action, counter) in &fixtures {
        let (action, after) = run(&loaded, frame);
        assert_eq!(action, *expected_action, "{name}: action");
        assert_eq!(get(&after, "rx_packets"), get(&before, "rx_packets") + 1, "{name}: rx_packets");
        for path in [
            "steered",
            "passed",
            "no_socket",
            "dropped.fragment",
            "dropped.too_short",
            "dropped.truncated",
            "dropped.bad_magic",
            "dropped.bad_version",
            "dropped.bad_kind",
            "dropped.bad_length",
            "dropped.no_metadata",
            "dropped.rate_limited",
            "dropped.no_session",
            "dropped.handshake_limited",
        ] {
            let grew = get(&after, path) - get(&before, path);
            assert_eq!(grew, u64::from(path == *counter), "{name}: counter {path}");
        }
        // The tai program stamps every valid game packet with the XDP clock, and nothing else.
        let stamped = get(&after, "timestamps.xdp") - get(&before, "timestamps.xdp");
        assert_eq!(stamped, u64::from(*counter == "no_socket"), "{name}: xdp timestamp count");
        assert_eq!(get(&after, "timestamps.nic"), 0);
        before = after;
    }
    let (counters, _) = loaded.counters().unwrap();
    assert_eq!(counters.unaccounted(), 0, "counters balance: {counters}");
}

#[test]
fn ports_not_in_the_map_are_passed_untouched() {
    support::require_root();
    let loaded = Loaded::load(Program::Tai, 1).unwrap();
    loaded.set_ports(&[9000]).unwrap();
    loaded.set_insecure_v1(true).unwrap();
    let frame = game(v4(0, None)).build();
    assert_eq!(loaded.test_run(&frame).unwrap(), XDP_PASS);
    let (counters, _) = loaded.counters().unwrap();
    assert_eq!((counters.passed, counters.no_socket), (1, 0));
}

/// Runs `frame` `n` times; returns how many were admitted (XDP_PASS as no_socket, since no socket
/// is bound) and how long the runs took, checking every other packet was dropped.
fn burst(loaded: &Loaded, frame: &[u8], n: usize) -> (u64, Duration) {
    let start = Instant::now();
    let mut admitted = 0;
    for _ in 0..n {
        match loaded.test_run(frame).unwrap() {
            XDP_PASS => admitted += 1,
            XDP_DROP => {}
            other => panic!("unexpected action {other}"),
        }
    }
    (admitted, start.elapsed())
}

/// Tokens a 10 pps bucket can regain during `elapsed`: one per full 100 ms. test_run is real
/// time, so a very slow machine may legitimately admit that many more than the burst.
fn refilled_at_10_pps(elapsed: Duration) -> u64 {
    (elapsed.as_millis() / 100) as u64
}

#[test]
fn a_flooding_source_is_shed_and_other_sources_keep_their_budget() {
    support::require_root();
    // test_run runs the program on the caller's CPU, and the buckets are per CPU.
    support::pin_to_current_cpu();
    let loaded = Loaded::load(Program::Tai, 1).unwrap();
    loaded.set_ports(&[GAME]).unwrap();
    loaded.set_insecure_v1(true).unwrap();
    loaded.set_rate_limit(Some(RateLimit::new(10, 5).unwrap())).unwrap();

    let source = |last: u8| {
        let ip = Ip::V4 { src: [192, 0, 2, last], dst: [10, 0, 0, 2], options: 0, fragment: None };
        game(ip).build()
    };
    let (a, b) = (source(1), source(2));
    let mut c6 = [0u8; 16];
    c6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    c6[15] = 3;
    let c = game(Ip::V6 { src: c6, dst: [0xfd; 16], hop_by_hop: false, fragment: None }).build();

    let (admitted_a, elapsed) = burst(&loaded, &a, 20);
    let extra = refilled_at_10_pps(elapsed);
    assert!((5..=5 + extra).contains(&admitted_a), "source A: {admitted_a} of 20 admitted in {elapsed:?}");
    let (counters, timestamps) = loaded.counters().unwrap();
    assert_eq!(counters.no_socket, admitted_a, "{counters}");
    assert_eq!(counters.dropped["rate_limited"], 20 - admitted_a, "{counters}");
    assert_eq!(timestamps.xdp, admitted_a, "shed packets are not stamped");

    // A is out of tokens; B and C (IPv6) each still get their whole burst, and no more.
    let mut limited = 20 - admitted_a;
    for (name, frame) in [("B", &b), ("C", &c)] {
        let (admitted, elapsed) = burst(&loaded, frame, 6);
        let extra = refilled_at_10_pps(elapsed);
        assert!(
            (5..=5 + extra).contains(&admitted),
            "source {name}: {admitted} of 6 admitted in {elapsed:?}"
        );
        limited += 6 - admitted;
    }
    let (counters, _) = loaded.counters().unwrap();
    assert_eq!(counters.dropped["rate_limited"], limited, "{counters}");

    // Disabled: the same source that was shed is admitted every time.
    loaded.set_rate_limit(None).unwrap();
    let (admitted, _) = burst(&loaded, &a, 50);
    assert_eq!(admitted, 50);
    let (counters, _) = loaded.counters().unwrap();
    assert_eq!(counters.dropped["rate_limited"], limited, "nothing is limited when disabled");
    assert_eq!(counters.unaccounted(), 0, "counters balance: {counters}");
}

/// A protocol v2 packet of `kind` naming `session`, with `payload_len` bytes of (unsealed) payload.
fn v2_packet(kind: Kind, session: u32, payload_len: usize) -> Vec<u8> {
    let mut p =
        v2::encode_header(&v2::Header { kind, payload_len: payload_len as u16, session, seq: 1 }).to_vec();
    p.resize(v2::HEADER_LEN + payload_len, 0x5a);
    p
}

#[test]
fn v2_data_passes_only_from_the_source_that_holds_the_session_it_names() {
    support::require_root();
    let loaded = Loaded::load(Program::Tai, 1).unwrap();
    loaded.set_ports(&[GAME]).unwrap();
    let sessions = loaded.session_map().unwrap();
    let data = |ip: Ip, port: u16, session: u32| {
        Frame::udp(ip, port, GAME, &v2_packet(Kind::Input, session, 40)).build()
    };
    let dropped = |what: &str| loaded.counters().unwrap().0.dropped[what];

    // (frame, session map entry of 10.0.0.1:40000, expected action)
    assert_eq!(loaded.test_run(&data(v4(0, None), 40_000, 7)).unwrap(), XDP_DROP, "no session yet");
    assert_eq!(dropped("no_session"), 1);
    sessions.insert("10.0.0.1:40000".parse().unwrap(), 7).unwrap();
    assert_eq!(sessions.get("10.0.0.1:40000".parse().unwrap()).unwrap(), Some(7));
    assert_eq!(loaded.test_run(&data(v4(0, None), 40_000, 7)).unwrap(), XDP_PASS, "its own session");
    for (name, frame) in [
        ("another session's id", data(v4(0, None), 40_000, 8)),
        ("another port", data(v4(0, None), 40_001, 7)),
        ("another address", data(v6(false, None), 40_000, 7)),
        (
            "a keepalive from another port",
            Frame::udp(v4(0, None), 40_002, GAME, &v2_packet(Kind::Keepalive, 7, 16)).build(),
        ),
    ] {
        assert_eq!(loaded.test_run(&frame).unwrap(), XDP_DROP, "{name}");
    }
    assert_eq!(dropped("no_session"), 5);
    assert!(sessions.remove("10.0.0.1:40000".parse().unwrap()).unwrap());
    assert!(!sessions.remove("10.0.0.1:40000".parse().unwrap()).unwrap());
    assert_eq!(loaded.test_run(&data(v4(0, None), 40_000, 7)).unwrap(), XDP_DROP, "session removed");
    // Handshake packets come from sources without a session, at their one size.
    let request =
        Frame::udp(v6(false, None), 40_009, GAME, &v2_packet(Kind::Request, 0, v2::REQUEST_PAYLOAD_LEN))
            .build();
    assert_eq!(loaded.test_run(&request).unwrap(), XDP_PASS);
    let short = Frame::udp(v4(0, None), 40_009, GAME, &v2_packet(Kind::Request, 0, 100)).build();
    assert_eq!(loaded.test_run(&short).unwrap(), XDP_DROP);
    let (counters, _) = loaded.counters().unwrap();
    assert_eq!((counters.no_socket, dropped("no_session"), dropped("bad_length")), (2, 6, 1), "{counters}");
    assert_eq!(counters.unaccounted(), 0, "counters balance: {counters}");
}

#[test]
fn handshake_floods_are_held_to_the_per_source_and_the_global_budget() {
    support::require_root();
    support::pin_to_current_cpu();
    let loaded = Loaded::load(Program::Tai, 1).unwrap();
    loaded.set_ports(&[GAME]).unwrap();
    let request = |last: u8| {
        let ip = Ip::V4 { src: [192, 0, 2, last], dst: [10, 0, 0, 2], options: 0, fragment: None };
        Frame::udp(ip, 40_000, GAME, &v2_packet(Kind::Request, 0, v2::REQUEST_PAYLOAD_LEN)).build()
    };
    let per_source = RateConfig { rate: 10, burst: 3 };
    loaded.set_handshake_limit(&HandshakeLimit { per_source, global: RateConfig::DISABLED }).unwrap();
    let (a, elapsed) = burst(&loaded, &request(1), 20);
    assert!((3..=3 + refilled_at_10_pps(elapsed)).contains(&a), "source A: {a} of 20 in {elapsed:?}");
    let (b, elapsed) = burst(&loaded, &request(2), 4);
    assert!(
        (3..=3 + refilled_at_10_pps(elapsed)).contains(&b),
        "source B keeps its budget: {b} in {elapsed:?}"
    );
    let limited = loaded.counters().unwrap().0.dropped["handshake_limited"];
    assert_eq!(limited, 24 - a - b);

    // Global only: many sources together get one burst.
    let global = RateConfig { rate: 10, burst: 4 };
    loaded.set_handshake_limit(&HandshakeLimit { per_source: RateConfig::DISABLED, global }).unwrap();
    let start = Instant::now();
    let admitted: u64 = (10..30).map(|s| burst(&loaded, &request(s), 1).0).sum();
    let extra = refilled_at_10_pps(start.elapsed());
    assert!(admitted <= 4 + extra, "{admitted} of 20 sources admitted past a global burst of 4");
    // Data packets and v1 packets are not handshakes: no budget applies to them.
    let (counters, _) = loaded.counters().unwrap();
    assert_eq!(counters.dropped["handshake_limited"], limited + 20 - admitted, "{counters}");
    assert_eq!(counters.unaccounted(), 0, "counters balance: {counters}");
}
