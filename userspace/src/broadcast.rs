//! The way back: every sealed frame goes to every player of its match.
//!
//! The sequencer thread encodes each sealed frame once into its wire record (with the game's
//! messages for the match that were waiting) and hands the match's newest records to every
//! worker's [`Inbox`] (a bounded queue: a worker that falls behind loses broadcasts, counted, and
//! never stalls the sequencer). Each worker seals one `Frame` packet per player of the match
//! whose session lives on its RX queue and sends it through its own AF_XDP TX ring. A bounded
//! [`History`] per match serves players who reconnect and ask to catch up. `docs/architecture.md`
//! ("The way back") draws it.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
    mpsc::{self, Receiver, SyncSender, TrySendError},
};

use crate::frame_queue::{Frame, FrameFanout, MatchConfig};
use crate::sys;
use crate::wire::frame_packet;

/// Frames each packet repeats besides the newest, by default: a player survives the loss of
/// this many packets in a row without asking for anything.
pub const DEFAULT_REDUNDANCY: usize = 3;

/// Frames of each match kept for catch-up, by default: 4 s at 60 Hz, 256 ms at 1 kHz.
pub const DEFAULT_HISTORY: usize = 256;

/// The most frames one catch-up request is answered with.
pub const MAX_CATCH_UP: usize = 256;

/// Items a worker's inbox holds: 256 ticks of one match, or one tick of 1024 matches.
pub const INBOX_CAPACITY: usize = 1024;

/// Bytes of game messages waiting for their match's next frame, over all matches.
pub const OUTBOX_BYTES: usize = 256 * 1024;

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

/// What a worker sends for the game.
#[derive(Debug)]
pub enum Egress {
    /// A sealed frame, to every player of its match whose session the worker serves.
    Frame(Arc<Outbound>),
    /// The game starts a match with its own configuration (a `start` input in its stream).
    Start {
        /// The match.
        match_id: u64,
        /// Its tick rate, grace and late policy.
        config: MatchConfig,
    },
    /// The game ends a match: disconnect every player of it (its leaves end the match).
    End {
        /// The match.
        match_id: u64,
    },
    /// A game message to one session (a `Message` packet).
    Direct {
        /// The session.
        session: u32,
        /// The message.
        body: Vec<u8>,
    },
}

/// Why the game's message was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The message is longer than a packet can carry.
    #[error("a message of {len} bytes is longer than the {max} bytes a packet carries - split it")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Too much is waiting already (the run sends nothing or the game sends too much).
    #[error("too many messages are waiting to be sent - send fewer or smaller ones")]
    Full,
    /// The player has no session now.
    #[error("the player has no session - it left or never joined")]
    NoSession,
    /// The run sends nothing back to players: protocol v1 only, or the way back is off.
    #[error("this run sends nothing back to players (protocol v2 is off, or --no-broadcast)")]
    NoSessions,
}

/// The sequencer's side: encodes each frame once and fans it out.
#[derive(Debug)]
pub struct Fanout {
    redundancy: usize,
    history: History,
    outbox: Arc<Mutex<Outbox>>,
    inboxes: Vec<SyncSender<Egress>>,
    bells: Vec<Arc<OwnedFd>>,
    /// Inboxes that got an item since the last [`Fanout::ring`].
    unrung: Vec<bool>,
    stats: Arc<FanoutStats>,
}

/// Counters of the fan-out, shared with the run's report.
#[derive(Debug, Default)]
pub struct FanoutStats {
    frames: AtomicU64,
    inbox_full: AtomicU64,
    messages: AtomicU64,
}

/// The fan-out's counters, by name (the players' packets are counted by the workers,
/// `frame_tx_queued` and `frame_tx_dropped`, and the session layer, `frame_packets`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BroadcastReport {
    /// Frames handed to the workers.
    pub frames: u64,
    /// Hand-offs lost because a worker's inbox was full (one per worker and item).
    pub inbox_full: u64,
    /// Game messages sent with a frame to a whole match.
    pub match_messages: u64,
}

