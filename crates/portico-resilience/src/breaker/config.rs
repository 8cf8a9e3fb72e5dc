//! The checked settings of a circuit breaker and the builder that checks them.
//!
//! A breaker runs in one of two modes:
//! - **consecutive** (seed 001, the default): the circuit opens after `failure_threshold`
//!   failures in a row; any success in between starts the count again.
//! - **rate** (Resilience4j style): chosen by setting a failure-rate and/or slow-call-rate
//!   threshold. Outcomes go into a sliding window (the last N calls, or the calls of the last
//!   T); once the window holds `minimum_calls`, the circuit opens when a rate reaches its
//!   threshold. `failure_threshold` is not used in this mode.
//!
//! In both modes the circuit stays open for `recovery_timeout`, then admits at most
//! `half_open_max_calls` trial calls.

use std::num::NonZeroU32;
use std::time::Duration;

use crate::error::ConfigError;
use crate::policy::UpstreamPolicy;

/// The largest count-based window accepted (one byte of memory per call).
const MAX_COUNT_WINDOW: u32 = 1_000_000;

/// Which recent calls the rates are computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlidingWindow {
    /// The last `n` calls.
    Count(NonZeroU32),
    /// The calls of the last `duration` (at least one second), kept in about one-second
    /// buckets (at most 3600 buckets; longer windows get wider buckets).
    Time(Duration),
}

/// Settings of the rate mode: thresholds, slow-call duration, window and minimum calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateConfig {
    failure_rate_threshold: Option<u8>,
    slow_call_rate_threshold: Option<u8>,
    slow_call_duration: Duration,
    window: SlidingWindow,
    minimum_calls: NonZeroU32,
}

impl RateConfig {
    /// Failure rate (percent, 1..=100) at or above which the circuit opens, if set.
    pub fn failure_rate_threshold(&self) -> Option<u8> {
        self.failure_rate_threshold
    }

    /// Slow-call rate (percent, 1..=100) at or above which the circuit opens, if set.
    pub fn slow_call_rate_threshold(&self) -> Option<u8> {
        self.slow_call_rate_threshold
    }

    /// A call taking at least this long counts as slow.
    pub fn slow_call_duration(&self) -> Duration {
        self.slow_call_duration
    }

    /// The sliding window the rates are computed over.
    pub fn window(&self) -> SlidingWindow {
        self.window
    }

    /// Calls the window must hold before rates are evaluated.
    pub fn minimum_calls(&self) -> NonZeroU32 {
        self.minimum_calls
    }

    /// Whether call durations must be measured.
    pub(crate) fn detects_slow_calls(&self) -> bool {
        self.slow_call_rate_threshold.is_some()
    }
}

/// The checked settings of a [`CircuitBreaker`](super::CircuitBreaker).
///
/// Build one with [`BreakerConfig::builder`]; [`Default`] is seed 001's breaker
/// (5 consecutive failures, 60 s recovery, 1 trial call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    failure_threshold: NonZeroU32,
    recovery_timeout: Duration,
    half_open_max_calls: NonZeroU32,
    rate: Option<RateConfig>,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN),
            recovery_timeout: Duration::from_secs(60),
            half_open_max_calls: NonZeroU32::MIN,
            rate: None,
        }
    }
}

impl BreakerConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> BreakerConfigBuilder {
        BreakerConfigBuilder::default()
    }

    /// Consecutive failures that open the circuit (consecutive mode).
    pub fn failure_threshold(&self) -> NonZeroU32 {
        self.failure_threshold
    }

    /// How long the circuit stays open before trial calls are admitted.
    pub fn recovery_timeout(&self) -> Duration {
        self.recovery_timeout
    }

    /// Trial calls admitted while half-open.
    pub fn half_open_max_calls(&self) -> NonZeroU32 {
        self.half_open_max_calls
    }

    /// The rate-mode settings, or `None` in consecutive mode.
    pub fn rate(&self) -> Option<&RateConfig> {
        self.rate.as_ref()
    }
}

impl From<UpstreamPolicy> for BreakerConfig {
    /// The breaker of a seed 001 upstream policy: its threshold and recovery timeout.
    fn from(policy: UpstreamPolicy) -> Self {
        Self {
            failure_threshold: policy.failure_threshold,
            recovery_timeout: policy.recovery_timeout,
            ..Self::default()
        }
    }
}

