//! The CLI contract in a veth lab, as root: load/status/unload in both modes, counters equal to
//! what was sent, the `hw` program on veth, and one clear message per failure.

mod support;

use std::{
    net::{SocketAddr, UdpSocket},
    time::Duration,
};

use support::{Lab, RX_IP4, RX_IP6, game_payload};

const GAME: &str = "7777";

fn stderr(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "expected failure, got success: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn counter(status: &serde_json::Value, path: &str) -> u64 {
    path.split('.')
        .fold(&status["counters"], |v, k| &v[k])
        .as_u64()
        .unwrap_or_else(|| panic!("no {path}: {status}"))
}

fn pin_dir(lab: &Lab) -> std::path::PathBuf {
    std::path::Path::new("/sys/fs/bpf/tickgate").join(&lab.rx_if)
}

/// Malformed and valid game packets and other traffic, by raw frames; the status counters must
/// equal exactly what was sent, and unload must leave nothing behind.
fn counters_match_what_was_sent(mode: &str) {
    let lab = Lab::new(1);
    let out = lab.tickgate_ok(&[
        "load",
        &lab.rx_if,
        "--insecure-v1",
        "--port",
        GAME,
        "--mode",
        mode,
        "--timestamps",
        "xdp",
    ]);
    assert!(out.contains("tickgate_tai") && out.contains(&format!("{mode} mode")), "{out}");

    let mut bad_magic = game_payload(1, 1, b"x");
    bad_magic[0] = 0;
    let mut bad_version = game_payload(1, 1, b"x");
    bad_version[2] = 7;
    let mut bad_length = game_payload(1, 1, b"x");
    bad_length.push(0);
    let mut frames = Vec::new();
    for i in 0..10u64 {
        frames.push(lab.frame(false, 7777, &game_payload(1, i, b"valid")).build());
        frames.push(lab.frame(true, 7777, &game_payload(2, i, b"valid6")).build());
    }
    for _ in 0..3 {
        frames.push(lab.frame(false, 7777, &bad_magic).build());
        frames.push(lab.frame(true, 7777, &bad_version).build());
        frames.push(lab.frame(false, 7777, &bad_length).build());
        frames.push(lab.frame(false, 7777, &[0xF1, 0xF2]).build());
        frames.push(lab.frame(false, 9999, b"not a game port").build());
    }
    lab.send_frames(&frames);

    let s = lab.status();
    assert_eq!(s["mode"], mode);
    assert_eq!(s["program"], "tai");
    assert_eq!(s["ports"], serde_json::json!([7777]));
    // The kernel's own IPv6 multicast reports (MLD, sent when the lab's addresses join their
    // solicited-node groups) may add to `passed`: exact on game traffic, a bound on the rest.
    assert_eq!(counter(&s, "rx_packets") - counter(&s, "passed"), 20 + 12, "{s}");
    // No AF_XDP socket is bound: valid game packets go to the kernel, counted as no_socket.
    assert_eq!(counter(&s, "no_socket"), 20);
    assert_eq!(counter(&s, "steered"), 0);
    assert!(counter(&s, "passed") >= 3, "{s}");
    assert_eq!(counter(&s, "dropped.bad_magic"), 3);
    assert_eq!(counter(&s, "dropped.bad_version"), 3);
    assert_eq!(counter(&s, "dropped.bad_length"), 3);
    assert_eq!(counter(&s, "dropped.too_short"), 3);
    assert_eq!(s["timestamps"]["xdp"], 20);

    let out = lab.tickgate_ok(&["unload", &lab.rx_if]);
    assert!(out.contains("detached program id"), "{out}");
    assert!(!pin_dir(&lab).exists(), "pins left behind");
    let ip = support::sh(&["ip", "-n", &lab.rx_ns, "-d", "link", "show", &lab.rx_if]);
    let ip = String::from_utf8_lossy(&ip.stdout);
    assert!(!ip.contains("xdp"), "an XDP program is still attached: {ip}");
    assert!(stderr(&lab.tickgate(&["unload", &lab.rx_if])).contains("nothing of tickgate's is attached"));
}

#[test]
fn native_mode_counts_exactly_and_unloads_cleanly() {
    counters_match_what_was_sent("native");
}

