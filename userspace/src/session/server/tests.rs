//! The handshake and the session table, driven as an attacker would: forged, replayed,
//! spoofed, expired and tampered packets, and floods of invented identities.

use std::net::SocketAddr;

use super::*;
use crate::session::{
    client::{Client, Event, State},
    token::{self, TokenParams, parse},
};

const PROTOCOL: u64 = 0x7469_636b_6761_7465;
const NOW_S: u64 = 1_800_000_000;
const NOW_MS: u64 = NOW_S * 1000;
const SEC: u64 = 1_000_000_000;

fn server_addr() -> SocketAddr {
    "10.77.0.2:7777".parse().unwrap()
}

fn player_addr(n: u16) -> SocketAddr {
    SocketAddr::new("10.77.0.1".parse().unwrap(), 40_000 + n)
}

fn backend_key() -> Key {
    Key::from_bytes([0x42; 32])
}

fn server(max_sessions: usize) -> Server {
    Server::with_run_key(
        ServerConfig::new(PROTOCOL, backend_key(), max_sessions),
        Key::from_bytes([9; 32]),
        1000,
    )
}

fn token_for(player: u64, tweak: impl FnOnce(&mut TokenParams)) -> Vec<u8> {
    let mut params = TokenParams {
        protocol_id: PROTOCOL,
        create_ts: NOW_S - 1,
        expire_ts: NOW_S + 30,
        timeout_s: 5,
        match_id: 3,
        player_id: player,
        user_data: format!("player {player}").into_bytes(),
        addresses: vec![server_addr()],
        c2s_key: Key::from_bytes([player as u8; 32]),
        s2c_key: Key::from_bytes([!(player as u8); 32]),
    };
    tweak(&mut params);
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&player.to_be_bytes());
    token::mint(&backend_key(), &params, nonce).unwrap().to_vec()
}

/// Runs the whole handshake for `player` from `addr`; returns the connected client.
fn connect(s: &mut Server, player: u64, addr: SocketAddr) -> (Client, Accepted) {
    let mut c = Client::new(&parse(&token_for(player, |_| {})).unwrap());
    let challenge = s.on_request(addr, server_addr(), &c.handshake_packet().unwrap(), NOW_MS).unwrap();
    assert_eq!(c.receive(&challenge.bytes), Event::Challenged);
    let accepted = s.on_response(addr, &c.handshake_packet().unwrap(), NOW_MS, SEC).unwrap();
    assert!(
        matches!(c.receive(&accepted.reply.bytes), Event::Connected(id) if id == accepted.joined.session)
    );
    (c, accepted)
}

fn input(c: &mut Client, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    assert!(c.seal(Kind::Input, body, &mut out));
    out
}

#[test]
fn a_player_with_a_valid_token_connects_and_its_inputs_open_as_its_own() {
    let mut s = server(8);
    let (mut c, accepted) = connect(&mut s, 42, player_addr(1));
    assert_eq!(
        accepted.joined,
        Joined {
            session: accepted.joined.session,
            player_id: 42,
            match_id: 3,
            user_data: b"player 42".to_vec(),
            addr: player_addr(1)
        }
    );
    assert_eq!(
        (accepted.replaced, s.len(), s.session_of(player_addr(1))),
        (None, 1, Some(accepted.joined.session))
    );
    let packet = input(&mut c, b"inputs");
    let mut plain = [0u8; 1500];
    match s.open_data(player_addr(1), &packet, 2 * SEC, &mut plain).unwrap() {
        Data::Input { player_id, match_id, plain, .. } => {
            assert_eq!((player_id, match_id, plain), (42, 3, &b"inputs"[..]))
        }
        other => panic!("{other:?}"),
    }
    // The same packet again is a replay.
    assert_eq!(s.open_data(player_addr(1), &packet, 2 * SEC, &mut plain), Err(DataDrop::Replayed));
}

