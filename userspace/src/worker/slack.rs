//! How far a worker's watermark trails "now" when its ring is drained: a fixed slack, or one
//! measured from the queue's own stamp → visible delays (the adaptive slack).
//!
//! A watermark `W` promises the sequencer that no input stamped before `W` will still come from
//! this queue. A packet stamped at the XDP hook becomes visible in the ring only when the
//! driver's NAPI poll publishes the ring's producer index, so a worker that finds its ring empty
//! at `t` can only promise `t − d`, where `d` bounds that delay. The fixed rule takes `d` as a
//! configured constant (500 µs by default: safe, and slow, since every tick then closes at
//! least that late). The adaptive rule measures `d` on the queue: the delay of every packet
//! (its batch's start − its stamp, an upper bound of when it became visible) goes into a
//! power-of-two histogram of the last 100–200 ms, and the slack is the upper edge of the bucket
//! holding a high quantile, plus a margin, within a floor and a ceiling. A delay above the slack
//! raises it at once; it only comes down window by window. What the rule still gets wrong shows
//! as late inputs (`late_next`/`late_dropped`), never as a silent reorder.

use serde::Serialize;

use super::DELAY_BUCKETS;

/// A queue's slack rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SlackRule {
    /// Always this many ns.
    Fixed(u64),
    /// Measured.
    Adaptive(AdaptiveSlack),
}

impl Default for SlackRule {
    /// 500 µs: above any veth or NIC NAPI poll seen, and well below the default 2 ms grace.
    fn default() -> Self {
        Self::Fixed(500_000)
    }
}

/// The adaptive slack's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct AdaptiveSlack {
    /// Never below this, ns.
    pub floor_ns: u64,
    /// Never above this, ns (and where a queue starts, before it has measured anything).
    pub ceiling_ns: u64,
    /// Added to the measured quantile, ns.
    pub margin_ns: u64,
    /// The quantile of the delays the slack covers, parts per million.
    pub quantile_ppm: u32,
}

impl Default for AdaptiveSlack {
    fn default() -> Self {
        Self { floor_ns: 20_000, ceiling_ns: 500_000, margin_ns: 20_000, quantile_ppm: 999_900 }
    }
}

/// One window of the estimator, ns.
const WINDOW_NS: u64 = 100_000_000;
/// Delays a window needs before the slack may come down on its evidence.
const MIN_SAMPLES: u64 = 64;

/// The slack of one queue.
#[derive(Clone, Debug)]
pub struct SlackEstimator {
    rule: Option<AdaptiveSlack>,
    current: [u64; DELAY_BUCKETS],
    previous: [u64; DELAY_BUCKETS],
    window_end_ns: u64,
    slack_ns: u64,
}

impl SlackEstimator {
    /// The estimator of `rule`.
    pub fn new(rule: SlackRule) -> Self {
        match rule {
            SlackRule::Fixed(ns) => Self::fixed(ns),
            SlackRule::Adaptive(a) => Self::adaptive(a),
        }
    }

    /// A fixed slack of `ns`.
    pub fn fixed(ns: u64) -> Self {
        Self {
            rule: None,
            current: [0; DELAY_BUCKETS],
            previous: [0; DELAY_BUCKETS],
            window_end_ns: 0,
            slack_ns: ns,
        }
    }

    /// An adaptive slack, starting at its ceiling.
    pub fn adaptive(rule: AdaptiveSlack) -> Self {
        let rule = AdaptiveSlack { floor_ns: rule.floor_ns.min(rule.ceiling_ns), ..rule };
        Self { rule: Some(rule), slack_ns: rule.ceiling_ns, ..Self::fixed(0) }
    }

    /// Whether the slack is measured (its delays matter), not fixed.
    pub fn measures(&self) -> bool {
        self.rule.is_some()
    }

    /// The slack to publish watermarks with now, ns.
    pub fn slack_ns(&self) -> u64 {
        self.slack_ns
    }

    /// One packet that became visible `delay_ns` after its stamp.
    pub fn observe(&mut self, delay_ns: u64) {
        let Some(rule) = self.rule else { return };
        self.current[bucket(delay_ns)] += 1;
        // Up at once: a delay the slack does not cover is an input about to be late.
        let needed = delay_ns.saturating_add(rule.margin_ns).min(rule.ceiling_ns);
        if needed > self.slack_ns {
            self.slack_ns = needed;
        }
    }

    /// Called now and then (the worker's 100 ms housekeeping): when a window is over, the slack
    /// is recomputed from it and the one before.
    pub fn tick(&mut self, now_ns: u64) {
        let Some(rule) = self.rule else { return };
        if now_ns < self.window_end_ns {
            return;
        }
        self.window_end_ns = now_ns + WINDOW_NS;
        let mut both = self.current;
        for (b, p) in both.iter_mut().zip(self.previous) {
            *b += p;
        }
        self.previous = std::mem::replace(&mut self.current, [0; DELAY_BUCKETS]);
        let total: u64 = both.iter().sum();
        if total < MIN_SAMPLES {
            // Too little evidence to come down; a late delay still raises it (observe).
            return;
        }
        let wanted = total.saturating_mul(u64::from(rule.quantile_ppm)).div_ceil(1_000_000).max(1);
        let mut seen = 0;
        let edge_ns = both
            .iter()
            .enumerate()
            .find_map(|(i, n)| {
                seen += n;
                (seen >= wanted).then_some(bucket_upper_ns(i))
            })
            .unwrap_or(rule.ceiling_ns);
        self.slack_ns = edge_ns.saturating_add(rule.margin_ns).clamp(rule.floor_ns, rule.ceiling_ns);
    }
}

