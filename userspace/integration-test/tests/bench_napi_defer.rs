//! `tickgate-bench --napi-defer`, as root: the receiver veth's NAPI defers its polls (the kernel's
//! software interrupt moderation), socket-paced's reads then poll it themselves, and nothing is
//! lost. A file of its own so that it never runs beside another test that builds a lab.

mod support;

use std::process::Command;

use serde_json::Value;

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn napi_defer_batches_the_receive_and_socket_paced_drives_it() {
    support::require_root();
    let out = std::env::temp_dir().join(format!("tickgate-bench-defer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    #[rustfmt::skip]
    let status = Command::new(support::bin("tickgate-bench"))
        .args([
            "--scenarios", "seed", "--receivers", "tickgate-paced,socket-paced", "--rounds", "1",
            "--max-rounds", "1", "--duration", "1", "--rate", "10000", "--fast-tick-hz", "0",
            "--sockperf-seconds", "0", "--quiet-wait", "0", "--retries", "0",
            "--napi-defer", "10,5000000", "--quiet", "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "tickgate-bench failed: {status}");
    let report: Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["settings"]["napi_defer"]["timeout_ns"], 5_000_000, "{}", report["settings"]);
    let run = |receiver: &str| report["scenarios"]["seed"][receiver]["runs"][0].clone();
    for receiver in ["tickgate-paced", "socket-paced"] {
        let run = run(receiver);
        assert_eq!(run["loss"]["unexplained_packets"], 0, "{receiver}: {run}");
        assert!(run["inputs_in_frames"].as_u64().unwrap() > 0, "{receiver}: nothing delivered: {run}");
    }
    // tickgate's AF_XDP socket cannot poll veth's NAPI: its packets wait in veth's ring for the
    // NAPI timer before XDP stamps them, milliseconds where an undeferred NAPI takes tens of µs.
    let tickgate = run("tickgate-paced");
    assert!(
        f(&tickgate["rx_stamp_us"]["p50_us"]) > 500.0,
        "deferral did not take effect: {}",
        tickgate["rx_stamp_us"]
    );
    // socket-paced's reads poll veth's NAPI themselves, so its NAPI thread has less to do than
    // under tickgate-paced, where the thread does every poll.
    let socket = run("socket-paced");
    let (napi_socket, napi_tickgate) = (f(&socket["cpu"]["napi_pct"]), f(&tickgate["cpu"]["napi_pct"]));
    assert!(
        napi_socket < napi_tickgate / 2.0,
        "socket-paced's reads did not drive veth's NAPI: NAPI thread {napi_socket} % against {napi_tickgate} %"
    );
    let _ = std::fs::remove_dir_all(&out);
}
