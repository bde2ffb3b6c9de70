//! The threaded driver: the sequencer thread drains the hand-off queues into a [`Pipeline`], and
//! the game takes sealed frames from a [`FrameQueue`].
//!
//! The thread applies items in the order it pops them; that order is the only thing thread
//! timing decides, and the recorder logs exactly it, so a replay makes the same decisions.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
    mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError},
};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::{Config, ConfigError, Frame, FramePool, Pipeline, Recorder, Stats};
use crate::sequencer::{self, Consumer, Doorbell, Producer};

/// Items taken from one queue before looking at the next, so a busy queue cannot starve the
/// watermarks of the others.
const BATCH: usize = 256;
/// How long (in watermark time) a parked sequencer may leave inputs unread when no seal deadline
/// comes sooner: a new match's first input, or a game's start, is seen within about this.
const MAX_UNREAD_NS: u64 = 4_000_000;

/// The sequencer thread could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The OS refused the thread.
    #[error("cannot start the sequencer thread - check the process thread limit (ulimit -u)")]
    Thread(#[source] std::io::Error),
}

/// A running sequencer: hand one producer to each RX-queue worker, give the frames to the game.
#[derive(Debug)]
pub struct Running<R> {
    /// One per hand-off queue, in slot order. Dropping or closing all of them ends the run.
    pub producers: Vec<Producer>,
    /// Sealed frames, oldest first.
    pub frames: FrameQueue,
    /// The thread, to join for the counters and the recorder.
    pub sequencer: SequencerThread<R>,
}

/// What the sequencer thread hands back when every queue is closed.
#[derive(Debug)]
pub struct RunOutcome<R> {
    /// The final counters.
    pub stats: Stats,
    /// The recorder, to flush and check for a write error.
    pub recorder: R,
    /// Times a push woke the parked sequencer thread (it parks whenever every queue is empty).
    pub wakeups: u64,
}

/// Starts a sequencer thread over `queues` hand-off queues of `capacity` items each.
pub fn spawn<R: Recorder + Send + 'static>(
    config: &Config,
    queues: usize,
    capacity: usize,
    recorder: R,
) -> Result<Running<R>, SpawnError> {
    spawn_with_fanout(config, queues, capacity, recorder, None)
}

/// Where every sealed frame also goes, on the sequencer thread, before the game gets it: the
/// broadcast to the players (`broadcast::Fanout`).
pub trait FrameFanout: Send {
    /// One sealed frame.
    fn frame(&mut self, frame: &Frame);
    /// After each batch of sealed frames: wake whoever waits for them (once per batch).
    fn ring(&mut self);
}

/// [`spawn`], and every sealed frame also goes to `fanout` (the broadcast to the players).
pub fn spawn_with_fanout<R: Recorder + Send + 'static>(
    config: &Config,
    queues: usize,
    capacity: usize,
    recorder: R,
    fanout: Option<Box<dyn FrameFanout>>,
) -> Result<Running<R>, SpawnError> {
    let pipeline = Pipeline::with_recorder(config, queues, recorder)?;
    let pool = pipeline.pool();
    let bell = Arc::new(Doorbell::default());
    let (producers, consumers): (Vec<_>, Vec<_>) =
        (0..queues).map(|_| sequencer::channel(capacity, &bell)).unzip();
    let (tx, rx) = mpsc::sync_channel(FRAME_QUEUE_CAPACITY);
    let overflowed = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&overflowed);
    let handle = thread::Builder::new()
        .name("tickgate-seq".into())
        .spawn(move || run(pipeline, consumers, &bell, tx, &counter, fanout))
        .map_err(SpawnError::Thread)?;
    Ok(Running {
        producers,
        frames: FrameQueue { rx, finished: false, overflowed, pool },
        sequencer: SequencerThread { handle },
    })
}

