//! Per-route rate limits: one keyed limiter per route that has a `rate_limit`, checked after
//! identity and permissions (so 401/403 come first) and before the upstream is called.
//!
//! | `per` | key |
//! |---|---|
//! | `user` | `u:<user id>`; anonymous → `ip:<client address>` |
//! | `api_key` | `k:<credential id>` when the caller used an API key; else `u:<user id>`; anonymous → `ip:<client address>` |
//! | `ip` | `ip:<client address>` (the peer address the gateway sees) |
//!
//! The prefixes keep a user id from ever sharing a budget with an address or a key. A
//! request without a known peer address counts as `ip:unknown`.
//!
//! A refused request gets 429 `BACKEND_003` with `Retry-After` (whole seconds, at least 1);
//! every answer to a limited route carries `RateLimit-Limit`, `RateLimit-Remaining` and
//! `RateLimit-Reset` (seconds until the full budget is back), the IETF draft's names.
//!
//! Without Redis each route's limiter is in-process. With `redis_url` set it is a
//! [`SharedRateLimiter`](crate::ratelimit::SharedRateLimiter): one budget for every instance,
//! decided locally while Redis is unreachable (see [`crate::ratelimit`]), so it always
//! decides. Any other limiter whose backend fails has the request allowed (fail open) and
//! the failure logged.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use http::{HeaderName, HeaderValue};
use portico_core::clock::SharedClock;
use portico_core::error::{ApiError, ErrorCode};
use portico_resilience::ratelimit::{Decision, LocalRateLimiter, Quota, RateLimiter};

use super::GatewayError;
use super::metrics;
use crate::identity::{CredentialKind, Identity};
use crate::ratelimit::RedisStore;
use crate::settings::{RateLimit, RateLimitKey, RouteSettings};

/// `RateLimit-Limit`.
pub(crate) const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`.
pub(crate) const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`.
pub(crate) const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// One route's limiter and what it counts by.
pub(crate) struct RouteLimit {
    per: RateLimitKey,
    limiter: Arc<dyn RateLimiter>,
}

impl RouteLimit {
    /// The limiter for `route`'s `rate_limit`, if it has one: shared through `redis` when
    /// given, else in-process.
    pub(crate) fn for_route(
        route: &RouteSettings,
        clock: &SharedClock,
        redis: Option<&Arc<RedisStore>>,
    ) -> Result<Option<Self>, GatewayError> {
        let Some(RateLimit {
            per,
            requests,
            window,
        }) = route.rate_limit
        else {
            return Ok(None);
        };
        let quota =
            Quota::new(requests.get(), window).map_err(|source| GatewayError::RateLimit {
                route: route.prefix.clone(),
                source,
            })?;
        let limiter: Arc<dyn RateLimiter> = match redis {
            Some(store) => Arc::new(store.limiter(&route.prefix, quota)),
            None => Arc::new(LocalRateLimiter::new(quota, clock.clone())),
        };
        Ok(Some(Self::new(per, limiter)))
    }

    /// A limit counting by `per` in `limiter` (the seam for a shared limiter).
    pub(crate) fn new(per: RateLimitKey, limiter: Arc<dyn RateLimiter>) -> Self {
        Self { per, limiter }
    }

    /// Counts the request; `Ok(Some(decision))` when allowed, `Ok(None)` when the limiter
    /// could not decide (allowed, logged), 429 `BACKEND_003` when refused.
    pub(crate) async fn check(
        &self,
        route: &str,
        identity: Option<&Identity>,
        client_ip: Option<IpAddr>,
    ) -> Result<Option<Decision>, ApiError> {
        let key = key(self.per, identity, client_ip);
        let decision = match self.limiter.check(&key).await {
            Ok(decision) => decision,
            Err(error) => {
                tracing::warn!(route, error = %error, "rate limiter unavailable; allowing request");
                return Ok(None);
            }
        };
        if decision.allowed {
            return Ok(Some(decision));
        }
        metrics::rate_limited(route);
        let retry_after = decision.retry_after.unwrap_or(Duration::ZERO);
        let mut error = ApiError::new(ErrorCode::Backend003, "rate limit exceeded")
            .with_detail("limit", decision.limit)
            .with_retry_after(retry_after);
        for (name, value) in header_values(&decision) {
            error = error.with_header(name, value);
        }
        Err(error)
    }
}

