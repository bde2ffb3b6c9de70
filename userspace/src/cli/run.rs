//! `run`: attach (unpinned), one AF_XDP socket and worker per RX queue, the sequencer and frame
//! queue, outputs, live status and a summary. SIGINT and SIGTERM stop it cleanly; if the process
//! dies anyway, the kernel closes its bpf_link and the program detaches.

use std::{
    fs::{self, File},
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};
use serde::Serialize;
use tickgate::{
    counters::{TimestampCounters, XdpCounters},
    frame_queue::{self, Config, Frame, Late, Recorder, Stats},
    loader::{Attachment, LoadOptions, Mode},
    rate_limit::RateLimit,
    record::{RecordWriter, RunConfig},
    sys,
    worker::{self, QueueReport, QueueStats, WorkerConfig},
    xsk::{BindPreference, BusyPoll, XskConfig, XskSocket},
};

use super::{ModeArg, TimestampsArg};

/// Directory where a running `tickgate run` publishes its live counters for `status`.
pub const LIVE_DIR: &str = "/run/tickgate";

/// Late-input policy.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LateArg {
    /// Discard inputs whose tick is already sealed.
    Drop,
    /// Put them in the oldest open tick.
    Next,
}

/// Arguments of `tickgate run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Interface to receive on.
    pub iface: String,
    /// Game UDP ports (comma-separated).
    #[arg(short, long, value_delimiter = ',', required = true)]
    pub port: Vec<u16>,
    /// Attach mode.
    #[arg(short, long, value_enum, default_value_t = ModeArg::Native)]
    pub mode: ModeArg,
    /// Receive-timestamp clock.
    #[arg(short, long, value_enum, default_value_t = TimestampsArg::Auto)]
    pub timestamps: TimestampsArg,
    /// RX queues to serve: `all`, or a comma-separated list. A queue without a socket sends its
    /// game packets to the kernel (counted as no_socket).
    #[arg(long, default_value = "all")]
    pub queues: String,
    /// Cores to pin the workers to, one per queue in order (a shorter list is reused cyclically).
    #[arg(long, value_delimiter = ',')]
    pub cores: Vec<usize>,
    /// Per-source flood shedding in XDP: at most PPS valid game packets per second from one
    /// source address, with bursts up to BURST; the excess is dropped as rate_limited.
    #[arg(long, value_name = "PPS[:BURST]")]
    pub rate_limit: Option<RateLimit>,
    /// Spin on the rings (with the kernel's preferred busy-poll options) instead of sleeping.
    #[arg(long)]
    pub busy_poll: bool,
    /// Stop after this many seconds (default: run until SIGINT or SIGTERM).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Write every ordered input as a JSON line to FILE (`-` for stdout).
    #[arg(long, value_name = "FILE|-")]
    pub inputs_out: Option<String>,
    /// Write every frame as a JSON line to FILE (`-` for stdout).
    #[arg(long, value_name = "FILE|-")]
    pub frames_out: Option<String>,
    /// Append every accepted input and the run's configuration to a record log (for `replay`).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Ticks per second.
    #[arg(long, default_value_t = 60)]
    pub tick_hz: u32,
    /// How long past a tick's end to wait for stragglers before sealing it, in µs.
    #[arg(long, default_value_t = 2_000)]
    pub grace_us: u64,
    /// What to do with inputs for an already sealed tick.
    #[arg(long, value_enum, default_value_t = LateArg::Next)]
    pub late: LateArg,
    /// UMEM frames per queue.
    #[arg(long, default_value_t = 4096)]
    pub frames: u32,
    /// UMEM frame size in bytes (a power of two, at least 2048).
    #[arg(long, default_value_t = 2048)]
    pub frame_size: u32,
    /// RX ring size per queue (a power of two).
    #[arg(long, default_value_t = 2048)]
    pub rx_ring: u32,
    /// Inputs the hand-off from each worker to the sequencer holds before dropping (handoff_full).
    #[arg(long, default_value_t = 65_536)]
    pub handoff_capacity: usize,
    /// Write the final summary as JSON to FILE as well.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,
}

