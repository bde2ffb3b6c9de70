//! `demo`: the whole pipeline in a throwaway veth lab. Synthetic clients (and optionally a junk
//! flood) send from the lab's client namespace; an ingress receives in the receiver namespace;
//! one live line per second, a summary that accounts for every packet, then the lab is removed.
//! SIGINT and SIGTERM end the traffic early and go through the same clean shutdown.

use std::{
    io::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;
use serde::Serialize;
use tickgate::{
    frame_queue::{Config, Frame, Stats, TickClock},
    ingress::{Ingress, IngressConfig, IngressReport},
    session::anti_replay::Reject,
    session::{
        gate::{HandshakeLimit, SessionsConfig},
        server::ServerConfig,
    },
    steer::{LoadOptions, Timestamps, privileges, rate_limit::RateLimit},
    sys,
    wire::crypto::Key,
    worker::Counter,
    xsk::XskConfig,
};
use tickgate_testkit::{
    client::send_time_ns,
    lab::{self, Lab},
    traffic::{
        self, ClientPlan, Impairments, JunkStats, OTHER_PORT, RoundTripReport, RoundTrips, SendStats,
        SessionPlan, VethCounters,
    },
};

use crate::ModeArg;

mod accounting;

use accounting::{Accounting, Drops, Histogram, LatencySummary, LiveLine};

/// The game port the demo's clients send to.
const GAME_PORT: u16 = 7777;
/// After the traffic ends, how long the receiver keeps going so that the rings drain and the
/// last ticks are sealed by watermarks before the ingress stops.
const SETTLE: Duration = Duration::from_millis(300);
/// Client packets per second one sender thread paces reliably on a small machine.
const MAX_CLIENT_PPS: u64 = 200_000;
/// Above this many clients, two sender threads share them.
const CLIENTS_PER_THREAD: u32 = 256;

/// Arguments of `tickgate demo`.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub struct DemoArgs {
    /// Synthetic clients, each on its own UDP socket: its own flow, so RSS spreads the clients
    /// over the RX queues.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub clients: u32,
    /// Matches the clients are dealt into (client `i` plays in match `i % matches`): each match
    /// has its own ticks, and its frames go back to its own players.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub matches: u32,
    /// How long the clients send, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub seconds: u64,
    /// Ticks per second: each client sends one input per tick, and the frame queue seals one
    /// frame per tick.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub tick_hz: u32,
    /// RX queues of the lab's veth pair: one AF_XDP socket and worker each.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub queues: u32,
    /// Attach mode.
    #[arg(short, long, value_enum, default_value_t = ModeArg::Native)]
    pub mode: ModeArg,
    /// Percent of client packets the sender drops on purpose.
    #[arg(long, default_value_t = 0.0, value_name = "PCT")]
    pub loss: f64,
    /// Percent of client packets the sender sends twice (the workers must remove the copy).
    #[arg(long, default_value_t = 0.0, value_name = "PCT")]
    pub duplicate: f64,
    /// Percent of client packets the sender holds back one slot, sending them after the client's
    /// next packet.
    #[arg(long, default_value_t = 0.0, value_name = "PCT")]
    pub reorder: f64,
    /// Inputs each packet carries: the newest and the R-1 before it. A lost packet costs no input
    /// as long as one of the next R-1 packets arrives, which is why --loss shows up as fewer
    /// packets and fewer duplicates removed, not as missing inputs.
    #[arg(long, default_value_t = 3, value_name = "R", value_parser = clap::value_parser!(u32).range(1..=32))]
    pub redundancy: u32,
    /// A junk flood from the client namespace, in packets per second: half to the game port with
    /// a wrong magic (dropped by XDP as bad_magic), half to a port that is not a game port
    /// (passed to the kernel). It stops with the clients.
    #[arg(long, default_value_t = 0, value_name = "PPS", value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub junk_pps: u64,
    /// Per-source flood shedding in XDP (as `run --rate-limit`). Every demo client sends from the
    /// same address, so a limit below clients × tick-hz sheds their packets as rate_limited.
    #[arg(long, value_name = "PPS[:BURST]")]
    pub rate_limit: Option<RateLimit>,
    /// Seed of the loss, duplicate and reorder choices: the same seed makes the same choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the final summary as JSON to FILE as well.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,
}

