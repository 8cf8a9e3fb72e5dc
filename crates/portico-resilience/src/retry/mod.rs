//! Retry: attempts with backoff, server hints and a shared budget.
//!
//! A [`RetryPolicy`] (built and checked by [`RetryPolicyBuilder`]) says how many attempts a
//! call gets, how long to wait between them ([`Backoff`]), how long a server's `Retry-After`
//! may ask us to wait, and which [`RetryBudget`] the retries draw from. [`RetryPolicy::run`]
//! drives one call: the caller classifies each outcome into a [`RetryDecision`] and watches
//! the steps through a [`RetryObserver`]; waits go through the injected
//! [`Clock`](crate::clock::Clock).
//! [`RetryPolicy::run_until`] does the same within an overall [`Deadline`].
//! [`RetryLayer`] is the tower form.
//!
//! ```
//! # async fn demo() -> Result<(), portico_resilience::ConfigError> {
//! use portico_resilience::retry::{self, LogObserver, RetryPolicy};
//! use portico_resilience::SystemClock;
//!
//! let policy = RetryPolicy::builder().max_attempts(3).build()?; // 1s, 2s between attempts
//! let clock = SystemClock::shared();
//! let log = LogObserver::new("Chroma Server");
//! let answer: Result<u32, std::io::Error> =
//!     policy.run(&clock, retry::on_error, &log, || async { Ok(42) }).await;
//! assert_eq!(answer.ok(), Some(42));
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`backoff`]: exponential backoff and jitter.
//! - [`budget`]: the shared retry budget.
//! - [`observer`]: the observer hooks and the logging observer.
//! - [`layer`]: the tower layer.

pub mod backoff;
pub mod budget;
pub mod layer;
pub mod observer;

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

pub use backoff::{Backoff, Delays, Jitter, Random};
pub use budget::RetryBudget;
pub use layer::{Classify, Retry, RetryLayer, RetryOnError};
pub use observer::{Attempt, GiveUp, HumanDelay, LogObserver, RetryObserver};

use crate::clock::SharedClock;
use crate::error::{ConfigError, TimeoutElapsed};
use crate::policy::UpstreamPolicy;
use crate::timeout::Deadline;

/// What to do after an attempt, as decided by the caller's classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again after the backoff delay.
    Retry,
    /// Try again after the longer of the backoff delay and this server hint (HTTP
    /// `Retry-After`); give up if the hint exceeds the policy's `max_retry_after`.
    RetryAfter(Duration),
    /// Return this outcome as it is.
    DontRetry,
}

/// The default classification: retry every `Err`, return every `Ok`.
pub fn on_error<T, E>(outcome: &Result<T, E>) -> RetryDecision {
    match outcome {
        Ok(_) => RetryDecision::DontRetry,
        Err(_) => RetryDecision::Retry,
    }
}

/// How a call is retried; checked once by [`RetryPolicyBuilder::build`], then cheap to share.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    max_attempts: NonZeroU32,
    backoff: Backoff,
    max_retry_after: Option<Duration>,
    budget: Option<Arc<RetryBudget>>,
}

/// Builds a [`RetryPolicy`]; defaults are seed 001's: 3 attempts, 1 s / 2 s / 4 s backoff,
/// any `Retry-After` honoured, no budget.
#[derive(Debug, Clone)]
pub struct RetryPolicyBuilder {
    max_attempts: u32,
    backoff: Backoff,
    max_retry_after: Option<Duration>,
    budget: Option<Arc<RetryBudget>>,
}

impl Default for RetryPolicyBuilder {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Backoff::default(),
            max_retry_after: None,
            budget: None,
        }
    }
}

impl RetryPolicyBuilder {
    /// Attempts in all, the first included (seed 001's `max_retries = 3` is 3 here).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The waits between attempts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The longest server `Retry-After` hint to honour; a longer one ends the retries.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = Some(max);
        self
    }

    /// The budget retries draw from, usually shared by every call to one upstream.
    pub fn budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Checks the settings: `max_attempts` at least 1, `max_retry_after` non-zero.
    pub fn build(self) -> Result<RetryPolicy, ConfigError> {
        let max_attempts = NonZeroU32::new(self.max_attempts)
            .ok_or_else(|| ConfigError::new("max_attempts", "must be at least 1"))?;
        if self.max_retry_after.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::new(
                "max_retry_after",
                "must be greater than 0",
            ));
        }
        Ok(RetryPolicy {
            max_attempts,
            backoff: self.backoff,
            max_retry_after: self.max_retry_after,
            budget: self.budget,
        })
    }
}

