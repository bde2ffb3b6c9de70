//! Latency histograms for the demo and the lab traffic: percentiles to within 0.1 %, exact
//! extremes, constant memory.

use serde::Serialize;

/// Latencies in nanoseconds: an HdrHistogram with 3 significant digits (values kept to within
/// 0.1 %, min and max exact), constant memory whatever the run length.
#[derive(Clone, Debug)]
pub struct Histogram {
    values: hdrhistogram::Histogram<u64>,
    /// HdrHistogram keeps the extremes to its precision only.
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        // 3 significant digits is within HdrHistogram's 0..=5, and the bounds resize on demand.
        let values = hdrhistogram::Histogram::new(3).expect("3 significant digits are valid");
        Self { values, min: u64::MAX, max: 0 }
    }
}

impl Histogram {
    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Self) {
        if other.count() == 0 {
            return;
        }
        if self.values.add(&other.values).is_err() {
            for v in other.values.iter_recorded() {
                self.values.saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Adds one value (a value beyond what any histogram can track is clamped to that).
    pub fn record(&mut self, v: u64) {
        // `record` grows the histogram; clamping does not, so it is only for what cannot fit.
        if self.values.record(v).is_err() {
            self.values.saturating_record(v);
        }
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.values.len()
    }

    /// The largest value, exact (`None` if empty).
    pub fn max(&self) -> Option<u64> {
        (self.count() > 0).then_some(self.max)
    }

    /// The smallest value `v` such that at least `pct` % of the values are ≤ `v` (to within
    /// 0.1 %, never above the maximum); `None` if empty.
    pub fn percentile(&self, pct: f64) -> Option<u64> {
        let q = pct.clamp(0.0, 100.0) / 100.0;
        (self.count() > 0).then(|| self.values.value_at_quantile(q).clamp(self.min, self.max))
    }

    /// Percentiles in milliseconds, for the summary.
    pub fn summary_ms(&self) -> LatencySummary {
        let ms = |v: Option<u64>| v.map(|ns| ns as f64 / 1e6);
        LatencySummary {
            inputs: self.count(),
            min_ms: ms((self.count() > 0).then_some(self.min)),
            p50_ms: ms(self.percentile(50.0)),
            p90_ms: ms(self.percentile(90.0)),
            p99_ms: ms(self.percentile(99.0)),
            p999_ms: ms(self.percentile(99.9)),
            max_ms: ms(self.max()),
        }
    }
}

/// Latency percentiles in ms (`None` when nothing was measured).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Inputs measured.
    pub inputs: u64,
    /// Smallest.
    pub min_ms: Option<f64>,
    /// Median.
    pub p50_ms: Option<f64>,
    /// 90th percentile.
    pub p90_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// 99.9th percentile.
    pub p999_ms: Option<f64>,
    /// Largest.
    pub max_ms: Option<f64>,
}
