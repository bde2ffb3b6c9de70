//! `run`: attach (unpinned), one AF_XDP socket and worker per RX queue, the sequencer and frame
//! queue, outputs, live status and a summary. SIGINT and SIGTERM stop it cleanly; if the process
//! dies anyway, the kernel closes its bpf_link and the program detaches.

use std::{
    fs,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use base64::Engine as _;
use clap::{Args, ValueEnum};
use tickgate::{
    frame_queue::{Config, Frame, Late, Recorder, Stats},
    game::{GameMessage, Rings, RingsConfig},
    ingress::{self, Ingress, IngressConfig, IngressReport},
    input::Clock,
    metrics::{self, LatencyHistogram},
    record::{RecordWriter, RunConfig},
    session::{
        gate::{HandshakeLimit, SessionsConfig},
        server::ServerConfig,
    },
    steer::rate_limit::RateLimit,
    worker::{AdaptiveSlack, SlackRule, Wake},
    xsk::XskConfig,
};

use super::SteerArgs;
use crate::sink::Sink;

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
    /// Interface to receive on (or `interface` in the --config file).
    #[arg(required_unless_present = "interface")]
    pub iface: Option<String>,
    /// The config file's `interface` key (the positional argument wins).
    #[arg(long = "interface", hide = true)]
    pub interface: Option<String>,
    /// Read flags from a TOML file whose keys are the long flag names (e.g. `tick-hz = 120`,
    /// `port = [7777, 7778]`); a flag given on the command line wins over the file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub steer: SteerArgs,
    /// RX queues to serve: `all`, or a comma-separated list. A queue without a socket sends its
    /// game packets to the kernel (counted as no_socket).
    #[arg(long, default_value = "all")]
    pub queues: String,
    /// Cores to pin the workers to, one per queue in order (a shorter list is reused cyclically).
    #[arg(long, value_delimiter = ',')]
    pub cores: Vec<usize>,
    /// Spin on the rings (with the kernel's preferred busy-poll options) instead of sleeping.
    #[arg(long, conflicts_with = "paced")]
    pub busy_poll: bool,
    /// Wake the workers when a tick can seal and every millisecond, not for every packet: the
    /// XDP stamp keeps each packet's time while it waits in the ring (docs/operations.md,
    /// "How workers wake").
    #[arg(long)]
    pub paced: bool,
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
    /// How far each worker's watermark trails "now" when its ring is empty: `auto` measures it
    /// per queue (a high quantile of the stamp → visible delay plus 20 µs, within 20–500 µs;
    /// `status` shows it), or a fixed number of µs. Every tick closes at least grace + slack
    /// after its end.
    #[arg(long, default_value = "500", value_parser = parse_slack)]
    pub watermark_slack: SlackArg,
    /// Never prove a drained queue's watermark with the XDP program's count of the queue's
    /// packets (native mode): always trail by the slack. With the proof (the default) a worker
    /// that has read the last packet the program counted before the read publishes that instant
    /// (less 2 µs); `status --json` and the metrics count watermarks `proved` and `by_slack`.
    #[arg(long)]
    pub no_watermark_proof: bool,
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
    /// Protocol v2: older frames each frame packet to a player repeats besides the newest, so
    /// that a player rides out that many lost packets in a row (fewer when they do not fit).
    #[arg(long, default_value_t = tickgate::broadcast::DEFAULT_REDUNDANCY)]
    pub frame_redundancy: usize,
    /// Write every match's frames to a shared-memory ring in DIR (`match-<id>.ring`; put it on
    /// /dev/shm) for a game server in another process or language (docs/frame-ring.md).
    #[arg(long, value_name = "DIR")]
    pub frame_rings: Option<PathBuf>,
    /// Permissions of the ring files, octal: the game process needs read and write (it stores
    /// its read position in the file).
    #[arg(long, default_value = "660", value_parser = parse_mode)]
    pub ring_mode: u32,
    /// Group of the ring files (a name or a number), e.g. the game server's.
    #[arg(long, value_name = "GROUP")]
    pub ring_group: Option<String>,
    /// Owner of the ring files (a user name or a number), e.g. the game server's user.
    #[arg(long, value_name = "USER")]
    pub ring_owner: Option<String>,
    /// Bytes of each ring's data area (a power of two of at least 4096): how far a game may
    /// fall behind before it loses frames.
    #[arg(long, default_value_t = tickgate::game::ring::DEFAULT_CAPACITY)]
    pub ring_capacity: u64,
    /// Protocol v2: frames of each match kept for players who reconnect and ask to catch up
    /// (older ticks get a "too old" answer and the game a `resync` input).
    #[arg(long, default_value_t = tickgate::broadcast::DEFAULT_HISTORY)]
    pub frame_history: usize,
    /// Protocol v2: do not send the frames back to the players (tickgate as an ingress only:
    /// the game gets the frames and answers its players itself).
    #[arg(long)]
    pub no_broadcast: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics (a bare PORT binds to 127.0.0.1).
    #[arg(long, value_name = "[HOST:]PORT")]
    pub metrics: Option<String>,
    /// Write the final summary as JSON to FILE as well.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,
    #[command(flatten)]
    pub sessions: SessionArgs,
}

