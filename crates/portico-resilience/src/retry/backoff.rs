//! How long to wait before each retry: exponential backoff with an optional jitter.
//!
//! The delay before retry `n` (the wait after attempt `n` failed) is
//! `initial × multiplier^(n−1)`, capped at `max` — with seed 001's defaults (1 s, ×2) that is
//! 1 s, 2 s, 4 s. When many clients back off from the same failure at the same moment, equal
//! delays make them come back at the same moment too; [`Jitter`] spreads them out, following
//! the definitions of the AWS Architecture Blog post "Exponential Backoff And Jitter".
//!
//! Randomness comes through [`Random`] so that tests can fix it.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng as _;

use crate::error::ConfigError;

/// How random spread is added to the exponential delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// No randomness: exactly `initial × multiplier^(n−1)`, capped (seed 001's behaviour).
    #[default]
    None,
    /// "Full jitter": uniformly random between zero and the exponential delay.
    Full,
    /// "Decorrelated jitter": uniformly random between `initial` and three times the previous
    /// delay, capped at `max`. The multiplier is not used.
    Decorrelated,
}

/// A source of uniform random numbers in `[0, 1)` for jitter.
///
/// The default draws from `rand`'s thread-local generator; tests pass a closure
/// ([`Random::from_fn`]) or a constant ([`Random::fixed`]) so the delays are exact.
#[derive(Clone, Default)]
pub struct Random {
    source: Source,
}

#[derive(Clone, Default)]
enum Source {
    #[default]
    Thread,
    Custom(Arc<Mutex<dyn FnMut() -> f64 + Send>>),
}

impl Random {
    /// Draws from `rand`'s thread-local generator.
    pub fn thread_rng() -> Self {
        Self::default()
    }

    /// Draws from `f`, which should return values in `[0, 1)`; values outside are clamped.
    pub fn from_fn(f: impl FnMut() -> f64 + Send + 'static) -> Self {
        Self {
            source: Source::Custom(Arc::new(Mutex::new(f))),
        }
    }

    /// Always returns `value` (clamped to `[0, 1]`).
    pub fn fixed(value: f64) -> Self {
        Self::from_fn(move || value)
    }

    /// The next number, in `[0, 1]`.
    pub fn sample(&self) -> f64 {
        let value = match &self.source {
            Source::Thread => rand::rng().random::<f64>(),
            Source::Custom(f) => {
                // A poisoned lock only means another caller panicked inside its closure;
                // the closure itself is still usable.
                let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
                f()
            }
        };
        if value.is_finite() {
            value.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

impl fmt::Debug for Random {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.source {
            Source::Thread => f.write_str("Random::thread_rng"),
            Source::Custom(_) => f.write_str("Random::from_fn"),
        }
    }
}

/// Exponential backoff with a cap and a jitter, checked at construction.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    multiplier: f64,
    max: Duration,
    jitter: Jitter,
    random: Random,
}

impl Default for Backoff {
    /// Seed 001: 1 s, doubling, capped at 30 s, no jitter — 1 s, 2 s, 4 s, …
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            multiplier: 2.0,
            max: Duration::from_secs(30),
            jitter: Jitter::None,
            random: Random::default(),
        }
    }
}

impl Backoff {
    /// Exponential backoff starting at `initial`, multiplied by `multiplier` after each retry,
    /// never longer than `max`; no jitter until [`Backoff::with_jitter`].
    ///
    /// Refuses a zero `initial` (`backoff_initial`), a multiplier below 1 or not finite
    /// (`backoff_multiplier`), and a `max` below `initial` (`backoff_max`).
    pub fn exponential(
        initial: Duration,
        multiplier: f64,
        max: Duration,
    ) -> Result<Self, ConfigError> {
        if initial.is_zero() {
            return Err(ConfigError::new(
                "backoff_initial",
                "must be greater than 0",
            ));
        }
        if !multiplier.is_finite() || multiplier < 1.0 {
            return Err(ConfigError::new(
                "backoff_multiplier",
                format!("must be a finite number of at least 1, got {multiplier}"),
            ));
        }
        if max < initial {
            return Err(ConfigError::new(
                "backoff_max",
                format!("must be at least backoff_initial ({initial:?}), got {max:?}"),
            ));
        }
        Ok(Self {
            initial,
            multiplier,
            max,
            jitter: Jitter::None,
            random: Random::default(),
        })
    }

    /// The same backoff with `jitter`.
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The same backoff drawing its randomness from `random`.
    pub fn with_random(mut self, random: Random) -> Self {
        self.random = random;
        self
    }

    /// The delay before the first retry (before any jitter).
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The growth factor between consecutive delays.
    pub fn multiplier(&self) -> f64 {
        self.multiplier
    }

    /// The cap on every delay.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The jitter in use.
    pub fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// The delay before retry `retry` (1 for the first retry) without jitter:
    /// `initial × multiplier^(retry−1)`, capped at `max`.
    pub fn exponential_delay(&self, retry: u32) -> Duration {
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial.as_secs_f64() * self.multiplier.powi(exponent);
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// The delays before retry 1, 2, 3, … (an endless iterator; jitter applied).
    pub fn delays(&self) -> Delays<'_> {
        Delays {
            backoff: self,
            retry: 0,
            previous: self.initial,
        }
    }
}

/// The successive delays of one retried call, from [`Backoff::delays`].
///
/// Decorrelated jitter depends on the previous delay, so each call keeps its own iterator.
#[derive(Debug, Clone)]
pub struct Delays<'a> {
    backoff: &'a Backoff,
    retry: u32,
    previous: Duration,
}

impl Iterator for Delays<'_> {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.retry = self.retry.saturating_add(1);
        let b = self.backoff;
        let delay = match b.jitter {
            Jitter::None => b.exponential_delay(self.retry),
            Jitter::Full => b.exponential_delay(self.retry).mul_f64(b.random.sample()),
            Jitter::Decorrelated => {
                let high = self.previous.saturating_mul(3);
                let spread = high.saturating_sub(b.initial).mul_f64(b.random.sample());
                (b.initial + spread).min(b.max)
            }
        };
        self.previous = delay;
        Some(delay)
    }
}