fn run<R: Recorder>(
    mut pipeline: Pipeline<R>,
    mut consumers: Vec<Consumer>,
    bell: &Doorbell,
    frames: SyncSender<Frame>,
    overflowed: &AtomicU64,
    mut fanout: Option<Box<dyn FrameFanout>>,
) -> RunOutcome<R> {
    while !pipeline.is_finished() {
        let mut fed = 0usize;
        for (slot, consumer) in consumers.iter_mut().enumerate() {
            for _ in 0..BATCH {
                let Some(item) = consumer.pop() else { break };
                fed += 1;
                // Cannot fail: the slot exists and a consumer yields nothing after its close.
                let applied = pipeline.feed(slot, item);
                debug_assert!(applied.is_ok(), "{applied:?}");
            }
        }
        for frame in pipeline.drain_frames() {
            if let Some(fanout) = fanout.as_mut() {
                fanout.frame(&frame);
            }
            // A game that stopped taking frames never stalls the sequencer or grows its memory:
            // past the bound, frames are dropped and counted (the game sees the tick gap). A
            // game that is gone: the run still goes on so that the recorder sees every item.
            if let Err(TrySendError::Full(_)) = frames.try_send(frame) {
                overflowed.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(fanout) = fanout.as_mut() {
            fanout.ring();
        }
        if fed > 0 || pipeline.is_finished() {
            continue;
        }
        // Nothing to do until a worker pushes something that can seal a tick (or the inputs
        // have waited `MAX_UNREAD_NS`): only a push can release or seal anything.
        pipeline.recorder_mut().idle();
        bell.wait(pipeline.wake_at(MAX_UNREAD_NS), || consumers.iter().any(Consumer::has_items));
    }
    let mut stats = pipeline.stats();
    stats.frames_overflowed = overflowed.load(Ordering::Relaxed);
    RunOutcome { stats, recorder: pipeline.into_recorder(), wakeups: bell.rings() }
}

/// Frames the game's end holds before the sequencer drops new ones: 68 s at 60 Hz, 4 s at 1 kHz.
pub const FRAME_QUEUE_CAPACITY: usize = 4096;

/// The game's end: sealed frames in tick order, at most [`FRAME_QUEUE_CAPACITY`] waiting. A game
/// that falls that far behind loses the newest frames, counted ([`FrameQueue::overflowed`]) and
/// visible as a gap in the ticks; the sequencer never waits for it.
#[derive(Debug)]
pub struct FrameQueue {
    rx: Receiver<Frame>,
    finished: bool,
    overflowed: Arc<AtomicU64>,
    pool: FramePool,
}

impl FrameQueue {
    /// Frames dropped so far because the queue was full.
    pub fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// The next frame, waiting up to `timeout`; `None` on timeout or once the run has ended.
    pub fn next_frame(&mut self, timeout: Duration) -> Option<Frame> {
        match self.rx.recv_timeout(timeout) {
            Ok(frame) => Some(frame),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                self.finished = true;
                None
            }
        }
    }

    /// The next frame if one is ready.
    pub fn try_next_frame(&mut self) -> Option<Frame> {
        match self.rx.try_recv() {
            Ok(frame) => Some(frame),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.finished = true;
                None
            }
        }
    }

    /// Whether the run has ended and every frame has been taken.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Gives a frame's buffer back once the game is done with it: the sequencer fills it again
    /// instead of faulting in fresh pages (optional; a dropped frame is simply freed).
    pub fn recycle(&self, frame: Frame) {
        self.pool.put(frame.inputs);
    }
}

/// Blocks for each frame; ends when the run has ended and every frame has been taken.
impl Iterator for FrameQueue {
    type Item = Frame;

    fn next(&mut self) -> Option<Frame> {
        let frame = self.rx.recv().ok();
        self.finished = frame.is_none();
        frame
    }
}

/// The sequencer thread.
#[derive(Debug)]
pub struct SequencerThread<R> {
    handle: JoinHandle<RunOutcome<R>>,
}

impl<R> SequencerThread<R> {
    /// Waits for the run to end (every producer closed or dropped).
    pub fn join(self) -> thread::Result<RunOutcome<R>> {
        self.handle.join()
    }

    /// Whether the thread has ended.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame_queue::{Epoch, Late};
    use crate::input::{Clock, Input, InputKind, Timestamp};

    /// 1 ms ticks from time 0, no grace: a watermark or an input at `t` seals every tick that
    /// ends at or before `t`.
    fn one_ms_ticks() -> Config {
        Config { tick_hz: 1_000, grace_us: 0, late: Late::Drop, time_base: Clock::Nic, epoch: Epoch::At(0) }
    }