/// Protocol v2: who may connect, and how many.
#[derive(Debug, Args)]
pub struct SessionArgs {
    /// Serve protocol v2: players connect with connect tokens minted with the private key in
    /// FILE (`tickgate token new-key`), and XDP drops data packets from sources without a
    /// session. Needs --protocol-id.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// The game's protocol id: tokens minted for another are refused.
    #[arg(long)]
    pub protocol_id: Option<u64>,
    /// Most sessions at once; a full server answers `denied`.
    #[arg(long, default_value_t = 1024)]
    pub max_sessions: usize,
    /// Handshake packets each source address may send, per second and CPU, with bursts up to
    /// BURST; more are dropped in XDP (handshake_limited).
    #[arg(long, value_name = "PPS[:BURST]", default_value = "20:40")]
    pub handshake_limit: RateLimit,
    /// Handshake packets all sources together may send, per second and CPU.
    #[arg(long, value_name = "PPS[:BURST]", default_value = "20000:2000")]
    pub handshake_global: RateLimit,
}

impl SessionArgs {
    /// The sessions a run serves, if any.
    pub fn config(&self) -> Result<Option<SessionsConfig>> {
        let (file, protocol_id) = match (&self.key_file, self.protocol_id) {
            (None, None) => return Ok(None),
            (Some(file), Some(id)) => (file, id),
            (Some(_), None) => anyhow::bail!(
                "--key-file needs --protocol-id: the game's protocol id, as its tokens carry it"
            ),
            (None, Some(_)) => {
                anyhow::bail!("--protocol-id needs --key-file: the private key tokens are minted with")
            }
        };
        let key = crate::token::read_key(file)?;
        Ok(Some(SessionsConfig {
            server: ServerConfig::new(protocol_id, key, self.max_sessions),
            handshake_limit: HandshakeLimit {
                per_source: RateLimit::config(Some(self.handshake_limit)),
                global: RateLimit::config(Some(self.handshake_global)),
            },
        }))
    }
}

impl RunArgs {
    /// The interface, from the command line or the config file.
    pub fn iface(&self) -> &str {
        self.iface.as_deref().or(self.interface.as_deref()).unwrap_or_default()
    }
}

pub fn run(a: &RunArgs) -> Result<()> {
    let frames = Config {
        tick_hz: a.tick_hz,
        grace_us: a.grace_us,
        late: match a.late {
            LateArg::Drop => Late::Drop,
            LateArg::Next => Late::Next,
        },
        ..Config::default()
    };
    frames.validate()?;
    let queues = ingress::parse_queues(&a.queues, ingress::rx_queues(a.iface()))?;
    let cores = ingress::assign_cores(&a.cores, queues.len())?;
    let sessions = a.sessions.config()?;
    match (&sessions, a.steer.insecure_v1) {
        (None, false) => anyhow::bail!(
            "nothing to serve: give --key-file FILE --protocol-id N (protocol v2: players connect with \
             connect tokens; 'tickgate token new-key FILE' makes the key), or --insecure-v1 for \
             unauthenticated protocol v1 on a closed LAN"
        ),
        (_, true) => log::warn!(
            "--insecure-v1: protocol v1 is served; anyone who can reach the game port speaks for any client id"
        ),
        (Some(_), false) => {}
    }
    let config = IngressConfig {
        load: a.steer.load_options(a.iface(), false),
        cores,
        wake: match (a.busy_poll, a.paced) {
            (true, _) => Wake::Busy,
            (false, true) => Wake::Paced,
            (false, false) => Wake::Packets,
        },
        xsk: XskConfig {
            frame_size: a.frame_size,
            frame_count: a.frames,
            rx_size: a.rx_ring,
            fill_size: (a.frames * 2).next_power_of_two(),
            ..XskConfig::default()
        },
        handoff_capacity: a.handoff_capacity,
        frames,
        queues,
        sessions,
        frame_redundancy: a.frame_redundancy,
        frame_history: a.frame_history,
        broadcast: !a.no_broadcast,
        slack: match a.watermark_slack {
            SlackArg::Auto => SlackRule::Adaptive(AdaptiveSlack::default()),
            SlackArg::Fixed(us) => SlackRule::Fixed(us.saturating_mul(1_000)),
        },
        prove_watermarks: !a.no_watermark_proof,
    };
    match &a.record {
        Some(path) => {
            let run = RunConfig { config: frames, queues: config.queues.iter().map(|&q| q as u16).collect() };
            let recorder = RecordWriter::create(path, &run)?;
            let recorder = run_with(a, &config, recorder)?;
            recorder.finish().context("flushing the record log")?;
        }
        None => run_with(a, &config, ())?,
    }
    Ok(())
}

