//! One worker per RX queue: AF_XDP ring → decode → anti-replay → hand-off to the sequencer.
//!
//! A worker owns its queue's [`XskSocket`] and its [`Producer`] and never blocks on either side:
//! the ring is polled (or busy-polled), and a full hand-off drops the input under
//! `handoff_full`. Every packet and every input ends in exactly one counter of [`QueueStats`],
//! which other threads read while the worker runs.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use serde::Serialize;

mod alarm;
mod caught_up;
mod pace;
mod slack;

pub use alarm::{Alarm, next_wake};
pub use caught_up::{CaughtUp, MARGIN_NS, trail};
pub use pace::Pace;
pub use slack::{AdaptiveSlack, SlackEstimator, SlackRule};

use crate::{
    broadcast::{Egress, History, Inbox, MAX_CATCH_UP},
    input::{Input, InputKind, Payload, PayloadArena, Timestamp},
    phc::{Conversion, PhcReport},
    sequencer::Producer,
    session::anti_replay::{Clients, ClientsConfig, Reject},
    session::gate::{Gate, Outcome, SessionEvent},
    steer::QueueCounts,
    sys,
    wire::v2,
    wire::{self, Packet, WireError},
    xsk::{BindMode, XdpStatistics, XskSocket},
};

/// What wakes a worker to read its ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Wake {
    /// Sleeps in poll(2) until the ring has packets, a tick can seal, or `idle_wakeup` passes:
    /// one wake-up per packet at low rates.
    #[default]
    Packets,
    /// Sleeps until a tick can seal or `idle_wakeup` passes, not for each packet: the XDP
    /// program stamped every packet when it arrived, so reading it later changes neither its
    /// order nor its tick, and the ring holds what arrives meanwhile. Packets wake it too after
    /// a wake-up found the ring a quarter full, and in short probes (see [`Pace`]).
    Paced,
    /// Spins on the ring (SO_PREFER_BUSY_POLL where allowed), never sleeping.
    Busy,
}

/// How a worker runs.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Core to pin the thread to (`None`: not pinned).
    pub core: Option<usize>,
    /// What wakes the worker.
    pub wake: Wake,
    /// Descriptors the RX ring holds: a paced worker watches the ring while a wake-up finds a
    /// quarter of this waiting.
    pub rx_ring: u32,
    /// Descriptors taken from the ring per call.
    pub batch: u32,
    /// Longest time between two timed wake-ups of a sleeping worker (see [`Alarm`]). An idle
    /// queue's watermark is only as recent as its last wake-up, and every frame waits for the
    /// slowest queue's watermark, so this must stay well below the tick grace: 1 ms keeps a
    /// quiet queue from holding frames back by more than that, at about 1000 wake-ups per
    /// second per idle queue.
    pub idle_wakeup: Duration,
    /// How far behind "now" the worker's watermark stays when its ring is drained: the longest a
    /// stamped packet can take to become visible in the ring (the end of the driver's NAPI poll,
    /// where the kernel publishes the RX producer index; tens of µs in practice).
    /// Fixed, or measured from the queue's own delays (see [`SlackEstimator`]).
    pub slack: SlackRule,
    /// Anti-replay table sizing.
    pub clients: ClientsConfig,
    /// The run's tick grid and grace, `(tick_hz, grace_ns)`: a sleeping worker also wakes when a
    /// watermark it publishes can seal a tick (each tick end plus the grace plus the slack),
    /// rather than up to `idle_wakeup` later. `None`: only `idle_wakeup`.
    pub seal_grid: Option<(u32, u64)>,
    /// The XDP program's counts of the packets it steered per queue (native mode, XDP-hook
    /// stamps): with them, a drained ring's watermark is the instant before the read, proved by
    /// the count (see [`CaughtUp`]), rather than that instant less the slack. `None`: the slack
    /// rule always.
    pub queue_counts: Option<Arc<QueueCounts>>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            core: None,
            wake: Wake::Packets,
            rx_ring: 2048,
            batch: 64,
            idle_wakeup: Duration::from_millis(1),
            slack: SlackRule::default(),
            clients: ClientsConfig::default(),
            seal_grid: None,
            queue_counts: None,
        }
    }
}

/// One named counter of a queue. With the wire errors and the anti-replay rejections (counted
/// by their own enums) they partition the queue's traffic: every descriptor read from the ring
/// is `Received` and then exactly one packet outcome; every command of a decoded input packet is
/// exactly one input outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Descriptors read from the ring (valid or not).
    Received,
    /// Packet outcome: an input packet that decoded.
    InputPackets,
    /// Packet outcome: a sync packet that decoded.
    SyncPackets,
    /// Packet outcome: a protocol v2 packet the session layer handled without inputs (handshake,
    /// keepalive, sync, disconnect, or dropped there: its counters say which).
    SessionPackets,
    /// Packet outcome, dropped: a descriptor outside the UMEM or not owned by the ring (counted
    /// on top of `Received`, see [`QueueReport::unexplained_packets`]).
    InvalidDescriptor,
    /// Packet outcome, dropped: no tickgate metadata in front of the frame.
    MissingMetadata,
    /// Packet outcome, dropped: the metadata's payload bounds fall outside the frame.
    PayloadOutOfBounds,
    /// Input outcome: handed to the sequencer.
    Delivered,
    /// Input outcome, dropped: the hand-off queue to the sequencer was full.
    HandoffFull,
    /// Session events (joins and leaves) handed to the sequencer.
    Events,
    /// Reply frames put in the TX ring.
    TxQueued,
    /// Reply frames not sent: the TX ring was full, no TX frame was free, or the frame too long.
    TxDropped,
    /// Broadcasts (sealed frames of a match) taken from the worker's inbox.
    Broadcasts,
    /// Frame packets to players put in the TX ring.
    FrameTxQueued,
    /// Frame packets to players not sent: TX ring full, no free TX frame, or too long.
    FrameTxDropped,
    /// NIC timestamps converted to CLOCK_TAI through the PHC (`nic-tai`).
    NicConverted,
    /// NIC timestamps left unconverted (no PHC, or its fit not fresh): restamped by the merge.
    NicUnconverted,
    /// Descriptors still in the RX ring when the worker stopped, never read: under a flood that
    /// outlasts the stop drain (500 ms), the ring does not empty. Not part of `Received`.
    LeftInRing,
    /// Watermarks published when the ring was drained, at the instant before the read: the XDP
    /// program's count proved the worker held every packet stamped earlier (see [`CaughtUp`]).
    WatermarksProved,
    /// Watermarks published when the ring was drained, at that instant less the slack: no count
    /// to go by, or its last packet not read yet.
    WatermarksBySlack,
    /// Waits a sleeping worker ended at a seal instant of the run's grid (its alarm).
    WakeSeal,
    /// Waits it ended at its idle deadline, or a paced worker's stretched one (its alarm).
    WakeTimed,
    /// Waits that packets, a frame or message to send, or an error ended.
    WakeOther,
}

