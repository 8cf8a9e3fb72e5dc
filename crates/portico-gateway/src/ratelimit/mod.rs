//! Rate limits shared by every gateway instance through Redis, with the in-process limiter
//! standing in while Redis cannot be reached.
//!
//! One [`RedisStore`] per gateway holds the Redis client (connected lazily, reconnecting on
//! its own), the per-call timeout and whether limits are currently shared or per instance.
//! Each limited route gets a [`SharedRateLimiter`] from it: a [`RedisRateLimiter`] for the
//! route's quota and a [`LocalRateLimiter`] with the same quota.
//!
//! - **Shared.** A check is one round trip: `EVALSHA` of a GCRA script (`EVAL` once if Redis
//!   does not know the script yet) on the key `portico:rl:<route>:<key>`, which expires when
//!   the key's budget is whole again. The script reads the time with Redis `TIME`, so every
//!   instance measures against the same clock whatever their own clocks say. Its decision has
//!   the local limiter's semantics (limit, remaining, reset, retry-after), computed in whole
//!   microseconds (the emission interval is rounded up to one), so the `RateLimit-*` and
//!   `Retry-After` headers are the same whichever limiter decided.
//! - **Falling back.** When a call fails or takes longer than the timeout
//!   ([`DEFAULT_TIMEOUT`]), that request and the following ones are decided by the local
//!   limiter — limits are still enforced, per instance — and one warning is logged:
//!   `redis unreachable: rate limits are per instance until it is back`. While falling back,
//!   Redis is tried again by at most one request per [`PROBE_INTERVAL`] (the others do not
//!   wait for it), and by every `/health` check; the first success logs
//!   `redis is back: rate limits are shared again`. Requests are never refused because
//!   Redis is down, and never allowed without a limit.
//! - **Health.** [`RedisStore::health_check`] is the non-critical `redis` check of
//!   `/health`: a `PING` within the timeout is healthy, anything else degraded
//!   ("unreachable; rate limits are per instance").
//!
//! Exact-timing behaviour is tested on the local limiter (on a manual clock); the Redis
//! script is checked against it for the same sequence of requests.

mod redis;
mod shared;

pub use self::redis::RedisRateLimiter;
pub use shared::{RedisHealth, RedisStore, SharedRateLimiter};

use std::time::Duration;

pub use portico_resilience::ratelimit::LocalRateLimiter;

/// How long one Redis call may take before the request is decided locally.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

/// While falling back, how often one request tries Redis again.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// The prefix of every rate-limit key in Redis.
pub const KEY_PREFIX: &str = "portico:rl";

/// Why a [`RedisStore`] could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    /// The URL is not a `redis://` or `rediss://` URL redis-rs accepts.
    #[error("redis url: {0}")]
    InvalidUrl(String),
}