/// Runs until the duration ends or a signal arrives; returns the recorder to flush.
fn run_with<R: Recorder + Send + 'static>(a: &RunArgs, config: &IngressConfig, recorder: R) -> Result<R> {
    if let Some(other) = crate::live::running(a.iface()) {
        anyhow::bail!(
            "{} is busy: tickgate run (pid {}) is receiving on it; stop it first (kill -TERM {})",
            a.iface(),
            other["pid"],
            other["pid"]
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    // SIGHUP too: a daemon's terminal going away or `systemctl reload` must not kill it
    // uncleanly; tickgate has no state to reload, so it stops cleanly like SIGTERM.
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).context("installing the signal handler")?;
    }
    let exposition: metrics::Exposition = Arc::default();
    let _metrics_server = match &a.metrics {
        Some(spec) => {
            let addr = metrics::parse_addr(spec).map_err(anyhow::Error::msg)?;
            let server = metrics::Server::start(addr, Arc::clone(&exposition))
                .with_context(|| format!("binding the metrics endpoint to {addr}"))?;
            eprintln!("tickgate: metrics at http://{}/metrics", server.addr());
            Some(server)
        }
        None => None,
    };
    let mut latency = LatencyHistogram::default();
    let mut ingress = Ingress::start(config, recorder)?;
    for note in ingress.attachment().notes() {
        eprintln!("tickgate: {note}");
    }
    eprintln!(
        "tickgate: running on {} queues {:?} with {} ({} mode), ports {:?}",
        a.iface(),
        config.queues,
        ingress.attachment().program().name(),
        ingress.attachment().mode(),
        a.steer.port
    );
    let inputs_out = Sink::open("inputs-out", a.inputs_out.as_deref())?;
    let frames_out = Sink::open("frames-out", a.frames_out.as_deref())?;
    let mut rings = match &a.frame_rings {
        Some(dir) => Some(
            Rings::new(RingsConfig {
                dir: dir.clone(),
                mode: a.ring_mode,
                gid: a.ring_group.as_deref().map(group_id).transpose()?,
                uid: a.ring_owner.as_deref().map(user_id).transpose()?,
                capacity: a.ring_capacity,
            })
            .with_context(|| format!("--frame-rings {}", dir.display()))?,
        ),
        None => None,
    };
    let mut ring_scratch = Vec::new();
    let mut emit = |frame: &Frame, rings: &mut Option<Rings>| {
        write_frame(frame, frames_out.as_ref(), inputs_out.as_ref());
        if let Some(rings) = rings.as_mut() {
            rings.frame(frame, &mut ring_scratch);
        }
    };
    let started = Instant::now();
    let deadline = a.duration.map(|s| started + Duration::from_secs_f64(s.max(0.0)));
    let live = crate::live::path(a.iface());
    let mut last_live = Instant::now() - Duration::from_secs(1);
    let mut frames_seen = 0u64;
    let mut inputs_seen = 0u64;
    let mut lost_link = false;
    let mut messages_unsent = 0u64;
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
        if let Some(rings) = rings.as_mut() {
            // The game's messages back to its players (bounded per pass: a game cannot hold the
            // loop); what the way back refuses is counted.
            rings.poll_outbound(256, |match_id, message| {
                let sent = match message {
                    GameMessage::ToMatch(bytes) => ingress.send_to_match(match_id, &bytes),
                    GameMessage::ToPlayer { player, message } => ingress.send_to_player(player, &message),
                };
                if sent.is_err() {
                    messages_unsent += 1;
                }
            });
        }
        if let Some(frame) = ingress.frames().next_frame(Duration::from_millis(10)) {
            let now = tickgate::sys::clock_tai_ns();
            for input in frame.inputs.iter().filter(|i| i.rx.clock == Clock::Xdp) {
                latency.record_ns(now.saturating_sub(input.rx.ns));
            }
            inputs_seen += frame.inputs.len() as u64;
            emit(&frame, &mut rings);
            frames_seen += 1;
            // Written out: its buffer goes back to the sequencer for the next frames.
            ingress.frames().recycle(frame);
        }
        if last_live.elapsed() >= Duration::from_secs(1) {
            let frames_overflowed = ingress.frames().overflowed();
            let report = ingress.report(Stats {
                frames: frames_seen,
                inputs_ordered: inputs_seen,
                frames_overflowed,
                ..Stats::default()
            });
            let outputs =
                outputs_now(rings.as_ref(), messages_unsent, frames_out.as_ref(), inputs_out.as_ref());
            if a.metrics.is_some()
                && let Ok(mut text) = exposition.lock()
            {
                *text = metrics::render(&report, &latency);
                text.push_str(&outputs.metrics());
            }
            crate::live::publish(&live, &report, &outputs);
            last_live = Instant::now();
            if !ingress.attachment().is_attached() {
                lost_link = true;
                break;
            }
        }
    }
    let (report, recorder) = ingress.stop(|frame| emit(&frame, &mut rings))?;
    let _ = fs::remove_file(&live);
    let mut outputs = outputs_now(rings.as_ref(), messages_unsent, None, None);
    if let Some(crate::live::FrameRings { rings: r, .. }) = &outputs.frame_rings {
        eprintln!(
            "  frame rings: {} rings, {} records, {} overwritten before the game read them, {} frames not written; \
             {} game messages ({} refused, {} not sent)",
            r.rings,
            r.records,
            r.overwritten_unread,
            r.not_written,
            r.messages,
            r.messages_refused,
            messages_unsent
        );
    }
    outputs.inputs_out = inputs_out.map(Sink::finish).transpose()?;
    outputs.frames_out = frames_out.map(Sink::finish).transpose()?;
    print_summary(&report);
    if let Some(path) = &a.summary_json {
        // The report, plus what became of the JSON-lines outputs (`{}` without any).
        let mut summary = serde_json::to_value(&report)?;
        summary["outputs"] = serde_json::to_value(&outputs)?;
        fs::write(path, serde_json::to_string_pretty(&summary)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if lost_link {
        anyhow::bail!(
            "the XDP program is no longer attached to {}: the interface was deleted or someone detached \
             the program; stopped after delivering everything received (summary above)",
            a.iface()
        );
    }
    Ok(recorder)
}

/// An octal file mode.
fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("{s:?} is not an octal file mode"))
}

