//! The whole receive path as one value: the attached program, one AF_XDP socket and worker per
//! RX queue, and the sequencer thread with its frame queue.
//!
//! `tickgate run`, `tickgate demo` and the bench all start an [`Ingress`], read frames from it and
//! stop it; stopping closes every worker's hand-off, lets the sequencer seal what it can and
//! hands back the final [`IngressReport`].

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::{
    broadcast::{BroadcastReport, Fanout, FanoutStats, History, Mailer, SendError},
    frame_queue::{
        self, Config, Frame, FrameQueue, MatchConfig, Recorder, SequencerThread, SpawnError, Stats,
    },
    input::Clock,
    phc::{Conversion, Phc, PhcSource as _},
    session::{
        gate::{Gate, SessionsConfig, SessionsReport},
        server::Server,
    },
    steer::counters::{TimestampCounters, XdpCounters},
    steer::{Attachment, LoadError, LoadOptions, Mode, Program, QueueCounts},
    sys,
    worker::{self, Counter, QueueReport, QueueStats, Sessions, Wake, WorkerConfig},
    xsk::{BindPreference, BusyPoll, XskConfig, XskError, XskSocket},
};

/// Everything an ingress needs.
#[derive(Clone, Debug)]
pub struct IngressConfig {
    /// What to attach where.
    pub load: LoadOptions,
    /// RX queues to serve (see [`parse_queues`]).
    pub queues: Vec<u32>,
    /// Core per queue (see [`assign_cores`]).
    pub cores: Vec<Option<usize>>,
    /// What wakes each worker to read its ring.
    pub wake: Wake,
    /// UMEM and ring sizes (the bind preference is derived from the mode).
    pub xsk: XskConfig,
    /// Items each worker's hand-off holds.
    pub handoff_capacity: usize,
    /// Tick rate, grace, late policy.
    pub frames: Config,
    /// Protocol v2 sessions (tokens, handshake, XDP session map); `None` serves v1 only.
    pub sessions: Option<SessionsConfig>,
    /// With sessions: older frames each frame packet repeats (see [`broadcast`](crate::broadcast)).
    pub frame_redundancy: usize,
    /// With sessions: frames of each match kept for players who reconnect and catch up.
    pub frame_history: usize,
    /// With sessions: send every sealed frame back to the players of its match (the way back).
    /// Off, tickgate is an ingress only: frames go to the game alone.
    pub broadcast: bool,
    /// How far each worker's watermark trails "now": fixed, or measured per queue (see
    /// [`SlackEstimator`](crate::worker::SlackEstimator)).
    pub slack: worker::SlackRule,
    /// Whether a drained queue's watermark may be proved by the XDP program's count of the
    /// queue's packets (native mode; see [`CaughtUp`](crate::worker::CaughtUp)): the instant before
    /// the read, rather than that instant less the slack. Off: the slack rule alone.
    pub prove_watermarks: bool,
}