/// The limit of each route (in the table's order) and the Redis they share.
pub(crate) type RouteLimits = (Vec<Option<RouteLimit>>, Option<Arc<RedisStore>>);

/// The limit of each route (in `routes`' order) and the Redis they share, if `redis_url` is
/// set.
pub(crate) fn for_routes(
    routes: &[RouteSettings],
    clock: &SharedClock,
    redis_url: Option<&str>,
) -> Result<RouteLimits, GatewayError> {
    let redis = redis_url
        .map(|url| RedisStore::new(url, clock.clone()).map(Arc::new))
        .transpose()?;
    let limits = routes
        .iter()
        .map(|route| RouteLimit::for_route(route, clock, redis.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((limits, redis))
}

/// The limiter key of a request: the kind's prefix and the id.
fn key(per: RateLimitKey, identity: Option<&Identity>, client_ip: Option<IpAddr>) -> String {
    let by_ip = || match client_ip {
        // Written by hand: `format!` through `Display` costs several times as much, on every
        // request of a limited route.
        Some(ip) => {
            let mut key = Vec::with_capacity(3 + 15);
            key.extend_from_slice(b"ip:");
            super::headers::push_ip(&mut key, ip);
            String::from_utf8(key).unwrap_or_else(|_| "ip:unknown".to_owned())
        }
        None => "ip:unknown".to_owned(),
    };
    match (per, identity) {
        (RateLimitKey::ApiKey, Some(identity)) if identity.kind == CredentialKind::ApiKey => {
            format!("k:{}", identity.credential_id)
        }
        (RateLimitKey::User | RateLimitKey::ApiKey, Some(identity)) => {
            format!("u:{}", identity.user_id)
        }
        _ => by_ip(),
    }
}

/// Adds the `RateLimit-*` headers of `decision` to `response` (replacing any the upstream
/// sent: the client is told the gateway's budget).
pub(crate) fn annotate(response: &mut Response, decision: &Decision) {
    let headers = response.headers_mut();
    for (name, value) in header_values(decision) {
        headers.insert(name, value);
    }
}

/// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (whole seconds, rounded up).
fn header_values(decision: &Decision) -> [(HeaderName, HeaderValue); 3] {
    [
        (RATELIMIT_LIMIT, HeaderValue::from(decision.limit)),
        (RATELIMIT_REMAINING, HeaderValue::from(decision.remaining)),
        (
            RATELIMIT_RESET,
            HeaderValue::from(ceil_secs(decision.reset_after)),
        ),
    ]
}

fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn caller(kind: CredentialKind) -> Identity {
        Identity {
            user_id: "42".into(),
            email: String::new(),
            permissions: vec![],
            roles: vec![],
            kind,
            credential_id: "abcd".into(),
            expires_at: None,
        }
    }

    #[test]
    fn keys_are_prefixed_by_kind_and_fall_back_to_the_address() {
        let ip = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        let user = caller(CredentialKind::User);
        let key_caller = caller(CredentialKind::ApiKey);
        assert_eq!(key(RateLimitKey::User, Some(&user), ip), "u:42");
        assert_eq!(key(RateLimitKey::User, Some(&key_caller), ip), "u:42");
        assert_eq!(key(RateLimitKey::User, None, ip), "ip:10.0.0.1");
        assert_eq!(key(RateLimitKey::ApiKey, Some(&key_caller), ip), "k:abcd");
        assert_eq!(key(RateLimitKey::ApiKey, Some(&user), ip), "u:42");
        assert_eq!(key(RateLimitKey::ApiKey, None, ip), "ip:10.0.0.1");
        assert_eq!(key(RateLimitKey::Ip, Some(&user), ip), "ip:10.0.0.1");
        assert_eq!(key(RateLimitKey::Ip, None, None), "ip:unknown");
    }

    #[test]
    fn reset_rounds_up_to_whole_seconds() {
        assert_eq!(ceil_secs(Duration::ZERO), 0);
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_secs(60)), 60);
    }
}
