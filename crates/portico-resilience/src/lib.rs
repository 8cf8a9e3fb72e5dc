//! Resilience for calls between services: circuit breaker, retry with backoff and budget,
//! timeout and deadline, bulkhead, rate limiter and fallback — each a plain async API and a
//! tower [`Layer`](tower::Layer), with time injected through a [`Clock`].
//!
//! The core has no HTTP dependency; the `http` feature adds a resilient HTTP client for
//! upstream services built from these pieces (module `client`).
//!
//! # Layout
//! - [`clock`]: the `Clock` trait, the system clock and a manual clock for tests.
//! - [`error`]: the refusal errors (`CircuitOpen`, `TimeoutElapsed`, `BulkheadFull`,
//!   `RateLimited`), `ResilienceError`, and `ConfigError` for bad settings.
//! - [`breaker`]: the circuit breaker (consecutive failures or sliding-window rates).
//! - [`retry`]: retry policy, backoff with jitter, `Retry-After` hints, retry budget.
//! - [`timeout`]: per-attempt timeout and overall deadline.
//! - [`bulkhead`]: bounded concurrency with a bounded queue.
//! - [`ratelimit`]: keyed GCRA rate limiter behind a `RateLimiter` trait.
//! - [`fallback`]: the fallback combinator.
//! - [`policy`]: the per-upstream policy and the seed 001 presets.
//! - `client` (feature `http`): the resilient HTTP client for upstreams.
#![forbid(unsafe_code)]

pub mod breaker;
pub mod bulkhead;
#[cfg(feature = "http")]
pub mod client;
pub mod clock;
pub mod error;
pub mod fallback;
pub mod policy;
pub mod ratelimit;
pub mod retry;
pub mod timeout;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use error::{
    BoxError, BulkheadFull, CircuitOpen, ConfigError, RateLimited, ResilienceError, TimeoutElapsed,
};
pub use policy::{Preset, UpstreamPolicy};
