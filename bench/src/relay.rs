//! The relay scenario: tickgate as a lockstep relay (inputs in; every sealed frame back to every
//! player of its match) against a kernel-socket relay that runs the same code (session server,
//! `Ingest`, sequencer, matches, `Fanout`, `Server::broadcast`) behind `recvmmsg`/`sendmmsg` on
//! one UDP socket. The players are the demo's synthetic clients (`tickgate_testkit::traffic`):
//! each listens for its match's frames and times the round trip, input sent → frame holding it
//! at its own player and at every player of its match. Receivers alternate within each round.

use std::{
    net::{SocketAddr, SocketAddrV4, UdpSocket},
    os::fd::AsFd as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow};
use serde::Serialize;
use tickgate::{
    broadcast::{DEFAULT_HISTORY, Egress, Fanout},
    frame_queue::{self, Config},
    ingress::{Ingress, IngressConfig},
    session::{
        anti_replay::ClientsConfig,
        gate::{HandshakeLimit, SessionsConfig},
        server::{Server, ServerConfig},
        shared::ReadMostly,
    },
    steer::{LoadOptions, Mode, Timestamps, rate_limit::RateLimit},
    sys::{clock_monotonic_ns, clock_tai_ns},
    wire::crypto::Key,
    worker::{Ingest, QueueStats, SlackRule},
    xsk::{BindMode, XskConfig},
};
use tickgate_testkit::{
    histogram::LatencySummary,
    lab::{self, Lab},
    traffic::{self, ClientPlan, Impairments, RoundTrips, SessionPlan},
};

use crate::{kernel, receiver::SocketGate, sys};

/// The two relays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Relay {
    /// XDP → AF_XDP worker → sequencer → broadcast → the worker's AF_XDP TX ring.
    Tickgate,
    /// One UDP socket: recvmmsg → the same code → sendmmsg.
    Socket,
}

impl Relay {
    fn name(self) -> &'static str {
        match self {
            Self::Tickgate => "tickgate",
            Self::Socket => "socket",
        }
    }
}

/// One relay measurement's settings.
#[derive(Clone, Debug, Serialize)]
pub struct RelaySpec {
    /// Ticks per second (the players send one input per tick).
    pub tick_hz: u32,
    /// Grace, µs.
    pub grace_us: u64,
    /// Players in all.
    pub players: u32,
    /// Matches they are dealt into.
    pub matches: u32,
    /// Seconds of play.
    pub seconds: f64,
    /// Core of the receiving thread (AF_XDP worker or socket reader).
    pub rx_core: usize,
    /// Core of the sequencer thread.
    pub seq_core: Option<usize>,
}

/// What one relay measurement found.
#[derive(Clone, Debug, Serialize)]
pub struct RelayResult {
    /// Which relay.
    pub relay: Relay,
    /// Round.
    pub round: u32,
    /// Input sent → the frame holding it at every player of its match.
    pub every_player: LatencySummary,
    /// Input sent → the first frame holding it back at its own player.
    pub own_player: LatencySummary,
    /// Inputs the players sent.
    pub inputs_sent: u64,
    /// Inputs not seen by every player of their match.
    pub incomplete: u64,
    /// Frames sealed.
    pub frames: u64,
    /// Frame packets the relay sent (AF_XDP TX queued, or sendmmsg accepted).
    pub frame_packets_sent: u64,
    /// Frame packets it could not send.
    pub frame_packets_dropped: u64,
    /// Frame packets the players received while they listened.
    pub frame_packets_received: u64,
    /// Seconds between the relay's start and stop.
    pub window_s: f64,
    /// CPU of the relay's receiving/sending thread and of the receiver veth's NAPI thread (XDP,
    /// or the kernel's UDP receive path), % of a core.
    pub io_cpu_pct: f64,
    /// CPU of the sequencer thread, % of a core.
    pub sequencer_cpu_pct: f64,
    /// Relay CPU (both of the above) per player per tick, µs.
    pub cpu_us_per_player_tick: f64,
    /// Frame packets sent per second of relay CPU.
    pub frame_packets_per_cpu_s: f64,
}

