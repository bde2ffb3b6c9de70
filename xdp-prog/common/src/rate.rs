//! Per-source token buckets that shed floods on game ports, before the redirect.
//!
//! The XDP program keeps one [`Bucket`] per source address and CPU and calls [`admit`] for every
//! packet the classifier would steer; userspace sets the [`RateConfig`]. The arithmetic is
//! integer only and cannot overflow or divide, so it is the same in the verifier and in host
//! tests.
//!
//! Tokens are kept in nano-tokens: every nanosecond adds `rate` and a packet costs
//! [`NANOS_PER_SEC`], so refill is `elapsed_ns * rate` with no rounding loss. The product is only
//! formed once `elapsed_ns` is known to be at most the time to fill the bucket, where it cannot
//! overflow: checked or saturating 64-bit multiplication would need a 128-bit multiply, which
//! the BPF backend cannot emit (`__multi3`).

/// Nanoseconds per second; also the cost of one packet in nano-tokens.
pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Largest burst the nano-token arithmetic represents (`u64::MAX / 10^9`, about 1.8e10 packets);
/// larger bursts are clamped to it.
pub const MAX_BURST: u64 = u64::MAX / NANOS_PER_SEC;

/// Rate limit set by userspace, shared by every source. Native byte order, as the map stores it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct RateConfig {
    /// Sustained packets per second allowed per source (per CPU); 0 disables the limit.
    pub rate: u64,
    /// Packets a source may send back to back after being idle; 0 is taken as 1, since a bucket
    /// that holds no packet would admit nothing at any rate.
    pub burst: u64,
}

/// Bytes of a [`RateConfig`] in the config map.
pub const RATE_CONFIG_LEN: usize = core::mem::size_of::<RateConfig>();
const _: () = assert!(RATE_CONFIG_LEN == 16);

impl RateConfig {
    /// No limit: every packet is admitted and no bucket is touched.
    pub const DISABLED: Self = Self { rate: 0, burst: 0 };

    /// Whether the limit applies.
    #[inline(always)]
    pub fn enabled(&self) -> bool {
        self.rate != 0
    }

    /// Bucket capacity in nano-tokens.
    #[inline(always)]
    fn capacity(&self) -> u64 {
        // Clamped first, so the product cannot overflow.
        self.burst.clamp(1, MAX_BURST) * NANOS_PER_SEC
    }

    /// The value as the config map stores it.
    pub fn to_ne_bytes(&self) -> [u8; RATE_CONFIG_LEN] {
        let mut out = [0u8; RATE_CONFIG_LEN];
        let (rate, burst) = out.split_at_mut(8);
        rate.copy_from_slice(&self.rate.to_ne_bytes());
        burst.copy_from_slice(&self.burst.to_ne_bytes());
        out
    }

    /// Reads the value the config map stores.
    pub fn from_ne_bytes(bytes: &[u8; RATE_CONFIG_LEN]) -> Self {
        let (rate, burst) = bytes.split_at(8);
        let u64_of = |b: &[u8]| {
            let mut v = [0u8; 8];
            v.copy_from_slice(b);
            u64::from_ne_bytes(v)
        };
        Self { rate: u64_of(rate), burst: u64_of(burst) }
    }
}

/// One source's bucket on one CPU.
///
/// The all-zero bucket is a source not seen yet (on this CPU): it starts full. The per-CPU map
/// zero-fills the other CPUs' slots when a source is first inserted, and `bpf_ktime_get_ns` is
/// never 0 once programs run, so zero cannot be mistaken for a real refill time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Bucket {
    /// Tokens left, in nano-tokens (one packet = [`NANOS_PER_SEC`]).
    pub tokens: u64,
    /// Monotonic time of the last refill, ns; 0 for a bucket never used.
    pub last_refill_ns: u64,
}