/// The demo's configuration, as the JSON summary shows it.
#[derive(Debug, Serialize)]
struct DemoConfig {
    clients: u32,
    matches: u32,
    seconds: u64,
    tick_hz: u32,
    queues: u32,
    mode: String,
    redundancy: u32,
    impairments: Impairments,
    junk_pps: u64,
    rate_limit: Option<RateLimit>,
    seed: u64,
    game_port: u16,
}

/// The lab, as the JSON summary shows it.
#[derive(Debug, Serialize)]
struct LabNames {
    tx_ns: String,
    rx_ns: String,
    tx_if: String,
    rx_if: String,
    /// Both namespaces were gone when the summary was written.
    removed: bool,
}

/// Everything `--summary-json` writes.
#[derive(Debug, Serialize)]
struct DemoSummary {
    config: DemoConfig,
    lab: LabNames,
    /// Whether SIGINT or SIGTERM ended the traffic early.
    interrupted: bool,
    clients: SendStats,
    junk: JunkStats,
    /// The sender veth's counters during the traffic.
    veth: VethCounters,
    ingress: IngressReport,
    frames_taken: u64,
    inputs_taken: u64,
    /// Inputs whose frame held no send time (never for the demo's clients).
    inputs_without_send_time: u64,
    /// Send (client, CLOCK_TAI) to frame taken by the demo (CLOCK_TAI).
    latency: LatencySummary,
    /// Input sent to the frame holding it back at the players (CLOCK_TAI on both ends).
    round_trip: RoundTripSummary,
    accounting: Accounting,
}

/// The round trip players feel, from the frames tickgate sends back.
#[derive(Debug, Serialize)]
struct RoundTripSummary {
    /// Input sent → the first frame holding it back at its own player.
    own: LatencySummary,
    /// Input sent → the frame holding it at every player of its match.
    every_player: LatencySummary,
    /// Inputs not seen by every player of their match by the end.
    incomplete: u64,
    /// Frame packets the players received.
    frame_packets: u64,
}

/// What the receiver counted while taking frames.
#[derive(Debug)]
struct Tally {
    tick_hz: u32,
    clock: Option<TickClock>,
    total: Histogram,
    interval: Histogram,
    frames: u64,
    inputs: u64,
    inputs_at_last_line: u64,
    late: u64,
    no_send_time: u64,
}

impl Tally {
    fn new(tick_hz: u32) -> Self {
        Self {
            tick_hz,
            clock: None,
            total: Histogram::default(),
            interval: Histogram::default(),
            frames: 0,
            inputs: 0,
            inputs_at_last_line: 0,
            late: 0,
            no_send_time: 0,
        }
    }

    fn frame(&mut self, frame: &Frame) {
        let taken = sys::clock_tai_ns();
        self.frames += 1;
        // Tick 0 starts on the tick grid at its first input (Epoch::FirstInput): with it, an
        // input is late when its receive time lies before its frame's tick.
        if self.clock.is_none()
            && frame.tick == 0
            && let Some(first) = frame.inputs.iter().map(|i| i.rx.ns).min()
        {
            self.clock = Some(TickClock::new(TickClock::aligned(first, self.tick_hz), self.tick_hz));
        }
        let tick_start = self.clock.map(|c| c.start(frame.tick));
        for input in &frame.inputs {
            self.inputs += 1;
            if tick_start.is_some_and(|start| input.rx.ns < start) {
                self.late += 1;
            }
            match send_time_ns(input) {
                Some(sent) => {
                    let latency = taken.saturating_sub(sent);
                    self.total.record(latency);
                    self.interval.record(latency);
                }
                None => self.no_send_time += 1,
            }
        }
    }

    fn line(&mut self, t_s: u64, interval: Duration, report: &IngressReport) -> LiveLine {
        let inputs = self.inputs - self.inputs_at_last_line;
        self.inputs_at_last_line = self.inputs;
        let line = LiveLine {
            t_s,
            inputs_per_s: (inputs as f64 / interval.as_secs_f64().max(1e-3)).round() as u64,
            frames: self.frames,
            late: self.late,
            drops: Drops::of(report),
            p99_ns: self.interval.percentile(99.0),
        };
        self.interval = Histogram::default();
        line
    }
}

