//! The NIC's PTP hardware clock (PHC) and the conversion of its timestamps to the run's time base
//! (CLOCK_TAI), so that an input the NIC stamped keeps its stamp rather than being restamped to
//! its queue's floor.
//!
//! A worker samples the PHC against CLOCK_TAI every [`REFRESH`] (`PTP_SYS_OFFSET_PRECISE` where
//! the driver cross-timestamps, else the narrowest of several `PTP_SYS_OFFSET_EXTENDED` readings,
//! as linuxptp's `sysoff.c` and chrony do), keeps the offset and the rate between the last two
//! samples, and converts each NIC stamp by interpolation. A conversion from a sample older than
//! [`MAX_AGE`], or one whose window is wider than [`MAX_WINDOW_NS`], is not trusted: that input is
//! restamped as before, and counted. The source of samples is a trait, so tests drive the whole
//! path with a fake clock (offset, drift, a step); `docs/operations.md` ("NIC time") says that on a
//! real NIC this path is verified by that simulation only, until a NIC host runs it.

use std::{
    fs::OpenOptions,
    io,
    os::fd::{AsFd as _, OwnedFd},
    time::Duration,
};

use serde::Serialize;

use crate::sys;

/// How often a worker samples the PHC.
pub const REFRESH: Duration = Duration::from_millis(100);
/// A sample older than this converts nothing (the rate cannot be trusted that far).
pub const MAX_AGE: Duration = Duration::from_secs(2);
/// A sample whose system-clock window is wider than this is refused (a preempted read).
pub const MAX_WINDOW_NS: u64 = 50_000;
/// A sample this far from what the previous offset and rate predicted is a step of the clock: the
/// rate starts over from the new offset.
pub const STEP_NS: i64 = 1_000_000;
/// `PTP_SYS_OFFSET_EXTENDED` readings per sample; the narrowest window wins.
const EXTENDED_SAMPLES: u32 = 9;

/// One simultaneous reading of the PHC and CLOCK_TAI.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// The PHC, ns.
    pub phc_ns: u64,
    /// CLOCK_TAI at the same instant, ns.
    pub tai_ns: u64,
    /// The width of the system-clock window around the PHC read (0 when the hardware
    /// cross-timestamps): the sample's uncertainty.
    pub window_ns: u64,
}

/// Where samples come from: the NIC's PHC, or a fake clock in tests.
pub trait PhcSource: Send {
    /// One sample now.
    fn sample(&mut self) -> io::Result<Sample>;
    /// What it is (`/dev/ptp3, precise`), for `status`.
    fn describe(&self) -> String;
}

/// A NIC's PHC, `/dev/ptp<index>`.
#[derive(Debug)]
pub struct Phc {
    fd: OwnedFd,
    index: u32,
    precise: bool,
}

impl Phc {
    /// The PHC of `ifname`, if its driver has one; probes whether it cross-timestamps.
    pub fn of_interface(ifname: &str) -> io::Result<Option<Self>> {
        let Some(index) = sys::phc_index(ifname)? else { return Ok(None) };
        let file = OpenOptions::new().read(true).open(format!("/dev/ptp{index}"))?;
        let fd: OwnedFd = file.into();
        let precise = sys::ptp_offset_precise(fd.as_fd()).is_ok();
        Ok(Some(Self { fd, index, precise }))
    }
}

impl PhcSource for Phc {
    fn sample(&mut self) -> io::Result<Sample> {
        let tai_offset = sys::tai_offset_ns();
        if self.precise {
            let (phc_ns, realtime) = sys::ptp_offset_precise(self.fd.as_fd())?;
            return Ok(Sample { phc_ns, tai_ns: realtime + tai_offset, window_ns: 0 });
        }
        let readings = sys::ptp_offset_extended(self.fd.as_fd(), EXTENDED_SAMPLES)?;
        narrowest(&readings, tai_offset).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))
    }

    fn describe(&self) -> String {
        format!("/dev/ptp{}, {}", self.index, if self.precise { "precise" } else { "extended" })
    }
}

