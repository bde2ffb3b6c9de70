//! The deterministic frame queue: cuts the merged input stream into ticks and hands sealed frames
//! to the game.
//!
//! A [`Pipeline`] is the whole ingress back end as one synchronous state machine: items go in
//! (by hand-off queue), the [`Merge`] orders them, inputs get a tick from their arrival time, a
//! tick is sealed once the merged watermark has passed its end plus the grace, and each sealed
//! tick becomes a [`Frame`] chained to the previous one by hash. [`spawn`] runs a pipeline on the
//! sequencer thread for live traffic; replay and tests drive one directly, so both paths share
//! every decision. See `docs/architecture.md` ("Sequencer and frame queue") for the rules.

mod digest;
mod frame;
mod matches;
mod pool;
mod sequencer_thread;
mod tick;

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

pub use frame::{Frame, GENESIS_HASH, JsonLines, chain_hash, encode_frame, encode_inputs, frame_order, hex};
pub use pool::{FramePool, POOL_BUFFERS};
pub use sequencer_thread::{
    FRAME_QUEUE_CAPACITY, FrameFanout, FrameQueue, RunOutcome, Running, SequencerThread, SpawnError, spawn,
    spawn_with_fanout,
};
pub use tick::{MAX_TICKS_AHEAD, TickClock};

use crate::input::{Clock, Input};
use crate::sequencer::{Frontier, Item, Merge, Released, SequencerError};
use matches::Matches;

/// The most hand-off queues a run can have (the record log stores a queue as a `u16`).
pub const MAX_QUEUES: usize = 1 << 16;

/// What happens to an input whose tick was already sealed when it was released.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Late {
    /// Discard it.
    Drop,
    /// Put it in the oldest tick still open: the player's action happens one tick later rather
    /// than never, which is what a lockstep game usually prefers.
    #[default]
    Next,
}

/// Where tick 0 starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Epoch {
    /// At the start of the tick (on the grid `k · 10⁹ / tick_hz` ns from the clock's zero) holding
    /// the first input the merge releases. No frames are emitted before that input.
    #[default]
    FirstInput,
    /// At this time in the time base; ticks start being sealed by watermarks alone.
    At(u64),
}

/// How a run cuts time into ticks. Recorded in the log, so replay uses the same values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Ticks per second (1..=10⁹).
    pub tick_hz: u32,
    /// How long past a tick's end the merged watermark must be before the tick is sealed.
    pub grace_us: u64,
    /// What to do with inputs released into an already sealed tick.
    pub late: Late,
    /// The clock all timestamps are compared in.
    pub time_base: Clock,
    /// Where tick 0 starts.
    pub epoch: Epoch,
}

impl Default for Config {
    /// 60 Hz, 2 ms grace, late inputs to the next tick, TAI from the XDP hook, epoch at the first
    /// input. The grace covers a worker preempted for about a millisecond plus AF_XDP ring
    /// residence (tens of µs), while costing only 12% of a 16.7 ms tick in frame latency.
    fn default() -> Self {
        Self {
            tick_hz: 60,
            grace_us: 2_000,
            late: Late::Next,
            time_base: Clock::Xdp,
            epoch: Epoch::FirstInput,
        }
    }
}

impl Config {
    /// Checks the values a user can get wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tick_hz == 0 || self.tick_hz > 1_000_000_000 {
            return Err(ConfigError::TickHz { tick_hz: self.tick_hz });
        }
        if self.grace_us > u64::MAX / 1_000 {
            return Err(ConfigError::Grace { grace_us: self.grace_us });
        }
        Ok(())
    }

    /// The grace in nanoseconds.
    pub fn grace_ns(&self) -> u64 {
        self.grace_us.saturating_mul(1_000)
    }
}

