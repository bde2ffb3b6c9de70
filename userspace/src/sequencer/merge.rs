//! The deterministic merge of per-queue streams, driven synchronously one item at a time.
//!
//! Each queue ("lane") has a *floor*: the highest of its inputs' order timestamps and its
//! watermarks. An input's order timestamp is `max(rx_ts_ns, floor)`, so every lane's stream is
//! non-decreasing even when a worker breaks its watermark promise. Inputs leave in
//! `(order_ts, slot, arrival on that slot)` order, and only once every open lane's bound (its
//! oldest pending order timestamp, or its floor when it has nothing pending) is past them: no
//! queue can later deliver anything that would sort earlier. A closed, drained lane has no bound.
//!
//! An input below its lane's floor is counted (`out_of_order`) and ordered *at* the floor, but its
//! `rx_ts_ns` is kept: the frame queue assigns its tick from the real arrival time, so a straggler
//! within the grace window still lands in its own tick and one beyond it is handled by the late
//! policy. Only a clock mismatch rewrites `rx_ts_ns` (see [`Merge::push`]).

use std::collections::VecDeque;

use serde::Serialize;

use super::{Item, SequencerError};
use crate::input::Clock;
use crate::input::Input;

/// How far the merged stream is known to be complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frontier {
    /// Nothing with an order timestamp below this can still be released.
    At(u64),
    /// Every queue is closed and drained.
    End,
}

/// An input leaving the merge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Released {
    /// The merge key's timestamp, `max(rx_ts_ns, the queue's floor on arrival)`; non-decreasing.
    pub order_ts: u64,
    /// The hand-off queue the input came through.
    pub slot: usize,
    /// The input, restamped only if it came in the other clock.
    pub input: Input,
}

/// What the merge had to correct, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MergeStats {
    /// Inputs that arrived below their queue's floor (its previous input or watermark).
    pub out_of_order: u64,
    /// Of those, inputs below their queue's previous input: the queue's own stream stepped back
    /// (possible in skb mode, where two CPUs can feed one socket). The rest arrived behind a
    /// watermark their queue had published: a stamped packet took longer than the worker's
    /// watermark slack to reach the ring.
    pub backwards: u64,
    /// Inputs stamped by the other clock, restamped to their queue's floor.
    pub restamped_clock: u64,
    /// Inputs stamped by the other clock on a queue with no floor yet: there was no base-clock
    /// time to give them, so they were dropped.
    pub dropped_no_floor: u64,
}

#[derive(Debug, Default)]
struct Lane {
    /// Inputs waiting, as they will leave (the slot is the lane's own).
    pending: VecDeque<Released>,
    floor: u64,
    /// The largest base-clock timestamp of an input seen on this lane.
    last_input: u64,
    /// Whether `floor` came from an item: a fresh lane has no time to restamp with.
    seen: bool,
    closed: bool,
}

/// A lane's bound and slot packed so that one integer comparison orders by `(bound, slot)`.
type Key = u128;
/// The key of a closed, drained lane: above every real key.
const NO_BOUND: Key = Key::MAX;

#[inline]
fn key(bound: u64, slot: usize) -> Key {
    (Key::from(bound) << 32) | slot as Key
}

fn key_bound(key: Key) -> u64 {
    (key >> 32) as u64
}

fn key_slot(key: Key) -> usize {
    (key & 0xffff_ffff) as usize
}

impl Lane {
    /// The lowest order timestamp this lane may still release, as a key; [`NO_BOUND`] once
    /// closed and drained.
    #[inline]
    fn key(&self, slot: usize) -> Key {
        match self.pending.front() {
            Some(released) => key(released.order_ts, slot),
            None if self.closed => NO_BOUND,
            None => key(self.floor, slot),
        }
    }
}

