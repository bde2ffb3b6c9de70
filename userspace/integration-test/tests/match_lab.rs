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
    frame_queue::chain_hash,
    input::InputKind,
    session::{
        client::{Client, Event},
        token,
    },
    wire::{crypto::Key, v2::Kind},
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
    let lab = Lab::new(2);
    let key = Key::from_bytes([0x6a; 32]);
    let frames_path = run_dir(&lab).join("match-frames.jsonl");
    let run = start_v2(
        &lab,
        &key,
        &["--duration", "5", "--tick-hz", "100", "--frames-out", frames_path.to_str().unwrap()],
    );
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