/// Runs `rounds` rounds of both relays (the order alternating) in `lab`.
pub fn run(lab: &Lab, spec: &RelaySpec, rounds: u32, stop: &AtomicBool) -> Result<Vec<RelayResult>> {
    let mut out = Vec::new();
    for round in 0..rounds {
        let order =
            if round % 2 == 0 { [Relay::Tickgate, Relay::Socket] } else { [Relay::Socket, Relay::Tickgate] };
        for relay in order {
            if stop.load(Ordering::Relaxed) {
                return Ok(out);
            }
            let r =
                measure(lab, spec, relay, round, stop).with_context(|| format!("relay {}", relay.name()))?;
            eprintln!(
                "relay {:>4} Hz {:<8} r{} every player p50 {:>7} p99 {:>7} p99.9 {:>7}  frame packets {} ({} dropped) cpu {:.1} % = {:.2} µs/player/tick",
                spec.tick_hz,
                relay.name(),
                round,
                ms(r.every_player.p50_ms),
                ms(r.every_player.p99_ms),
                ms(r.every_player.p999_ms),
                r.frame_packets_sent,
                r.frame_packets_dropped,
                r.io_cpu_pct + r.sequencer_cpu_pct,
                r.cpu_us_per_player_tick
            );
            out.push(r);
        }
    }
    Ok(out)
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2}ms"))
}

/// The protocol id of the relay's tokens.
const PROTOCOL_ID: u64 = 0x7469_636b_7265_6c61;
const GAME_PORT: u16 = 7777;

fn sessions(key: &Key, players: u32) -> Result<SessionsConfig> {
    let burst = u64::from(players) * 4;
    let budget = RateLimit::config(Some(RateLimit::new(burst, burst).map_err(|e| anyhow!("{e}"))?));
    Ok(SessionsConfig {
        server: ServerConfig::new(PROTOCOL_ID, key.clone(), players as usize + 16),
        handshake_limit: HandshakeLimit { per_source: budget, global: budget },
    })
}

/// What the relay side hands back.
struct Served {
    frames: u64,
    sent: u64,
    dropped: u64,
    window_s: f64,
    io_ns: u64,
    sequencer_ns: u64,
}

