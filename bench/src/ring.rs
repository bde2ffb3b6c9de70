//! The ring scenario: a sealed frame's way into a game server in another process and language.
//! tickgate's ring writer publishes frames at the tick rate into a frame ring on /dev/shm; the
//! Go example reader (`userspace/go/cmd/tickgate-ringbench`) takes them, spinning or sleeping
//! on the ring's futex, and times each one from the writer's stamp (CLOCK_MONOTONIC, carried in
//! the frame's `start_ns`) to its arrival. The baseline carries the very same record bodies over
//! a Unix datagram socket to the same Go program (blocking `recv`, or a `MSG_DONTWAIT` spin).
//! Modes alternate within each round.

use std::{
    io::{BufRead as _, BufReader},
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use tickgate::{
    frame_queue::Frame,
    game::{RingWriter, encode_frame, ring::kind},
    input::{Clock, Input, InputKind, Timestamp},
    sys::clock_monotonic_ns,
};

/// One transport and waiting mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Mode {
    /// `ring` or `unix`.
    pub transport: &'static str,
    /// Spinning (true) or sleeping.
    pub spin: bool,
}

/// What the Go reader reported.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Reading {
    /// Frames timed.
    pub frames: u64,
    /// Median, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// Largest, µs.
    pub max_us: f64,
    /// Records the ring overwrote before the reader got them.
    pub missed: u64,
}

/// One measurement.
#[derive(Clone, Debug, Serialize)]
pub struct RingResult {
    /// The transport and mode.
    pub mode: Mode,
    /// The round.
    pub round: u32,
    /// What the reader saw.
    pub reading: Reading,
}

/// Builds the Go reader into `dir`.
pub fn build_reader(dir: &Path) -> Result<PathBuf> {
    // Absolute: go builds from userspace/go.
    let out =
        std::fs::canonicalize(dir).with_context(|| format!("{}", dir.display()))?.join("tickgate-ringbench");
    let go = concat!(env!("CARGO_MANIFEST_DIR"), "/../userspace/go");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg("./cmd/tickgate-ringbench")
        .current_dir(go)
        .status()
        .context("running go (scripts/setup.sh installs golang-go)")?;
    if !status.success() {
        bail!("go build of the ring bench reader failed");
    }
    Ok(out)
}

/// A frame of four players' commands with 16-byte payloads, `start_ns` = now (monotonic).
fn frame(tick: u64) -> Frame {
    let inputs = (0..4u32)
        .map(|p| Input {
            kind: InputKind::Command,
            rx: Timestamp { ns: tick, clock: Clock::Xdp },
            queue: 0,
            client_id: p,
            match_id: 1,
            seq: tick,
            client_frame: tick as u32,
            payload: [p as u8; 16].into(),
        })
        .collect();
    Frame {
        match_id: 1,
        tick,
        tick_hz: 1000,
        start_ns: 0,
        inputs,
        hash: [0; 32],
        absent: vec![],
        last: false,
    }
}

