//! The Redis connection of a gateway, its fall-back state, the limiter that uses it and the
//! `redis` health check.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use portico_core::clock::SharedClock;
use portico_core::health::{CheckResult, HealthCheck};
use portico_resilience::ratelimit::{
    CheckFuture, Decision, LimiterError, LocalRateLimiter, Quota, RateLimiter,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use super::redis::RedisRateLimiter;
use super::{DEFAULT_TIMEOUT, PROBE_INTERVAL, RedisSetupError};

/// One gateway's Redis: the client, its connection (made on first use, then kept and
/// re-established by redis-rs), the per-call timeout, and whether limits are currently
/// decided locally because Redis failed.
pub struct RedisStore {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    timeout: Duration,
    clock: SharedClock,
    link: Mutex<Link>,
}

/// Shared or falling back.
#[derive(Debug, Default)]
struct Link {
    falling_back: bool,
    /// While falling back: when one request may try Redis again.
    next_probe: Option<Instant>,
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
        let client = redis::Client::open(url)
            .map_err(|e| RedisSetupError::InvalidUrl(format!("{:?}", e.kind())))?;
        Ok(Self {
            client,
            connection: OnceCell::new(),
            timeout: DEFAULT_TIMEOUT,
            clock,
            link: Mutex::new(Link::default()),
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
        self.link().falling_back
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

    /// The connection (a cheap clone of the shared, reconnecting one).
    pub(super) async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        let manager = self
            .connection
            .get_or_try_init(|| async {
                // Reconnection is redis-rs's; each of our calls is bounded by `timeout`.
                let config = ConnectionManagerConfig::new()
                    .set_number_of_retries(2)
                    .set_max_delay(PROBE_INTERVAL)
                    .set_connection_timeout(Some(Duration::from_secs(1)));
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            })
            .await?;
        Ok(manager.clone())
    }

    /// Whether this request should ask Redis: always while shared; while falling back, one
    /// request per [`PROBE_INTERVAL`].
    fn should_ask(&self) -> bool {
        let mut link = self.link();
        if !link.falling_back {
            return true;
        }
        let now = self.clock.now();
        match link.next_probe {
            Some(at) if now < at => false,
            _ => {
                link.next_probe = Some(now + PROBE_INTERVAL);
                true
            }
        }
    }

    /// Redis answered: limits are shared (again).
    fn succeeded(&self) {
        let mut link = self.link();
        if link.falling_back {
            link.falling_back = false;
            link.next_probe = None;
            tracing::info!("redis is back: rate limits are shared again");
        }
    }

    /// Redis failed: limits are per instance until it answers again.
    fn failed(&self, error: &LimiterError) {
        let mut link = self.link();
        link.next_probe = Some(self.clock.now() + PROBE_INTERVAL);
        if !link.falling_back {
            link.falling_back = true;
            tracing::warn!(
                error = %error,
                "redis unreachable: rate limits are per instance until it is back"
            );
        }
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

    // The link is two plain fields, each written in one statement: poisoning is ignored.
    fn link(&self) -> std::sync::MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(PoisonError::into_inner)
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
        if self.store.should_ask() {
            match self.redis.decide(key).await {
                Ok(decision) => {
                    self.store.succeeded();
                    return decision;
                }
                Err(error) => self.store.failed(&error),
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
                    self.store.succeeded();
                    CheckResult::healthy()
                }
                Err(error) => {
                    self.store.failed(&error);
                    CheckResult::degraded("unreachable; rate limits are per instance")
                }
            }
        })
    }
}