fn measure(lab: &Lab, spec: &RelaySpec, relay: Relay, round: u32, stop: &AtomicBool) -> Result<RelayResult> {
    let key = Key::random().map_err(|e| anyhow!("no random bytes: {e}"))?;
    let config = sessions(&key, spec.players)?;
    let frames = Config { tick_hz: spec.tick_hz, grace_us: spec.grace_us, ..Config::default() };
    let plan =
        SessionPlan { backend_key: key, protocol_id: PROTOCOL_ID, timeout_s: 30, matches: spec.matches };
    let trips = RoundTrips::new(1, spec.players, &plan);
    let dst: SocketAddr = SocketAddrV4::new(lab::RX_IP4, GAME_PORT).into();
    let client_plan = ClientPlan {
        first_id: 1,
        count: spec.players,
        tick_hz: spec.tick_hz,
        redundancy: 3,
        impairments: Impairments::default(),
        seed: u64::from(round) + 1,
        dst,
        sessions: Some(plan),
    };
    let done = AtomicBool::new(false);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (served, sent) = std::thread::scope(|scope| -> Result<(Served, traffic::SendStats)> {
        let server = scope.spawn(|| -> Result<Served> {
            lab::enter(&lab.rx_ns)?;
            match relay {
                Relay::Tickgate => serve_tickgate(lab, spec, &config, frames, &ready_tx, &done),
                Relay::Socket => serve_socket(lab, spec, &config, frames, &ready_tx, &done),
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(30)).context("the relay did not start")?;
        let until = Instant::now() + Duration::from_secs_f64(spec.seconds);
        let (client_plan, trips) = (&client_plan, &trips);
        let players = scope.spawn(move || -> Result<traffic::SendStats> {
            lab::enter(&lab.tx_ns)?;
            Ok(traffic::run_clients(client_plan, until, stop, trips)?)
        });
        let sent = players.join().map_err(|_| anyhow!("the players' thread panicked"))?;
        done.store(true, Ordering::Relaxed);
        let served = server.join().map_err(|_| anyhow!("the relay's thread panicked"))??;
        Ok((served, sent?))
    })?;
    let report = trips.report();
    let relay_ns = served.io_ns + served.sequencer_ns;
    let player_ticks = f64::from(spec.players) * served.window_s * f64::from(spec.tick_hz);
    let pct = |ns: u64| 100.0 * ns as f64 / (served.window_s * 1e9).max(1.0);
    Ok(RelayResult {
        relay,
        round,
        every_player: report.every.summary_ms(),
        own_player: report.own.summary_ms(),
        inputs_sent: sent.inputs_sent,
        incomplete: report.incomplete,
        frames: served.frames,
        frame_packets_sent: served.sent,
        frame_packets_dropped: served.dropped,
        frame_packets_received: report.frame_packets,
        window_s: served.window_s,
        io_cpu_pct: pct(served.io_ns),
        sequencer_cpu_pct: pct(served.sequencer_ns),
        cpu_us_per_player_tick: relay_ns as f64 / 1e3 / player_ticks.max(1.0),
        frame_packets_per_cpu_s: served.sent as f64 / (relay_ns as f64 / 1e9).max(1e-9),
    })
}

/// CPU (ns) of this process's threads whose name starts with one of `prefixes`.
fn threads_ns(prefixes: &[&str]) -> u64 {
    kernel::thread_times()
        .values()
        .filter(|(name, _)| prefixes.iter().any(|p| name.starts_with(p)))
        .map(|(_, ns)| ns)
        .sum()
}

fn napi_ns(ifname: &str) -> u64 {
    kernel::napi_threads(ifname).iter().map(|&pid| kernel::task_cpu_ns(pid)).sum()
}

/// Takes the frames as a game would (and drops them), until `done`.
fn drain_frames(frames: &mut frame_queue::FrameQueue, done: &AtomicBool) -> u64 {
    let mut n = 0;
    while !done.load(Ordering::Relaxed) {
        if frames.next_frame(Duration::from_millis(20)).is_some() {
            n += 1;
        }
    }
    n
}

fn serve_tickgate(
    lab: &Lab,
    spec: &RelaySpec,
    sessions: &SessionsConfig,
    frames: Config,
    ready: &std::sync::mpsc::Sender<()>,
    done: &AtomicBool,
) -> Result<Served> {
    let config = IngressConfig {
        load: LoadOptions {
            ifname: lab.rx_if.clone(),
            ports: vec![GAME_PORT],
            mode: Mode::Native,
            timestamps: Timestamps::Xdp,
            force: false,
            rate_limit: None,
            insecure_v1: false,
        },
        queues: vec![0],
        cores: vec![Some(spec.rx_core)],
        wake: tickgate::worker::Wake::Packets,
        xsk: XskConfig::default(),
        handoff_capacity: 65_536,
        frames,
        sessions: Some(sessions.clone()),
        frame_redundancy: tickgate::broadcast::DEFAULT_REDUNDANCY,
        frame_history: DEFAULT_HISTORY,
        broadcast: true,
        slack: tickgate::worker::SlackRule::default(),
        prove_watermarks: true,
    };
    let mut ingress = Ingress::start(&config, ()).context("starting tickgate")?;
    let (io0, seq0, napi0) =
        (threads_ns(&["tickgate-q"]), threads_ns(&["tickgate-seq"]), napi_ns(&lab.rx_if));
    let started = Instant::now();
    let _ = ready.send(());
    let taken = drain_frames(ingress.frames(), done);
    let (io1, seq1, napi1) =
        (threads_ns(&["tickgate-q"]), threads_ns(&["tickgate-seq"]), napi_ns(&lab.rx_if));
    let window_s = started.elapsed().as_secs_f64();
    let (report, ()) = ingress.stop(|_| {}).context("stopping tickgate")?;
    let count = |c: tickgate::worker::Counter| -> u64 { report.queues.iter().map(|q| q.count(c)).sum() };
    Ok(Served {
        frames: report.sequencer.frames.max(taken),
        sent: count(tickgate::worker::Counter::FrameTxQueued),
        dropped: count(tickgate::worker::Counter::FrameTxDropped),
        window_s,
        io_ns: io1.saturating_sub(io0) + napi1.saturating_sub(napi0),
        sequencer_ns: seq1.saturating_sub(seq0),
    })
}

fn serve_socket(
    lab: &Lab,
    spec: &RelaySpec,
    sessions: &SessionsConfig,
    frames: Config,
    ready: &std::sync::mpsc::Sender<()>,
    done: &AtomicBool,
) -> Result<Served> {
    let addr = SocketAddrV4::new(lab::RX_IP4, GAME_PORT);
    let sock = sys::bind_udp(addr, false).with_context(|| format!("binding UDP {addr}"))?;
    sys::force_rcvbuf(&sock, 4 << 20).context("SO_RCVBUFFORCE (run as root)")?;
    sock.set_nonblocking(true)?;
    let (fanout, mut inboxes, _mailer, _history) =
        Fanout::new(1, tickgate::broadcast::DEFAULT_REDUNDANCY, DEFAULT_HISTORY, frames.tick_hz)?;
    let inbox = inboxes.pop().ok_or_else(|| anyhow!("no inbox"))?;
    let mut running = frame_queue::spawn_with_fanout(&frames, 1, 65_536, (), Some(Box::new(fanout)))?;
    let producer = running.producers.pop().ok_or_else(|| anyhow!("no producer"))?;
    let server = Arc::new(ReadMostly::new(
        Server::new(sessions.server.clone()).map_err(|e| anyhow!("no random bytes: {e}"))?,
        1,
    ));
    let stats = Arc::new(QueueStats::new(0, BindMode::Copy, Some(spec.rx_core)));
    let (seq0, napi0, started) = (threads_ns(&["tickgate-seq"]), napi_ns(&lab.rx_if), Instant::now());
    let mut frames_out = running.frames;
    let seq1 = Mutex::new(0u64);
    let seq1_ref = &seq1;
    let (sent, dropped, io_ns) = std::thread::scope(|scope| -> Result<(u64, u64, u64)> {
        let relay = std::thread::Builder::new().name("bench-relay".into()).spawn_scoped(
            scope,
            move || -> Result<(u64, u64, u64)> {
                let _ = core_affinity::set_for_current(core_affinity::CoreId { id: spec.rx_core });
                let t0 = threads_ns(&["bench-relay"]);
                let mut ingest = Ingest::new(producer, ClientsConfig::default(), Arc::clone(&stats));
                let (sent, dropped) = relay_loop(&sock, &mut ingest, &server, &inbox, done)?;
                // Read before the close ends the sequencer thread (its CPU time goes with it).
                *seq1_ref.lock().map_err(|_| anyhow!("poisoned"))? = threads_ns(&["tickgate-seq"]);
                let io = threads_ns(&["bench-relay"]).saturating_sub(t0);
                ingest.close();
                Ok((sent, dropped, io))
            },
        )?;
        let _ = ready.send(());
        drain_frames(&mut frames_out, done);
        relay.join().map_err(|_| anyhow!("the socket relay panicked"))?
    })?;
    let window_s = started.elapsed().as_secs_f64();
    let sequencer_ns = seq1.into_inner().map_err(|_| anyhow!("poisoned"))?.saturating_sub(seq0);
    let napi = napi_ns(&lab.rx_if).saturating_sub(napi0);
    let outcome = running.sequencer.join().map_err(|_| anyhow!("the sequencer panicked"))?;
    Ok(Served { frames: outcome.stats.frames, sent, dropped, window_s, io_ns: io_ns + napi, sequencer_ns })
}

/// The socket relay's one thread, like an AF_XDP worker: wait on the socket and the inbox's
/// eventfd; read every datagram waiting (`recvmmsg`), publish the watermark; send every frame
/// packet the inbox asks for (`sendmmsg`). Returns the frame packets sent and dropped.
fn relay_loop(
    sock: &UdpSocket,
    ingest: &mut Ingest,
    server: &Arc<ReadMostly<Server>>,
    inbox: &tickgate::broadcast::Inbox,
    done: &AtomicBool,
) -> Result<(u64, u64)> {
    let slack = match SlackRule::default() {
        SlackRule::Fixed(ns) => ns,
        SlackRule::Adaptive(a) => a.ceiling_ns,
    };
    let mut batch = sys::RecvBatch::new(64);
    let mut gate = SocketGate {
        server: Some(Arc::clone(server)),
        slot: 0,
        plain: vec![0; tickgate::wire::v2::MAX_PAYLOAD_LEN],
    };
    let (mut sent, mut dropped) = (0u64, 0u64);
    let mut out = Vec::new();
    while !done.load(Ordering::Relaxed) {
        let _ = tickgate::sys::poll_readable_many(&[sock.as_fd(), inbox.bell()], Duration::from_millis(1));
        loop {
            match batch.recv(sock, libc::MSG_DONTWAIT) {
                Ok(n) if n > 0 => {
                    let ts = clock_tai_ns();
                    let clocks = crate::receiver::Now::read();
                    for i in 0..n {
                        gate.packet(sock, ingest, batch.datagram(i), batch.source(i), ts, clocks);
                    }
                    if n < batch.capacity() {
                        break;
                    }
                }
                _ => break,
            }
        }
        ingest.publish_watermark(clock_tai_ns().saturating_sub(slack));
        inbox.quiet();
        while let Some(item) = inbox.try_next() {
            let Egress::Frame(outbound) = item else { continue };
            let s = server.read(0);
            s.broadcast(&outbound, clock_monotonic_ns(), |_| true, |p| ingest.ack(p), &mut out);
        }
        for chunk in out.chunks(64) {
            let packets: Vec<&[u8]> = chunk.iter().map(|o| o.bytes.as_slice()).collect();
            let dsts: Vec<SocketAddrV4> = chunk
                .iter()
                .filter_map(|o| match o.to {
                    SocketAddr::V4(a) => Some(a),
                    SocketAddr::V6(_) => None,
                })
                .collect();
            let n = sys::send_batch(sock, &packets, &dsts).unwrap_or(0);
            sent += n as u64;
            dropped += (chunk.len() - n) as u64;
        }
        out.clear();
    }
    Ok((sent, dropped))
}

/// Per relay, the median over rounds of each figure, and per round the tickgate / socket ratios.
#[derive(Clone, Debug, Serialize)]
pub struct RelaySummary {
    /// The settings.
    pub spec: RelaySpec,
    /// Every measurement.
    pub results: Vec<RelayResult>,
}

/// The markdown report of one tick rate's rounds.
pub fn markdown(s: &RelaySummary) -> String {
    let mut md = String::new();
    let spec = &s.spec;
    md.push_str(&format!(
        "### Relay at {} Hz: {} players in {} matches, {:.0} s per measurement, grace {} µs\n\n",
        spec.tick_hz, spec.players, spec.matches, spec.seconds, spec.grace_us
    ));
    md.push_str("| relay | round | every player p50 | p99 | p99.9 | own player p50 | frame packets sent (dropped) | received | incomplete | I/O CPU % | sequencer CPU % | µs CPU / player / tick | frame packets / CPU-s |\n");
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let f = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.2} ms"));
    for r in &s.results {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} ({}) | {} | {} | {:.1} | {:.1} | {:.2} | {:.0} |\n",
            r.relay.name(),
            r.round,
            f(r.every_player.p50_ms),
            f(r.every_player.p99_ms),
            f(r.every_player.p999_ms),
            f(r.own_player.p50_ms),
            r.frame_packets_sent,
            r.frame_packets_dropped,
            r.frame_packets_received,
            r.incomplete,
            r.io_cpu_pct,
            r.sequencer_cpu_pct,
            r.cpu_us_per_player_tick,
            r.frame_packets_per_cpu_s
        ));
    }
    // Ratios pair by pair (the same round), with their spread.
    let rounds: Vec<u32> = {
        let mut r: Vec<u32> = s.results.iter().map(|r| r.round).collect();
        r.dedup();
        r
    };
    let ratio = |pick: &dyn Fn(&RelayResult) -> Option<f64>| -> Vec<f64> {
        rounds
            .iter()
            .filter_map(|round| {
                let tg = s.results.iter().find(|r| r.round == *round && r.relay == Relay::Tickgate)?;
                let so = s.results.iter().find(|r| r.round == *round && r.relay == Relay::Socket)?;
                Some(pick(tg)? / pick(so)?)
            })
            .collect()
    };
    let spread = |v: Vec<f64>| -> String {
        if v.is_empty() {
            return "-".into();
        }
        let mut v = v;
        v.sort_by(f64::total_cmp);
        format!("{:.2} ({:.2}–{:.2}, {} rounds)", v[v.len() / 2], v[0], v[v.len() - 1], v.len())
    };
    md.push_str("\nRatios tickgate / socket, pair by pair (median, min–max over rounds; below 1 favours tickgate):\n\n");
    md.push_str(&format!(
        "- round trip to every player, p50: {}\n",
        spread(ratio(&|r| r.every_player.p50_ms))
    ));
    md.push_str(&format!(
        "- round trip to every player, p99: {}\n",
        spread(ratio(&|r| r.every_player.p99_ms))
    ));
    md.push_str(&format!(
        "- round trip to every player, p99.9: {}\n",
        spread(ratio(&|r| r.every_player.p999_ms))
    ));
    md.push_str(&format!(
        "- relay CPU per player per tick: {}\n",
        spread(ratio(&|r| Some(r.cpu_us_per_player_tick).filter(|v| *v > 0.0)))
    ));
    md.push_str(&format!(
        "- frame packets per relay CPU-second (above 1 favours tickgate): {}\n\n",
        spread(ratio(&|r| Some(r.frame_packets_per_cpu_s).filter(|v| *v > 0.0)))
    ));
    md
}
