//! tickgate-bench: measures tickgate (XDP → AF_XDP → workers → sequencer → frame queue) against
//! the kernel UDP socket path feeding the very same decode, sequencer and frame queue, in one
//! run, in one veth lab, alternating the receivers so that drift cancels. Only the ingress
//! differs, so the ratios between them are the result; the absolute numbers describe this lab.
//!
//! Scenarios: `seed` (the seeds' published setting: 10k packets/s, 64-byte payload, at the
//! game's tick rate and at a fast tick rate), `sweep` (rate steps up to saturation), `flood`
//! (legit clients plus junk at the generator's full speed), `ceiling` (XDP dropping everything:
//! the most the lab's hook can take). Needs root: it creates namespaces and loads XDP.

mod generator;
mod kernel;
mod live;
mod measure;
mod plot;
mod receiver;
mod relay;
mod report;
mod ring;
mod sockperf;
mod sys;

use std::{
    net::SocketAddrV4,
    path::PathBuf,
    process::ExitCode,
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tickgate::{
    frame_queue::{self, Late},
    session::{
        gate::{HandshakeLimit, SessionsConfig},
        server::ServerConfig,
    },
    steer::rate_limit::RateLimit,
    wire::crypto::Key,
    worker::{AdaptiveSlack, SlackRule},
};
use tickgate_testkit::{lab::Lab, traffic::SessionPlan};

use crate::{
    generator::{GenConfig, GenPath, JunkPorts},
    measure::{Outcome, Spec},
    receiver::{ReceiverConfig, ReceiverKind},
};

/// A scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Scenario {
    /// The seeds' setting (--rate, --size), at --tick-hz and again at --fast-tick-hz.
    Seed,
    /// Rate steps (--sweep-rates) up to saturation, one step per receiver in turn.
    Sweep,
    /// Legit clients at --rate plus junk at the generator's full speed: bad magic to the game
    /// port and datagrams to another port. Legit latency and legit loss are the figures.
    Flood,
    /// XDP drops every game packet (rate limit 1 packet/s per source): the most the lab's XDP
    /// hook can take, the upper bound of every other figure.
    Ceiling,
    /// tickgate as a lockstep relay (every frame back to every player of its match) against a
    /// kernel-socket relay with the same code behind recvmmsg/sendmmsg, at --tick-hz and
    /// --fast-tick-hz: round trip and fan-out cost (relay.md, relay.json).
    Relay,
    /// A sealed frame into a Go game server: the frame ring against a Unix datagram socket,
    /// spinning and sleeping, at --fast-tick-hz (ring.md, ring.json). Needs no lab.
    Ring,
    /// Tick close against late inputs: the seed load at --fast-tick-hz with every grace of
    /// --grace-sweep-us, each receiver once per step and round (the grace chart).
    Grace,
}

/// A rate step: packets per second (`20000`, `20k`, `1M`) or `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
enum Rate {
    /// Paced.
    Pps(u64),
    /// As fast as the generator's core allows.
    Max,
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("max") {
            return Ok(Self::Max);
        }
        let (digits, mult) = match s.chars().last() {
            Some('k' | 'K') => (&s[..s.len() - 1], 1_000),
            Some('m' | 'M') => (&s[..s.len() - 1], 1_000_000),
            _ => (s, 1),
        };
        match digits.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Self::Pps(n * mult)),
            _ => Err(format!("{s:?} is not a rate: use packets per second (20000, 20k, 1M) or max")),
        }
    }
}

/// The wire protocol a run speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum Protocol {
    /// Unauthenticated inputs.
    V1,
    /// Sessions: tokens, handshake, AES-256-GCM.
    V2,
}

/// The protocol id of the bench's tokens.
const BENCH_PROTOCOL_ID: u64 = 0x7469_636b_6265_6e63;