/// Why an ingress could not start or stop.
#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    /// Attaching the program failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A queue's AF_XDP socket could not be opened.
    #[error("opening the AF_XDP socket on {ifname} queue {queue}: {source}")]
    Socket {
        /// Interface.
        ifname: String,
        /// Queue.
        queue: u32,
        /// Why.
        #[source]
        source: XskError,
    },
    /// The sequencer could not start.
    #[error(transparent)]
    Sequencer(#[from] SpawnError),
    /// A worker thread could not start.
    #[error("cannot start a worker thread - check the process thread limit (ulimit -u): {0}")]
    Worker(#[source] std::io::Error),
    /// The queue or core lists are wrong.
    #[error("{0}")]
    Invalid(String),
    /// A thread panicked.
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
    /// No eventfd for the workers' broadcast inboxes.
    #[error("cannot create an eventfd for the frame broadcast - check the open-file limit (ulimit -n): {0}")]
    Eventfd(#[source] std::io::Error),
    /// The operating system gave no random bytes for the session keys.
    #[error("no random bytes for the run's challenge key: {0}")]
    Random(getrandom::Error),
}

/// Counters of a running or finished ingress (`status --json` for a run, the run summary).
#[derive(Clone, Debug, Serialize)]
pub struct IngressReport {
    /// Interface.
    pub interface: String,
    /// Process id.
    pub pid: u32,
    /// Whether the program is attached.
    pub attached: bool,
    /// Program name.
    pub program: &'static str,
    /// Attach mode.
    pub mode: Mode,
    /// How it is attached.
    pub attach: &'static str,
    /// Clock of the timestamps.
    pub timestamp_source: &'static str,
    /// Game ports.
    pub ports: Vec<u16>,
    /// Seconds since start.
    pub uptime_s: f64,
    /// XDP outcome counters.
    pub counters: XdpCounters,
    /// XDP timestamp counters.
    pub timestamps: TimestampCounters,
    /// Per-queue worker counters.
    pub queues: Vec<QueueReport>,
    /// Sequencer and frame-queue counters.
    pub sequencer: Stats,
    /// Protocol v2: the session layer's counters (`null` when the run serves v1 only).
    pub sessions: Option<SessionsReport>,
    /// Protocol v2: the frame broadcast's counters (`null` without sessions).
    pub broadcast: Option<BroadcastReport>,
    /// Whether unauthenticated protocol v1 is served too (`--insecure-v1`).
    pub insecure_v1: bool,
    /// How replies (challenges, keepalives, denied, disconnects) leave: `af_xdp-tx` (each
    /// queue's AF_XDP TX ring), or `none` without sessions.
    pub replies: &'static str,
    /// `steered - (received by workers + invalid descriptors + rx_dropped + rx_ring_full +
    /// left_in_ring)`: packets XDP redirected that no counter explains; 0 when everything is
    /// accounted for.
    pub unexplained_steered: i128,
}

/// RX queues from a spec: `all` or a comma-separated list, each below `available`.
pub fn parse_queues(spec: &str, available: u32) -> Result<Vec<u32>, IngressError> {
    if spec == "all" {
        return Ok((0..available).collect());
    }
    let mut queues = Vec::new();
    for part in spec.split(',') {
        let q: u32 = part
            .trim()
            .parse()
            .map_err(|_| IngressError::Invalid(format!("--queues: {part:?} is not a queue number")))?;
        if q >= available {
            return Err(IngressError::Invalid(format!(
                "--queues: queue {q} does not exist: the interface has {available} RX queues (0..{available})"
            )));
        }
        if !queues.contains(&q) {
            queues.push(q);
        }
    }
    if queues.is_empty() {
        return Err(IngressError::Invalid("--queues: no queue given".into()));
    }
    Ok(queues)
}

/// One core per queue from a list reused cyclically; every core must exist.
pub fn assign_cores(cores: &[usize], queues: usize) -> Result<Vec<Option<usize>>, IngressError> {
    if cores.is_empty() {
        return Ok(vec![None; queues]);
    }
    let existing: Vec<usize> =
        core_affinity::get_core_ids().unwrap_or_default().iter().map(|c| c.id).collect();
    if let Some(core) = cores.iter().find(|c| !existing.contains(c)) {
        return Err(IngressError::Invalid(format!(
            "--cores: core {core} does not exist (this process may use cores {existing:?})"
        )));
    }
    Ok((0..queues).map(|i| Some(cores[i % cores.len()])).collect())
}

/// Number of RX queues of an interface (1 if the driver does not say).
pub fn rx_queues(ifname: &str) -> u32 {
    sys::rx_queue_count(ifname).unwrap_or(1)
}

/// A running receive path.
#[derive(Debug)]
pub struct Ingress<R> {
    attachment: Attachment,
    ports: Vec<u16>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    stats: Vec<Arc<QueueStats>>,
    frames: FrameQueue,
    sequencer: SequencerThread<R>,
    started: Instant,
    gate: Option<Arc<Gate>>,
    fanout: Option<Arc<FanoutStats>>,
    mailer: Option<Mailer>,
}

impl<R: Recorder + Send + 'static> Ingress<R> {
    /// Attaches, opens and registers one socket per queue, starts the sequencer and the workers.
    pub fn start(config: &IngressConfig, recorder: R) -> Result<Self, IngressError> {
        let attachment = Attachment::attach(&config.load)?;
        let ifname = &config.load.ifname;
        let xsk = XskConfig {
            // Skb mode never gets zero-copy; asking for it first could bind a NIC queue in a
            // mode the generic path cannot feed.
            bind: if config.load.mode == Mode::Skb { BindPreference::Copy } else { config.xsk.bind },
            busy_poll: (config.wake == Wake::Busy).then_some(BusyPoll { budget: 64, usecs: 50 }),
            // Sessions send through the TX ring: replies (challenges, keepalives, denied,
            // disconnects) and every frame packet to the players this queue serves.
            tx_size: if config.sessions.is_some() {
                config.xsk.tx_size.max(REPLY_TX_FRAMES)
            } else {
                config.xsk.tx_size
            },
            ..config.xsk.clone()
        };
        let gate = match &config.sessions {
            Some(s) => {
                attachment.loaded().set_handshake_limit(&s.handshake_limit)?;
                let server = Server::new(s.server.clone()).map_err(IngressError::Random)?;
                Some(Arc::new(Gate::new(server, attachment.loaded().session_map()?, config.queues.len())))
            }
            None => None,
        };
        let mut sockets = Vec::with_capacity(config.queues.len());
        for &queue in &config.queues {
            let socket = XskSocket::open(ifname, queue, &xsk).map_err(|source| IngressError::Socket {
                ifname: ifname.clone(),
                queue,
                source,
            })?;
            attachment.register_socket(queue, socket.fd())?;
            log::info!("{ifname} queue {queue}: AF_XDP socket bound in {} mode", socket.bind_mode());
            sockets.push(socket);
        }
        // With sessions, every sealed frame goes back to the players of its match.
        let (fanout, mut inboxes, mailer, history) = match &config.sessions {
            Some(_) if config.broadcast => {
                let (fanout, inboxes, mailer, history) = Fanout::new(
                    config.queues.len(),
                    config.frame_redundancy,
                    config.frame_history,
                    config.frames.tick_hz,
                )
                .map_err(IngressError::Eventfd)?;
                (Some(fanout), inboxes.into_iter().map(Some).collect(), Some(mailer), history)
            }
            _ => (None, Vec::new(), None, History::default()),
        };
        let fanout_stats = fanout.as_ref().map(Fanout::stats);
        let running = frame_queue::spawn_with_fanout(
            &config.frames,
            config.queues.len(),
            config.handoff_capacity,
            recorder,
            fanout.map(|f| Box::new(f) as Box<dyn frame_queue::FrameFanout>),
        )?;
        let queue_counts = if config.prove_watermarks { queue_counts(&attachment) } else { None };
        let stop = Arc::new(AtomicBool::new(false));
        let mut stats = Vec::new();
        let mut workers = Vec::new();
        for (i, ((socket, producer), core)) in
            sockets.into_iter().zip(running.producers).zip(&config.cores).enumerate()
        {
            let queue_stats = Arc::new(QueueStats::new(socket.queue(), socket.bind_mode(), *core));
            let worker_config = WorkerConfig {
                core: *core,
                wake: config.wake,
                rx_ring: xsk.rx_size,
                // Wake when a watermark can seal a tick of the run's grid (matches started by
                // the game with their own tick rate get the 1 ms idle wake-up).
                seal_grid: Some((config.frames.tick_hz, config.frames.grace_ns())),
                slack: config.slack,
                queue_counts: queue_counts.clone(),
                ..WorkerConfig::default()
            };
            let sessions = gate.as_ref().map(|g| Sessions {
                gate: Arc::clone(g),
                poller: i == 0,
                slot: i,
                inbox: inboxes.get_mut(i).and_then(Option::take),
                history: history.clone(),
            });
            let handle = worker::spawn(
                socket,
                producer,
                worker_config,
                Arc::clone(&stop),
                Arc::clone(&queue_stats),
                sessions,
                nic_time(&attachment, ifname, &config.frames),
            )
            .map_err(IngressError::Worker)?;
            workers.push(handle);
            stats.push(queue_stats);
        }
        Ok(Self {
            attachment,
            ports: config.load.ports.clone(),
            stop,
            workers,
            stats,
            frames: running.frames,
            sequencer: running.sequencer,
            started: Instant::now(),
            gate,
            fanout: fanout_stats,
            mailer,
        })
    }

    /// Sealed frames, oldest first.
    pub fn frames(&mut self) -> &mut FrameQueue {
        &mut self.frames
    }

    /// Sends `message` to every player of `match_id` with the match's next frame (repeated with
    /// it, and part of it for players who catch up).
    pub fn send_to_match(&self, match_id: u64, message: &[u8]) -> Result<(), SendError> {
        self.mailer.as_ref().ok_or(SendError::NoSessions)?.to_match(match_id, message)
    }

    /// Sends `message` to one player now, as a `Message` packet (once: not repeated).
    pub fn send_to_player(&self, player_id: u64, message: &[u8]) -> Result<(), SendError> {
        let (Some(mailer), Some(gate)) = (&self.mailer, &self.gate) else {
            return Err(SendError::NoSessions);
        };
        let (session, slot) = gate.home_of(player_id).ok_or(SendError::NoSession)?;
        mailer.to_session(slot, session, message)
    }

    /// Starts a match now, before anyone joins, with its own tick rate, grace and late policy (a
    /// match started by its first join takes the run's).
    pub fn start_match(&self, match_id: u64, config: MatchConfig) -> Result<(), SendError> {
        self.mailer.as_ref().ok_or(SendError::NoSessions)?.start_match(match_id, config)
    }

    /// Ends a match: every player of it is disconnected; their leaves seal the match's last
    /// frame (`Frame::last`).
    pub fn end_match(&self, match_id: u64) -> Result<(), SendError> {
        self.mailer.as_ref().ok_or(SendError::NoSessions)?.end_match(match_id)
    }

    /// The attached program.
    pub fn attachment(&self) -> &Attachment {
        &self.attachment
    }

    /// Counters now (`sequencer` from the caller: the sequencer thread reports only at the end).
    pub fn report(&self, sequencer: Stats) -> IngressReport {
        Self::report_parts(
            &self.attachment,
            &self.stats,
            &self.ports,
            self.started,
            sequencer,
            self.gate.as_deref(),
            self.fanout.as_deref(),
        )
    }

    /// Stops the workers, lets the sequencer seal and drain what it holds (each remaining frame
    /// goes to `on_frame`), detaches, and returns the final counters and the recorder.
    pub fn stop(mut self, mut on_frame: impl FnMut(Frame)) -> Result<(IngressReport, R), IngressError> {
        // Steer nothing more into the rings first (game packets go to the kernel as
        // `no_socket`), so that what the workers read in their stop drain, plus what they leave
        // in the ring, is every packet steered: the report balances even under a flood.
        for queue in self.stats.iter().map(|s| s.queue()) {
            if let Err(e) = self.attachment.unregister_socket(queue) {
                log::warn!("queue {queue}: {e}; packets that arrive while the workers stop may go uncounted");
            }
        }
        self.stop.store(true, Ordering::Relaxed);
        for worker in std::mem::take(&mut self.workers) {
            worker.join().map_err(|_| IngressError::Panicked("worker"))?;
        }
        while let Some(frame) = self.frames.next_frame(Duration::from_millis(200)) {
            on_frame(frame);
        }
        let outcome = self.sequencer.join().map_err(|_| IngressError::Panicked("sequencer"))?;
        while let Some(frame) = self.frames.try_next_frame() {
            on_frame(frame);
        }
        let report = IngressReport {
            attached: false,
            ..Self::report_parts(
                &self.attachment,
                &self.stats,
                &self.ports,
                self.started,
                outcome.stats,
                self.gate.as_deref(),
                self.fanout.as_deref(),
            )
        };
        Ok((report, outcome.recorder))
    }

    fn report_parts(
        attachment: &Attachment,
        stats: &[Arc<QueueStats>],
        ports: &[u16],
        started: Instant,
        sequencer: Stats,
        gate: Option<&Gate>,
        fanout: Option<&FanoutStats>,
    ) -> IngressReport {
        let (counters, timestamps) = attachment.counters().unwrap_or_default();
        let queues: Vec<QueueReport> = stats.iter().map(|s| s.report()).collect();
        let explained: i128 = queues
            .iter()
            .map(|q| {
                i128::from(q.received)
                    + i128::from(q.count(Counter::InvalidDescriptor))
                    + i128::from(q.unread())
            })
            .sum();
        IngressReport {
            interface: attachment.ifname().to_owned(),
            pid: std::process::id(),
            attached: true,
            program: attachment.program().name(),
            mode: attachment.mode(),
            attach: "bpf_link (owned by this process; detached when it exits)",
            timestamp_source: attachment.program().timestamp_source(),
            ports: ports.to_vec(),
            uptime_s: started.elapsed().as_secs_f64(),
            unexplained_steered: i128::from(counters.steered) - explained,
            counters,
            timestamps,
            queues,
            sequencer,
            sessions: gate.map(Gate::report),
            broadcast: fanout.map(FanoutStats::report),
            insecure_v1: attachment.loaded().insecure_v1().unwrap_or(false),
            replies: if gate.is_some() { "af_xdp-tx" } else { "none" },
        }
    }
}

/// The program's per-queue counts, which prove a drained queue's watermark: in native mode
/// only (in skb mode two CPUs may run one queue's packets, and the program's count has one
/// writer only in native mode). Without them every watermark trails by the slack.
fn queue_counts(attachment: &Attachment) -> Option<Arc<QueueCounts>> {
    if attachment.mode() != Mode::Native {
        log::info!(
            "{}: skb mode: watermarks trail by the slack (no per-queue count to prove them)",
            attachment.ifname()
        );
        return None;
    }
    match attachment.loaded().queue_counts() {
        Ok(counts) => Some(Arc::new(counts)),
        Err(e) => {
            log::warn!(
                "{}: the XDP program's queue counts could not be mapped ({e}); watermarks trail by the slack",
                attachment.ifname()
            );
            None
        }
    }
}

/// The PHC fit of one worker, when its NIC timestamps can be kept: the `hw` program on an
/// interface with a PTP hardware clock, in a run whose time base is CLOCK_TAI. Without one the
/// NIC stamps are restamped to their queue's floor, as before (and counted `nic_unconverted`).
fn nic_time(attachment: &Attachment, ifname: &str, frames: &Config) -> Option<Conversion> {
    if attachment.program() != Program::Hw || frames.time_base != Clock::Xdp {
        return None;
    }
    match Phc::of_interface(ifname) {
        Ok(Some(phc)) => {
            log::info!("{ifname}: NIC timestamps converted to CLOCK_TAI through {}", phc.describe());
            Some(Conversion::new(Box::new(phc)))
        }
        Ok(None) => None,
        Err(e) => {
            log::warn!("{ifname}: cannot use the PTP hardware clock ({e}); NIC timestamps are restamped");
            None
        }
    }
}

/// TX frames per socket when sessions are on (taken from the UMEM's frames): room for one tick's
/// frame packets to a thousand players of the queue, or a burst of handshake replies, while the
/// kernel completes the previous ones. A full ring drops packets (counted, `frame_tx_dropped`
/// and `tx_dropped`), never blocks the worker.
const REPLY_TX_FRAMES: u32 = 1024;
