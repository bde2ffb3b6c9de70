//! Protocol v2 on the veth lab, tried as an attacker would: a player connects with a connect
//! token and plays while forged, replayed, spoofed and invented packets and a flood of garbage
//! connection requests arrive beside it. Needs root; CI runs it as root.

mod support;

use std::{
    collections::BTreeMap,
    net::{SocketAddr, UdpSocket},
    time::{Duration, Instant},
};

use base64::Engine as _;
use prost::Message as _;
use support::{
    Lab, RX_IP4, RX_IP6, in_netns, run_dir,
    v2::{PROTOCOL, Seen, handshake, inputs, mint, now_s, start_v2},
};
use tickgate::{
    session::{
        client::{Client, Event, State},
        token,
    },
    wire::{
        crypto::Key,
        v2::{self, Kind},
    },
};
use tickgate_proto::InputFrame;

const PLAYER: u64 = 42;

fn token(key: &Key, server: SocketAddr, player: u64) -> Vec<u8> {
    token_with_timeout(key, server, player, 10)
}

/// A token for `player` at `server` whose session times out after `timeout_s` of silence.
fn token_with_timeout(key: &Key, server: SocketAddr, player: u64, timeout_s: u32) -> Vec<u8> {
    mint(key, server, player, 5, timeout_s)
}