impl FanoutStats {
    /// The counters now.
    pub fn report(&self) -> BroadcastReport {
        BroadcastReport {
            frames: self.frames.load(Ordering::Relaxed),
            inbox_full: self.inbox_full.load(Ordering::Relaxed),
            match_messages: self.messages.load(Ordering::Relaxed),
        }
    }
}

/// A worker's side: what it is to send, and an eventfd that is readable when something came
/// (the worker polls it beside its socket, so a sealed frame wakes a sleeping worker at once).
#[derive(Debug)]
pub struct Inbox {
    rx: Receiver<Egress>,
    bell: Arc<OwnedFd>,
}

impl Inbox {
    /// The next item waiting, if any.
    pub fn try_next(&self) -> Option<Egress> {
        self.rx.try_recv().ok()
    }

    /// The eventfd to poll.
    pub fn bell(&self) -> BorrowedFd<'_> {
        self.bell.as_fd()
    }

    /// Quiets the bell before the inbox is emptied (an item pushed after this rings it again).
    pub fn quiet(&self) {
        sys::eventfd_clear(self.bell.as_fd());
    }
}

/// Game messages waiting for their match's next frame.
#[derive(Debug, Default)]
struct Outbox {
    waiting: HashMap<u64, Vec<Vec<u8>>>,
    bytes: usize,
}

/// The game's side of the way back: messages to a match, or to one session.
#[derive(Clone, Debug)]
pub struct Mailer {
    outbox: Arc<Mutex<Outbox>>,
    inboxes: Vec<SyncSender<Egress>>,
    bells: Vec<Arc<OwnedFd>>,
    stats: Arc<FanoutStats>,
}

impl Mailer {
    /// Queues `message` for every player of `match_id`, in the record of the match's next frame
    /// (so it is repeated with that frame, and caught up with it).
    pub fn to_match(&self, match_id: u64, message: &[u8]) -> Result<(), SendError> {
        check_len(message)?;
        let mut outbox = self.outbox.lock().map_err(|_| SendError::Full)?;
        if outbox.bytes + message.len() > OUTBOX_BYTES {
            return Err(SendError::Full);
        }
        outbox.bytes += message.len();
        outbox.waiting.entry(match_id).or_default().push(message.to_vec());
        Ok(())
    }

    /// Hands `message` to worker `slot` to send at once to `session` (sent once: a lost one is
    /// lost).
    pub fn to_session(&self, slot: usize, session: u32, message: &[u8]) -> Result<(), SendError> {
        check_len(message)?;
        self.hand(slot, Egress::Direct { session, body: message.to_vec() })
    }

    /// Puts `item` in worker `slot`'s inbox and wakes the worker.
    fn hand(&self, slot: usize, item: Egress) -> Result<(), SendError> {
        let (Some(inbox), Some(bell)) = (self.inboxes.get(slot), self.bells.get(slot)) else {
            return Err(SendError::NoSessions);
        };
        inbox.try_send(item).map_err(|_| {
            self.stats.inbox_full.fetch_add(1, Ordering::Relaxed);
            SendError::Full
        })?;
        sys::eventfd_signal(bell.as_fd());
        Ok(())
    }
}

impl Mailer {
    /// Asks the first worker to end `match_id`: each of its sessions is disconnected (three
    /// `Disconnect` packets each) and leaves; the match's last frame follows.
    pub fn end_match(&self, match_id: u64) -> Result<(), SendError> {
        self.hand(0, Egress::End { match_id })
    }

    /// Asks the first worker to start `match_id` now with its own `config` (before anyone
    /// joins; a match already started keeps its configuration, and the start is counted as
    /// `starts_ignored`).
    pub fn start_match(&self, match_id: u64, config: MatchConfig) -> Result<(), SendError> {
        self.hand(0, Egress::Start { match_id, config })
    }
}

