//! Rate limits shared through a real Redis (`PORTICO_TEST_REDIS_URL`; these tests are
//! `#[ignore]`d and `scripts/test` runs them when Redis answers): two gateway instances share
//! one budget; the script decides like the local limiter; Redis unreachable → per-instance
//! limits still enforced, `/health` degraded, one log line each way.
//!
//! Every test uses a route name of its own, so runs sharing a Redis never share keys. The
//! unreachable-Redis test needs no Redis and is not ignored (nor named after it, so
//! `scripts/test` runs it even when it skips the Redis tests).
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use http::StatusCode;
use portico_core::clock::SystemClock;
use portico_core::health::HealthRegistry;
use portico_gateway::ratelimit::{RedisRateLimiter, RedisStore};
use portico_gateway::settings::{AuthMode, GatewaySettings, RateLimit, RateLimitKey};
use portico_resilience::ManualClock;
use portico_resilience::ratelimit::{Decision, LocalRateLimiter, Quota};
use support::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const MINUTE: Duration = Duration::from_secs(60);
const ALICE: (&str, &str) = ("authorization", "Bearer alice-token");

/// `prefix` → the upstream at `url`, `requests` per minute per user, Redis at `redis`.
fn limited(url: &str, prefix: &str, requests: u32, redis: &str) -> GatewaySettings {
    let mut x = route(prefix, "x", None, AuthMode::Required, &[]);
    x.rate_limit = Some(RateLimit {
        per: RateLimitKey::User,
        requests: NonZeroU32::new(requests).unwrap(),
        window: MINUTE,
    });
    let mut settings = settings(vec![upstream("x", url)], vec![x]);
    settings.redis_url = Some(redis.to_owned());
    settings
}

async fn ok_upstream() -> Upstream {
    Upstream::start(Router::new().fallback(|| async { "ok" })).await
}

fn assert_headers(reply: &Reply, limit: &str, remaining: &str) {
    assert_eq!(reply.header("ratelimit-limit"), Some(limit), "{reply:?}");
    assert_eq!(
        reply.header("ratelimit-remaining"),
        Some(remaining),
        "{reply:?}"
    );
}

fn assert_refused(reply: &Reply, limit: &str, retry_after: &str, reset: &str) {
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.text()
    );
    assert_eq!(reply.code(), "BACKEND_003");
    assert_eq!(reply.header("retry-after"), Some(retry_after), "{reply:?}");
    assert_headers(reply, limit, "0");
    assert_eq!(reply.header("ratelimit-reset"), Some(reset), "{reply:?}");
}

#[tokio::test]
#[ignore = "needs Redis (PORTICO_TEST_REDIS_URL)"]
async fn two_instances_share_one_budget_through_redis() {
    let up = ok_upstream().await;
    let prefix = format!("/{}", unique_name("shared"));
    let settings = limited(&up.url(), &prefix, 4, &test_redis_url());
    let one = start_gateway(settings.clone()).await;
    let two = start_gateway(settings).await;
    let path = format!("{prefix}/a");

    // 4 per minute for alice, whichever instance she reaches.
    for (gateway, remaining) in [(&one, "3"), (&two, "2"), (&one, "1"), (&two, "0")] {
        let reply = gateway.get(&path, &[ALICE]).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_headers(&reply, "4", remaining);
    }
    // One request comes back every 15 s; the whole budget after 60 s (Redis's clock).
    for gateway in [&one, &two] {
        let refused = gateway.get(&path, &[ALICE]).await;
        assert_refused(&refused, "4", "15", "60");
    }
    assert_eq!(up.hits(), 4, "refused requests never reach the upstream");
    for gateway in [&one, &two] {
        assert!(!gateway.gateway.redis().unwrap().is_falling_back());
    }
}