/// A group's id from its number or its name (`/etc/group`).
fn user_id(user: &str) -> Result<u32> {
    id_of(user, "/etc/passwd", "--ring-owner", "user")
}

fn group_id(group: &str) -> Result<u32> {
    id_of(group, "/etc/group", "--ring-group", "group")
}

/// A number, or the id of `name` in `file` (`name:password:id:…`, as /etc/passwd and /etc/group
/// both are).
fn id_of(name: &str, file: &str, flag: &str, what: &str) -> Result<u32> {
    if let Ok(id) = name.parse() {
        return Ok(id);
    }
    let lines = fs::read_to_string(file).with_context(|| format!("reading {file} for {flag}"))?;
    lines
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            (fields.next() == Some(name)).then(|| fields.nth(1).and_then(|id| id.parse().ok())).flatten()
        })
        .with_context(|| format!("{flag} {name}: no such {what} in {file}"))
}

/// `--watermark-slack`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlackArg {
    /// Measured per queue.
    Auto,
    /// Fixed, µs.
    Fixed(u64),
}

fn parse_slack(s: &str) -> Result<SlackArg, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(SlackArg::Auto);
    }
    s.parse().map(SlackArg::Fixed).map_err(|_| format!("{s:?} is not `auto` or a number of µs"))
}

