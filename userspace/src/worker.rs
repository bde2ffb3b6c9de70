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
use tickgate_common::meta::flags;

use crate::{
    input::TsSource,
    sequencer::Producer,
    session::anti_replay::{Clients, ClientsConfig, Reject},
    sys,
    wire::{self, Packet, WireError},
    xsk::{BindMode, XdpStatistics, XskSocket},
};

/// How a worker runs.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Core to pin the thread to (`None`: not pinned).
    pub core: Option<usize>,
    /// Spin on the ring instead of sleeping in poll(2).
    pub busy_poll: bool,
    /// Descriptors taken from the ring per call.
    pub batch: u32,
    /// Longest sleep in poll(2) when the ring is empty. An idle queue's watermark is only as
    /// recent as its last wake-up, and every frame waits for the slowest queue's watermark, so
    /// this must stay well below the tick grace: 1 ms keeps a quiet queue from holding frames
    /// back by more than that, at about 1000 wake-ups per second per idle queue.
    pub idle_wakeup: Duration,
    /// How far behind "now" the worker's watermark stays when its ring is drained: the longest a
    /// stamped packet can take to become visible in the ring (the end of the driver's NAPI poll,
    /// where the kernel publishes the RX producer index; tens of µs in practice).
    pub watermark_slack_ns: u64,
    /// Anti-replay table sizing.
    pub clients: ClientsConfig,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            core: None,
            busy_poll: false,
            batch: 64,
            idle_wakeup: Duration::from_millis(1),
            watermark_slack_ns: 500_000,
            clients: ClientsConfig::default(),
        }
    }
}

/// Packet-level outcomes: every descriptor read from the ring is counted once here.
pub const PACKET_COUNTERS: [&str; 4] =
    ["input_packets", "sync_packets", "invalid_descriptors", "missing_metadata"];
/// Input-level outcomes: every command of every input packet is counted once here.
pub const INPUT_COUNTERS: [&str; 2] = ["delivered", "handoff_full"];

/// Slots of the counter array, in a fixed order: packet outcomes, wire errors, input outcomes,
/// anti-replay rejections, and `received` (packets handed to decode).
const RECEIVED: usize = 0;
const PACKET_BASE: usize = 1;
const PAYLOAD_OUT_OF_BOUNDS: usize = PACKET_BASE + PACKET_COUNTERS.len();
const WIRE_BASE: usize = PAYLOAD_OUT_OF_BOUNDS + 1;
const INPUT_BASE: usize = WIRE_BASE + WireError::COUNTER_NAMES.len();
const REJECT_BASE: usize = INPUT_BASE + INPUT_COUNTERS.len();
const SLOTS: usize = REJECT_BASE + Reject::COUNTER_NAMES.len();

/// Live counters of one queue, written by its worker, read by anyone.
#[derive(Debug)]
pub struct QueueStats {
    queue: u32,
    bind_mode: BindMode,
    core: Option<usize>,
    counters: [AtomicU64; SLOTS],
    xdp: Mutex<XdpStatistics>,
}

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
}

impl QueueStats {
    /// Counters for `queue`, all zero.
    pub fn new(queue: u32, bind_mode: BindMode, core: Option<usize>) -> Self {
        Self {
            queue,
            bind_mode,
            core,
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
            xdp: Mutex::new(XdpStatistics::default()),
        }
    }

    fn add(&self, slot: usize, n: u64) {
        if n > 0 {
            self.counters[slot].fetch_add(n, Ordering::Relaxed);
        }
    }

    fn get(&self, slot: usize) -> u64 {
        self.counters[slot].load(Ordering::Relaxed)
    }

    /// A consistent-enough snapshot (each counter is read once; the worker may be running).
    pub fn report(&self) -> QueueReport {
        let mut dropped_packets: BTreeMap<&'static str, u64> = BTreeMap::new();
        dropped_packets.insert("invalid_descriptor", self.get(PACKET_BASE + 2));
        dropped_packets.insert("missing_metadata", self.get(PACKET_BASE + 3));
        dropped_packets.insert("payload_out_of_bounds", self.get(PAYLOAD_OUT_OF_BOUNDS));
        for (i, name) in WireError::COUNTER_NAMES.iter().enumerate() {
            dropped_packets.insert(name, self.get(WIRE_BASE + i));
        }
        let mut dropped_inputs: BTreeMap<&'static str, u64> = BTreeMap::new();
        dropped_inputs.insert("handoff_full", self.get(INPUT_BASE + 1));
        for (i, name) in Reject::COUNTER_NAMES.iter().enumerate() {
            dropped_inputs.insert(name, self.get(REJECT_BASE + i));
        }
        let decoded = BTreeMap::from([
            ("input_packets", self.get(PACKET_BASE)),
            ("sync_packets", self.get(PACKET_BASE + 1)),
        ]);
        QueueReport {
            queue: self.queue,
            bind_mode: self.bind_mode.to_string(),
            core: self.core,
            received: self.get(RECEIVED),
            delivered: self.get(INPUT_BASE),
            dropped_packets,
            dropped_inputs,
            decoded,
            xdp_statistics: self.xdp.lock().map(|s| *s).unwrap_or_default(),
        }
    }
}

