//! [`RedisRateLimiter`]: GCRA in one Lua script, one round trip per check.

use std::sync::Arc;
use std::time::Duration;

use portico_resilience::ratelimit::{CheckFuture, Decision, LimiterError, Quota, RateLimiter};
use redis::Script;

use super::shared::RedisStore;

/// GCRA on one key, in microseconds of Redis `TIME`.
///
/// `KEYS[1]`: the key; `ARGV[1]`: the emission interval; `ARGV[2]`: the tolerance
/// (interval × burst). Returns `{allowed, remaining, reset_after, retry_after}` (µs).
/// The stored value is the theoretical arrival time; the key expires when it passes (a key
/// whose TAT is in the past is the same as no key). Numbers are written with `%.0f` so Lua
/// never shortens a 16-digit TAT to an exponent form.
const GCRA: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local emission = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then
  local value = tonumber(stored)
  if value and value > now then tat = value end
end
local new_tat = tat + emission
local allowed_at = new_tat - tolerance
if now >= allowed_at then
  local used = new_tat - now
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat),
    'PX', string.format('%.0f', math.ceil(used / 1000)))
  return {1, math.floor((tolerance - used) / emission), used, 0}
end
return {0, 0, tat - now, allowed_at - now}
";

/// A keyed GCRA limiter whose state lives in Redis, shared by every instance using the same
/// Redis and route. Errors and timeouts are returned, not hidden: wrap it in a
/// [`SharedRateLimiter`](super::SharedRateLimiter) to fall back to local limits.
pub struct RedisRateLimiter {
    store: Arc<RedisStore>,
    script: Script,
    /// `portico:rl:<route>:`.
    prefix: String,
    limit: u32,
    emission_us: u64,
    tolerance_us: u64,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("prefix", &self.prefix)
            .field("limit", &self.limit)
            .field("emission_us", &self.emission_us)
            .field("tolerance_us", &self.tolerance_us)
            .finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    /// A limiter applying `quota` per key under `portico:rl:<route>:` in `store`'s Redis.
    pub fn new(store: Arc<RedisStore>, route: &str, quota: Quota) -> Self {
        let nanos = u64::try_from(quota.emission_interval().as_nanos()).unwrap_or(u64::MAX);
        // Whole microseconds, rounded up like the local limiter's nanoseconds: never more
        // than `limit` per window.
        let emission_us = nanos.div_ceil(1000).max(1);
        Self {
            store,
            script: Script::new(GCRA),
            prefix: format!("{}:{route}:", super::KEY_PREFIX),
            limit: quota.limit().get(),
            emission_us,
            tolerance_us: emission_us.saturating_mul(u64::from(quota.burst().get())),
        }
    }

    /// The Redis key of a limiter key.
    pub fn redis_key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.prefix.len() + key.len());
        full.push_str(&self.prefix);
        full.push_str(key);
        full
    }

    /// One round trip: counts a request for `key` and decides, within the store's timeout.
    pub async fn decide(&self, key: &str) -> Result<Decision, LimiterError> {
        let timeout = self.store.timeout();
        let call = async {
            let mut connection = self.store.connection().await?;
            self.script
                .key(self.redis_key(key))
                .arg(self.emission_us)
                .arg(self.tolerance_us)
                .invoke_async::<Vec<i64>>(&mut connection)
                .await
        };
        match tokio::time::timeout(timeout, call).await {
            Err(_) => Err(LimiterError::Timeout(timeout)),
            Ok(Err(error)) => Err(LimiterError::Backend(Box::new(error))),
            Ok(Ok(reply)) => self.decision(&reply),
        }
    }

    fn decision(&self, reply: &[i64]) -> Result<Decision, LimiterError> {
        let &[allowed, remaining, reset_us, retry_us] = reply else {
            return Err(LimiterError::Backend(
                format!("unexpected script reply {reply:?}").into(),
            ));
        };
        let micros = |n: i64| Duration::from_micros(u64::try_from(n).unwrap_or(0));
        Ok(Decision {
            allowed: allowed == 1,
            limit: self.limit,
            remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
            reset_after: micros(reset_us),
            retry_after: (allowed != 1).then(|| micros(retry_us)),
        })
    }
}

impl RateLimiter for RedisRateLimiter {
    fn check<'a>(&'a self, key: &'a str) -> CheckFuture<'a> {
        Box::pin(self.decide(key))
    }
}