/// Collects raw breaker settings; [`build`](Self::build) checks them.
#[derive(Debug, Clone)]
pub struct BreakerConfigBuilder {
    failure_threshold: u32,
    recovery_timeout: Duration,
    half_open_max_calls: u32,
    failure_rate_threshold: Option<u32>,
    slow_call_rate_threshold: Option<u32>,
    slow_call_duration: Option<Duration>,
    window: Option<RawWindow>,
    minimum_calls: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
enum RawWindow {
    Count(u32),
    Time(Duration),
}

impl Default for BreakerConfigBuilder {
    fn default() -> Self {
        let defaults = BreakerConfig::default();
        Self {
            failure_threshold: defaults.failure_threshold.get(),
            recovery_timeout: defaults.recovery_timeout,
            half_open_max_calls: defaults.half_open_max_calls.get(),
            failure_rate_threshold: None,
            slow_call_rate_threshold: None,
            slow_call_duration: None,
            window: None,
            minimum_calls: None,
        }
    }
}

impl BreakerConfigBuilder {
    /// Consecutive failures that open the circuit (at least 1; default 5).
    pub fn failure_threshold(mut self, failures: u32) -> Self {
        self.failure_threshold = failures;
        self
    }

    /// Time the circuit stays open before trial calls (greater than zero; default 60 s).
    pub fn recovery_timeout(mut self, timeout: Duration) -> Self {
        self.recovery_timeout = timeout;
        self
    }

    /// Trial calls admitted while half-open (at least 1; default 1).
    pub fn half_open_max_calls(mut self, calls: u32) -> Self {
        self.half_open_max_calls = calls;
        self
    }

    /// Switches to rate mode: open when at least `percent` (1..=100) of the window failed.
    pub fn failure_rate_threshold(mut self, percent: u32) -> Self {
        self.failure_rate_threshold = Some(percent);
        self
    }

    /// Switches to rate mode: open when at least `percent` (1..=100) of the window was slow.
    pub fn slow_call_rate_threshold(mut self, percent: u32) -> Self {
        self.slow_call_rate_threshold = Some(percent);
        self
    }

    /// A call taking at least this long is slow (greater than zero; default 60 s).
    pub fn slow_call_duration(mut self, duration: Duration) -> Self {
        self.slow_call_duration = Some(duration);
        self
    }

    /// Rate mode over the last `calls` calls (1..=1 000 000; the default window is 100 calls).
    pub fn count_window(mut self, calls: u32) -> Self {
        self.window = Some(RawWindow::Count(calls));
        self
    }

    /// Rate mode over the calls of the last `window` (at least one second).
    pub fn time_window(mut self, window: Duration) -> Self {
        self.window = Some(RawWindow::Time(window));
        self
    }

    /// Calls the window must hold before rates count (default: the size of a count window,
    /// 10 for a time window; at most the size of a count window).
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.minimum_calls = Some(calls);
        self
    }

    /// Checks the settings; the error names the first offending field.
    pub fn build(self) -> Result<BreakerConfig, ConfigError> {
        let failure_threshold = NonZeroU32::new(self.failure_threshold)
            .ok_or_else(|| ConfigError::new("failure_threshold", "must be at least 1"))?;
        if self.recovery_timeout.is_zero() {
            return Err(ConfigError::new(
                "recovery_timeout",
                "must be greater than 0",
            ));
        }
        let half_open_max_calls = NonZeroU32::new(self.half_open_max_calls)
            .ok_or_else(|| ConfigError::new("half_open_max_calls", "must be at least 1"))?;
        Ok(BreakerConfig {
            failure_threshold,
            recovery_timeout: self.recovery_timeout,
            half_open_max_calls,
            rate: self.rate()?,
        })
    }

