//! Matches and the way back on the veth lab, as root: several matches on two RX queues, every
//! player receiving every frame of its own match through tickgate's AF_XDP TX, with the hash the
//! server computed and never a byte of another match; loss in both directions recovered by
//! redundancy; a player who goes quiet marked absent, not waited for; every frame packet counted.

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{SocketAddr, UdpSocket},
    time::Duration,
};

use support::{
    Lab, RX_IP4, in_netns, run_dir,
    v2::{Seen, handshake, inputs, mint, start_v2},
};
use tickgate::{
    broadcast::SendError,
    frame_queue::{Config, Frame, Late, MatchConfig, chain_hash},
    ingress::{Ingress, IngressConfig},
    input::InputKind,
    session::{
        client::{Client, Event},
        gate::{HandshakeLimit, SessionsConfig},
        server::ServerConfig,
        token,
    },
    steer::{LoadOptions, Mode, Timestamps, rate_limit::RateLimit},
    wire::{crypto::Key, frame_packet, v2::Kind},
    xsk::XskConfig,
};

const MATCHES: u64 = 3;
const PLAYERS: u64 = 2;
const ROUNDS: u64 = 240;
/// The player (of match 1) who stops sending inputs after `QUIET_AFTER` rounds (it keeps its
/// session).
const QUIET: u64 = 201;
const QUIET_AFTER: u64 = 100;
/// The player who loses one input packet in four on the way up (never its last).
const LOSSY_UP: u64 = 100;
/// The player who loses every 3rd frame packet on the way down.
const LOSSY_DOWN: u64 = 301;

/// Player ids: `100 · (match + 1) + n`.
fn player(m: u64, n: u64) -> u64 {
    100 * (m + 1) + n
}

/// One frame as a player received it: hash, inputs as (player, kind, seq), absent players.
type PlayerFrame = (Vec<u8>, Vec<(u32, InputKind, u64)>, Vec<u32>);

/// What one player received, by tick.
#[derive(Debug, Default)]
struct Received {
    frames: BTreeMap<u64, PlayerFrame>,
    chain: Vec<(u64, [u8; 32], Vec<tickgate::input::Input>)>,
    packets: u64,
    ignored: u64,
    newest_ack: u64,
}

/// One frame of `frames.jsonl`: hash, inputs as (player, kind, seq), absent players.
type ServerFrame = (String, Vec<(u32, String, u64)>, Vec<u32>);

#[test]
fn every_player_gets_every_frame_of_its_own_match_and_nothing_of_another() {
    every_player_gets_every_frame(&[]);
}

#[test]
fn paced_workers_serve_sessions_and_frames_the_same() {
    // Handshakes, inputs, keepalives and the frames back, with workers that read their rings
    // at the seal instants and every millisecond instead of for every packet.
    every_player_gets_every_frame(&["--paced"]);
}