/// What the receiver thread hands back.
struct Received {
    report: IngressReport,
    tally: Tally,
    /// XDP `rx_packets` and the sender veth's counters when the traffic was about to start.
    xdp_before: u64,
    veth_before: VethCounters,
}

/// XDP's `rx_packets` and the sender veth's counters at one moment: XDP is read before and after
/// the veth until no packet arrived in between, so the two can be compared exactly later.
fn baseline(ingress: &Ingress<()>, lab: &Lab) -> Result<(u64, VethCounters)> {
    let xdp_rx = || ingress.report(Stats::default()).counters.rx_packets;
    for _ in 0..100 {
        let before = xdp_rx();
        let veth = lab::in_netns(&lab.tx_ns, || traffic::veth_counters(&lab.tx_if))?
            .with_context(|| format!("reading the counters of {}", lab.tx_if))?;
        if xdp_rx() == before {
            return Ok((before, veth));
        }
    }
    bail!("the lab never went quiet: packets kept arriving before the demo sent any")
}

/// The receiver thread: enters the receiver namespace, starts the ingress, says so on `ready`,
/// takes frames and prints a live line per second until `done` (plus [`SETTLE`]) or `hard_stop`.
fn receive(
    lab: &Lab,
    config: &IngressConfig,
    ready: mpsc::Sender<String>,
    done: &AtomicBool,
    hard_stop: Instant,
) -> Result<Received> {
    lab::enter(&lab.rx_ns)?;
    let mut ingress = Ingress::start(config, ())?;
    let (xdp_before, veth_before) = baseline(&ingress, lab)?;
    let attachment = ingress.attachment();
    for note in attachment.notes() {
        eprintln!("tickgate: {note}");
    }
    let _ = ready.send(format!("{} in {} mode", attachment.program().name(), attachment.mode()));
    let mut tally = Tally::new(config.frames.tick_hz);
    let started = Instant::now();
    let mut last_line = started;
    let mut settle_until = None;
    loop {
        let now = Instant::now();
        if now >= hard_stop {
            break;
        }
        if done.load(Ordering::Relaxed) {
            if now >= *settle_until.get_or_insert(now + SETTLE) {
                break;
            }
        } else if now >= last_line + Duration::from_secs(1) {
            let stats = Stats {
                frames: tally.frames,
                inputs_ordered: tally.inputs,
                late_next: tally.late,
                ..Stats::default()
            };
            let report = ingress.report(stats);
            let t_s = (now - started).as_secs_f64().round() as u64;
            println!("{}", tally.line(t_s, now - last_line, &report));
            last_line = now;
        }
        if let Some(frame) = ingress.frames().next_frame(Duration::from_millis(20)) {
            tally.frame(&frame);
        }
    }
    let (report, ()) = ingress.stop(|frame| tally.frame(&frame))?;
    Ok(Received { report, tally, xdp_before, veth_before })
}

/// Client groups for one or two sender threads.
fn plans(a: &DemoArgs, impairments: Impairments, dst: SocketAddr, sessions: &SessionPlan) -> Vec<ClientPlan> {
    let threads = if a.clients > CLIENTS_PER_THREAD { 2 } else { 1 };
    let per = a.clients.div_ceil(threads);
    (0..threads)
        .map(|t| ClientPlan {
            first_id: 1 + t * per,
            count: per.min(a.clients - t * per),
            tick_hz: a.tick_hz,
            redundancy: a.redundancy,
            impairments,
            seed: a.seed,
            dst,
            sessions: Some(sessions.clone()),
        })
        .collect()
}

/// The protocol id the demo's tokens carry.
const DEMO_PROTOCOL_ID: u64 = 0x7469_636b_6465_6d6f;

fn join<T>(handle: thread::ScopedJoinHandle<'_, Result<T>>, what: &str) -> Result<T> {
    handle.join().map_err(|_| anyhow!("the demo's {what} thread panicked"))?
}

struct Outcome {
    clients: SendStats,
    junk: JunkStats,
    veth: VethCounters,
    received: Received,
    trips: RoundTripReport,
}