    fn rate(&self) -> Result<Option<RateConfig>, ConfigError> {
        let failure_rate_threshold =
            percent("failure_rate_threshold", self.failure_rate_threshold)?;
        let slow_call_rate_threshold =
            percent("slow_call_rate_threshold", self.slow_call_rate_threshold)?;
        if failure_rate_threshold.is_none() && slow_call_rate_threshold.is_none() {
            if self.window.is_some() || self.minimum_calls.is_some() {
                return Err(ConfigError::new(
                    "sliding_window",
                    "needs failure_rate_threshold or slow_call_rate_threshold",
                ));
            }
            return Ok(None);
        }
        let slow_call_duration = self.slow_call_duration.unwrap_or(Duration::from_secs(60));
        if slow_call_duration.is_zero() {
            return Err(ConfigError::new(
                "slow_call_duration",
                "must be greater than 0",
            ));
        }
        let window = match self.window.unwrap_or(RawWindow::Count(100)) {
            RawWindow::Count(calls) => match NonZeroU32::new(calls) {
                Some(n) if calls <= MAX_COUNT_WINDOW => SlidingWindow::Count(n),
                _ => {
                    return Err(ConfigError::new(
                        "sliding_window",
                        format!("a count window must hold 1..={MAX_COUNT_WINDOW} calls"),
                    ));
                }
            },
            RawWindow::Time(d) if d >= Duration::from_secs(1) => SlidingWindow::Time(d),
            RawWindow::Time(_) => {
                return Err(ConfigError::new(
                    "sliding_window",
                    "a time window must be at least 1s",
                ));
            }
        };
        let default_minimum = match window {
            SlidingWindow::Count(n) => n.get(),
            SlidingWindow::Time(_) => 10,
        };
        let minimum_calls = NonZeroU32::new(self.minimum_calls.unwrap_or(default_minimum))
            .ok_or_else(|| ConfigError::new("minimum_calls", "must be at least 1"))?;
        if let SlidingWindow::Count(n) = window
            && minimum_calls > n
        {
            return Err(ConfigError::new(
                "minimum_calls",
                format!("must not exceed the window size ({n})"),
            ));
        }
        Ok(Some(RateConfig {
            failure_rate_threshold,
            slow_call_rate_threshold,
            slow_call_duration,
            window,
            minimum_calls,
        }))
    }
}

fn percent(field: &'static str, value: Option<u32>) -> Result<Option<u8>, ConfigError> {
    match value {
        None => Ok(None),
        Some(p @ 1..=100) => Ok(u8::try_from(p).ok()),
        Some(_) => Err(ConfigError::new(field, "must be a percentage in 1..=100")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(builder: BreakerConfigBuilder) -> &'static str {
        builder.build().unwrap_err().field
    }

    #[test]
    fn defaults_are_seed_001() {
        let config = BreakerConfig::builder().build().unwrap();
        assert_eq!(config, BreakerConfig::default());
        assert_eq!(config.failure_threshold().get(), 5);
        assert_eq!(config.recovery_timeout(), Duration::from_secs(60));
        assert_eq!(config.half_open_max_calls().get(), 1);
        assert!(config.rate().is_none());
    }

    #[test]
    fn bad_settings_name_their_field() {
        let b = BreakerConfig::builder;
        assert_eq!(field(b().failure_threshold(0)), "failure_threshold");
        assert_eq!(
            field(b().recovery_timeout(Duration::ZERO)),
            "recovery_timeout"
        );
        assert_eq!(field(b().half_open_max_calls(0)), "half_open_max_calls");
        assert_eq!(
            field(b().failure_rate_threshold(0)),
            "failure_rate_threshold"
        );
        assert_eq!(
            field(b().failure_rate_threshold(101)),
            "failure_rate_threshold"
        );
        assert_eq!(
            field(b().slow_call_rate_threshold(101)),
            "slow_call_rate_threshold"
        );
        let slow = b().slow_call_rate_threshold(50);
        assert_eq!(
            field(slow.slow_call_duration(Duration::ZERO)),
            "slow_call_duration"
        );
        let rate = || b().failure_rate_threshold(50);
        assert_eq!(field(rate().count_window(0)), "sliding_window");
        assert_eq!(field(rate().time_window(Duration::ZERO)), "sliding_window");
        assert_eq!(
            field(rate().count_window(5).minimum_calls(6)),
            "minimum_calls"
        );
        assert_eq!(field(rate().minimum_calls(0)), "minimum_calls");
        assert_eq!(field(b().count_window(10)), "sliding_window");
    }

    #[test]
    fn rate_mode_defaults() {
        let config = BreakerConfig::builder()
            .failure_rate_threshold(50)
            .build()
            .unwrap();
        let rate = config.rate().unwrap();
        assert_eq!(
            rate.window(),
            SlidingWindow::Count(NonZeroU32::new(100).unwrap())
        );
        assert_eq!(rate.minimum_calls().get(), 100);
        assert!(!rate.detects_slow_calls());
        let timed = BreakerConfig::builder()
            .slow_call_rate_threshold(80)
            .time_window(Duration::from_secs(10))
            .build()
            .unwrap();
        assert_eq!(timed.rate().unwrap().minimum_calls().get(), 10);
        assert!(timed.rate().unwrap().detects_slow_calls());
    }

    #[test]
    fn from_policy_keeps_threshold_and_recovery() {
        let config = BreakerConfig::from(crate::policy::Preset::Billing.policy());
        assert_eq!(config.failure_threshold().get(), 10);
        assert_eq!(config.recovery_timeout(), Duration::from_secs(30));
    }
}
