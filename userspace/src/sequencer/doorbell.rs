//! How an idle sequencer thread sleeps without missing a hand-off push.
//!
//! The sequencer parks when every hand-off queue is empty; a producer that rings while it is
//! parked unparks it (when producers ring: see the hand-off queue). There is no timeout and no
//! polling nap: nothing but a push (an input, a watermark or a close) can let the sequencer
//! release or seal anything, so it has nothing to do until one arrives. And most pushes cannot
//! seal anything either: the sequencer parks with the lowest time worth waking for (`wake_at`:
//! its next seal deadline, or a bound on how long it may leave inputs unread), and a producer
//! [`offer`](Doorbell::offer)s only what reaches it. A forced [`ring`](Doorbell::ring) (a close,
//! a queue filling up) wakes it whatever the time.
//!
//! The handshake is the classic store-then-check on both sides. The sequencer announces
//! `parked`, then looks at the queues once more; a producer pushes, then looks at `parked`. With
//! a sequentially consistent fence between each side's write and its read, at least one of them
//! sees the other's write: either the sequencer finds the item, or the producer finds it parked
//! and wakes it. A producer that finds it awake pays one fence and one load, nothing more.

use std::sync::{
    OnceLock,
    atomic::{AtomicBool, AtomicU64, Ordering, fence},
};
use std::thread::{self, Thread};

/// Shared by every producer of one sequencer and the sequencer thread.
#[derive(Debug, Default)]
pub struct Doorbell {
    parked: AtomicBool,
    /// The lowest item time worth a wake-up, as of the last park (0: everything is).
    wake_at: AtomicU64,
    /// The thread that waits; set on its first wait.
    sleeper: OnceLock<Thread>,
    /// How many times a producer woke the sequencer.
    rings: AtomicU64,
}

impl Doorbell {
    /// Called by a producer after it pushed: wakes the sequencer if it is parked.
    pub fn ring(&self) {
        self.ring_if(|_| true);
    }

    /// Called by a producer after it pushed items up to time `up_to` (its newest input stamp or
    /// watermark): wakes the parked sequencer if they reach the time it parked for. Whether it
    /// rang (or found it awake: then it will see the items without a ring).
    pub fn offer(&self, up_to: u64) -> bool {
        self.ring_if(|wake_at| up_to >= wake_at)
    }

    fn ring_if(&self, worth: impl FnOnce(u64) -> bool) -> bool {
        fence(Ordering::SeqCst);
        if !self.parked.load(Ordering::Acquire) {
            return true;
        }
        // `wake_at` was stored before `parked`: a producer that sees the park sees its time.
        if !worth(self.wake_at.load(Ordering::Relaxed)) {
            return false;
        }
        if self.parked.swap(false, Ordering::AcqRel) {
            self.rings.fetch_add(1, Ordering::Relaxed);
            if let Some(sleeper) = self.sleeper.get() {
                sleeper.unpark();
            }
        }
        true
    }

    /// Called by the sequencer thread when a round found every queue empty: parks until a
    /// producer rings or offers items up to `wake_at` or later, unless `has_work` (checked after
    /// announcing the park) finds an item. Only one thread may wait on a doorbell.
    pub fn wait(&self, wake_at: u64, has_work: impl Fn() -> bool) {
        let me = self.sleeper.get_or_init(thread::current);
        debug_assert_eq!(me.id(), thread::current().id(), "two threads wait on one doorbell");
        self.wake_at.store(wake_at, Ordering::Relaxed);
        self.parked.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if has_work() {
            self.parked.store(false, Ordering::Relaxed);
            return;
        }
        // `park` may return spuriously, or for a token left by a ring that raced with
        // `has_work`: only a ring that cleared `parked` ends the wait.
        while self.parked.load(Ordering::Acquire) {
            thread::park();
        }
    }

    /// How many times a producer has woken the sequencer so far.
    pub fn rings(&self) -> u64 {
        self.rings.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, atomic::AtomicUsize};

    #[test]
    fn a_wait_with_work_returns_without_a_ring() {
        let bell = Doorbell::default();
        bell.wait(0, || true);
        assert_eq!(bell.rings(), 0);
        // Nobody is parked: a ring is a no-op.
        bell.ring();
        assert_eq!(bell.rings(), 0);
    }

    #[test]
    fn an_offer_below_the_wake_time_leaves_the_sleeper_parked() {
        let bell = Arc::new(Doorbell::default());
        let woke = Arc::new(AtomicUsize::new(0));
        let sleeper = {
            let (bell, woke) = (Arc::clone(&bell), Arc::clone(&woke));
            thread::spawn(move || {
                bell.wait(100, || false);
                woke.store(1, Ordering::Release);
            })
        };
        while !bell.parked.load(Ordering::Acquire) {
            thread::yield_now();
        }
        // Not worth it: the sleeper stays parked, and the caller learns it.
        assert!(!bell.offer(99));
        thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!((woke.load(Ordering::Acquire), bell.rings()), (0, 0));
        assert!(bell.offer(100));
        sleeper.join().expect("sleeper");
        assert_eq!((woke.load(Ordering::Acquire), bell.rings()), (1, 1));
        // Awake (nobody parked): every offer is taken, nothing to ring.
        assert!(bell.offer(0));
        assert_eq!(bell.rings(), 1);
    }

    /// Ping-pong: every item the producer publishes must be seen by the sleeper through a ring
    /// or the re-check. A lost wake-up would park the sleeper for good; the test then fails
    /// after a minute instead of hanging.
    #[test]
    fn no_push_is_missed_across_many_sleeps() {
        const ROUNDS: usize = 20_000;
        let bell = Arc::new(Doorbell::default());
        let published = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(AtomicUsize::new(0));
        let producer = {
            let (bell, published, seen) = (Arc::clone(&bell), Arc::clone(&published), Arc::clone(&seen));
            thread::spawn(move || {
                for n in 1..=ROUNDS {
                    // Wait until the sleeper took the previous item, so that it is likely
                    // parked or about to park when this one comes.
                    while seen.load(Ordering::Acquire) < n - 1 {
                        std::hint::spin_loop();
                    }
                    published.store(n, Ordering::Release);
                    bell.ring();
                }
            })
        };
        let (done, finished) = std::sync::mpsc::channel();
        {
            let bell = Arc::clone(&bell);
            thread::spawn(move || {
                let mut taken = 0;
                while taken < ROUNDS {
                    let now = published.load(Ordering::Acquire);
                    if now > taken {
                        taken = now;
                        seen.store(taken, Ordering::Release);
                        continue;
                    }
                    bell.wait(0, || published.load(Ordering::Acquire) > taken);
                }
                let _ = done.send(taken);
            });
        }
        let taken = finished
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the sleeper missed a ring and stayed parked");
        producer.join().expect("producer panicked");
        assert_eq!(taken, ROUNDS);
        // Some of the rounds found the sleeper parked: the ring path was exercised.
        assert!(bell.rings() > 0, "the sleeper never parked in {ROUNDS} rounds");
    }
}
