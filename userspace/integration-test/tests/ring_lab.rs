//! The game's side on the veth lab, as root: a live `tickgate run --frame-rings` while players
//! play two matches; the Go example game server reads match 1's ring as it is written, is killed
//! (it stops after some records) and restarted, and ends up with exactly the records the Rust
//! reader finds, byte for byte, without a duplicate or a gap; nobody reads match 2's ring, which
//! overflows: tickgate counts it and goes on, and a reader that comes late is told what it missed.
#![expect(clippy::unwrap_used, reason = "integration tests: a failed step should fail loudly")]

mod support;

use std::{
    net::{SocketAddr, UdpSocket},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use support::{
    Lab, RX_IP4, in_netns, run_dir,
    v2::{Seen, handshake, inputs, mint, start_v2},
};
use tickgate::{
    session::{
        client::{Client, Event},
        token,
    },
    wire::{crypto::Key, v2::Kind},
};

/// Builds the Go example game server (userspace/go/cmd/tickgate-game) into `dir`.
fn build_go_game(dir: &Path) -> PathBuf {
    let out = dir.join("tickgate-game");
    let go = concat!(env!("CARGO_MANIFEST_DIR"), "/../go");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg("./cmd/tickgate-game")
        .current_dir(go)
        .env("GOFLAGS", "-mod=mod")
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPATH", dir.join("gopath"))
        .status()
        .unwrap_or_else(|e| panic!("cannot run go ({e}): scripts/setup.sh installs golang-go"));
    assert!(status.success(), "go build failed");
    out
}

/// Runs the Go reader on `ring` (following) until it exits; its stdout lines.
fn go_read(game: &Path, ring: &Path, args: &[&str]) -> Child {
    Command::new(game).args(args).arg(ring).stdout(Stdio::piped()).spawn().unwrap()
}

fn lines(child: Child) -> Vec<String> {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the Go reader failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect()
}

#[test]
fn a_go_game_server_reads_its_match_like_the_rust_reader_and_a_stalled_one_is_counted() {
    let lab = Lab::new(1);
    let key = Key::from_bytes([0x3c; 32]);
    let dir = run_dir(&lab).join("rings");
    let _ = std::fs::remove_dir_all(&dir);
    let game = build_go_game(&run_dir(&lab));
    let run = start_v2(
        &lab,
        &key,
        &[
            "--duration",
            "5",
            "--frame-rings",
            dir.to_str().unwrap(),
            "--ring-capacity",
            "16384",
            // The operator hands the files to the game's user and group (nobody/nogroup here).
            "--ring-owner",
            "65534",
            "--ring-group",
            "65534",
            "--ring-mode",
            "640",
        ],
    );
    let live = std::path::Path::new("/run/tickgate").join(format!("{}.json", lab.rx_if));
    let live_rings = std::sync::Mutex::new(serde_json::Value::Null);
    let server: SocketAddr = (RX_IP4, 7777).into();
    let ring1 = dir.join("match-1.ring");
    let ring2 = dir.join("match-2.ring");
    let first = std::sync::Mutex::new(None::<Child>);
    let crashed = std::sync::Mutex::new(Vec::new());
    let second = std::sync::Mutex::new(None::<Child>);
    let heard = in_netns(&lab.tx_ns, || {
        let mut players = Vec::new();
        for (id, m) in [(11u64, 1u64), (12, 1), (21, 2), (22, 2)] {
            let sock = UdpSocket::bind("0.0.0.0:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
            let mut client = Client::new(&token::parse(&mint(&key, server, id, m, 10)).unwrap());
            handshake(&sock, server, &mut client, &mut Seen::default());
            players.push((sock, client));
        }
        let mut packet = Vec::new();
        let mut buf = [0u8; 2048];
        let mut heard = Vec::new();
        players[0].0.set_nonblocking(true).unwrap();
        for round in 0..200u64 {
            for (sock, client) in &mut players {
                assert!(client.seal(Kind::Input, &inputs(round), &mut packet));
                sock.send_to(&packet, server).unwrap();
            }
            // Player 11 (match 1) listens for the game's message in its frames.
            let (sock, client) = &mut players[0];
            while let Ok((n, _)) = sock.recv_from(&mut buf) {
                if let Event::Frames(body) = client.receive(&buf[..n]) {
                    heard.extend(body.records.into_iter().flat_map(|r| r.messages));
                }
            }
            if round == 20 {
                // The game server attaches to match 1 and "crashes" after 30 records.
                assert!(support::wait_for(5, || ring1.exists()), "no ring for match 1");
                *first.lock().unwrap() = Some(go_read(&game, &ring1, &["-follow", "-stop-after", "30"]));
            }
            if round == 150 {
                // The live status counts the rings while the run goes on.
                let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&live).unwrap()).unwrap();
                *live_rings.lock().unwrap() = v["outputs"]["frame_rings"].clone();
            }
            if round == 70 {
                // It is restarted (well within the ring's capacity) and follows to the end.
                let child = first.lock().unwrap().take().expect("the first reader started");
                *crashed.lock().unwrap() = lines(child);
                // It also says something to its match (through match-1.out).
                *second.lock().unwrap() =
                    Some(go_read(&game, &ring1, &["-follow", "-timeout", "20s", "-say", "hello from go"]));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        heard
    });
    let live_rings = live_rings.into_inner().unwrap();
    assert_eq!(live_rings["rings"], 2, "live outputs.frame_rings: {live_rings}");
    assert!(live_rings["records"].as_u64().is_some_and(|r| r > 20), "live outputs.frame_rings: {live_rings}");
    // Owner, group and mode as configured, on the frames and on the game's way back.
    for file in [&ring1, &ring2, &dir.join("match-1.out")] {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::metadata(file).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (65534, 65534, 0o640), "{}", file.display());
    }
    let crashed = crashed.into_inner().unwrap();
    assert_eq!(crashed.len(), 30, "the first reader stopped after 30 records");
    // The restarted reader ends when the run does (the ring says the writer stopped).
    let restarted = lines(second.into_inner().unwrap().expect("the second reader started"));
    let summary = run.finish();

    // The Rust reader on a copy with the reader's part of the header cleared reads everything
    // from the start: the Go reader's two lives together saw exactly that.
    let copy = run_dir(&lab).join("match-1.copy");
    let mut bytes = std::fs::read(&ring1).unwrap();
    bytes[128..152].fill(0);
    std::fs::write(&copy, &bytes).unwrap();
    let rust = Command::new(support::bin("tickgate")).args(["ring", "dump"]).arg(&copy).output().unwrap();
    assert!(rust.status.success(), "{}", String::from_utf8_lossy(&rust.stderr));
    let rust: Vec<String> = String::from_utf8(rust.stdout).unwrap().lines().map(str::to_owned).collect();
    let go: Vec<String> = crashed.iter().chain(&restarted).cloned().collect();
    // The Go reader's two lives saw the whole match once, in order: its start, then every
    // tick from 0 without a repeat or a hole, and no gap reported.
    assert!(go[0].contains("\"match_start\":1"), "{}", go[0]);
    assert!(!go.iter().any(|l| l.contains("missed")), "the Go reader missed records");
    let ticks: Vec<u64> = go[1..]
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["tick"].as_u64().unwrap())
        .collect();
    assert!(ticks.len() > 200, "{} frames", ticks.len());
    assert_eq!(ticks, (0..ticks.len() as u64).collect::<Vec<_>>(), "ticks repeated or skipped");
    assert!(go.iter().any(|l| l.contains("\"kind\":\"command\"")), "frames hold the players' commands");
    // The ring is smaller than the match: the Rust reader, from the start of the copy, is told
    // what was overwritten and then reads what is still there, byte for byte what Go read.
    let Some(rest) = rust.first().and_then(|l| l.strip_prefix("{\"missed\":")) else {
        panic!("the Rust reader first reports the overwritten records: {:?}", rust.first())
    };
    assert!(rest.trim_end_matches('}').parse::<u64>().unwrap() > 0);
    assert!(rust.len() > 20, "{} records still in the ring", rust.len());
    assert_eq!(go[go.len() - (rust.len() - 1)..], rust[1..], "the Go and the Rust reader disagree");

    // The game's message reached match 1's player, with a frame (repeated with the frames
    // after it, as frames are).
    assert!(heard.iter().any(|m| m == b"hello from go"), "the player never heard the game");
    // Nobody read match 2: its ring overflowed, tickgate counted it and went on.
    let rings = &summary["outputs"]["frame_rings"];
    assert_eq!(rings["messages"], 1, "{rings}");
    assert_eq!(rings["messages_refused"], 0, "{rings}");
    assert_eq!(rings["rings"], 2, "{rings}");
    assert!(rings["overwritten_unread"].as_u64().unwrap() > 0, "{rings}");
    assert_eq!(rings["not_written"], 0, "{rings}");
    assert!(
        summary["sequencer"]["frames"].as_u64().unwrap() > 400,
        "ingress went on: {}",
        summary["sequencer"]
    );
    let late = lines(go_read(&game, &ring2, &[]));
    let missed: u64 = late[0]
        .strip_prefix("{\"missed\":")
        .and_then(|r| r.strip_suffix('}'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a late reader is told what it missed first: {}", late[0]));
    assert!(missed > 0);
    let _ = std::fs::remove_dir_all(&dir);
}