/// The reading with the narrowest `(before, phc, after)` window, as a sample: the PHC against
/// the middle of its window.
fn narrowest(readings: &[[u64; 3]], tai_offset: u64) -> Option<Sample> {
    readings
        .iter()
        .filter(|[before, _, after]| after >= before)
        .min_by_key(|[before, _, after]| after - before)
        .map(|&[before, phc_ns, after]| Sample {
            phc_ns,
            tai_ns: before + (after - before) / 2 + tai_offset,
            window_ns: after - before,
        })
}

/// What a conversion counted, and the current fit, for `status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PhcReport {
    /// The source (`/dev/ptp3, precise`).
    pub source: String,
    /// CLOCK_TAI − PHC at the last sample, ns.
    pub offset_ns: i64,
    /// The last sample's window (its uncertainty), ns.
    pub window_ns: u64,
    /// The PHC's rate against CLOCK_TAI, parts per billion (from the last two samples).
    pub rate_ppb: i64,
    /// Samples taken.
    pub samples: u64,
    /// Samples refused (too wide a window, or the read failed).
    pub samples_refused: u64,
    /// Steps of the clock detected.
    pub steps: u64,
}

/// The PHC → CLOCK_TAI fit of one worker.
pub struct Conversion {
    source: Box<dyn PhcSource>,
    last: Option<Sample>,
    /// d(offset)/d(phc) from the last two samples.
    rate: f64,
    report: PhcReport,
}

impl std::fmt::Debug for Conversion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversion")
            .field("last", &self.last)
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

impl Conversion {
    /// A fit fed by `source` (sampled once now).
    pub fn new(source: Box<dyn PhcSource>) -> Self {
        let report = PhcReport { source: source.describe(), ..PhcReport::default() };
        let mut c = Self { source, last: None, rate: 0.0, report };
        c.refresh();
        c
    }

    /// Takes a sample and updates the fit (call every [`REFRESH`]).
    pub fn refresh(&mut self) {
        let Ok(s) = self.source.sample() else {
            self.report.samples_refused += 1;
            return;
        };
        if s.window_ns > MAX_WINDOW_NS {
            self.report.samples_refused += 1;
            return;
        }
        self.report.samples += 1;
        let offset = s.tai_ns as i64 - s.phc_ns as i64;
        if let Some(last) = self.last {
            let predicted = self.convert(s.phc_ns, &last) as i64;
            let elapsed = s.phc_ns as i64 - last.phc_ns as i64;
            if (predicted - s.tai_ns as i64).abs() > STEP_NS || elapsed <= 0 {
                // A step (or a PHC that went backwards): start over from this offset.
                self.report.steps += 1;
                self.rate = 0.0;
            } else {
                let last_offset = last.tai_ns as i64 - last.phc_ns as i64;
                self.rate = (offset - last_offset) as f64 / elapsed as f64;
            }
        }
        self.last = Some(s);
        self.report.offset_ns = offset;
        self.report.window_ns = s.window_ns;
        self.report.rate_ppb = (self.rate * 1e9).round() as i64;
    }

    fn convert(&self, phc_ns: u64, at: &Sample) -> u64 {
        let since = phc_ns as i64 - at.phc_ns as i64;
        let tai = at.tai_ns as i64 + since + (self.rate * since as f64) as i64;
        u64::try_from(tai).unwrap_or(0)
    }

    /// `phc_ns` in CLOCK_TAI, if the fit is fresh (its sample is at most [`MAX_AGE`] older than
    /// `now_tai_ns`); `None` otherwise.
    pub fn to_tai(&self, phc_ns: u64, now_tai_ns: u64) -> Option<u64> {
        let last = self.last?;
        (now_tai_ns.saturating_sub(last.tai_ns) <= MAX_AGE.as_nanos() as u64)
            .then(|| self.convert(phc_ns, &last))
    }