/// Runs every mode `rounds` times with `frames` frames at `tick_hz`.
pub fn run(
    reader: &Path,
    rounds: u32,
    frames: u64,
    tick_hz: u32,
    stop: &AtomicBool,
) -> Result<Vec<RingResult>> {
    let modes = [
        Mode { transport: "ring", spin: false },
        Mode { transport: "unix", spin: false },
        Mode { transport: "ring", spin: true },
        Mode { transport: "unix", spin: true },
    ];
    let dir = Path::new("/dev/shm").join(format!("tickgate-bench-ring-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut out = Vec::new();
    for round in 0..rounds {
        let mut order = modes.to_vec();
        if round % 2 == 1 {
            order.reverse();
        }
        for mode in order {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let reading = measure(reader, &dir, mode, frames, tick_hz)?;
            eprintln!(
                "ring {:<4} {:<5} r{round} p50 {:>7.1} µs p99 {:>7.1} µs p99.9 {:>7.1} µs max {:>8.1} µs ({} frames, {} missed)",
                mode.transport,
                if mode.spin { "spin" } else { "sleep" },
                reading.p50_us,
                reading.p99_us,
                reading.p999_us,
                reading.max_us,
                reading.frames,
                reading.missed
            );
            out.push(RingResult { mode, round, reading });
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(out)
}

fn measure(reader: &Path, dir: &Path, mode: Mode, frames: u64, tick_hz: u32) -> Result<Reading> {
    let path = dir.join(format!("match-1.{}", mode.transport));
    let mut cmd = Command::new(reader);
    cmd.arg(if mode.transport == "ring" { "-ring" } else { "-unix" }).arg(&path);
    cmd.arg("-frames").arg(frames.to_string());
    if mode.spin {
        cmd.arg("-spin");
    }
    let mut ring = if mode.transport == "ring" {
        Some(RingWriter::create(&path, 1, tick_hz, 1 << 20, 0o600, None)?)
    } else {
        None
    };
    let mut child = cmd.stdout(Stdio::piped()).spawn().context("starting the Go reader")?;
    let mut lines = BufReader::new(child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?).lines();
    let socket = if ring.is_none() {
        // The reader says when its socket is bound.
        let ready = lines.next().transpose()?.unwrap_or_default();
        if ready != "ready" {
            bail!("the Go reader did not bind its socket: {ready:?}");
        }
        Some(UnixDatagram::unbound()?)
    } else {
        // Let it map the ring and start waiting.
        std::thread::sleep(Duration::from_millis(200));
        None
    };
    let period = Duration::from_nanos(1_000_000_000 / u64::from(tick_hz.max(1)));
    let start = Instant::now();
    let mut body = Vec::new();
    for tick in 0..frames {
        let due = start + period * tick as u32;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let mut f = frame(tick);
        f.start_ns = clock_monotonic_ns();
        body.clear();
        encode_frame(&f, &mut body);
        match (&mut ring, &socket) {
            (Some(w), _) => {
                w.append(kind::FRAME, &body)?;
            }
            (None, Some(s)) => {
                s.send_to(&body, &path)?;
            }
            _ => unreachable!("one transport"),
        }
    }
    if let Some(w) = &mut ring {
        w.end();
    }
    let line = lines.next().transpose()?.ok_or_else(|| anyhow!("the Go reader printed nothing"))?;
    let status = child.wait()?;
    if !status.success() {
        bail!("the Go reader failed: {status}");
    }
    let _ = std::fs::remove_file(&path);
    serde_json::from_str(&line).with_context(|| format!("the Go reader's line {line:?}"))
}

/// The markdown report: every measurement, then ring / unix ratios pair by pair per mode.
pub fn markdown(results: &[RingResult], frames: u64, tick_hz: u32) -> String {
    let mut md = format!(
        "# Ring: a frame into a Go game server, frame ring against a Unix socket\n\n{frames} frames at {tick_hz} Hz per measurement (4 inputs of 16 bytes each).\n\n\
         | transport | wait | round | p50 | p99 | p99.9 | max | missed |\n|---|---|---:|---:|---:|---:|---:|---:|\n"
    );
    for r in results {
        let x = &r.reading;
        md.push_str(&format!(
            "| {} | {} | {} | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs | {} |\n",
            r.mode.transport,
            if r.mode.spin { "spin" } else { "sleep" },
            r.round,
            x.p50_us,
            x.p99_us,
            x.p999_us,
            x.max_us,
            x.missed
        ));
    }
    md.push_str(
        "\nRatios ring / unix, pair by pair (median, min–max over rounds; below 1 favours the ring):\n\n",
    );
    for spin in [false, true] {
        for (name, pick) in [("p50", 0usize), ("p99", 1), ("p99.9", 2)] {
            let mut v: Vec<f64> = results
                .iter()
                .filter(|r| r.mode.transport == "ring" && r.mode.spin == spin)
                .filter_map(|ring| {
                    let unix = results.iter().find(|u| {
                        u.mode.transport == "unix" && u.mode.spin == spin && u.round == ring.round
                    })?;
                    let p = |x: &Reading| [x.p50_us, x.p99_us, x.p999_us][pick];
                    Some(p(&ring.reading) / p(&unix.reading).max(1e-9))
                })
                .collect();
            v.sort_by(f64::total_cmp);
            if let (Some(lo), Some(hi)) = (v.first(), v.last()) {
                md.push_str(&format!(
                    "- {}, {name}: {:.2} ({lo:.2}–{hi:.2}, {} rounds)\n",
                    if spin { "spinning" } else { "sleeping" },
                    v[v.len() / 2],
                    v.len()
                ));
            }
        }
    }
    md
}