/// Refills `bucket` up to `now_ns` and takes one packet's token from it if there is one.
/// Returns whether the packet is admitted. A disabled `config` admits without touching the bucket.
///
/// A clock that goes backwards (a bucket last refilled later than `now_ns`) refills nothing and
/// keeps the later time, so the same interval is never credited twice.
#[inline(always)]
pub fn admit(bucket: &mut Bucket, now_ns: u64, config: &RateConfig) -> bool {
    if !config.enabled() {
        return true;
    }
    let capacity = config.capacity();
    // Time to fill an empty bucket, floored: any longer gap fills it whatever it held.
    let Some(fill_ns) = capacity.checked_div(config.rate) else {
        return true;
    };
    // A bucket from a larger burst than the current config holds more than the cap; spending
    // from it as is would let the old burst through once more.
    bucket.tokens = bucket.tokens.min(capacity);
    if bucket.last_refill_ns == 0 {
        bucket.tokens = capacity;
        bucket.last_refill_ns = now_ns;
    } else if now_ns > bucket.last_refill_ns {
        let elapsed = now_ns - bucket.last_refill_ns;
        let deficit = capacity - bucket.tokens;
        // elapsed <= floor(capacity / rate) here, so elapsed * rate <= capacity.
        bucket.tokens = if elapsed > fill_ns || elapsed * config.rate >= deficit {
            capacity
        } else {
            bucket.tokens + elapsed * config.rate
        };
        bucket.last_refill_ns = now_ns;
    }
    if bucket.tokens >= NANOS_PER_SEC {
        bucket.tokens -= NANOS_PER_SEC;
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const T0: u64 = 5 * NANOS_PER_SEC;

    fn config(rate: u64, burst: u64) -> RateConfig {
        RateConfig { rate, burst }
    }

    /// How many of `n` packets at the same instant are admitted.
    fn admitted(bucket: &mut Bucket, now_ns: u64, config: &RateConfig, n: usize) -> usize {
        (0..n).filter(|_| admit(bucket, now_ns, config)).count()
    }

    #[test]
    fn a_new_source_gets_its_burst_and_no_more() {
        let c = config(10, 5);
        let mut b = Bucket::default();
        assert_eq!(admitted(&mut b, T0, &c, 20), 5);
        assert_eq!(b, Bucket { tokens: 0, last_refill_ns: T0 });
    }

    #[test]
    fn refill_is_exact_at_token_boundaries() {
        let c = config(10, 5);
        let mut b = Bucket::default();
        admitted(&mut b, T0, &c, 5);
        // 10 pps: one token per 100 ms, with no rounding carried across calls.
        assert!(!admit(&mut b, T0 + 100 * MS - 1, &c));
        assert!(admit(&mut b, T0 + 100 * MS, &c));
        assert!(!admit(&mut b, T0 + 100 * MS, &c));
        for step in 1..=30u64 {
            assert!(!admit(&mut b, T0 + 100 * MS + step * 3 * MS, &c), "step {step}");
        }
        // 30 slices of 3 ms plus 10 ms make the next 100 ms: the fractions add up.
        assert!(admit(&mut b, T0 + 200 * MS, &c));
    }

    #[test]
    fn sustained_rate_is_the_configured_rate() {
        let c = config(1000, 1);
        let mut b = Bucket::default();
        // A sender at 4000 pps for one second gets the burst plus 1000 refills.
        let passed = (0..4000u64).filter(|i| admit(&mut b, T0 + i * NANOS_PER_SEC / 4000, &c)).count();
        assert_eq!(passed, 1 + 999);
    }

    #[test]
    fn refill_stops_at_the_burst() {
        let c = config(10, 5);
        let mut b = Bucket::default();
        admitted(&mut b, T0, &c, 5);
        // An hour idle refills 36000 tokens' worth, capped at 5.
        assert_eq!(admitted(&mut b, T0 + 3600 * NANOS_PER_SEC, &c, 20), 5);
    }

    #[test]
    fn time_going_backwards_refills_nothing_and_keeps_the_later_time() {
        let c = config(10, 5);
        let mut b = Bucket::default();
        admitted(&mut b, T0, &c, 5);
        assert!(!admit(&mut b, T0 - NANOS_PER_SEC, &c));
        assert_eq!(b.last_refill_ns, T0);
        // Had the earlier time been kept, this would credit 1.05 s (10 tokens) instead of 50 ms.
        assert!(!admit(&mut b, T0 + 50 * MS, &c));
        assert!(admit(&mut b, T0 + 100 * MS, &c));
    }

    #[test]
    fn huge_gaps_and_rates_saturate_to_the_cap() {
        for (rate, burst) in [(1, 3), (u64::MAX, 3), (u64::MAX / 2, 7), (1 << 40, 2)] {
            let c = config(rate, burst);
            let mut b = Bucket { tokens: 0, last_refill_ns: 1 };
            assert_eq!(admitted(&mut b, u64::MAX, &c, 10), burst as usize, "rate {rate}");
        }
    }

    #[test]
    fn u64_extremes_do_not_overflow() {
        let c = config(u64::MAX, u64::MAX);
        let mut b = Bucket::default();
        assert!(admit(&mut b, u64::MAX, &c));
        assert_eq!(b.tokens, MAX_BURST * NANOS_PER_SEC - NANOS_PER_SEC);
        let mut full = Bucket { tokens: u64::MAX, last_refill_ns: 1 };
        assert!(admit(&mut full, u64::MAX, &c));
        let mut b = Bucket { tokens: u64::MAX, last_refill_ns: u64::MAX };
        assert!(admit(&mut b, 1, &config(1, 1)));
        assert!(!admit(&mut b, 1, &config(1, 1)), "an oversized bucket is clamped to the burst");
    }

    #[test]
    fn rate_zero_is_disabled_and_leaves_the_bucket_alone() {
        let mut b = Bucket { tokens: 0, last_refill_ns: T0 };
        assert_eq!(admitted(&mut b, T0, &RateConfig::DISABLED, 1000), 1000);
        assert_eq!(admitted(&mut b, T0, &config(0, 5), 1000), 1000);
        assert_eq!(b, Bucket { tokens: 0, last_refill_ns: T0 });
    }

    #[test]
    fn burst_zero_holds_one_packet() {
        let c = config(10, 0);
        let mut b = Bucket::default();
        assert_eq!(admitted(&mut b, T0, &c, 5), 1);
        assert_eq!(admitted(&mut b, T0 + 100 * MS, &c, 5), 1);
    }

    #[test]
    fn a_smaller_burst_takes_effect_on_existing_buckets() {
        let mut b = Bucket::default();
        admitted(&mut b, T0, &config(10, 100), 1);
        assert_eq!(admitted(&mut b, T0, &config(10, 2), 10), 2);
    }

    #[test]
    fn config_bytes_round_trip() {
        let c = config(0x0102_0304_0506_0708, u64::MAX - 1);
        assert_eq!(RateConfig::from_ne_bytes(&c.to_ne_bytes()), c);
        assert_eq!(&c.to_ne_bytes()[..8], &c.rate.to_ne_bytes());
    }
}