/// Benchmark tickgate against the kernel socket path in a veth lab (run as root).
#[derive(Clone, Debug, Parser, Serialize)]
#[command(name = "tickgate-bench", version)]
struct Args {
    /// Scenarios to run, in this order.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "seed,sweep,flood,ceiling")]
    scenarios: Vec<Scenario>,
    /// Receivers to measure (alternated tickgate / socket; the order reverses every round).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "tickgate-wakeup,tickgate-paced,tickgate-busy,socket-recv,socket-epoll,socket-recvmmsg,socket-paced,socket-spin"
    )]
    receivers: Vec<ReceiverKind>,
    /// Seconds of load per measurement (seed, flood, ceiling).
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Rounds of seed, flood, ceiling and grace: each round measures every receiver once.
    #[arg(long, default_value_t = 2)]
    rounds: u32,
    /// After --rounds, add rounds (up to this many in all) to each scenario with a headline
    /// ratio whose spread across rounds is wider than ±--spread-target-pct.
    #[arg(long, default_value_t = 4)]
    max_rounds: u32,
    /// The spread a headline ratio may have across rounds before another round is run, %.
    #[arg(long, default_value_t = 10.0)]
    spread_target_pct: f64,
    /// Legit packets per second in seed and flood.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// UDP payload bytes of every packet (tickgate header + protobuf, padded).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Client ids (1..=N), each a stream of inputs.
    #[arg(long, default_value_t = 256)]
    clients: u32,
    /// Source ports (flows) the clients' packets leave from.
    #[arg(long, default_value_t = 64)]
    flows: u32,
    /// Wire protocol of the whole run. v2: each flow is a session (a connect token, the
    /// handshake, sealed inputs; --clients is then --flows), and the socket receivers run the same
    /// session code; v1: unauthenticated inputs (--insecure-v1).
    #[arg(long, value_enum, default_value_t = Protocol::V2)]
    protocol: Protocol,
    /// Inputs per packet (1 = no resends; more makes the exact input accounting impossible).
    #[arg(long, default_value_t = 1)]
    redundancy: u32,
    /// Tick rate of the game (frame queue).
    #[arg(long, default_value_t = 60)]
    tick_hz: u32,
    /// Grace at --tick-hz, µs.
    #[arg(long, default_value_t = 2_000)]
    grace_us: u64,
    /// A second, fast tick rate for seed and flood, where the tick wait no longer hides the
    /// ingress (0: skip).
    #[arg(long, default_value_t = 1_000)]
    fast_tick_hz: u32,
    /// Grace at --fast-tick-hz, µs.
    #[arg(long, default_value_t = 200)]
    fast_grace_us: u64,
    /// How far every receiver's watermark trails "now" when it has nothing to read: `auto`
    /// (measured per queue or socket, as `tickgate run --watermark-slack auto`) or µs.
    #[arg(long, default_value = "auto")]
    watermark_slack: SlackArg,
    /// tickgate's workers trail by the slack always, as the socket receivers do, rather than
    /// publishing the instant before a read the XDP program's count proves complete (to measure
    /// what the proof changes).
    #[arg(long)]
    no_watermark_proof: bool,
    /// How flood and ceiling packets enter the lab, each a scenario of its own: `skb` (sockets)
    /// and `live` (junk and the ceiling's packets as live XDP frames via BPF_PROG_RUN, like a
    /// NIC's receive; labelled `-live`); `live-inputs` sends the legit inputs as live frames too,
    /// each at its due time, for seed and flood (labelled `-live-inputs`; not the ceiling).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "skb,live")]
    generators: Vec<GenPath>,
    /// Graces of the grace scenario, µs.
    #[arg(long, value_delimiter = ',', default_value = "0,25,50,100,200,400,800")]
    grace_sweep_us: Vec<u64>,
    /// Rate steps of the sweep (packets/s, `k`/`M` suffixes, `max`).
    #[arg(long, value_delimiter = ',', default_value = "20k,50k,100k,150k,200k,250k,300k,450k,600k,max")]
    sweep_rates: Vec<Rate>,
    /// Junk rates of the flood steps run at --fast-tick-hz after the full-speed flood at
    /// --tick-hz (packets/s, `k`/`M` suffixes, `max`; one round each), for the `skb` and
    /// `live-inputs` generators.
    #[arg(long, value_delimiter = ',', default_value = "100k,200k,400k")]
    flood_junk_rates: Vec<Rate>,
    /// Where the flood's junk goes: `both` (half bad magic to the game port, half to a port
    /// nothing listens on, which the host's stack sheds on either path) or `game` (all to the
    /// game port: what the frontend must shed; scenarios labelled `-game-port`).
    #[arg(long, value_enum, default_value = "both")]
    junk_ports: JunkPorts,
    /// With `live-inputs`, the paced junk of those steps goes in bursts of this many µs of its
    /// rate, back to back, as a NIC's interrupt moderation batches what its NAPI polls (veth
    /// wakes its NAPI for every flush otherwise); 0 sends each junk frame alone when due.
    #[arg(long, default_value_t = 50)]
    junk_burst_us: u64,
    /// Seconds per sweep step.
    #[arg(long, default_value_t = 2.0)]
    sweep_duration: f64,
    /// How the sweep's legit inputs enter the lab: `skb` (sockets) or `live-inputs` (each a live
    /// XDP frame, as a NIC delivers them; the `max` step is left out, live inputs are paced).
    #[arg(long, value_enum, default_value = "skb")]
    sweep_generator: GenPath,
    /// A receiver leaves the sweep after a step losing more than this share of its inputs (%);
    /// the `max` step is always run.
    #[arg(long, default_value_t = 5.0)]
    sweep_stop_loss_pct: f64,
    /// RX queues of the veth pair: tickgate serves each with a worker, the socket path opens
    /// one SO_REUSEPORT socket per queue.
    #[arg(long, default_value_t = 1)]
    queues: u32,
    /// Core of the generator (its softirq runs veth's receive side, XDP included).
    #[arg(long, default_value_t = 0)]
    gen_core: usize,
    /// Core of the receiving threads (AF_XDP workers or socket readers).
    #[arg(long, default_value_t = 1)]
    rx_core: usize,
    /// Core of the sequencer thread and of the thread taking frames (the game's side); `none`
    /// leaves them to the scheduler.
    #[arg(long, default_value = "1")]
    seq_core: CoreArg,
    /// Keep the cores from halting when idle during each load: a CPU latency request of 0 µs
    /// (`/dev/cpu_dma_latency`) makes cpuidle poll instead (needs a cpuidle driver; no thread
    /// runs for it). On a VM whose halted vCPU wakes late, a wake-up of the NAPI thread then runs
    /// it at once, as on a bare-metal core. It changes how NAPI batches, so CPU figures with and
    /// without it are not comparable; each core's `halts` in the report show it held.
    #[arg(long)]
    keep_awake: bool,
    /// Where the receiver veth runs XDP or the kernel receive path.
    #[arg(long, value_enum, default_value = "threaded")]
    napi: Napi,
    /// Software interrupt coalescing on the receiver veth, `COUNT,TIMEOUT_NS`, written to its
    /// `napi_defer_hard_irqs` and `gro_flush_timeout` for the whole run: after a poll that found
    /// packets, veth's NAPI waits for the timeout (or for a busy-polling reader) instead of
    /// waking for every packet, as a NIC's interrupt moderation batches its polls. socket-paced
    /// then busy-polls its socket at each read (SO_PREFER_BUSY_POLL), which runs veth's NAPI in
    /// its own thread; an AF_XDP socket's busy poll reaches no veth NAPI (docs/benchmarks.md,
    /// "NAPI deferral"). Needs threaded NAPI (not `--napi sender`).
    #[arg(long)]
    napi_defer: Option<NapiDefer>,
    /// SO_RCVBUF of each socket (SO_RCVBUFFORCE), bytes: by default about as many small
    /// datagrams as the AF_XDP ring holds.
    #[arg(long, default_value_t = 4 << 20)]
    socket_rcvbuf: usize,
    /// Inputs sent in the first MS of each measurement are counted but not timed.
    #[arg(long, default_value_t = 200)]
    warmup_ms: u64,
    /// Nor those sent in the last MS.
    #[arg(long, default_value_t = 100)]
    cooldown_ms: u64,
    /// Most packets of all kinds one measurement may send.
    #[arg(long, default_value_t = 20_000_000)]
    max_packets: u64,
    /// A measurement during which other processes used more than this share of a core (%) is
    /// disturbed: the bench waits for the machine to be quiet and measures again.
    #[arg(long, default_value_t = 10.0)]
    disturbed_pct: f64,
    /// Repeats of a disturbed measurement (the last one is kept and flagged).
    #[arg(long, default_value_t = 2)]
    retries: u32,
    /// Longest wait for a quiet machine before a measurement, seconds.
    #[arg(long, default_value_t = 30)]
    quiet_wait: u64,
    /// Ring scenario: frames per measurement.
    #[arg(long, default_value_t = 3_000)]
    ring_frames: u64,
    /// Relay scenario: players (synthetic clients, one input per tick each).
    #[arg(long, default_value_t = 32)]
    relay_players: u32,
    /// Relay scenario: matches the players are dealt into.
    #[arg(long, default_value_t = 8)]
    relay_matches: u32,
    /// Seconds of the sockperf cross-check (0: skip).
    #[arg(long, default_value_t = 5)]
    sockperf_seconds: u32,
    /// Directory for the results (created).
    #[arg(long, default_value = "bench/results/latest")]
    out: PathBuf,
    /// Write SVG charts only.
    #[arg(long)]
    no_png: bool,
    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,
}