    /// The fit and its counters.
    pub fn report(&self) -> PhcReport {
        self.report.clone()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A fake PHC: `phc = (tai - offset) * (1 + drift)`, stepped by `step` at `step_at`, sampled
    /// at the TAI times the test sets; a window per sample.
    #[derive(Clone, Debug, Default)]
    pub(crate) struct FakePhc {
        pub(crate) now_tai: Arc<Mutex<u64>>,
        pub(crate) offset: i64,
        pub(crate) drift_ppb: i64,
        pub(crate) step: i64,
        pub(crate) step_at: u64,
        pub(crate) window_ns: u64,
    }

    impl FakePhc {
        /// The PHC's reading at `tai`.
        pub(crate) fn phc_at(&self, tai: u64) -> u64 {
            let base = tai as i64 - self.offset;
            let drifted = base + (base as i128 * self.drift_ppb as i128 / 1_000_000_000) as i64;
            (drifted + if tai >= self.step_at && self.step_at > 0 { self.step } else { 0 }) as u64
        }
    }

    impl PhcSource for FakePhc {
        fn sample(&mut self) -> io::Result<Sample> {
            let tai = *self.now_tai.lock().map_err(|_| io::Error::other("poisoned"))?;
            Ok(Sample { phc_ns: self.phc_at(tai), tai_ns: tai, window_ns: self.window_ns })
        }
        fn describe(&self) -> String {
            "fake".into()
        }
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn offset_and_drift_are_followed_to_within_a_few_ns() {
        let fake = FakePhc { offset: 37 * S as i64 + 12_345, drift_ppb: 40_000, ..FakePhc::default() };
        let clock = Arc::clone(&fake.now_tai);
        *clock.lock().unwrap() = 1_000 * S;
        let mut c = Conversion::new(Box::new(fake.clone()));
        for step in 1..=10 {
            *clock.lock().unwrap() = 1_000 * S + step * REFRESH.as_nanos() as u64;
            c.refresh();
        }
        let now = 1_000 * S + 10 * REFRESH.as_nanos() as u64;
        for later in [0, 50_000_000, 99_000_000] {
            let tai = now + later;
            let got = c.to_tai(fake.phc_at(tai), tai).expect("fresh");
            assert!((got as i64 - tai as i64).abs() < 10, "{later}: off by {}", got as i64 - tai as i64);
        }
        let r = c.report();
        assert!((r.rate_ppb + 40_000).abs() < 5, "{r:?}");
        assert_eq!((r.samples, r.steps), (11, 0));
    }

    #[test]
    fn a_step_restarts_the_fit_and_stale_or_wide_samples_convert_nothing() {
        let fake = FakePhc {
            offset: 5 * S as i64,
            step: 3_000_000,
            step_at: 2_000 * S + 250_000_000,
            ..FakePhc::default()
        };
        let clock = Arc::clone(&fake.now_tai);
        *clock.lock().unwrap() = 2_000 * S;
        let mut c = Conversion::new(Box::new(fake.clone()));
        for step in 1..=5u64 {
            *clock.lock().unwrap() = 2_000 * S + step * 100_000_000;
            c.refresh();
        }
        assert_eq!(c.report().steps, 1);
        let tai = 2_000 * S + 550_000_000;
        let got = c.to_tai(fake.phc_at(tai), tai).expect("fresh");
        assert!((got as i64 - tai as i64).abs() < 10, "after the step: off by {}", got as i64 - tai as i64);
        assert_eq!(c.to_tai(fake.phc_at(tai), tai + 3 * S), None, "a stale fit converts nothing");
        let wide = FakePhc { window_ns: MAX_WINDOW_NS + 1, ..fake };
        let c = Conversion::new(Box::new(wide));
        assert_eq!((c.report().samples, c.report().samples_refused), (0, 1));
        assert_eq!(c.to_tai(1, 2_000 * S), None);
    }

    #[test]
    fn the_narrowest_extended_reading_wins() {
        let readings = [[100, 5_000, 400], [1_000, 5_600, 1_040], [2_000, 6_500, 2_500]];
        let s = narrowest(&readings, 37 * S).expect("a sample");
        assert_eq!(s, Sample { phc_ns: 5_600, tai_ns: 1_020 + 37 * S, window_ns: 40 });
        assert_eq!(narrowest(&[[10, 1, 5]], 0), None, "a window that runs backwards is refused");
    }
}
