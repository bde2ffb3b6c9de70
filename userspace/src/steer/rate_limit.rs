//! The per-source flood-shedding limit as the CLI takes it (`PPS[:BURST]`) and the XDP program's
//! config map stores it.

use std::{fmt, str::FromStr};

use serde::Serialize;
use tickgate_common::rate::{MAX_BURST, RateConfig};

/// Packets per second and burst allowed to each source address on game ports.
///
/// The XDP program keeps one token bucket per source and CPU, so a source whose packets RSS
/// spreads over several RX queues gets this budget on each of those CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    /// Sustained packets per second per source.
    pub packets_per_second: u64,
    /// Packets a source may send back to back after being idle (the bucket size).
    pub burst: u64,
}

/// Why a `PPS[:BURST]` string is not a rate limit. Each message says what is accepted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    /// A part is not a decimal integer.
    #[error("{part:?} is not a whole number: expected PPS or PPS:BURST, e.g. 200 or 200:50")]
    NotANumber {
        /// The offending part.
        part: String,
    },
    /// Zero packets per second.
    #[error(
        "a rate of 0 packets per second would drop every game packet; leave the rate limit out to disable it"
    )]
    ZeroRate,
    /// A burst of zero.
    #[error("a burst of 0 would drop every game packet; the burst must be at least 1")]
    ZeroBurst,
    /// A burst the XDP arithmetic cannot hold.
    #[error("a burst of {burst} is too large: at most {MAX_BURST} packets")]
    BurstTooLarge {
        /// The burst given.
        burst: u64,
    },
}

impl RateLimit {
    /// `packets_per_second` with the default burst: a tenth of a second of traffic, at least 1
    /// packet. Enough for a client that catches up after a short stall, small enough that a new
    /// flooding source gets little through before it is shed.
    pub fn with_default_burst(packets_per_second: u64) -> Result<Self, RateLimitError> {
        Self::new(packets_per_second, (packets_per_second / 10).max(1))
    }

    /// A checked rate limit.
    pub fn new(packets_per_second: u64, burst: u64) -> Result<Self, RateLimitError> {
        if packets_per_second == 0 {
            return Err(RateLimitError::ZeroRate);
        }
        if burst == 0 {
            return Err(RateLimitError::ZeroBurst);
        }
        if burst > MAX_BURST {
            return Err(RateLimitError::BurstTooLarge { burst });
        }
        Ok(Self { packets_per_second, burst })
    }

    /// The value the XDP program's config map holds for `limit` (`None`: disabled).
    pub fn config(limit: Option<Self>) -> RateConfig {
        limit.map_or(RateConfig::DISABLED, |l| RateConfig { rate: l.packets_per_second, burst: l.burst })
    }

    /// The limit a config map value stands for (`None`: disabled).
    pub fn from_config(config: RateConfig) -> Option<Self> {
        config.enabled().then_some(Self { packets_per_second: config.rate, burst: config.burst.max(1) })
    }
}

impl FromStr for RateLimit {
    type Err = RateLimitError;

    /// `PPS` (default burst, see [`RateLimit::with_default_burst`]) or `PPS:BURST`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let number = |part: &str| {
            part.trim().parse::<u64>().map_err(|_| RateLimitError::NotANumber { part: part.to_owned() })
        };
        match s.split_once(':') {
            Some((pps, burst)) => Self::new(number(pps)?, number(burst)?),
            None => Self::with_default_burst(number(s)?),
        }
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} pps per source, burst {}", self.packets_per_second, self.burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(pps: u64, burst: u64) -> RateLimit {
        RateLimit { packets_per_second: pps, burst }
    }

    #[test]
    fn parses_pps_and_pps_burst() {
        assert_eq!("200:50".parse(), Ok(limit(200, 50)));
        assert_eq!("200".parse(), Ok(limit(200, 20)));
        assert_eq!("5".parse(), Ok(limit(5, 1)), "the default burst is at least one packet");
        assert_eq!("10:1".parse(), Ok(limit(10, 1)));
        assert_eq!(format!("{MAX_BURST}:{MAX_BURST}").parse(), Ok(limit(MAX_BURST, MAX_BURST)));
    }

    #[test]
    fn rejects_what_would_drop_everything_or_cannot_be_represented() {
        assert_eq!("0".parse::<RateLimit>(), Err(RateLimitError::ZeroRate));
        assert_eq!("0:5".parse::<RateLimit>(), Err(RateLimitError::ZeroRate));
        assert_eq!("100:0".parse::<RateLimit>(), Err(RateLimitError::ZeroBurst));
        let burst = MAX_BURST + 1;
        assert_eq!(format!("100:{burst}").parse::<RateLimit>(), Err(RateLimitError::BurstTooLarge { burst }));
        for bad in ["", "fast", "100:", ":5", "1:2:3", "-1", "1.5", "100:x"] {
            assert!(
                matches!(bad.parse::<RateLimit>(), Err(RateLimitError::NotANumber { .. })),
                "{bad:?} was accepted"
            );
        }
        let message = "abc".parse::<RateLimit>().unwrap_err().to_string();
        assert!(message.contains("PPS:BURST"), "{message}");
    }

    #[test]
    fn config_round_trip_and_disabled() {
        let l = limit(1000, 100);
        assert_eq!(RateLimit::config(Some(l)), RateConfig { rate: 1000, burst: 100 });
        assert_eq!(RateLimit::from_config(RateLimit::config(Some(l))), Some(l));
        assert_eq!(RateLimit::config(None), RateConfig::DISABLED);
        assert_eq!(RateLimit::from_config(RateConfig::DISABLED), None);
        assert_eq!(RateLimit::from_config(RateConfig { rate: 0, burst: 9 }), None);
    }
}