/// Starts the receiver, then the traffic; waits for both; reads the sender veth's counters.
fn run_in_lab(a: &DemoArgs, lab: &Lab, impairments: Impairments, stop: &AtomicBool) -> Result<Outcome> {
    // The game's backend and tickgate share this key; the clients mint their own tokens with it,
    // as a backend would for them.
    let backend_key = Key::random().map_err(|e| anyhow!("no random bytes for the demo's key: {e}"))?;
    let session_plan = SessionPlan {
        backend_key: backend_key.clone(),
        protocol_id: DEMO_PROTOCOL_ID,
        timeout_s: 10,
        matches: a.matches,
    };
    let trips = RoundTrips::new(1, a.clients, &session_plan);
    // Every client shares the client namespace's one address: its handshake budget must hold all.
    let handshakes = RateLimit::new(u64::from(a.clients) * 4, u64::from(a.clients) * 4)
        .map_err(|e| anyhow!("handshake budget for {} clients: {e}", a.clients))?;
    let sessions = SessionsConfig {
        server: ServerConfig::new(DEMO_PROTOCOL_ID, backend_key, a.clients as usize + 16),
        handshake_limit: HandshakeLimit {
            per_source: RateLimit::config(Some(handshakes)),
            global: RateLimit::config(Some(handshakes)),
        },
    };
    let config = IngressConfig {
        load: LoadOptions {
            ifname: lab.rx_if.clone(),
            ports: vec![GAME_PORT],
            mode: a.mode.into(),
            timestamps: Timestamps::Auto,
            force: false,
            rate_limit: a.rate_limit,
            insecure_v1: false,
        },
        queues: (0..a.queues).collect(),
        cores: vec![None; a.queues as usize],
        wake: tickgate::worker::Wake::Packets,
        xsk: XskConfig::default(),
        handoff_capacity: 65_536,
        frames: Config { tick_hz: a.tick_hz, ..Config::default() },
        sessions: Some(sessions),
        frame_redundancy: tickgate::broadcast::DEFAULT_REDUNDANCY,
        frame_history: tickgate::broadcast::DEFAULT_HISTORY,
        broadcast: true,
        slack: tickgate::worker::SlackRule::default(),
        prove_watermarks: true,
    };
    let done = AtomicBool::new(false);
    let hard_stop = Instant::now() + Duration::from_secs(a.seconds + 60);
    let game: SocketAddr = (lab::RX_IP4, GAME_PORT).into();
    let other: SocketAddr = (lab::RX_IP4, OTHER_PORT).into();
    thread::scope(|s| {
        let (ready_tx, ready_rx) = mpsc::channel();
        let receiver = s.spawn(|| receive(lab, &config, ready_tx, &done, hard_stop));
        let Ok(program) = ready_rx.recv_timeout(Duration::from_secs(30)) else {
            done.store(true, Ordering::Relaxed);
            join(receiver, "receiver")?;
            bail!("the receiver did not start within 30 s");
        };
        println!(
            "tickgate demo: {} clients at {} Hz for {} s -> {} ({} queues, {program}), game port {GAME_PORT}",
            a.clients, a.tick_hz, a.seconds, lab.rx_if, a.queues
        );
        let until = Instant::now() + Duration::from_secs(a.seconds);
        let trips = &trips;
        let senders: Vec<_> = plans(a, impairments, game, &session_plan)
            .into_iter()
            .map(|plan| {
                s.spawn(move || -> Result<SendStats> {
                    lab::enter(&lab.tx_ns)?;
                    Ok(traffic::run_clients(&plan, until, stop, trips)?)
                })
            })
            .collect();
        let junk_pps = a.junk_pps;
        let flooder = s.spawn(move || -> Result<JunkStats> {
            lab::enter(&lab.tx_ns)?;
            Ok(traffic::flood(game, other, junk_pps, until, stop)?)
        });
        let mut clients: Result<SendStats> = Ok(SendStats::default());
        for sender in senders {
            let group = join(sender, "client sender");
            clients = clients.and_then(|sum| Ok(sum.merge(group?)));
        }
        let junk = join(flooder, "junk flood");
        done.store(true, Ordering::Relaxed);
        let received = join(receiver, "receiver")?;
        let veth = lab::in_netns(&lab.tx_ns, || traffic::veth_counters(&lab.tx_if))?
            .with_context(|| format!("reading the counters of {}", lab.tx_if))?
            .since(&received.veth_before);
        Ok(Outcome { clients: clients?, junk: junk?, veth, received, trips: trips.report() })
    })
}