/// The outputs' counts now.
fn outputs_now(
    rings: Option<&Rings>,
    messages_unsent: u64,
    frames_out: Option<&Sink>,
    inputs_out: Option<&Sink>,
) -> crate::live::Outputs {
    crate::live::Outputs {
        frame_rings: rings.map(|r| crate::live::FrameRings { rings: r.report(), messages_unsent }),
        inputs_out: inputs_out.map(Sink::report),
        frames_out: frames_out.map(Sink::report),
    }
}

/// Hands a frame (and its inputs) to the outputs as JSON lines; never blocks.
fn write_frame(frame: &Frame, frames_out: Option<&Sink>, inputs_out: Option<&Sink>) {
    let line = |value: &dyn erased::Line| {
        let mut bytes = value.json();
        bytes.push(b'\n');
        bytes
    };
    if let Some(out) = frames_out {
        out.push(line(frame));
    }
    if let Some(out) = inputs_out {
        for input in &frame.inputs {
            out.push(line(&serde_json::json!({
                "client": input.client_id, "seq": input.seq, "frame": input.client_frame,
                "rx_ts_ns": input.rx.ns, "ts_source": input.rx.clock, "queue": input.queue,
                "kind": input.kind.as_str(),
                "payload": base64::engine::general_purpose::STANDARD.encode(&input.payload),
            })));
        }
    }
}

mod erased {
    /// Something serializable to a JSON line (a frame or an input's object).
    pub(super) trait Line {
        fn json(&self) -> Vec<u8>;
    }

    impl<T: serde::Serialize> Line for T {
        fn json(&self) -> Vec<u8> {
            // Serializing these values to memory cannot fail: no maps with non-string keys.
            serde_json::to_vec(self).unwrap_or_default()
        }
    }
}

pub fn print_summary(r: &IngressReport) {
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
            "  queue {} ({}): received {}, delivered {}, dropped [{}], left in ring {}, kernel: rx_dropped {} rx_ring_full {} fill_empty {} invalid_descs {}",
            q.queue,
            q.bind_mode,
            q.received,
            q.delivered,
            drops.join(", "),
            q.left_in_ring,
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
    eprintln!("  matches: started {}, ended {}", s.matches_started, s.matches_ended);
    if let (Some(b), Some(v)) = (&r.broadcast, &r.sessions) {
        let tx = |c: tickgate::worker::Counter| -> u64 { r.queues.iter().map(|q| q.count(c)).sum() };
        eprintln!(
            "  way back: {} frames fanned out (inbox full {}), {} frame packets sealed: tx queued {}, tx dropped {}; \
             too large {}, catch-up packets {}, messages to a match {}, to one player {}",
            b.frames,
            b.inbox_full,
            v.frame_packets,
            tx(tickgate::worker::Counter::FrameTxQueued),
            tx(tickgate::worker::Counter::FrameTxDropped),
            v.frame_too_large,
            v.catch_up_packets,
            b.match_messages,
            v.direct_messages
        );
    }
    match &r.sessions {
        Some(v) => {
            let nonzero = |m: &std::collections::BTreeMap<&str, u64>| {
                m.iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            eprintln!(
                "  sessions (protocol v2, replies via {}): open {}, joined {}, closed [{}], challenges {}, refused [{}], dropped [{}], map errors {}",
                r.replies,
                v.open,
                v.joined,
                nonzero(&v.closed),
                v.challenges,
                nonzero(&v.refused),
                nonzero(&v.dropped),
                v.map_errors
            );
        }
        None => {
            eprintln!("  sessions: off (protocol v1 only: unauthenticated; start with --key-file for v2)")
        }
    }
    eprintln!("  unexplained steered packets: {}", r.unexplained_steered);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_and_groups_are_numbers_or_names_looked_up_in_their_file() {
        let file = std::env::temp_dir().join(format!("tickgate-ids-{}", std::process::id()));
        fs::write(&file, "root:x:0:0:root:/root:/bin/sh\ngame:x:1234:1234::/home/game:/bin/sh\n").unwrap();
        let path = file.to_str().unwrap();
        assert_eq!(id_of("77", path, "--ring-owner", "user").unwrap(), 77);
        assert_eq!(id_of("game", path, "--ring-owner", "user").unwrap(), 1234);
        assert_eq!(id_of("root", path, "--ring-owner", "user").unwrap(), 0);
        let e = id_of("nobody-here", path, "--ring-group", "group").unwrap_err().to_string();
        assert!(e.contains("--ring-group nobody-here: no such group"), "{e}");
        fs::remove_file(&file).unwrap();
    }
}