impl RetryPolicy {
    /// A builder starting from seed 001's defaults.
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder::default()
    }

    /// The attempts of an upstream policy with seed 001's backoff.
    pub fn for_upstream(upstream: &UpstreamPolicy) -> Self {
        Self {
            max_attempts: upstream.max_attempts,
            backoff: Backoff::default(),
            max_retry_after: None,
            budget: None,
        }
    }

    /// Attempts in all, the first included.
    pub fn max_attempts(&self) -> NonZeroU32 {
        self.max_attempts
    }

    /// The waits between attempts.
    pub fn backoff(&self) -> &Backoff {
        &self.backoff
    }

    /// The longest `Retry-After` honoured, if limited.
    pub fn max_retry_after(&self) -> Option<Duration> {
        self.max_retry_after
    }

    /// The budget retries draw from, if any.
    pub fn budget(&self) -> Option<&Arc<RetryBudget>> {
        self.budget.as_ref()
    }

    /// Calls `op` until `classify` says not to retry or the attempts, the budget or the
    /// server's patience run out, sleeping on `clock` between attempts; returns the last
    /// outcome. `observer` sees every step.
    pub async fn run<T, E, C, O, F, Fut>(
        &self,
        clock: &SharedClock,
        classify: C,
        observer: &O,
        op: F,
    ) -> Result<T, E>
    where
        C: Fn(&Result<T, E>) -> RetryDecision,
        O: RetryObserver<T, E> + ?Sized,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_inner(clock, None, classify, observer, op).await
    }

    /// Like [`RetryPolicy::run`], within `deadline`: each attempt is cut off after
    /// `per_attempt` or at the deadline, whichever comes first (its error is then
    /// `E::from(TimeoutElapsed)`), and no wait is started that would end at or past the
    /// deadline — the call gives up with [`GiveUp::DeadlineExceeded`] instead.
    pub async fn run_until<T, E, C, O, F, Fut>(
        &self,
        deadline: &Deadline,
        per_attempt: Duration,
        classify: C,
        observer: &O,
        mut op: F,
    ) -> Result<T, E>
    where
        E: From<TimeoutElapsed>,
        C: Fn(&Result<T, E>) -> RetryDecision,
        O: RetryObserver<T, E> + ?Sized,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let attempt = || {
            let fut = deadline.run_attempt(per_attempt, op());
            async move { fut.await.unwrap_or_else(|elapsed| Err(E::from(elapsed))) }
        };
        self.run_within(deadline, classify, observer, attempt).await
    }

    /// Like [`RetryPolicy::run`], but no wait is started that would end at or past
    /// `deadline` (the call gives up with [`GiveUp::DeadlineExceeded`]). Unlike
    /// [`RetryPolicy::run_until`], the attempts are not cut off here: `op` bounds each attempt
    /// itself (with [`Deadline::attempt_timeout`]), for callers that must see the timeout
    /// inside the attempt — a circuit breaker permit has to record it as a failure.
    pub async fn run_within<T, E, C, O, F, Fut>(
        &self,
        deadline: &Deadline,
        classify: C,
        observer: &O,
        op: F,
    ) -> Result<T, E>
    where
        C: Fn(&Result<T, E>) -> RetryDecision,
        O: RetryObserver<T, E> + ?Sized,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_inner(deadline.clock(), Some(deadline), classify, observer, op)
            .await
    }

    async fn run_inner<T, E, C, O, F, Fut>(
        &self,
        clock: &SharedClock,
        deadline: Option<&Deadline>,
        classify: C,
        observer: &O,
        mut op: F,
    ) -> Result<T, E>
    where
        C: Fn(&Result<T, E>) -> RetryDecision,
        O: RetryObserver<T, E> + ?Sized,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let max = self.max_attempts.get();
        let mut delays = self.backoff.delays();
        if let Some(budget) = &self.budget {
            budget.deposit();
        }
        let mut number = 1;
        loop {
            let attempt = Attempt { number, max };
            observer.on_attempt(attempt);
            let outcome = op().await;
            observer.on_outcome(attempt, &outcome);
            let hint = match classify(&outcome) {
                RetryDecision::DontRetry => {
                    if outcome.is_err() {
                        observer.on_give_up(attempt, GiveUp::NotRetryable);
                    }
                    return outcome;
                }
                RetryDecision::Retry => None,
                RetryDecision::RetryAfter(hint) => Some(hint),
            };
            if attempt.is_last() {
                observer.on_give_up(attempt, GiveUp::Exhausted);
                return outcome;
            }
            if let (Some(hint), Some(cap)) = (hint, self.max_retry_after)
                && hint > cap
            {
                observer.on_give_up(attempt, GiveUp::RetryAfterTooLong(hint));
                return outcome;
            }
            let backoff = delays.next().unwrap_or(self.backoff.max());
            let delay = hint.map_or(backoff, |hint| hint.max(backoff));
            if deadline.is_some_and(|d| delay >= d.remaining()) {
                observer.on_give_up(attempt, GiveUp::DeadlineExceeded);
                return outcome;
            }
            // The budget is asked last: a withdrawal is only made for a retry that happens.
            if let Some(budget) = &self.budget
                && !budget.try_withdraw()
            {
                observer.on_give_up(attempt, GiveUp::BudgetExhausted);
                return outcome;
            }
            drop(outcome);
            observer.on_retry(attempt, delay);
            clock.sleep(delay).await;
            number += 1;
        }
    }
}
