//! `tickgate-bench --keep-awake`, as root: a SCHED_IDLE spinner keeps the NAPI thread's core
//! from halting during each load and is counted in no CPU figure; the bench still ends (it
//! joins the spinner after each load). A file of its own so that it never runs beside the
//! bench smoke test (both build a lab).

mod support;

use std::process::Command;

use serde_json::Value;

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn keep_awake_spins_the_napi_core_during_the_load_and_counts_it_nowhere() {
    support::require_root();
    let out = std::env::temp_dir().join(format!("tickgate-bench-awake-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    #[rustfmt::skip]
    let status = Command::new(support::bin("tickgate-bench"))
        .args([
            "--scenarios", "seed", "--receivers", "tickgate-paced,socket-recv", "--rounds", "1",
            "--max-rounds", "1", "--duration", "0.5", "--rate", "2000", "--clients", "16",
            "--flows", "4", "--fast-tick-hz", "0", "--sockperf-seconds", "0", "--quiet-wait", "0",
            "--retries", "0", "--keep-awake", "--quiet", "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "tickgate-bench failed: {status}");
    let report: Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["settings"]["keep_awake"], true);
    let napi_core = report["settings"]["rx_core"].as_u64().unwrap();
    for receiver in ["tickgate-paced", "socket-recv"] {
        let run = &report["scenarios"]["seed"][receiver]["runs"][0];
        assert_eq!(run["loss"]["unexplained_packets"], 0, "{receiver}: {run}");
        assert!(run["inputs_in_frames"].as_u64().unwrap() > 0, "{receiver}: nothing delivered: {run}");
        let cpu = &run["cpu"];
        let core = cpu["cores"].as_array().unwrap().iter().find(|c| c["core"] == napi_core).unwrap();
        // At 2 000 inputs/s the receive side takes a fraction of the core: the spinner the rest.
        assert!(f(&core["busy_pct"]) >= 90.0, "{receiver}: the NAPI core was not kept busy: {cpu}");
        // The spinner's time is in none of the figures (it is a thread of the bench's own).
        assert!(f(&cpu["receiver_pct"]) < 60.0, "{receiver}: the spinner counted as receiver CPU: {cpu}");
        assert!(f(&cpu["other_processes_pct"]) < 30.0, "{receiver}: {cpu}");
    }
    let _ = std::fs::remove_dir_all(&out);
}