/// Where the receiver veth does its receive work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Napi {
    /// In a NAPI kernel thread, as a NIC's NAPI runs on the core its interrupt targets: pinned
    /// to --rx-core for the sleeping receivers; a spinning receiver owns its core, so for those
    /// the NAPI thread goes to --gen-core. The sender's core only sends.
    Threaded,
    /// As `threaded`, with the NAPI threads at real-time priority (SCHED_FIFO 50): they preempt
    /// the receiving threads on their core, as a NIC's softirq preempts threads, rather than
    /// share it with them.
    ThreadedFifo,
    /// Stock veth: XDP and the kernel receive path run in the sender's softirq, on the
    /// generator's core.
    Sender,
}

/// SCHED_FIFO priority of the NAPI threads with `--napi threaded-fifo` (the kernel's threaded
/// IRQ handlers run at 50).
const NAPI_FIFO_PRIORITY: i32 = 50;

/// `--watermark-slack`: `auto` or µs.
#[derive(Clone, Copy, Debug, Serialize)]
enum SlackArg {
    /// Measured.
    Auto,
    /// Fixed, µs.
    Us(u64),
}

impl FromStr for SlackArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(Self::Auto);
        }
        s.parse().map(Self::Us).map_err(|_| format!("{s:?} is not auto or a number of µs"))
    }
}

