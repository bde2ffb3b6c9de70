//! `tickgate run` in a veth lab with four RX queues, as root: every input delivered exactly once
//! although clients send each one three times, counts that balance, copy mode reported, a slow
//! consumer and a too-small UMEM showing up as counters (never as a hang or silent loss), and
//! no XDP program left behind after SIGKILL.
#![expect(clippy::unwrap_used, reason = "integration tests: a failed step should fail loudly")]

mod support;

use std::{collections::BTreeSet, path::Path};

use support::{Lab, Run, play, run_dir};
use tickgate_proto::{Action, InputFrame, PlayerCommand};

const QUEUES: u32 = 4;
const REDUNDANCY: u64 = 3;

/// A packet of client `client` carrying inputs `seq-2..=seq` (fewer at the start).
fn input_packet(client: u32, seq: u64) -> Vec<u8> {
    let first = seq.saturating_sub(REDUNDANCY - 1).max(1);
    let commands = (first..=seq)
        .map(|s| PlayerCommand {
            command_id: s as u32,
            entity_id: client,
            client_frame: s as u32,
            action: Action::Move as i32,
            ..Default::default()
        })
        .collect();
    let mut out = Vec::new();
    tickgate::wire::encode_input(client, seq as u32, &InputFrame { first_seq: first, commands }, &mut out)
        .unwrap();
    out
}