/// Applies the clock and floor rules to an input arriving on `lane`, restamping it in place if it
/// came in the other clock: its order timestamp, or `None` if it is dropped. (By reference: the
/// input is moved once, into its lane or out of the merge.)
#[inline]
fn admit(lane: &mut Lane, stats: &mut MergeStats, base: Clock, input: &mut Input) -> Option<u64> {
    let order_ts = if input.rx.clock.domain() != base.domain() {
        if !lane.seen {
            stats.dropped_no_floor += 1;
            return None;
        }
        stats.restamped_clock += 1;
        input.rx.ns = lane.floor;
        input.rx.clock = base;
        lane.floor
    } else if lane.seen && input.rx.ns < lane.floor {
        stats.out_of_order += 1;
        if input.rx.ns < lane.last_input {
            stats.backwards += 1;
        }
        lane.last_input = lane.last_input.max(input.rx.ns);
        lane.floor
    } else {
        lane.last_input = lane.last_input.max(input.rx.ns);
        input.rx.ns
    };
    lane.floor = order_ts;
    lane.seen = true;
    Some(order_ts)
}

/// The lanes' keys in a winner tree: every node holds the smallest key below it, so the
/// minimum is the root and a key change replays one leaf-to-root path, log2(queues) comparisons,
/// instead of a scan of every lane per released input (RSS interleaves queues input by input, so
/// the 8- to 64-queue merge releases about one input per minimum it looks up).
///
/// Leaves are `width + slot` (`width` the queue count rounded up to a power of two, the unused
/// leaves at [`NO_BOUND`]), internal nodes `1..width`, the root `1`; with one queue the leaf is
/// the root.
#[derive(Debug)]
struct Tournament {
    width: usize,
    nodes: Vec<Key>,
}

impl Tournament {
    fn new(keys: impl ExactSizeIterator<Item = Key>) -> Self {
        let width = keys.len().max(1).next_power_of_two();
        let mut nodes = vec![NO_BOUND; 2 * width];
        for (slot, key) in keys.enumerate() {
            nodes[width + slot] = key;
        }
        for node in (1..width).rev() {
            nodes[node] = nodes[2 * node].min(nodes[2 * node + 1]);
        }
        Self { width, nodes }
    }

    /// The smallest key.
    #[inline]
    fn best(&self) -> Key {
        self.nodes[1]
    }

    #[inline]
    fn get(&self, slot: usize) -> Key {
        self.nodes[self.width + slot]
    }

    /// Sets `slot`'s key and replays its path, up to the first node whose minimum is unchanged.
    /// The path's minimum is carried along rather than read back from the node just stored: the
    /// version that read it back merged 8 queues 15 % slower (a store-forwarding stall per level,
    /// most likely; this machine has no counters to show it).
    #[inline]
    fn set(&mut self, slot: usize, key: Key) {
        let mut node = self.width + slot;
        let mut min = key;
        self.nodes[node] = key;
        while node > 1 {
            min = min.min(self.nodes[node ^ 1]);
            node /= 2;
            if self.nodes[node] == min {
                break;
            }
            self.nodes[node] = min;
        }
    }

    /// The smallest key other than [`best`](Self::best)'s lane's: the minimum of the subtrees
    /// beside the winner's path.
    #[inline]
    fn runner_up(&self) -> Key {
        let best = self.best();
        if best == NO_BOUND {
            return NO_BOUND;
        }
        let mut node = self.width + key_slot(best);
        let mut runner_up = NO_BOUND;
        while node > 1 {
            runner_up = runner_up.min(self.nodes[node ^ 1]);
            node /= 2;
        }
        runner_up
    }
}

/// The k-way merge. Feed it with [`push`](Self::push), take inputs out with
/// [`release`](Self::release) or [`next_released`](Self::next_released).
#[derive(Debug)]
pub struct Merge {
    base: Clock,
    lanes: Vec<Lane>,
    /// Leaf `slot` mirrors `lanes[slot].key(slot)`.
    keys: Tournament,
    /// Whether a lane's key changed (or an empty lane got an input) since the last release:
    /// if not, nothing can be released and the frontier has not moved.
    dirty: bool,
    /// The frontier as of the last release, valid while not dirty.
    frontier: Frontier,
    /// The smallest key other than the minimum's, as of the last release, valid while not dirty.
    runner_up: Key,
    pending: usize,
    stats: MergeStats,
}