impl SlackArg {
    fn rule(self) -> SlackRule {
        match self {
            Self::Auto => SlackRule::Adaptive(AdaptiveSlack::default()),
            Self::Us(us) => SlackRule::Fixed(us.saturating_mul(1_000)),
        }
    }
}

/// `--napi-defer`: the receiver veth's `napi_defer_hard_irqs` and `gro_flush_timeout`.
#[derive(Clone, Copy, Debug, Serialize)]
struct NapiDefer {
    /// Empty polls NAPI defers before it waits for packets again.
    count: u32,
    /// How long a deferred NAPI waits before it polls by itself, ns.
    timeout_ns: u64,
}

impl FromStr for NapiDefer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not COUNT,TIMEOUT_NS (two whole numbers, both above 0)");
        let (count, timeout) = s.split_once(',').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let timeout_ns: u64 = timeout.trim().parse().map_err(|_| bad())?;
        // The kernel takes napi_defer_hard_irqs up to S32_MAX; 0 in either turns deferral off.
        if count == 0 || count > i32::MAX as u32 || timeout_ns == 0 {
            return Err(bad());
        }
        Ok(Self { count, timeout_ns })
    }
}

/// A core number or `none`.
#[derive(Clone, Copy, Debug, Serialize)]
struct CoreArg(Option<usize>);

impl FromStr for CoreArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "none" {
            return Ok(Self(None));
        }
        s.parse().map(|c| Self(Some(c))).map_err(|_| format!("{s:?} is not a core number or none"))
    }
}

/// The label suffix of a generator path.
fn path_suffix(path: GenPath) -> &'static str {
    match path {
        GenPath::Skb => "",
        GenPath::Live => "-live",
        GenPath::LiveInputs => "-live-inputs",
    }
}

/// One planned measurement.
struct Planned {
    spec: Spec,
    sweep_step: Option<Rate>,
}

/// Receivers in A B A B order (tickgate, socket, tickgate, socket, ...), reversed every other
/// round so that a slow drift of the machine weighs on both paths alike.
fn alternate(receivers: &[ReceiverKind], round: u32) -> Vec<ReceiverKind> {
    let (tg, sock): (Vec<ReceiverKind>, Vec<ReceiverKind>) = receivers.iter().partition(|r| r.is_tickgate());
    let mut out = Vec::new();
    for i in 0..tg.len().max(sock.len()) {
        out.extend(tg.get(i));
        out.extend(sock.get(i));
    }
    if round % 2 == 1 {
        out.reverse();
    }
    out
}