#[test]
fn forged_packets_for_a_connected_player_never_open_and_leave_its_stream_untouched() {
    let mut s = server(8);
    let (mut c, accepted) = connect(&mut s, 42, player_addr(1));
    let id = accepted.joined.session;
    let mut plain = [0u8; 1500];
    // From another source, claiming the player's session and a far-ahead seq.
    let mut forged = Vec::new();
    v2::seal(&Key::from_bytes([0xEE; 32]).cipher(), Kind::Input, id, 50_000, b"evil", &mut forged);
    assert_eq!(s.open_data(player_addr(2), &forged, SEC, &mut plain), Err(DataDrop::WrongAddress));
    // Spoofing the player's own address does not help without its key.
    assert_eq!(s.open_data(player_addr(1), &forged, SEC, &mut plain), Err(DataDrop::Unauthentic));
    // A real packet with one flipped bit.
    let mut flipped = input(&mut c, b"real");
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert_eq!(s.open_data(player_addr(1), &flipped, SEC, &mut plain), Err(DataDrop::Unauthentic));
    // The player's next 120 packets all arrive: the forgeries moved nothing.
    for n in 0..120 {
        let p = input(&mut c, format!("input {n}").as_bytes());
        assert!(
            matches!(s.open_data(player_addr(1), &p, SEC, &mut plain), Ok(Data::Input { player_id: 42, .. })),
            "{n}"
        );
    }
}

#[test]
fn invented_identities_and_request_floods_do_not_keep_a_real_player_out() {
    let mut s = server(4);
    let mut plain = [0u8; 1500];
    let mut rng = fastrand::Rng::with_seed(5);
    for n in 0..5_000u32 {
        let mut p = Vec::new();
        v2::seal(
            &Key::from_bytes([n as u8; 32]).cipher(),
            Kind::Input,
            rng.u32(..),
            rng.u64(..),
            b"x",
            &mut p,
        );
        let src = SocketAddr::new("10.9.0.1".parse().unwrap(), (n % 60_000) as u16);
        assert_eq!(s.open_data(src, &p, SEC, &mut plain), Err(DataDrop::UnknownSession));
    }
    // Garbage connection requests of the right size: none opens.
    for n in 0..2_000u32 {
        let mut req = [0u8; v2::REQUEST_LEN];
        rng.fill(&mut req);
        req[..v2::HEADER_LEN].copy_from_slice(&v2::encode_header(&Header {
            kind: Kind::Request,
            payload_len: v2::REQUEST_PAYLOAD_LEN as u16,
            session: 0,
            seq: 0,
        }));
        req[v2::HEADER_LEN..v2::HEADER_LEN + 16].copy_from_slice(&VERSION_INFO);
        req[v2::HEADER_LEN + 16..v2::HEADER_LEN + 24].copy_from_slice(&PROTOCOL.to_be_bytes());
        req[v2::HEADER_LEN + 24..v2::HEADER_LEN + 32].copy_from_slice(&(NOW_S + 10).to_be_bytes());
        let src = SocketAddr::new("10.9.0.2".parse().unwrap(), n as u16);
        assert_eq!(s.on_request(src, server_addr(), &req, NOW_MS), Err(Refused::TokenInvalid));
    }
    assert!(s.is_empty());
    connect(&mut s, 7, player_addr(1));
    assert_eq!(s.len(), 1);
}

