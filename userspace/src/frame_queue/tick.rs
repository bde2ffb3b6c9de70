//! Tick arithmetic and sealing: which tick an input belongs to, and when a tick is final.

use std::collections::{BTreeMap, VecDeque};

use super::digest::{self, Digest, HashChain};
use super::frame::{ENCODED_HEAD, Frame, frame_order};
use super::pool::FramePool;
use super::{Config, Epoch, Late};
use crate::input::{Input, InputKind};

const NS_PER_S: u128 = 1_000_000_000;

/// How far ahead of the oldest open tick a watermark or input may reach: 65 536 ticks (18 min at
/// 60 Hz, 65 s at 1 kHz). Beyond it, time has stepped (a clock set forward, or a crafted log):
/// emitting every empty tick in between would take unbounded time and memory, so a watermark
/// that far ahead skips the gap (counted `clock_jumps`, `ticks_skipped`) and an input that far
/// ahead is dropped (`far_future_dropped`). Replay applies the same rule.
pub const MAX_TICKS_AHEAD: u64 = 1 << 16;

/// Exact tick boundaries for a rate that need not divide a second.
///
/// Tick `t` covers `[epoch + ⌈t·10⁹/hz⌉, epoch + ⌈(t+1)·10⁹/hz⌉)` ns, computed in 128-bit integers.
/// Boundaries fall on whole nanoseconds, so individual ticks differ by at most 1 ns in length, but
/// the rounding never accumulates: tick `k·hz` starts exactly `k` seconds after the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TickClock {
    epoch_ns: u64,
    hz: u64,
}

impl TickClock {
    /// Ticks at `tick_hz` (validated by [`Config::validate`]; 0 is treated as 1) from `epoch_ns`.
    pub fn new(epoch_ns: u64, tick_hz: u32) -> Self {
        Self { epoch_ns, hz: u64::from(tick_hz.max(1)) }
    }

    /// Where tick 0 starts.
    pub fn epoch_ns(&self) -> u64 {
        self.epoch_ns
    }

    /// The first nanosecond of `tick`, saturating at `u64::MAX`.
    pub fn start(&self, tick: u64) -> u64 {
        let hz = u128::from(self.hz);
        let offset = (u128::from(tick) * NS_PER_S).div_ceil(hz);
        u64::try_from(u128::from(self.epoch_ns) + offset).unwrap_or(u64::MAX)
    }

    /// The tick holding `ts_ns`, or `None` before the epoch.
    pub fn tick_of(&self, ts_ns: u64) -> Option<u64> {
        let since = ts_ns.checked_sub(self.epoch_ns)?;
        // Fits: hz ≤ 10⁹, so the tick count never exceeds the nanosecond count.
        Some(u64::try_from(u128::from(since) * u128::from(self.hz) / NS_PER_S).unwrap_or(u64::MAX))
    }

    /// The start of the tick holding `ts_ns` on the grid anchored at the clock's zero: the epoch
    /// [`Epoch::FirstInput`] derives, so runs on one clock share tick boundaries.
    pub fn aligned(ts_ns: u64, tick_hz: u32) -> u64 {
        let grid = Self::new(0, tick_hz);
        grid.tick_of(ts_ns).map_or(0, |tick| grid.start(tick))
    }
}

/// Counters kept by the ticker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct TickStats {
    pub(super) frames: u64,
    pub(super) empty_frames: u64,
    pub(super) inputs_ordered: u64,
    pub(super) late_dropped: u64,
    pub(super) late_next: u64,
    pub(super) late_by_client: BTreeMap<u32, u64>,
    pub(super) clock_jumps: u64,
    pub(super) ticks_skipped: u64,
    pub(super) far_future_dropped: u64,
}

impl TickStats {
    /// Adds another match's counters to these.
    pub(super) fn add(&mut self, other: &Self) {
        self.frames += other.frames;
        self.empty_frames += other.empty_frames;
        self.inputs_ordered += other.inputs_ordered;
        self.late_dropped += other.late_dropped;
        self.late_next += other.late_next;
        for (client, n) in &other.late_by_client {
            *self.late_by_client.entry(*client).or_default() += n;
        }
        self.clock_jumps += other.clock_jumps;
        self.ticks_skipped += other.ticks_skipped;
        self.far_future_dropped += other.far_future_dropped;
    }
}