impl Merge {
    /// A merge of `queues` hand-off queues, comparing timestamps in `base`.
    pub fn new(queues: usize, base: Clock) -> Self {
        let lanes: Vec<Lane> = (0..queues).map(|_| Lane::default()).collect();
        let keys = Tournament::new(lanes.iter().enumerate().map(|(slot, lane)| lane.key(slot)));
        Self {
            base,
            lanes,
            keys,
            dirty: true,
            frontier: Frontier::End,
            runner_up: NO_BOUND,
            pending: 0,
            stats: MergeStats::default(),
        }
    }

    /// How many hand-off queues this merge has.
    pub fn queues(&self) -> usize {
        self.lanes.len()
    }

    /// The clock all timestamps are compared in.
    pub fn time_base(&self) -> Clock {
        self.base
    }

    /// Corrections made so far.
    pub fn stats(&self) -> MergeStats {
        self.stats
    }

    /// Inputs accepted but not yet released.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// A queue's floor, once it has delivered anything.
    pub fn floor(&self, slot: usize) -> Option<u64> {
        self.lanes.get(slot).filter(|lane| lane.seen).map(|lane| lane.floor)
    }

    /// Whether applying `item` to `slot` would leave the merge unchanged: a watermark not above
    /// the floor, or a watermark or close after the close. The recorder skips these.
    #[inline]
    pub fn is_noop(&self, slot: usize, item: &Item) -> Result<bool, SequencerError> {
        let lane = self.lane(slot)?;
        match item {
            Item::Input(_) if lane.closed => Err(SequencerError::Closed { slot }),
            Item::Input(_) => Ok(false),
            Item::Watermark(w) => Ok(lane.closed || (lane.seen && *w <= lane.floor)),
            Item::Close => Ok(lane.closed),
        }
    }

    /// Applies one item from queue `slot`.
    ///
    /// An input stamped by a clock other than the time base cannot be compared with anything, so
    /// it is restamped to its queue's floor in the base clock (`ts_source` becomes the base) and
    /// counted; with no floor yet it is dropped and counted. An input below the floor is counted
    /// as out of order and ordered at the floor.
    #[inline]
    pub fn push(&mut self, slot: usize, item: Item) -> Result<(), SequencerError> {
        let queues = self.lanes.len();
        let lane = self.lanes.get_mut(slot).ok_or(SequencerError::UnknownQueue { slot, queues })?;
        match item {
            Item::Input(_) if lane.closed => return Err(SequencerError::Closed { slot }),
            Item::Input(mut input) => {
                let Some(order_ts) = admit(lane, &mut self.stats, self.base, &mut input) else {
                    return Ok(());
                };
                lane.pending.push_back(Released { order_ts, slot, input });
                self.pending += 1;
            }
            Item::Watermark(w) => {
                if !lane.closed && (!lane.seen || w > lane.floor) {
                    lane.floor = w;
                    lane.seen = true;
                }
            }
            Item::Close => lane.closed = true,
        }
        // Only a lane with nothing pending shows its floor or close; a busy lane's key is its
        // head, which a push never changes.
        if lane.pending.len() <= 1 {
            self.keys.set(slot, lane.key(slot));
            self.dirty = true;
        }
        Ok(())
    }

