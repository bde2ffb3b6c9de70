//! When a sleeping worker wakes with no packet to wake it: at each instant its watermark can
//! seal a tick of the run's grid, and at least every `idle_wakeup`, so that an idle queue never
//! holds a frame back by more than that.
//!
//! The wake-ups come from one timerfd in the worker's `poll(2)` set, armed once per expiry.
//! Passing a timeout to every `poll` would do the same with a kernel timer started and
//! cancelled at each of the thousands of packet wake-ups a second: on the lab VM that was a
//! timer-register write (a VM exit) per start and per cancel, and half the worker's CPU at
//! 10 000 packets/s (docs/benchmarks.md, "The worker's timer").

use std::{io, os::fd::BorrowedFd, time::Duration};

use super::next_seal_wake;
use crate::sys;

/// A worker's timed wake-ups.
#[derive(Debug)]
pub struct Alarm {
    timer: sys::Timer,
    /// The CLOCK_MONOTONIC deadline armed, until the timer fires.
    armed: Option<u64>,
    /// The seal instant of the grid that came next when the deadline was armed (the deadline
    /// itself, or one after an earlier idle deadline), CLOCK_MONOTONIC ns, and the watermark
    /// that seals its tick: the tick's end plus the grace, CLOCK_TAI ns.
    seal_due: Option<(u64, u64)>,
    /// When the timer last fired (or the alarm was made), CLOCK_MONOTONIC ns.
    last_fired: u64,
    /// CLOCK_TAI − CLOCK_MONOTONIC as of then. Both clocks run at the rate NTP sets, so this
    /// only moves when the system clock is stepped; reading it once per expiry keeps the wanted
    /// deadline the same ns from one wait to the next, so that it is not armed again and again.
    tai_offset: u64,
    idle_ns: u64,
    seal_grid: Option<(u32, u64)>,
}

impl Alarm {
    /// Wake-ups every `idle_wakeup` at least and, with `seal_grid` `(tick_hz, grace_ns)`, at each
    /// tick end plus the grace plus the slack of the run's grid.
    pub fn new(idle_wakeup: Duration, seal_grid: Option<(u32, u64)>) -> io::Result<Self> {
        Ok(Self {
            timer: sys::Timer::new()?,
            armed: None,
            seal_due: None,
            last_fired: sys::clock_monotonic_ns(),
            tai_offset: tai_offset(),
            idle_ns: u64::try_from(idle_wakeup.as_nanos()).unwrap_or(u64::MAX),
            seal_grid,
        })
    }

    /// Before a wait: arms the timer for the next wake-up unless it is armed for that one or an
    /// earlier one already. `stretch_ns`: how long after the last wake-up a paced worker may
    /// sleep between seal instants instead of `idle_wakeup` (see [`next_wake`]); 0 for a
    /// worker that keeps the idle deadline.
    pub fn prepare(&mut self, slack_ns: u64, stretch_ns: u64) -> io::Result<()> {
        let now = sys::clock_monotonic_ns();
        let (want, seal_due) = next_wake(
            now,
            now.wrapping_add(self.tai_offset),
            self.last_fired,
            (self.idle_ns, stretch_ns),
            self.seal_after(slack_ns),
        );
        if self.armed.is_none_or(|armed| want < armed) {
            if let Err(e) = self.timer.arm_at(want) {
                // Arming would have cleared an expiry (below); without it, the fd must not stay
                // readable, or every wait would end at once.
                self.timer.clear();
                return Err(e);
            }
            self.armed = Some(want);
            // The seal instant trails its tick's end and grace by the slack it was asked for.
            self.seal_due =
                seal_due.map(|seal| (seal, seal.wrapping_add(self.tai_offset).saturating_sub(slack_ns)));
        }
        Ok(())
    }