#[test]
fn skb_mode_counts_exactly_and_unloads_cleanly() {
    counters_match_what_was_sent("skb");
}

#[test]
fn other_ports_still_reach_kernel_sockets() {
    let lab = Lab::new(1);
    lab.tickgate_ok(&["load", &lab.rx_if, "--insecure-v1", "--port", GAME]);
    for (bind, dst) in
        [("0.0.0.0:9999", SocketAddr::from((RX_IP4, 9999))), ("[::]:9999", SocketAddr::from((RX_IP6, 9999)))]
    {
        let received = std::thread::scope(|s| {
            let rx = s.spawn(|| {
                support::in_netns(&lab.rx_ns, || {
                    let sock = UdpSocket::bind(bind).unwrap();
                    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut buf = [0u8; 64];
                    let mut got = 0;
                    while got < 5 {
                        match sock.recv(&mut buf) {
                            Ok(n) if &buf[..n] == b"kernel path" => got += 1,
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                    got
                })
            });
            std::thread::sleep(Duration::from_millis(200));
            support::in_netns(&lab.tx_ns, || {
                let sock = UdpSocket::bind(if dst.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }).unwrap();
                for _ in 0..5 {
                    sock.send_to(b"kernel path", dst).unwrap();
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
            rx.join().unwrap()
        });
        assert_eq!(received, 5, "UDP to a non-game port must reach the kernel socket ({dst})");
    }
    assert!(counter(&lab.status(), "passed") >= 10);
}

#[test]
fn hw_program_on_veth_falls_back_to_the_xdp_clock() {
    let lab = Lab::new(1);
    let out = lab.tickgate_ok(&[
        "load",
        &lab.rx_if,
        "--insecure-v1",
        "--port",
        GAME,
        "--mode",
        "native",
        "--timestamps",
        "auto",
    ]);
    assert!(out.contains("tickgate_hw"), "auto in native mode should get the device-bound program: {out}");
    let frames: Vec<Vec<u8>> =
        (0..8).map(|i| lab.frame(i % 2 == 0, 7777, &game_payload(3, i, b"t")).build()).collect();
    lab.send_frames(&frames);
    let s = lab.status();
    assert_eq!(s["program"], "hw");
    // veth implements the kfunc but has no hardware clock: it returns no timestamp, and the
    // program falls back to the XDP clock, counting why.
    assert_eq!(s["timestamps"]["nic"], 0, "{s}");
    assert_eq!(s["timestamps"]["xdp"], 8, "{s}");
    assert_eq!(s["timestamps"]["kfunc_no_timestamp"], 8, "{s}");
    assert_eq!(counter(&s, "no_socket"), 8);

    let out = lab.tickgate_ok(&[
        "load",
        &lab.rx_if,
        "--insecure-v1",
        "--port",
        GAME,
        "--timestamps",
        "nic",
        "--force",
    ]);
    assert!(out.contains("tickgate_hw"), "{out}");
}

#[test]
fn second_load_needs_force_and_force_replaces_atomically() {
    let lab = Lab::new(1);
    lab.tickgate_ok(&["load", &lab.rx_if, "--insecure-v1", "--port", GAME, "--timestamps", "xdp"]);
    let before = lab.status()["prog_id"].as_u64().unwrap();
    let err = stderr(&lab.tickgate(&["load", &lab.rx_if, "--insecure-v1", "--port", GAME]));
    assert!(err.contains("already attached") && err.contains("--force"), "{err}");
    lab.tickgate_ok(&[
        "load",
        &lab.rx_if,
        "--insecure-v1",
        "--port",
        "7777,7778",
        "--timestamps",
        "xdp",
        "--force",
    ]);
    let s = lab.status();
    assert_ne!(s["prog_id"].as_u64().unwrap(), before, "the program was replaced");
    assert_eq!(s["ports"], serde_json::json!([7777, 7778]));
    assert_eq!(s["attached"], true);
}

#[test]
fn each_failure_has_its_own_message_and_exit_code() {
    let lab = Lab::new(1);
    let err = stderr(&lab.tickgate(&["load", "no-such-if", "--port", GAME]));
    assert!(err.contains("interface no-such-if not found"), "{err}");

    let err = stderr(&lab.tickgate(&[
        "load",
        &lab.rx_if,
        "--insecure-v1",
        "--port",
        GAME,
        "--mode",
        "skb",
        "--timestamps",
        "nic",
    ]));
    assert!(err.contains("--timestamps nic needs --mode native"), "{err}");

    // Loopback has no native XDP.
    let err = stderr(&lab.tickgate(&["load", "lo", "--port", GAME, "--timestamps", "xdp"]));
    assert!(err.contains("native mode is not supported by driver") && err.contains("--mode skb"), "{err}");

    let err = stderr(&lab.tickgate(&["unload", &lab.rx_if]));
    assert!(err.contains("nothing of tickgate's is attached"), "{err}");

    // Not root: drop to nobody inside the namespace.
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", lab.rx_ns))
        .args(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        .arg(support::bin("tickgate"))
        .args(["load", &lab.rx_if, "--insecure-v1", "--port", GAME])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(err.contains("must run as root") && err.contains("CAP_BPF"), "{err}");

    // Root without CAP_BPF (and CAP_SYS_ADMIN, which would stand in for it).
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", lab.rx_ns))
        .args(["setpriv", "--inh-caps=-bpf,-sys_admin", "--bounding-set=-bpf,-sys_admin"])
        .arg(support::bin("tickgate"))
        .args(["load", &lab.rx_if, "--insecure-v1", "--port", GAME])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(err.contains("runs as root but lacks CAP_BPF"), "{err}");

    // bpffs not mounted: a private mount namespace without it.
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "umount -l /sys/fs/bpf 2>/dev/null; nsenter --net=/run/netns/{} {} load {} --port {GAME}",
            lab.rx_ns,
            support::bin("tickgate").display(),
            lab.rx_if
        ))
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(err.contains("bpffs is not mounted") && err.contains("mount -t bpf"), "{err}");
    assert!(!pin_dir(&lab).exists());
}

#[test]
fn rate_limit_sheds_a_flood_and_shows_in_status() {
    let lab = Lab::new(1);
    let load = ["load", &lab.rx_if, "--insecure-v1", "--port", GAME, "--timestamps", "xdp"];
    let out = lab.tickgate_ok(&[&load[..], &["--rate-limit", "1:5"]].concat());
    assert!(out.contains("rate limit 1 pps per source, burst 5"), "{out}");
    let frames: Vec<Vec<u8>> =
        (0..20).map(|i| lab.frame(false, 7777, &game_payload(1, i, b"flood")).build()).collect();
    let tx_if = lab.tx_if.clone();
    support::in_netns(&lab.tx_ns, || {
        support::pin_to_current_cpu();
        support::send_raw(&tx_if, &frames);
    });
    let s = lab.status();
    assert_eq!(s["rate_limit"], serde_json::json!({"packets_per_second": 1, "burst": 5}));
    // At 1 pps no token comes back within the few ms the 20 frames take.
    assert_eq!(counter(&s, "no_socket"), 5, "{s}");
    assert_eq!(counter(&s, "dropped.rate_limited"), 15, "{s}");
    // The kernel's own IPv6 chatter on a fresh veth may add passed packets, nothing else.
    assert_eq!(counter(&s, "rx_packets") - counter(&s, "passed"), 20, "{s}");

    let err = stderr(&lab.tickgate(&[&load[..], &["--force", "--rate-limit", "100:0"]].concat()));
    assert!(err.contains("burst of 0"), "{err}");
    // A replace without the flag turns shedding off.
    lab.tickgate_ok(&[&load[..], &["--force"]].concat());
    assert_eq!(lab.status()["rate_limit"], serde_json::Value::Null);
}

#[test]
fn features_reports_what_the_kernel_says_about_veth() {
    let lab = Lab::new(1);
    let out = lab.tickgate_ok(&["features", &lab.rx_if, "--json"]);
    let f: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(f["driver"], "veth");
    assert_eq!(f["native_xdp"], true);
    assert_eq!(f["af_xdp_zero_copy"], false);
    assert_eq!(f["rx_timestamp_metadata"], true);
    assert!(f["kernel"].as_str().unwrap().chars().next().unwrap().is_ascii_digit());
    let err = stderr(&lab.tickgate(&["features", "no-such-if"]));
    assert!(err.contains("not found"), "{err}");
}