#[expect(clippy::unwrap_used, reason = "the body of two tests: a failed step fails the test")]
fn every_player_gets_every_frame(extra: &[&str]) {
    let lab = Lab::new(2);
    let key = Key::from_bytes([0x6a; 32]);
    let frames_path = run_dir(&lab).join("match-frames.jsonl");
    let args = ["--duration", "5", "--tick-hz", "100", "--frames-out", frames_path.to_str().unwrap()];
    let run = start_v2(&lab, &key, &[&args[..], extra].concat());
    let server: SocketAddr = (RX_IP4, 7777).into();
    let received = in_netns(&lab.tx_ns, || {
        let mut players = Vec::new();
        for m in 0..MATCHES {
            for n in 0..PLAYERS {
                let id = player(m, n);
                let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
                sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
                let mut client = Client::new(&token::parse(&mint(&key, server, id, m, 10)).unwrap());
                handshake(&sock, server, &mut client, &mut Seen::default());
                sock.set_nonblocking(true).unwrap();
                players.push((id, m, sock, client, Received::default()));
            }
        }
        let mut packet = Vec::new();
        let mut buf = [0u8; 2048];
        for round in 0..ROUNDS + 40 {
            for (id, _, sock, client, got) in &mut players {
                let sends = round < ROUNDS && !(*id == QUIET && round >= QUIET_AFTER);
                if sends {
                    assert!(client.seal(Kind::Input, &inputs(round), &mut packet));
                    if !(*id == LOSSY_UP && round % 4 == 2) {
                        sock.send_to(&packet, server).unwrap();
                    }
                } else if round % 50 == 0 {
                    assert!(client.seal(Kind::Keepalive, &[], &mut packet));
                    sock.send_to(&packet, server).unwrap();
                }
                while let Ok((len, _)) = sock.recv_from(&mut buf) {
                    let Event::Frames(body) = client.receive(&buf[..len]) else { continue };
                    let body = *body;
                    got.packets += 1;
                    if *id == LOSSY_DOWN && got.packets % 3 == 0 {
                        got.ignored += 1;
                        continue;
                    }
                    got.newest_ack = got.newest_ack.max(body.ack);
                    for r in body.records {
                        let inputs = r.inputs.iter().map(|i| (i.client_id, i.kind, i.seq)).collect();
                        if !got.frames.contains_key(&r.tick) {
                            got.chain.push((r.tick, r.hash, r.inputs.clone()));
                        }
                        got.frames.insert(r.tick, (r.hash.to_vec(), inputs, r.absent));
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        for (_, _, sock, client, _) in &mut players {
            for p in client.disconnect(3) {
                sock.send_to(&p, server).unwrap();
            }
        }
        players.into_iter().map(|(id, m, _, _, got)| (id, m, got)).collect::<Vec<_>>()
    });
    let summary = run.finish();

    // The server's frames, by match and tick.
    let mut server_frames: BTreeMap<u64, BTreeMap<u64, ServerFrame>> = BTreeMap::new();
    for line in std::fs::read_to_string(&frames_path).unwrap().lines() {
        let f: serde_json::Value = serde_json::from_str(line).unwrap();
        let inputs = f["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                let kind = i["kind"].as_str().unwrap().to_owned();
                (i["client"].as_u64().unwrap() as u32, kind, i["seq"].as_u64().unwrap())
            })
            .collect();
        let absent = f["absent"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap() as u32).collect();
        let entry = (f["hash"].as_str().unwrap().to_owned(), inputs, absent);
        let previous = server_frames
            .entry(f["match"].as_u64().unwrap())
            .or_default()
            .insert(f["tick"].as_u64().unwrap(), entry);
        assert!(previous.is_none(), "a tick sealed twice: {line}");
    }
    assert_eq!(server_frames.len(), MATCHES as usize, "one frame stream per match");

    for (id, m, got) in &received {
        let mine = &server_frames[m];
        let members: BTreeSet<u32> = (0..PLAYERS).map(|n| player(*m, n) as u32).collect();
        assert!(got.frames.len() > 100, "player {id} got {} frames", got.frames.len());
        // No gap from the first frame it saw to its newest: redundancy covers the lost packets.
        let (first, last) = (*got.frames.keys().next().unwrap(), *got.frames.keys().last().unwrap());
        assert_eq!(got.frames.len() as u64, last - first + 1, "player {id}: a tick is missing");
        for (tick, (hash, inputs, absent)) in &got.frames {
            let (server_hash, server_inputs, server_absent) = &mine[tick];
            assert_eq!(&tickgate::frame_queue::hex(hash), server_hash, "player {id} tick {tick}");
            assert_eq!(absent, server_absent, "player {id} tick {tick}");
            let ours: Vec<(u32, String, u64)> =
                inputs.iter().map(|(p, k, s)| (*p, k.as_str().to_owned(), *s)).collect();
            assert_eq!(&ours, server_inputs, "player {id} tick {tick}");
            assert!(inputs.iter().all(|(p, _, _)| members.contains(p)), "another match's input: {inputs:?}");
        }
        // The client can check the chain itself wherever it holds consecutive frames.
        let mut chain = got.chain.clone();
        chain.sort_by_key(|(tick, _, _)| *tick);
        for pair in chain.windows(2) {
            let ((t0, h0, _), (t1, h1, inputs)) = (&pair[0], &pair[1]);
            if t1 == &(t0 + 1) {
                assert_eq!(&chain_hash(h0, *t1, inputs), h1, "player {id}: chain broken at tick {t1}");
            }
        }
        // Frames kept coming until the end: the frame holding its last input reached it.
        if *id != QUIET {
            let last_seq = ROUNDS - 1;
            assert!(
                got.frames.values().any(|(_, inputs, _)| inputs.contains(&(
                    *id as u32,
                    InputKind::Command,
                    last_seq
                ))),
                "player {id} never saw the frame with its input {last_seq}"
            );
            assert_eq!(got.newest_ack, ROUNDS, "player {id}: the server acked every input");
        }
    }
    let lossy_down = received.iter().find(|(id, _, _)| *id == LOSSY_DOWN).unwrap();
    assert!(lossy_down.2.ignored > 30, "loss was injected on the way down");

    // The lossy sender's inputs all reached the game once; the quiet player is absent, and its
    // match's frames went on without it.
    let lossy_match = &server_frames[&0];
    let seqs: Vec<u64> = lossy_match
        .values()
        .flat_map(|(_, inputs, _)| inputs.iter())
        .filter(|(p, k, _)| u64::from(*p) == LOSSY_UP && k == "command")
        .map(|(_, _, s)| *s)
        .collect();
    assert_eq!(seqs, (0..ROUNDS).collect::<Vec<_>>(), "every input of the lossy sender, once, in order");
    let quiet_absent =
        server_frames[&1].values().filter(|(_, _, absent)| absent.contains(&(QUIET as u32))).count();
    assert!(quiet_absent > 50, "the quiet player was marked absent in {quiet_absent} frames");

    // Every frame packet sealed went into a TX ring or is counted as dropped, and every match
    // ended when its last player left.
    let sealed = summary["sessions"]["frame_packets"].as_u64().unwrap();
    let queues = summary["queues"].as_array().unwrap();
    let tx = |name: &str| queues.iter().map(|q| q["tx"][name].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sealed, tx("frame_tx_queued") + tx("frame_tx_dropped"), "{summary}");
    assert_eq!(summary["broadcast"]["inbox_full"], 0, "{summary}");
    let frames_total: usize = server_frames.values().map(BTreeMap::len).sum();
    assert_eq!(summary["broadcast"]["frames"].as_u64().unwrap(), frames_total as u64);
    assert_eq!(summary["sequencer"]["matches_ended"], MATCHES, "{}", summary["sequencer"]);
    let got_packets: u64 = received.iter().map(|(_, _, g)| g.packets).sum();
    assert!(got_packets <= tx("frame_tx_queued"), "players cannot get more than was sent");
}

/// What the two clients of the catch-up test saw.
#[derive(Debug, Default)]
struct CatchUpSeen {
    /// Player B's frames by tick (hash, messages).
    b_frames: BTreeMap<u64, ([u8; 32], Vec<Vec<u8>>)>,
    /// Player A's frames before it crashed, by tick (hash, messages).
    a_before: BTreeMap<u64, ([u8; 32], Vec<Vec<u8>>)>,
    /// Player A's frames after it reconnected, by tick (hash, messages).
    a_frames: BTreeMap<u64, ([u8; 32], Vec<Vec<u8>>)>,
    /// The tick A asked to catch up from, the ticks of the answer in the order they came, and
    /// its flags.
    asked_from: u64,
    caught_up: Vec<u64>,
    caught_up_flags: u8,
    /// Flags and first tick of the answer to the catch-up from tick 0.
    too_old: Option<(u8, Option<u64>)>,
    /// Messages B received on its own.
    b_direct: Vec<Vec<u8>>,
    /// Whether each heard the server end its session.
    ended: (bool, bool),
}

/// Records the frames and messages one client receives on `sock` (non-blocking).
fn drain(
    sock: &UdpSocket,
    client: &mut Client,
    frames: &mut BTreeMap<u64, ([u8; 32], Vec<Vec<u8>>)>,
) -> Vec<Event> {
    let mut buf = [0u8; 2048];
    let mut other = Vec::new();
    while let Ok((len, _)) = sock.recv_from(&mut buf) {
        match client.receive(&buf[..len]) {
            Event::Frames(body) if body.flags & frame_packet::FLAG_CATCH_UP == 0 => {
                for r in body.records {
                    frames.insert(r.tick, (r.hash, r.messages));
                }
            }
            Event::None => {}
            event => other.push(event),
        }
    }
    other
}

#[test]
fn a_reconnecting_player_catches_up_and_the_game_speaks_to_and_ends_its_match() {
    const MATCH: u64 = 1;
    const EMPTY: u64 = 2;
    const A: u64 = 11;
    const B: u64 = 12;
    let lab = Lab::new(1);
    let key = Key::from_bytes([0x7b; 32]);
    let handshakes = RateLimit::new(64, 64).unwrap();
    let config = IngressConfig {
        load: LoadOptions {
            ifname: lab.rx_if.clone(),
            ports: vec![7777],
            mode: Mode::Native,
            timestamps: Timestamps::Xdp,
            force: false,
            rate_limit: None,
            insecure_v1: false,
        },
        queues: vec![0],
        cores: vec![None],
        wake: tickgate::worker::Wake::Packets,
        xsk: XskConfig::default(),
        handoff_capacity: 4096,
        frames: Config { tick_hz: 100, ..Config::default() },
        sessions: Some(SessionsConfig {
            server: ServerConfig::new(support::v2::PROTOCOL, key.clone(), 16),
            handshake_limit: HandshakeLimit {
                per_source: RateLimit::config(Some(handshakes)),
                global: RateLimit::config(Some(handshakes)),
            },
        }),
        frame_redundancy: 2,
        // 32 frames: 320 ms at 100 Hz, so that tick 0 is soon too old.
        frame_history: 32,
        broadcast: true,
        slack: tickgate::worker::SlackRule::default(),
        prove_watermarks: true,
    };
    let server: SocketAddr = (RX_IP4, 7777).into();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (played_tx, played_rx) = std::sync::mpsc::channel();
    let (lab_ref, config_ref) = (&lab, &config);
    let (game_frames, report, seen) = std::thread::scope(|scope| {
        let game = scope.spawn(move || {
            tickgate_testkit::lab::enter(&lab_ref.rx_ns).unwrap();
            let mut ingress = Ingress::start(config_ref, ()).unwrap();
            // A match of its own, started by the game with nobody in it, at 50 Hz.
            ingress
                .start_match(EMPTY, MatchConfig { tick_hz: 50, grace_us: 1_000, late: Late::Next })
                .unwrap();
            ready_tx.send(()).unwrap();
            let mut frames: Vec<Frame> = Vec::new();
            let (mut spoke, mut ended, mut lasts) = (false, false, 0u32);
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while std::time::Instant::now() < deadline {
                if !ended && played_rx.try_recv().is_ok() {
                    ingress.end_match(MATCH).unwrap();
                    ingress.end_match(EMPTY).unwrap();
                    ended = true;
                }
                let Some(frame) = ingress.frames().next_frame(Duration::from_millis(20)) else { continue };
                if frame.match_id == MATCH && frame.tick >= 20 && !spoke {
                    ingress.send_to_match(MATCH, b"checksum 20").unwrap();
                    ingress.send_to_player(B, b"hello B").unwrap();
                    assert_eq!(ingress.send_to_player(999, b"nobody"), Err(SendError::NoSession));
                    spoke = true;
                }
                lasts += u32::from(frame.last);
                frames.push(frame);
                if lasts == 2 {
                    break;
                }
            }
            let (report, ()) = ingress.stop(|f| frames.push(f)).unwrap();
            (frames, report)
        });
        ready_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        let seen = in_netns(&lab.tx_ns, || {
            let connect = |player: u64| {
                let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
                sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
                let mut client = Client::new(&token::parse(&mint(&key, server, player, MATCH, 10)).unwrap());
                handshake(&sock, server, &mut client, &mut Seen::default());
                sock.set_nonblocking(true).unwrap();
                (sock, client)
            };
            let mut seen = CatchUpSeen::default();
            let (mut a_sock, mut a) = connect(A);
            let (b_sock, mut b) = connect(B);
            let mut packet = Vec::new();
            let mut scratch = BTreeMap::new();
            for round in 0..200u64 {
                if round == 60 {
                    // A's game crashes; it comes back with a new token and asks for the frames
                    // from a few ticks before the newest it had.
                    let had = *seen.a_before.keys().last().expect("A had frames before it crashed");
                    seen.asked_from = had - 5;
                    (a_sock, a) = connect(A);
                    assert!(a.catch_up(seen.asked_from, &mut packet));
                    a_sock.send_to(&packet, server).unwrap();
                }
                if round == 120 {
                    assert!(a.catch_up(0, &mut packet));
                    a_sock.send_to(&packet, server).unwrap();
                }
                for (sock, client) in [(&a_sock, &mut a), (&b_sock, &mut b)] {
                    assert!(client.seal(Kind::Input, &inputs(round), &mut packet));
                    sock.send_to(&packet, server).unwrap();
                }
                let frames = if round < 60 { &mut seen.a_before } else { &mut seen.a_frames };
                for event in drain(&a_sock, &mut a, frames) {
                    if let Event::Frames(body) = event {
                        let ticks = body.records.iter().map(|r| r.tick);
                        if body.flags & frame_packet::FLAG_TOO_OLD != 0 {
                            seen.too_old = Some((body.flags, body.records.first().map(|r| r.tick)));
                        } else {
                            seen.caught_up_flags |= body.flags;
                            seen.caught_up.extend(ticks);
                            for r in body.records {
                                seen.a_frames.insert(r.tick, (r.hash, r.messages));
                            }
                        }
                    }
                }
                for event in drain(&b_sock, &mut b, &mut seen.b_frames) {
                    if let Event::Message(m) = event {
                        seen.b_direct.push(m);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            played_tx.send(()).unwrap();
            let until = std::time::Instant::now() + Duration::from_secs(3);
            while std::time::Instant::now() < until && !(seen.ended.0 && seen.ended.1) {
                seen.ended.0 |= drain(&a_sock, &mut a, &mut scratch).contains(&Event::Disconnected);
                seen.ended.1 |= drain(&b_sock, &mut b, &mut scratch).contains(&Event::Disconnected);
                std::thread::sleep(Duration::from_millis(5));
            }
            seen
        });
        let (frames, report) = game.join().unwrap();
        (frames, report, seen)
    });

    let by_tick: BTreeMap<u64, &Frame> =
        game_frames.iter().filter(|f| f.match_id == MATCH).map(|f| (f.tick, f)).collect();
    // The catch-up came oldest first, without a gap, with the game's hashes.
    assert_eq!(seen.caught_up_flags, frame_packet::FLAG_CATCH_UP);
    assert_eq!(seen.caught_up.first(), Some(&seen.asked_from), "{:?}", seen.caught_up);
    assert!(seen.caught_up.windows(2).all(|w| w[1] == w[0] + 1), "{:?}", seen.caught_up);
    assert!(seen.caught_up.len() > 5, "{:?}", seen.caught_up);
    for (tick, (hash, _)) in seen.a_before.iter().chain(&seen.a_frames).chain(&seen.b_frames) {
        assert_eq!(hash, &by_tick[tick].hash, "tick {tick}");
    }
    // From tick 0, after 32 frames of history: too old, and the game was told.
    let (flags, first) = seen.too_old.expect("an answer to the catch-up from tick 0");
    assert_eq!(flags, frame_packet::FLAG_CATCH_UP | frame_packet::FLAG_TOO_OLD);
    assert!(first.is_some_and(|t| t > 0), "the oldest tick held comes back: {first:?}");
    let resyncs: Vec<(u32, u64)> = game_frames
        .iter()
        .flat_map(|f| &f.inputs)
        .filter(|i| i.kind == InputKind::Resync)
        .map(|i| (i.client_id, i.seq))
        .collect();
    assert_eq!(resyncs, vec![(A as u32, 0)]);
    // The game's message rode on one frame to both players; B's own message reached B only.
    let with_message = |frames: &BTreeMap<u64, ([u8; 32], Vec<Vec<u8>>)>| {
        frames
            .iter()
            .filter(|(_, (_, m))| !m.is_empty())
            .map(|(t, (_, m))| (*t, m.clone()))
            .collect::<Vec<_>>()
    };
    let b_messages = with_message(&seen.b_frames);
    assert_eq!(b_messages.len(), 1, "{b_messages:?}");
    assert_eq!(b_messages[0].1, vec![b"checksum 20".to_vec()]);
    assert!(b_messages[0].0 > 20);
    let mut a_all = seen.a_before.clone();
    a_all.extend(seen.a_frames.clone());
    assert_eq!(with_message(&a_all), b_messages, "A holds the same frame with it");
    assert_eq!(seen.b_direct, vec![b"hello B".to_vec()]);
    // The game ended the match: both players heard it, and the match's last frame says so.
    assert_eq!(seen.ended, (true, true));
    assert!(game_frames.iter().any(|f| f.match_id == MATCH && f.last));
    // The game's own match ran at its own rate, empty, from its start to its end.
    let empty: Vec<&Frame> = game_frames.iter().filter(|f| f.match_id == EMPTY).collect();
    assert!(empty.len() > 20, "{} frames", empty.len());
    assert!(empty.iter().all(|f| f.tick_hz == 50));
    assert_eq!(empty[0].inputs.first().map(|i| i.kind), Some(InputKind::Start));
    assert!(empty.last().is_some_and(|f| f.last && f.inputs.iter().any(|i| i.kind == InputKind::End)));
    assert_eq!(report.sequencer.matches_ended, 2);
    let sessions = report.sessions.unwrap();
    assert_eq!(sessions.closed["replaced"], 1);
    assert_eq!(sessions.closed["server"], 2);
    assert_eq!(sessions.direct_messages, 1);
    assert!(sessions.catch_up_packets >= 2);
}