impl Counter {
    /// Every counter, in slot order.
    pub const ALL: [Self; 23] = [
        Self::Received,
        Self::InputPackets,
        Self::SyncPackets,
        Self::SessionPackets,
        Self::InvalidDescriptor,
        Self::MissingMetadata,
        Self::PayloadOutOfBounds,
        Self::Delivered,
        Self::HandoffFull,
        Self::Events,
        Self::TxQueued,
        Self::TxDropped,
        Self::Broadcasts,
        Self::FrameTxQueued,
        Self::FrameTxDropped,
        Self::NicConverted,
        Self::NicUnconverted,
        Self::LeftInRing,
        Self::WatermarksProved,
        Self::WatermarksBySlack,
        Self::WakeSeal,
        Self::WakeTimed,
        Self::WakeOther,
    ];

    /// The name in reports, status output and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::InputPackets => "input_packets",
            Self::SyncPackets => "sync_packets",
            Self::SessionPackets => "session_packets",
            Self::InvalidDescriptor => "invalid_descriptor",
            Self::MissingMetadata => "missing_metadata",
            Self::PayloadOutOfBounds => "payload_out_of_bounds",
            Self::Delivered => "delivered",
            Self::HandoffFull => "handoff_full",
            Self::Events => "events",
            Self::TxQueued => "tx_queued",
            Self::TxDropped => "tx_dropped",
            Self::Broadcasts => "broadcasts",
            Self::FrameTxQueued => "frame_tx_queued",
            Self::FrameTxDropped => "frame_tx_dropped",
            Self::NicConverted => "nic_converted",
            Self::NicUnconverted => "nic_unconverted",
            Self::LeftInRing => "left_in_ring",
            Self::WatermarksProved => "proved",
            Self::WatermarksBySlack => "by_slack",
            Self::WakeSeal => "seal",
            Self::WakeTimed => "timed",
            Self::WakeOther => "other",
        }
    }
}

/// Live counters of one queue, written by one thread (its worker), read by anyone. The writer
/// is one thread at a time: counters are bumped with a load and a store, not a locked add, so
/// two threads counting into the same `QueueStats` at once could lose counts.
#[derive(Debug)]
pub struct QueueStats {
    queue: u32,
    bind_mode: BindMode,
    core: Option<usize>,
    counters: [AtomicU64; Counter::ALL.len()],
    wire: [AtomicU64; WireError::COUNTER_NAMES.len()],
    rejected: [AtomicU64; Reject::COUNTER_NAMES.len()],
    xdp: Mutex<XdpStatistics>,
    phc: Mutex<Option<PhcReport>>,
    /// Stamp → worker delay of XDP-clock packets: bucket `i` counts delays below `2^i` µs
    /// (and at least `2^(i-1)`); the last bucket takes everything longer.
    delay: [AtomicU64; DELAY_BUCKETS],
    /// The watermark slack the worker uses now, ns.
    slack_ns: AtomicU64,
}

/// Buckets of the stamp → worker delay histogram: up to 2^23 µs (8 s).
pub const DELAY_BUCKETS: usize = 24;

/// A snapshot of [`QueueStats`], as `status --json` and the run summary show it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueueReport {
    /// RX queue.
    pub queue: u32,
    /// `zero-copy` or `copy`.
    pub bind_mode: String,
    /// Pinned core.
    pub core: Option<usize>,
    /// Descriptors read from the ring (valid or not).
    pub received: u64,
    /// Inputs handed to the sequencer.
    pub delivered: u64,
    /// Packets dropped before decode or by decode, by reason.
    pub dropped_packets: BTreeMap<&'static str, u64>,
    /// Inputs (commands) not delivered, by reason.
    pub dropped_inputs: BTreeMap<&'static str, u64>,
    /// Packets that decoded: input packets and sync packets.
    pub decoded: BTreeMap<&'static str, u64>,
    /// The socket's `XDP_STATISTICS`.
    pub xdp_statistics: XdpStatistics,
    /// Descriptors still in the RX ring when the worker stopped (never read, not in `received`).
    pub left_in_ring: u64,
    /// Reply frames (protocol v2) put in the TX ring, and those that could not be.
    pub tx: BTreeMap<&'static str, u64>,
    /// Session events (joins and leaves) handed to the sequencer.
    pub events: u64,
    /// NIC timestamps: `nic_converted` to CLOCK_TAI through the PHC, `nic_unconverted`.
    pub nic_time: BTreeMap<&'static str, u64>,
    /// The PHC fit this worker converts with (`null` without one).
    pub phc: Option<PhcReport>,
    /// How long XDP-stamped packets took from their stamp to the worker's batch (how far a
    /// watermark may trail "now"): `[below_us, packets]` per non-empty power-of-two bucket.
    pub visible_delay_us: Vec<[u64; 2]>,
    /// How far the worker's watermark trails "now" at the moment (fixed, or measured from the
    /// delays above with an adaptive slack), µs.
    pub watermark_slack_us: u64,
    /// Watermarks published on a drained ring: `proved` by the XDP program's count (the instant
    /// before the read), `by_slack` (that instant less the slack).
    pub watermarks: BTreeMap<&'static str, u64>,
    /// A sleeping worker's waits by what ended them: its alarm at a `seal` instant, its alarm at
    /// the idle deadline or a paced worker's stretched one (`timed`), or packets, a frame to send
    /// or an error (`other`). A busy worker never waits.
    pub wakeups: BTreeMap<&'static str, u64>,
}

impl QueueStats {
    /// Counters for `queue`, all zero.
    pub fn new(queue: u32, bind_mode: BindMode, core: Option<usize>) -> Self {
        Self {
            queue,
            bind_mode,
            core,
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
            wire: std::array::from_fn(|_| AtomicU64::new(0)),
            rejected: std::array::from_fn(|_| AtomicU64::new(0)),
            xdp: Mutex::new(XdpStatistics::default()),
            phc: Mutex::new(None),
            delay: std::array::from_fn(|_| AtomicU64::new(0)),
            slack_ns: AtomicU64::new(0),
        }
    }