/// One match's own tick rate, grace and late policy, when the game starts the match itself
/// ([`Ingress::start_match`](crate::ingress::Ingress::start_match)); a match started by its first join takes the run's. It travels as
/// the payload of the match's [`InputKind::Start`](crate::input::InputKind::Start) input, so the
/// record log and every replica see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchConfig {
    /// Ticks per second.
    pub tick_hz: u32,
    /// Grace past a tick's end, µs.
    pub grace_us: u64,
    /// Late inputs.
    pub late: Late,
}

impl MatchConfig {
    /// Bytes of [`MatchConfig::encode`].
    pub const LEN: usize = 13;

    /// `tick_hz:u32 grace_us:u64 late:u8` (0 drop, 1 next), big-endian.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..4].copy_from_slice(&self.tick_hz.to_be_bytes());
        out[4..12].copy_from_slice(&self.grace_us.to_be_bytes());
        out[12] = match self.late {
            Late::Drop => 0,
            Late::Next => 1,
        };
        out
    }

    /// The configuration these bytes encode, if they encode a valid one.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; Self::LEN] = bytes.try_into().ok()?;
        let late = match bytes[12] {
            0 => Late::Drop,
            1 => Late::Next,
            _ => return None,
        };
        let config = Self {
            tick_hz: u32::from_be_bytes(bytes[..4].try_into().ok()?),
            grace_us: u64::from_be_bytes(bytes[4..12].try_into().ok()?),
            late,
        };
        let check = Config { tick_hz: config.tick_hz, grace_us: config.grace_us, ..Config::default() };
        check.validate().ok().map(|()| config)
    }
}

/// A configuration the frame queue cannot run with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The tick rate is zero or finer than a nanosecond.
    #[error("tick rate {tick_hz} Hz is out of range - use --tick-hz between 1 and 1000000000")]
    TickHz {
        /// The rejected rate.
        tick_hz: u32,
    },
    /// The grace does not fit in nanoseconds.
    #[error("grace of {grace_us} µs is too large - use a --grace-us below one tick or a few")]
    Grace {
        /// The rejected grace.
        grace_us: u64,
    },
    /// Zero queues, or more than the log can name.
    #[error("{queues} hand-off queues: a run needs between 1 and {MAX_QUEUES} - check the RX queue list")]
    Queues {
        /// The rejected count.
        queues: usize,
    },
}

/// Counters for one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Frames emitted, empty ones included.
    pub frames: u64,
    /// Frames emitted with no inputs.
    pub empty_frames: u64,
    /// Inputs placed in emitted frames (on time or moved by `Late::Next`).
    pub inputs_ordered: u64,
    /// Late inputs discarded (`Late::Drop`).
    pub late_dropped: u64,
    /// Late inputs moved to the oldest open tick (`Late::Next`).
    pub late_next: u64,
    /// Late inputs per client id, under the run's policy.
    pub late_by_client: BTreeMap<u32, u64>,
    /// Inputs that arrived below their queue's floor (ordered at the floor).
    pub out_of_order: u64,
    /// Of those, inputs below their queue's previous input (see `MergeStats::backwards`).
    pub backwards: u64,
    /// Times a watermark jumped more than `MAX_TICKS_AHEAD` ticks: the gap was skipped.
    pub clock_jumps: u64,
    /// Empty ticks not emitted because of those jumps.
    pub ticks_skipped: u64,
    /// Inputs more than `MAX_TICKS_AHEAD` ticks ahead of the oldest open tick, dropped.
    pub far_future_dropped: u64,
    /// Inputs stamped by the other clock and restamped to their queue's floor.
    pub restamped_clock: u64,
    /// Inputs stamped by the other clock before their queue had a floor, dropped.
    pub dropped_no_floor: u64,
    /// Frames dropped because the game's end held [`FRAME_QUEUE_CAPACITY`] frames (a game that
    /// stopped taking them); set by the sequencer thread, 0 in replay.
    #[serde(default)]
    pub frames_overflowed: u64,
    /// Matches started (at their first input; match 0 at the start with an explicit epoch).
    pub matches_started: u64,
    /// Matches ended (their last player left).
    pub matches_ended: u64,
    /// Start inputs whose configuration was not valid (the match took the run's), or that came
    /// after the match had started (ignored).
    #[serde(default)]
    pub starts_ignored: u64,
    /// Inputs in ticks after the frame the game ended their match with (dropped with it).
    #[serde(default)]
    pub inputs_after_end: u64,
}

