//! The receivers under test. Both paths end in the same `worker::Ingest` (decode, anti-replay,
//! hand-off), the same sequencer and the same frame queue; only the ingress differs:
//!
//! - `tickgate`: XDP → AF_XDP → `tickgate::ingress::Ingress` (its workers, wakeup or busy-poll);
//! - `socket`: a kernel UDP socket per queue, read in one of four ways, stamped with CLOCK_TAI
//!   right after the read returns, feeding `Ingest` exactly as the AF_XDP worker does.

use std::{
    net::{SocketAddrV4, UdpSocket},
    os::fd::AsFd,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use clap::ValueEnum;
use serde::Serialize;
use std::{
    net::SocketAddr,
    time::{SystemTime, UNIX_EPOCH},
};

use tickgate::{
    frame_queue::{self, Frame, FrameQueue, SequencerThread, Stats},
    ingress::{Ingress, IngressConfig, IngressReport},
    input::InputKind,
    input::Timestamp,
    sequencer::WATERMARK_STEP_NS,
    session::anti_replay::ClientsConfig,
    session::{
        gate::{SessionEvent, SessionsConfig},
        server::{Data, Server},
        shared::ReadMostly,
    },
    steer::rate_limit::RateLimit,
    steer::{LoadOptions, Mode, Timestamps},
    sys::clock_monotonic_ns,
    sys::clock_tai_ns,
    wire::v2,
    worker::{Alarm, Ingest, Pace, QueueReport, QueueStats, SlackEstimator, SlackRule, Wake, next_seal_wake},
    xsk::{BindMode, XskConfig},
};

use crate::{generator::GAME_PORT, sys};

/// How long a blocking read or wait lasts at most before the receiver publishes an idle
/// watermark and checks its stop flag: the AF_XDP worker's idle wake-up (1 ms).
const WAIT: Duration = Duration::from_millis(1);
/// The epoll token of socket-epoll's alarm (the socket's is 0).
const ALARM: u64 = 1;
/// The shortest timed wait (SO_RCVTIMEO of 0 would mean "forever").
const MIN_WAIT: Duration = Duration::from_micros(1);
/// Datagrams per batched read: the AF_XDP worker's ring batch.
const BATCH: usize = 64;
/// Inputs each hand-off holds (as `tickgate run`).
pub const HANDOFF_CAPACITY: usize = 65_536;

/// A receiver under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReceiverKind {
    /// XDP → AF_XDP, worker sleeping in poll(2) until the ring has packets.
    TickgateWakeup,
    /// XDP → AF_XDP, worker sleeping until a tick can seal or 1 ms passes, not for each packet
    /// (`tickgate run --paced`).
    TickgatePaced,
    /// XDP → AF_XDP, worker spinning on the ring (SO_PREFER_BUSY_POLL where allowed).
    TickgateBusy,
    /// Kernel UDP socket, one blocking recv(2) per datagram.
    SocketRecv,
    /// Kernel UDP socket, epoll_wait(2) then non-blocking recv(2) until drained; timed
    /// wake-ups from the worker's timerfd alarm in the same epoll set.
    SocketEpoll,
    /// Kernel UDP socket, blocking recvmmsg(2) of up to 64 datagrams (MSG_WAITFORONE).
    SocketRecvmmsg,
    /// Kernel UDP socket, non-blocking recvmmsg(2) of everything waiting, at tickgate-paced's
    /// wake-ups (the same timerfd alarm and [`Pace`]), each datagram stamped with the kernel's
    /// receive time (SO_TIMESTAMPNS) instead of the read's: the socket path's answer to pacing.
    SocketPaced,
    /// Kernel UDP socket, non-blocking recvmmsg(2) in a spin loop.
    SocketSpin,
}

impl ReceiverKind {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::TickgateWakeup => "tickgate-wakeup",
            Self::TickgatePaced => "tickgate-paced",
            Self::TickgateBusy => "tickgate-busy",
            Self::SocketRecv => "socket-recv",
            Self::SocketEpoll => "socket-epoll",
            Self::SocketRecvmmsg => "socket-recvmmsg",
            Self::SocketPaced => "socket-paced",
            Self::SocketSpin => "socket-spin",
        }
    }

    /// Whether this is the AF_XDP path.
    pub fn is_tickgate(self) -> bool {
        matches!(self, Self::TickgateWakeup | Self::TickgatePaced | Self::TickgateBusy)
    }

    /// Whether the receiving thread spins (and so owns its core) instead of sleeping.
    pub fn spins(self) -> bool {
        matches!(self, Self::TickgateBusy | Self::SocketSpin)
    }
}