/// The open ticks, from the oldest unsealed one on, and the hash chain of the sealed ones.
#[derive(Debug)]
pub(super) struct Ticker {
    tick_hz: u32,
    grace_ns: u64,
    late: Late,
    clock: Option<TickClock>,
    /// The oldest unsealed tick; `open[i]` holds tick `first_open + i`.
    first_open: u64,
    open: VecDeque<Bucket>,
    /// The watermark that seals `first_open`: its end plus the grace.
    seal_at: u64,
    /// `[start, end)` and number of the tick last looked up: inputs arrive in near time order,
    /// so this saves the 128-bit division for almost every input.
    cached: (u64, u64, u64),
    chain: HashChain,
    stats: TickStats,
    new_epoch: Option<u64>,
    /// Buffers for the open ticks; `size_hint` is the previous frame's size, to skip regrowth.
    spares: Spares,
}

/// One open tick's inputs, whether they are still in frame order (they arrive in time order, so
/// sealing can usually skip a pass over the whole frame), and whether any is a session event
/// (without one, a match with no members has nothing to settle in the frame).
///
/// While the inputs stay in frame order, the tick's hash is computed as they arrive: once their
/// encoding passes chunk 0 of the hashed message, a [`Digest`] takes them, so that sealing the
/// tick does not encode and hash the whole frame.
#[derive(Debug)]
struct Bucket {
    inputs: Vec<Input>,
    sorted: bool,
    events: bool,
    /// Encoded bytes of the inputs, until a digest takes them.
    encoded: usize,
    digest: Option<Box<Digest>>,
    /// Inputs the digest has taken.
    digested: usize,
}

/// Inputs a digest takes at a time.
const DIGEST_BATCH: usize = 128;

impl Default for Bucket {
    fn default() -> Self {
        Self { inputs: Vec::new(), sorted: true, events: false, encoded: 0, digest: None, digested: 0 }
    }
}

/// What open ticks take from and give back to their ticker: frame buffers the game returned, the
/// size to reserve for a frame, and emptied digests.
#[derive(Debug, Default)]
struct Spares {
    pool: FramePool,
    size_hint: usize,
    /// Boxed as a bucket holds them: a digest (about 2 KiB before its buffers) moves between a
    /// bucket and here as a pointer.
    #[expect(
        clippy::vec_box,
        reason = "moved to and from a bucket's Option<Box<Digest>> without reallocating"
    )]
    digests: Vec<Box<Digest>>,
}

impl Bucket {
    #[inline]
    fn push(&mut self, input: Input, spares: &mut Spares) {
        self.events |= input.kind != InputKind::Command;
        match self.inputs.last() {
            Some(last) => self.sorted &= frame_order(last, &input).is_le(),
            None => {
                // A buffer the game gave back has its pages mapped already.
                if self.inputs.capacity() == 0
                    && let Some(reused) = spares.pool.take()
                {
                    self.inputs = reused;
                }
                self.inputs.reserve(spares.size_hint);
            }
        }
        self.inputs.push(input);
        if self.sorted {
            let undigested = &self.inputs[self.digested..];
            match &mut self.digest {
                // In batches: a tight loop over inputs still in cache.
                Some(digest) if undigested.len() >= DIGEST_BATCH => {
                    digest.push_all(undigested);
                    self.digested = self.inputs.len();
                }
                Some(_) => {}
                None => {
                    self.encoded += undigested.last().map_or(0, |input| ENCODED_HEAD + input.payload.len());
                    if self.encoded > digest::HEAD {
                        let mut digest = spares.digests.pop().unwrap_or_default();
                        digest.push_all(undigested);
                        self.digest = Some(digest);
                        self.digested = self.inputs.len();
                    }
                }
            }
        } else if let Some(digest) = self.digest.take() {
            spares.give_back(digest);
        }
    }

    /// Gives the digest, if the bucket kept one, the inputs it has not taken yet.
    fn complete_digest(&mut self) {
        if let Some(digest) = &mut self.digest {
            digest.push_all(&self.inputs[self.digested..]);
            self.digested = self.inputs.len();
        }
    }
}

impl Spares {
    fn give_back(&mut self, mut digest: Box<Digest>) {
        digest.clear();
        self.digests.push(digest);
    }
}

impl Ticker {
    #[cfg(test)]
    pub(super) fn new(config: &Config) -> Self {
        Self::with_pool(config, FramePool::default())
    }

