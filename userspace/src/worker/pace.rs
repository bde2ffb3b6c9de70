//! Whether a paced worker ([`Wake::Paced`](super::Wake)) lets packets end its wait.
//!
//! A paced worker reads its ring when a tick can seal and at each idle deadline, not for every
//! packet: the XDP program stamped each packet on arrival, so a packet that waits in the ring
//! keeps its time, its place in the merge and its tick. Two things still need the ring watched:
//!
//! - **A burst.** The ring holds what arrives between two reads. When a wake-up finds a
//!   quarter of the ring taken and the packets came at a rate that takes that much in one
//!   timed interval, or finds half of it taken however long the wait was, the worker also wakes
//!   for packets for the next [`BUSY_WATCH`], so that a burst that would fill the ring before
//!   the next timed read is read as it comes. (A count alone, a quarter of the ring however
//!   long the wait, also took a steady 300 000 packets a second for a burst whenever a timed
//!   read came 0.7 ms late, which the lab VM's timer often did, and the watch then woke the
//!   worker per packet: docs/benchmarks.md, "Paced reads at high rates".)
//! - **The adaptive slack** (only when the slack is measured, not fixed). It measures the delay
//!   from a packet's stamp to the read that finds it; a timed read's delay is mostly the pace,
//!   not the kernel's. So every [`PROBE_EVERY`] the worker watches the ring for
//!   [`PROBE_WATCH`], or until it has read [`PROBE_SAMPLES`] packets, and only the reads
//!   packets woke then feed the estimator. At a few thousand packets a second that is a tenth
//!   of the per-packet wake-ups; at 250 000 a second the sample bound ends a probe after about
//!   2 ms (it woke some 2 800 times a second without it, three times the timed wake-ups, for no
//!   better estimate: the window already had its samples).

use std::time::Duration;

/// How long a paced worker wakes for packets after a wake-up found its ring busy.
pub const BUSY_WATCH: Duration = Duration::from_millis(10);
/// How often a paced worker probes the delay from stamp to ring.
pub const PROBE_EVERY: Duration = Duration::from_millis(100);
/// How long each probe watches the ring at most.
pub const PROBE_WATCH: Duration = Duration::from_millis(10);
/// Packets read in a probe after which it ends before [`PROBE_WATCH`]: eight times the
/// estimator's `MIN_SAMPLES` a window.
pub const PROBE_SAMPLES: u32 = 512;
/// The longest a paced worker sleeps between timed reads when its ticks are longer than that
/// (see [`Pace::stretch_ns`]). A rate that jumps from nothing fills the ring before the next
/// read only above `rx_ring` in this time: 512 000 packets a second with the default ring.
pub const LONGEST_SLEEP: Duration = Duration::from_millis(4);

/// The ring-watching state of one paced worker.
#[derive(Debug)]
pub struct Pace {
    /// Descriptors one timed interval may bring at the rate a wake-up found before the ring
    /// counts as busy (a quarter of it).
    busy_at: u32,
    /// Descriptors a wake-up may find, however long it slept, before the ring counts as busy
    /// (half of it).
    full_at: u32,
    /// The timed interval: the worker's idle deadline, ns.
    interval_ns: u64,
    /// When the previous wait started, CLOCK_MONOTONIC ns.
    last_wait: u64,
    /// Until when packets end the wait after a busy wake-up, CLOCK_MONOTONIC ns.
    watch_until: u64,
    /// Until when the current probe watches the ring, CLOCK_MONOTONIC ns.
    probe_until: u64,
    /// Packets the current probe may still read before it ends.
    probe_left: u32,
    /// When the next probe starts, CLOCK_MONOTONIC ns.
    next_probe: u64,
    /// An eighth of the ring: what a stretched sleep may let arrive at the rate last found.
    stretch_fill: u32,
    /// How long the next timed sleep may last, ns (see [`Pace::stretch_ns`]).
    stretch_ns: u64,
}

impl Pace {
    /// The pace of a worker whose RX ring holds `rx_ring` descriptors and whose timed reads
    /// come every `interval` at most; the first probe starts at once.
    pub fn new(rx_ring: u32, interval: Duration, now_ns: u64) -> Self {
        Self {
            busy_at: (rx_ring / 4).max(1),
            full_at: (rx_ring / 2).max(1),
            interval_ns: ns(interval).max(1),
            last_wait: now_ns,
            watch_until: now_ns,
            probe_until: now_ns,
            probe_left: 0,
            next_probe: now_ns,
            stretch_fill: (rx_ring / 8).max(1),
            stretch_ns: ns(interval).max(1),
        }
    }

