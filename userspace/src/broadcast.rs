//! The way back: every sealed frame goes to every player of its match.
//!
//! The sequencer thread encodes each sealed frame once into its wire record and hands the
//! match's newest records to every worker's [`Inbox`] (a bounded queue: a worker that falls
//! behind loses broadcasts, counted, and never stalls the sequencer). Each worker seals one
//! `Frame` packet per player of the match whose session lives on its RX queue and sends it
//! through its own AF_XDP TX ring. `docs/architecture.md` ("The way back") draws it.

use std::collections::{HashMap, VecDeque};
use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
    mpsc::{self, Receiver, SyncSender, TrySendError},
};

use crate::frame_queue::Frame;
use crate::wire::frame_packet;

/// Frames each packet repeats besides the newest, by default: a player survives the loss of
/// this many packets in a row without asking for anything.
pub const DEFAULT_REDUNDANCY: usize = 3;

/// Broadcasts a worker's inbox holds: 256 ticks of one match, or one tick of 256 matches.
pub const INBOX_CAPACITY: usize = 1024;

/// One sealed frame of one match, ready to send: its record and the ones before it.
#[derive(Debug)]
pub struct Outbound {
    /// The match.
    pub match_id: u64,
    /// The newest frame's tick.
    pub tick: u64,
    /// The match's tick rate.
    pub tick_hz: u32,
    /// Wire records, newest first: this frame and up to the redundancy before it.
    pub records: Vec<Arc<[u8]>>,
}

/// The sequencer's side: keeps each match's newest records and fans each frame out.
#[derive(Debug)]
pub struct Fanout {
    redundancy: usize,
    tick_hz: u32,
    history: HashMap<u64, VecDeque<Arc<[u8]>>>,
    inboxes: Vec<SyncSender<Arc<Outbound>>>,
    stats: Arc<FanoutStats>,
}

/// Counters of the fan-out, shared with the run's report.
#[derive(Debug, Default)]
pub struct FanoutStats {
    /// Frames handed to the workers.
    pub frames: AtomicU64,
    /// Hand-offs lost because a worker's inbox was full (one per worker and frame).
    pub inbox_full: AtomicU64,
}

/// The fan-out's counters, by name (the players' packets are counted by the workers,
/// `frame_tx_queued` and `frame_tx_dropped`, and the session layer, `frame_packets`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BroadcastReport {
    /// Frames handed to the workers.
    pub frames: u64,
    /// Hand-offs lost because a worker's inbox was full (one per worker and frame).
    pub inbox_full: u64,
}

impl FanoutStats {
    /// The counters now.
    pub fn report(&self) -> BroadcastReport {
        BroadcastReport {
            frames: self.frames.load(Ordering::Relaxed),
            inbox_full: self.inbox_full.load(Ordering::Relaxed),
        }
    }
}

/// A worker's side: the broadcasts for it to send.
#[derive(Debug)]
pub struct Inbox {
    rx: Receiver<Arc<Outbound>>,
}

impl Inbox {
    /// The next broadcast waiting, if any.
    pub fn try_next(&self) -> Option<Arc<Outbound>> {
        self.rx.try_recv().ok()
    }
}

impl Fanout {
    /// A fan-out to `workers` inboxes, repeating `redundancy` older frames in each packet.
    pub fn new(workers: usize, redundancy: usize, tick_hz: u32) -> (Self, Vec<Inbox>) {
        let (inboxes, rxs): (Vec<_>, Vec<_>) =
            (0..workers).map(|_| mpsc::sync_channel(INBOX_CAPACITY)).unzip();
        let fanout = Self {
            redundancy,
            tick_hz,
            history: HashMap::new(),
            inboxes,
            stats: Arc::new(FanoutStats::default()),
        };
        (fanout, rxs.into_iter().map(|rx| Inbox { rx }).collect())
    }

    /// The counters, to read while the run goes on.
    pub fn stats(&self) -> Arc<FanoutStats> {
        Arc::clone(&self.stats)
    }

    /// Hands a sealed frame to every worker.
    pub fn frame(&mut self, frame: &Frame) {
        let mut record = Vec::with_capacity(frame_packet::RECORD_HEAD_LEN + 64 * frame.inputs.len());
        frame_packet::encode_record(frame, &mut record);
        let history = self.history.entry(frame.match_id).or_default();
        history.push_front(record.into());
        history.truncate(self.redundancy + 1);
        let outbound = Arc::new(Outbound {
            match_id: frame.match_id,
            tick: frame.tick,
            tick_hz: self.tick_hz,
            records: history.iter().cloned().collect(),
        });
        if frame.last {
            self.history.remove(&frame.match_id);
        }
        self.stats.frames.fetch_add(1, Ordering::Relaxed);
        for inbox in &self.inboxes {
            if let Err(TrySendError::Full(_)) = inbox.try_send(Arc::clone(&outbound)) {
                self.stats.inbox_full.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
