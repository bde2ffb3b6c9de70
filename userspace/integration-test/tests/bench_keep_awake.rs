//! `tickgate-bench --keep-awake`, as root: during each load no core halts when idle (a CPU
//! latency request of 0 µs makes cpuidle poll), nothing runs for it, and nothing is lost. The
//! same seed without the flag shows the NAPI core halting, so the count the check reads is live.
//! A file of its own so that it never runs beside the bench smoke test (both build a lab).

mod support;

use std::{path::Path, process::Command};

use serde_json::Value;

const RECEIVERS: [&str; 2] = ["tickgate-paced", "socket-recv"];

/// Runs the seed (both receivers, 2 000 inputs/s for 0.5 s) with `extra` and returns its report.
fn seed(out: &Path, extra: &[&str]) -> Value {
    let _ = std::fs::remove_dir_all(out);
    #[rustfmt::skip]
    let status = Command::new(support::bin("tickgate-bench"))
        .args([
            "--scenarios", "seed", "--receivers", &RECEIVERS.join(","), "--rounds", "1",
            "--max-rounds", "1", "--duration", "0.5", "--rate", "2000", "--clients", "16",
            "--flows", "4", "--fast-tick-hz", "0", "--sockperf-seconds", "0", "--quiet-wait", "0",
            "--retries", "0", "--quiet", "--no-png",
        ])
        .args(extra)
        .arg("--out")
        .arg(out)
        .status()
        .expect("running tickgate-bench");
    assert!(status.success(), "tickgate-bench {extra:?} failed: {status}");
    let report = std::fs::read(out.join("report.json")).expect("reading report.json");
    let report = serde_json::from_slice(&report).expect("report.json is JSON");
    let _ = std::fs::remove_dir_all(out);
    report
}

/// Halts of the NAPI thread's core during each receiver's load.
fn napi_core_halts(report: &Value) -> Vec<u64> {
    let napi_core = report["settings"]["rx_core"].as_u64().expect("settings.rx_core");
    RECEIVERS
        .iter()
        .map(|receiver| {
            let run = &report["scenarios"]["seed"][receiver]["runs"][0];
            let cores = run["cpu"]["cores"].as_array().expect("cpu.cores");
            let core = cores.iter().find(|c| c["core"] == napi_core).expect("the NAPI core's use");
            core["halts"].as_u64().unwrap_or_else(|| panic!("{receiver}: no halt count: {core}"))
        })
        .collect()
}

#[test]
fn keep_awake_keeps_the_cores_from_halting_during_the_load_and_loses_nothing() {
    support::require_root();
    let out = std::env::temp_dir().join(format!("tickgate-bench-awake-{}", std::process::id()));

    let asleep = seed(&out, &[]);
    assert_eq!(asleep["settings"]["keep_awake"], false);
    let halts = napi_core_halts(&asleep);
    // At 2 000 inputs/s the NAPI core is idle between packets: it halts hundreds of times.
    assert!(halts.iter().all(|&h| h > 50), "the NAPI core did not halt without --keep-awake: {halts:?}");

    let awake = seed(&out, &["--keep-awake"]);
    assert_eq!(awake["settings"]["keep_awake"], true);
    let halts = napi_core_halts(&awake);
    assert!(halts.iter().all(|&h| h == 0), "the NAPI core halted with --keep-awake: {halts:?}");
    for receiver in RECEIVERS {
        let run = &awake["scenarios"]["seed"][receiver]["runs"][0];
        // A spinning thread once kept veth's NAPI thread off its core for a third of a second.
        assert_eq!(run["loss"]["legit_inputs_lost"], 0, "{receiver}: {run}");
        assert_eq!(run["loss"]["unexplained_packets"], 0, "{receiver}: {run}");
        // Nothing of the bench's runs for it: the receiver's figures are its own.
        let cpu = &run["cpu"];
        assert!(cpu["receiver_pct"].as_f64().unwrap() < 60.0, "{receiver}: {cpu}");
    }
}