/// How a receiver is set up.
#[derive(Clone, Debug)]
pub struct ReceiverConfig {
    /// Which receiver.
    pub kind: ReceiverKind,
    /// Receiver veth.
    pub ifname: String,
    /// RX queues (tickgate) or SO_REUSEPORT sockets (socket).
    pub queues: u32,
    /// Core of each receiving thread.
    pub core: Option<usize>,
    /// Tick rate, grace, late policy: identical for both paths.
    pub frames: frame_queue::Config,
    /// XDP per-source rate limit (the ceiling scenario).
    pub rate_limit: Option<RateLimit>,
    /// SO_RCVBUF of each socket, bytes.
    pub socket_rcvbuf: usize,
    /// Protocol v2: tokens, handshake, sealed inputs, on both paths (`None`: v1).
    pub sessions: Option<SessionsConfig>,
    /// How far watermarks trail "now", on both paths (the same rule and estimator).
    pub slack: SlackRule,
    /// Whether tickgate's workers prove their watermarks with the XDP program's count.
    pub prove_watermarks: bool,
    /// socket-paced busy-polls its socket at each read (SO_PREFER_BUSY_POLL), driving veth's
    /// deferred NAPI from its thread (`--napi-defer`).
    pub busy_reads: bool,
}

/// Final counters of a receiver.
#[derive(Clone, Debug, Serialize)]
pub struct ReceiverReport {
    /// Per queue (tickgate) or per socket: the shared `Ingest` counters.
    pub queues: Vec<QueueReport>,
    /// Sequencer and frame queue.
    pub sequencer: Stats,
    /// The whole tickgate report (XDP counters, AF_XDP statistics); `None` for sockets.
    pub tickgate: Option<IngressReport>,
    /// SO_RCVBUF granted per socket (bytes, as the kernel reports it); empty for tickgate.
    pub socket_rcvbuf: Vec<usize>,
}

/// A running receiver: take frames from it, then stop it.
#[derive(Debug)]
pub enum Running {
    /// The AF_XDP path.
    Tickgate(Box<Ingress<()>>),
    /// The socket path.
    Socket(SocketPath),
}

impl Running {
    /// Starts `config.kind` on the calling thread's network namespace (the receiver's).
    pub fn start(config: &ReceiverConfig) -> Result<Self> {
        if config.kind.is_tickgate() {
            let ingress_config = IngressConfig {
                load: LoadOptions {
                    ifname: config.ifname.clone(),
                    ports: vec![GAME_PORT],
                    mode: Mode::Native,
                    // veth has no NIC clock: stamp at the XDP hook (CLOCK_TAI), as the socket
                    // path stamps after recv, so both share one clock with the sender.
                    timestamps: Timestamps::Xdp,
                    force: false,
                    rate_limit: config.rate_limit,
                    insecure_v1: config.sessions.is_none(),
                },
                queues: (0..config.queues).collect(),
                cores: vec![config.core; config.queues as usize],
                wake: match config.kind {
                    ReceiverKind::TickgateBusy => Wake::Busy,
                    ReceiverKind::TickgatePaced => Wake::Paced,
                    _ => Wake::Packets,
                },
                xsk: XskConfig::default(),
                handoff_capacity: HANDOFF_CAPACITY,
                frames: config.frames,
                sessions: config.sessions.clone(),
                frame_redundancy: tickgate::broadcast::DEFAULT_REDUNDANCY,
                frame_history: tickgate::broadcast::DEFAULT_HISTORY,
                // The ingress scenarios compare receive paths: the socket receivers send nothing back.
                broadcast: false,
                slack: config.slack,
                prove_watermarks: config.prove_watermarks,
            };
            let ingress = Ingress::start(&ingress_config, ()).context("starting the tickgate ingress")?;
            Ok(Self::Tickgate(Box::new(ingress)))
        } else {
            Ok(Self::Socket(SocketPath::start(config)?))
        }
    }

    /// Sealed frames.
    pub fn frames(&mut self) -> &mut FrameQueue {
        match self {
            Self::Tickgate(ingress) => ingress.frames(),
            Self::Socket(path) => &mut path.frames,
        }
    }