    /// After a wait in which [`fd`](Self::fd) was readable: if a seal instant has passed since
    /// the deadline was armed (the deadline was one, or an idle deadline before it fired late
    /// enough to pass it: on the lab VM a timer can fire most of a millisecond late), the
    /// watermark its tick needs (the tick's end plus the grace, CLOCK_TAI ns), which the read
    /// that follows may publish; `None` after an idle deadline.
    ///
    /// The timer stays readable until the next [`prepare`](Self::prepare) arms it again:
    /// `timerfd_settime` resets its expiry count, so the wake-up costs no `read` of its own.
    pub fn fired(&mut self) -> Option<u64> {
        self.armed = None;
        self.last_fired = sys::clock_monotonic_ns();
        self.tai_offset = tai_offset();
        self.seal_due.filter(|&(seal, _)| self.last_fired >= seal).map(|(_, needs)| needs)
    }

    /// The fd the worker polls.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.timer.fd()
    }

    fn seal_after(&self, slack_ns: u64) -> Option<(u32, u64)> {
        self.seal_grid.map(|(hz, grace_ns)| (hz, grace_ns.saturating_add(slack_ns)))
    }
}

/// CLOCK_TAI − CLOCK_MONOTONIC now (wrapping: a u64 to add back).
fn tai_offset() -> u64 {
    sys::clock_tai_ns().wrapping_sub(sys::clock_monotonic_ns())
}