/// What `status` shows for a running `run`, and what the summary prints at the end.
#[derive(Debug, Serialize)]
pub struct RunReport {
    interface: String,
    pid: u32,
    attached: bool,
    program: &'static str,
    mode: Mode,
    attach: &'static str,
    timestamp_source: &'static str,
    ports: Vec<u16>,
    uptime_s: f64,
    counters: XdpCounters,
    timestamps: TimestampCounters,
    queues: Vec<QueueReport>,
    sequencer: Stats,
    /// steered - (received by workers + rx_dropped + rx_ring_full): packets XDP redirected that
    /// no counter explains. 0 when everything is accounted for.
    unexplained_steered: i128,
}

fn parse_queues(spec: &str, available: u32) -> Result<Vec<u32>> {
    if spec == "all" {
        return Ok((0..available).collect());
    }
    let mut queues = Vec::new();
    for part in spec.split(',') {
        let q: u32 =
            part.trim().parse().with_context(|| format!("--queues: {part:?} is not a queue number"))?;
        if q >= available {
            bail!(
                "--queues: queue {q} does not exist: the interface has {available} RX queues (0..{available})"
            );
        }
        if !queues.contains(&q) {
            queues.push(q);
        }
    }
    if queues.is_empty() {
        bail!("--queues: no queue given");
    }
    Ok(queues)
}

fn assign_cores(cores: &[usize], queues: usize) -> Result<Vec<Option<usize>>> {
    if cores.is_empty() {
        return Ok(vec![None; queues]);
    }
    let existing: Vec<usize> =
        core_affinity::get_core_ids().unwrap_or_default().iter().map(|c| c.id).collect();
    for core in cores {
        if !existing.contains(core) {
            bail!("--cores: core {core} does not exist (this process may use cores {existing:?})");
        }
    }
    Ok((0..queues).map(|i| Some(cores[i % cores.len()])).collect())
}

fn output(spec: &Option<String>) -> Result<Option<Box<dyn Write>>> {
    Ok(match spec.as_deref() {
        None => None,
        Some("-") => Some(Box::new(BufWriter::new(io::stdout()))),
        Some(path) => {
            Some(Box::new(BufWriter::new(File::create(path).with_context(|| format!("creating {path}"))?)))
        }
    })
}

pub fn run(a: &RunArgs) -> Result<()> {
    let config = Config {
        tick_hz: a.tick_hz,
        grace_us: a.grace_us,
        late: match a.late {
            LateArg::Drop => Late::Drop,
            LateArg::Next => Late::Next,
        },
        ..Config::default()
    };
    config.validate()?;
    let available = sys::rx_queue_count(&a.iface).unwrap_or(1);
    let queues = parse_queues(&a.queues, available)?;
    let cores = assign_cores(&a.cores, queues.len())?;
    let recorder = match &a.record {
        Some(path) => {
            let run = RunConfig { config, queues: queues.iter().map(|&q| q as u16).collect() };
            Some(RecordWriter::create(path, &run)?)
        }
        None => None,
    };
    match recorder {
        Some(r) => run_with(a, config, &queues, &cores, r),
        None => run_with(a, config, &queues, &cores, ()),
    }
}