#[test]
fn bad_tokens_are_refused_each_for_its_reason() {
    let s = server(8);
    let request = |t: &[u8]| Client::new(&parse(t).unwrap()).handshake_packet().unwrap();
    let src = player_addr(1);
    let expired = token_for(1, |p| {
        p.create_ts = NOW_S - 60;
        p.expire_ts = NOW_S;
    });
    assert_eq!(s.on_request(src, server_addr(), &request(&expired), NOW_MS), Err(Refused::TokenExpired));
    let other_game = token_for(2, |p| p.protocol_id = 1);
    assert_eq!(s.on_request(src, server_addr(), &request(&other_game), NOW_MS), Err(Refused::TokenProtocol));
    let other_server = token_for(3, |p| p.addresses = vec!["10.77.0.3:7777".parse().unwrap()]);
    assert_eq!(s.on_request(src, server_addr(), &request(&other_server), NOW_MS), Err(Refused::TokenServer));
    let mut tampered = request(&token_for(4, |_| {}));
    tampered[v2::HEADER_LEN + 44 + 100] ^= 0x20;
    assert_eq!(s.on_request(src, server_addr(), &tampered, NOW_MS), Err(Refused::TokenInvalid));
    // A tampered expiry: the seal binds it.
    let mut extended = request(&token_for(5, |_| {}));
    extended[v2::HEADER_LEN + 31] ^= 0x01;
    assert_eq!(s.on_request(src, server_addr(), &extended, NOW_MS), Err(Refused::TokenInvalid));
    let mut version = request(&token_for(6, |_| {}));
    version[v2::HEADER_LEN + 15] = b'1';
    assert_eq!(s.on_request(src, server_addr(), &version, NOW_MS), Err(Refused::TokenVersion));
    // Minted with another key, or the sealed part changed.
    let params = TokenParams {
        protocol_id: PROTOCOL,
        create_ts: NOW_S,
        expire_ts: NOW_S + 30,
        timeout_s: 5,
        match_id: 3,
        player_id: 7,
        user_data: vec![],
        addresses: vec![server_addr()],
        c2s_key: Key::from_bytes([1; 32]),
        s2c_key: Key::from_bytes([2; 32]),
    };
    let other_key = token::mint(&Key::from_bytes([0x43; 32]), &params, [3; 12]).unwrap();
    assert_eq!(s.on_request(src, server_addr(), &request(&other_key), NOW_MS), Err(Refused::TokenInvalid));
    let mut forged = request(&token_for(7, |_| {}));
    forged[v2::HEADER_LEN + 44] ^= 0xFF;
    assert_eq!(s.on_request(src, server_addr(), &forged, NOW_MS), Err(Refused::TokenInvalid));
    assert!(s.is_empty());
}

#[test]
fn a_token_replayed_from_another_address_or_after_its_session_is_refused() {
    let mut s = server(8);
    let token = token_for(42, |_| {});
    let mut c = Client::new(&parse(&token).unwrap());
    let req = c.handshake_packet().unwrap();
    let challenge = s.on_request(player_addr(1), server_addr(), &req, NOW_MS).unwrap();
    // The same request again from the same address (a retransmission) is answered.
    assert!(s.on_request(player_addr(1), server_addr(), &req, NOW_MS).is_ok());
    // Captured and replayed from elsewhere: refused.
    assert_eq!(s.on_request(player_addr(9), server_addr(), &req, NOW_MS), Err(Refused::TokenReused));
    c.receive(&challenge.bytes);
    let accepted = s.on_response(player_addr(1), &c.handshake_packet().unwrap(), NOW_MS, SEC).unwrap();
    // Once it made a session, not even its own address gets a second one from it.
    s.close(accepted.joined.session, CloseReason::Server);
    assert_eq!(s.on_request(player_addr(1), server_addr(), &req, NOW_MS), Err(Refused::TokenReused));
}

#[test]
fn a_spoofed_source_never_gets_a_session() {
    let mut s = server(8);
    // The attacker holds a valid token but sends the request with the victim's address as
    // source: the challenge goes to the victim, who cannot open it (no s2c key) and ignores it.
    let token = token_for(42, |_| {});
    let mut attacker = Client::new(&parse(&token).unwrap());
    let victim = player_addr(1);
    let challenge =
        s.on_request(victim, server_addr(), &attacker.handshake_packet().unwrap(), NOW_MS).unwrap();
    assert_eq!(challenge.to, victim);
    // Replies are never larger than the request that caused them.
    assert!(challenge.bytes.len() <= v2::REQUEST_LEN);
    // Responding from its own address, with a challenge it never saw, does not work: it can only
    // guess the token (invalid), and even the real one answered from elsewhere is refused.
    let mut guessed = attacker.handshake_packet().unwrap();
    guessed.resize(v2::RESPONSE_LEN, 0);
    guessed[..v2::HEADER_LEN].copy_from_slice(&v2::encode_header(&Header {
        kind: Kind::Response,
        payload_len: v2::RESPONSE_PAYLOAD_LEN as u16,
        session: 0,
        seq: 0,
    }));
    assert_eq!(
        s.on_response(player_addr(2), &guessed, NOW_MS, SEC).map(|_| ()).map_err(|e| e.0),
        Err(Refused::ChallengeInvalid)
    );
    attacker.receive(&challenge.bytes);
    let response = attacker.handshake_packet().unwrap();
    assert_eq!(
        s.on_response(player_addr(2), &response, NOW_MS, SEC).map(|_| ()).map_err(|e| e.0),
        Err(Refused::ChallengeAddress)
    );
    assert!(s.is_empty());
}