fn plan(a: &Args) -> Vec<Planned> {
    let dst = SocketAddrV4::new(tickgate_testkit::lab::RX_IP4, generator::GAME_PORT);
    // Protocol v2: one backend key for the whole run; the generator mints every flow's token
    // with it, as a game's backend would.
    let backend_key = Key::random().unwrap_or_else(|_| Key::from_bytes([0x5b; 32]));
    let (gen_sessions, rx_sessions) = match a.protocol {
        Protocol::V1 => (None, None),
        Protocol::V2 => {
            // Every flow shares the sender's one address: the handshake budget must hold them all.
            let burst = u64::from(a.flows.max(1)) * 4;
            let budget = RateLimit::new(burst, burst).map(|r| RateLimit::config(Some(r))).unwrap_or_default();
            (
                Some(SessionPlan {
                    backend_key: backend_key.clone(),
                    protocol_id: BENCH_PROTOCOL_ID,
                    timeout_s: 30,
                    matches: 1,
                }),
                Some(SessionsConfig {
                    server: ServerConfig::new(BENCH_PROTOCOL_ID, backend_key, a.flows as usize + 16),
                    handshake_limit: HandshakeLimit { per_source: budget, global: budget },
                }),
            )
        }
    };
    let load = |rate: Option<u64>, duration: f64, junk: Option<Rate>| GenConfig {
        path: GenPath::Skb,
        tx_if: String::new(),
        rate,
        junk_burst_us: a.junk_burst_us,
        junk_ports: a.junk_ports,
        junk_rate: match junk {
            Some(Rate::Pps(r)) => Some(r),
            _ => None,
        },
        duration: Duration::from_secs_f64(duration),
        max_packets: a.max_packets,
        size: a.size,
        clients: a.clients,
        flows: a.flows,
        redundancy: a.redundancy,
        junk: junk.is_some(),
        dst,
        sessions: gen_sessions.clone(),
    };
    let frames = |tick_hz: u32, grace_us: u64| frame_queue::Config {
        tick_hz,
        grace_us,
        late: Late::Next,
        ..frame_queue::Config::default()
    };
    let receiver =
        |kind: ReceiverKind, frames: frame_queue::Config, rate_limit: Option<RateLimit>| ReceiverConfig {
            kind,
            ifname: String::new(),
            queues: a.queues,
            core: Some(a.rx_core),
            frames,
            rate_limit,
            socket_rcvbuf: a.socket_rcvbuf,
            sessions: rx_sessions.clone(),
            slack: a.watermark_slack.rule(),
            prove_watermarks: !a.no_watermark_proof,
            busy_reads: a.napi_defer.is_some(),
        };
    let spec = |scenario: String, round: u32, receiver: ReceiverConfig, load: GenConfig| Spec {
        scenario,
        round,
        napi_core: (a.napi != Napi::Sender).then_some(if receiver.kind.spins() {
            a.gen_core
        } else {
            a.rx_core
        }),
        napi_fifo: (a.napi == Napi::ThreadedFifo).then_some(NAPI_FIFO_PRIORITY),
        keep_awake: a.keep_awake,
        receiver,
        load,
        gen_core: Some(a.gen_core),
        seq_core: a.seq_core.0,
        warmup: Duration::from_millis(a.warmup_ms),
        cooldown: Duration::from_millis(a.cooldown_ms),
    };
    // One measurement per receiver, in the A B order of `turn`, with the same label, frames and
    // load.
    let each_receiver = |label: &str,
                         round: u32,
                         turn: u32,
                         frames: frame_queue::Config,
                         load: GenConfig,
                         sweep_step: Option<Rate>| {
        let mut out = Vec::new();
        for kind in alternate(&a.receivers, turn) {
            let spec = spec(label.to_owned(), round, receiver(kind, frames, None), load.clone());
            out.push(Planned { spec, sweep_step });
        }
        out
    };
    let mut variants = vec![(a.tick_hz, a.grace_us, String::new())];
    if a.fast_tick_hz > 0 && a.fast_tick_hz != a.tick_hz {
        variants.push((a.fast_tick_hz, a.fast_grace_us, format!("-{}hz", a.fast_tick_hz)));
    }
    let mut out = Vec::new();
    for scenario in &a.scenarios {
        match scenario {
            Scenario::Seed => {
                // Sockets always; live frames only for legit inputs too (the seed has no junk).
                let paths = [GenPath::Skb]
                    .into_iter()
                    .chain(a.generators.iter().copied().filter(|p| *p == GenPath::LiveInputs));
                for path in paths {
                    let via = path_suffix(path);
                    for (tick_hz, grace_us, suffix) in &variants {
                        for round in 0..a.rounds {
                            out.extend(each_receiver(
                                &format!("seed{suffix}{via}"),
                                round,
                                round,
                                frames(*tick_hz, *grace_us),
                                GenConfig { path, ..load(Some(a.rate), a.duration, None) },
                                None,
                            ));
                        }
                    }
                }
            }
            Scenario::Flood => {
                for &path in &a.generators {
                    let via = match a.junk_ports {
                        JunkPorts::Both => path_suffix(path).to_owned(),
                        JunkPorts::Game => format!("{}-game-port", path_suffix(path)),
                    };
                    let load = |rate, duration, junk| GenConfig { path, ..load(rate, duration, junk) };
                    // The brief's flood: junk at full speed, at the game's tick rate, every round.
                    for round in 0..a.rounds {
                        out.extend(each_receiver(
                            &format!("flood{via}"),
                            round,
                            round,
                            frames(a.tick_hz, a.grace_us),
                            load(Some(a.rate), a.duration, Some(Rate::Max)),
                            None,
                        ));
                    }
                    // Then fixed junk rates, the same for every receiver, at the fast tick rate
                    // (sockets, or the live schedule's program; the junk thread's long calls of
                    // copies cannot be paced).
                    let (tick_hz, grace_us, suffix) = variants.last().cloned().unwrap_or_default();
                    let paced = if path == GenPath::Live { &[] } else { a.flood_junk_rates.as_slice() };
                    for (step, junk) in paced.iter().enumerate() {
                        let label = match junk {
                            Rate::Pps(r) if r % 1000 == 0 => format!("flood{suffix}-junk{}k{via}", r / 1000),
                            Rate::Pps(r) => format!("flood{suffix}-junk{r}{via}"),
                            Rate::Max => format!("flood{suffix}-junkmax{via}"),
                        };
                        out.extend(each_receiver(
                            &label,
                            0,
                            step as u32,
                            frames(tick_hz, grace_us),
                            load(Some(a.rate), a.duration, Some(*junk)),
                            None,
                        ));
                    }
                }
            }
            Scenario::Sweep => {
                for (step, rate) in a.sweep_rates.iter().enumerate() {
                    let pps = match rate {
                        Rate::Pps(p) => Some(*p),
                        Rate::Max if a.sweep_generator == GenPath::LiveInputs => continue,
                        Rate::Max => None,
                    };
                    let step = step as u32;
                    let frames = frames(a.tick_hz, a.grace_us);
                    out.extend(each_receiver(
                        "sweep",
                        step,
                        step,
                        frames,
                        GenConfig { path: a.sweep_generator, ..load(pps, a.sweep_duration, None) },
                        Some(*rate),
                    ));
                }
            }
            Scenario::Grace => {
                let tick_hz = if a.fast_tick_hz > 0 { a.fast_tick_hz } else { a.tick_hz };
                for round in 0..a.rounds {
                    for (step, grace_us) in a.grace_sweep_us.iter().enumerate() {
                        out.extend(each_receiver(
                            &format!("grace-{grace_us}us"),
                            round,
                            round + step as u32,
                            frames(tick_hz, *grace_us),
                            load(Some(a.rate), a.duration, None),
                            None,
                        ));
                    }
                }
            }
            // Not measure::Specs: run on their own by `relay::run` and `ring::run`.
            Scenario::Relay | Scenario::Ring => {}
            Scenario::Ceiling => {
                // 1 packet/s with a burst of 1 per source: every valid game packet after the
                // first of each second is dropped at the hook as rate_limited.
                let limit = RateLimit::new(1, 1).ok();
                for &path in a.generators.iter().filter(|p| **p != GenPath::LiveInputs) {
                    for round in 0..a.rounds {
                        out.push(Planned {
                            spec: spec(
                                format!("ceiling{}", path_suffix(path)),
                                round,
                                receiver(ReceiverKind::TickgateWakeup, frames(a.tick_hz, a.grace_us), limit),
                                // The rate limit sheds handshakes too, so under v2 the ceiling's
                                // packets come without sessions: XDP drops them all the same
                                // (no_session or rate_limited), which is what the ceiling measures.
                                GenConfig { path, sessions: None, ..load(None, a.duration, None) },
                            ),
                            sweep_step: None,
                        });
                    }
                }
            }
        }
    }
    out
}

