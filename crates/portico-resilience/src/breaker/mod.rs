//! The circuit breaker: stop calling an upstream that keeps failing, and find out on its own
//! when the upstream has recovered.
//!
//! A [`CircuitBreaker`] is CLOSED while calls flow. It opens after `failure_threshold`
//! consecutive failures (seed 001) or, in rate mode, when the failure or slow-call rate of a
//! sliding window reaches its threshold. While OPEN it refuses calls with [`CircuitOpen`]
//! (which says when to retry). The first call after `recovery_timeout` moves it to HALF_OPEN,
//! where at most `half_open_max_calls` trial calls are admitted: their success closes the
//! circuit, a failure (or, in rate mode, too high a rate) opens it again for another
//! `recovery_timeout`. Operators can [`force_open`](CircuitBreaker::force_open),
//! [`force_closed`](CircuitBreaker::force_closed) and [`reset`](CircuitBreaker::reset).
//!
//! Three ways to use it: [`CircuitBreaker::try_acquire`] for callers that make the call
//! themselves, [`CircuitBreaker::call`] / [`CircuitBreaker::call_with`] around a future, and
//! [`CircuitBreakerLayer`] for tower stacks. Each transition is logged with seed 001's text
//! and broadcast once as a [`StateChange`].
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use portico_resilience::breaker::{BreakerConfig, CircuitBreaker};
//! use portico_resilience::SystemClock;
//!
//! let config = BreakerConfig::builder().failure_threshold(5).build()?;
//! let breaker = CircuitBreaker::new("Chroma Server", config, SystemClock::shared());
//! let answer = breaker.call(|| async { Ok::<_, std::io::Error>(42) }).await?;
//! assert_eq!(answer, 42);
//! assert_eq!(breaker.snapshot().state.as_str(), "closed");
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`config`]: `BreakerConfig` and its builder.
//! - `machine`: the state machine behind the atomic state word.
//! - [`permit`]: `Permit` and `OwnedPermit`.
//! - [`state`]: `State`, `StateChange`, `TransitionReason`, `BreakerSnapshot`.
//! - `window`: the sliding windows of the rate mode.
//! - [`layer`]: the tower layer.

pub mod config;
pub mod layer;
mod machine;
pub mod permit;
pub mod state;
mod window;

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::broadcast;

pub use config::{BreakerConfig, BreakerConfigBuilder, RateConfig, SlidingWindow};
pub use layer::{CircuitBreakerLayer, CircuitBreakerService, Classifier, ErrorsAreFailures};
pub use permit::{OwnedPermit, Permit};
pub use state::{BreakerSnapshot, State, StateChange, TransitionReason};
pub use window::Rate;

use crate::clock::SharedClock;
use crate::error::{CircuitOpen, ResilienceError};
use machine::Shared;

/// A circuit breaker for one upstream. Cloning is cheap and clones share the state.
#[derive(Clone)]
pub struct CircuitBreaker {
    shared: Arc<Shared>,
}

impl CircuitBreaker {
    /// A closed breaker named `name` (the upstream's name, used in logs and status).
    pub fn new(name: impl Into<Arc<str>>, config: BreakerConfig, clock: SharedClock) -> Self {
        Self {
            shared: Arc::new(Shared::new(name.into(), config, clock)),
        }
    }

    /// The breaker's name.
    pub fn name(&self) -> &Arc<str> {
        &self.shared.name
    }

    /// The breaker's settings.
    pub fn config(&self) -> &BreakerConfig {
        &self.shared.config
    }

    /// Asks to make one call. Refused with [`CircuitOpen`] while open (or half-open with
    /// every trial slot taken); the error's `retry_after` is the time left until recovery
    /// (the full recovery timeout when forced open, zero when waiting on trial calls).
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, CircuitOpen> {
        self.shared
            .acquire()
            .map(|ticket| Permit::new(&self.shared, ticket))
    }

    /// Like [`try_acquire`](Self::try_acquire), but the permit holds a clone of the breaker
    /// and can be moved into a task.
    pub fn try_acquire_owned(&self) -> Result<OwnedPermit, CircuitOpen> {
        self.shared
            .acquire()
            .map(|ticket| OwnedPermit::new(self.clone(), ticket))
    }