    /// A ticker whose frames take their buffers from `pool` when the game gives some back.
    pub(super) fn with_pool(config: &Config, pool: FramePool) -> Self {
        let mut ticker = Self {
            tick_hz: config.tick_hz,
            grace_ns: config.grace_ns(),
            late: config.late,
            clock: None,
            first_open: 0,
            open: VecDeque::new(),
            seal_at: u64::MAX,
            cached: (0, 0, 0),
            chain: HashChain::default(),
            stats: TickStats::default(),
            new_epoch: None,
            spares: Spares { pool, ..Spares::default() },
        };
        if let Epoch::At(epoch) = config.epoch {
            ticker.start_clock(TickClock::new(epoch, config.tick_hz));
        }
        ticker
    }

    pub(super) fn epoch(&self) -> Option<u64> {
        self.clock.map(|clock| clock.epoch_ns())
    }

    /// The epoch, if the last [`place`](Self::place) fixed it.
    pub(super) fn take_new_epoch(&mut self) -> Option<u64> {
        self.new_epoch.take()
    }

    pub(super) fn stats(&self) -> &TickStats {
        &self.stats
    }

    /// Puts a released input in its tick, or applies the late policy if that tick is sealed (or
    /// lies before the epoch).
    #[inline]
    pub(super) fn place(&mut self, input: Input) {
        if self.clock.is_none() {
            let epoch = TickClock::aligned(input.rx.ns, self.tick_hz);
            self.start_clock(TickClock::new(epoch, self.tick_hz));
            self.new_epoch = Some(epoch);
        }
        match self.tick_of(input.rx.ns) {
            Some(tick) if tick >= self.first_open.saturating_add(MAX_TICKS_AHEAD) => {
                self.stats.far_future_dropped += 1;
            }
            Some(tick) if tick >= self.first_open => {
                // Bounded: a released input is below the merged watermark, so every tick up to
                // its own is sealed by the next `advance` but the last grace + 1 ticks' worth.
                let index = (tick - self.first_open) as usize;
                if self.open.len() <= index {
                    self.open.resize_with(index + 1, Bucket::default);
                }
                self.open[index].push(input, &mut self.spares);
            }
            _ => self.place_late(input),
        }
    }

    /// Seals every tick whose end plus the grace is at or below `watermark`, oldest first.
    /// `on_seal` sees each frame as it is sealed, and whether it holds any input other than a
    /// command, and returns `true` to stop sealing (the match ended with that frame).
    pub(super) fn advance(
        &mut self,
        watermark: u64,
        out: &mut VecDeque<Frame>,
        on_seal: &mut impl FnMut(&mut Frame, &Self, bool) -> bool,
    ) -> bool {
        if let Some(clock) = self.clock
            && self.seal_at != u64::MAX
            && watermark >= self.seal_at
            && let Some(target) = clock.tick_of(watermark.saturating_sub(self.grace_ns))
            && target > self.first_open.saturating_add(MAX_TICKS_AHEAD)
        {
            // A step in time: seal what is open, then resume just below the watermark's tick.
            while !self.open.is_empty() {
                if self.seal_first(out, on_seal) {
                    return true;
                }
            }
            let resume = target.saturating_sub(1).max(self.first_open);
            self.stats.clock_jumps += 1;
            self.stats.ticks_skipped += resume - self.first_open;
            self.first_open = resume;
            self.seal_at = clock.start(resume.saturating_add(1)).saturating_add(self.grace_ns);
        }
        // `seal_at` saturates at u64::MAX for a tick that never ends within the clock's range.
        while self.clock.is_some() && self.seal_at != u64::MAX && watermark >= self.seal_at {
            if self.seal_first(out, on_seal) {
                return true;
            }
        }
        false
    }

    /// Every queue is closed: seals every open tick. The newest one holds an input (a bucket is
    /// only created to hold one), so frames end at the last tick with an input.
    pub(super) fn finish(
        &mut self,
        out: &mut VecDeque<Frame>,
        on_seal: &mut impl FnMut(&mut Frame, &Self, bool) -> bool,
    ) {
        while !self.open.is_empty() {
            if self.seal_first(out, on_seal) {
                return;
            }
        }
    }

    /// The watermark that seals the oldest open tick (`u64::MAX` before the epoch is known).
    pub(super) fn seal_at(&self) -> u64 {
        if self.clock.is_some() { self.seal_at } else { u64::MAX }
    }

    /// The match's tick rate.
    pub(super) fn tick_hz(&self) -> u32 {
        self.tick_hz
    }

    /// When `tick` starts (0 before the epoch is known).
    pub(super) fn tick_start(&self, tick: u64) -> u64 {
        self.clock.map_or(0, |clock| clock.start(tick))
    }

