//! Short runs of the whole harness, as root: every receiver in every scenario, with small
//! counts. Each must produce a report with non-zero figures in which every packet sent is
//! accounted for. No timing is asserted: CI machines differ, and the figures are only
//! meaningful in a real run.

mod support;

use std::{path::Path, process::Command};

use serde_json::Value;

const RECEIVERS: [&str; 8] = [
    "tickgate-wakeup",
    "tickgate-paced",
    "tickgate-busy",
    "socket-recv",
    "socket-epoll",
    "socket-recvmmsg",
    "socket-paced",
    "socket-spin",
];

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Every packet sent is accounted for; so is every input where the mapping is exact.
fn check_accounted(run: &Value) {
    let what = format!("{} {} round {}", run["scenario"], run["receiver"], run["round"]);
    assert!(u(&run["generator"]["inputs"]) > 0, "{what}: nothing sent: {run}");
    assert_eq!(run["loss"]["unexplained_packets"], 0, "{what}: packets unaccounted for: {run}");
    if !run["loss"]["unexplained_inputs"].is_null() {
        assert_eq!(run["loss"]["unexplained_inputs"], 0, "{what}: inputs unaccounted for: {run}");
    }
    assert_eq!(run["negative_latencies"], 0, "{what}: clock trouble: {run}");
    assert!(f(&run["cpu"]["receiver_pct"]) > 0.0, "{what}: no receiver CPU measured: {run}");
}

/// A run that delivered: inputs in frames and a latency figure.
fn check_delivered(run: &Value) {
    let what = format!("{} {} round {}", run["scenario"], run["receiver"], run["round"]);
    assert!(u(&run["inputs_in_frames"]) > 0, "{what}: no input reached a frame: {run}");
    assert!(u(&run["frames"]) > 0, "{what}: no frame: {run}");
    assert!(u(&run["latency_us"]["count"]) > 0, "{what}: no latency sample: {run}");
    assert!(f(&run["latency_us"]["p50_us"]) > 0.0, "{what}: {run}");
    assert!(f(&run["latency_us"]["max_us"]) >= f(&run["latency_us"]["p99_us"]), "{what}: {run}");
    assert!(u(&run["rx_stamp_us"]["count"]) > 0, "{what}: no receive stamp: {run}");
}

fn reason(run: &Value, name: &str) -> u64 {
    run["loss"]["by_reason"].get(name).map_or(0, u)
}

