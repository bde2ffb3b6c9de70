//! Bounded, lock-free SPSC hand-off from one RX-queue worker to the sequencer thread.
//!
//! The queue holds one slot more than its nominal capacity, and the producer never lets inputs
//! or watermarks use that slot: the final [`Item::Close`] therefore always fits, so closing never
//! blocks and never loses the close. The queue is crossbeam's `ArrayQueue`.
//!
//! The producer rings the sequencer's [`Doorbell`] so that an idle sequencer sleeps instead of
//! polling, once per batch rather than once per item, and only when the batch can matter: a
//! watermark call [`offer`](Doorbell::offer)s the newest time pushed since the last ring, which
//! wakes the sequencer if it reaches the time the sequencer parked for (its next seal deadline,
//! or its bound on unread inputs); the close and every `capacity / 4`-th item pushed without a
//! ring wake it whatever their time. A worker calls [`Producer::publish_watermark`] after every
//! drained batch, so nothing it pushes waits longer than the sequencer allows.

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use super::{Doorbell, Item};
use crate::input::Input;

/// The smallest advance worth a watermark: far below any tick grace, far above the cost of one
/// queue slot per spin of a busy-polling worker.
pub const WATERMARK_STEP_NS: u64 = 10_000;

/// Creates a hand-off queue that holds up to `capacity` inputs and watermarks (at least 1) and
/// rings `bell` on every push.
pub fn channel(capacity: usize, bell: &Arc<Doorbell>) -> (Producer, Consumer) {
    let capacity = capacity.max(1);
    let queue = Arc::new(ArrayQueue::new(capacity + 1));
    let producer = Producer {
        queue: Arc::clone(&queue),
        bell: Arc::clone(bell),
        capacity,
        room: capacity,
        last_watermark: None,
        handoff_full: 0,
        watermarks_dropped: 0,
        closed: false,
        unrung: 0,
        unrung_up_to: 0,
    };
    (producer, Consumer { queue, finished: false })
}

/// The worker's end. Never blocks: a full queue rejects the item and the rejection is counted.
#[derive(Debug)]
pub struct Producer {
    queue: Arc<ArrayQueue<Item>>,
    bell: Arc<Doorbell>,
    capacity: usize,
    /// A lower bound on the free slots (the consumer only ever frees more), so the shared head
    /// index is read once per `capacity` pushes rather than on every push.
    room: usize,
    last_watermark: Option<u64>,
    handoff_full: u64,
    watermarks_dropped: u64,
    closed: bool,
    /// Items pushed since the last ring of the doorbell.
    unrung: usize,
    /// The newest input stamp or watermark among them.
    unrung_up_to: u64,
}

impl Producer {
    /// Hands an input to the sequencer, or gives it back if the queue is full (counted in
    /// [`handoff_full`](Self::handoff_full); the caller drops it under that reason).
    pub fn try_push_input(&mut self, input: Input) -> Result<(), Input> {
        let stamp = input.rx.ns;
        if !self.reserve() {
            self.handoff_full += 1;
            return Err(input);
        }
        // Only fails if `room` were wrong; that costs the input, never the close slot.
        if let Err(rejected) = self.queue.push(Item::Input(input)) {
            self.handoff_full += 1;
            if let Item::Input(input) = rejected {
                return Err(input);
            }
        }
        // A watermark or the close rings for it; only a queue filling up needs the sequencer
        // now. Counted here, so the hot path reads no shared index for it.
        self.unrung += 1;
        self.unrung_up_to = self.unrung_up_to.max(stamp);
        if self.unrung >= (self.capacity / 4).max(1) {
            self.ring();
        }
        Ok(())
    }