    /// Waits, at most `limit`, until the XDP program has run on nothing new for 20 ms: packets
    /// still queued in veth's NAPI ring when the load ends would otherwise reach XDP after the
    /// final report was read. (Under CPU contention veth has also been seen to leave a full ring
    /// undrained until the program detaches, which no wait fixes: docs/benchmarks.md, "Traffic
    /// like a NIC's".) Returns whether the counters came to rest; the socket path has nothing to
    /// wait for.
    pub fn settle(&self, limit: Duration) -> bool {
        let Self::Tickgate(ingress) = self else { return true };
        let deadline = Instant::now() + limit;
        let read = || ingress.attachment().counters().map(|(c, _)| c.rx_packets).ok();
        let mut last = read();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            let now = read();
            if now == last {
                return true;
            }
            last = now;
        }
        false
    }

    /// Stops the receiving threads, drains the sequencer (each remaining frame to `on_frame`)
    /// and returns the final counters.
    pub fn stop(self, on_frame: impl FnMut(Frame)) -> Result<ReceiverReport> {
        match self {
            Self::Tickgate(ingress) => {
                let (report, ()) = ingress.stop(on_frame).context("stopping the tickgate ingress")?;
                Ok(ReceiverReport {
                    queues: report.queues.clone(),
                    sequencer: report.sequencer.clone(),
                    tickgate: Some(report),
                    socket_rcvbuf: Vec::new(),
                })
            }
            Self::Socket(path) => path.stop(on_frame),
        }
    }
}

/// The kernel socket path: one socket and thread per queue, the shared sequencer behind.
#[derive(Debug)]
pub struct SocketPath {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    stats: Vec<Arc<QueueStats>>,
    rcvbuf: Vec<usize>,
    frames: FrameQueue,
    sequencer: SequencerThread<()>,
}

impl SocketPath {
    fn start(config: &ReceiverConfig) -> Result<Self> {
        let queues = config.queues.max(1) as usize;
        let addr = SocketAddrV4::new(tickgate_testkit::lab::RX_IP4, GAME_PORT);
        let mut sockets = Vec::with_capacity(queues);
        let mut rcvbuf = Vec::with_capacity(queues);
        for _ in 0..queues {
            let sock = sys::bind_udp(addr, queues > 1).with_context(|| format!("binding UDP {addr}"))?;
            rcvbuf.push(
                sys::force_rcvbuf(&sock, config.socket_rcvbuf)
                    .context("SO_RCVBUFFORCE (needs CAP_NET_ADMIN: run as root)")?,
            );
            if config.busy_reads && config.kind == ReceiverKind::SocketPaced {
                sys::busy_poll_reads(&sock).context("setting busy polling on the socket")?;
            }
            sockets.push(sock);
        }
        let running = frame_queue::spawn(&config.frames, queues, HANDOFF_CAPACITY, ())?;
        let stop = Arc::new(AtomicBool::new(false));
        // The same session state machine as tickgate's workers, one for all sockets.
        let sessions = match &config.sessions {
            Some(s) => Some(Arc::new(ReadMostly::new(
                Server::new(s.server.clone()).map_err(|e| anyhow::anyhow!("no random bytes: {e}"))?,
                queues,
            ))),
            None => None,
        };
        let mut threads = Vec::new();
        let mut stats = Vec::new();
        let mode = config.kind;
        let timing = Timing {
            slack: config.slack,
            tick_hz: config.frames.tick_hz,
            grace_ns: config.frames.grace_ns(),
        };
        for (i, (sock, producer)) in sockets.into_iter().zip(running.producers).enumerate() {
            // The socket path has no bind mode; "copy" is what it does (the report says socket).
            let queue_stats = Arc::new(QueueStats::new(i as u32, BindMode::Copy, config.core));
            let ingest = Ingest::new(producer, ClientsConfig::default(), Arc::clone(&queue_stats));
            let slack_stats = Arc::clone(&queue_stats);
            let stop = Arc::clone(&stop);
            let core = config.core;
            let v2 = sessions.clone();
            let handle = std::thread::Builder::new()
                .name(format!("bench-sock-q{i}"))
                .spawn(move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core_affinity::CoreId { id: core });
                    }
                    let mut gate = SocketGate { server: v2, slot: i, plain: vec![0; v2::MAX_PAYLOAD_LEN] };
                    if let Err(e) = receive(mode, &sock, ingest, &mut gate, timing, &slack_stats, &stop) {
                        eprintln!("tickgate-bench: socket receiver {i} stopped: {e}");
                    }
                })
                .context("starting a socket receiver thread")?;
            threads.push(handle);
            stats.push(queue_stats);
        }
        Ok(Self { stop, threads, stats, rcvbuf, frames: running.frames, sequencer: running.sequencer })
    }

    fn stop(mut self, mut on_frame: impl FnMut(Frame)) -> Result<ReceiverReport> {
        self.stop.store(true, Ordering::Relaxed);
        for t in std::mem::take(&mut self.threads) {
            if t.join().is_err() {
                bail!("a socket receiver thread panicked");
            }
        }
        while let Some(frame) = self.frames.next_frame(Duration::from_millis(200)) {
            on_frame(frame);
        }
        let outcome = self.sequencer.join().map_err(|_| anyhow::anyhow!("the sequencer thread panicked"))?;
        while let Some(frame) = self.frames.try_next_frame() {
            on_frame(frame);
        }
        let queues =
            self.stats.iter().map(|s| QueueReport { bind_mode: "socket".into(), ..s.report() }).collect();
        Ok(ReceiverReport { queues, sequencer: outcome.stats, tickgate: None, socket_rcvbuf: self.rcvbuf })
    }
}

