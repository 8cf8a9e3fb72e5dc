//! The [`Quota`] (how many requests per window, how many at once) and the GCRA arithmetic
//! that enforces it.
//!
//! GCRA — the generic cell rate algorithm — keeps one number per key, the *theoretical
//! arrival time* (TAT): when the key's bucket would be empty again if requests kept arriving
//! at the permitted rate. With emission interval `T = window / limit` and burst `b`, a request
//! at `now` is allowed when `max(TAT, now) + T - now <= b·T`, and then TAT becomes
//! `max(TAT, now) + T`. A key whose TAT is in the past is indistinguishable from a key never
//! seen, which is what lets the limiter forget it.

use std::num::NonZeroU32;
use std::time::Duration;

use super::Decision;
use crate::error::ConfigError;

/// A rate: `limit` requests per `window`, with up to `burst` at once (default `limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    limit: NonZeroU32,
    window: Duration,
    burst: NonZeroU32,
}

impl Quota {
    /// `requests` per `window`, burst = `requests`. Refuses zero requests (field `requests`)
    /// and a zero or absurdly long (more than 100 years) window (field `window`).
    pub fn new(requests: u32, window: Duration) -> Result<Self, ConfigError> {
        let limit = NonZeroU32::new(requests)
            .ok_or_else(|| ConfigError::new("requests", "must be at least 1"))?;
        if window.is_zero() {
            return Err(ConfigError::new("window", "must be greater than 0"));
        }
        if window > Duration::from_secs(100 * 365 * 24 * 3600) {
            return Err(ConfigError::new("window", "must be at most 100 years"));
        }
        Ok(Self {
            limit,
            window,
            burst: limit,
        })
    }

    /// The same rate allowing `burst` requests at once (at least 1).
    pub fn with_burst(self, burst: u32) -> Result<Self, ConfigError> {
        let burst = NonZeroU32::new(burst)
            .ok_or_else(|| ConfigError::new("burst", "must be at least 1"))?;
        let quota = Self { burst, ..self };
        if quota
            .emission_nanos()
            .checked_mul(u64::from(burst.get()))
            .is_none()
        {
            return Err(ConfigError::new(
                "burst",
                "burst times the interval is too long",
            ));
        }
        Ok(quota)
    }

    /// Requests per window (what `RateLimit-Limit` announces).
    pub fn limit(&self) -> NonZeroU32 {
        self.limit
    }

    /// The window the limit applies to.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Requests allowed at once.
    pub fn burst(&self) -> NonZeroU32 {
        self.burst
    }

    /// The steady-state spacing of requests, `window / limit` (rounded up to a nanosecond,
    /// so the limiter never allows more than `limit` per window in the long run).
    pub fn emission_interval(&self) -> Duration {
        Duration::from_nanos(self.emission_nanos())
    }

    fn emission_nanos(&self) -> u64 {
        // The window is at most 100 years, which fits in u64 nanoseconds.
        let window = u64::try_from(self.window.as_nanos()).unwrap_or(u64::MAX);
        window.div_ceil(u64::from(self.limit.get()))
    }

    pub(crate) fn gcra(&self) -> Gcra {
        let emission = self.emission_nanos().max(1);
        Gcra {
            emission,
            tolerance: emission.saturating_mul(u64::from(self.burst.get())),
            limit: self.limit.get(),
        }
    }
}

/// The quota in nanoseconds, ready for [`Gcra::check`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gcra {
    emission: u64,
    tolerance: u64,
    limit: u32,
}

impl Gcra {
    /// Decides a request at `now` for a key whose stored TAT is `tat` (`None`: unknown key).
    /// Returns the TAT to store (`None` when refused: nothing changes) and the decision.
    pub(crate) fn check(&self, tat: Option<u64>, now: u64) -> (Option<u64>, Decision) {
        let tat = tat.unwrap_or(now).max(now);
        let new_tat = tat.saturating_add(self.emission);
        let allowed_at = new_tat.saturating_sub(self.tolerance);
        if now >= allowed_at {
            let used = new_tat - now;
            let remaining = (self.tolerance - used) / self.emission;
            let decision = Decision {
                allowed: true,
                limit: self.limit,
                remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
                reset_after: Duration::from_nanos(used),
                retry_after: None,
            };
            (Some(new_tat), decision)
        } else {
            let decision = Decision {
                allowed: false,
                limit: self.limit,
                remaining: 0,
                reset_after: Duration::from_nanos(tat - now),
                retry_after: Some(Duration::from_nanos(allowed_at - now)),
            };
            (None, decision)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_quotas_name_their_field() {
        assert_eq!(
            Quota::new(0, Duration::from_secs(1)).unwrap_err().field,
            "requests"
        );
        assert_eq!(Quota::new(1, Duration::ZERO).unwrap_err().field, "window");
        let q = Quota::new(1, Duration::from_secs(1)).unwrap();
        assert_eq!(q.with_burst(0).unwrap_err().field, "burst");
        let long = Quota::new(1, Duration::from_secs(3_000_000_000)).unwrap();
        assert_eq!(long.with_burst(u32::MAX).unwrap_err().field, "burst");
    }

    #[test]
    fn emission_interval_rounds_up() {
        let q = Quota::new(3, Duration::from_secs(1)).unwrap();
        assert_eq!(q.emission_interval(), Duration::from_nanos(333_333_334));
        assert_eq!(q.burst().get(), 3);
    }

    #[test]
    fn gcra_allows_burst_then_spaces_requests() {
        let gcra = Quota::new(2, Duration::from_nanos(20))
            .unwrap()
            .with_burst(3)
            .unwrap()
            .gcra();
        let mut tat = None;
        for remaining in [2, 1, 0] {
            let (next, d) = gcra.check(tat, 0);
            assert!(d.allowed);
            assert_eq!(d.remaining, remaining);
            tat = next;
        }
        let (next, d) = gcra.check(tat, 0);
        assert_eq!(next, None);
        assert_eq!(d.retry_after, Some(Duration::from_nanos(10)));
        assert_eq!(d.reset_after, Duration::from_nanos(30));
        let (_, d) = gcra.check(tat, 10);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
    }
}