    /// The RX queue these counters are for.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Records the watermark slack the queue's reader uses now (the worker does; a receiver of
    /// another kind with its own [`SlackEstimator`] may too).
    pub fn set_watermark_slack(&self, ns: u64) {
        self.slack_ns.store(ns, Ordering::Relaxed);
    }

    /// Counts a watermark the queue's reader published, by whether the XDP program's count
    /// proved it or the slack placed it (the worker does; a receiver of another kind that
    /// publishes its own watermarks may too).
    pub fn watermark_published(&self, proved: bool) {
        self.add(if proved { Counter::WatermarksProved } else { Counter::WatermarksBySlack }, 1);
    }

    /// Counts one wait of the queue's reader that ended (`wakeups` in the report): `fired` is
    /// `None` when its alarm did not end it, else what [`Alarm::fired`] answered (`Some(_)`:
    /// a seal instant passed). The worker does; a receiver of another kind that waits on an
    /// [`Alarm`] may too.
    pub fn woke(&self, fired: Option<Option<u64>>) {
        let reason = match fired {
            Some(Some(_)) => Counter::WakeSeal,
            Some(None) => Counter::WakeTimed,
            None => Counter::WakeOther,
        };
        self.add(reason, 1);
    }

    /// Counts one packet that became visible to the worker `delay_ns` after its XDP stamp.
    fn visible_after(&self, delay_ns: u64) {
        bump(&self.delay[slack::bucket(delay_ns)], 1);
    }

    fn add(&self, counter: Counter, n: u64) {
        bump(&self.counters[counter as usize], n);
    }

    fn get(&self, counter: Counter) -> u64 {
        self.counters[counter as usize].load(Ordering::Relaxed)
    }

    /// A consistent-enough snapshot (each counter is read once; the worker may be running).
    pub fn report(&self) -> QueueReport {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut dropped_packets: BTreeMap<&'static str, u64> =
            [Counter::InvalidDescriptor, Counter::MissingMetadata, Counter::PayloadOutOfBounds]
                .into_iter()
                .map(|c| (c.name(), self.get(c)))
                .collect();
        dropped_packets.extend(WireError::COUNTER_NAMES.into_iter().zip(self.wire.iter().map(load)));
        let mut dropped_inputs =
            BTreeMap::from([(Counter::HandoffFull.name(), self.get(Counter::HandoffFull))]);
        dropped_inputs.extend(Reject::COUNTER_NAMES.into_iter().zip(self.rejected.iter().map(load)));
        let decoded = [Counter::InputPackets, Counter::SyncPackets, Counter::SessionPackets]
            .into_iter()
            .map(|c| (c.name(), self.get(c)))
            .collect();
        QueueReport {
            queue: self.queue,
            bind_mode: self.bind_mode.to_string(),
            core: self.core,
            received: self.get(Counter::Received),
            delivered: self.get(Counter::Delivered),
            dropped_packets,
            dropped_inputs,
            decoded,
            xdp_statistics: self.xdp.lock().map(|s| *s).unwrap_or_default(),
            left_in_ring: self.get(Counter::LeftInRing),
            tx: [
                Counter::TxQueued,
                Counter::TxDropped,
                Counter::Broadcasts,
                Counter::FrameTxQueued,
                Counter::FrameTxDropped,
            ]
            .into_iter()
            .map(|c| (c.name(), self.get(c)))
            .collect(),
            events: self.get(Counter::Events),
            nic_time: [Counter::NicConverted, Counter::NicUnconverted]
                .into_iter()
                .map(|c| (c.name(), self.get(c)))
                .collect(),
            phc: self.phc.lock().ok().and_then(|p| p.clone()),
            visible_delay_us: self
                .delay
                .iter()
                .enumerate()
                .map(|(i, n)| [1u64 << i, n.load(Ordering::Relaxed)])
                .filter(|[_, n]| *n > 0)
                .collect(),
            watermark_slack_us: self.slack_ns.load(Ordering::Relaxed) / 1_000,
            watermarks: [Counter::WatermarksProved, Counter::WatermarksBySlack]
                .into_iter()
                .map(|c| (c.name(), self.get(c)))
                .collect(),
            wakeups: [Counter::WakeSeal, Counter::WakeTimed, Counter::WakeOther]
                .into_iter()
                .map(|c| (c.name(), self.get(c)))
                .collect(),
        }
    }
}