#[test]
fn late_or_unproven_responses_are_refused() {
    let mut s = server(8);
    let mut c = Client::new(&parse(&token_for(1, |_| {})).unwrap());
    let challenge =
        s.on_request(player_addr(1), server_addr(), &c.handshake_packet().unwrap(), NOW_MS).unwrap();
    c.receive(&challenge.bytes);
    let response = c.handshake_packet().unwrap();
    let late = NOW_MS + CHALLENGE_TIMEOUT_MS + 1;
    assert_eq!(
        s.on_response(player_addr(1), &response, late, SEC).map(|_| ()).map_err(|e| e.0),
        Err(Refused::ChallengeExpired)
    );
    let mut unproven = response.clone();
    let last = unproven.len() - 1;
    unproven[last] ^= 1;
    assert_eq!(
        s.on_response(player_addr(1), &unproven, NOW_MS, SEC).map(|_| ()).map_err(|e| e.0),
        Err(Refused::ResponseUnauthentic)
    );
    assert!(s.on_response(player_addr(1), &response, NOW_MS, SEC).is_ok());
}

#[test]
fn a_full_server_denies_and_the_client_hears_it() {
    let mut s = server(1);
    connect(&mut s, 1, player_addr(1));
    let mut c = Client::new(&parse(&token_for(2, |_| {})).unwrap());
    let challenge =
        s.on_request(player_addr(2), server_addr(), &c.handshake_packet().unwrap(), NOW_MS).unwrap();
    c.receive(&challenge.bytes);
    let response = c.handshake_packet().unwrap();
    let Err((Refused::Full, Some(denied))) = s.on_response(player_addr(2), &response, NOW_MS, SEC) else {
        panic!("not denied");
    };
    assert!(denied.bytes.len() <= response.len());
    assert_eq!(c.receive(&denied.bytes), Event::Denied);
    assert_eq!((c.state(), s.len()), (State::Denied, 1));
}

#[test]
fn keepalives_hold_an_idle_player_and_silence_closes_it() {
    let mut s = server(8);
    let (mut c, accepted) = connect(&mut s, 42, player_addr(1));
    let id = accepted.joined.session;
    let mut plain = [0u8; 64];
    // Idle for 4 s of a 5 s timeout, keepalives both ways once a second.
    for t in 2..=4 {
        let (out, silent) = s.poll(t * SEC);
        assert!(silent.is_empty());
        assert_eq!(out.len(), 1, "one keepalive at {t} s");
        assert_eq!(c.receive(&out[0].bytes), Event::Keepalive);
        let mut ka = Vec::new();
        c.seal(Kind::Keepalive, &[], &mut ka);
        assert_eq!(
            s.open_data(player_addr(1), &ka, t * SEC, &mut plain),
            Ok(Data::Keepalive { session: id })
        );
    }
    assert_eq!(s.len(), 1);
    // Then silence: named after the timeout, no keepalive for it, closed only once still silent.
    let (out, silent) = s.poll(10 * SEC);
    assert_eq!((out.len(), &silent[..]), (0, &[id][..]));
    let mut ka = Vec::new();
    c.seal(Kind::Keepalive, &[], &mut ka);
    assert!(s.open_data(player_addr(1), &ka, 10 * SEC, &mut plain).is_ok());
    assert_eq!(s.expire(&silent, 10 * SEC), vec![], "a packet came since the poll");
    let (_, silent) = s.poll(20 * SEC);
    let closed = s.expire(&silent, 20 * SEC);
    assert_eq!(
        closed,
        vec![Closed {
            session: id,
            player_id: 42,
            match_id: 3,
            addr: player_addr(1),
            reason: CloseReason::Timeout
        }]
    );
    assert_eq!((s.len(), s.session_of(player_addr(1))), (0, None));
}