    /// [`push`](Self::push) then [`release`](Self::release), without queueing an input that
    /// can go at once: one that arrives on the queue everything was waiting for and sorts before
    /// every other queue's bound (always the case with a single queue).
    pub fn push_release(
        &mut self,
        slot: usize,
        item: Item,
        mut sink: impl FnMut(Released),
    ) -> Result<(), SequencerError> {
        let Item::Input(mut input) = item else {
            self.push(slot, item)?;
            self.release(sink);
            return Ok(());
        };
        let settled = !self.dirty;
        let queues = self.lanes.len();
        let lane = self.lanes.get_mut(slot).ok_or(SequencerError::UnknownQueue { slot, queues })?;
        if lane.closed {
            return Err(SequencerError::Closed { slot });
        }
        // Settled with this lane empty and its key the minimum: it is the lane holding the rest.
        if settled && lane.pending.is_empty() && self.keys.get(slot) < self.runner_up {
            if let Some(order_ts) = admit(lane, &mut self.stats, self.base, &mut input) {
                if key(order_ts, slot) < self.runner_up {
                    self.keys.set(slot, key(order_ts, slot));
                    self.frontier = Frontier::At(order_ts);
                    sink(Released { order_ts, slot, input });
                } else {
                    lane.pending.push_back(Released { order_ts, slot, input });
                    self.pending += 1;
                    self.keys.set(slot, lane.key(slot));
                    self.dirty = true;
                }
            }
        } else {
            self.push(slot, Item::Input(input))?;
        }
        self.release(sink);
        Ok(())
    }

    /// Hands every input that can be released, in merge order, to `sink`.
    pub fn release(&mut self, mut sink: impl FnMut(Released)) {
        while let Some(released) = self.next_released() {
            sink(released);
        }
    }

    /// The next input that can be released, in merge order; `None` once nothing can (until the
    /// next push). A loop over it is [`release`](Self::release). The pipeline pulls its inputs
    /// with it rather than handing `release` a closure: each input then goes from its lane to
    /// its frame without a call in between (`docs/benchmarks.md`, "Pulled from the merge").
    #[inline(always)]
    pub fn next_released(&mut self) -> Option<Released> {
        if !self.dirty {
            return None;
        }
        let best = self.keys.best();
        let slot = key_slot(best);
        // Stop when every lane is drained and closed, or when the minimum is an open lane with
        // nothing pending: it may still deliver at its floor.
        let Some(lane) = self.lanes.get_mut(slot).filter(|lane| !lane.pending.is_empty()) else {
            self.frontier = if best == NO_BOUND { Frontier::End } else { Frontier::At(key_bound(best)) };
            self.runner_up = self.keys.runner_up();
            self.dirty = false;
            return None;
        };
        // The minimum's head goes, and its lane's next key replays its path: the next call
        // finds whether the same lane still holds the minimum (no runner-up walk per input: with
        // queues interleaved input by input, the minimum moves at nearly every release).
        let released = lane.pending.pop_front();
        self.pending -= 1;
        self.keys.set(slot, lane.key(slot));
        released
    }

    /// The minimum bound over the queues: after [`release`](Self::release), every input with an
    /// order timestamp below it has been released.
    pub fn frontier(&self) -> Frontier {
        if !self.dirty {
            return self.frontier;
        }
        match self.keys.best() {
            NO_BOUND => Frontier::End,
            best => Frontier::At(key_bound(best)),
        }
    }