    /// The pace of a worker whose slack is fixed: no probes, which only feed the adaptive slack
    /// (at 10 000 packets a second they woke a paced worker per packet for 10 ms in every 100).
    pub fn without_probes(self) -> Self {
        Self { next_probe: u64::MAX, probe_until: 0, ..self }
    }

    /// How long after a timed wake-up the worker may sleep before its next timed read, when no
    /// seal instant comes sooner: as long as the rate the last wait found takes to bring an
    /// eighth of the ring, within the timed interval and `LONGEST_SLEEP` (4 ms). At 60 Hz a
    /// tick is 16.7 timed intervals; a worker that read every interval woke some 1 000 times a
    /// second at any rate, most of them to read a few packets that could as well wait in the ring
    /// (their stamps keep their order and their tick).
    pub fn stretch_ns(&self) -> u64 {
        self.stretch_ns
    }

    /// Before a wait, given the descriptors read since the previous one: whether packets end
    /// this wait.
    pub fn watch_ring(&mut self, now_ns: u64, read_since_last_wait: u32) -> bool {
        // The rate is taken over one interval at least: NAPI hands over what it polled at once,
        // and on a core it shares with the worker it polls in bursts when the worker sleeps (over
        // a quarter of an interval, a steady 300 000 a second looked like bursts, and the worker
        // woke 5 000–9 000 times a second).
        let elapsed = now_ns.saturating_sub(self.last_wait);
        let over = elapsed.max(self.interval_ns);
        self.last_wait = now_ns;
        // The stretch takes the rate over the wait itself: a burst NAPI handed over at once
        // shortens it (the safe side), where the busy rule must not take it for a flood.
        let longest = ns(LONGEST_SLEEP).max(self.interval_ns);
        self.stretch_ns = match read_since_last_wait {
            0 => longest,
            read => {
                let fill = u128::from(self.stretch_fill) * u128::from(elapsed.max(1)) / u128::from(read);
                u64::try_from(fill).unwrap_or(u64::MAX).clamp(self.interval_ns, longest)
            }
        };
        let per_interval = u128::from(read_since_last_wait) * u128::from(self.interval_ns) / u128::from(over);
        if per_interval >= u128::from(self.busy_at) || read_since_last_wait >= self.full_at {
            self.watch_until = self.watch_until.max(now_ns.saturating_add(ns(BUSY_WATCH)));
        }
        if now_ns >= self.next_probe {
            self.probe_until = now_ns.saturating_add(ns(PROBE_WATCH));
            self.probe_left = PROBE_SAMPLES;
            self.next_probe = now_ns.saturating_add(ns(PROBE_EVERY));
        } else {
            // What the probe's previous wait woke (before the probe: nothing counted).
            self.probe_left = self.probe_left.saturating_sub(read_since_last_wait);
        }
        (now_ns < self.probe_until && self.probe_left > 0) || now_ns < self.watch_until
    }
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const US: u64 = 1_000;
    const INTERVAL: Duration = Duration::from_millis(1);

    #[test]
    fn a_quiet_ring_is_watched_only_during_probes() {
        let mut pace = Pace::new(2048, INTERVAL, 0);
        // The first probe: 0–10 ms.
        assert!(pace.watch_ring(0, 0));
        assert!(pace.watch_ring(9 * MS, 3));
        // Then timed reads only, until the next probe at 100 ms.
        for t in [10, 11, 50, 99] {
            assert!(!pace.watch_ring(t * MS, 10), "watched at {t} ms");
        }
        assert!(pace.watch_ring(100 * MS, 10));
        assert!(pace.watch_ring(109 * MS, 10));
        assert!(!pace.watch_ring(110 * MS, 10));
        // A late wait starts the probe late, and the next one 100 ms after that.
        assert!(pace.watch_ring(250 * MS, 0));
        assert!(!pace.watch_ring(261 * MS, 0));
        assert!(!pace.watch_ring(349 * MS, 0));
        assert!(pace.watch_ring(350 * MS, 0));
    }

    #[test]
    fn a_ring_filling_at_a_quarter_a_timed_interval_is_watched_for_a_while() {
        let mut pace = Pace::new(2048, INTERVAL, 0);
        assert!(pace.watch_ring(0, 0), "the first probe");
        assert!(!pace.watch_ring(20 * MS, 511), "below a quarter, over 20 ms");
        assert!(!pace.watch_ring(21 * MS, 511), "below a quarter in one interval");
        assert!(pace.watch_ring(22 * MS, 512), "a quarter in one interval");
        // Reads woken by packets find little each; the watch still lasts its 10 ms.
        assert!(pace.watch_ring(25 * MS, 1));
        assert!(pace.watch_ring(31 * MS, 1));
        assert!(!pace.watch_ring(32 * MS, 1));
        // A busy read inside a watch extends it: 128 packets in a quarter interval.
        assert!(!pace.watch_ring(40 * MS, 0));
        assert!(pace.watch_ring(41 * MS, 600));
        assert!(pace.watch_ring(41 * MS + 500 * US, 512));
        assert!(pace.watch_ring(51 * MS, 0));
        assert!(!pace.watch_ring(51 * MS + 600 * US, 0));
    }