/// When a socket receiver publishes and wakes: the same rule as tickgate's workers.
#[derive(Clone, Copy, Debug)]
struct Timing {
    slack: SlackRule,
    tick_hz: u32,
    grace_ns: u64,
}

/// Publishes a watermark the slack placed, and counts it as the worker counts its own
/// (`watermarks.by_slack` of the queue's report; a socket has no count to prove one with).
fn publish(ingest: &mut Ingest, stats: &QueueStats, watermark: u64) {
    ingest.publish_watermark(watermark);
    stats.watermark_published(false);
}

/// The receive loop of one socket. Like the AF_XDP worker: stamp, ingest, and when the socket
/// has nothing more, publish `now - slack` as the watermark; a sleeping receiver also wakes when
/// its watermark can seal a tick (tick end + grace + slack), as the worker does (socket-epoll
/// with the worker's own timerfd [`Alarm`]; recv and recvmmsg through SO_RCVTIMEO, a coarser
/// timer that costs nothing per wait). The stamp is
/// taken by this thread after the read returns, so its stamp → visible delay is 0 by
/// construction: an adaptive slack settles at its floor, the fixed one is kept anyway so that
/// both paths seal ticks by the same rule.
fn receive(
    mode: ReceiverKind,
    sock: &UdpSocket,
    mut ingest: Ingest,
    gate: &mut SocketGate,
    timing: Timing,
    stats: &QueueStats,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let mut slack = SlackEstimator::new(timing.slack);
    stats.set_watermark_slack(slack.slack_ns());
    // The wait until the next tick can seal, capped at WAIT.
    let wait = |slack_ns: u64| {
        let now = clock_tai_ns();
        let wake = next_seal_wake(now, timing.tick_hz, timing.grace_ns + slack_ns);
        WAIT.min(Duration::from_nanos(wake.saturating_sub(now)).max(MIN_WAIT))
    };
    // SO_RCVTIMEO is a setsockopt away: set again only when it is off by a watermark step.
    let mut rcvtimeo = Duration::ZERO;
    let mut set_timeout = |sock: &UdpSocket, t: Duration| -> std::io::Result<()> {
        if t.abs_diff(rcvtimeo) >= Duration::from_nanos(WATERMARK_STEP_NS) {
            sock.set_read_timeout(Some(t))?;
            rcvtimeo = t;
        }
        Ok(())
    };
    let mut batch = sys::RecvBatch::new(BATCH);
    let mut buf = [0u8; sys::MAX_DATAGRAM];
    match mode {
        ReceiverKind::SocketRecv => {
            while !stop.load(Ordering::Relaxed) {
                set_timeout(sock, wait(slack.slack_ns()))?;
                match sock.recv_from(&mut buf) {
                    Ok((n, src)) => {
                        let ts = clock_tai_ns();
                        slack.observe(0);
                        gate.packet(sock, &mut ingest, &buf[..n], src, ts, Now::read());
                        publish(&mut ingest, stats, ts.saturating_sub(slack.slack_ns()));
                    }
                    Err(e) if is_timeout(&e) => {
                        publish(&mut ingest, stats, clock_tai_ns().saturating_sub(slack.slack_ns()))
                    }
                    Err(e) => return Err(e),
                }
                slack.tick(clock_tai_ns());
            }
        }
        ReceiverKind::SocketEpoll => {
            sock.set_nonblocking(true)?;
            let epoll = sys::Epoll::for_socket(sock)?;
            let mut alarm = Alarm::new(WAIT, Some((timing.tick_hz, timing.grace_ns)))?;
            epoll.watch(alarm.fd(), ALARM)?;
            while !stop.load(Ordering::Relaxed) {
                alarm.prepare(slack.slack_ns(), 0)?;
                let fired = (epoll.wait(None)? & (1 << ALARM) != 0).then(|| alarm.fired());
                stats.woke(fired);
                let mut got = 0;
                let clocks = Now::read();
                let drained = loop {
                    if got == BATCH {
                        break false;
                    }
                    match sock.recv_from(&mut buf) {
                        Ok((n, src)) => {
                            slack.observe(0);
                            gate.packet(sock, &mut ingest, &buf[..n], src, clock_tai_ns(), clocks);
                            got += 1;
                        }
                        Err(e) if is_timeout(&e) => break true,
                        Err(e) => return Err(e),
                    }
                };
                let now = clock_tai_ns();
                if drained {
                    publish(&mut ingest, stats, now.saturating_sub(slack.slack_ns()));
                }
                slack.tick(now);
            }
        }
        ReceiverKind::SocketPaced => {
            sock.set_nonblocking(true)?;
            sys::enable_rx_timestamps(sock)?;
            let mut alarm = Alarm::new(WAIT, Some((timing.tick_hz, timing.grace_ns)))?;
            // The socket's "ring": as many datagrams as tickgate's default RX ring holds.
            let mut pace = Pace::new(XskConfig::default().rx_size, WAIT, clock_monotonic_ns());
            if !slack.measures() {
                pace = pace.without_probes();
            }
            let mut read = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let watch = pace.watch_ring(clock_monotonic_ns(), read);
                alarm.prepare(slack.slack_ns(), pace.stretch_ns())?;
                read = 0;
                let [_, fired] =
                    tickgate::sys::poll_readable([watch.then(|| sock.as_fd()), Some(alarm.fd())], None)?;
                stats.woke(fired.then(|| alarm.fired()));
                // The kernel stamps in CLOCK_REALTIME; the run compares in CLOCK_TAI.
                let tai_offset = tickgate::sys::tai_offset_ns();
                loop {
                    let n = match batch.recv(sock, libc::MSG_DONTWAIT) {
                        Ok(n) => n,
                        Err(e) if is_timeout(&e) => 0,
                        Err(e) => return Err(e),
                    };
                    let now = clock_tai_ns();
                    let clocks = Now::read();
                    for i in 0..n {
                        let ts = batch.stamp(i).map_or(now, |realtime| realtime.wrapping_add(tai_offset));
                        // As tickgate-paced: only reads that packets woke measure the delay.
                        if watch {
                            slack.observe(now.saturating_sub(ts));
                        }
                        gate.packet(sock, &mut ingest, batch.datagram(i), batch.source(i), ts, clocks);
                    }
                    read = read.saturating_add(n as u32);
                    if n < batch.capacity() {
                        break;
                    }
                }
                let now = clock_tai_ns();
                publish(&mut ingest, stats, now.saturating_sub(slack.slack_ns()));
                slack.tick(now);
            }
        }
        ReceiverKind::SocketRecvmmsg | ReceiverKind::SocketSpin => {
            let spin = mode == ReceiverKind::SocketSpin;
            let flags = if spin {
                sock.set_nonblocking(true)?;
                libc::MSG_DONTWAIT
            } else {
                libc::MSG_WAITFORONE
            };
            while !stop.load(Ordering::Relaxed) {
                if !spin {
                    set_timeout(sock, wait(slack.slack_ns()))?;
                }
                match batch.recv(sock, flags) {
                    Ok(n) => {
                        let ts = clock_tai_ns();
                        let clocks = Now::read();
                        for i in 0..n {
                            slack.observe(0);
                            gate.packet(sock, &mut ingest, batch.datagram(i), batch.source(i), ts, clocks);
                        }
                        if n < batch.capacity() {
                            publish(&mut ingest, stats, ts.saturating_sub(slack.slack_ns()));
                        }
                        slack.tick(ts);
                    }
                    Err(e) if is_timeout(&e) => {
                        let now = clock_tai_ns();
                        publish(&mut ingest, stats, now.saturating_sub(slack.slack_ns()));
                        slack.tick(now);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        ReceiverKind::TickgateWakeup | ReceiverKind::TickgatePaced | ReceiverKind::TickgateBusy => {}
    }
    // Whatever is still queued in the socket is read and counted, so no datagram vanishes
    // silently when the socket closes (the kernel counts nothing for those).
    sock.set_nonblocking(true)?;
    for _ in 0..1_000_000 {
        match batch.recv(sock, libc::MSG_DONTWAIT) {
            Ok(0) => break,
            Ok(n) => {
                let ts = clock_tai_ns();
                let clocks = Now::read();
                for i in 0..n {
                    gate.packet(sock, &mut ingest, batch.datagram(i), batch.source(i), ts, clocks);
                }
            }
            Err(_) => break,
        }
    }
    stats.set_watermark_slack(slack.slack_ns());
    publish(&mut ingest, stats, clock_tai_ns().saturating_sub(slack.slack_ns()));
    ingest.close();
    Ok(())
}

/// The socket path's session layer: the same `Server` as tickgate's gate, behind the same
/// read lock per socket thread, taken the same way (its own shared for a packet's crypto, every
/// slot's to make a session);
/// replies by `send_to`.
pub(crate) struct SocketGate {
    /// The session server (`None`: protocol v1).
    pub(crate) server: Option<Arc<ReadMostly<Server>>>,
    /// This thread's reader slot of `server`.
    pub(crate) slot: usize,
    /// Room for a packet's plaintext.
    pub(crate) plain: Vec<u8>,
}

/// The clocks a socket receiver reads once per batch of datagrams, as tickgate's worker does:
/// the session code's (wall-clock milliseconds for tokens, CLOCK_MONOTONIC for idleness).
#[derive(Clone, Copy)]
pub(crate) struct Now {
    mono_ns: u64,
    wall_ms: u64,
}

impl Now {
    pub(crate) fn read() -> Self {
        let wall_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        Self { mono_ns: clock_monotonic_ns(), wall_ms }
    }
}

impl SocketGate {
    /// One datagram from `src`, received at `ts` (CLOCK_TAI), in a batch read at `now`.
    pub(crate) fn packet(
        &mut self,
        sock: &UdpSocket,
        ingest: &mut Ingest,
        payload: &[u8],
        src: SocketAddr,
        ts: u64,
        now: Now,
    ) {
        let rx = Timestamp::xdp(ts);
        let Some(server) = &self.server else {
            return ingest.packet(payload, rx, now.mono_ns);
        };
        if payload.get(v2::VERSION_OFFSET) != Some(&v2::VERSION) {
            return ingest.packet(payload, rx, now.mono_ns);
        }
        ingest.received();
        let now_ms = now.wall_ms;
        let local: SocketAddr = SocketAddrV4::new(tickgate_testkit::lab::RX_IP4, GAME_PORT).into();
        let reply = match v2::parse_header(payload, payload.len()).map(|h| h.kind) {
            Ok(v2::Kind::Request) => server.read(self.slot).on_request(src, local, payload, now_ms).ok(),
            Ok(v2::Kind::Response) => {
                let checked = server.read(self.slot).check_response(src, payload, now_ms).ok();
                match checked.map(|response| server.write().admit(response, now.mono_ns)) {
                    Some(Ok(accepted)) => {
                        ingest.event(
                            SessionEvent {
                                kind: InputKind::Join,
                                player: accepted.joined.player_id as u32,
                                match_id: accepted.joined.match_id,
                                session: accepted.joined.session,
                                data: accepted.joined.user_data,
                            },
                            rx,
                        );
                        Some(accepted.reply)
                    }
                    Some(Err((_, denied))) => denied,
                    None => None,
                }
            }
            Ok(_) => {
                let s = server.read(self.slot);
                if let Ok(Data::Input { player_id, match_id, plain, .. }) =
                    s.open_data(src, payload, now.mono_ns, &mut self.plain)
                {
                    drop(s);
                    return ingest.input_v2(player_id as u32, match_id, plain, rx, now.mono_ns);
                }
                None
            }
            Err(_) => None,
        };
        ingest.session_packet();
        if let Some(reply) = reply {
            let _ = sock.send_to(&reply.bytes, reply.to);
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
    )
}
