//! The errors the resilience pieces add on top of the wrapped operation's own error.
//!
//! Each piece has a small error struct of its own ([`CircuitOpen`], [`TimeoutElapsed`],
//! [`BulkheadFull`], [`RateLimited`]); the plain async APIs return them inside
//! [`ResilienceError`], the tower layers return them boxed (tower's convention, so layers
//! stack) where callers find them with `downcast_ref`. Each one says whether it is worth
//! retrying and, where known, when to try again — what an HTTP edge needs to choose between
//! 503 + `Retry-After`, 504 and 429.

use std::sync::Arc;
use std::time::Duration;

/// tower's boxed error type, used by every layer of this crate.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A call was refused because the circuit breaker is open (or half-open with no trial slot).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[{name}] circuit breaker open; retry after {retry_after:?}")]
pub struct CircuitOpen {
    /// The breaker's name (the upstream's name).
    pub name: Arc<str>,
    /// Time until the breaker will admit a trial call.
    pub retry_after: Duration,
}

/// A call took longer than its timeout or deadline and was abandoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out after {0:?}")]
pub struct TimeoutElapsed(pub Duration);

/// A call was refused because the bulkhead's concurrency slots and queue are full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bulkhead full: {max_concurrent} calls running and {max_queue} waiting")]
pub struct BulkheadFull {
    /// Concurrent calls allowed.
    pub max_concurrent: usize,
    /// Calls allowed to wait for a slot.
    pub max_queue: usize,
}

/// A call was refused by a rate limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limited; retry after {retry_after:?}")]
pub struct RateLimited {
    /// Time until a call with the same key would be allowed.
    pub retry_after: Duration,
}

/// The error of a call made through one of the plain async APIs: either the operation's own
/// error or the reason a resilience piece refused or abandoned it.
#[derive(Debug, thiserror::Error)]
pub enum ResilienceError<E> {
    /// The operation ran and failed with its own error.
    #[error(transparent)]
    Inner(E),
    /// The circuit breaker refused the call.
    #[error(transparent)]
    CircuitOpen(#[from] CircuitOpen),
    /// The call exceeded its timeout or the overall deadline.
    #[error(transparent)]
    Timeout(#[from] TimeoutElapsed),
    /// The bulkhead refused the call.
    #[error(transparent)]
    BulkheadFull(#[from] BulkheadFull),
    /// The rate limiter refused the call.
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
}

impl<E> ResilienceError<E> {
    /// When the caller may try again, if the refusal says so (open circuit, rate limit).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ResilienceError::CircuitOpen(e) => Some(e.retry_after),
            ResilienceError::RateLimited(e) => Some(e.retry_after),
            _ => None,
        }
    }

    /// The operation's own error, if that is what this is.
    pub fn into_inner(self) -> Option<E> {
        match self {
            ResilienceError::Inner(e) => Some(e),
            _ => None,
        }
    }

    /// Maps the operation's error type, keeping every refusal as it is.
    pub fn map_inner<F, E2>(self, f: F) -> ResilienceError<E2>
    where
        F: FnOnce(E) -> E2,
    {
        match self {
            ResilienceError::Inner(e) => ResilienceError::Inner(f(e)),
            ResilienceError::CircuitOpen(e) => ResilienceError::CircuitOpen(e),
            ResilienceError::Timeout(e) => ResilienceError::Timeout(e),
            ResilienceError::BulkheadFull(e) => ResilienceError::BulkheadFull(e),
            ResilienceError::RateLimited(e) => ResilienceError::RateLimited(e),
        }
    }
}

/// A configuration value was refused when a resilience piece was built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    /// The offending field, as named in the builder and in config files (`failure_threshold`).
    pub field: &'static str,
    /// What is wrong with it, in words.
    pub reason: String,
}

impl ConfigError {
    /// A config error for `field`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}