    /// Inputs in ticks not sealed yet.
    pub(super) fn open_inputs(&self) -> usize {
        self.open.iter().map(|bucket| bucket.inputs.len()).sum()
    }

    /// Whether a tick not sealed yet holds an input.
    pub(super) fn holds_inputs(&self) -> bool {
        self.open.iter().any(|bucket| !bucket.inputs.is_empty())
    }

    fn start_clock(&mut self, clock: TickClock) {
        self.clock = Some(clock);
        self.first_open = 0;
        self.seal_at = clock.start(1).saturating_add(self.grace_ns);
        self.cached = (clock.start(0), clock.start(1), 0);
    }

    #[inline]
    fn tick_of(&mut self, ts: u64) -> Option<u64> {
        let (start, end, tick) = self.cached;
        if start <= ts && ts < end {
            return Some(tick);
        }
        let clock = self.clock?;
        let tick = clock.tick_of(ts)?;
        self.cached = (clock.start(tick), clock.start(tick.saturating_add(1)), tick);
        Some(tick)
    }

    fn place_late(&mut self, input: Input) {
        *self.stats.late_by_client.entry(input.client_id).or_default() += 1;
        match self.late {
            Late::Drop => self.stats.late_dropped += 1,
            Late::Next => {
                self.stats.late_next += 1;
                if self.open.is_empty() {
                    self.open.push_back(Bucket::default());
                }
                self.open[0].push(input, &mut self.spares);
            }
        }
    }

    /// Seals the oldest open tick; `true` if `on_seal` says the match ended with it.
    fn seal_first(
        &mut self,
        out: &mut VecDeque<Frame>,
        on_seal: &mut impl FnMut(&mut Frame, &Self, bool) -> bool,
    ) -> bool {
        let Some(clock) = self.clock else { return false };
        let mut bucket = self.open.pop_front().unwrap_or_default();
        bucket.complete_digest();
        let Bucket { inputs, sorted, events, mut digest, .. } = bucket;
        let mut frame = self.chain.seal(self.first_open, inputs, sorted, digest.as_deref_mut());
        if let Some(digest) = digest {
            self.spares.give_back(digest);
        }
        let len = frame.inputs.len();
        self.stats.frames += 1;
        self.stats.empty_frames += u64::from(len == 0);
        self.stats.inputs_ordered += len as u64;
        if len > 0 {
            self.spares.size_hint = len;
        }
        self.first_open += 1;
        self.seal_at = clock.start(self.first_open.saturating_add(1)).saturating_add(self.grace_ns);
        let ended = on_seal(&mut frame, self, events);
        out.push_back(frame);
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_exact_for_rates_that_do_not_divide_a_second() {
        let clock = TickClock::new(1_000, 60);
        assert_eq!(clock.start(0), 1_000);
        assert_eq!(clock.start(1), 1_000 + 16_666_667);
        assert_eq!(clock.start(2), 1_000 + 33_333_334);
        assert_eq!(clock.start(3), 1_000 + 50_000_000);
        assert_eq!(clock.start(60 * 3_600), 1_000 + 3_600_000_000_000, "no drift after an hour");
        for tick in [0, 1, 2, 59, 60, 61, 1_000_003] {
            assert_eq!(clock.tick_of(clock.start(tick)), Some(tick));
            assert_eq!(clock.tick_of(clock.start(tick + 1) - 1), Some(tick));
        }
        assert_eq!(clock.tick_of(999), None);
        assert_eq!(TickClock::new(0, 7).start(u64::MAX), u64::MAX, "saturates");
    }

    #[test]
    fn alignment_puts_the_epoch_on_the_grid() {
        assert_eq!(TickClock::aligned(16_666_667, 60), 16_666_667);
        assert_eq!(TickClock::aligned(16_666_666, 60), 0);
        assert_eq!(TickClock::aligned(1_999_999_999, 1), 1_000_000_000);
        assert_eq!(TickClock::aligned(5, 1_000_000_000), 5);
    }

    #[test]
    fn the_cache_never_changes_the_answer() {
        let config = Config { tick_hz: 7, epoch: Epoch::At(3), ..Config::default() };
        let mut ticker = Ticker::new(&config);
        let clock = TickClock::new(3, 7);
        for ts in [3, 500_000_000, 142_857_145, 142_857_146, 2, 9_000_000_000, 142_857_145, u64::MAX] {
            assert_eq!(ticker.tick_of(ts), clock.tick_of(ts), "ts {ts}");
        }
    }
}