    fn lane(&self, slot: usize) -> Result<&Lane, SequencerError> {
        self.lanes.get(slot).ok_or(SequencerError::UnknownQueue { slot, queues: self.lanes.len() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{Clock, Timestamp};

    fn input(ts: u64, client: u32) -> Input {
        Input {
            kind: crate::input::InputKind::Command,
            rx: Timestamp { ns: ts, clock: Clock::Xdp },
            queue: 0,
            client_id: client,
            match_id: 0,
            seq: ts,
            client_frame: 0,
            payload: Default::default(),
        }
    }

    fn drain(merge: &mut Merge) -> Vec<(u64, usize, u64)> {
        let mut out = vec![];
        merge.release(|r| out.push((r.order_ts, r.slot, r.input.rx.ns)));
        out
    }

    fn feed(merge: &mut Merge, slot: usize, item: Item) {
        merge.push(slot, item).expect("valid slot");
    }

    #[test]
    fn holds_until_every_open_queue_has_shown_progress() {
        let mut m = Merge::new(2, Clock::Xdp);
        feed(&mut m, 0, Item::Input(input(10, 1)));
        feed(&mut m, 0, Item::Input(input(20, 1)));
        assert_eq!(drain(&mut m), vec![], "queue 1 has said nothing yet");
        assert_eq!(m.frontier(), Frontier::At(0));
        feed(&mut m, 1, Item::Watermark(15));
        assert_eq!(drain(&mut m), vec![(10, 0, 10)]);
        assert_eq!(m.frontier(), Frontier::At(15));
        feed(&mut m, 1, Item::Input(input(20, 2)));
        // Equal timestamps: slot 0 first; slot 1 may still deliver another 20, so it waits.
        assert_eq!(drain(&mut m), vec![(20, 0, 20)]);
        feed(&mut m, 0, Item::Close);
        assert_eq!(drain(&mut m), vec![(20, 1, 20)]);
        assert_eq!(m.frontier(), Frontier::At(20));
        feed(&mut m, 1, Item::Close);
        assert_eq!(m.frontier(), Frontier::End);
        assert_eq!(m.pending(), 0);
    }

    #[test]
    fn equal_floor_on_a_higher_slot_does_not_hold_a_lower_slot() {
        let mut m = Merge::new(2, Clock::Xdp);
        feed(&mut m, 1, Item::Watermark(20));
        feed(&mut m, 0, Item::Input(input(20, 1)));
        assert_eq!(drain(&mut m), vec![(20, 0, 20)]);
        let mut m = Merge::new(2, Clock::Xdp);
        feed(&mut m, 0, Item::Watermark(20));
        feed(&mut m, 1, Item::Input(input(20, 1)));
        assert_eq!(drain(&mut m), vec![], "slot 0 could still deliver a 20, which sorts first");
    }

    #[test]
    fn a_closed_queue_drains_its_pending_inputs_then_stops_holding() {
        let mut m = Merge::new(3, Clock::Xdp);
        feed(&mut m, 2, Item::Close);
        feed(&mut m, 0, Item::Input(input(5, 1)));
        feed(&mut m, 0, Item::Close);
        feed(&mut m, 1, Item::Watermark(3));
        assert_eq!(drain(&mut m), vec![]);
        feed(&mut m, 1, Item::Watermark(6));
        assert_eq!(drain(&mut m), vec![(5, 0, 5)]);
        assert_eq!(m.frontier(), Frontier::At(6), "only queue 1 is still open");
    }

    #[test]
    fn an_input_below_the_floor_is_counted_and_ordered_at_the_floor_keeping_its_timestamp() {
        let mut m = Merge::new(1, Clock::Xdp);
        feed(&mut m, 0, Item::Input(input(100, 1)));
        feed(&mut m, 0, Item::Watermark(150));
        feed(&mut m, 0, Item::Input(input(120, 2)));
        feed(&mut m, 0, Item::Input(input(90, 3)));
        assert_eq!(drain(&mut m), vec![(100, 0, 100), (150, 0, 120), (150, 0, 90)]);
        assert_eq!(m.stats().out_of_order, 2);
        // 120 is behind the watermark only; 90 is also behind the previous input (120).
        assert_eq!(m.stats().backwards, 1);
    }

    #[test]
    fn the_other_clock_is_restamped_to_the_floor_or_dropped_without_one() {
        let mut m = Merge::new(2, Clock::Xdp);
        let nic =
            |ts| Input { kind: crate::input::InputKind::Command, rx: Timestamp::nic(ts), ..input(ts, 7) };
        feed(&mut m, 0, Item::Input(nic(5)));
        feed(&mut m, 1, Item::Watermark(1_000));
        feed(&mut m, 1, Item::Input(nic(3)));
        feed(&mut m, 0, Item::Close);
        let mut out = vec![];
        m.release(|r| out.push(r.input));
        assert_eq!(
            out,
            vec![Input {
                kind: crate::input::InputKind::Command,
                rx: Timestamp { ns: 1_000, clock: Clock::Xdp },
                ..nic(3)
            }]
        );
        assert_eq!(
            m.stats(),
            MergeStats { out_of_order: 0, backwards: 0, restamped_clock: 1, dropped_no_floor: 1 }
        );
    }

    #[test]
    fn noop_detection_and_errors() {
        let mut m = Merge::new(1, Clock::Nic);
        assert_eq!(m.is_noop(0, &Item::Watermark(0)), Ok(false), "a first watermark sets the floor");
        feed(&mut m, 0, Item::Watermark(10));
        assert_eq!(m.is_noop(0, &Item::Watermark(10)), Ok(true));
        assert_eq!(m.is_noop(0, &Item::Watermark(11)), Ok(false));
        assert_eq!(m.is_noop(0, &Item::Close), Ok(false));
        assert_eq!(m.push(3, Item::Close), Err(SequencerError::UnknownQueue { slot: 3, queues: 1 }));
        feed(&mut m, 0, Item::Close);
        assert_eq!(m.is_noop(0, &Item::Close), Ok(true));
        assert_eq!(m.is_noop(0, &Item::Watermark(99)), Ok(true));
        let late = Item::Input(Input {
            kind: crate::input::InputKind::Command,
            rx: Timestamp::nic(1),
            ..input(1, 1)
        });
        assert_eq!(m.push(0, late), Err(SequencerError::Closed { slot: 0 }));
    }

    proptest::proptest! {
        /// The tree against a scan of the same keys, through arbitrary key changes (up and down,
        /// to and from `NO_BOUND`, ties on the bound) at widths that are and are not powers of two.
        #[test]
        fn the_tournament_keeps_the_minimum_and_the_runner_up_of_a_scan(
            queues in 1..=20usize,
            changes in proptest::collection::vec((0..20usize, proptest::option::of(0..6u64)), 0..200),
        ) {
            let mut keys: Vec<Key> = (0..queues).map(|slot| key(0, slot)).collect();
            let mut tree = Tournament::new(keys.iter().copied());
            for (slot, bound) in changes {
                let slot = slot % queues;
                keys[slot] = bound.map_or(NO_BOUND, |bound| key(bound, slot));
                tree.set(slot, keys[slot]);
                let mut sorted = keys.clone();
                sorted.sort_unstable();
                proptest::prop_assert_eq!(tree.best(), sorted[0]);
                proptest::prop_assert_eq!(tree.get(slot), keys[slot]);
                let runner_up = if sorted[0] == NO_BOUND { NO_BOUND } else { sorted.get(1).copied().unwrap_or(NO_BOUND) };
                proptest::prop_assert_eq!(tree.runner_up(), runner_up);
            }
        }
    }

    #[test]
    fn inputs_pulled_one_by_one_come_in_the_merge_order() {
        let items = [(0, 5), (1, 5), (2, 1), (0, 9), (1, 7), (2, 9), (0, 9)];
        let build = || {
            let mut m = Merge::new(3, Clock::Xdp);
            for (slot, ts) in items {
                feed(&mut m, slot, Item::Input(input(ts, slot as u32)));
            }
            for slot in 0..3 {
                feed(&mut m, slot, Item::Close);
            }
            m
        };
        let mut popped = vec![];
        let mut m = build();
        while let Some(r) = m.next_released() {
            popped.push((r.order_ts, r.slot, r.input.rx.ns));
        }
        assert_eq!(popped, drain(&mut build()));
        assert_eq!(popped, vec![(1, 2, 1), (5, 0, 5), (5, 1, 5), (7, 1, 7), (9, 0, 9), (9, 0, 9), (9, 2, 9)]);
    }
}