    /// Promises that this queue will deliver no input with `rx_ts_ns < watermark` from now on.
    ///
    /// Watermarks less than [`WATERMARK_STEP_NS`] above the last published one are coalesced
    /// away, and one that would fill the queue past half is dropped (counted in
    /// [`watermarks_dropped`](Self::watermarks_dropped)): both are harmless because a later
    /// watermark supersedes it, and they keep a busy-polling worker, which publishes on every
    /// empty spin, from filling the queue with watermarks and starving its own inputs.
    ///
    /// Inputs pushed since the last ring are offered to the sequencer here, whether or not the
    /// watermark itself goes into the queue; they stay unrung (and counted toward the quarter
    /// queue that forces a ring) if the sequencer is parked for a later time.
    pub fn publish_watermark(&mut self, watermark: u64) {
        self.push_watermark(watermark);
        if self.unrung > 0 && self.bell.offer(self.unrung_up_to) {
            self.unrung = 0;
            self.unrung_up_to = 0;
        }
    }

    fn push_watermark(&mut self, watermark: u64) {
        if self.last_watermark.is_some_and(|last| watermark < last.saturating_add(WATERMARK_STEP_NS)) {
            return;
        }
        if self.queue.len() >= self.capacity / 2 {
            self.watermarks_dropped += 1;
            return;
        }
        if self.reserve() && self.queue.push(Item::Watermark(watermark)).is_ok() {
            self.last_watermark = Some(watermark);
            self.unrung += 1;
            self.unrung_up_to = self.unrung_up_to.max(watermark);
        } else {
            self.watermarks_dropped += 1;
        }
    }

    fn ring(&mut self) {
        self.unrung = 0;
        self.unrung_up_to = 0;
        self.bell.ring();
    }

    /// Finishes the stream: once drained, the sequencer treats this queue as a watermark of +∞.
    /// Dropping the producer does the same.
    pub fn close(mut self) {
        self.finish();
    }

    /// Inputs rejected because the queue was full.
    pub fn handoff_full(&self) -> u64 {
        self.handoff_full
    }

    /// Watermarks dropped because the queue was full.
    pub fn watermarks_dropped(&self) -> u64 {
        self.watermarks_dropped
    }