fn check_len(message: &[u8]) -> Result<(), SendError> {
    let max = frame_packet::MAX_MESSAGE_LEN;
    if message.len() > max { Err(SendError::TooLong { len: message.len(), max }) } else { Ok(()) }
}

/// What a catch-up request found in the history.
#[derive(Debug, Default)]
pub struct CatchUp {
    /// Records from the tick asked for (or the oldest held) on, oldest first.
    pub records: Vec<Arc<[u8]>>,
    /// The tick asked for is no longer held.
    pub too_old: bool,
    /// The match's tick rate.
    pub tick_hz: u32,
}

/// The newest frames of every match, for players who reconnect; written by the sequencer
/// thread once per frame, read by a worker per catch-up request.
#[derive(Clone, Debug, Default)]
pub struct History {
    len: usize,
    tick_hz: u32,
    matches: Arc<Mutex<HashMap<u64, (u32, Frames)>>>,
}

/// One match's newest records, oldest first, with their ticks.
type Frames = VecDeque<(u64, Arc<[u8]>)>;

impl History {
    fn push(&self, match_id: u64, tick_hz: u32, tick: u64, record: Arc<[u8]>, last: bool) {
        let Ok(mut matches) = self.matches.lock() else { return };
        if last {
            matches.remove(&match_id);
            return;
        }
        let (hz, frames) = matches.entry(match_id).or_default();
        *hz = tick_hz;
        frames.push_back((tick, record));
        while frames.len() > self.len {
            frames.pop_front();
        }
    }

    /// The records of `match_id` from `from_tick` on, oldest first, at most `max` of them.
    pub fn since(&self, match_id: u64, from_tick: u64, max: usize) -> CatchUp {
        let Ok(matches) = self.matches.lock() else { return CatchUp::default() };
        let Some((tick_hz, frames)) = matches.get(&match_id) else {
            return CatchUp { records: Vec::new(), too_old: true, tick_hz: self.tick_hz };
        };
        let tick_hz = *tick_hz;
        let oldest = frames.front().map_or(u64::MAX, |(tick, _)| *tick);
        let records = frames
            .iter()
            .filter(|(tick, _)| *tick >= from_tick)
            .take(max)
            .map(|(_, r)| Arc::clone(r))
            .collect();
        CatchUp { records, too_old: from_tick < oldest, tick_hz }
    }
}

/// The sequencer thread hands each sealed frame to the workers through their inboxes.
impl FrameFanout for Fanout {
    fn frame(&mut self, frame: &Frame) {
        self.hand_out(frame);
    }

    fn ring(&mut self) {
        self.wake();
    }
}

impl Fanout {
    /// A fan-out to `workers` inboxes, repeating `redundancy` older frames in each packet and
    /// keeping `history` frames per match for catch-up (`tick_hz`, the run's, answers a catch-up
    /// for a match it knows nothing of); also the game's [`Mailer`] and the history the workers
    /// read. Fails only if the OS has no eventfd to give.
    pub fn new(
        workers: usize,
        redundancy: usize,
        history: usize,
        tick_hz: u32,
    ) -> io::Result<(Self, Vec<Inbox>, Mailer, History)> {
        let (inboxes, rxs): (Vec<_>, Vec<_>) =
            (0..workers).map(|_| mpsc::sync_channel(INBOX_CAPACITY)).unzip();
        let bells = (0..workers).map(|_| sys::eventfd().map(Arc::new)).collect::<io::Result<Vec<_>>>()?;
        let stats = Arc::new(FanoutStats::default());
        let outbox = Arc::new(Mutex::new(Outbox::default()));
        let history = History { len: history.max(redundancy + 1), tick_hz, matches: Arc::default() };
        let mailer = Mailer {
            outbox: Arc::clone(&outbox),
            inboxes: inboxes.clone(),
            bells: bells.clone(),
            stats: Arc::clone(&stats),
        };
        let ends =
            rxs.into_iter().zip(&bells).map(|(rx, bell)| Inbox { rx, bell: Arc::clone(bell) }).collect();
        let fanout = Self {
            redundancy,
            history: history.clone(),
            outbox,
            inboxes,
            unrung: vec![false; bells.len()],
            bells,
            stats,
        };
        Ok((fanout, ends, mailer, history))
    }