fn run() -> Result<()> {
    let args = Args::parse();
    if sys::geteuid() != 0 {
        bail!(
            "tickgate-bench creates network namespaces, loads XDP programs and raises socket buffers: \
             run it as root (sudo scripts/bench.sh)"
        );
    }
    let cores: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().iter().map(|c| c.id).collect();
    for (flag, core) in [
        ("--gen-core", Some(args.gen_core)),
        ("--rx-core", Some(args.rx_core)),
        ("--seq-core", args.seq_core.0),
    ] {
        let Some(core) = core else { continue };
        if !cores.contains(&core) {
            bail!("{flag} {core}: no such core (this process may use cores {cores:?})");
        }
    }
    if args.gen_core == args.rx_core {
        eprintln!("tickgate-bench: warning: generator and receivers share core {}", args.gen_core);
    }
    if args.receivers.is_empty() || args.scenarios.is_empty() {
        bail!("nothing to run: give at least one --scenarios and one --receivers");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).context("installing the signal handler")?;
    }
    let started = Instant::now();
    let machine = report::Machine::describe();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    // Every round a scenario may need is planned; the rounds past --rounds are kept in reserve
    // for the scenarios whose ratios spread too wide.
    let (mut planned, mut reserve): (Vec<Planned>, Vec<Planned>) =
        plan(&Args { rounds: args.rounds.max(args.max_rounds), ..args.clone() })
            .into_iter()
            .partition(|p| p.sweep_step.is_some() || p.spec.round < args.rounds);

    let lab = Lab::create("tgb", args.queues).context("creating the veth lab")?;
    if args.napi != Napi::Sender {
        kernel::threaded_napi(&lab.tx_ns, &lab.tx_if, &lab.rx_ns, &lab.rx_if)
            .context("setting up threaded NAPI on the receiver veth (--napi sender avoids it)")?;
    }
    if let Some(d) = args.napi_defer {
        if args.napi == Napi::Sender {
            bail!("--napi-defer needs veth's NAPI (threaded): --napi sender runs no NAPI to defer");
        }
        kernel::napi_defer(&lab.rx_ns, &lab.rx_if, d.count, d.timeout_ns)
            .context("setting NAPI deferral on the receiver veth")?;
    }
    // Addresses were just added: let the kernel's own announcements (IPv6 MLD reports) go by
    // so that the lab carries only the bench's packets while it measures.
    std::thread::sleep(Duration::from_secs(1));
    for p in planned.iter_mut().chain(reserve.iter_mut()) {
        p.spec.receiver.ifname = lab.rx_if.clone();
        p.spec.load.tx_if = lab.tx_if.clone();
    }

    let bar = if args.quiet { ProgressBar::hidden() } else { ProgressBar::new(planned.len() as u64) };
    if !args.quiet {
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:32}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
    }
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut saturated: Vec<ReceiverKind> = Vec::new();
    let mut run_one = |p: &Planned, outcomes: &mut Vec<Outcome>| -> Result<()> {
        let kind = p.spec.receiver.kind;
        if p.sweep_step.is_some_and(|r| r != Rate::Max) && saturated.contains(&kind) {
            bar.inc(1);
            return Ok(());
        }
        bar.set_message(format!("{} {} round {}", p.spec.scenario, kind.name(), p.spec.round));
        let mut attempt = 0;
        let outcome = loop {
            wait_for_quiet(&args, &stop, &bar);
            let outcome = measure::measure(&lab, &p.spec, &stop)
                .with_context(|| format!("{} with {}", p.spec.scenario, kind.name()))?;
            let other = outcome.result.cpu.other_processes_pct;
            if other <= args.disturbed_pct || attempt >= args.retries || stop.load(Ordering::Relaxed) {
                break outcome;
            }
            attempt += 1;
            say(&bar, format!("  disturbed (other processes used {other:.0} % of a core): measuring again"));
        };
        let r = &outcome.result;
        let line = format!(
            "{:<14} {:<16} r{} sent {:>8} ({:>7.0} pps) in frames {:>8} lost {:>6} unexplained {:>3} p50 {:>9.1} µs p99 {:>9.1} µs cpu {:>5.1} %",
            r.scenario,
            kind.name(),
            r.round,
            r.generator.inputs,
            r.generator.legit_pps,
            r.inputs_in_frames,
            r.loss.legit_inputs_lost,
            r.loss.unexplained_packets,
            r.latency.p50_us,
            r.latency.p99_us,
            r.cpu.receiver_pct
        );
        say(&bar, line);
        if p.sweep_step.is_some() && r.loss.legit_loss_pct > args.sweep_stop_loss_pct {
            saturated.push(kind);
        }
        outcomes.push(outcome);
        bar.inc(1);
        Ok(())
    };
    for p in &planned {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        run_one(p, &mut outcomes)?;
    }
    // More rounds, one at a time, for the scenarios whose ratios still spread too wide.
    for round in args.rounds..args.max_rounds {
        let wide = report::wide_scenarios(&outcomes, args.spread_target_pct);
        let next: Vec<&Planned> =
            reserve.iter().filter(|p| p.spec.round == round && wide.contains(&p.spec.scenario)).collect();
        if next.is_empty() || stop.load(Ordering::Relaxed) {
            break;
        }
        let names: Vec<&String> = wide.iter().collect();
        say(
            &bar,
            format!(
                "spread wider than ±{} % in {names:?}: round {round} of at most {}",
                args.spread_target_pct, args.max_rounds
            ),
        );
        bar.inc_length(next.len() as u64);
        for p in next {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            run_one(p, &mut outcomes)?;
        }
    }
    bar.finish_and_clear();

    if args.scenarios.contains(&Scenario::Ring) && !stop.load(Ordering::Relaxed) {
        let hz = if args.fast_tick_hz > 0 { args.fast_tick_hz } else { args.tick_hz };
        std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
        let reader = ring::build_reader(&args.out)?;
        let results = ring::run(&reader, args.rounds, args.ring_frames, hz, &stop)?;
        let _ = std::fs::remove_file(&reader);
        std::fs::write(args.out.join("ring.md"), ring::markdown(&results, args.ring_frames, hz))?;
        std::fs::write(args.out.join("ring.json"), serde_json::to_string_pretty(&results)?)?;
        eprintln!("tickgate-bench: ring results in {}", args.out.join("ring.md").display());
    }
    if args.scenarios.contains(&Scenario::Relay) && !stop.load(Ordering::Relaxed) {
        let mut rates = vec![(args.tick_hz, args.grace_us)];
        if args.fast_tick_hz > 0 {
            rates.push((args.fast_tick_hz, args.fast_grace_us));
        }
        let mut md = String::from("# Relay: tickgate against a kernel-socket relay\n\n");
        let mut summaries = Vec::new();
        for (tick_hz, grace_us) in rates {
            let spec = relay::RelaySpec {
                tick_hz,
                grace_us,
                players: args.relay_players,
                matches: args.relay_matches,
                seconds: args.duration,
                rx_core: args.rx_core,
                seq_core: args.seq_core.0,
            };
            let results = relay::run(&lab, &spec, args.rounds, &stop)?;
            let summary = relay::RelaySummary { spec, results };
            md.push_str(&relay::markdown(&summary));
            summaries.push(summary);
        }
        std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
        std::fs::write(args.out.join("relay.md"), &md)?;
        std::fs::write(args.out.join("relay.json"), serde_json::to_string_pretty(&summaries)?)?;
        eprintln!("tickgate-bench: relay results in {}", args.out.join("relay.md").display());
    }

    let sockperf = if args.sockperf_seconds > 0 && !stop.load(Ordering::Relaxed) {
        eprintln!("tickgate-bench: sockperf cross-check ({} s)", args.sockperf_seconds);
        sockperf::run(
            &lab,
            args.rate,
            args.size,
            args.sockperf_seconds,
            Some(args.gen_core),
            Some(args.rx_core),
        )
        .map_err(|e| format!("{e:#}"))
    } else {
        Err("skipped (--sockperf-seconds 0)".into())
    };
    drop(lab);

    let run = report::Run {
        machine,
        command,
        settings: serde_json::to_value(&args)?,
        outcomes,
        sockperf,
        wall_s: started.elapsed().as_secs_f64(),
    };
    let written = report::write(&args.out, &run, !args.no_png)?;
    eprintln!("tickgate-bench: results in {}:", args.out.display());
    for w in written {
        eprintln!("  {w}");
    }
    if stop.load(Ordering::Relaxed) {
        bail!("interrupted: the results cover the measurements finished so far");
    }
    Ok(())
}

/// A line above the progress bar (or on stderr without one).
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// Waits (at most --quiet-wait seconds) until other processes use less than --disturbed-pct of
/// a core, so a shared machine's other work lands between measurements rather than in them.
fn wait_for_quiet(args: &Args, stop: &AtomicBool, bar: &ProgressBar) {
    let deadline = Instant::now() + Duration::from_secs(args.quiet_wait);
    let mut told = false;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let other = kernel::other_cpu_now(Duration::from_millis(250));
        if other <= args.disturbed_pct {
            return;
        }
        if !told {
            say(bar, format!("  waiting for a quiet machine (other processes use {other:.0} % of a core)"));
            told = true;
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tickgate-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn napi_defer_takes_a_count_and_a_timeout() {
        let d: NapiDefer = "10, 5000000".parse().unwrap();
        assert_eq!((d.count, d.timeout_ns), (10, 5_000_000));
        for bad in ["10", "0,5000000", "10,0", "x,5", "-1,5", "2147483648,5", "10,5,6"] {
            assert!(bad.parse::<NapiDefer>().is_err(), "{bad} was taken");
        }
    }
}
