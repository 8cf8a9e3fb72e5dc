//! Keyed rate limiting with GCRA: how many requests a user, an API key or an address may make
//! per window, and — when refused — how long to wait.
//!
//! A [`Quota`] says "`limit` requests per `window`, `burst` at once". A [`RateLimiter`]
//! applies it per key and answers with a [`Decision`], which carries everything an HTTP edge
//! needs for `Retry-After` and `RateLimit-Limit` / `RateLimit-Remaining` / `RateLimit-Reset`.
//! [`LocalRateLimiter`] keeps the state in this process; the trait is async and object-safe
//! so that a shared (Redis) implementation can stand in for it when several gateway
//! instances must share counters. [`RateLimitLayer`] is the tower form, [`call`] the plain
//! async form.
//!
//! ```
//! use std::time::Duration;
//! use portico_resilience::ratelimit::{LocalRateLimiter, Quota};
//! use portico_resilience::SystemClock;
//!
//! let quota = Quota::new(100, Duration::from_secs(60))?.with_burst(10)?;
//! let limiter = LocalRateLimiter::new(quota, SystemClock::shared());
//! let decision = limiter.check("user:42");
//! assert!(decision.allowed);
//! assert_eq!(decision.remaining, 9);
//! # Ok::<(), portico_resilience::ConfigError>(())
//! ```
//!
//! # Layout
//! - [`quota`]: `Quota` and the GCRA arithmetic.
//! - [`local`]: `LocalRateLimiter`, the sharded in-process limiter.
//! - [`layer`]: the tower layer.

pub mod layer;
pub mod local;
pub mod quota;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use layer::{RateLimitLayer, RateLimitService};
pub use local::LocalRateLimiter;
pub use quota::Quota;

use crate::error::{BoxError, RateLimited, ResilienceError};

/// The answer to one request: allowed or not, and the numbers for the response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Requests per window (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests that could still be made right now (`RateLimit-Remaining`).
    pub remaining: u32,
    /// Time until the key's full burst is available again (`RateLimit-Reset`).
    pub reset_after: Duration,
    /// When refused: time until this request would be allowed (`Retry-After`).
    pub retry_after: Option<Duration>,
}

impl Decision {
    /// The refusal to return when the request is not allowed.
    pub fn refusal(&self) -> Option<RateLimited> {
        (!self.allowed).then(|| RateLimited {
            retry_after: self.retry_after.unwrap_or_default(),
        })
    }
}

/// A rate limiter's backend failed, so no decision could be made.
#[derive(Debug, thiserror::Error)]
pub enum LimiterError {
    /// The shared store (e.g. Redis) could not be reached or answered with an error.
    #[error("rate limiter backend unavailable")]
    Backend(#[source] BoxError),
    /// The shared store did not answer in time.
    #[error("rate limiter backend timed out after {0:?}")]
    Timeout(Duration),
}

/// The future returned by [`RateLimiter::check`].
pub type CheckFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Decision, LimiterError>> + Send + 'a>>;

/// Counts a request against a key's quota. Object-safe, so limiters are shared as
/// `Arc<dyn RateLimiter>` and a Redis-backed one can replace the local one.
pub trait RateLimiter: Send + Sync {
    /// Counts one request for `key` and decides on it.
    fn check<'a>(&'a self, key: &'a str) -> CheckFuture<'a>;
}

impl RateLimiter for LocalRateLimiter {
    fn check<'a>(&'a self, key: &'a str) -> CheckFuture<'a> {
        Box::pin(std::future::ready(Ok(LocalRateLimiter::check(self, key))))
    }
}

/// Runs `f` if `limiter` allows a request for `key`; otherwise returns
/// [`ResilienceError::RateLimited`]. If the limiter's backend fails, the call is allowed (a
/// broken counter store should not take the service down) and the failure is logged.
pub async fn call<F, Fut, T, E>(
    limiter: &dyn RateLimiter,
    key: &str,
    f: F,
) -> Result<T, ResilienceError<E>>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    match limiter.check(key).await {
        Ok(decision) => {
            if let Some(refusal) = decision.refusal() {
                return Err(refusal.into());
            }
        }
        Err(error) => {
            tracing::warn!(error = %error, "rate limiter unavailable; allowing request");
        }
    }
    f().await.map_err(ResilienceError::Inner)
}