#[test]
fn disconnects_from_either_side_end_the_session() {
    let mut s = server(8);
    let (mut c, accepted) = connect(&mut s, 42, player_addr(1));
    let mut plain = [0u8; 64];
    let bye = c.disconnect(3);
    assert_eq!(bye.len(), 3);
    let id = accepted.joined.session;
    assert_eq!(s.open_data(player_addr(1), &bye[0], SEC, &mut plain), Ok(Data::Disconnect { session: id }));
    // A second copy opened before the first closed it asks again; the close happens once.
    assert_eq!(s.open_data(player_addr(1), &bye[1], SEC, &mut plain), Ok(Data::Disconnect { session: id }));
    assert!(matches!(
        s.close(id, CloseReason::Disconnect),
        Some(Closed { reason: CloseReason::Disconnect, .. })
    ));
    assert_eq!(s.close(id, CloseReason::Disconnect), None);
    assert_eq!(s.open_data(player_addr(1), &bye[2], SEC, &mut plain), Err(DataDrop::UnknownSession));

    let (mut c, accepted) = connect(&mut s, 43, player_addr(2));
    let (packets, closed) = s.disconnect(accepted.joined.session).unwrap();
    assert_eq!((packets.len(), closed.reason), (DISCONNECT_REDUNDANCY, CloseReason::Server));
    assert_eq!(c.receive(&packets[0].bytes), Event::Disconnected);
    assert!(s.is_empty());
}

#[test]
fn the_same_player_connecting_again_replaces_its_session() {
    let mut s = server(8);
    let (_, first) = connect(&mut s, 42, player_addr(1));
    let mut again = Client::new(&parse(&token_for(42, |p| p.create_ts = NOW_S)).unwrap());
    let challenge =
        s.on_request(player_addr(2), server_addr(), &again.handshake_packet().unwrap(), NOW_MS).unwrap();
    again.receive(&challenge.bytes);
    let second = s.on_response(player_addr(2), &again.handshake_packet().unwrap(), NOW_MS, SEC).unwrap();
    assert_eq!(
        second.replaced.map(|c| (c.session, c.reason)),
        Some((first.joined.session, CloseReason::Replaced))
    );
    assert_eq!((s.len(), s.session_of(player_addr(1))), (1, None));
}

/// A client written from `docs/protocol.md` alone (`scripts/reference/tickgate_v2.py`) connects to
/// this server, sends a sealed input and opens the server's keepalive.
#[test]
fn the_python_reference_client_connects_and_plays() {
    use crate::session::token::tests::python_reference;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let unhex = |s: &str| -> Vec<u8> {
        (0..s.trim().len()).step_by(2).map(|i| u8::from_str_radix(&s.trim()[i..i + 2], 16).unwrap()).collect()
    };
    let mut s = server(8);
    let token = token_for(42, |_| {});
    let request = unhex(&python_reference(&["request", &hex(&token)]));
    assert_eq!(request, Client::new(&parse(&token).unwrap()).handshake_packet().unwrap());
    let challenge = s.on_request(player_addr(1), server_addr(), &request, NOW_MS).unwrap();
    let response = unhex(&python_reference(&["respond", &hex(&token), &hex(&challenge.bytes)]));
    let accepted = s.on_response(player_addr(1), &response, NOW_MS, SEC).unwrap();
    let id = accepted.joined.session;
    let c2s = hex(&[42u8; 32]);
    let s2c = hex(&[!42u8; 32]);
    let input = unhex(&python_reference(&["seal", &c2s, "1", &id.to_string(), "1", &hex(b"frame")]));
    let mut plain = [0u8; 64];
    assert_eq!(
        s.open_data(player_addr(1), &input, SEC, &mut plain),
        Ok(Data::Input { session: id, player_id: 42, match_id: 3, plain: &b"frame"[..] })
    );
    let opened = python_reference(&["unseal", &s2c, &hex(&accepted.reply.bytes)]);
    assert_eq!(opened.trim(), format!("6 {id} 1"), "the connected keepalive, as Python reads it");
    // And the doc's worked examples, sealed by Python, are the bytes Rust seals.
    let doc_input = crate::wire::v2::examples::input_packet();
    let mut frame = [0u8; 64];
    let h = v2::open_into(&doc_input, &Key::from_bytes([0x11; 32]).cipher(), &mut frame).unwrap();
    let plain = &frame[..usize::from(h.payload_len) - TAG_LEN];
    let sealed = unhex(&python_reference(&["seal", &hex(&[0x11; 32]), "1", "3", "9", &hex(plain)]));
    assert_eq!(sealed, doc_input);
    let keepalive = unhex(&python_reference(&["seal", &hex(&[0x22; 32]), "6", "3", "2", ""]));
    assert_eq!(keepalive, crate::wire::v2::examples::keepalive_packet());
}

