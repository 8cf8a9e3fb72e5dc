//! The per-upstream resilience policy in its plain form, and the presets of seed 001.
//!
//! A [`UpstreamPolicy`] is the four numbers of seed 001's configuration table — attempts,
//! per-attempt timeout, breaker threshold, recovery timeout — checked once. Config files may
//! name a [`Preset`] (`preset = "chroma"`) and override single fields.

use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use crate::error::ConfigError;

/// Attempts, timeout and breaker settings for one upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamPolicy {
    /// Attempts in all, the first included (seed 001's `max_retries`: 3 → "attempt 1/3").
    pub max_attempts: NonZeroU32,
    /// Timeout of each attempt.
    pub timeout: Duration,
    /// Consecutive failures that open the circuit.
    pub failure_threshold: NonZeroU32,
    /// Time the circuit stays open before a trial call is let through.
    pub recovery_timeout: Duration,
}

impl UpstreamPolicy {
    /// Checks raw numbers: counts must be at least 1 and durations non-zero.
    pub fn new(
        max_attempts: u32,
        timeout: Duration,
        failure_threshold: u32,
        recovery_timeout: Duration,
    ) -> Result<Self, ConfigError> {
        let max_attempts = NonZeroU32::new(max_attempts)
            .ok_or_else(|| ConfigError::new("max_retries", "must be at least 1"))?;
        let failure_threshold = NonZeroU32::new(failure_threshold)
            .ok_or_else(|| ConfigError::new("failure_threshold", "must be at least 1"))?;
        if timeout.is_zero() {
            return Err(ConfigError::new("timeout", "must be greater than 0"));
        }
        if recovery_timeout.is_zero() {
            return Err(ConfigError::new(
                "recovery_timeout",
                "must be greater than 0",
            ));
        }
        Ok(Self {
            max_attempts,
            timeout,
            failure_threshold,
            recovery_timeout,
        })
    }
}

impl Default for UpstreamPolicy {
    /// DESIGN.md's upstream defaults: 3 attempts, 15 s, 5 failures, 60 s.
    fn default() -> Self {
        Preset::Chroma.policy()
    }
}

/// The upstream presets of seed 001's configuration reference table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// Chroma: 3 attempts, 15 s, threshold 5, recovery 60 s.
    Chroma,
    /// Filesystem: 3 attempts, 20 s, threshold 5, recovery 60 s.
    Filesystem,
    /// Billing: 2 attempts, 5 s, threshold 10, recovery 30 s.
    Billing,
    /// Git: 3 attempts, 30 s, threshold 5, recovery 90 s.
    Git,
}

impl Preset {
    /// Every preset, in table order.
    pub const ALL: [Preset; 4] = [
        Preset::Chroma,
        Preset::Filesystem,
        Preset::Billing,
        Preset::Git,
    ];

    /// The name used in config files.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Chroma => "chroma",
            Preset::Filesystem => "filesystem",
            Preset::Billing => "billing",
            Preset::Git => "git",
        }
    }

    /// The preset's policy.
    pub fn policy(self) -> UpstreamPolicy {
        let (attempts, timeout, threshold, recovery) = match self {
            Preset::Chroma => (3, 15, 5, 60),
            Preset::Filesystem => (3, 20, 5, 60),
            Preset::Billing => (2, 5, 10, 30),
            Preset::Git => (3, 30, 5, 90),
        };
        UpstreamPolicy {
            max_attempts: NonZeroU32::new(attempts).unwrap_or(NonZeroU32::MIN),
            timeout: Duration::from_secs(timeout),
            failure_threshold: NonZeroU32::new(threshold).unwrap_or(NonZeroU32::MIN),
            recovery_timeout: Duration::from_secs(recovery),
        }
    }
}

impl FromStr for Preset {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                ConfigError::new(
                    "preset",
                    format!("unknown preset {s:?} (known: chroma, filesystem, billing, git)"),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_match_seed_001_table() {
        let billing = Preset::Billing.policy();
        assert_eq!(billing.max_attempts.get(), 2);
        assert_eq!(billing.timeout, Duration::from_secs(5));
        assert_eq!(billing.failure_threshold.get(), 10);
        assert_eq!(billing.recovery_timeout, Duration::from_secs(30));
        assert_eq!(
            Preset::Git.policy().recovery_timeout,
            Duration::from_secs(90)
        );
        assert_eq!(Preset::Filesystem.policy().timeout, Duration::from_secs(20));
    }

    #[test]
    fn unknown_preset_names_the_field() {
        let err = "redis".parse::<Preset>().unwrap_err();
        assert_eq!(err.field, "preset");
    }

    #[test]
    fn zero_threshold_is_refused() {
        let err =
            UpstreamPolicy::new(3, Duration::from_secs(1), 0, Duration::from_secs(1)).unwrap_err();
        assert_eq!(err.field, "failure_threshold");
    }
}