impl QueueReport {
    /// Descriptors read from the ring that are not accounted for by a drop reason or a decode
    /// outcome: 0 when the counters balance.
    pub fn unexplained_packets(&self) -> i128 {
        i128::from(self.received)
            + i128::from(self.dropped_packets.get("invalid_descriptor").copied().unwrap_or(0))
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
}

impl Ingest {
    /// An ingest step feeding `producer`, counting into `stats`.
    pub fn new(producer: Producer, clients: ClientsConfig, stats: Arc<QueueStats>) -> Self {
        let queue = stats.queue as u16;
        Self { producer, clients: Clients::new(clients), stats, queue }
    }

    /// One UDP payload (tickgate header + body) received at `rx_ts_ns` by clock `source`.
    pub fn packet(&mut self, payload: &[u8], rx_ts_ns: u64, source: TsSource) {
        self.stats.add(RECEIVED, 1);
        match wire::decode(payload) {
            Ok(Packet::Input(packet)) => {
                self.stats.add(PACKET_BASE, 1);
                let now = sys::clock_monotonic_ns();
                for command in packet.commands() {
                    if let Err(reject) = self.clients.check(command.client_id, command.seq, now) {
                        self.stats.add(REJECT_BASE + reject.counter_index(), 1);
                        continue;
                    }
                    match self.producer.try_push_input(command.to_input(rx_ts_ns, source, self.queue)) {
                        Ok(()) => self.stats.add(INPUT_BASE, 1),
                        Err(_) => self.stats.add(INPUT_BASE + 1, 1),
                    }
                }
            }
            Ok(Packet::Sync(_)) => self.stats.add(PACKET_BASE + 1, 1),
            Err(e) => self.stats.add(WIRE_BASE + e.counter_index(), 1),
        }
    }

    /// Counts a packet that arrived without usable metadata or payload bounds.
    pub fn unusable(&self, missing_metadata: u32, payload_out_of_bounds: u32, invalid_descriptors: u32) {
        self.stats.add(PACKET_BASE + 2, u64::from(invalid_descriptors));
        self.stats.add(PACKET_BASE + 3, u64::from(missing_metadata));
        self.stats.add(PAYLOAD_OUT_OF_BOUNDS, u64::from(payload_out_of_bounds));
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

/// Starts the worker thread of one queue. It runs until `stop` is set, then closes its
/// hand-off queue and refreshes the kernel statistics one last time.
pub fn spawn(
    mut socket: XskSocket,
    producer: Producer,
    config: WorkerConfig,
    stop: Arc<AtomicBool>,
    stats: Arc<QueueStats>,
) -> std::io::Result<JoinHandle<()>> {
    let queue = socket.queue();
    thread::Builder::new().name(format!("tickgate-q{queue}")).spawn(move || {
        if let Some(core) = config.core
            && !core_affinity::set_for_current(core_affinity::CoreId { id: core })
        {
            log::warn!("queue {queue}: could not pin the worker to core {core}; it runs unpinned");
        }
        let mut ingest = Ingest::new(producer, config.clients, Arc::clone(&stats));
        let mut last_stats = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if !config.busy_poll {
                // A failed poll is retried on the next round; the stop flag bounds the loop.
                let _ = socket.wait(config.idle_wakeup);
            }
            let before = sys::clock_tai_ns();
            let batch = match socket.receive(config.batch, |r| {
                let (Some(meta), Some(payload)) = (r.meta, r.payload) else {
                    // Counted below from the batch totals.
                    stats.add(RECEIVED, 1);
                    return;
                };
                let source = if meta.flags & flags::TS_NIC != 0 { TsSource::Nic } else { TsSource::Xdp };
                ingest.packet(payload, meta.rx_ts_ns, source);
            }) {
                Ok(batch) => batch,
                Err(e) => {
                    log::error!("queue {queue}: receive failed: {e}; the worker stops");
                    break;
                }
            };
            ingest.unusable(batch.missing_metadata, batch.payload_out_of_bounds, batch.invalid_descriptors);
            // Only a drained ring proves nothing older is waiting behind the batch.
            if batch.received + batch.invalid_descriptors < config.batch {
                ingest.publish_watermark(before.saturating_sub(config.watermark_slack_ns));
            }
            if last_stats.elapsed() >= Duration::from_millis(100) {
                refresh_kernel_stats(&socket, &stats);
                last_stats = Instant::now();
            }
        }
        refresh_kernel_stats(&socket, &stats);
        ingest.close();
    })
}

fn refresh_kernel_stats(socket: &XskSocket, stats: &QueueStats) {
    if let Ok(s) = socket.statistics()
        && let Ok(mut slot) = stats.xdp.lock()
    {
        *slot = s;
    }
}