/// The frame packet example, read by the Python client written from the doc: the fields it
/// finds are the ones the Rust decoder finds.
#[test]
fn the_python_reference_reads_the_frame_example() {
    use crate::session::token::tests::python_reference;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let (body, sealed) = crate::wire::v2::examples::frame_packet();
    let decoded = crate::wire::frame_packet::decode(&body).unwrap();
    let record = &decoded.records[0];
    let input = &record.inputs[0];
    let want = format!(
        "tick_hz=60 ack=6 flags=0 count=1\ntick=2 start=33333334 hash={} last=0 inputs=42/5/1001/0/1/40000000/{} absent=43 messages={}\n",
        hex(&record.hash),
        hex(&input.payload),
        hex(b"ok"),
    );
    assert_eq!(python_reference(&["frames", &hex(&[0x22; 32]), &hex(&sealed)]), want);
}

/// The session table's hash: the ids the server hands out (consecutive, from 1) land in distinct
/// slots of a power-of-two table and spread over the tags hashbrown keeps in the top seven bits,
/// so lookups stay one probe whatever id a peer forges.
#[test]
fn session_ids_spread_over_the_table() {
    let hash = |id: u32| {
        let mut h = SessionIds::default();
        h.write_u32(id);
        h.finish()
    };
    for bits in [4u32, 10, 16] {
        let slots = 1u64 << bits;
        for first in [1u32, 70_000, u32::MAX - slots as u32] {
            let used: std::collections::HashSet<u64> =
                (0..slots as u32).map(|i| hash(first.wrapping_add(i)) & (slots - 1)).collect();
            assert_eq!(used.len() as u64, slots, "{slots} consecutive ids from {first} collide");
        }
    }
    let mut tags = [0u32; 128];
    for id in 1..=65_536u32 {
        tags[(hash(id) >> 57) as usize] += 1;
    }
    // 512 each if even; SipHash-like spread keeps every tag within a few percent of that.
    assert!(tags.iter().all(|&n| (448..=576).contains(&n)), "{tags:?}");
}

// Workers share the server as the gate holds it, each through its own reader slot of a
// `ReadMostly`: everything a packet does on its own runs on every worker at once. An attacker who gets one packet, or one token,
// to two queues at the same instant must gain nothing from the race.

#[test]
fn a_packet_read_by_two_workers_at_once_opens_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let mut s = server(8);
    let (mut c, accepted) = connect(&mut s, 42, player_addr(1));
    let id = accepted.joined.session;
    let packets: Vec<Vec<u8>> = (0..20_000u32).map(|n| input(&mut c, &n.to_be_bytes())).collect();
    let s = crate::session::shared::ReadMostly::new(s, 2);
    let (opened, replayed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|scope| {
        for slot in 0..2 {
            let (s, packets, opened, replayed) = (&s, &packets, &opened, &replayed);
            scope.spawn(move || {
                let mut plain = [0u8; 64];
                for p in packets {
                    match s.read(slot).open_data(player_addr(1), p, SEC, &mut plain) {
                        Ok(Data::Input { session, .. }) if session == id => {
                            opened.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(DataDrop::Replayed) => replayed.fetch_add(1, Ordering::Relaxed),
                        other => panic!("{other:?}"),
                    };
                }
            });
        }
    });
    assert_eq!(
        (opened.into_inner(), replayed.into_inner()),
        (20_000, 20_000),
        "each packet opens exactly once"
    );
}

