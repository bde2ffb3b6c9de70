//! Fault survival in the veth lab, as root: what is left after a kill, an interface deleted or
//! bounced under traffic, a second run on a busy interface, ring starvation, and a flood at the
//! generator's maximum rate while legit clients play.

mod support;

use std::time::{Duration, Instant};

use support::{Lab, Run, play};

fn u(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// `n` consecutive packets of client 1 (one input each), as Ethernet frames for the lab.
fn client_burst(lab: &Lab, n: usize) -> Vec<Vec<u8>> {
    let mut client = tickgate_testkit::client::SyntheticClient::new(1, 1);
    let mut packet = Vec::new();
    (0..n)
        .map(|_| {
            client.next_packet(0, &mut packet);
            lab.frame(false, 7777, &packet).build()
        })
        .collect()
}

fn shows_xdp(lab: &Lab) -> bool {
    let out = support::sh(&["ip", "-n", &lab.rx_ns, "-d", "link", "show", &lab.rx_if]);
    String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
}

#[test]
fn a_pinned_load_outlives_its_process_and_clean_removes_it() {
    let lab = Lab::new(1);
    lab.tickgate_ok(&["load", &lab.rx_if, "--insecure-v1", "--port", "7777", "--timestamps", "xdp"]);
    // The CLI has exited; the pinned link keeps the program attached and counting.
    assert!(shows_xdp(&lab));
    play(&lab, 2, 5, false);
    assert_eq!(lab.status()["counters"]["no_socket"], 10);
    let out = lab.tickgate_ok(&["clean"]);
    assert!(out.contains(&format!("{}: detached program id", lab.rx_if)), "{out}");
    assert!(!shows_xdp(&lab), "clean detached the program");
    assert!(!std::path::Path::new("/sys/fs/bpf/tickgate").join(&lab.rx_if).exists());
    // Nothing left: a second clean says so (other tests' pins may exist, so ask for ours).
    let out = lab.tickgate_ok(&["clean", &lab.rx_if]);
    assert!(out.contains("nothing to clean"), "{out}");
}

#[test]
fn deleting_the_interface_under_traffic_stops_run_with_a_clear_error() {
    let lab = Lab::new(1);
    let run = Run::start_v1(&lab, &["--timestamps", "xdp"]);
    let sender = {
        let tx_ns = lab.tx_ns.clone();
        std::thread::spawn(move || {
            // Bounded: 3 s at most; sends fail once the veth pair is gone.
            tickgate_testkit::lab::in_netns(&tx_ns, || {
                let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
                let mut client = tickgate_testkit::client::SyntheticClient::new(1, 3);
                let mut packet = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(3);
                let mut sent = 0u64;
                while Instant::now() < deadline {
                    client.next_packet(tickgate::sys::clock_tai_ns(), &mut packet);
                    if sock.send_to(&packet, (tickgate_testkit::lab::RX_IP4, 7777)).is_ok() {
                        sent += 1;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                sent
            })
            .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    support::sh(&["ip", "-n", &lab.rx_ns, "link", "del", &lab.rx_if]);
    let (ok, stderr) = run.wait_exit(10);
    assert!(!ok, "run must fail when its interface disappears");
    assert!(stderr.contains("no longer attached") && stderr.contains("deleted"), "{stderr}");
    assert!(stderr.contains("summary for"), "it still prints what it received: {stderr}");
    assert!(sender.join().unwrap() > 0);
}

#[test]
fn an_interface_bounced_down_and_up_keeps_delivering() {
    let lab = Lab::new(1);
    let run = Run::start_v1(&lab, &["--timestamps", "xdp"]);
    play(&lab, 4, 20, false);
    support::sh(&["ip", "-n", &lab.rx_ns, "link", "set", &lab.rx_if, "down"]);
    std::thread::sleep(Duration::from_millis(300));
    support::sh(&["ip", "-n", &lab.rx_ns, "link", "set", &lab.rx_if, "up"]);
    // Wait until the link is usable again before playing on.
    std::thread::sleep(Duration::from_millis(500));
    play(&lab, 4, 20, false); // the same clients' seqs restart at 1: duplicates, by design
    let second = tickgate_testkit::lab::in_netns(&lab.tx_ns, || {
        let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        let mut client = tickgate_testkit::client::SyntheticClient::new(99, 1);
        let mut packet = Vec::new();
        for _ in 0..20 {
            client.next_packet(tickgate::sys::clock_tai_ns(), &mut packet);
            sock.send_to(&packet, (tickgate_testkit::lab::RX_IP4, 7777)).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    second.unwrap();
    // SAFETY: kill on our own child's pid.
    assert_eq!(unsafe { libc::kill(run.child.id() as i32, libc::SIGTERM) }, 0);
    let s = run.finish();
    // Everything before and after the bounce arrived: the XDP program, the socket binding and
    // the worker all survive a down/up (the link is not detached by a bounce).
    assert_eq!(u(&s["counters"]["steered"]), 4 * 20 * 2 + 20, "{s}");
    assert_eq!(u(&s["sequencer"]["inputs_ordered"]), 4 * 20 + 20, "{s}");
    assert_eq!(s["unexplained_steered"], 0);
}

#[test]
fn a_second_run_on_a_busy_interface_is_refused_clearly() {
    let lab = Lab::new(1);
    let first = Run::start_v1(&lab, &["--timestamps", "xdp"]);
    let out = lab.tickgate(&["run", &lab.rx_if, "--insecure-v1", "--port", "7777", "--duration", "1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let pid = first.child.id().to_string();
    assert!(err.contains("is busy") && err.contains(&format!("tickgate run (pid {pid})")), "{err}");
    // The first run is unharmed.
    assert!(shows_xdp(&lab));
    // SAFETY: kill on our own child's pid.
    assert_eq!(unsafe { libc::kill(first.child.id() as i32, libc::SIGTERM) }, 0);
    let s = first.finish();
    assert_eq!(s["unexplained_steered"], 0);
}

#[test]
fn starved_rings_are_counted_and_recover() {
    let lab = Lab::new(1);
    let run =
        Run::start_v1(&lab, &["--frames", "16", "--rx-ring", "16", "--cores", "0", "--timestamps", "xdp"]);
    let burst = client_burst(&lab, 5000);
    let ifname = lab.tx_if.clone();
    tickgate_testkit::lab::in_netns(&lab.tx_ns, || {
        // Same core as the worker: the sender's softirq fills the 16 frames before it can run.
        support::pin_to_cpu(0);
        support::send_raw(&ifname, &burst);
    })
    .unwrap();
    // After the burst, paced traffic from new clients is delivered in full.
    play(&lab, 4, 50, false);
    // SAFETY: kill on our own child's pid.
    assert_eq!(unsafe { libc::kill(run.child.id() as i32, libc::SIGTERM) }, 0);
    let s = run.finish();
    let k = &s["queues"][0]["xdp_statistics"];
    assert!(
        u(&k["rx_fill_ring_empty_descs"]) + u(&k["rx_ring_full"]) > 0,
        "the burst starved the rings: {s}"
    );
    assert_eq!(s["unexplained_steered"], 0, "every kernel drop is counted: {s}");
    assert_eq!(u(&s["counters"]["steered"]), 5000 + 200);
    let delivered: u64 = s["queues"].as_array().unwrap().iter().map(|q| u(&q["delivered"])).sum();
    assert!(delivered >= 200, "the paced clients after the burst all got through: {s}");
}

#[test]
fn a_flood_at_full_rate_does_not_cost_legit_clients_an_input() {
    let lab = Lab::new(2);
    let run = Run::start_v1(&lab, &["--timestamps", "xdp"]);
    let mut junk = Vec::new();
    for i in 0..100_000u32 {
        let mut payload = vec![0u8; 40];
        payload[..4].copy_from_slice(&i.to_be_bytes()); // wrong magic
        junk.push(lab.frame(false, 7777, &payload).build());
    }
    let other_port: Vec<Vec<u8>> =
        (0..20_000).map(|_| lab.frame(false, 9999, b"not a game port").build()).collect();
    let flood = {
        let (tx_ns, tx_if) = (lab.tx_ns.clone(), lab.tx_if.clone());
        std::thread::spawn(move || {
            tickgate_testkit::lab::in_netns(&tx_ns, || {
                support::send_raw(&tx_if, &junk);
                support::send_raw(&tx_if, &other_port);
            })
            .unwrap()
        })
    };
    let veth_before =
        support::in_netns(&lab.tx_ns, || tickgate_testkit::traffic::veth_counters(&lab.tx_if).unwrap());
    let sent = play(&lab, 16, 100, false);
    flood.join().unwrap();
    let veth =
        support::in_netns(&lab.tx_ns, || tickgate_testkit::traffic::veth_counters(&lab.tx_if).unwrap())
            .since(&veth_before);
    // SAFETY: kill on our own child's pid.
    assert_eq!(unsafe { libc::kill(run.child.id() as i32, libc::SIGTERM) }, 0);
    let s = run.finish();
    let c = &s["counters"];
    // Every legit input arrived, exactly once, whatever the flood did.
    assert_eq!(u(&s["sequencer"]["inputs_ordered"]), 16 * 100, "{s}");
    // Every game packet reached XDP, but for those the sender veth itself dropped at full rate
    // (which ones is unknown: the junk shares its queue); redundancy covered their inputs.
    assert!(u(&c["steered"]) <= sent && u(&c["steered"]) + veth.tx_dropped >= sent, "{s} {veth:?}");
    // The XDP counters balance exactly, the junk was dropped by reason before any copy.
    let dropped: u64 = c["dropped"].as_object().unwrap().values().map(u).sum();
    assert_eq!(u(&c["rx_packets"]), u(&c["steered"]) + u(&c["passed"]) + u(&c["no_socket"]) + dropped);
    assert_eq!(u(&c["dropped"]["bad_magic"]), 100_000, "every junk packet reached XDP and was dropped: {s}");
    assert!(u(&c["passed"]) >= 20_000);
    assert_eq!(s["unexplained_steered"], 0);
}

#[test]
fn run_works_as_an_unprivileged_user_with_the_service_units_capabilities() {
    let lab = Lab::new(1);
    let unit =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/tickgate.service"))
            .unwrap();
    let caps: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("AmbientCapabilities="))
        .unwrap()
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let caps = caps.join(",");
    let dir = support::run_dir(&lab);
    std::process::Command::new("chmod").arg("777").arg(&dir).status().unwrap();
    let summary = dir.join("unprivileged.json");
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", lab.rx_ns))
        .args(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(format!("--inh-caps={caps}"))
        .arg(format!("--ambient-caps={caps}"))
        .arg(support::bin("tickgate"))
        .args([
            "run",
            &lab.rx_if,
            "--insecure-v1",
            "--port",
            "7777",
            "--timestamps",
            "xdp",
            "--duration",
            "1",
            "--summary-json",
        ])
        .arg(&summary)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    assert_eq!(s["program"], "tickgate_tai");
    assert_eq!(s["queues"][0]["bind_mode"], "copy");
}

#[test]
fn a_run_stopped_under_a_flood_accounts_for_every_steered_packet() {
    // Valid game packets keep coming, from the worker's own core, through the stop and past
    // its 500 ms drain: whatever the worker could not read before it closed is counted as
    // left_in_ring, so the summary still balances.
    let lab = Lab::new(1);
    let run = Run::start_v1(&lab, &["--cores", "0", "--timestamps", "xdp"]);
    let burst = client_burst(&lab, 2000);
    let flood = {
        let (tx_ns, tx_if) = (lab.tx_ns.clone(), lab.tx_if.clone());
        std::thread::spawn(move || {
            tickgate_testkit::lab::in_netns(&tx_ns, || {
                // The worker's core: its drain competes with the sender's softirq.
                support::pin_to_cpu(0);
                // Bounded: 3 s, and at most 500 bursts (repeats are steered and read, then
                // rejected as duplicates).
                let until = Instant::now() + Duration::from_secs(3);
                let mut bursts = 0;
                while Instant::now() < until && bursts < 500 {
                    support::send_raw(&tx_if, &burst);
                    bursts += 1;
                }
            })
            .unwrap()
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    // SAFETY: kill on our own child's pid.
    assert_eq!(unsafe { libc::kill(run.child.id() as i32, libc::SIGTERM) }, 0);
    let s = run.finish();
    flood.join().unwrap();
    let q = &s["queues"][0];
    eprintln!("left in ring at stop: {}", q["left_in_ring"]);
    assert!(u(&s["counters"]["steered"]) > 2000, "{s}");
    assert_eq!(s["unexplained_steered"], 0, "every steered packet is read or counted: {s}");
}