/// Sees every state change of a [`Pipeline`], in order: the record log implements it.
///
/// The methods cannot fail: the hot path degrades instead (an implementation keeps its first
/// error for later). No-op watermarks are not passed on, since they change nothing.
pub trait Recorder {
    /// `item` is about to be applied to queue `slot`.
    fn item(&mut self, slot: usize, item: &Item);
    /// A match's epoch became known (at its first input).
    fn epoch(&mut self, _match_id: u64, _epoch_ns: u64) {}
    /// A frame was sealed.
    fn frame(&mut self, _frame: &Frame) {}
    /// The sequencer thread has nothing to do: a good moment to flush.
    fn idle(&mut self) {}
}

/// Records nothing.
impl Recorder for () {
    fn item(&mut self, _slot: usize, _item: &Item) {}
}

impl<R: Recorder + ?Sized> Recorder for &mut R {
    fn item(&mut self, slot: usize, item: &Item) {
        (**self).item(slot, item);
    }
    fn epoch(&mut self, match_id: u64, epoch_ns: u64) {
        (**self).epoch(match_id, epoch_ns);
    }
    fn frame(&mut self, frame: &Frame) {
        (**self).frame(frame);
    }
    fn idle(&mut self) {
        (**self).idle();
    }
}

/// The merge and the tick queue as one synchronous state machine: the same item sequence always
/// yields the same frames, hashes and counters.
#[derive(Debug)]
pub struct Pipeline<R: Recorder = ()> {
    config: Config,
    merge: Merge,
    matches: Matches,
    frames: VecDeque<Frame>,
    recorder: R,
    finished: bool,
}

impl Pipeline {
    /// A pipeline over `queues` hand-off queues, recording nothing.
    pub fn new(config: &Config, queues: usize) -> Result<Self, ConfigError> {
        Self::with_recorder(config, queues, ())
    }
}

/// Puts an input the merge released in its match's tick, and tells the recorder the epoch that
/// placing it fixed, if it did.
#[inline(always)]
fn place<R: Recorder>(matches: &mut Matches, recorder: &mut R, released: Released) {
    matches.place(released.input);
    if let Some((id, epoch)) = matches.take_new_epoch() {
        recorder.epoch(id, epoch);
    }
}

impl<R: Recorder> Pipeline<R> {
    /// A pipeline that reports every state change to `recorder`.
    pub fn with_recorder(config: &Config, queues: usize, recorder: R) -> Result<Self, ConfigError> {
        config.validate()?;
        if queues == 0 || queues > MAX_QUEUES {
            return Err(ConfigError::Queues { queues });
        }
        Ok(Self {
            config: *config,
            merge: Merge::new(queues, config.time_base),
            matches: Matches::new(config),
            frames: VecDeque::new(),
            recorder,
            finished: false,
        })
    }

    /// Applies one item from hand-off queue `slot` and seals every tick that became final.
    pub fn feed(&mut self, slot: usize, item: Item) -> Result<(), SequencerError> {
        if self.merge.is_noop(slot, &item)? {
            return Ok(());
        }
        self.recorder.item(slot, &item);
        if self.merge.queues() == 1 {
            // One queue's inputs go at once, past the lanes (`push_release`'s shortcut).
            let (matches, recorder) = (&mut self.matches, &mut self.recorder);
            self.merge.push_release(slot, item, |released| place(matches, recorder, released))?;
        } else {
            // Pulled one by one rather than handed to a closure: each input goes from its lane
            // to its frame without a call in between (8 queues: 0.91–0.99× the pipeline's time).
            self.merge.push(slot, item)?;
            while let Some(released) = self.merge.next_released() {
                place(&mut self.matches, &mut self.recorder, released);
            }
        }
        let before = self.frames.len();
        match self.merge.frontier() {
            Frontier::At(watermark) => self.matches.advance(watermark, &mut self.frames),
            Frontier::End if !self.finished => {
                self.matches.finish(&mut self.frames);
                self.finished = true;
            }
            Frontier::End => {}
        }
        for frame in self.frames.range(before..) {
            self.recorder.frame(frame);
        }
        Ok(())
    }