pub fn demo(a: &DemoArgs) -> Result<()> {
    let impairments = Impairments { loss_pct: a.loss, duplicate_pct: a.duplicate, reorder_pct: a.reorder };
    impairments.validate()?;
    let client_pps = u64::from(a.clients) * u64::from(a.tick_hz);
    if client_pps > MAX_CLIENT_PPS {
        bail!(
            "--clients {} at --tick-hz {} is {client_pps} packets per second: the demo's senders pace \
             at most {MAX_CLIENT_PPS}; use fewer clients or a lower tick rate",
            a.clients,
            a.tick_hz
        );
    }
    privileges::require("demo")?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).context("installing the signal handler")?;
    }
    let lab = Lab::create("tgd", a.queues).context("building the veth lab")?;
    println!(
        "tickgate demo: lab {} <-> {} (veth {} -> {}, {}/24 -> {})",
        lab.tx_ns,
        lab.rx_ns,
        lab.tx_if,
        lab.rx_if,
        lab::TX_IP4,
        lab::RX_IP4
    );
    let outcome = run_in_lab(a, &lab, impairments, &stop);
    let mut names = LabNames {
        tx_ns: lab.tx_ns.clone(),
        rx_ns: lab.rx_ns.clone(),
        tx_if: lab.tx_if.clone(),
        rx_if: lab.rx_if.clone(),
        removed: false,
    };
    drop(lab);
    names.removed = [&names.tx_ns, &names.rx_ns].iter().all(|ns| !Path::new("/run/netns").join(ns).exists());
    let Outcome { clients, junk, veth, received, trips } = outcome?;
    let Received { report, tally, xdp_before, .. } = received;
    let accounting = Accounting::compute(&clients, &junk, &veth, xdp_before, &report, tally.inputs);
    let summary = DemoSummary {
        config: DemoConfig {
            clients: a.clients,
            matches: a.matches,
            seconds: a.seconds,
            tick_hz: a.tick_hz,
            queues: a.queues,
            mode: report.mode.to_string(),
            redundancy: a.redundancy,
            impairments,
            junk_pps: a.junk_pps,
            rate_limit: a.rate_limit,
            seed: a.seed,
            game_port: GAME_PORT,
        },
        lab: names,
        interrupted: stop.load(Ordering::Relaxed),
        clients,
        junk,
        veth,
        frames_taken: tally.frames,
        inputs_taken: tally.inputs,
        inputs_without_send_time: tally.no_send_time,
        latency: tally.total.summary_ms(),
        round_trip: RoundTripSummary {
            own: trips.own.summary_ms(),
            every_player: trips.every.summary_ms(),
            incomplete: trips.incomplete,
            frame_packets: trips.frame_packets,
        },
        accounting,
        ingress: report,
    };
    print_summary(&summary);
    if let Some(path) = &a.summary_json {
        std::fs::write(path, serde_json::to_string_pretty(&summary)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if !summary.lab.removed {
        bail!("the lab's namespaces are still there: remove them with 'ip netns del {}'", summary.lab.rx_ns);
    }
    if summary.accounting.unexplained != 0 {
        bail!(
            "{} packets or inputs are not explained by any counter (see 'accounting' above): this is a bug",
            summary.accounting.unexplained
        );
    }
    Ok(())
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2} ms"))
}