fn u(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn sum(queues: &[serde_json::Value], f: impl Fn(&serde_json::Value) -> u64) -> u64 {
    queues.iter().map(f).sum()
}

fn every_input_once(mode: &str, ipv6: bool) {
    let lab = Lab::new(QUEUES);
    let frames_path = run_dir(&lab).join("frames.jsonl");
    let run = Run::start_v1(
        &lab,
        &[
            "--mode",
            mode,
            "--duration",
            "3",
            "--timestamps",
            "xdp",
            "--frames-out",
            frames_path.to_str().unwrap(),
        ],
    );
    let (clients, inputs) = (64u32, 20u64);
    let sent = play(&lab, clients, inputs, ipv6);
    let s = run.finish();
    let queues = s["queues"].as_array().unwrap();
    assert_eq!(queues.len(), QUEUES as usize);
    let busy = queues.iter().filter(|q| u(&q["received"]) > 0).count();
    // In skb mode veth hands generic XDP the sender's TX queue as "recorded RX queue + 1", so TX
    // queues 0 and 1 both land on RX queue 0 and the last RX queue never receives.
    let expected_busy = if mode == "skb" { QUEUES as usize - 1 } else { QUEUES as usize };
    assert!(busy >= expected_busy, "{busy} of {QUEUES} queues received: {s}");
    for q in queues {
        assert_eq!(q["bind_mode"], "copy", "veth refuses zero-copy: copy mode is used and reported");
    }
    // XDP steered every packet, the workers received every one, nothing is unexplained.
    assert_eq!(u(&s["counters"]["steered"]), sent, "{s}");
    assert_eq!(sum(queues, |q| u(&q["received"])), sent);
    assert_eq!(s["unexplained_steered"], 0);
    // Each input exactly once, duplicates removed and counted.
    let unique = u64::from(clients) * inputs;
    let commands_sent = u64::from(clients) * (REDUNDANCY * inputs - (1 + 2)); // seq 1 and 2 carry fewer
    assert_eq!(sum(queues, |q| u(&q["delivered"])), unique, "{s}");
    assert_eq!(sum(queues, |q| u(&q["dropped_inputs"]["duplicate"])), commands_sent - unique);
    assert_eq!(u(&s["sequencer"]["inputs_ordered"]), unique);
    if mode == "native" {
        // One NAPI context per queue stamps and enqueues in order. In skb mode two CPUs' backlogs
        // can feed one socket, stamping before taking its lock, so a queue's timestamps may step
        // back slightly; the merge counts those (backwards) and keeps its output ordered.
        // (out_of_order may still count inputs that reached the ring later than the worker's
        // watermark slack on a loaded machine: ordered and counted, never lost.)
        assert_eq!(u(&s["sequencer"]["backwards"]), 0, "per-queue timestamps never go back: {s}");
        // Drained rings publish the instant before the read, proved by the XDP program's count
        // of the queue's packets; the frames below stay in timestamp order with it.
        assert!(sum(queues, |q| u(&q["watermarks"]["proved"])) > 0, "{s}");
    } else {
        // In skb mode the count is not trusted (two CPUs may run one queue): the slack rule.
        assert_eq!(sum(queues, |q| u(&q["watermarks"]["proved"])), 0, "{s}");
        assert!(sum(queues, |q| u(&q["watermarks"]["by_slack"])) > 0, "{s}");
    }

    let text = std::fs::read_to_string(&frames_path).unwrap();
    let mut seen = BTreeSet::new();
    let mut last_ts = 0;
    let mut last_tick = None;
    for line in text.lines() {
        let frame: serde_json::Value = serde_json::from_str(line).unwrap();
        let tick = u(&frame["tick"]);
        if let Some(last) = last_tick {
            assert_eq!(tick, last + 1, "every tick is emitted, in order");
        }
        last_tick = Some(tick);
        for input in frame["inputs"].as_array().unwrap() {
            let ts = u(&input["rx_ts_ns"]);
            assert!(ts >= last_ts, "frames are in timestamp order");
            last_ts = ts;
            assert!(seen.insert((u(&input["client"]), u(&input["seq"]))), "delivered twice: {input}");
            assert_eq!(input["ts_source"], "xdp");
        }
    }
    assert_eq!(seen.len() as u64, unique);
}

#[test]
fn native_mode_ipv4_every_input_exactly_once() {
    every_input_once("native", false);
}

#[test]
fn skb_mode_ipv6_every_input_exactly_once() {
    every_input_once("skb", true);
}

#[test]
fn a_slow_consumer_is_counted_not_hung() {
    let lab = Lab::new(1);
    // A hand-off of one item against bursts of three inputs per packet: the sequencer thread
    // cannot keep up, and the worker drops instead of waiting, counted as handoff_full.
    let run = Run::start_v1(&lab, &["--duration", "3", "--handoff-capacity", "1", "--timestamps", "xdp"]);
    // Paced sends keep the RX ring from overflowing, so the hand-off is the only bottleneck.
    play(&lab, 16, 400, false);
    let s = run.finish();
    let q = &s["queues"][0];
    assert!(u(&q["dropped_inputs"]["handoff_full"]) > 0, "{s}");
    assert_eq!(s["unexplained_steered"], 0, "{s}");
    let commands = 16 * (REDUNDANCY * 400 - 3);
    let accounted =
        u(&q["delivered"]) + q["dropped_inputs"].as_object().unwrap().values().map(u).sum::<u64>();
    assert_eq!(accounted, commands, "every command is delivered or dropped under a reason: {q}");
}

#[test]
fn a_umem_too_small_shows_up_as_fill_ring_starvation() {
    let lab = Lab::new(1);
    // 16 frames for a burst of thousands, with the worker on the sender's core: the kernel runs
    // out of fill descriptors while the sender holds the core.
    let run = Run::start_v1(
        &lab,
        &["--duration", "3", "--frames", "16", "--rx-ring", "16", "--cores", "0", "--timestamps", "xdp"],
    );
    let frames: Vec<Vec<u8>> =
        (1..=5000u64).map(|i| lab.frame(false, 7777, &input_packet(1, i)).build()).collect();
    let ifname = lab.tx_if.clone();
    support::in_netns(&lab.tx_ns, || {
        support::pin_to_cpu(0);
        support::send_raw(&ifname, &frames);
    });
    let s = run.finish();
    let k = &s["queues"][0]["xdp_statistics"];
    assert!(u(&k["rx_fill_ring_empty_descs"]) + u(&k["rx_ring_full"]) + u(&k["rx_dropped"]) > 0, "{s}");
    assert!(u(&k["rx_fill_ring_empty_descs"]) > 0 || u(&k["rx_ring_full"]) > 0, "{s}");
    assert_eq!(u(&s["counters"]["steered"]), 5000);
    assert_eq!(s["unexplained_steered"], 0, "kernel drops are all counted: {s}");
}

#[test]
fn sigkill_under_traffic_leaves_no_xdp_program_attached() {
    let lab = Lab::new(1);
    let mut run = Run::start_v1(&lab, &["--timestamps", "xdp"]);
    let shows_xdp = || {
        let out = support::sh(&["ip", "-n", &lab.rx_ns, "-d", "link", "show", &lab.rx_if]);
        String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
    };
    assert!(shows_xdp(), "run attached its program");
    std::thread::scope(|s| {
        // Traffic for 2 s (bounded), while the run is killed half-way through.
        let sender = s.spawn(|| play(&lab, 8, 5_000, false));
        std::thread::sleep(std::time::Duration::from_millis(500));
        run.child.kill().unwrap(); // SIGKILL
        let _ = run.child.wait();
        assert!(
            support::wait_for(5, || !shows_xdp()),
            "the kernel detached the program when the link fd closed"
        );
        sender.join().unwrap();
    });
    assert!(!Path::new("/sys/fs/bpf/tickgate").join(&lab.rx_if).exists(), "run pins nothing");
    // What the killed run leaves is a stale live report, which clean removes.
    let out = lab.tickgate_ok(&["clean", &lab.rx_if]);
    assert!(out.contains("removed stale run report"), "{out}");
}

#[test]
fn busy_poll_mode_delivers_too() {
    let lab = Lab::new(2);
    let run = Run::start_v1(&lab, &["--duration", "2", "--busy-poll", "--timestamps", "xdp"]);
    let sent = play(&lab, 8, 20, false);
    let s = run.finish();
    assert_eq!(u(&s["counters"]["steered"]), sent);
    assert_eq!(s["unexplained_steered"], 0);
    assert_eq!(u(&s["sequencer"]["inputs_ordered"]), 8 * 20, "{s}");
}

#[test]
fn paced_mode_delivers_every_input_in_order() {
    // A paced worker reads at the 1 kHz grid's seal instants and every ms, not per packet;
    // what waits in the ring keeps its XDP stamp, so every input still lands in a frame, in a
    // valid order, none late because of the pacing. An input can be late only if it reached the
    // ring behind a watermark its queue had already published (counted as `out_of_order`): on a
    // loaded machine the kernel can hold a stamped packet longer than the watermark slack
    // (a CI run saw 8 ms with two lab tests on two cores), which no reading schedule prevents.
    let lab = Lab::new(2);
    let run = Run::start_v1(
        &lab,
        &["--duration", "3", "--paced", "--timestamps", "xdp", "--tick-hz", "1000", "--grace-us", "500"],
    );
    let sent = play(&lab, 8, 200, false);
    let s = run.finish();
    assert_eq!(u(&s["counters"]["steered"]), sent);
    assert_eq!(s["unexplained_steered"], 0);
    assert_eq!(u(&s["sequencer"]["inputs_ordered"]), 8 * 200, "{s}");
    let (late, behind) = (u(&s["sequencer"]["late_next"]), u(&s["sequencer"]["out_of_order"]));
    assert!(late <= behind, "{late} late inputs, only {behind} arrived behind a published watermark: {s}");
}

#[test]
fn a_paced_worker_at_60_hz_reads_a_few_times_a_tick() {
    // At 60 Hz a tick is 16.7 idle intervals. Between seal instants a paced worker stretches
    // its timed reads (up to 4 ms at a low rate, the last one at least half an interval before
    // the seal instant), so its alarm fires about five times a tick rather than 17: counted by
    // the queue's `wakeups` (the alarm's own expiries, whatever the clock's speed). Every input
    // still lands in a frame.
    let lab = Lab::new(2);
    let run = Run::start_v1(&lab, &["--duration", "3", "--paced", "--timestamps", "xdp", "--tick-hz", "60"]);
    let sent = play(&lab, 8, 200, false);
    let s = run.finish();
    assert_eq!(u(&s["counters"]["steered"]), sent);
    assert_eq!(u(&s["sequencer"]["inputs_ordered"]), 8 * 200, "{s}");
    for q in s["queues"].as_array().unwrap() {
        let (seal, timed) = (u(&q["wakeups"]["seal"]), u(&q["wakeups"]["timed"]));
        assert!(seal >= 60, "a second's seal instants at least: {q}");
        assert!(timed <= 8 * seal, "{timed} timed wake-ups for {seal} seal instants: {q}");
    }
}

#[test]
fn status_shows_a_running_run_and_sigterm_stops_it_cleanly() {
    let lab = Lab::new(2);
    let run = Run::start_v1(&lab, &["--timestamps", "xdp"]);
    let sent = play(&lab, 8, 10, false);
    // The live report is refreshed every second.
    let mut status = serde_json::Value::Null;
    let seen = support::wait_for(5, || {
        status = serde_json::from_str(&lab.tickgate_ok(&["status", &lab.rx_if, "--json"])).unwrap();
        status["counters"]["steered"].as_u64() == Some(sent)
    });
    assert!(seen, "status --json shows the run's counters: {status}");
    assert_eq!(status["queues"].as_array().unwrap().len(), 2);
    assert_eq!(u(&status["pid"]), u64::from(run.child.id()));
    let text = lab.tickgate_ok(&["status"]);
    assert!(text.contains("tickgate run (pid"), "{text}");

    // SIGTERM: workers stop, the sequencer drains, the summary is written, the exit is clean.
    // SAFETY: kill on our own child's pid.
    assert_eq!(unsafe { libc::kill(run.child.id() as i32, libc::SIGTERM) }, 0);
    let s = run.finish();
    assert_eq!(u(&s["sequencer"]["inputs_ordered"]), 8 * 10);
    assert_eq!(s["unexplained_steered"], 0);
    let err = String::from_utf8_lossy(&lab.tickgate(&["status", &lab.rx_if]).stderr).into_owned();
    assert!(err.contains("nothing of tickgate's is attached"), "the run is gone: {err}");
}

#[test]
fn a_core_that_does_not_exist_is_refused_before_attaching() {
    let lab = Lab::new(1);
    let out = lab.tickgate(&[
        "run",
        &lab.rx_if,
        "--insecure-v1",
        "--port",
        "7777",
        "--cores",
        "4096",
        "--duration",
        "1",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("core 4096 does not exist"), "{err}");
    let out = lab.tickgate(&[
        "run",
        &lab.rx_if,
        "--insecure-v1",
        "--port",
        "7777",
        "--queues",
        "5",
        "--duration",
        "1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("queue 5 does not exist"), "{err}");
    let ip = support::sh(&["ip", "-n", &lab.rx_ns, "-d", "link", "show", &lab.rx_if]);
    assert!(!String::from_utf8_lossy(&ip.stdout).contains("prog/xdp"));
}

#[test]
fn metrics_endpoint_exports_every_counter_on_loopback() {
    use std::io::{Read as _, Write as _};
    let lab = Lab::new(1);
    // Loopback of the receiver namespace: nothing else listens there.
    let run = Run::start_v1(&lab, &["--timestamps", "xdp", "--metrics", "9187"]);
    let sent = play(&lab, 4, 25, false);
    let scrape = || {
        tickgate_testkit::lab::in_netns(&lab.rx_ns, || {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", 9187)).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut body = String::new();
            s.read_to_string(&mut body).unwrap();
            body
        })
        .unwrap()
    };
    let mut body = String::new();
    let fresh = support::wait_for(5, || {
        body = scrape();
        body.contains(&format!("tickgate_xdp_packets_total{{outcome=\"steered\"}} {sent}"))
    });
    assert!(fresh, "{body}");
    assert!(body.starts_with("HTTP/1.1 200"));
    assert!(body.contains("tickgate_queue_delivered_inputs_total{queue=\"0\"} 100"), "{body}");
    assert!(body.contains("tickgate_input_latency_seconds_count 100"), "{body}");
    assert!(body.contains("tickgate_xsk_rx_ring_full_total{queue=\"0\"} 0"));
    // SAFETY: kill on our own child's pid.
    assert_eq!(unsafe { libc::kill(run.child.id() as i32, libc::SIGTERM) }, 0);
    run.finish();
}

#[test]
fn replay_of_a_recorded_run_reproduces_its_frames_and_hashes() {
    let lab = Lab::new(4);
    let dir = run_dir(&lab);
    let (log, live_frames, replayed) =
        (dir.join("run.tgrec"), dir.join("live.jsonl"), dir.join("replayed.jsonl"));
    let _ = std::fs::remove_file(&log);
    let run = Run::start_v1(
        &lab,
        &[
            "--timestamps",
            "xdp",
            "--duration",
            "3",
            "--record",
            log.to_str().unwrap(),
            "--frames-out",
            live_frames.to_str().unwrap(),
        ],
    );
    play(&lab, 16, 30, false);
    let s = run.finish();
    assert_eq!(u(&s["sequencer"]["inputs_ordered"]), 16 * 30);

    let out = lab.tickgate(&["replay", log.to_str().unwrap(), "--frames-out", replayed.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("ends cleanly"), "{err}");
    let live = std::fs::read_to_string(&live_frames).unwrap();
    let again = std::fs::read_to_string(&replayed).unwrap();
    assert!(live.lines().count() > 10, "a 3 s run at 60 Hz has frames");
    assert_eq!(live, again, "replay rebuilds the same frames, hashes included, byte for byte");

    // A torn tail (a crash mid-write) is reported; everything before it replays.
    let bytes = std::fs::read(&log).unwrap();
    let torn = dir.join("torn.tgrec");
    std::fs::write(&torn, &bytes[..bytes.len() - 5]).unwrap();
    let torn_frames = dir.join("torn.jsonl");
    let out =
        lab.tickgate(&["replay", torn.to_str().unwrap(), "--frames-out", torn_frames.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("stopped at the damage") && err.contains("torn write"), "{err}");
    let partial = std::fs::read_to_string(&torn_frames).unwrap();
    assert!(live.starts_with(&partial), "the frames before the damage are the live run's");
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A `--frames-out` reader that opens its pipe and never reads: the run goes on (duration,
/// signals, live status), its memory stays flat, and what it could not write is counted.
fn stalled_reader_run(stop_by_signal: bool) {
    let lab = Lab::new(1);
    let fifo = run_dir(&lab).join(if stop_by_signal { "stalled-term.fifo" } else { "stalled.fifo" });
    let _ = std::fs::remove_file(&fifo);
    support::sh(&["mkfifo", fifo.to_str().unwrap()]);
    // The reader: opens (which lets the writer's open return) and then holds the pipe unread.
    let reader_path = fifo.clone();
    let reader = std::thread::spawn(move || {
        let file = std::fs::File::open(reader_path).unwrap();
        std::thread::sleep(std::time::Duration::from_secs(14));
        drop(file);
    });
    let started = std::time::Instant::now();
    let duration = if stop_by_signal { "60" } else { "5" };
    let mut run = Run::start_v1(
        &lab,
        &[
            "--duration",
            duration,
            "--tick-hz",
            "1000",
            "--timestamps",
            "xdp",
            "--frames-out",
            fifo.to_str().unwrap(),
        ],
    );
    let pid = run.child.id();
    // A first input starts the tick grid; from then on 1000 frames a second are sealed.
    play(&lab, 1, 5, false);
    let live = std::path::Path::new("/run/tickgate").join(format!("{}.json", lab.rx_if));
    let live_report =
        || -> serde_json::Value { serde_json::from_slice(&std::fs::read(&live).unwrap()).unwrap() };
    let uptime = || live_report()["uptime_s"].as_f64().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    let (rss_early, uptime_early) = (rss_kib(pid), uptime());
    std::thread::sleep(std::time::Duration::from_millis(2_000));
    let (rss_late, uptime_late) = (rss_kib(pid), uptime());
    assert!(uptime_late > uptime_early + 1.0, "the live status froze: {uptime_early} then {uptime_late}");
    // The live status says, while it happens, that the reader is behind and lines are dropped.
    let during = live_report()["outputs"]["frames_out"].clone();
    assert!(during["dropped"].as_u64().is_some_and(|d| d > 0), "live outputs.frames_out: {during}");
    assert!(during["unwritten"].as_u64().is_some_and(|q| q > 0), "live outputs.frames_out: {during}");
    // 2 s at 1000 frames/s with nobody reading: bounded queues, so no growth worth the name.
    assert!(rss_late < rss_early + 16 * 1024, "memory grew from {rss_early} KiB to {rss_late} KiB");
    if stop_by_signal {
        // SAFETY: kill on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
    let exited = loop {
        if let Ok(Some(_)) = run.child.try_wait() {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(exited, "the run did not stop with its reader stalled ({:?} after start)", started.elapsed());
    let s = run.finish();
    let frames = s["sequencer"]["frames"].as_u64().unwrap();
    assert!(frames > 3_000, "{}", s["sequencer"]);
    // Every frame line is accounted for in the summary, and most of them were not written.
    let out = &s["outputs"]["frames_out"];
    let count = |k: &str| out[k].as_u64().unwrap_or_else(|| panic!("outputs.frames_out.{k}: {s}"));
    let handed = frames - s["sequencer"]["frames_overflowed"].as_u64().unwrap();
    assert_eq!(count("written") + count("dropped") + count("unwritten"), handed, "{out}");
    assert!(count("dropped") > 0, "{out}");
    reader.join().unwrap();
}

#[test]
fn a_frames_out_reader_that_never_reads_does_not_hold_the_run_at_its_duration() {
    stalled_reader_run(false);
}

#[test]
fn a_frames_out_reader_that_never_reads_does_not_hold_the_run_against_sigterm() {
    stalled_reader_run(true);
}
