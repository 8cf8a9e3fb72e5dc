//! What a retried call reports while it runs: attempts, outcomes, waits and giving up.
//!
//! The runner calls a [`RetryObserver`] at each step so that callers log and count in their
//! own words — the HTTP client prints seed 001's `POST /query (attempt 1/3)` and
//! `Server error 500 on attempt 1/3` from [`RetryObserver::on_attempt`] and
//! [`RetryObserver::on_outcome`]. [`LogObserver`] is the ready-made one that logs the lines
//! every caller shares: `[name] Retrying in 1s...` and `[name] ✗ All 3 retry attempts failed`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Which attempt of how many: displays as seed 001's `1/3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// This attempt, from 1.
    pub number: u32,
    /// Attempts allowed in all, the first included.
    pub max: u32,
}

impl Attempt {
    /// Whether no attempt may follow this one.
    pub fn is_last(&self) -> bool {
        self.number >= self.max
    }
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.number, self.max)
    }
}

/// Why a call stopped retrying while its last outcome still asked for a retry (or failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// Every allowed attempt was made.
    Exhausted,
    /// The classifier said the failure is not worth retrying.
    NotRetryable,
    /// The shared retry budget had no retry left.
    BudgetExhausted,
    /// The server asked to wait longer (its `Retry-After`) than the policy honours.
    RetryAfterTooLong(Duration),
    /// The next wait would end at or past the call's overall deadline.
    DeadlineExceeded,
}

/// Hooks called by the retry runner; every method has a no-op default.
///
/// `()` is the observer that does nothing.
pub trait RetryObserver<T, E> {
    /// Attempt `attempt` is about to start.
    fn on_attempt(&self, attempt: Attempt) {
        let _ = attempt;
    }

    /// Attempt `attempt` finished with `outcome` (before classification).
    fn on_outcome(&self, attempt: Attempt, outcome: &Result<T, E>) {
        let _ = (attempt, outcome);
    }

    /// Attempt `attempt` will be followed by another after `delay`.
    fn on_retry(&self, attempt: Attempt, delay: Duration) {
        let _ = (attempt, delay);
    }

    /// The call ends after `attempt` without success, for `reason`: the classifier still
    /// wanted a retry, or the outcome is an `Err` it would not retry. Not called when the
    /// classifier accepts an `Ok` outcome.
    fn on_give_up(&self, attempt: Attempt, reason: GiveUp) {
        let _ = (attempt, reason);
    }
}

impl<T, E> RetryObserver<T, E> for () {}

impl<T, E, O: RetryObserver<T, E> + ?Sized> RetryObserver<T, E> for Arc<O> {
    fn on_attempt(&self, attempt: Attempt) {
        (**self).on_attempt(attempt);
    }

    fn on_outcome(&self, attempt: Attempt, outcome: &Result<T, E>) {
        (**self).on_outcome(attempt, outcome);
    }

    fn on_retry(&self, attempt: Attempt, delay: Duration) {
        (**self).on_retry(attempt, delay);
    }

    fn on_give_up(&self, attempt: Attempt, reason: GiveUp) {
        (**self).on_give_up(attempt, reason);
    }
}

/// An observer that logs through `tracing` with seed 001's wording, prefixed by `[name]`.
///
/// - a retry, at WARN: `[Chroma Server] Retrying in 1s...`
/// - all attempts failed, at ERROR: `[Chroma Server] ✗ All 3 retry attempts failed`
/// - the budget, a too-long `Retry-After` or the deadline stopping retries, at WARN
/// - each attempt starting and a non-retryable failure, at DEBUG
#[derive(Debug, Clone)]
pub struct LogObserver {
    name: Arc<str>,
}

impl LogObserver {
    /// An observer logging as `[name]`.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self { name: name.into() }
    }

    /// The name in the log prefix.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<T, E> RetryObserver<T, E> for LogObserver {
    fn on_attempt(&self, attempt: Attempt) {
        tracing::debug!("[{}] attempt {attempt}", self.name);
    }

    fn on_retry(&self, _attempt: Attempt, delay: Duration) {
        tracing::warn!("[{}] Retrying in {}...", self.name, HumanDelay(delay));
    }

    fn on_give_up(&self, attempt: Attempt, reason: GiveUp) {
        let name = &self.name;
        match reason {
            GiveUp::Exhausted => {
                tracing::error!("[{name}] ✗ All {} retry attempts failed", attempt.max);
            }
            GiveUp::NotRetryable => {
                tracing::debug!(
                    "[{name}] Not retrying: attempt {attempt} failed in a way that is not retryable"
                );
            }
            GiveUp::BudgetExhausted => {
                tracing::warn!(
                    "[{name}] Retry budget exhausted; giving up after attempt {attempt}"
                );
            }
            GiveUp::RetryAfterTooLong(hint) => {
                tracing::warn!(
                    "[{name}] Retry-After of {} is longer than allowed; \
                     giving up after attempt {attempt}",
                    HumanDelay(hint)
                );
            }
            GiveUp::DeadlineExceeded => {
                tracing::warn!(
                    "[{name}] Deadline too close to retry; giving up after attempt {attempt}"
                );
            }
        }
    }
}

/// A delay written the way seed 001 writes it: whole seconds as `1s`, under a second as
/// `250ms`, otherwise seconds with up to three decimals (`1.5s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDelay(pub Duration);

impl fmt::Display for HumanDelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let nanos = d.subsec_nanos();
        if nanos == 0 {
            write!(f, "{}s", d.as_secs())
        } else if !nanos.is_multiple_of(1_000_000) {
            // Finer than a millisecond: only tests and odd configs get here.
            write!(f, "{d:?}")
        } else if d.as_secs() == 0 {
            write!(f, "{}ms", d.subsec_millis())
        } else {
            let millis = format!("{:03}", d.subsec_millis());
            write!(f, "{}.{}s", d.as_secs(), millis.trim_end_matches('0'))
        }
    }
}