/// Adds `n` to a counter of [`QueueStats`]. One thread writes a queue's counters (its worker,
/// or the bench receiver that owns them), so a plain load and store does, and keeps a locked
/// read-modify-write (a full barrier on x86) off the per-packet path; readers see each counter
/// whole either way.
fn bump(counter: &AtomicU64, n: u64) {
    if n > 0 {
        counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
}

impl QueueReport {
    /// The value of one named counter in this snapshot.
    pub fn count(&self, counter: Counter) -> u64 {
        let map = match counter {
            Counter::Received => return self.received,
            Counter::Delivered => return self.delivered,
            Counter::InputPackets | Counter::SyncPackets | Counter::SessionPackets => &self.decoded,
            Counter::InvalidDescriptor | Counter::MissingMetadata | Counter::PayloadOutOfBounds => {
                &self.dropped_packets
            }
            Counter::HandoffFull => &self.dropped_inputs,
            Counter::TxQueued
            | Counter::TxDropped
            | Counter::Broadcasts
            | Counter::FrameTxQueued
            | Counter::FrameTxDropped => &self.tx,
            Counter::NicConverted | Counter::NicUnconverted => &self.nic_time,
            Counter::WatermarksProved | Counter::WatermarksBySlack => &self.watermarks,
            Counter::WakeSeal | Counter::WakeTimed | Counter::WakeOther => &self.wakeups,
            Counter::Events => return self.events,
            Counter::LeftInRing => return self.left_in_ring,
        };
        map.get(counter.name()).copied().unwrap_or(0)
    }

    /// Packets XDP steered to this queue that its worker never read: the kernel's `rx_dropped`
    /// and `rx_ring_full`, and what was left in the ring at stop.
    pub fn unread(&self) -> u64 {
        self.xdp_statistics.rx_dropped + self.xdp_statistics.rx_ring_full + self.left_in_ring
    }

    /// Inputs rejected by anti-replay for `reason` in this snapshot.
    pub fn rejected(&self, reason: Reject) -> u64 {
        self.dropped_inputs.get(reason.counter_name()).copied().unwrap_or(0)
    }

    /// Descriptors read from the ring that are not accounted for by a drop reason or a decode
    /// outcome: 0 when the counters balance.
    pub fn unexplained_packets(&self) -> i128 {
        i128::from(self.received) + i128::from(self.count(Counter::InvalidDescriptor))
            - self.dropped_packets.values().map(|&v| i128::from(v)).sum::<i128>()
            - self.decoded.values().map(|&v| i128::from(v)).sum::<i128>()
    }
}

/// The per-packet step every receiver shares (AF_XDP workers, and the bench's socket
/// baseline): decode, remove duplicates, hand off, count.
#[derive(Debug)]
pub struct Ingest {
    producer: Producer,
    clients: Clients,
    stats: Arc<QueueStats>,
    queue: u16,
    phc: Option<Conversion>,
    /// Where the payloads longer than the inline bound are cut from.
    arena: PayloadArena,
}

impl Ingest {
    /// An ingest step feeding `producer`, counting into `stats`.
    pub fn new(producer: Producer, clients: ClientsConfig, stats: Arc<QueueStats>) -> Self {
        let queue = stats.queue as u16;
        Self {
            producer,
            clients: Clients::new(clients),
            stats,
            queue,
            phc: None,
            arena: PayloadArena::default(),
        }
    }

    /// Converts this queue's NIC timestamps to CLOCK_TAI with `phc` from now on.
    pub fn set_phc(&mut self, phc: Conversion) {
        if let Ok(mut slot) = self.stats.phc.lock() {
            *slot = Some(phc.report());
        }
        self.phc = Some(phc);
    }

    /// Samples the PHC again (every [`phc::REFRESH`](crate::phc::REFRESH)).
    pub fn refresh_phc(&mut self) {
        if let Some(phc) = self.phc.as_mut() {
            phc.refresh();
            if let Ok(mut slot) = self.stats.phc.lock() {
                *slot = Some(phc.report());
            }
        }
    }

    /// A packet's receive time as the sequencer gets it: a NIC stamp converted to CLOCK_TAI
    /// (`nic-tai`) when the PHC fit is fresh at `now_tai_ns`, else as it came (the merge then
    /// restamps it to the queue's floor); both counted.
    pub fn stamp(&self, rx: Timestamp, now_tai_ns: u64) -> Timestamp {
        if rx.clock != crate::input::Clock::Nic {
            return rx;
        }
        match self.phc.as_ref().and_then(|p| p.to_tai(rx.ns, now_tai_ns)) {
            Some(ns) => {
                self.stats.add(Counter::NicConverted, 1);
                Timestamp { ns, clock: crate::input::Clock::NicTai }
            }
            None => {
                self.stats.add(Counter::NicUnconverted, 1);
                rx
            }
        }
    }

    /// One UDP payload (tickgate header + body) received at `rx`; `now_ns` is CLOCK_MONOTONIC,
    /// read once per batch (it only measures clients' idleness).
    pub fn packet(&mut self, payload: &[u8], rx: Timestamp, now_ns: u64) {
        self.stats.add(Counter::Received, 1);
        match wire::decode(payload) {
            Ok(Packet::Input(packet)) => self.deliver(&packet, rx, 0, now_ns),
            Ok(Packet::Sync(_)) => self.stats.add(Counter::SyncPackets, 1),
            Err(e) => bump(&self.stats.wire[e.counter_index()], 1),
        }
    }

    /// The plaintext of a protocol v2 input packet from `player`'s session in `match_id`
    /// (`now_ns` as for [`packet`](Self::packet)).
    pub fn input_v2(&mut self, player: u32, match_id: u64, plain: &[u8], rx: Timestamp, now_ns: u64) {
        match wire::decode_input_v2(player, plain) {
            Ok(packet) => self.deliver(&packet, rx, match_id, now_ns),
            Err(e) => bump(&self.stats.wire[e.counter_index()], 1),
        }
    }

    /// Hands a join or leave to the sequencer, stamped `rx` (the packet that caused it, or now).
    pub fn event(&mut self, event: SessionEvent, rx: Timestamp) {
        self.push_event(
            event.kind,
            event.player,
            event.match_id,
            u64::from(event.session),
            Payload::from(event.data),
            rx,
        );
    }

    /// The ack for `player`: one more than its newest input seq accepted here (0: none yet).
    pub fn ack(&self, player: u32) -> u64 {
        self.clients.newest(player).map_or(0, |n| n.saturating_add(1))
    }

    /// Tells the game that `player` of `match_id` asked to catch up from `from_tick`, which is no
    /// longer held (an [`InputKind::Resync`] input at `rx`).
    pub fn resync(&mut self, player: u32, match_id: u64, from_tick: u64, rx: Timestamp) {
        self.push_event(InputKind::Resync, player, match_id, from_tick, Payload::empty(), rx);
    }

    /// Starts `match_id` with its own configuration: a [`InputKind::Start`] input at `rx`, which
    /// goes through the sequencer like every input (so replay sees it).
    pub fn start(&mut self, match_id: u64, config: &crate::frame_queue::MatchConfig, rx: Timestamp) {
        self.push_event(InputKind::Start, 0, match_id, 0, Payload::from(config.encode()), rx);
    }

    /// Ends `match_id` for the game: an [`InputKind::End`] input at `rx`; the frame that holds it
    /// is the match's last.
    pub fn end(&mut self, match_id: u64, rx: Timestamp) {
        self.push_event(InputKind::End, 0, match_id, 0, Payload::empty(), rx);
    }

    /// Hands an event (not a player's command) to the sequencer; counted as an event, or as
    /// `handoff_full`.
    fn push_event(
        &mut self,
        kind: InputKind,
        player: u32,
        match_id: u64,
        seq: u64,
        payload: Payload,
        rx: Timestamp,
    ) {
        let input =
            Input { kind, rx, queue: self.queue, client_id: player, match_id, seq, client_frame: 0, payload };
        match self.producer.try_push_input(input) {
            Ok(()) => self.stats.add(Counter::Events, 1),
            Err(_) => self.stats.add(Counter::HandoffFull, 1),
        }
    }

    /// Counts a protocol v2 packet the session layer took care of (handshake, keepalive, …).
    pub fn session_packet(&self) {
        self.stats.add(Counter::SessionPackets, 1);
    }

    /// Counts a packet read from the ring before it goes anywhere.
    pub fn received(&self) {
        self.stats.add(Counter::Received, 1);
    }

    fn deliver(&mut self, packet: &wire::InputPacket<'_>, rx: Timestamp, match_id: u64, now_ns: u64) {
        self.stats.add(Counter::InputPackets, 1);
        // Every command of a packet is its sender's: its window is found once.
        let mut client = match self.clients.client(packet.header.client_id, now_ns) {
            Ok(client) => client,
            Err(reject) => {
                bump(&self.stats.rejected[reject.counter_index()], packet.commands().len() as u64);
                return;
            }
        };
        for command in packet.commands() {
            if let Err(reject) = client.check(command.seq) {
                bump(&self.stats.rejected[reject.counter_index()], 1);
                continue;
            }
            match self.producer.try_push_input(command.to_input_in(&mut self.arena, rx, self.queue, match_id))
            {
                Ok(()) => self.stats.add(Counter::Delivered, 1),
                Err(_) => self.stats.add(Counter::HandoffFull, 1),
            }
        }
    }

    /// Counts a packet that arrived without usable metadata or payload bounds.
    pub fn unusable(&self, missing_metadata: u32, payload_out_of_bounds: u32, invalid_descriptors: u32) {
        self.stats.add(Counter::InvalidDescriptor, u64::from(invalid_descriptors));
        self.stats.add(Counter::MissingMetadata, u64::from(missing_metadata));
        self.stats.add(Counter::PayloadOutOfBounds, u64::from(payload_out_of_bounds));
    }

    /// Promises the sequencer that nothing older than `watermark` will follow from this queue.
    pub fn publish_watermark(&mut self, watermark: u64) {
        self.producer.publish_watermark(watermark);
    }

    /// Ends this queue's stream.
    pub fn close(self) {
        self.producer.close();
    }
}

/// Starts the worker thread of one queue. It runs until `stop` is set, takes what its ring
/// still holds (for at most 500 ms), then closes its hand-off queue and refreshes the kernel
/// statistics one last time. With `phc`, its NIC timestamps are converted to CLOCK_TAI.
pub fn spawn(
    mut socket: XskSocket,
    producer: Producer,
    config: WorkerConfig,
    stop: Arc<AtomicBool>,
    stats: Arc<QueueStats>,
    sessions: Option<Sessions>,
    phc: Option<Conversion>,
) -> std::io::Result<JoinHandle<()>> {
    let queue = socket.queue();
    // A busy-polling worker never sleeps.
    let mut alarm = match config.wake {
        Wake::Busy => None,
        Wake::Packets | Wake::Paced => Some(Alarm::new(config.idle_wakeup, config.seal_grid)?),
    };
    thread::Builder::new().name(format!("tickgate-q{queue}")).spawn(move || {
        // Timed waits end on time: the tick-end wake-ups are worth only that much.
        sys::tight_timer_slack();
        if let Some(core) = config.core
            && !core_affinity::set_for_current(core_affinity::CoreId { id: core })
        {
            log::warn!("queue {queue}: could not pin the worker to core {core}; it runs unpinned");
        }
        let mut ingest = Ingest::new(producer, config.clients, Arc::clone(&stats));
        if let Some(phc) = phc {
            ingest.set_phc(phc);
        }
        let mut slack = SlackEstimator::new(config.slack);
        let mut shown_slack = slack.slack_ns();
        stats.set_watermark_slack(shown_slack);
        let mut last_stats = Instant::now();
        let mut last_poll = Instant::now();
        let mut plain = [0u8; v2::MAX_PAYLOAD_LEN];
        let mut replies: Vec<Vec<u8>> = Vec::new();
        let mut frames: Vec<Vec<u8>> = Vec::new();
        let mut catch_ups: Vec<(u32, u32, u64, u64)> = Vec::new();
        let mut events: Vec<SessionEvent> = Vec::new();
        // Once `stop` is set the worker still takes what is already in its ring (not longer than
        // `STOP_DRAIN`), so that a clean stop loses nothing the kernel had delivered.
        let mut stopping: Option<Instant> = None;
        let mut timer_failed = false;
        // Whether the last batch emptied the ring: a worker that left packets in it reads on
        // without waiting.
        let mut drained = true;
        // Descriptors read since the last wait, and whether packets woke the current reads:
        // only those measure the delay from stamp to ring for the adaptive slack (a paced
        // worker's timed read finds packets that waited for it on purpose).
        let mut since_wait = 0u32;
        let mut pace = Pace::new(config.rx_ring, config.idle_wakeup, sys::clock_monotonic_ns());
        if !slack.measures() {
            pace = pace.without_probes();
        }
        let mut woken_by_packets = true;
        let mut caught_up = CaughtUp::default();
        // Whether the last watermark was proved: a sleeping worker then also wakes for the seal
        // instants at the proved watermark's margin rather than at the slack.
        let mut proved = false;
        // Whether the last drained read missed a packet the program had counted (on its way to
        // the ring), and whether a seal waits for it: a paced worker then watches the ring for it.
        let mut on_its_way = false;
        let mut awaiting = false;
        // The watermark the tick of the last seal instant needs from this worker (its end plus
        // the grace, from the alarm), until one it publishes reaches it: the slack's does within
        // the slack of the seal instant anyway. Meanwhile a paced worker follows a packet on its
        // way (its arrival completes the proof) and does not stretch its sleep, so that its next
        // read comes within the idle interval (stretched, such ticks closed up to 12 ms late at
        // 60 Hz in the lab: docs/benchmarks.md, "Paced reads between seal instants"). Between seal
        // instants a packet on its way waits for the next timed read like any other: at a few
        // hundred thousand packets a second one nearly always is, and watching for it woke the
        // worker per packet ("Paced reads at high rates").
        let mut seal_needs: Option<u64> = None;
        loop {
            if stopping.is_none() && stop.load(Ordering::Relaxed) {
                stopping = Some(Instant::now());
            }
            let mut seal_fired = None;
            if let Some(alarm) = alarm.as_mut()
                && stopping.is_none()
                && drained
            {
                let watch_ring = match config.wake {
                    Wake::Paced => pace.watch_ring(sys::clock_monotonic_ns(), since_wait) || awaiting,
                    Wake::Packets | Wake::Busy => true,
                };
                since_wait = 0;
                woken_by_packets = watch_ring;
                // A failed poll is retried on the next round; the stop flag bounds the loop. A
                // sealed frame or a game message for this worker's players ends the wait too.
                let bell = sessions.as_ref().and_then(|s| s.inbox.as_ref()).map(Inbox::bell);
                // A paced worker whose proof missed only a packet on its way still expects it at
                // the next seal instant: between seal instants it no longer follows such packets.
                let expect_proof = proved || (config.wake == Wake::Paced && on_its_way);
                // Without a timer (it could not be armed) the wait is bounded the old way; said
                // once, not at every wait.
                let stretch = match config.wake {
                    Wake::Paced if seal_needs.is_none() => pace.stretch_ns(),
                    Wake::Paced | Wake::Packets | Wake::Busy => 0,
                };
                let timeout = match alarm.prepare(trail(expect_proof, slack.slack_ns()), stretch) {
                    Ok(()) => None,
                    Err(e) => {
                        if !timer_failed {
                            log::warn!("queue {queue}: could not arm the wake-up timer: {e}; waits are bounded instead");
                            timer_failed = true;
                        }
                        Some(config.idle_wakeup)
                    }
                };
                let fired = match socket.wait_with(watch_ring, [bell, Some(alarm.fd())], timeout) {
                    Ok(ready) if ready.also[1] => Some(alarm.fired()),
                    _ => None,
                };
                stats.woke(fired);
                seal_fired = fired.flatten();
            }
            // The clock, then the program's count for the queue, then the ring (see `CaughtUp`).
            let before = sys::clock_tai_ns();
            // Idleness of sessions and clients is measured per batch, not per packet.
            let now_mono = sys::clock_monotonic_ns();
            if seal_fired.is_some() {
                seal_needs = seal_fired;
            }
            let count = config.queue_counts.as_ref().and_then(|c| c.get(queue));
            let batch = match socket.receive(config.batch, |r| {
                if let Some(meta) = &r.meta {
                    caught_up.read(meta);
                }
                let (Some(meta), Some(payload)) = (r.meta, r.payload) else {
                    // Counted below from the batch totals.
                    stats.add(Counter::Received, 1);
                    return;
                };
                let rx = ingest.stamp(Timestamp::of(&meta), before);
                if rx.clock == crate::input::Clock::Xdp {
                    let delay = before.saturating_sub(rx.ns);
                    stats.visible_after(delay);
                    if woken_by_packets {
                        slack.observe(delay);
                    }
                }
                match &sessions {
                    Some(s) if payload.get(v2::VERSION_OFFSET) == Some(&v2::VERSION) => {
                        ingest.received();
                        match s.gate.packet(
                            s.slot,
                            r.frame,
                            payload,
                            now_mono,
                            &mut plain,
                            &mut replies,
                            &mut events,
                        ) {
                            Outcome::Input { player, match_id, plain } => {
                                ingest.input_v2(player, match_id, plain, rx, now_mono);
                            }
                            Outcome::CatchUp { session, player, match_id, from_tick } => {
                                ingest.session_packet();
                                catch_ups.push((session, player, match_id, from_tick));
                            }
                            Outcome::Handled => ingest.session_packet(),
                        }
                        for event in events.drain(..) {
                            ingest.event(event, rx);
                        }
                    }
                    _ => ingest.packet(payload, rx, now_mono),
                }
            }) {
                Ok(batch) => batch,
                Err(e) => {
                    log::error!("queue {queue}: receive failed: {e}; the worker stops");
                    break;
                }
            };
            ingest.unusable(batch.missing_metadata, batch.payload_out_of_bounds, batch.invalid_descriptors);
            since_wait = since_wait.saturating_add(batch.received + batch.invalid_descriptors);
            // Only a drained ring proves nothing older is waiting behind the batch.
            drained = batch.received + batch.invalid_descriptors < config.batch;
            if drained {
                let watermark;
                (watermark, proved) = caught_up.watermark(before, count, slack.slack_ns());
                on_its_way = caught_up.awaits(count);
                if seal_needs.is_some_and(|need| watermark >= need) {
                    seal_needs = None;
                }
                awaiting = on_its_way && seal_needs.is_some();
                ingest.publish_watermark(watermark);
                stats.watermark_published(proved);
            }
            slack.tick(before);
            if slack.slack_ns() != shown_slack {
                shown_slack = slack.slack_ns();
                stats.set_watermark_slack(shown_slack);
            }
            if let Some(s) = &sessions
                && s.poller
                && last_poll.elapsed() >= SESSION_POLL
            {
                s.gate.poll(sys::clock_monotonic_ns(), &mut replies, &mut events);
                // Not later than any watermark this worker has published (those trail now).
                let now = Timestamp::xdp(sys::clock_tai_ns());
                for event in events.drain(..) {
                    ingest.event(event, now);
                }
                last_poll = Instant::now();
            }
            if !replies.is_empty() {
                transmit(&mut socket, &mut replies, &stats, [Counter::TxQueued, Counter::TxDropped]);
            }
            if let Some(s) = &sessions {
                egress(s, &mut socket, &mut ingest, &mut catch_ups, &mut events, &mut frames, &stats);
            }
            if last_stats.elapsed() >= Duration::from_millis(100) {
                refresh_kernel_stats(&socket, &stats);
                ingest.refresh_phc();
                last_stats = Instant::now();
            }
            if let Some(since) = stopping
                && (drained || since.elapsed() >= STOP_DRAIN)
            {
                break;
            }
        }
        // What the stop drain could not read (a flood that outlasted it) is counted, not lost.
        let left = socket.rx_pending();
        if left > 0 {
            stats.add(Counter::LeftInRing, u64::from(left));
            log::warn!("queue {queue}: {left} packets were still in the ring at stop (left_in_ring)");
        }
        refresh_kernel_stats(&socket, &stats);
        ingest.close();
    })
}

/// The first instant after `now_ns` at which a watermark published by a worker (which trails
/// "now" by its slack) reaches a tick end plus the grace: `end + after_ns` for the next tick end
/// `end` of the run's grid (ticks start at `ceil(k · 10⁹ / tick_hz)` ns of CLOCK_TAI, which is
/// where every match's epoch lies).
pub fn next_seal_wake(now_ns: u64, tick_hz: u32, after_ns: u64) -> u64 {
    if now_ns < after_ns {
        // The grid's tick 0 starts at 0.
        return after_ns;
    }
    let hz = u128::from(tick_hz.max(1));
    let since = u128::from(now_ns - after_ns);
    // The first grid point strictly after `now - after`.
    let k = since * hz / 1_000_000_000 + 1;
    let end = (k * 1_000_000_000).div_ceil(hz);
    u64::try_from(end).unwrap_or(u64::MAX).saturating_add(after_ns)
}

/// The longest a stopping worker keeps taking packets from its ring (a worker starved of its
/// core by a flood could otherwise take long to stop). A full ring of 2048 descriptors takes
/// about 50 ms in a debug build with protocol v2 (20 ms left a thousand packets uncounted in the
/// bench smoke test). Nothing new enters the ring by then (the stop took the socket out of the
/// XSKMAP first); what the drain could not read is counted as `left_in_ring`.
const STOP_DRAIN: Duration = Duration::from_millis(500);

/// How often the polling worker sends due keepalives and closes silent sessions.
const SESSION_POLL: Duration = Duration::from_millis(100);

/// Answers the catch-up requests of this round, then sends what the sequencer and the game left
/// in the worker's inbox: frame broadcasts, direct messages, match ends.
fn egress(
    s: &Sessions,
    socket: &mut XskSocket,
    ingest: &mut Ingest,
    catch_ups: &mut Vec<(u32, u32, u64, u64)>,
    events: &mut Vec<SessionEvent>,
    frames: &mut Vec<Vec<u8>>,
    stats: &QueueStats,
) {
    const FRAME_TX: [Counter; 2] = [Counter::FrameTxQueued, Counter::FrameTxDropped];
    let now = sys::clock_monotonic_ns();
    for (session, player, match_id, from_tick) in catch_ups.drain(..) {
        let found = s.history.since(match_id, from_tick, MAX_CATCH_UP);
        if found.too_old {
            // Not later than any watermark this worker has published (those trail now).
            ingest.resync(player, match_id, from_tick, Timestamp::xdp(sys::clock_tai_ns()));
        }
        s.gate.catch_up(session, &found, ingest.ack(player), now, frames);
    }
    let Some(inbox) = &s.inbox else {
        if !frames.is_empty() {
            transmit(socket, frames, stats, FRAME_TX);
        }
        return;
    };
    inbox.quiet();
    while let Some(item) = inbox.try_next() {
        match item {
            Egress::Frame(outbound) => {
                stats.add(Counter::Broadcasts, 1);
                s.gate.broadcast(s.slot, &outbound, now, |p| ingest.ack(p), frames);
            }
            Egress::Direct { session, body } => s.gate.direct(session, &body, now, frames),
            Egress::Start { match_id, config } => {
                // Not later than any watermark this worker has published (those trail now).
                ingest.start(match_id, &config, Timestamp::xdp(sys::clock_tai_ns()));
            }
            Egress::End { match_id } => {
                s.gate.end_match(match_id, frames, events);
                let at = Timestamp::xdp(sys::clock_tai_ns());
                for event in events.drain(..) {
                    ingest.event(event, at);
                }
                // The match's last frame is the one holding this, players or not.
                ingest.end(match_id, at);
            }
        }
        if frames.len() >= TX_BATCH {
            transmit(socket, frames, stats, FRAME_TX);
        }
    }
    if !frames.is_empty() {
        transmit(socket, frames, stats, FRAME_TX);
    }
}

/// Frame packets put in the TX ring at once while a worker empties its inbox.
const TX_BATCH: usize = 64;

/// The session layer as one worker holds it.
#[derive(Debug)]
pub struct Sessions {
    /// The run's gate.
    pub gate: Arc<Gate>,
    /// Whether this worker sends the keepalives and closes timed-out sessions (one does).
    pub poller: bool,
    /// This worker's index among the run's workers: sessions whose packets it receives are its
    /// to send frames to.
    pub slot: usize,
    /// Sealed frames and game messages to send to the players of this worker's sessions (`None`
    /// when the run sends nothing back: `IngressConfig::broadcast` off).
    pub inbox: Option<Inbox>,
    /// Each match's newest frames, for catch-up requests.
    pub history: History,
}

/// Sends frames through the socket's TX ring, counting them as `queued` or `dropped`; what does
/// not fit is counted, not kept.
fn transmit(
    socket: &mut XskSocket,
    frames: &mut Vec<Vec<u8>>,
    stats: &QueueStats,
    [queued, dropped]: [Counter; 2],
) {
    match socket.transmit(frames.iter().map(Vec::as_slice)) {
        Ok(batch) => {
            stats.add(queued, u64::from(batch.queued));
            stats.add(dropped, u64::from(batch.ring_full + batch.no_frame + batch.too_long));
        }
        Err(e) => {
            log::debug!("queue {}: transmit failed: {e}", socket.queue());
            stats.add(dropped, frames.len() as u64);
        }
    }
    frames.clear();
}

fn refresh_kernel_stats(socket: &XskSocket, stats: &QueueStats) {
    if let Ok(s) = socket.statistics()
        && let Ok(mut slot) = stats.xdp.lock()
    {
        *slot = s;
    }
}

#[cfg(test)]
mod tests {
    use tickgate_proto::{Action, InputFrame, PlayerCommand};

    use super::*;
    use crate::{
        input::Input,
        sequencer::{Item, channel},
    };

    fn packet(client: u32, first_seq: u64, commands: usize) -> Vec<u8> {
        let command = |i: usize| PlayerCommand {
            action: Action::Move as i32,
            client_frame: (first_seq as usize + i) as u32,
            ..Default::default()
        };
        let frame = InputFrame { first_seq, commands: (0..commands).map(command).collect() };
        let mut out = Vec::new();
        wire::encode_input(client, 0, &frame, &mut out).unwrap();
        out
    }

    #[test]
    fn every_packet_and_input_lands_in_exactly_one_named_counter() {
        let stats = Arc::new(QueueStats::new(3, BindMode::Copy, None));
        // Room for two inputs: the third new one finds the hand-off full.
        let (producer, mut consumer) = channel(2, &Arc::default());
        let mut ingest = Ingest::new(producer, ClientsConfig::default(), Arc::clone(&stats));
        ingest.packet(&packet(7, 0, 2), Timestamp::xdp(10), 0);
        // Resends seq 0 and 1 (duplicates) with seq 2, which does not fit in the hand-off.
        ingest.packet(&packet(7, 0, 3), Timestamp::nic(20), 0);
        ingest.packet(b"not a tickgate packet", Timestamp::xdp(30), 0);
        ingest.unusable(1, 2, 3);

        let r = stats.report();
        assert_eq!(r.count(Counter::Received), 3);
        assert_eq!(r.count(Counter::InputPackets), 2);
        assert_eq!(r.count(Counter::SyncPackets), 0);
        assert_eq!(r.count(Counter::MissingMetadata), 1);
        assert_eq!(r.count(Counter::PayloadOutOfBounds), 2);
        assert_eq!(r.count(Counter::InvalidDescriptor), 3);
        assert_eq!(r.count(Counter::Delivered), 2);
        assert_eq!(r.count(Counter::HandoffFull), 1);
        assert_eq!(r.rejected(Reject::Duplicate), 2);
        assert_eq!(r.dropped_packets.values().sum::<u64>() - 1 - 2 - 3, 1, "one wire error: {r:?}");
        // The wire error and the unusable descriptors were not part of `received` here, so the
        // balance is off by exactly the three `unusable` packets counted without a receive.
        assert_eq!(r.unexplained_packets(), -3, "{r:?}");

        let inputs: Vec<Input> = std::iter::from_fn(|| consumer.pop())
            .filter_map(|i| if let Item::Input(i) = i { Some(i) } else { None })
            .collect();
        let got: Vec<_> = inputs.iter().map(|i| (i.seq, i.rx, i.queue, i.client_id)).collect();
        assert_eq!(got, [(0, Timestamp::xdp(10), 3, 7), (1, Timestamp::xdp(10), 3, 7)]);
    }

    /// NIC-stamped packets on one queue, XDP-stamped ones on another, a fake PHC 37 s and 12 µs
    /// away from CLOCK_TAI and drifting: the NIC stamps come out converted (`nic-tai`), and the
    /// frames order both queues' inputs by their true time, not by their queue's floor.
    #[test]
    fn nic_stamps_are_kept_in_tai_and_ordered_with_xdp_stamps() {
        use crate::frame_queue::{Config, Epoch, Late, Pipeline};
        use crate::input::Clock;
        use crate::phc::{Conversion, tests::FakePhc};

        const S: u64 = 1_000_000_000;
        const MS: u64 = 1_000_000;
        let fake = FakePhc { offset: 37 * S as i64 + 12_000, drift_ppb: 25_000, ..FakePhc::default() };
        let clock = Arc::clone(&fake.now_tai);
        let base = 5_000 * S;
        *clock.lock().unwrap() = base - 200 * MS;
        let mut conversion = Conversion::new(Box::new(fake.clone()));
        *clock.lock().unwrap() = base - 100 * MS;
        conversion.refresh();

        let bell = Arc::default();
        let (nic_producer, mut nic_consumer) = channel(64, &bell);
        let (xdp_producer, mut xdp_consumer) = channel(64, &bell);
        let nic_stats = Arc::new(QueueStats::new(0, BindMode::Copy, None));
        let mut nic = Ingest::new(nic_producer, ClientsConfig::default(), Arc::clone(&nic_stats));
        nic.set_phc(conversion);
        let mut xdp = Ingest::new(
            xdp_producer,
            ClientsConfig::default(),
            Arc::new(QueueStats::new(1, BindMode::Copy, None)),
        );
        // Interleaved in true time: client 1's inputs on the NIC queue at 0.1, 0.3, 0.5 ms into
        // each of three 1 ms ticks, client 2's on the XDP queue at 0.2, 0.4, 0.6 ms.
        for tick in 0..3u64 {
            for k in 0..3u64 {
                let t = base + tick * MS + (2 * k + 1) * 100_000;
                let seq = tick * 3 + k;
                let rx = nic.stamp(Timestamp::nic(fake.phc_at(t)), base);
                nic.packet(&packet(1, seq, 1), rx, 0);
                xdp.packet(&packet(2, seq, 1), xdp.stamp(Timestamp::xdp(t + 100_000), base), 0);
            }
        }
        nic.publish_watermark(base + 10 * MS);
        xdp.publish_watermark(base + 10 * MS);
        let config = Config {
            tick_hz: 1_000,
            grace_us: 0,
            late: Late::Drop,
            time_base: Clock::Xdp,
            epoch: Epoch::At(base),
        };
        let mut pipeline = Pipeline::new(&config, 2).expect("valid");
        for (slot, consumer) in [(0, &mut nic_consumer), (1, &mut xdp_consumer)] {
            while let Some(item) = consumer.pop() {
                pipeline.feed(slot, item).expect("feed");
            }
        }
        let frames: Vec<_> = pipeline.drain_frames().collect();
        assert_eq!(frames.len(), 10);
        for (tick, frame) in frames.iter().take(3).enumerate() {
            let got: Vec<(u32, Clock)> = frame.inputs.iter().map(|i| (i.client_id, i.rx.clock)).collect();
            let want: Vec<(u32, Clock)> =
                (0..3).flat_map(|_| [(1, Clock::NicTai), (2, Clock::Xdp)]).collect();
            assert_eq!(got, want, "tick {tick}: alternating by true time");
            for (k, input) in frame.inputs.iter().enumerate() {
                let t = base + tick as u64 * MS + (k as u64 + 1) * 100_000;
                assert!(
                    (input.rx.ns as i64 - t as i64).abs() < 20,
                    "tick {tick} input {k}: {} vs {t}",
                    input.rx.ns
                );
            }
        }
        assert_eq!(pipeline.stats().restamped_clock, 0, "nothing restamped");
        let r = nic_stats.report();
        assert_eq!((r.count(Counter::NicConverted), r.count(Counter::NicUnconverted)), (9, 0));
        assert!(r.phc.is_some_and(|p| p.samples == 2 && p.source == "fake"));
    }

    #[test]
    fn unread_packets_are_the_kernels_ring_drops_and_what_was_left_at_stop() {
        let mut q = QueueReport { received: 100, left_in_ring: 4, ..QueueReport::default() };
        q.xdp_statistics.rx_dropped = 1;
        q.xdp_statistics.rx_ring_full = 2;
        assert_eq!(q.unread(), 7);
        assert_eq!(q.count(Counter::LeftInRing), 4);
    }

    #[test]
    fn visible_delays_land_in_power_of_two_buckets() {
        let stats = QueueStats::new(0, BindMode::Copy, None);
        for ns in [0, 999, 1_000, 1_999, 2_000, 700_000, 500_000_000_000] {
            stats.visible_after(ns);
        }
        // Below 1 µs: 2; below 2 µs: 2 (1000, 1999 ns); below 4 µs: 1; 700 µs is below 1024 µs;
        // 500 s lands in the last bucket.
        assert_eq!(stats.report().visible_delay_us, vec![[1, 2], [2, 2], [4, 1], [1024, 1], [1 << 23, 1]]);
    }

    #[test]
    fn seal_wakes_fall_on_tick_ends_plus_grace_and_slack() {
        use crate::frame_queue::TickClock;
        let after = 2_500_000;
        for hz in [60u32, 1_000, 7] {
            let grid = TickClock::new(0, hz);
            for now in
                [0u64, 5_000_000_000, 5_016_666_667 + after, 5_016_666_667 + after - 1, 123_456_789_012]
            {
                let wake = next_seal_wake(now, hz, after);
                assert!(wake > now, "{hz} Hz at {now}: {wake}");
                let end = wake - after;
                let tick = grid.tick_of(end).expect("on the grid");
                assert_eq!(grid.start(tick), end, "{hz} Hz at {now}: {end} is a tick boundary");
                if tick > 0 {
                    assert!(grid.start(tick - 1) + after <= now, "{hz} Hz at {now}: an earlier wake was due");
                }
            }
        }
    }
}