    /// Wakes every worker whose inbox got a frame since the last call: once per batch of sealed
    /// frames, not once per frame.
    fn wake(&mut self) {
        for (unrung, bell) in self.unrung.iter_mut().zip(&self.bells) {
            if std::mem::take(unrung) {
                sys::eventfd_signal(bell.as_fd());
            }
        }
    }

    /// The counters, to read while the run goes on.
    pub fn stats(&self) -> Arc<FanoutStats> {
        Arc::clone(&self.stats)
    }

    /// Hands a sealed frame, with the game's messages waiting for its match, to every worker.
    fn hand_out(&mut self, frame: &Frame) {
        let messages = self.take_messages(frame.match_id);
        let mut record = Vec::with_capacity(frame_packet::RECORD_HEAD_LEN + 64 * frame.inputs.len());
        frame_packet::encode_record(frame, &messages, &mut record);
        let record: Arc<[u8]> = record.into();
        let records = self.newest(frame.match_id, Arc::clone(&record));
        self.history.push(frame.match_id, frame.tick_hz, frame.tick, record, frame.last);
        let outbound = Arc::new(Outbound {
            match_id: frame.match_id,
            tick: frame.tick,
            tick_hz: frame.tick_hz,
            records,
        });
        self.stats.frames.fetch_add(1, Ordering::Relaxed);
        for (inbox, unrung) in self.inboxes.iter().zip(&mut self.unrung) {
            match inbox.try_send(Egress::Frame(Arc::clone(&outbound))) {
                Ok(()) => *unrung = true,
                Err(TrySendError::Full(_)) => {
                    self.stats.inbox_full.fetch_add(1, Ordering::Relaxed);
                }
                // The worker is gone (the run is stopping): nothing to count.
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }

    /// `record` and the match's `redundancy` records before it, newest first.
    fn newest(&self, match_id: u64, record: Arc<[u8]>) -> Vec<Arc<[u8]>> {
        let mut records = vec![record];
        if let Ok(matches) = self.history.matches.lock()
            && let Some(frames) = matches.get(&match_id)
        {
            records.extend(frames.1.iter().rev().take(self.redundancy).map(|(_, r)| Arc::clone(r)));
        }
        records
    }

    fn take_messages(&self, match_id: u64) -> Vec<Vec<u8>> {
        let Ok(mut outbox) = self.outbox.lock() else { return Vec::new() };
        let Some(messages) = outbox.waiting.remove(&match_id) else { return Vec::new() };
        outbox.bytes -= messages.iter().map(Vec::len).sum::<usize>();
        self.stats.messages.fetch_add(messages.len() as u64, Ordering::Relaxed);
        messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame_queue::GENESIS_HASH;

    fn frame(match_id: u64, tick: u64, last: bool) -> Frame {
        Frame {
            match_id,
            tick,
            tick_hz: 60,
            start_ns: tick,
            inputs: vec![],
            hash: GENESIS_HASH,
            absent: vec![],
            last,
        }
    }

    fn ticks(records: &[Arc<[u8]>]) -> Vec<u64> {
        records.iter().map(|r| u64::from_be_bytes(r[..8].try_into().expect("8 bytes"))).collect()
    }

    #[test]
    fn each_frame_carries_the_redundancy_before_it_and_the_history_serves_catch_up() {
        let (mut fanout, inboxes, mailer, history) = Fanout::new(2, 2, 4, 60).expect("eventfds");
        mailer.to_match(1, b"hello").expect("queued");
        for tick in 0..6 {
            fanout.frame(&frame(1, tick, false));
            fanout.frame(&frame(2, tick, false));
        }
        let mut seen = Vec::new();
        while let Some(Egress::Frame(out)) = inboxes[1].try_next() {
            seen.push(out);
        }
        let summary: Vec<(u64, Vec<u64>)> = seen.iter().map(|o| (o.match_id, ticks(&o.records))).collect();
        assert_eq!(summary.len(), 12, "every frame to every worker");
        assert_eq!(summary[10], (1, vec![5, 4, 3]));
        assert_eq!(summary[1], (2, vec![0]));
        // The message rode on match 1's next frame only.
        let messages = |o: &Outbound| {
            let mut body = Vec::new();
            frame_packet::body(60, 0, 0, &[&o.records[0]], &mut body);
            frame_packet::decode(&body).expect("decodes").records[0].messages.clone()
        };
        assert_eq!(messages(&seen[0]), vec![b"hello".to_vec()]);
        assert!(seen[1..].iter().all(|o| messages(o).is_empty()));
        assert_eq!(fanout.stats().report().match_messages, 1);
        let found = history.since(1, 3, 10);
        assert_eq!((ticks(&found.records), found.too_old), (vec![3, 4, 5], false));
        let found = history.since(1, 0, 10);
        assert_eq!((ticks(&found.records), found.too_old), (vec![2, 3, 4, 5], true), "4 kept");
        assert!(history.since(9, 0, 10).too_old, "an unknown match has nothing");
        fanout.frame(&frame(1, 6, true));
        assert!(history.since(1, 6, 10).too_old, "an ended match's history is gone");
    }

    #[test]
    fn a_full_inbox_drops_and_counts_and_messages_are_bounded() {
        let (mut fanout, inboxes, mailer, _history) = Fanout::new(1, 0, 1, 60).expect("eventfds");
        for tick in 0..INBOX_CAPACITY as u64 + 5 {
            fanout.frame(&frame(1, tick, false));
        }
        assert_eq!(fanout.stats().report().inbox_full, 5);
        let long = vec![0u8; frame_packet::MAX_MESSAGE_LEN + 1];
        assert!(matches!(mailer.to_match(1, &long), Err(SendError::TooLong { .. })));
        let full = vec![0u8; frame_packet::MAX_MESSAGE_LEN];
        let fits = OUTBOX_BYTES / full.len();
        for _ in 0..fits {
            mailer.to_match(3, &full).expect("fits");
        }
        assert_eq!(mailer.to_match(3, &full), Err(SendError::Full));
        fanout.frame(&frame(3, 0, false));
        mailer.to_match(3, &full).expect("room again once the frame took them");
        assert_eq!(mailer.to_session(0, 1, b"x"), Err(SendError::Full), "the inbox is still full");
        assert!(inboxes[0].try_next().is_some());
    }

    #[test]
    fn a_worker_is_woken_once_per_batch_and_by_the_game() {
        let readable = |inbox: &Inbox| {
            crate::sys::poll_readable([Some(inbox.bell())], Some(std::time::Duration::ZERO)).expect("poll")[0]
        };
        let (mut fanout, inboxes, mailer, _history) = Fanout::new(2, 0, 1, 60).expect("eventfds");
        assert!(!readable(&inboxes[0]));
        fanout.frame(&frame(1, 0, false));
        assert!(!readable(&inboxes[0]), "not before the batch ends");
        fanout.ring();
        assert!(readable(&inboxes[0]) && readable(&inboxes[1]));
        inboxes[0].quiet();
        assert!(!readable(&inboxes[0]));
        fanout.ring();
        assert!(!readable(&inboxes[0]), "nothing new, no ring");
        mailer.to_session(0, 3, b"hi").expect("room");
        assert!(readable(&inboxes[0]), "the game's message wakes the worker");
    }
}