    fn input(ns: u64, queue: u16, seq: u64) -> Input {
        Input {
            kind: InputKind::Command,
            rx: Timestamp { ns, clock: Clock::Nic },
            queue,
            client_id: u32::from(queue),
            match_id: 0,
            seq,
            client_frame: 0,
            payload: Default::default(),
        }
    }

    #[test]
    fn frames_flow_from_producer_threads_to_the_blocking_consumer() {
        let config = one_ms_ticks();
        let mut running = spawn(&config, 2, 4, ()).expect("spawn");
        assert_eq!(running.frames.try_next_frame(), None);
        let workers: Vec<_> = running
            .producers
            .drain(..)
            .enumerate()
            .map(|(queue, mut producer)| {
                thread::spawn(move || {
                    for ms in 0..50u64 {
                        let mut input = input(ms * 1_000_000 + queue as u64, queue as u16, ms);
                        while let Err(back) = producer.try_push_input(input) {
                            input = back;
                            thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let first = running.frames.next_frame(Duration::from_secs(10)).expect("tick 0 arrives");
        // The sequencer was parked when the run began (no producer had pushed), so at least
        // one push had to wake it before tick 0 could seal.
        assert_eq!((first.tick, first.inputs.len()), (0, 2));
        for worker in workers {
            worker.join().expect("worker");
        }
        let rest: Vec<Frame> = running.frames.by_ref().collect();
        assert_eq!(rest.len(), 49);
        assert!(rest.iter().enumerate().all(|(i, f)| f.tick == i as u64 + 1 && f.inputs.len() == 2));
        assert!(running.frames.is_finished());
        let outcome = running.sequencer.join().expect("sequencer thread");
        assert_eq!((outcome.stats.frames, outcome.stats.inputs_ordered), (50, 100));
        assert!(outcome.wakeups > 0, "{outcome:?}");
    }

    /// Pushes that each come after the sequencer has gone idle: every one must wake it, with no
    /// polling to fall back on (a lost wake-up hangs the run, and the test fails on its timeout).
    #[test]
    fn a_parked_sequencer_wakes_for_every_late_push() {
        let config = one_ms_ticks();
        let mut running = spawn(&config, 1, 16, ()).expect("spawn");
        let mut producer = running.producers.pop().expect("one producer");
        for tick in 1..=20u64 {
            producer.publish_watermark(tick * 1_000_000);
            let frame =
                running.frames.next_frame(Duration::from_secs(30)).expect("the watermark woke the sequencer");
            assert_eq!(frame.tick, tick - 1);
            // Give the sequencer time to find its queue empty and park again.
            thread::sleep(Duration::from_millis(2));
        }
        producer.close();
        let outcome = running.sequencer.join().expect("sequencer thread");
        assert_eq!(outcome.stats.frames, 20);
        assert!(outcome.wakeups > 0, "the pushes found it parked: {outcome:?}");
    }

    /// Inputs with no watermark after them still wake the sequencer, once every quarter of the
    /// queue: a worker receiving full batches publishes no watermark until it drains its ring.
    #[test]
    fn inputs_alone_wake_the_sequencer_every_quarter_queue() {
        let mut running = spawn(&one_ms_ticks(), 1, 64, ()).expect("spawn");
        let mut producer = running.producers.pop().expect("one producer");
        producer.publish_watermark(1_000_000);
        let first = running.frames.next_frame(Duration::from_secs(30)).expect("the watermark woke it");
        assert_eq!(first.tick, 0);
        // Let it find the queue empty and park.
        thread::sleep(Duration::from_millis(5));
        // 16 inputs (a quarter of 64), 1 ms apart: the last one bounds the queue at 17 ms.
        for ms in 2..=17u64 {
            assert_eq!(producer.try_push_input(input(ms * 1_000_000, 0, ms)), Ok(()));
        }
        let frame = running.frames.next_frame(Duration::from_secs(30)).expect("the 16th input woke it");
        assert_eq!(frame.tick, 1);
        drop(producer);
        let outcome = running.sequencer.join().expect("sequencer thread");
        assert_eq!(outcome.stats.inputs_ordered, 16);
    }

    /// Inputs do not ring the doorbell one by one; the watermark call that ends a worker's
    /// batch does, even when the watermark itself is coalesced away and never enters the queue.
    #[test]
    fn a_coalesced_watermark_still_wakes_the_sequencer_for_the_inputs_before_it() {
        let config = one_ms_ticks();
        let mut running = spawn(&config, 1, 64, ()).expect("spawn");
        let mut producer = running.producers.pop().expect("one producer");
        producer.publish_watermark(10_000_000);
        let sealed: Vec<u64> = (0..10)
            .map(|_| running.frames.next_frame(Duration::from_secs(30)).expect("ticks 0-9 seal").tick)
            .collect();
        assert_eq!(sealed, (0..10).collect::<Vec<_>>());
        // An input at 12.5 ms bounds the queue past the ends of ticks 10 and 11.
        assert_eq!(producer.try_push_input(input(12_500_000, 0, 0)), Ok(()));
        // Less than a watermark step above the last one: coalesced, but it rings for the input.
        producer.publish_watermark(10_000_001);
        let frame = running.frames.next_frame(Duration::from_secs(30)).expect("the watermark call woke it");
        assert_eq!((frame.tick, frame.inputs.len()), (10, 0));
        drop(producer);
        let outcome = running.sequencer.join().expect("sequencer thread");
        assert_eq!(outcome.stats.inputs_ordered, 1);
    }

    /// Pushes that cannot seal anything do not wake a parked sequencer: it parks for its next
    /// deadline (or its bound on unread inputs), and only a push reaching that time rings.
    #[test]
    fn pushes_before_the_next_deadline_leave_the_sequencer_parked() {
        let config = Config { tick_hz: 100, ..one_ms_ticks() };
        let mut running = spawn(&config, 1, 1_024, ()).expect("spawn");
        let mut producer = running.producers.pop().expect("one producer");
        producer.publish_watermark(10_000_000);
        let first = running.frames.next_frame(Duration::from_secs(30)).expect("tick 0 seals");
        assert_eq!(first.tick, 0);
        // Parked now until 14 ms (10 ms + MAX_UNREAD_NS; tick 1 ends at 20 ms). Twenty inputs
        // and watermarks below that, each after the sequencer had time to park again: under a
        // ring per batch each of them woke it.
        for n in 1..=20u64 {
            thread::sleep(Duration::from_millis(1));
            let at = 10_000_000 + n * 100_000;
            assert_eq!(producer.try_push_input(input(at, 0, n)), Ok(()));
            producer.publish_watermark(at + 50_000);
        }
        assert_eq!(running.frames.try_next_frame(), None);
        producer.publish_watermark(20_000_000);
        let second = running.frames.next_frame(Duration::from_secs(30)).expect("the crossing woke it");
        assert_eq!((second.tick, second.inputs.len()), (1, 20));
        producer.close();
        let outcome = running.sequencer.join().expect("sequencer thread");
        // The first watermark, the crossing, the close: no more.
        assert!(outcome.wakeups <= 3, "{outcome:?}");
        assert_eq!(outcome.stats.inputs_ordered, 20);
    }

    #[test]
    fn a_game_that_stops_taking_frames_loses_the_newest_counted_and_never_stalls_the_run() {
        let config = one_ms_ticks();
        let mut running = spawn(&config, 1, 16, ()).expect("spawn");
        let mut producer = running.producers.pop().expect("one producer");
        // One watermark seals FRAME_QUEUE_CAPACITY + 500 ticks; nobody takes a frame.
        let ticks = FRAME_QUEUE_CAPACITY as u64 + 500;
        producer.publish_watermark(ticks * 1_000_000);
        producer.close();
        let outcome = running.sequencer.join().expect("the sequencer ends without the game");
        assert_eq!(outcome.stats.frames, ticks);
        assert_eq!(outcome.stats.frames_overflowed, 500);
        assert_eq!(running.frames.overflowed(), 500);
        // The game gets the oldest frames, in order, and then sees the end.
        let kept: Vec<u64> = running.frames.by_ref().map(|f| f.tick).collect();
        assert_eq!(kept, (0..FRAME_QUEUE_CAPACITY as u64).collect::<Vec<_>>());
    }
}