/// The next wake-up in CLOCK_MONOTONIC ns, and the next seal instant of `seal` `(tick_hz,
/// after_ns)` (see [`next_seal_wake`], which works in CLOCK_TAI; `now_mono` and `now_tai` are
/// the same instant in both clocks): the wake-up is that seal instant, or the idle deadline if
/// that comes first.
///
/// `sleep` is `(idle_ns, stretch_ns)`. The idle deadline is `idle_ns` after the last wake-up; a
/// paced worker between seal instants may sleep `stretch_ns` instead, but not
/// past half an `idle_ns` before the seal instant: that read takes what arrived meanwhile, so
/// the one at the seal instant finds no more than an idle wake-up's would (its work delays the
/// frame; the read before it falls in the grace). A stretch no longer than `idle_ns`, or no
/// grid, keeps the idle deadline.
pub fn next_wake(
    now_mono: u64,
    now_tai: u64,
    last_fired: u64,
    sleep: (u64, u64),
    seal: Option<(u32, u64)>,
) -> (u64, Option<u64>) {
    let (idle_ns, stretch_ns) = sleep;
    let idle = last_fired.saturating_add(idle_ns);
    let Some((hz, after_ns)) = seal else {
        return (idle, None);
    };
    let seal_mono = now_mono.saturating_add(next_seal_wake(now_tai, hz, after_ns) - now_tai);
    let stretched = last_fired.saturating_add(stretch_ns).min(seal_mono.saturating_sub(idle_ns / 2));
    let idle = idle.max(stretched);
    (idle.min(seal_mono), Some(seal_mono))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn the_next_wake_is_the_idle_deadline_or_an_earlier_seal_instant() {
        // No grid: 1 ms after the last wake-up, however late "now" is.
        assert_eq!(next_wake(5 * MS, 0, 4 * MS, (MS, 0), None), (5 * MS, None));
        assert_eq!(next_wake(7 * MS, 0, 4 * MS, (MS, 0), None), (5 * MS, None));
        // 1 kHz grid with 300 µs after each tick end, TAI 1000 ms ahead of MONOTONIC: at TAI
        // 1 002.1 ms the next seal instant is 1 002.3 ms, i.e. MONOTONIC 2.3 ms.
        let seal = Some((1_000, 300_000));
        assert_eq!(next_wake(2_100_000, 1_002_100_000, 2 * MS, (MS, 0), seal), (2_300_000, Some(2_300_000)));
        // Past the seal instant: the next one, unless the idle deadline comes first.
        assert_eq!(
            next_wake(2_400_000, 1_002_400_000, 2_300_000, (MS, 0), seal),
            (3_300_000, Some(3_300_000))
        );
        assert_eq!(
            next_wake(2_400_000, 1_002_400_000, 2_300_000, (MS / 2, 0), seal),
            (2_800_000, Some(3_300_000))
        );
        // 60 Hz: seal instants are 16.7 ms apart; the idle deadline wins between them.
        assert_eq!(
            next_wake(2_100_000, 1_002_100_000, 2 * MS, (MS, 0), Some((60, 2 * MS))),
            (3 * MS, Some(18_666_667))
        );
    }

    #[test]
    fn a_stretched_sleep_ends_half_an_idle_interval_before_the_seal_instant() {
        // 60 Hz, 2 ms after each tick end, MONOTONIC = TAI: seal instants at 18.67 ms, 35.33 ms...
        let seal = Some((60, 2 * MS));
        let first = 1_000_000_000_u64.div_ceil(60) + 2 * MS;
        let second = 2_000_000_000_u64.div_ceil(60) + 2 * MS;
        // (the wake-up, whether it is the seal instant)
        let wake = |last: u64, stretch: u64| {
            let (at, seal) = next_wake(last, last, last, (MS, stretch), seal);
            (at, seal == Some(at))
        };
        // From the first seal instant, 4 ms sleeps...
        let mut last = first;
        let mut wakes = Vec::new();
        for _ in 0..10 {
            let (at, is_seal) = wake(last, 4 * MS);
            wakes.push((at - first, is_seal));
            last = at;
            if is_seal {
                break;
            }
        }
        // ...then the read ending the stretch no later than 0.5 ms before the next seal instant,
        // then the seal instant itself.
        assert_eq!(
            wakes,
            [(4 * MS, false), (8 * MS, false), (12 * MS, false), (16 * MS, false), (second - first, true)]
        );
        // A sleep that would end within the half interval ends at its start instead.
        assert_eq!(wake(second - 4 * MS, 4 * MS), (second - MS / 2, false));
        // Never sooner than the idle deadline: 0.8 ms before the seal instant, the seal instant.
        assert_eq!(wake(second - 800_000, 4 * MS), (second, true));
        // At 1 kHz a tick is an idle interval: one wake-up a tick, as without the stretch.
        let seal = Some((1_000, 300_000));
        assert_eq!(
            next_wake(2_300_000, 1_002_300_000, 2_300_000, (MS, 4 * MS), seal),
            (3_300_000, Some(3_300_000))
        );
        // A stretch no longer than the idle interval, or no grid, keeps the idle deadline.
        assert_eq!(wake(first, MS / 2), (first + MS, false));
        assert_eq!(next_wake(5 * MS, 0, 5 * MS, (MS, 4 * MS), None), (6 * MS, None));
    }

    #[test]
    fn the_alarm_is_armed_once_per_expiry_and_fires_on_time() {
        let mut alarm = Alarm::new(Duration::from_millis(5), None).unwrap();
        let started = Instant::now();
        alarm.prepare(0, 0).unwrap();
        let armed = alarm.armed.unwrap();
        // Waits that end early (a packet) keep the deadline rather than arming a later one.
        for _ in 0..3 {
            assert_eq!(
                sys::poll_readable([Some(alarm.fd())], Some(Duration::from_micros(200))).unwrap(),
                [false]
            );
            alarm.prepare(0, 0).unwrap();
            assert_eq!(alarm.armed, Some(armed));
        }
        // The deadline: readable within a generous bound (no timing is asserted beyond "it
        // fired, not before its deadline").
        assert_eq!(sys::poll_readable([Some(alarm.fd())], Some(Duration::from_secs(5))).unwrap(), [true]);
        assert!(started.elapsed() >= Duration::from_millis(5));
        assert!(sys::clock_monotonic_ns() >= armed);
        assert_eq!(alarm.fired(), None, "no grid: the idle deadline fired");
        assert_eq!(alarm.armed, None);
        // Readable until armed again, which clears the expiry: no read needed.
        assert_eq!(sys::poll_readable([Some(alarm.fd())], Some(Duration::ZERO)).unwrap(), [true]);
        // The next one is measured from the expiry.
        alarm.prepare(0, 0).unwrap();
        assert_eq!(alarm.armed, Some(alarm.last_fired + 5 * MS));
        assert_eq!(sys::poll_readable([Some(alarm.fd())], Some(Duration::ZERO)).unwrap(), [false]);
    }

    #[test]
    fn the_alarm_says_which_deadline_fired() {
        // A 1 kHz grid and a 10 s idle deadline: the seal instant comes first.
        let mut alarm = Alarm::new(Duration::from_secs(10), Some((1_000, 0))).unwrap();
        alarm.prepare(0, 0).unwrap();
        assert_eq!(sys::poll_readable([Some(alarm.fd())], Some(Duration::from_secs(5))).unwrap(), [true]);
        let needs = alarm.fired().expect("a seal instant");
        // With no grace and no slack, what the tick needs is its end: a whole millisecond.
        assert_eq!(needs % MS, 0, "{needs}");
        // A 1 kHz grid with 300 µs of grace, asked for 50 µs of slack: the tick's end + 300 µs.
        let mut alarm = Alarm::new(Duration::from_secs(10), Some((1_000, 300_000))).unwrap();
        alarm.prepare(50_000, 0).unwrap();
        assert_eq!(sys::poll_readable([Some(alarm.fd())], Some(Duration::from_secs(5))).unwrap(), [true]);
        assert_eq!(alarm.fired().expect("a seal instant") % MS, 300_000);
        // A 1 Hz grid whose seal instants fall half a second after now (mod 1 s), and a 1 ms
        // idle deadline: the idle deadline comes first.
        let grace = (sys::clock_tai_ns() + 500 * MS) % 1_000_000_000;
        let mut alarm = Alarm::new(Duration::from_millis(1), Some((1, grace))).unwrap();
        alarm.prepare(0, 0).unwrap();
        assert_eq!(sys::poll_readable([Some(alarm.fd())], Some(Duration::from_secs(5))).unwrap(), [true]);
        assert_eq!(alarm.fired(), None, "the idle deadline");
        // An idle deadline that fires past the seal instant after it (here: read late) says so:
        // the read that follows is the one the tick waits for.
        let mut alarm = Alarm::new(Duration::from_nanos(1), Some((1_000, 0))).unwrap();
        alarm.prepare(0, 0).unwrap();
        let (seal, _) = alarm.seal_due.unwrap();
        assert!(alarm.armed.unwrap() < seal, "the idle deadline is armed");
        while sys::clock_monotonic_ns() < seal + MS / 10 {
            std::hint::spin_loop();
        }
        assert!(alarm.fired().is_some(), "a seal instant passed");
    }

    #[test]
    fn a_seal_deadline_is_armed_once_however_often_the_worker_waits() {
        let mut alarm = Alarm::new(Duration::from_secs(10), Some((1_000, 200_000))).unwrap();
        alarm.prepare(0, 0).unwrap();
        let armed = alarm.armed.unwrap();
        for _ in 0..1_000 {
            alarm.prepare(0, 0).unwrap();
            if sys::clock_monotonic_ns() < armed {
                assert_eq!(alarm.armed, Some(armed));
            }
        }
    }

    #[test]
    fn an_earlier_seal_instant_rearms_the_alarm() {
        let mut alarm = Alarm::new(Duration::from_secs(10), None).unwrap();
        alarm.prepare(0, 0).unwrap();
        let idle = alarm.armed.unwrap();
        alarm.seal_grid = Some((1_000, 0));
        alarm.prepare(0, 0).unwrap();
        let seal = alarm.armed.unwrap();
        assert!(seal < idle, "{seal} {idle}");
        assert!(seal <= sys::clock_monotonic_ns() + MS + MS / 10, "within a tick of now");
        assert_eq!(sys::poll_readable([Some(alarm.fd())], Some(Duration::from_secs(5))).unwrap(), [true]);
    }
}