    #[test]
    fn a_late_timed_read_at_a_steady_rate_is_not_a_burst() {
        // 300 000 packets a second: 300 an interval.
        let mut pace = Pace::new(2048, INTERVAL, 0);
        pace.watch_ring(0, 0);
        assert!(!pace.watch_ring(20 * MS, 0));
        assert!(!pace.watch_ring(21 * MS, 300));
        assert!(!pace.watch_ring(22 * MS + 700 * US, 510), "0.7 ms late");
        assert!(!pace.watch_ring(25 * MS + 700 * US, 900), "2 ms late");
        // Half the ring taken is watched whatever the rate.
        assert!(pace.watch_ring(29 * MS, 1024), "half the ring after 3.3 ms");
    }

    #[test]
    fn a_short_wait_counts_as_a_whole_interval() {
        let mut pace = Pace::new(2048, INTERVAL, 0);
        pace.watch_ring(0, 0);
        assert!(!pace.watch_ring(20 * MS, 0));
        // 500 packets 200 µs after the wait (NAPI polled them when the worker slept).
        assert!(!pace.watch_ring(20 * MS + 200 * US, 500));
        // A quarter of the ring in less than an interval is a burst.
        assert!(pace.watch_ring(20 * MS + 400 * US, 512));
    }

    #[test]
    fn a_probe_ends_once_it_has_read_its_samples() {
        let mut pace = Pace::new(2048, INTERVAL, 0);
        // The probe starts; the timed read before it does not count.
        assert!(pace.watch_ring(2 * MS, 400));
        assert!(pace.watch_ring(3 * MS, 300), "300 of 512 read");
        assert!(pace.watch_ring(4 * MS, 200), "500");
        assert!(!pace.watch_ring(5 * MS, 12), "512: the probe ends at 5 ms, not 12");
        assert!(!pace.watch_ring(50 * MS, 0));
        // The next probe has its own count.
        assert!(pace.watch_ring(102 * MS, 0));
        assert!(pace.watch_ring(103 * MS, 511));
        assert!(!pace.watch_ring(104 * MS, 1));
        // A busy read still watches the ring for its 10 ms, probe over or not.
        assert!(pace.watch_ring(105 * MS, 512));
        assert!(pace.watch_ring(114 * MS, 0));
        assert!(!pace.watch_ring(115 * MS, 0));
    }

    #[test]
    fn a_tiny_ring_still_has_a_busy_threshold() {
        let mut pace = Pace::new(2, INTERVAL, 0);
        pace.watch_ring(0, 0);
        assert!(!pace.watch_ring(20 * MS, 0));
        assert!(pace.watch_ring(21 * MS, 1));
    }

    #[test]
    fn the_sleep_stretches_as_long_as_the_rate_takes_to_fill_an_eighth_of_the_ring() {
        let mut pace = Pace::new(2048, INTERVAL, 0);
        assert_eq!(pace.stretch_ns(), MS, "no rate yet: the interval");
        // Nothing read: the longest sleep.
        pace.watch_ring(20 * MS, 0);
        assert_eq!(pace.stretch_ns(), 4 * MS);
        // 10 000 packets a second (40 in 4 ms): an eighth of the ring takes 25.6 ms.
        pace.watch_ring(24 * MS, 40);
        assert_eq!(pace.stretch_ns(), 4 * MS);
        // 128 000 a second: 2 ms.
        pace.watch_ring(25 * MS, 128);
        assert_eq!(pace.stretch_ns(), 2 * MS);
        // 300 000 a second, and a burst NAPI handed over at once: the timed interval.
        pace.watch_ring(26 * MS, 300);
        assert_eq!(pace.stretch_ns(), MS);
        pace.watch_ring(26 * MS + 10 * US, 64);
        assert_eq!(pace.stretch_ns(), MS);
        // And back to a quiet ring.
        pace.watch_ring(30 * MS, 2);
        assert_eq!(pace.stretch_ns(), 4 * MS);
    }

    #[test]
    fn a_pace_without_probes_watches_only_bursts() {
        let mut pace = Pace::new(2048, INTERVAL, 0).without_probes();
        for t in [0, 5, 100, 105, 200] {
            assert!(!pace.watch_ring(t * MS, 10), "watched at {t} ms");
        }
        assert!(pace.watch_ring(201 * MS, 512), "a burst");
        assert!(pace.watch_ring(210 * MS, 0));
        assert!(!pace.watch_ring(212 * MS, 0));
    }
}