fn print_summary(s: &DemoSummary) {
    let c = &s.clients;
    let j = &s.junk;
    let r = &s.ingress;
    let x = &r.counters;
    let acc = &s.accounting;
    let sum = |f: &dyn Fn(&tickgate::worker::QueueReport) -> u64| -> u64 { r.queues.iter().map(f).sum() };
    let delivered = sum(&|q| q.delivered);
    let duplicates = sum(&|q| q.rejected(Reject::Duplicate));
    let ring_drops = sum(&|q| q.unread() + q.count(Counter::InvalidDescriptor));
    let worker_received = sum(&|q| q.received);
    println!();
    println!("== summary{}", if s.interrupted { " (interrupted: traffic stopped early)" } else { "" });
    println!(
        "sent:       {} game packets from {} clients ({} made; injected: lost {}, duplicated {}, held back {}; send errors {})",
        c.packets_sent, c.clients, c.packets_generated, c.lost, c.duplicated, c.reordered, c.send_errors
    );
    println!(
        "            {} inputs made, {} of them in at least one sent packet; {} commands sent (redundancy {})",
        c.inputs_generated, c.inputs_sent, c.commands_sent, s.config.redundancy
    );
    println!(
        "            protocol v2: {} handshake packets, {} clients connected, {} could not connect",
        c.handshake_packets,
        u64::from(c.clients).saturating_sub(c.connect_failures),
        c.connect_failures
    );
    println!(
        "            junk: {} bad-magic packets to port {}, {} packets to port {OTHER_PORT} (send errors {})",
        j.bad_magic, s.config.game_port, j.other_port, j.send_errors
    );
    if let Some(limit) = s.config.rate_limit {
        println!("            rate limit: {limit} (every client shares source {})", lab::TX_IP4);
    }
    let _ = std::io::stdout().flush();
    super::run::print_summary(r);
    let late = r.sequencer.late_next + r.sequencer.late_dropped;
    println!(
        "inputs:     delivered {delivered} exactly once of {} sent; duplicates removed {duplicates}; late {late}; \
         {} frames taken holding {} inputs",
        c.inputs_sent, s.frames_taken, s.inputs_taken
    );
    let l = &s.latency;
    println!(
        "latency:    send -> frame taken, {} inputs: min {}  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        l.inputs,
        ms(l.min_ms),
        ms(l.p50_ms),
        ms(l.p90_ms),
        ms(l.p99_ms),
        ms(l.p999_ms),
        ms(l.max_ms)
    );
    for (what, l) in [("own player", &s.round_trip.own), ("every player", &s.round_trip.every_player)] {
        println!(
            "round trip: input sent -> frame holding it at its {what}, {} inputs: min {}  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            l.inputs,
            ms(l.min_ms),
            ms(l.p50_ms),
            ms(l.p90_ms),
            ms(l.p99_ms),
            ms(l.p999_ms),
            ms(l.max_ms)
        );
    }
    let b = r.broadcast.clone().unwrap_or_default();
    let tx = |c: Counter| -> u64 { r.queues.iter().map(|q| q.count(c)).sum() };
    println!(
        "way back:   {} matches, {} frames sealed; {} frame packets to players ({} dropped at TX), {} received while they listened; \
         {} inputs not seen by every player",
        s.config.matches,
        b.frames,
        tx(Counter::FrameTxQueued),
        tx(Counter::FrameTxDropped),
        s.round_trip.frame_packets,
        s.round_trip.incomplete
    );
    println!(
        "accounting: sent {} + client-namespace kernel {} = carried by the veth {} + lost in the veth {}",
        acc.sent, acc.kernel_packets, acc.veth_carried, acc.lost_in_veth
    );
    println!(
        "            XDP saw {} = {} before the traffic + {} carried = steered {} + passed {} + dropped {} + no_socket {}",
        x.rx_packets,
        acc.xdp_before_traffic,
        acc.veth_carried,
        x.steered,
        x.passed,
        x.dropped_total(),
        x.no_socket
    );
    let inputs_balance = match acc.inputs_unexplained {
        Some(_) => format!(
            "commands {} = delivered {delivered} + rejected {} (duplicate {duplicates}) + in replayed copies {}",
            c.commands_sent,
            sum(&|q| q.dropped_inputs.values().sum()),
            c.duplicate_commands
        ),
        None => format!(
            "{} game packets not decoded (shed, no socket or dropped: see the counters), \
             {} inputs lost with every copy",
            acc.game_packets_not_decoded, acc.inputs_not_delivered
        ),
    };
    println!(
        "            steered {} = workers {worker_received} + ring drops {ring_drops}; {inputs_balance}; \
         delivered {delivered} + joins {} = ordered {}",
        x.steered,
        sum(&|q| q.events),
        r.sequencer.inputs_ordered
    );
    println!("            unexplained {}", acc.unexplained);
    println!(
        "lab:        {} ({}, {})",
        if s.lab.removed { "removed" } else { "NOT removed" },
        s.lab.tx_ns,
        s.lab.rx_ns
    );
}