    /// Runs `f` if the breaker admits it; an `Err` counts as a failure.
    pub async fn call<F, Fut, T, E>(&self, f: F) -> Result<T, ResilienceError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.call_with(f, Result::is_err).await
    }

    /// Runs `f` if the breaker admits it; `is_failure` decides whether the outcome counts as
    /// a failure (an `Ok` carrying an HTTP 5xx may; an `Err` meaning "not found" may not).
    /// The outcome is returned as it is either way. If the returned future is dropped before
    /// `f` completes, nothing is counted.
    pub async fn call_with<F, Fut, T, E, P>(
        &self,
        f: F,
        is_failure: P,
    ) -> Result<T, ResilienceError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        P: Fn(&Result<T, E>) -> bool,
    {
        let permit = self.try_acquire()?;
        let result = f().await;
        permit.record(is_failure(&result));
        result.map_err(ResilienceError::Inner)
    }

    /// The current state; reports (and makes) the move to HALF_OPEN once the recovery
    /// timeout has passed.
    pub fn state(&self) -> State {
        self.shared.state()
    }

    /// The breaker as `/status/services` shows it.
    pub fn snapshot(&self) -> BreakerSnapshot {
        self.shared.snapshot()
    }

    /// Every later transition, exactly once each. A receiver that falls more than 128 events
    /// behind gets `RecvError::Lagged`.
    pub fn subscribe(&self) -> broadcast::Receiver<StateChange> {
        self.shared.subscribe()
    }

    /// Refuses every call until [`force_closed`](Self::force_closed) or
    /// [`reset`](Self::reset).
    pub fn force_open(&self) {
        self.shared
            .set(State::ForcedOpen, TransitionReason::ForcedOpen);
    }

    /// Admits every call and counts nothing until [`force_open`](Self::force_open) or
    /// [`reset`](Self::reset).
    pub fn force_closed(&self) {
        self.shared
            .set(State::ForcedClosed, TransitionReason::ForcedClosed);
    }

    /// Back to CLOSED with every count cleared (from any state, forced ones included).
    pub fn reset(&self) {
        self.shared.set(State::Closed, TransitionReason::Reset);
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.shared.name)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;

    fn breaker(clock: &ManualClock, threshold: u32) -> CircuitBreaker {
        let config = BreakerConfig::builder()
            .failure_threshold(threshold)
            .recovery_timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        CircuitBreaker::new("unit", config, clock.shared())
    }

    #[test]
    fn outcome_of_a_call_admitted_before_opening_is_ignored() {
        let clock = ManualClock::new();
        let b = breaker(&clock, 1);
        let early = b.try_acquire().unwrap();
        b.try_acquire().unwrap().failure();
        assert_eq!(b.state(), State::Open);
        clock.advance(Duration::from_secs(10));
        let trial = b.try_acquire().unwrap();
        assert!(trial.is_trial());
        // A success of the call admitted while closed must not close the circuit.
        early.success();
        assert_eq!(b.state(), State::HalfOpen);
        trial.success();
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn success_clears_consecutive_failures() {
        let clock = ManualClock::new();
        let b = breaker(&clock, 3);
        b.try_acquire().unwrap().failure();
        b.try_acquire().unwrap().failure();
        assert_eq!(b.snapshot().failure_count, 2);
        b.try_acquire().unwrap().success();
        assert_eq!(b.snapshot().failure_count, 0);
        b.try_acquire().unwrap().failure();
        b.try_acquire().unwrap().failure();
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn breaker_permits_and_call_futures_cross_threads() {
        fn assert_send<T: Send>(_: &T) {}
        fn assert_sync<T: Send + Sync>() {}
        assert_sync::<CircuitBreaker>();
        assert_sync::<OwnedPermit>();
        let clock = ManualClock::new();
        let b = breaker(&clock, 1);
        assert_send(&b.try_acquire().unwrap());
        assert_send(&b.call(|| async { Ok::<_, std::io::Error>(()) }));
    }

    #[test]
    fn owned_permit_outlives_the_borrow() {
        let clock = ManualClock::new();
        let b = breaker(&clock, 1);
        let permit = b.try_acquire_owned().unwrap();
        drop(b.clone());
        let handle = std::thread::spawn(move || permit.failure());
        handle.join().unwrap();
        assert_eq!(b.state(), State::Open);
    }
}