#[test]
fn every_receiver_in_every_scenario_reports_accounted_figures() {
    support::require_root();
    let out = std::env::temp_dir().join(format!("tickgate-bench-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    #[rustfmt::skip]
    let mut child = Command::new(support::bin("tickgate-bench"))
        .args([
            "--scenarios", "seed,sweep,flood,ceiling,relay,ring,grace", "--grace-sweep-us", "0,400", "--rounds", "1", "--duration", "0.5",
            "--rate", "2000", "--clients", "16", "--flows", "4", "--fast-tick-hz", "1000",
            "--sweep-rates", "3k,max", "--sweep-duration", "0.4", "--flood-junk-rates", "20k", "--junk-burst-us", "500", "--warmup-ms", "0", "--cooldown-ms", "0",
            "--generators", "skb,live,live-inputs",
            "--max-packets", "300000", "--sockperf-seconds", "1", "--quiet-wait", "0", "--retries", "0",
            "--relay-players", "8", "--relay-matches", "2", "--ring-frames", "200",
            "--quiet", "--out",
        ])
        .arg(&out)
        .spawn()
        .unwrap();
    let pid = child.id();
    let status = child.wait().unwrap();
    assert!(status.success(), "tickgate-bench failed: {status}");

    let report: Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let scenarios = &report["scenarios"];
    // `-live`: the junk came as live XDP frames (BPF_PROG_RUN), the legit inputs through sockets;
    // `-live-inputs`: the legit inputs too, each a frame from its flow's port.
    for scenario in [
        "seed",
        "seed-1000hz",
        "seed-live-inputs",
        "seed-1000hz-live-inputs",
        "flood",
        "flood-1000hz-junk20k",
        "flood-live",
        "flood-live-inputs",
        "flood-1000hz-junk20k-live-inputs",
    ] {
        for receiver in RECEIVERS {
            let runs = scenarios[scenario][receiver]["runs"].as_array().unwrap_or_else(|| {
                panic!(
                    "{scenario}: no runs of {receiver} in {}",
                    serde_json::to_string_pretty(scenarios).unwrap()
                )
            });
            assert_eq!(runs.len(), 1);
            let run = &runs[0];
            check_accounted(run);
            check_delivered(run);
            let (legit, live) =
                (u(&run["generator"]["legit_packets"]), u(&run["generator"]["legit_live_frames"]));
            if scenario.ends_with("-live-inputs") {
                assert_eq!(live, legit, "{scenario} {receiver}: legit inputs not all live frames: {run}");
            } else {
                assert_eq!(live, 0, "{scenario} {receiver}: {run}");
            }
            // Without junk nothing is lost: a live frame the receiver refused (a wrong port, a
            // bad checksum) would be.
            if scenario.starts_with("seed") && scenario.ends_with("-live-inputs") {
                assert_eq!(run["loss"]["legit_inputs_lost"], 0, "{scenario} {receiver}: inputs lost: {run}");
            }
            assert!(
                Path::new(&out).join("hgrm").join(format!("{scenario}.{receiver}.hgrm")).exists(),
                "{scenario}.{receiver}.hgrm missing"
            );
            if scenario.starts_with("flood") {
                let junk = u(&run["generator"]["junk_game_port"]) + u(&run["generator"]["junk_other_port"]);
                assert!(junk > 0, "{scenario} {receiver}: no junk sent: {run}");
                // Junk to the game port is dropped by XDP on one path, by decode on the other.
                let bad = reason(run, "xdp.bad_magic") + reason(run, "worker.bad_header");
                assert!(bad > 0, "{scenario} {receiver}: bad magic not counted: {run}");
                // The scheduling program paces its junk in bursts of 10 (500 µs at 20 000/s):
                // never ahead of the rate over the load (0.5 s, and the few ms until its call
                // ends), where full speed sends millions; and burst after burst, not one.
                if scenario == "flood-1000hz-junk20k-live-inputs" {
                    assert!(junk <= 11_000, "{scenario} {receiver}: {junk} junk frames, not paced: {run}");
                    assert!(
                        junk >= 1_000,
                        "{scenario} {receiver}: {junk} junk frames, bursts stopped: {run}"
                    );
                }
            } else {
                assert!(!run["loss"]["unexplained_inputs"].is_null(), "{run}");
            }
        }
        assert!(out.join(format!("latency-{scenario}.svg")).exists());
    }
    // Every receiver counts the watermarks it published (`watermarks` of each queue's report):
    // tickgate's workers prove theirs with the XDP program's count (native XDP on the lab's
    // veth), a socket has no count and places every one by the slack.
    let raw: Value =
        serde_json::from_slice(&std::fs::read(out.join("raw").join("runs.json")).unwrap()).unwrap();
    let seeds: Vec<&Value> = raw.as_array().unwrap().iter().filter(|r| r["scenario"] == "seed").collect();
    assert_eq!(seeds.len(), RECEIVERS.len(), "{raw}");
    for run in seeds {
        let receiver = run["receiver"].as_str().unwrap();
        let queues = run["receiver_report"]["queues"].as_array().unwrap();
        let count = |kind: &str| queues.iter().map(|q| u(&q["watermarks"][kind])).sum::<u64>();
        if receiver.starts_with("socket") {
            assert!(count("by_slack") > 0 && count("proved") == 0, "seed {receiver}: {queues:?}");
        } else {
            assert!(count("proved") > 0, "seed {receiver}: {queues:?}");
        }
        // The readers that wait on an alarm count their waits by what ended them, seal instants
        // among them; the ones that spin or block in recv count none.
        let woke = |reason: &str| queues.iter().map(|q| u(&q["wakeups"][reason])).sum::<u64>();
        if matches!(receiver, "tickgate-wakeup" | "tickgate-paced" | "socket-epoll" | "socket-paced") {
            assert!(woke("seal") > 0, "seed {receiver}: no wait ended at a seal instant: {queues:?}");
        } else {
            assert_eq!(woke("seal") + woke("timed") + woke("other"), 0, "seed {receiver}: {queues:?}");
        }
    }
    for scenario in ["ceiling", "ceiling-live"] {
        let ceiling = scenarios[scenario]["tickgate-wakeup"]["runs"].as_array().unwrap();
        for run in ceiling {
            check_accounted(run);
            assert!(reason(run, "xdp.rate_limited") > 0, "{scenario}: XDP did not drop: {run}");
        }
    }
    // The live ceiling's packets reached the XDP hook as frames: every one counted there.
    assert!(f(&report["ceiling_live_pps"]) > 0.0, "ceiling-live: {}", report["ceiling_live_pps"]);
    for receiver in RECEIVERS {
        let steps = report["sweep"][receiver]["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 2, "sweep {receiver}: {steps:?}");
        for step in steps {
            check_accounted(step);
            assert!(u(&step["inputs_in_frames"]) > 0, "sweep {receiver}: nothing delivered: {step}");
        }
    }
    assert!(out.join("sweep.svg").exists());
    // Tick close: every frame of the fast seed timed; the grace steps sealed no earlier than
    // their grace after the tick's end, and say how many inputs were late.
    for receiver in RECEIVERS {
        let run = &scenarios["seed-1000hz"][receiver]["runs"][0];
        assert!(u(&run["tick_close_us"]["count"]) > 100, "seed-1000hz {receiver}: no tick close: {run}");
        let points = report["grace"][receiver]
            .as_array()
            .unwrap_or_else(|| panic!("grace {receiver}: {}", report["grace"]));
        let graces: Vec<u64> = points.iter().map(|p| u(&p["grace_us"])).collect();
        assert_eq!(graces, [0, 400], "{receiver}");
        for p in points {
            assert!(u(&p["tick_close_us"]["count"]) > 100, "grace {receiver}: {p}");
            let floor = u(&p["grace_us"]) as f64;
            assert!(
                f(&p["tick_close_us"]["p50_us"]) >= floor,
                "grace {receiver}: sealed before end + grace: {p}"
            );
            assert!(p["late_pct"].as_f64().is_some_and(|l| (0.0..=100.0).contains(&l)), "{p}");
        }
    }
    assert!(out.join("grace.svg").exists());
    assert!(f(&report["sockperf"]["avg_us"]) > 0.0, "sockperf: {}", report["sockperf"]);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for heading in ["## Headline", "## seed", "## flood", "## sweep", "## ceiling", "## grace", "## sockperf"]
    {
        assert!(md.contains(heading), "report.md lacks {heading}");
    }
    let ratios = report["ratios"].as_array().unwrap();
    assert!(!ratios.is_empty(), "no ratios");
    // Per worker core at a sweep rate both paths served: for the sleeping tickgate receivers only.
    for receiver in ["tickgate-wakeup", "tickgate-paced"] {
        let per_core = ratios
            .iter()
            .find(|r| {
                r["tickgate"] == receiver
                    && r["figure"].as_str().unwrap().starts_with("sweep: inputs/s per worker core at 3k/s")
            })
            .unwrap_or_else(|| panic!("{receiver}: no per-core ratio in {ratios:?}"));
        assert!(f(&per_core["tickgate_value"]) > 0.0 && f(&per_core["socket_value"]) > 0.0, "{per_core}");
    }
    assert!(!ratios.iter().any(
        |r| r["tickgate"] == "tickgate-busy" && r["figure"].as_str().unwrap().contains("per worker core")
    ));
    // The relay: both relays at both tick rates sent every player its match's frames.
    let relay: Value = serde_json::from_slice(&std::fs::read(out.join("relay.json")).unwrap()).unwrap();
    let rates = relay.as_array().unwrap();
    assert_eq!(rates.len(), 2, "60 Hz and 1 kHz: {relay}");
    for rate in rates {
        let results = rate["results"].as_array().unwrap();
        let relays: Vec<&str> = results.iter().map(|r| r["relay"].as_str().unwrap()).collect();
        assert_eq!(relays, ["tickgate", "socket"], "{rate}");
        for r in results {
            assert!(u(&r["frame_packets_sent"]) > 0, "no frame packet sent: {r}");
            assert!(u(&r["frame_packets_received"]) > 0, "no frame packet received: {r}");
            assert!(u(&r["every_player"]["inputs"]) > 0, "no round trip measured: {r}");
            assert!(f(&r["cpu_us_per_player_tick"]) > 0.0, "no relay CPU measured: {r}");
        }
    }
    assert!(std::fs::read_to_string(out.join("relay.md")).unwrap().contains("Ratios tickgate / socket"));
    // The ring: every frame reached the Go reader over the ring and over the socket, both ways
    // of waiting.
    let ring: Value = serde_json::from_slice(&std::fs::read(out.join("ring.json")).unwrap()).unwrap();
    let ring = ring.as_array().unwrap();
    assert_eq!(ring.len(), 4, "ring and unix, spinning and sleeping: {ring:?}");
    for r in ring {
        assert_eq!(r["reading"]["frames"], 200, "{r}");
        assert_eq!(r["reading"]["missed"], 0, "{r}");
        assert!(f(&r["reading"]["p50_us"]) > 0.0, "{r}");
    }
    let leftover = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let leftover = String::from_utf8_lossy(&leftover.stdout);
    assert!(
        !leftover.lines().any(|l| l.starts_with(&format!("tgb-{}", pid % 100_000))),
        "the bench left its namespaces behind: {leftover}"
    );
    let _ = std::fs::remove_dir_all(&out);
}
