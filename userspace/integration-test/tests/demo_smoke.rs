//! `tickgate demo` end to end, as root: a short run with injected loss, duplication and
//! reordering and a junk flood reports non-zero figures that balance (every duplicate removed,
//! the junk dropped and counted, nothing unexplained) and removes its lab. No timing thresholds.
#![expect(clippy::unwrap_used, reason = "integration tests: a failed step should fail loudly")]

mod support;

use std::{path::Path, process::Command};

use serde_json::Value;

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn queues_sum(s: &Value, f: impl Fn(&Value) -> u64) -> u64 {
    s["ingress"]["queues"].as_array().unwrap().iter().map(f).sum()
}

#[test]
fn a_short_demo_reports_balanced_figures_and_removes_its_lab() {
    support::require_root();
    let json = std::env::temp_dir().join(format!("tickgate-demo-smoke-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&json);
    #[rustfmt::skip]
    let out = Command::new(support::bin("tickgate"))
        .args(["demo", "--seconds", "3", "--clients", "8", "--loss", "5", "--duplicate", "5", "--reorder", "5",
               "--junk-pps", "20000", "--summary-json"])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "tickgate demo failed:\n{all}");
    let s: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);

    // The live lines and the summary are there.
    let live: Vec<&str> = stdout.lines().filter(|l| l.starts_with("t=")).collect();
    assert!(!live.is_empty(), "no live line:\n{all}");
    for line in &live {
        for field in
            ["inputs/s=", "frames=", "late=", "dropped: duplicate=", "bad_magic=", "rate_limited=", "p99="]
        {
            assert!(line.contains(field), "live line without {field}: {line}");
        }
    }
    assert!(stdout.contains("accounting:") && stdout.contains("unexplained 0"), "{all}");
    assert_eq!(s["interrupted"], false);

    // The sender did what it was asked.
    let c = &s["clients"];
    assert_eq!(u(&c["clients"]), 8);
    for k in ["packets_sent", "lost", "duplicated", "reordered", "commands_sent", "inputs_sent"] {
        assert!(u(&c[k]) > 0, "clients.{k} is 0: {c}");
    }
    assert_eq!(u(&c["send_errors"]), 0, "{c}");
    assert_eq!(u(&c["packets_generated"]), u(&c["inputs_generated"]));
    assert_eq!(u(&c["packets_sent"]), u(&c["packets_generated"]) - u(&c["lost"]) + u(&c["duplicated"]));

    // Protocol v2: every client connected with its token; its joins are in the frames.
    let v = &s["ingress"]["sessions"];
    assert_eq!((u(&c["connect_failures"]), u(&v["joined"])), (0, 8), "{v}");
    assert!(u(&c["handshake_packets"]) >= 16, "a request and a response per client: {c}");
    assert_eq!(s["ingress"]["insecure_v1"], false);
    let joins = queues_sum(&s, |q| u(&q["events"]));
    assert_eq!(joins, 8);

    // Every game packet reached a worker, every input that was sent was delivered once, every
    // injected duplicate packet was dropped whole as a replay, and every other copy of an input
    // (redundancy) was removed as a duplicate.
    let a = &s["accounting"];
    assert_eq!(u(&a["game_packets_not_decoded"]), 0, "{a}");
    assert_eq!(u(&v["dropped"]["replayed"]), u(&c["duplicated"]), "{v}");
    let delivered = queues_sum(&s, |q| u(&q["delivered"]));
    let duplicates = queues_sum(&s, |q| u(&q["dropped_inputs"]["duplicate"]));
    assert!(delivered > 0);
    assert_eq!(delivered, u(&c["inputs_sent"]), "{s}");
    assert_eq!(
        duplicates,
        u(&c["commands_sent"]) - u(&c["duplicate_commands"]) - u(&c["inputs_sent"]),
        "{s}"
    );
    for q in s["ingress"]["queues"].as_array().unwrap() {
        for (reason, n) in q["dropped_inputs"].as_object().unwrap() {
            assert!(reason == "duplicate" || u(n) == 0, "inputs dropped as {reason}: {q}");
        }
    }
    let seq = &s["ingress"]["sequencer"];
    assert!(u(&seq["frames"]) > 0 && u(&s["frames_taken"]) > 0);
    assert_eq!(u(&seq["inputs_ordered"]), delivered + joins);
    assert_eq!(u(&s["inputs_taken"]), delivered + joins);
    assert_eq!(u(&s["latency"]["inputs"]), delivered, "every input's latency is measured");
    assert!(s["latency"]["p99_ms"].is_number());

    // The frames went back to the players of their own matches, and the round trip was measured.
    let rt = &s["round_trip"];
    assert_eq!(s["config"]["matches"], 4);
    assert!(u(&rt["frame_packets"]) > 0, "{rt}");
    assert!(u(&rt["own"]["inputs"]) * 10 >= delivered * 9, "most inputs came back to their player: {rt}");
    assert!(rt["every_player"]["p50_ms"].is_number(), "{rt}");
    let b = &s["ingress"]["broadcast"];
    assert_eq!(u(&b["frames"]), u(&seq["frames"]), "every sealed frame was fanned out: {b}");
    let tx = |name: &str| -> u64 {
        s["ingress"]["queues"].as_array().unwrap().iter().map(|q| u(&q["tx"][name])).sum()
    };
    assert_eq!(u(&s["ingress"]["sessions"]["frame_packets"]), tx("frame_tx_queued") + tx("frame_tx_dropped"));
    assert_eq!(u(&seq["matches_started"]), 4);

    // The junk was sent, dropped by XDP as bad_magic and counted; the rest passed to the kernel.
    let j = &s["junk"];
    let bad_magic = u(&s["ingress"]["counters"]["dropped"]["bad_magic"]);
    assert!(u(&j["bad_magic"]) > 0 && u(&j["other_port"]) > 0, "{j}");
    assert!(bad_magic > 0, "{s}");
    assert!(
        bad_magic <= u(&j["bad_magic"]) && u(&j["bad_magic"]) - bad_magic <= u(&a["lost_in_veth"]),
        "{s}"
    );
    assert!(u(&s["ingress"]["counters"]["passed"]) > 0);

    // Nothing unexplained at any stage.
    assert_eq!(u(&a["unexplained"]), 0, "{a}");
    assert_eq!(a["inputs_unexplained"], 0, "{a}");
    assert_eq!(s["ingress"]["unexplained_steered"], 0);

    // The lab is gone: both namespaces, and no pins under the receiver's name.
    assert_eq!(s["lab"]["removed"], true);
    let netns = support::sh(&["ip", "netns", "list"]);
    let netns = String::from_utf8_lossy(&netns.stdout);
    for key in ["tx_ns", "rx_ns"] {
        let name = s["lab"][key].as_str().unwrap();
        assert!(name.starts_with("tgd-"), "{name}");
        assert!(
            !netns.lines().any(|l| l.split_whitespace().next() == Some(name)),
            "{name} left behind: {netns}"
        );
        assert!(!Path::new("/run/netns").join(name).exists());
    }
    let pins = Path::new("/sys/fs/bpf/tickgate").join(s["lab"]["rx_if"].as_str().unwrap());
    assert!(!pins.exists(), "{} left behind", pins.display());
}

#[test]
fn impossible_injections_are_refused_before_any_lab_exists() {
    let out = Command::new(support::bin("tickgate"))
        .args(["demo", "--loss", "60", "--duplicate", "50"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("add up to 110%"), "{err}");
    assert!(out.stdout.is_empty(), "nothing ran: {}", String::from_utf8_lossy(&out.stdout));
    let out = Command::new(support::bin("tickgate")).args(["demo", "--loss", "101"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("between 0 and 100"));
}