    /// How many inputs and watermarks the queue holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn reserve(&mut self) -> bool {
        if self.room == 0 {
            self.room = self.capacity.saturating_sub(self.queue.len());
            if self.room == 0 {
                return false;
            }
        }
        self.room -= 1;
        true
    }

    fn finish(&mut self) {
        if !self.closed {
            self.closed = true;
            // Cannot fail: inputs and watermarks never occupy the last slot.
            let pushed = self.queue.push(Item::Close).is_ok();
            debug_assert!(pushed, "the close slot was taken");
            self.ring();
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The sequencer's end.
#[derive(Debug)]
pub struct Consumer {
    queue: Arc<ArrayQueue<Item>>,
    finished: bool,
}

impl Consumer {
    /// The next item, if one is ready. After the close has been returned, always `None`.
    pub fn pop(&mut self) -> Option<Item> {
        if self.finished {
            return None;
        }
        let item = self.queue.pop()?;
        self.finished = matches!(item, Item::Close);
        Some(item)
    }

    /// Whether an item is waiting.
    pub fn has_items(&self) -> bool {
        !self.finished && !self.queue.is_empty()
    }

    /// Whether the close has been popped: the producer is gone and everything it sent was read.
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{Clock, Timestamp};

    fn input(ts: u64) -> Input {
        Input {
            kind: crate::input::InputKind::Command,
            rx: Timestamp { ns: ts, clock: Clock::Xdp },
            queue: 0,
            client_id: 1,
            match_id: 0,
            seq: ts,
            client_frame: 0,
            payload: Default::default(),
        }
    }

    const S: u64 = WATERMARK_STEP_NS;

    fn bell() -> Arc<Doorbell> {
        Arc::default()
    }

    #[test]
    fn full_queue_rejects_and_counts_but_close_still_fits() {
        let (mut p, mut c) = channel(2, &bell());
        assert_eq!(p.try_push_input(input(1)), Ok(()));
        assert_eq!(p.try_push_input(input(2)), Ok(()));
        assert_eq!(p.try_push_input(input(6)), Err(input(6)));
        p.publish_watermark(7 * S);
        assert_eq!((p.handoff_full(), p.watermarks_dropped()), (1, 1));
        p.close();
        assert_eq!(c.pop(), Some(Item::Input(input(1))));
        assert_eq!(c.pop(), Some(Item::Input(input(2))));
        assert_eq!(c.pop(), Some(Item::Close));
        assert!(c.is_finished());
        assert_eq!(c.pop(), None);
    }

    #[test]
    fn watermarks_never_take_the_room_inputs_need() {
        let (mut p, mut c) = channel(4, &bell());
        for w in 1..=100 {
            p.publish_watermark(w * S);
        }
        // At most half the queue went to watermarks; the other half is still there for inputs.
        assert_eq!(p.watermarks_dropped(), 98);
        assert_eq!(p.try_push_input(input(1)), Ok(()));
        assert_eq!(p.try_push_input(input(2)), Ok(()));
        assert_eq!(p.handoff_full(), 0);
        drop(p);
        let got: Vec<_> = std::iter::from_fn(|| c.pop()).collect();
        assert_eq!(
            got,
            vec![
                Item::Watermark(S),
                Item::Watermark(2 * S),
                Item::Input(input(1)),
                Item::Input(input(2)),
                Item::Close
            ]
        );
    }

    #[test]
    fn room_is_refreshed_after_the_consumer_drains() {
        let (mut p, mut c) = channel(3, &bell());
        for round in 0..10u64 {
            for i in 0..3 {
                assert_eq!(p.try_push_input(input(round * 3 + i)), Ok(()), "round {round}");
            }
            assert!(p.try_push_input(input(999)).is_err());
            for i in 0..3 {
                assert_eq!(c.pop(), Some(Item::Input(input(round * 3 + i))));
            }
        }
        assert_eq!(p.handoff_full(), 10);
    }

    #[test]
    fn watermarks_coalesce_to_steps_of_at_least_watermark_step() {
        let (mut p, mut c) = channel(16, &bell());
        for w in [10 * S, 10 * S, 5 * S, 10 * S + 1, 11 * S - 1, 11 * S, 20 * S] {
            p.publish_watermark(w);
        }
        drop(p);
        let got: Vec<_> = std::iter::from_fn(|| c.pop()).collect();
        assert_eq!(
            got,
            vec![Item::Watermark(10 * S), Item::Watermark(11 * S), Item::Watermark(20 * S), Item::Close]
        );
    }

    #[test]
    fn a_dropped_watermark_can_be_retried() {
        let (mut p, mut c) = channel(2, &bell());
        assert_eq!(p.try_push_input(input(1)), Ok(()));
        p.publish_watermark(4 * S);
        assert_eq!(p.watermarks_dropped(), 1);
        assert_eq!(c.pop(), Some(Item::Input(input(1))));
        p.publish_watermark(4 * S);
        assert_eq!(c.pop(), Some(Item::Watermark(4 * S)));
        assert_eq!(p.watermarks_dropped(), 1);
    }

    #[test]
    fn items_cross_threads_in_order() {
        let (mut p, mut c) = channel(16, &bell());
        let worker = std::thread::spawn(move || {
            let mut rejected = 0u64;
            for ts in 0..10_000u64 {
                let mut item = input(ts);
                while let Err(back) = p.try_push_input(item) {
                    rejected += 1;
                    item = back;
                    std::thread::yield_now();
                }
            }
            assert_eq!(p.handoff_full(), rejected);
        });
        let mut next = 0u64;
        while !c.is_finished() {
            match c.pop() {
                Some(Item::Input(i)) => {
                    assert_eq!(i.rx.ns, next);
                    next += 1;
                }
                Some(other) => assert_eq!(other, Item::Close),
                None => std::thread::yield_now(),
            }
        }
        assert_eq!(next, 10_000);
        worker.join().expect("worker thread panicked");
    }
}
