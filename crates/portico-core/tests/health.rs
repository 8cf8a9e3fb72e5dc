//! Health aggregation, the per-check timeout (on a manual clock), and the `/health` routes
//! over real HTTP.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use portico_core::clock::ManualClock;
use portico_core::health::{
    CheckResult, HealthCheck, HealthRegistry, HealthStatus, aggregate, routes,
};
use support::{TestServer, get};

const TIMEOUT: Duration = Duration::from_secs(2);

fn registry() -> HealthRegistry {
    HealthRegistry::new(TIMEOUT)
}

#[test]
fn aggregation_rule() {
    use HealthStatus::*;
    assert_eq!(aggregate([]), Healthy);
    assert_eq!(aggregate([(Healthy, true), (Healthy, false)]), Healthy);
    assert_eq!(aggregate([(Healthy, true), (Degraded, true)]), Degraded);
    assert_eq!(aggregate([(Healthy, true), (Unhealthy, false)]), Degraded);
    assert_eq!(
        aggregate([(Unhealthy, false), (Unhealthy, true)]),
        Unhealthy
    );
    assert_eq!(aggregate([(Degraded, false), (Unhealthy, true)]), Unhealthy);
}

#[tokio::test]
async fn all_healthy_is_healthy() {
    let r = registry();
    r.register_fn("db", true, || async { CheckResult::healthy() });
    r.register_fn("cache", false, || async { CheckResult::healthy() });
    let report = r.report().await;
    assert_eq!(report.status, HealthStatus::Healthy);
    assert_eq!(report.checks.len(), 2);
    assert!(report.checks["db"].critical);
    assert!(!report.checks["cache"].critical);
}

#[tokio::test]
async fn non_critical_failure_degrades() {
    let r = registry();
    r.register_fn("db", true, || async { CheckResult::healthy() });
    r.register_fn("cache", false, || async {
        CheckResult::unhealthy("refused")
    });
    let report = r.report().await;
    assert_eq!(report.status, HealthStatus::Degraded);
    assert_eq!(report.checks["cache"].status, HealthStatus::Unhealthy);
    assert_eq!(report.checks["cache"].message.as_deref(), Some("refused"));
}

#[tokio::test]
async fn critical_failure_is_unhealthy() {
    let r = registry();
    r.register_fn("db", true, || async { CheckResult::unhealthy("down") });
    r.register_fn("cache", false, || async { CheckResult::degraded("slow") });
    assert_eq!(r.report().await.status, HealthStatus::Unhealthy);
}

#[tokio::test]
async fn reported_latency_is_kept() {
    let r = registry();
    r.register_fn("etl", true, || async {
        CheckResult::healthy().with_latency(Duration::from_millis(3))
    });
    assert_eq!(r.report().await.checks["etl"].latency_ms, 3);
}

struct Hangs;

impl HealthCheck for Hangs {
    fn name(&self) -> &str {
        "hangs"
    }
    fn critical(&self) -> bool {
        true
    }
    fn check(&self) -> Pin<Box<dyn Future<Output = CheckResult> + Send + '_>> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn a_check_that_hangs_past_the_timeout_is_unhealthy() {
    let clock = ManualClock::new();
    let r = HealthRegistry::with_clock(TIMEOUT, clock.shared());
    r.register(Arc::new(Hangs));
    r.register_fn("fast", false, || async { CheckResult::healthy() });

    let report = tokio::spawn({
        let r = r.clone();
        async move { r.report().await }
    });
    while clock.pending_sleeps() == 0 {
        tokio::task::yield_now().await;
    }
    // Just short of the timeout, the report is still waiting on the hanging check.
    clock.advance(TIMEOUT - Duration::from_millis(1));
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(!report.is_finished());
    clock.advance(Duration::from_millis(1));
    let report = report.await.unwrap();

    assert_eq!(report.status, HealthStatus::Unhealthy);
    let hangs = &report.checks["hangs"];
    assert_eq!(hangs.status, HealthStatus::Unhealthy);
    assert_eq!(hangs.latency_ms, 2000);
    assert!(hangs.message.as_deref().unwrap().contains("timed out"));
    assert_eq!(report.checks["fast"].status, HealthStatus::Healthy);
}

#[tokio::test]
async fn re_registering_a_name_replaces_the_check() {
    let r = registry();
    r.register_fn("db", true, || async { CheckResult::unhealthy("old") });
    r.register_fn("db", true, || async { CheckResult::healthy() });
    let report = r.report().await;
    assert_eq!(report.checks.len(), 1);
    assert_eq!(report.status, HealthStatus::Healthy);
}

#[tokio::test]
async fn an_unregistered_check_is_no_longer_reported() {
    let r = registry();
    r.register_fn("db", true, || async { CheckResult::healthy() });
    r.register_fn("etl", true, || async { CheckResult::unhealthy("down") });
    assert_eq!(r.report().await.status, HealthStatus::Unhealthy);
    assert!(r.unregister("etl"));
    assert!(!r.unregister("etl"), "already gone");
    let report = r.report().await;
    assert_eq!(report.checks.keys().collect::<Vec<_>>(), ["db"]);
    assert_eq!(report.status, HealthStatus::Healthy);
}

#[tokio::test]
async fn live_answers_alive() {
    let server = TestServer::start(routes(registry())).await;
    let reply = get(&server.url("/health/live")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), serde_json::json!({"status": "alive"}));
}

#[tokio::test]
async fn health_is_200_with_the_documented_shape_when_degraded() {
    let r = registry();
    r.register_fn("auth", true, || async {
        CheckResult::healthy().with_latency(Duration::from_millis(3))
    });
    r.register_fn("redis", false, || async {
        CheckResult::unhealthy("connection refused")
    });
    let server = TestServer::start(routes(r)).await;

    for path in ["/health", "/health/ready"] {
        let reply = get(&server.url(path)).await;
        assert_eq!(reply.status, 200, "{path}");
        let body = reply.json();
        assert_eq!(body["status"], "degraded");
        assert_eq!(body["checks"]["auth"]["status"], "healthy");
        assert_eq!(body["checks"]["auth"]["latency_ms"], 3);
        assert_eq!(body["checks"]["redis"]["status"], "unhealthy");
        assert_eq!(body["checks"]["redis"]["message"], "connection refused");
        assert!(body["checks"]["auth"].get("message").is_none());
        let ts = body["timestamp"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.len() == 24, "{ts}");
    }
}

#[tokio::test]
async fn health_is_503_when_a_critical_check_fails() {
    let r = registry();
    r.register_fn("db", true, || async { CheckResult::unhealthy("down") });
    let server = TestServer::start(routes(r)).await;
    let reply = get(&server.url("/health")).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["status"], "unhealthy");
}

#[tokio::test]
async fn no_checks_is_healthy() {
    let server = TestServer::start(routes(registry())).await;
    let reply = get(&server.url("/health/ready")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["status"], "healthy");
    assert_eq!(reply.json()["checks"], serde_json::json!({}));
}