    /// Shorthand for feeding [`Item::Input`].
    pub fn push_input(&mut self, slot: usize, input: Input) -> Result<(), SequencerError> {
        self.feed(slot, Item::Input(input))
    }

    /// Shorthand for feeding [`Item::Watermark`].
    pub fn push_watermark(&mut self, slot: usize, watermark: u64) -> Result<(), SequencerError> {
        self.feed(slot, Item::Watermark(watermark))
    }

    /// Shorthand for feeding [`Item::Close`].
    pub fn close(&mut self, slot: usize) -> Result<(), SequencerError> {
        self.feed(slot, Item::Close)
    }

    /// The oldest sealed frame not yet taken.
    pub fn pop_frame(&mut self) -> Option<Frame> {
        self.frames.pop_front()
    }

    /// Takes every sealed frame, oldest first.
    pub fn drain_frames(&mut self) -> std::collections::vec_deque::Drain<'_, Frame> {
        self.frames.drain(..)
    }

    /// The pool a consumer gives frame buffers back to (see [`FramePool`]).
    pub fn pool(&self) -> FramePool {
        self.matches.pool.clone()
    }

    /// Gives a frame's buffer back for the next frames, once the game is done with it.
    pub fn recycle(&self, frame: Frame) {
        self.matches.pool.put(frame.inputs);
    }

    /// Whether every queue is closed and drained: all frames that will ever exist are sealed.
    /// The last one is the last tick holding an input (or sealed earlier by a watermark).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Match 0's tick 0 start in the time base, once known (the v1 match).
    pub fn epoch(&self) -> Option<u64> {
        self.matches.epoch_of(0)
    }

    /// A match's tick 0 start in the time base, once known.
    pub fn epoch_of(&self, match_id: u64) -> Option<u64> {
        self.matches.epoch_of(match_id)
    }

    /// Matches live now.
    pub fn live_matches(&self) -> usize {
        self.matches.live()
    }

    /// Due-match advances so far: one per match whose deadline a watermark step passed. The
    /// scaling benchmark reads it; it grows with matches due, not with matches live.
    pub fn match_advances(&self) -> u64 {
        self.matches.advances()
    }

    /// The lowest item time worth waking the sequencer thread for: the next seal deadline of
    /// any match, and no later than `stale_ns` past the merged watermark, so that inputs (a new
    /// match's first, a start) are read within about that even when no deadline is near. 0 (any
    /// item) once every queue is closed.
    pub fn wake_at(&self, stale_ns: u64) -> u64 {
        match self.merge.frontier() {
            Frontier::At(watermark) => {
                let stale = watermark.saturating_add(stale_ns);
                self.matches.next_deadline().map_or(stale, |deadline| deadline.min(stale))
            }
            Frontier::End => 0,
        }
    }

    /// The merged watermark.
    pub fn frontier(&self) -> Frontier {
        self.merge.frontier()
    }

    /// The run's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How many hand-off queues the pipeline merges.
    pub fn queues(&self) -> usize {
        self.merge.queues()
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        let merge = self.merge.stats();
        let tick = self.matches.stats();
        let (matches_started, matches_ended) = self.matches.started_ended();
        Stats {
            frames: tick.frames,
            empty_frames: tick.empty_frames,
            inputs_ordered: tick.inputs_ordered,
            late_dropped: tick.late_dropped,
            late_next: tick.late_next,
            late_by_client: tick.late_by_client,
            out_of_order: merge.out_of_order,
            backwards: merge.backwards,
            restamped_clock: merge.restamped_clock,
            dropped_no_floor: merge.dropped_no_floor,
            clock_jumps: tick.clock_jumps,
            ticks_skipped: tick.ticks_skipped,
            far_future_dropped: tick.far_future_dropped,
            frames_overflowed: 0,
            matches_started,
            matches_ended,
            starts_ignored: self.matches.starts_ignored(),
            inputs_after_end: self.matches.inputs_after_end(),
        }
    }

    /// The recorder.
    pub fn recorder_mut(&mut self) -> &mut R {
        &mut self.recorder
    }

    /// Ends the pipeline, giving back the recorder.
    pub fn into_recorder(self) -> R {
        self.recorder
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Timestamp;

    const MS: u64 = 1_000_000;

    fn input(ts: u64, client: u32, seq: u64) -> Input {
        Input {
            kind: crate::input::InputKind::Command,
            rx: Timestamp { ns: ts, clock: Clock::Xdp },
            queue: 0,
            client_id: client,
            match_id: 0,
            seq,
            client_frame: 0,
            payload: [client as u8].into(),
        }
    }

    /// 1 kHz ticks (1 ms), 200 µs grace, epoch at 0.
    fn config(late: Late) -> Config {
        Config { tick_hz: 1_000, grace_us: 200, late, time_base: Clock::Xdp, epoch: Epoch::At(0) }
    }

    fn ticks(frames: &[Frame]) -> Vec<(u64, Vec<u64>)> {
        frames.iter().map(|f| (f.tick, f.inputs.iter().map(|i| i.rx.ns).collect())).collect()
    }

    #[test]
    fn a_tick_is_sealed_exactly_when_the_watermark_reaches_its_end_plus_grace() {
        let mut p = Pipeline::new(&config(Late::Drop), 1).expect("valid config");
        p.push_input(0, input(MS / 2, 1, 1)).expect("feed");
        p.push_watermark(0, MS + 200_000 - 1).expect("feed");
        assert_eq!(p.pop_frame(), None);
        p.push_watermark(0, MS + 200_000).expect("feed");
        let frame = p.pop_frame().expect("tick 0 sealed");
        assert_eq!(ticks(&[frame]), vec![(0, vec![MS / 2])]);
    }

    /// Fifty inputs in `tick`, and a watermark that seals it.
    fn feed_tick(p: &mut Pipeline, tick: u64) {
        for c in 0..50 {
            p.push_input(0, input(tick * MS + 10 + c, c as u32, tick + 1)).expect("feed");
        }
        p.push_watermark(0, (tick + 1) * MS + 200_000).expect("feed");
    }

    #[test]
    fn a_recycled_frame_buffer_is_filled_again() {
        let mut p = Pipeline::new(&config(Late::Drop), 1).expect("valid config");
        feed_tick(&mut p, 0);
        let first = p.pop_frame().expect("tick 0");
        let (ptr, capacity) = (first.inputs.as_ptr(), first.inputs.capacity());
        p.recycle(first);
        assert_eq!(p.pool().len(), 1, "given back");
        feed_tick(&mut p, 1);
        let second = p.pop_frame().expect("tick 1");
        assert_eq!(p.pool().len(), 0, "taken again");
        assert_eq!(second.inputs.as_ptr(), ptr, "tick 1 filled the buffer of tick 0");
        assert!(second.inputs.capacity() >= capacity);
        assert_eq!(second.inputs.len(), 50);
    }

    #[test]
    fn recycling_changes_no_frame() {
        let mut plain = Pipeline::new(&config(Late::Drop), 1).expect("valid config");
        let mut recycling = Pipeline::new(&config(Late::Drop), 1).expect("valid config");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for tick in 0..6 {
            feed_tick(&mut plain, tick);
            feed_tick(&mut recycling, tick);
            a.extend(plain.drain_frames().map(|f| (f.tick, f.inputs, f.hash)));
            let frames: Vec<Frame> = recycling.drain_frames().collect();
            for frame in frames {
                b.push((frame.tick, frame.inputs.clone(), frame.hash));
                recycling.recycle(frame);
            }
        }
        assert_eq!(a.len(), 6);
        assert_eq!(a, b);
    }

    /// Frames past chunk 0 of the hashed message are hashed as their inputs arrive (`digest`);
    /// frames whose inputs arrive out of order, or that a late input joins, are hashed at the
    /// seal. Both give the hash of the whole encoding, frame after frame, whatever the size.
    #[test]
    fn frames_hashed_while_filling_chain_like_frames_hashed_whole() {
        for late in [Late::Drop, Late::Next] {
            let mut p = Pipeline::new(&config(late), 2).expect("valid config");
            let mut frames = Vec::new();
            for tick in 0..12u64 {
                // 0, 1, 30, 31 and thousands of inputs: below, at and past chunk 0 and many
                // subtrees. On odd ticks pairs share a timestamp, and the merge releases queue
                // 0's first although queue 1's has the lower client id: out of frame order.
                let count = [0, 1, 30, 31, 200, 3_000][tick as usize % 6];
                for n in 0..count as u64 {
                    let rx = tick * MS + 10 + n / 2 * 200;
                    let (slot, client) = if tick % 2 == 1 && n % 2 == 1 { (1, 1) } else { (0, 2 + n) };
                    p.push_input(slot, input(rx, client as u32, tick + 1)).expect("feed");
                }
                if tick % 3 == 1 {
                    // A straggler of the previous tick, sealed by now: late.
                    p.push_input(0, input(tick * MS - 5, 7, tick)).expect("feed");
                }
                p.push_watermark(0, (tick + 1) * MS + 200_000).expect("feed");
                p.push_watermark(1, (tick + 1) * MS + 200_000).expect("feed");
                frames.extend(p.drain_frames());
            }
            assert!(
                frames.len() >= 11 && frames.iter().any(|f| f.inputs.len() >= 3_000),
                "{} frames",
                frames.len()
            );
            let mut prev = GENESIS_HASH;
            for frame in &frames {
                assert_eq!(
                    frame.hash,
                    chain_hash(&prev, frame.tick, &frame.inputs),
                    "{late:?} tick {}",
                    frame.tick
                );
                prev = frame.hash;
            }
        }
    }

    #[test]
    fn empty_ticks_are_emitted_in_order_when_the_watermark_jumps() {
        let mut p = Pipeline::new(&config(Late::Drop), 2).expect("valid config");
        p.push_input(0, input(100, 1, 1)).expect("feed");
        p.push_watermark(0, 10 * MS).expect("feed");
        p.push_watermark(1, 5 * MS).expect("feed");
        let frames: Vec<_> = p.drain_frames().collect();
        assert_eq!(ticks(&frames), vec![(0, vec![100]), (1, vec![]), (2, vec![]), (3, vec![])]);
        assert_eq!(p.stats().empty_frames, 3);
        assert_eq!(frames[1].hash, chain_hash(&frames[0].hash, 1, &[]));
    }

    #[test]
    fn late_inputs_follow_the_policy_and_are_counted_per_client() {
        for late in [Late::Drop, Late::Next] {
            let mut p = Pipeline::new(&config(late), 1).expect("valid config");
            p.push_input(0, input(100, 1, 1)).expect("feed");
            p.push_watermark(0, 2 * MS + 300_000).expect("feed");
            // Tick 0 and 1 are sealed, tick 2 is open; these arrive below the watermark.
            p.push_input(0, input(200, 7, 1)).expect("feed");
            p.push_input(0, input(MS + 5, 7, 2)).expect("feed");
            p.push_input(0, input(2 * MS + 1, 8, 1)).expect("feed");
            p.close(0).expect("feed");
            let frames: Vec<_> = p.drain_frames().collect();
            let stats = p.stats();
            assert_eq!(stats.late_by_client, BTreeMap::from([(7, 2)]));
            assert_eq!(stats.out_of_order, 3);
            match late {
                Late::Drop => {
                    assert_eq!(ticks(&frames), vec![(0, vec![100]), (1, vec![]), (2, vec![2 * MS + 1])]);
                    assert_eq!((stats.late_dropped, stats.late_next, stats.inputs_ordered), (2, 0, 2));
                }
                Late::Next => {
                    let want = vec![(0, vec![100]), (1, vec![]), (2, vec![200, MS + 5, 2 * MS + 1])];
                    assert_eq!(ticks(&frames), want);
                    assert_eq!((stats.late_dropped, stats.late_next, stats.inputs_ordered), (0, 2, 4));
                }
            }
        }
    }

    #[test]
    fn late_next_goes_to_the_oldest_open_tick_when_several_are_open() {
        // A 2.5 ms grace on 1 ms ticks keeps three ticks open behind the watermark.
        let cfg = Config { grace_us: 2_500, ..config(Late::Next) };
        let mut p = Pipeline::new(&cfg, 1).expect("valid config");
        for ts in [100, 2 * MS + 1, 3 * MS + 1, 4 * MS + 1] {
            p.push_input(0, input(ts, 1, ts)).expect("feed");
        }
        p.push_watermark(0, 5 * MS).expect("feed");
        assert_eq!(ticks(&p.drain_frames().collect::<Vec<_>>()), vec![(0, vec![100]), (1, vec![])]);
        p.push_input(0, input(MS / 2, 2, 1)).expect("feed");
        p.close(0).expect("feed");
        let frames: Vec<_> = p.drain_frames().collect();
        let want = vec![(2, vec![MS / 2, 2 * MS + 1]), (3, vec![3 * MS + 1]), (4, vec![4 * MS + 1])];
        assert_eq!(ticks(&frames), want);
        assert_eq!(p.stats().late_next, 1);
    }

    #[test]
    fn a_watermark_far_in_the_future_skips_the_gap_instead_of_emitting_every_tick() {
        // Found by fuzzing the record reader: 60 Hz, epoch 0, a watermark at 2^62 ns.
        let config = Config { epoch: Epoch::At(0), ..config(Late::Next) };
        let mut p = Pipeline::new(&config, 1).expect("valid config");
        p.push_input(0, input(MS / 2, 1, 1)).expect("feed");
        p.push_watermark(0, 1 << 62).expect("feed");
        p.close(0).expect("feed");
        let frames: Vec<_> = p.drain_frames().collect();
        let stats = p.stats();
        assert_eq!(stats.clock_jumps, 1);
        assert!(stats.ticks_skipped > MAX_TICKS_AHEAD, "{stats:?}");
        assert!(frames.len() < 10, "the gap is skipped, not emitted: {} frames", frames.len());
        assert_eq!(frames[0].inputs.len(), 1, "what was open is sealed first");
        assert_eq!(stats.inputs_ordered, 1);
    }

    #[test]
    fn an_input_far_in_the_future_is_dropped_and_counted() {
        // Found by fuzzing: 1 GHz ticks, epoch 0, one input at 2^62 ns, then close.
        let config = Config { tick_hz: 1_000_000_000, epoch: Epoch::At(0), ..config(Late::Next) };
        let mut p = Pipeline::new(&config, 1).expect("valid config");
        p.push_input(0, input(1 << 62, 1, 1)).expect("feed");
        p.close(0).expect("feed");
        let frames: Vec<_> = p.drain_frames().collect();
        assert_eq!(p.stats().far_future_dropped, 1);
        assert!(frames.len() <= 1);
    }

    #[test]
    fn a_straggler_within_the_grace_lands_in_its_own_tick() {
        let mut p = Pipeline::new(&config(Late::Drop), 1).expect("valid config");
        p.push_watermark(0, MS + 150_000).expect("feed");
        p.push_input(0, input(MS - 1, 3, 1)).expect("feed");
        p.close(0).expect("feed");
        let frames: Vec<_> = p.drain_frames().collect();
        assert_eq!(ticks(&frames), vec![(0, vec![MS - 1])]);
        assert_eq!(p.stats().out_of_order, 1);
        assert_eq!(p.stats().late_by_client, BTreeMap::new());
    }

    #[test]
    fn first_input_epoch_is_aligned_to_the_tick_grid_and_reported_once() {
        #[derive(Default)]
        struct Epochs(Vec<u64>, usize);
        impl Recorder for Epochs {
            fn item(&mut self, _slot: usize, _item: &Item) {
                self.1 += 1;
            }
            fn epoch(&mut self, _match_id: u64, epoch_ns: u64) {
                self.0.push(epoch_ns);
            }
        }
        let cfg = Config { tick_hz: 60, epoch: Epoch::FirstInput, ..config(Late::Drop) };
        let mut p = Pipeline::with_recorder(&cfg, 1, Epochs::default()).expect("valid config");
        p.push_watermark(0, 5_000_000_000).expect("feed");
        assert_eq!(p.epoch(), None, "watermarks alone do not start the ticks");
        p.push_input(0, input(5_000_000_000 + 20_000_000, 1, 1)).expect("feed");
        p.push_input(0, input(5_000_000_000 + 40_000_000, 1, 2)).expect("feed");
        p.push_watermark(0, 5_000_000_000).expect("a no-op watermark is not recorded");
        // 5.02 s falls in tick 301 of the 60 Hz grid, which starts at ceil(301e9 / 60) ns.
        assert_eq!(p.epoch(), Some(5_016_666_667));
        p.close(0).expect("feed");
        let frames: Vec<_> = p.drain_frames().collect();
        assert_eq!(ticks(&frames), vec![(0, vec![5_020_000_000]), (1, vec![5_040_000_000])]);
        let recorder = p.into_recorder();
        assert_eq!((recorder.0, recorder.1), (vec![5_016_666_667], 4));
    }

    #[test]
    fn inputs_before_an_explicit_epoch_are_late() {
        let cfg = Config { epoch: Epoch::At(10 * MS), ..config(Late::Next) };
        let mut p = Pipeline::new(&cfg, 1).expect("valid config");
        p.push_input(0, input(9 * MS, 4, 1)).expect("feed");
        p.close(0).expect("feed");
        let frames: Vec<_> = p.drain_frames().collect();
        assert_eq!(ticks(&frames), vec![(0, vec![9 * MS])]);
        assert_eq!(p.stats().late_next, 1);
    }

    #[test]
    fn bad_configs_are_rejected_with_a_reason() {
        let zero = Config { tick_hz: 0, ..Config::default() };
        assert_eq!(Pipeline::new(&zero, 1).err(), Some(ConfigError::TickHz { tick_hz: 0 }));
        let huge = Config { grace_us: u64::MAX, ..Config::default() };
        assert_eq!(Pipeline::new(&huge, 1).err(), Some(ConfigError::Grace { grace_us: u64::MAX }));
        assert_eq!(Pipeline::new(&Config::default(), 0).err(), Some(ConfigError::Queues { queues: 0 }));
        assert!(ConfigError::TickHz { tick_hz: 0 }.to_string().contains("--tick-hz"));
    }

    #[test]
    fn finishing_seals_up_to_the_last_tick_with_an_input() {
        let mut p = Pipeline::new(&config(Late::Drop), 2).expect("valid config");
        p.push_input(0, input(3 * MS + 7, 1, 1)).expect("feed");
        p.push_watermark(1, 3 * MS).expect("feed");
        p.close(1).expect("feed");
        assert!(!p.is_finished());
        p.close(0).expect("feed");
        assert!(p.is_finished());
        let frames: Vec<_> = p.drain_frames().collect();
        assert_eq!(ticks(&frames).last(), Some(&(3, vec![3 * MS + 7])));
        assert_eq!(frames.len(), 4);
        assert_eq!(p.push_input(0, input(5 * MS, 1, 2)), Err(SequencerError::Closed { slot: 0 }));
    }
}