fn run_with<R: Recorder + Send + 'static + FinishRecord>(
    a: &RunArgs,
    config: Config,
    queues: &[u32],
    cores: &[Option<usize>],
    recorder: R,
) -> Result<()> {
    let mode: Mode = a.mode.into();
    let opts = LoadOptions {
        ifname: a.iface.clone(),
        ports: a.port.clone(),
        mode,
        timestamps: a.timestamps.into(),
        force: false,
        rate_limit: a.rate_limit,
    };
    let attachment = Attachment::attach(&opts)?;
    for note in attachment.notes() {
        eprintln!("tickgate: {note}");
    }
    let xsk_config = XskConfig {
        frame_size: a.frame_size,
        frame_count: a.frames,
        rx_size: a.rx_ring,
        fill_size: (a.frames * 2).next_power_of_two(),
        // Skb mode never gets zero-copy; asking for it first could bind a NIC queue in a mode
        // the generic path cannot feed.
        bind: if mode == Mode::Skb { BindPreference::Copy } else { BindPreference::ZeroCopyThenCopy },
        busy_poll: a.busy_poll.then_some(BusyPoll { budget: 64, usecs: 50 }),
        ..XskConfig::default()
    };
    let mut sockets = Vec::with_capacity(queues.len());
    for &queue in queues {
        let socket = XskSocket::open(&a.iface, queue, &xsk_config)
            .with_context(|| format!("opening the AF_XDP socket on {} queue {queue}", a.iface))?;
        attachment.register_socket(queue, socket.fd())?;
        log::info!("{} queue {queue}: AF_XDP socket bound in {} mode", a.iface, socket.bind_mode());
        sockets.push(socket);
    }

    let running = frame_queue::spawn(&config, queues.len(), a.handoff_capacity, recorder)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).context("installing the signal handler")?;
    }
    let mut stats = Vec::new();
    let mut workers = Vec::new();
    for ((socket, producer), core) in sockets.into_iter().zip(running.producers).zip(cores) {
        let queue_stats = Arc::new(QueueStats::new(socket.queue(), socket.bind_mode(), *core));
        let worker_config = WorkerConfig { core: *core, busy_poll: a.busy_poll, ..WorkerConfig::default() };
        workers.push(worker::spawn(
            socket,
            producer,
            worker_config,
            Arc::clone(&stop),
            Arc::clone(&queue_stats),
        )?);
        stats.push(queue_stats);
    }
    eprintln!(
        "tickgate: running on {} queues {:?} with {} ({} mode), ports {:?}",
        a.iface,
        queues,
        attachment.program().name(),
        mode,
        a.port
    );

    let mut inputs_out = output(&a.inputs_out)?;
    let mut frames_out = output(&a.frames_out)?;
    let mut frame_queue = running.frames;
    let started = Instant::now();
    let deadline = a.duration.map(|s| started + Duration::from_secs_f64(s.max(0.0)));
    let live = Path::new(LIVE_DIR).join(format!("{}.json", a.iface));
    let mut last_live = Instant::now() - Duration::from_secs(1);
    let mut write_frame = |frame: &Frame| -> Result<()> {
        if let Some(out) = frames_out.as_mut() {
            serde_json::to_writer(&mut *out, frame)?;
            out.write_all(b"\n")?;
        }
        if let Some(out) = inputs_out.as_mut() {
            for input in &frame.inputs {
                serde_json::to_writer(
                    &mut *out,
                    &serde_json::json!({
                        "client": input.client_id, "seq": input.seq, "frame": input.client_frame,
                        "rx_ts_ns": input.rx_ts_ns, "ts_source": input.ts_source, "queue": input.queue,
                    }),
                )?;
                out.write_all(b"\n")?;
            }
        }
        Ok(())
    };
    let mut frames_seen = 0u64;
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
        if let Some(frame) = frame_queue.next_frame(Duration::from_millis(50)) {
            write_frame(&frame)?;
            frames_seen += 1;
        }
        if last_live.elapsed() >= Duration::from_secs(1) {
            let report =
                report(a, &attachment, &stats, Stats { frames: frames_seen, ..Stats::default() }, started);
            publish_live(&live, &report);
            last_live = Instant::now();
        }
    }

    // Stop: workers close their hand-offs, the sequencer drains and seals what it can.
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.join();
    }
    while let Some(frame) = frame_queue.next_frame(Duration::from_millis(200)) {
        write_frame(&frame)?;
    }
    let outcome = running.sequencer.join().map_err(|_| anyhow::anyhow!("the sequencer thread panicked"))?;
    for out in [inputs_out.as_mut(), frames_out.as_mut()].into_iter().flatten() {
        out.flush()?;
    }
    outcome.recorder.finish_record()?;
    let report = report(a, &attachment, &stats, outcome.stats, started);
    let _ = fs::remove_file(&live);
    drop(attachment);
    print_summary(&report);
    if let Some(path) = &a.summary_json {
        fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Flushes the record log at the end of a run, when there is one.
pub trait FinishRecord {
    /// Flush and report a write error.
    fn finish_record(self) -> Result<()>;
}

impl FinishRecord for () {
    fn finish_record(self) -> Result<()> {
        Ok(())
    }
}

impl<W: Write> FinishRecord for RecordWriter<W> {
    fn finish_record(self) -> Result<()> {
        self.finish().context("flushing the record log")?;
        Ok(())
    }
}

fn report(
    a: &RunArgs,
    attachment: &Attachment,
    stats: &[Arc<QueueStats>],
    sequencer: Stats,
    started: Instant,
) -> RunReport {
    let (counters, timestamps) = attachment.counters().unwrap_or_default();
    let queues: Vec<QueueReport> = stats.iter().map(|s| s.report()).collect();
    let explained: i128 = queues
        .iter()
        .map(|q| {
            i128::from(q.received)
                + i128::from(q.dropped_packets.get("invalid_descriptor").copied().unwrap_or(0))
                + i128::from(q.xdp_statistics.rx_dropped)
                + i128::from(q.xdp_statistics.rx_ring_full)
        })
        .sum();
    RunReport {
        interface: a.iface.clone(),
        pid: std::process::id(),
        attached: true,
        program: attachment.program().name(),
        mode: attachment.mode(),
        attach: "bpf_link (owned by this tickgate run; detached when it exits)",
        timestamp_source: attachment.program().timestamp_source(),
        ports: a.port.clone(),
        uptime_s: started.elapsed().as_secs_f64(),
        unexplained_steered: i128::from(counters.steered) - explained,
        counters,
        timestamps,
        queues,
        sequencer,
    }
}

fn publish_live(path: &Path, report: &RunReport) {
    let write = || -> io::Result<()> {
        fs::create_dir_all(LIVE_DIR)?;
        let tmp = path.with_extension("json.tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(report)?)?;
        fs::rename(tmp, path)
    };
    if let Err(e) = write() {
        log::debug!("cannot publish live status to {}: {e}", path.display());
    }
}

fn print_summary(r: &RunReport) {
    eprintln!(
        "tickgate: summary for {} after {:.1} s ({}, {} mode)",
        r.interface, r.uptime_s, r.program, r.mode
    );
    eprintln!("  xdp:       {}", r.counters);
    eprintln!("  timestamps: nic {}, xdp {}", r.timestamps.nic, r.timestamps.xdp);
    for q in &r.queues {
        let drops: Vec<String> = q
            .dropped_packets
            .iter()
            .chain(&q.dropped_inputs)
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        eprintln!(
            "  queue {} ({}): received {}, delivered {}, dropped [{}], kernel: rx_dropped {} rx_ring_full {} fill_empty {} invalid_descs {}",
            q.queue,
            q.bind_mode,
            q.received,
            q.delivered,
            drops.join(", "),
            q.xdp_statistics.rx_dropped,
            q.xdp_statistics.rx_ring_full,
            q.xdp_statistics.rx_fill_ring_empty_descs,
            q.xdp_statistics.rx_invalid_descs
        );
    }
    let s = &r.sequencer;
    eprintln!(
        "  sequencer: frames {} (empty {}), inputs ordered {}, late dropped {}, late to next tick {}, restamped {}",
        s.frames, s.empty_frames, s.inputs_ordered, s.late_dropped, s.late_next, s.restamped_clock
    );
    eprintln!("  unexplained steered packets: {}", r.unexplained_steered);
}