#[tokio::test]
#[ignore = "needs Redis (PORTICO_TEST_REDIS_URL)"]
async fn redis_script_decides_like_the_local_limiter() {
    // Quota 5/min: 5 allowed (4..0 remaining), the 6th refused with retry-after 12 s.
    let quota = Quota::new(5, MINUTE).unwrap();
    let store = Arc::new(RedisStore::new(&test_redis_url(), SystemClock::shared()).unwrap());
    let route = unique_name("script");
    let redis = RedisRateLimiter::new(store, &route, quota);
    let clock = ManualClock::new();
    let local = LocalRateLimiter::new(quota, clock.shared());

    let started = Instant::now();
    let mut pairs = Vec::new();
    for _ in 0..7 {
        let remote = redis.decide("u:alice").await.unwrap();
        pairs.push((remote, local.check("u:alice")));
    }
    // Real time passes for Redis, none for the manual clock: Redis's durations are at most
    // that much shorter, never longer.
    let slack = started.elapsed() + Duration::from_micros(1);
    for (i, (remote, local)) in pairs.iter().enumerate() {
        assert_eq!(remote.allowed, local.allowed, "request {i}");
        assert_eq!(remote.limit, local.limit, "request {i}");
        assert_eq!(remote.remaining, local.remaining, "request {i}");
        close(remote.reset_after, local.reset_after, slack, i);
        match (remote.retry_after, local.retry_after) {
            (None, None) => {}
            (Some(r), Some(l)) => close(r, l, slack, i),
            other => panic!("request {i}: {other:?}"),
        }
    }
    let sixth: &Decision = &pairs[5].0;
    assert!(!sixth.allowed);
    assert_eq!(pairs[5].1.retry_after, Some(Duration::from_secs(12)));
    assert_eq!(pairs[4].1.reset_after, MINUTE);

    // The key expires when the budget is whole again, not before, not long after.
    let client = redis::Client::open(test_redis_url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(redis.redis_key("u:alice"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!((59_000..=60_000).contains(&ttl), "PTTL {ttl}");
    assert!(redis.redis_key("u:alice").starts_with("portico:rl:script-"));
}

/// `remote` is `local` less at most `slack`.
fn close(remote: Duration, local: Duration, slack: Duration, i: usize) {
    assert!(
        remote <= local && local - remote <= slack,
        "request {i}: redis {remote:?}, local {local:?}, slack {slack:?}"
    );
}

#[tokio::test]
#[ignore = "needs Redis (PORTICO_TEST_REDIS_URL)"]
async fn redis_with_a_burst_and_a_short_interval_matches_too() {
    // 10 per second, 3 at once: emission 100 ms.
    let quota = Quota::new(10, Duration::from_secs(1))
        .unwrap()
        .with_burst(3)
        .unwrap();
    let store = Arc::new(RedisStore::new(&test_redis_url(), SystemClock::shared()).unwrap());
    let redis = RedisRateLimiter::new(store, &unique_name("burst"), quota);
    let remaining: Vec<_> = futures_in_order(&redis, "k:abcd", 4).await;
    assert_eq!(
        remaining
            .iter()
            .map(|d| (d.allowed, d.remaining))
            .collect::<Vec<_>>(),
        [(true, 2), (true, 1), (true, 0), (false, 0)]
    );
    let retry = remaining[3].retry_after.unwrap();
    assert!(retry <= Duration::from_millis(100) && retry > Duration::ZERO);
}

async fn futures_in_order(redis: &RedisRateLimiter, key: &str, n: usize) -> Vec<Decision> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(redis.decide(key).await.unwrap());
    }
    out
}

#[tokio::test]
async fn shared_store_unreachable_still_limits_per_instance_and_health_says_degraded() {
    capture_logs();
    let up = ok_upstream().await;
    let closed = closed_port_url().await.replace("http://", "redis://");
    let gw = start_gateway(limited(&up.url(), "/api/x", 3, &closed)).await;
    let registry = HealthRegistry::new(Duration::from_secs(2));
    gw.gateway.register_health(&registry);
    let health = serve_health_report(registry).await;

    for remaining in ["2", "1", "0"] {
        let reply = gw.get("/api/x/a", &[ALICE]).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_headers(&reply, "3", remaining);
    }
    // The local limiter on the gateway's (manual) clock: exact figures.
    let refused = gw.get("/api/x/a", &[ALICE]).await;
    assert_refused(&refused, "3", "20", "60");
    assert_eq!(up.hits(), 3);
    assert!(gw.gateway.redis().unwrap().is_falling_back());

    let warnings: Vec<_> = take_messages()
        .into_iter()
        .filter(|m| m.contains("redis"))
        .collect();
    assert_eq!(
        warnings,
        ["redis unreachable: rate limits are per instance until it is back"],
        "logged once, not per request"
    );

    let report = get(health, "/health").await;
    assert_eq!(
        report.status,
        StatusCode::OK,
        "non-critical: degraded, not 503"
    );
    let json = report.json();
    assert_eq!(json["status"], "degraded", "{json}");
    assert_eq!(json["checks"]["redis"]["status"], "degraded", "{json}");
    let message = json["checks"]["redis"]["message"].as_str().unwrap();
    assert!(message.contains("per instance"), "{json}");
    assert!(
        !json.to_string().contains("127.0.0.1"),
        "no address in /health: {json}"
    );
}

#[tokio::test]
#[ignore = "needs Redis (PORTICO_TEST_REDIS_URL)"]
async fn redis_lost_then_back_falls_back_and_shares_again() {
    capture_logs();
    let up = ok_upstream().await;
    let proxy = Toggle::start(&test_redis_url()).await;
    let prefix = format!("/{}", unique_name("toggle"));
    let gw = start_gateway(limited(&up.url(), &prefix, 100, &proxy.url())).await;
    let registry = HealthRegistry::new(Duration::from_secs(2));
    gw.gateway.register_health(&registry);
    let health = serve_health_report(registry).await;
    let path = format!("{prefix}/a");
    let store = gw.gateway.redis().unwrap().clone();

    let shared = gw.get(&path, &[ALICE]).await;
    assert_headers(&shared, "100", "99");
    assert!(!store.is_falling_back());
    assert_eq!(
        get(health, "/health").await.json()["checks"]["redis"]["status"],
        "healthy"
    );

    proxy.set(false);
    // Requests go on, decided locally (its own fresh budget), never refused for Redis.
    for _ in 0..3 {
        let reply = gw.get(&path, &[ALICE]).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    assert!(store.is_falling_back());
    assert_eq!(
        get(health, "/health").await.json()["checks"]["redis"]["status"],
        "degraded"
    );

    proxy.set(true);
    // The health check's PING ends the fall-back; the next request is shared again and
    // Redis's count went on from where it was (1 counted there, now the 2nd).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let json = get(health, "/health").await.json();
        if json["checks"]["redis"]["status"] == "healthy" {
            break;
        }
        assert!(Instant::now() < deadline, "redis still not back: {json}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!store.is_falling_back());
    let again = gw.get(&path, &[ALICE]).await;
    assert_headers(&again, "100", "98");

    let messages: Vec<_> = take_messages()
        .into_iter()
        .filter(|m| m.starts_with("redis "))
        .collect();
    assert_eq!(
        messages,
        [
            "redis unreachable: rate limits are per instance until it is back",
            "redis is back: rate limits are shared again",
        ]
    );
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(
        http::Request::builder()
            .uri(format!("http://{addr}{path}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

/// A TCP relay to Redis that can be cut (open connections dropped, new ones refused at
/// once) and restored.
struct Toggle {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
    links: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
}

impl Toggle {
    async fn start(redis_url: &str) -> Toggle {
        let target = redis_url
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let links = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (flag, tasks) = (open.clone(), links.clone());
        tokio::spawn(async move {
            loop {
                let (mut client, _) = listener.accept().await.unwrap();
                if !flag.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let target = target.clone();
                tasks.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Toggle { addr, open, links }
    }

    fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    fn set(&self, open: bool) {
        self.open.store(open, Ordering::SeqCst);
        if !open {
            for link in self.links.lock().unwrap().drain(..) {
                link.abort();
            }
        }
    }
}