#[test]
fn a_token_raced_from_two_addresses_gets_one_challenge() {
    use std::sync::Barrier;
    // Room for every token (the cache holds four per session).
    let s = crate::session::shared::ReadMostly::new(server(64), 2);
    for player in 100..300u64 {
        let request = Client::new(&parse(&token_for(player, |_| {})).unwrap()).handshake_packet().unwrap();
        let barrier = Barrier::new(2);
        let answered: Vec<Result<Outgoing, Refused>> = std::thread::scope(|scope| {
            let racers: Vec<_> = [player_addr(1), player_addr(2)]
                .into_iter()
                .enumerate()
                .map(|(slot, from)| {
                    let (s, request, barrier) = (&s, &request, &barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        s.read(slot).on_request(from, server_addr(), request, NOW_MS)
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let refused: Vec<_> = answered.iter().filter_map(|a| a.as_ref().err()).collect();
        assert_eq!(refused, vec![&Refused::TokenReused], "player {player}: {answered:?}");
    }
}

#[test]
fn a_response_checked_by_two_workers_makes_one_session() {
    let mut s = server(8);
    let mut c = Client::new(&parse(&token_for(42, |_| {})).unwrap());
    let challenge =
        s.on_request(player_addr(1), server_addr(), &c.handshake_packet().unwrap(), NOW_MS).unwrap();
    c.receive(&challenge.bytes);
    let response = c.handshake_packet().unwrap();
    // Both checked under the shared lock before either is admitted.
    let first = s.check_response(player_addr(1), &response, NOW_MS).unwrap();
    let second = s.check_response(player_addr(1), &response, NOW_MS).unwrap();
    let a = s.admit(first, SEC).unwrap();
    let b = s.admit(second, SEC).unwrap();
    assert_eq!((a.joined.session, b.replaced, s.len()), (b.joined.session, None, 1));
    assert!(matches!(c.receive(&a.reply.bytes), Event::Connected(id) if id == a.joined.session));
    // The second reply is a keepalive of the same session, which the connected client takes.
    assert_eq!(c.receive(&b.reply.bytes), Event::Keepalive);
}

#[test]
fn catch_up_requests_are_served_once_per_interval_and_must_name_a_tick() {
    let mut s = server(8);
    let (mut c, accepted) = connect(&mut s, 42, player_addr(1));
    let id = accepted.joined.session;
    let mut plain = [0u8; 64];
    let ask = |c: &mut Client, body: &[u8]| {
        let mut out = Vec::new();
        assert!(c.seal(Kind::CatchUp, body, &mut out));
        out
    };
    let first = ask(&mut c, &7u64.to_be_bytes());
    assert_eq!(
        s.open_data(player_addr(1), &first, SEC, &mut plain),
        Ok(Data::CatchUp { session: id, player_id: 42, match_id: 3, from_tick: 7 })
    );
    // A flood of requests: refused until the interval has passed, each counted.
    let soon = ask(&mut c, &8u64.to_be_bytes());
    let at = SEC + CATCH_UP_INTERVAL_NS - 1;
    assert_eq!(s.open_data(player_addr(1), &soon, at, &mut plain), Err(DataDrop::CatchUpLimited));
    // The refused one still used its sequence number: sent again, it is a replay.
    assert_eq!(s.open_data(player_addr(1), &soon, at, &mut plain), Err(DataDrop::Replayed));
    // A body that is not one tick is malformed, and does not use up the interval.
    let short = ask(&mut c, &[1, 2, 3]);
    let later = SEC + CATCH_UP_INTERVAL_NS;
    assert_eq!(s.open_data(player_addr(1), &short, later, &mut plain), Err(DataDrop::Malformed));
    let next = ask(&mut c, &9u64.to_be_bytes());
    assert!(matches!(
        s.open_data(player_addr(1), &next, later, &mut plain),
        Ok(Data::CatchUp { from_tick: 9, .. })
    ));
}