/// The histogram bucket of a delay: bucket `i` holds delays below `2^i` µs and at least
/// `2^(i-1)` µs (bucket 0: below 1 µs); the last takes everything longer.
pub(super) fn bucket(delay_ns: u64) -> usize {
    let us = delay_ns / 1_000;
    ((u64::BITS - us.leading_zeros()) as usize).min(DELAY_BUCKETS - 1)
}

/// The upper edge of bucket `i`, ns.
fn bucket_upper_ns(i: usize) -> u64 {
    1_000u64.saturating_mul(1u64 << i.min(62))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_fixed_slack_never_moves() {
        let mut s = SlackEstimator::fixed(500_000);
        for d in [1_000, 900_000, 5_000] {
            s.observe(d);
            s.tick(d * 1_000);
        }
        assert_eq!(s.slack_ns(), 500_000);
    }

    #[test]
    fn the_adaptive_slack_starts_at_the_ceiling_and_comes_down_to_the_measured_delay() {
        let rule = AdaptiveSlack::default();
        let mut s = SlackEstimator::adaptive(rule);
        assert_eq!(s.slack_ns(), rule.ceiling_ns);
        // Delays of 5–7 µs: bucket [4, 8) µs, edge 8 µs, plus the 20 µs margin.
        for i in 0..1_000 {
            s.observe(5_000 + i % 3 * 1_000);
        }
        s.tick(0);
        assert_eq!(s.slack_ns(), 28_000);
        // Nothing for two windows: too little evidence, the slack stays.
        s.tick(200 * MS);
        s.tick(400 * MS);
        assert_eq!(s.slack_ns(), 28_000);
    }

    #[test]
    fn a_longer_delay_raises_the_slack_at_once_and_it_decays_by_windows() {
        let mut s = SlackEstimator::adaptive(AdaptiveSlack::default());
        for _ in 0..1_000 {
            s.observe(3_000);
        }
        s.tick(0);
        assert_eq!(s.slack_ns(), 24_000);
        s.observe(100_000);
        assert_eq!(s.slack_ns(), 120_000, "raised at once by the delay plus the margin");
        // The window that saw it and the next one still hold it (1 in 1001 > 0.01 %).
        for _ in 0..1_000 {
            s.observe(3_000);
        }
        s.tick(100 * MS);
        assert_eq!(s.slack_ns(), 128_000 + 20_000, "bucket [64, 128) µs edge plus margin");
        for _ in 0..1_000 {
            s.observe(3_000);
        }
        s.tick(200 * MS);
        for _ in 0..1_000 {
            s.observe(3_000);
        }
        s.tick(300 * MS);
        assert_eq!(s.slack_ns(), 24_000, "two windows without it: back down");
    }

    #[test]
    fn the_slack_stays_within_its_floor_and_ceiling() {
        let rule =
            AdaptiveSlack { floor_ns: 50_000, ceiling_ns: 200_000, margin_ns: 0, quantile_ppm: 999_000 };
        let mut s = SlackEstimator::adaptive(rule);
        for _ in 0..1_000 {
            s.observe(100);
        }
        s.tick(0);
        assert_eq!(s.slack_ns(), 50_000);
        s.observe(10 * MS);
        assert_eq!(s.slack_ns(), 200_000);
        for _ in 0..1_000 {
            s.observe(10 * MS);
        }
        s.tick(100 * MS);
        assert_eq!(s.slack_ns(), 200_000);
    }

    #[test]
    fn the_quantile_ignores_a_rare_outlier_once_its_windows_pass() {
        let rule = AdaptiveSlack { quantile_ppm: 990_000, ..AdaptiveSlack::default() };
        let mut s = SlackEstimator::adaptive(rule);
        for i in 0..1_000u64 {
            // 0.5 % at 300 µs: above the 99 % quantile.
            s.observe(if i % 200 == 0 { 300_000 } else { 10_000 });
        }
        s.tick(0);
        assert_eq!(s.slack_ns(), 16_000 + 20_000);
    }

    #[test]
    fn buckets_match_the_queue_histogram() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(999), 0);
        assert_eq!(bucket(1_000), 1);
        assert_eq!(bucket(3_999), 2);
        assert_eq!(bucket(4_000), 3);
        assert_eq!(bucket(u64::MAX), DELAY_BUCKETS - 1);
        assert_eq!(bucket_upper_ns(0), 1_000);
        assert_eq!(bucket_upper_ns(3), 8_000);
    }
}
