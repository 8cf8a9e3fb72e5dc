//! The Redis connection of a gateway, its fall-back state, the limiter that uses it and the
//! `redis` health check.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use portico_core::clock::SharedClock;
use portico_core::health::{CheckResult, HealthCheck};
use portico_resilience::ratelimit::{
    CheckFuture, Decision, LimiterError, LocalRateLimiter, Quota, RateLimiter,
};
use redis::aio::ConnectionManager;

use super::redis::RedisRateLimiter;
use super::{DEFAULT_TIMEOUT, PROBE_INTERVAL, RedisSetupError};
use crate::redis_link::RedisLink;

/// One gateway's Redis for rate limits: the connection and whether limits are currently
/// decided locally because Redis failed (a `RedisLink`), and the per-call timeout.
pub struct RedisStore {
    link: RedisLink,
    timeout: Duration,
    clock: SharedClock,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("timeout", &self.timeout)
            .field("falling_back", &self.is_falling_back())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// The Redis at `url` (`redis://…` or `rediss://…`), not contacted until the first
    /// check. Each call is bounded by [`DEFAULT_TIMEOUT`]; the probe interval runs on `clock`.
    pub fn new(url: &str, clock: SharedClock) -> Result<Self, RedisSetupError> {
        // redis-rs errors quote the URL, which may hold a password: say only what kind of
        // problem it was.
        let link = RedisLink::new(
            url,
            clock.clone(),
            PROBE_INTERVAL,
            (
                "rate limits are per instance until it is back".to_owned(),
                "rate limits are shared again".to_owned(),
            ),
        )
        .map_err(|kind| RedisSetupError::InvalidUrl(format!("{kind:?}")))?;
        Ok(Self {
            link,
            timeout: DEFAULT_TIMEOUT,
            clock,
        })
    }

    /// The same store with another per-call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long one Redis call may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether limits are currently decided per instance because Redis failed.
    pub fn is_falling_back(&self) -> bool {
        self.link.is_failing()
    }

    /// A route's limiter: shared through Redis, local while Redis fails.
    pub fn limiter(self: &Arc<Self>, route: &str, quota: Quota) -> SharedRateLimiter {
        SharedRateLimiter {
            redis: RedisRateLimiter::new(self.clone(), route, quota),
            local: LocalRateLimiter::new(quota, self.clock.clone()),
            store: self.clone(),
        }
    }

    /// The non-critical `redis` check of `/health`.
    pub fn health_check(self: &Arc<Self>) -> RedisHealth {
        RedisHealth {
            store: self.clone(),
        }
    }

    /// This thread's connection (a cheap clone of the reconnecting one; see `RedisLink`).
    pub(super) async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        self.link.connection().await
    }

    async fn ping(&self) -> Result<(), LimiterError> {
        let call = async {
            let mut connection = self.connection().await?;
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
        };
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(LimiterError::Timeout(self.timeout)),
            Ok(Err(error)) => Err(LimiterError::Backend(Box::new(error))),
            Ok(Ok(_)) => Ok(()),
        }
    }
}

/// A route's limiter: Redis decides while it answers within the timeout; otherwise the
/// local limiter with the same quota does. Never returns an error.
#[derive(Debug)]
pub struct SharedRateLimiter {
    redis: RedisRateLimiter,
    local: LocalRateLimiter,
    store: Arc<RedisStore>,
}

impl SharedRateLimiter {
    /// Counts one request for `key` and decides on it.
    pub async fn decide(&self, key: &str) -> Decision {
        if self.store.link.should_ask() {
            match self.redis.decide(key).await {
                Ok(decision) => {
                    self.store.link.succeeded();
                    return decision;
                }
                Err(error) => self.store.link.failed(&error),
            }
        }
        self.local.check(key)
    }
}

impl RateLimiter for SharedRateLimiter {
    fn check<'a>(&'a self, key: &'a str) -> CheckFuture<'a> {
        Box::pin(async move { Ok(self.decide(key).await) })
    }
}

/// `redis` in `/health`: non-critical; healthy when Redis answers `PING` within the timeout,
/// degraded otherwise (limits are then per instance). A check's result also ends or starts
/// the fall-back, so `/health` and the limiters agree.
#[derive(Debug)]
pub struct RedisHealth {
    store: Arc<RedisStore>,
}

impl HealthCheck for RedisHealth {
    fn name(&self) -> &str {
        "redis"
    }

    fn critical(&self) -> bool {
        false
    }

    fn check(&self) -> Pin<Box<dyn Future<Output = CheckResult> + Send + '_>> {
        Box::pin(async move {
            match self.store.ping().await {
                Ok(()) => {
                    self.store.link.succeeded();
                    CheckResult::healthy()
                }
                Err(error) => {
                    self.store.link.failed(&error);
                    CheckResult::degraded("unreachable; rate limits are per instance")
                }
            }
        })
    }
}