/// A breath every 16 packets of an attack burst, so that the lab's veth (a 256-packet queue)
/// carries every packet and the counts can be exact.
fn pace(n: u64) {
    if n % 16 == 15 {
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[test]
fn a_player_with_a_token_plays_while_forgeries_replays_and_floods_go_nowhere() {
    let lab = Lab::new(1);
    let key = Key::from_bytes([0x5e; 32]);
    let frames_path = run_dir(&lab).join("frames.jsonl");
    let run = start_v2(&lab, &key, &["--duration", "6", "--frames-out", frames_path.to_str().unwrap()]);
    let server: SocketAddr = (RX_IP4, 7777).into();
    let seen = in_netns(&lab.tx_ns, || {
        let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let public = token::parse(&token(&key, server, PLAYER)).unwrap();
        let mut client = Client::new(&public);
        let mut seen = Seen::default();
        handshake(&sock, server, &mut client, &mut seen);
        let mut packet = Vec::new();
        let mut sent_real = Vec::new();
        for seq in 0..100 {
            assert!(client.seal(Kind::Input, &inputs(seq), &mut packet));
            sock.send_to(&packet, server).unwrap();
            sent_real.push(packet.clone());
            std::thread::sleep(Duration::from_micros(300));
        }

        // Forged: another source port, the player's session id, a key the attacker made up.
        let other = UdpSocket::bind("0.0.0.0:0").unwrap();
        let wrong = Key::from_bytes([1; 32]).cipher();
        for seq in 0..200u64 {
            v2::seal(&wrong, Kind::Input, seen.session, 50_000 + seq, &inputs(50_000 + seq), &mut packet);
            other.send_to(&packet, server).unwrap();
            pace(seq);
        }
        // The same forgery from the player's own address and port: XDP lets it through, the
        // AEAD does not.
        for seq in 0..50u64 {
            v2::seal(&wrong, Kind::Input, seen.session, 60_000 + seq, &inputs(60_000 + seq), &mut packet);
            sock.send_to(&packet, server).unwrap();
            pace(seq);
        }
        // Replays of real packets.
        for (n, p) in sent_real.iter().take(50).enumerate() {
            sock.send_to(p, server).unwrap();
            pace(n as u64);
        }
        // 5 000 invented identities from other ports.
        let mut rng = fastrand::Rng::with_seed(3);
        for n in 0..5_000u32 {
            v2::seal(&wrong, Kind::Input, rng.u32(..), u64::from(n), b"x", &mut packet);
            other.send_to(&packet, server).unwrap();
            pace(u64::from(n));
        }
        // A second player joins over IPv6 (its challenge and keepalive are IPv6 frames that
        // tickgate wrote, checksums included, or this client's kernel would drop them).
        let second_sock = UdpSocket::bind("[::]:0").unwrap();
        second_sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let server6: SocketAddr = (RX_IP6, 7777).into();
        let mut second = Client::new(&token::parse(&token(&key, server6, PLAYER + 1)).unwrap());
        let mut second_seen = Seen::default();
        handshake(&second_sock, server6, &mut second, &mut second_seen);
        assert!(second.seal(Kind::Input, &inputs(0), &mut packet));
        second_sock.send_to(&packet, server6).unwrap();

        // Garbage connection requests of the right size, from another source address than
        // player 1's (over IPv6, after player 2 connected from it), so that the per-source
        // handshake budget they exhaust is not a connecting player's.
        let flooder = UdpSocket::bind("[::]:0").unwrap();
        for n in 0..300 {
            let mut req = client_request_shaped(&mut rng);
            req[v2::HEADER_LEN + 50] ^= 0xff;
            flooder.send_to(&req, (RX_IP6, 7777)).unwrap();
            pace(n);
        }
        // The player goes on.
        for seq in 100..200 {
            assert!(client.seal(Kind::Input, &inputs(seq), &mut packet));
            sock.send_to(&packet, server).unwrap();
            std::thread::sleep(Duration::from_micros(300));
        }
        // Goodbye, then a packet after it: the XDP entry is gone.
        std::thread::sleep(Duration::from_millis(50));
        for p in client.disconnect(3) {
            sock.send_to(&p, server).unwrap();
        }
        std::thread::sleep(Duration::from_millis(300));
        let late = sent_real.last().unwrap();
        sock.send_to(late, server).unwrap();
        assert_eq!(client.state(), State::Disconnected);
        seen
    });
    assert!(
        seen.largest_reply <= seen.request_len,
        "a reply ({}) larger than its request ({})",
        seen.largest_reply,
        seen.request_len
    );

    let s = run.finish();
    let sessions = &s["sessions"];
    assert_eq!(s["replies"], "af_xdp-tx");
    assert_eq!(sessions["joined"], 2, "{sessions}");
    assert_eq!(sessions["closed"]["disconnect"], 1, "{sessions}");
    assert_eq!(sessions["dropped"]["unauthentic"], 50, "forged from the player's own address: {sessions}");
    assert_eq!(sessions["dropped"]["replayed"], 50, "{sessions}");
    let refused: u64 = sessions["refused"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    let limited = s["counters"]["dropped"]["handshake_limited"].as_u64().unwrap();
    assert_eq!(refused + limited, 300, "every garbage request refused or shed: {sessions} {}", s["counters"]);
    let no_session = s["counters"]["dropped"]["no_session"].as_u64().unwrap();
    // 200 forged, 5 000 invented, 1 after the goodbye, and the goodbye's 2 extra copies: those die
    // in XDP if the session's entry is already gone, else in the gate as unknown_session. The
    // veth may lose a few of a burst.
    let unknown = sessions["dropped"]["unknown_session"].as_u64().unwrap();
    assert!(unknown <= 2, "{sessions}");
    assert!(
        (5_000..=5_203).contains(&(no_session + unknown)),
        "forged, invented and after-disconnect packets die in XDP: {no_session} + {unknown}"
    );
    assert!(
        s["queues"][0]["tx"]["tx_queued"].as_u64().unwrap() >= 4,
        "challenges and keepalives went out: {}",
        s["queues"][0]
    );

    // Every input of the player reached the game exactly once, and nothing forged did; the
    // joins and the goodbye are events in the same frames.
    let mut got: BTreeMap<(u64, u64), u32> = BTreeMap::new();
    let mut events = Vec::new();
    for line in std::fs::read_to_string(&frames_path).unwrap().lines() {
        let frame: serde_json::Value = serde_json::from_str(line).unwrap();
        for input in frame["inputs"].as_array().unwrap() {
            let (client, seq) = (input["client"].as_u64().unwrap(), input["seq"].as_u64().unwrap());
            let payload =
                base64::engine::general_purpose::STANDARD.decode(input["payload"].as_str().unwrap()).unwrap();
            match input["kind"].as_str().unwrap() {
                "command" => {
                    // The payload is the command as the player sent it, as a one-command frame.
                    let frame = InputFrame::decode(payload.as_slice()).unwrap();
                    assert_eq!((frame.first_seq, frame.commands.len()), (seq, 1), "{input}");
                    assert_eq!(u64::from(frame.commands[0].client_frame), seq);
                    *got.entry((client, seq)).or_default() += 1;
                }
                "join" => {
                    assert_eq!(payload, b"lab", "a join carries the token's user data");
                    events.push(("join".to_owned(), client, frame["tick"].as_u64().unwrap()));
                }
                kind => {
                    assert_eq!(payload, b"disconnect", "a leave carries its reason");
                    events.push((kind.to_owned(), client, frame["tick"].as_u64().unwrap()));
                }
            }
        }
    }
    let player: Vec<u64> = got.keys().filter(|(c, _)| *c == PLAYER).map(|(_, s)| *s).collect();
    assert_eq!(player, (0..200).collect::<Vec<_>>(), "the player's inputs, each once");
    assert!(got.values().all(|&n| n == 1));
    assert!(
        got.keys().all(|(c, s)| *c == PLAYER || (*c == PLAYER + 1 && *s == 0)),
        "only real players: {got:?}"
    );
    let kinds: Vec<(&str, u64)> = events.iter().map(|(k, c, _)| (k.as_str(), *c)).collect();
    assert_eq!(kinds, [("join", PLAYER), ("join", PLAYER + 1), ("leave", PLAYER)], "{events:?}");
    assert_eq!(s["queues"][0]["events"], 3);
    assert_eq!(s["unexplained_steered"], 0);
    let q = &s["queues"][0];
    let counted: u64 = ["decoded", "dropped_packets"]
        .iter()
        .flat_map(|m| q[m].as_object().unwrap().values())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(counted, q["received"].as_u64().unwrap(), "every packet a worker read is counted once: {q}");
}

/// A request-sized packet with the right header and version string and random bytes after.
fn client_request_shaped(rng: &mut fastrand::Rng) -> Vec<u8> {
    let mut req = vec![0u8; v2::REQUEST_LEN];
    rng.fill(&mut req);
    req[..v2::HEADER_LEN].copy_from_slice(&v2::encode_header(&v2::Header {
        kind: Kind::Request,
        payload_len: v2::REQUEST_PAYLOAD_LEN as u16,
        session: 0,
        seq: 0,
    }));
    req[v2::HEADER_LEN..v2::HEADER_LEN + 16].copy_from_slice(b"TICKGATE TOKEN 2");
    req[v2::HEADER_LEN + 16..v2::HEADER_LEN + 24].copy_from_slice(&PROTOCOL.to_be_bytes());
    req[v2::HEADER_LEN + 24..v2::HEADER_LEN + 32].copy_from_slice(&(now_s() + 30).to_be_bytes());
    req
}

#[test]
fn keepalives_hold_an_idle_player_and_silence_frees_its_session_and_xdp_entry() {
    let lab = Lab::new(1);
    let key = Key::from_bytes([0x3c; 32]);
    let run = start_v2(&lab, &key, &["--duration", "9"]);
    let server: SocketAddr = (RX_IP4, 7777).into();
    let (keepalives_heard, after_timeout) = in_netns(&lab.tx_ns, || {
        let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        // A 2-second timeout in the token.
        let mut client = Client::new(&token::parse(&token_with_timeout(&key, server, PLAYER, 2)).unwrap());
        handshake(&sock, server, &mut client, &mut Seen::default());
        // Idle for 4 s (twice the timeout) with nothing but keepalives both ways.
        let mut heard = 0;
        let mut buf = [0u8; 256];
        let mut packet = Vec::new();
        let until = Instant::now() + Duration::from_secs(4);
        while Instant::now() < until {
            assert!(client.seal(Kind::Keepalive, &[], &mut packet));
            sock.send_to(&packet, server).unwrap();
            let listen = Instant::now() + Duration::from_millis(500);
            while Instant::now() < listen {
                // Frames of its match count as the server's keepalives: they carry the session.
                if let Ok((n, _)) = sock.recv_from(&mut buf)
                    && matches!(client.receive(&buf[..n]), Event::Keepalive | Event::Frames(_))
                {
                    heard += 1;
                }
            }
        }
        // Still connected: an input goes through.
        assert!(client.seal(Kind::Input, &inputs(0), &mut packet));
        sock.send_to(&packet, server).unwrap();
        // Then silence past the timeout; a packet after it dies in XDP.
        std::thread::sleep(Duration::from_millis(2_600));
        assert!(client.seal(Kind::Input, &inputs(1), &mut packet));
        sock.send_to(&packet, server).unwrap();
        (heard, client.state())
    });
    assert!(keepalives_heard >= 2, "the server kept the idle session alive: {keepalives_heard} keepalives");
    assert!(matches!(after_timeout, State::Connected { .. }), "the client never heard a disconnect");
    let s = run.finish();
    let v = &s["sessions"];
    assert_eq!(
        (v["joined"].as_u64(), v["closed"]["timeout"].as_u64(), v["open"].as_u64()),
        (Some(1), Some(1), Some(0)),
        "{v}"
    );
    assert_eq!(
        s["counters"]["dropped"]["no_session"], 1,
        "the packet after the timeout: {} {v} {}",
        s["counters"], s["queues"][0]
    );
    assert_eq!(s["queues"][0]["delivered"], 1, "the input while connected: {}", s["queues"][0]);
}
