//! The gateway's `/health` probes over real HTTP: one check per upstream with a `health`
//! path, `GET <url><health>` with the upstream's client but not through its breaker, an open
//! circuit reported without a call, and the aggregation DESIGN gives (503 when a critical
//! check fails, 200 degraded when only a non-critical one does).
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Method, StatusCode};
use portico_core::health::{HealthRegistry, routes};
use portico_gateway::health::HttpCheck;
use portico_gateway::settings::{AuthMode, GatewaySettings, UpstreamSettings};
use serde_json::Value;
use support::*;
use tokio::net::TcpListener;

/// `/health` (and `/health/live`) served from `registry`, as `portico up` serves them.
async fn serve_health(registry: HealthRegistry) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, routes(registry)).await.unwrap() });
    addr
}

async fn get_health(addr: SocketAddr) -> Reply {
    send(
        http::Request::builder()
            .uri(format!("http://{addr}/health"))
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

/// An upstream answering `status` on `/health`, 200 on `/api/agent/ok`, and 500 elsewhere
/// (to open a circuit).
fn health_answering(status: StatusCode) -> Router {
    Router::new()
        .route("/health", get(move || async move { status }))
        .route("/svc/health", get(move || async move { status }))
        .route("/api/agent/ok", get(|| async { StatusCode::OK }))
        .fallback(|| async { StatusCode::INTERNAL_SERVER_ERROR })
}

/// Threshold 1 and one attempt: a single counted failure opens the circuit.
fn fragile(name: &str, url: &str, health: Option<&str>, critical: bool) -> UpstreamSettings {
    let mut settings = upstream(name, url);
    settings.policy = policy(1, 5 * SECOND, 1, 60 * SECOND);
    settings.health = health.map(str::to_owned);
    settings.critical = critical;
    settings
}

/// Four probed upstreams and one without a health path; `broken` (open circuit) has a route
/// so a real call can open it.
struct Fixture {
    gw: TestGateway,
    ok: Upstream,
    failing: Upstream,
    broken: Upstream,
    health: SocketAddr,
}

async fn fixture(failing_critical: bool, broken_critical: bool) -> Fixture {
    let ok = Upstream::start(health_answering(StatusCode::OK)).await;
    let failing = Upstream::start(health_answering(StatusCode::INTERNAL_SERVER_ERROR)).await;
    let broken = Upstream::start(health_answering(StatusCode::OK)).await;
    let plain = Upstream::start(health_answering(StatusCode::OK)).await;
    let closed = closed_port_url().await;
    let gateway_settings: GatewaySettings = settings(
        vec![
            // A base path: the probe is `<url><health>`.
            fragile("etl", &format!("{}/svc", ok.url()), Some("/health"), true),
            fragile("billing", &failing.url(), Some("/health"), failing_critical),
            fragile("search", &closed, Some("/health"), false),
            fragile("agent", &broken.url(), Some("/health"), broken_critical),
            fragile("plain", &plain.url(), None, true),
        ],
        vec![route("/api/agent", "agent", None, AuthMode::None, &[])],
    );
    let gw = start_gateway(gateway_settings).await;
    // Open the agent's circuit with one real failing call through the proxy.
    let opened = gw.get("/api/agent/boom", &[]).await;
    assert_eq!(opened.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(gw.breaker_state("agent"), "open");
    let registry = HealthRegistry::new(Duration::from_secs(2));
    gw.gateway.register_health(&registry);
    let health = serve_health(registry).await;
    Fixture {
        gw,
        ok,
        failing,
        broken,
        health,
    }
}

fn check<'a>(json: &'a Value, name: &str) -> &'a Value {
    let check = &json["checks"][name];
    assert!(check.is_object(), "no {name} check in {json}");
    check
}

#[tokio::test]
async fn only_non_critical_failures_make_health_200_degraded_with_every_probe_listed() {
    let f = fixture(false, false).await;
    let agent_hits = f.broken.hits();

    let reply = get_health(f.health).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["status"], "degraded", "{json}");
    assert!(json["timestamp"].is_string(), "{json}");

    let etl = check(&json, "etl");
    assert_eq!(etl["status"], "healthy", "{json}");
    assert_eq!(etl["critical"], true);
    assert!(etl["latency_ms"].is_u64(), "{json}");
    assert!(etl.get("message").is_none(), "{json}");
    // The probe went to `<url><health>`, with the internal token, as a GET.
    let seen = f.ok.last();
    assert_eq!(seen.method, Method::GET);
    assert_eq!(seen.uri, "/svc/health");
    assert_eq!(seen.header("x-internal-auth"), Some(INTERNAL_TOKEN));

    let billing = check(&json, "billing");
    assert_eq!(billing["status"], "unhealthy");
    assert_eq!(billing["critical"], false);
    assert_eq!(billing["message"], "answered 500");
    assert_eq!(f.failing.last().uri, "/health");

    let search = check(&json, "search");
    assert_eq!(search["status"], "unhealthy");
    assert_eq!(search["message"], "unreachable");

    let agent = check(&json, "agent");
    assert_eq!(agent["status"], "unhealthy");
    assert_eq!(agent["message"], "circuit open");
    assert_eq!(f.broken.hits(), agent_hits, "an open circuit is not probed");

    // No check for an upstream without a health path; nothing else but the four.
    assert!(json["checks"].get("plain").is_none(), "{json}");
    assert_eq!(json["checks"].as_object().unwrap().len(), 4, "{json}");

    let text = reply.text();
    assert!(!text.contains("127.0.0.1"), "address leaked: {text}");
    assert!(
        !text.to_lowercase().contains("refused"),
        "OS text leaked: {text}"
    );
}

#[tokio::test]
async fn a_failing_critical_upstream_makes_health_503_unhealthy() {
    let f = fixture(true, false).await;
    let reply = get_health(f.health).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    let json = reply.json();
    assert_eq!(json["status"], "unhealthy", "{json}");
    assert_eq!(check(&json, "billing")["message"], "answered 500");
    assert_eq!(check(&json, "billing")["critical"], true);
    assert_eq!(check(&json, "etl")["status"], "healthy");
}

#[tokio::test]
async fn a_critical_upstream_with_an_open_circuit_makes_health_503() {
    let f = fixture(false, true).await;
    let reply = get_health(f.health).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    let json = reply.json();
    assert_eq!(json["status"], "unhealthy", "{json}");
    assert_eq!(check(&json, "agent")["message"], "circuit open");
}

#[tokio::test]
async fn probes_leave_every_breaker_as_it_was() {
    let f = fixture(false, false).await;
    let before = f.gw.gateway.breakers();
    for _ in 0..3 {
        get_health(f.health).await;
    }
    // Threshold 1: one counted failure of billing (500) or search (refused) would open them.
    for (name, breaker) in f.gw.gateway.breakers() {
        let snapshot = breaker.snapshot();
        let was = before[&name].snapshot();
        assert_eq!(snapshot.state, was.state, "{name}");
        assert_eq!(snapshot.failure_count, was.failure_count, "{name}");
        assert_eq!(snapshot.last_state_change, was.last_state_change, "{name}");
    }
    assert_eq!(f.gw.breaker_state("billing"), "closed");
    assert_eq!(f.gw.breaker_state("search"), "closed");
    assert_eq!(f.gw.breaker_state("agent"), "open");
}

#[tokio::test]
async fn a_half_open_circuit_is_probed_without_taking_the_trial_call() {
    let f = fixture(false, false).await;
    f.gw.clock.advance(60 * SECOND);
    assert_eq!(f.gw.breaker_state("agent"), "half_open");
    let hits = f.broken.hits();

    let json = get_health(f.health).await.json();
    assert_eq!(check(&json, "agent")["status"], "healthy", "{json}");
    assert_eq!(f.broken.hits(), hits + 1, "the probe reached the upstream");
    assert_eq!(f.broken.last().uri, "/health");
    assert_eq!(f.gw.breaker_state("agent"), "half_open");

    // The trial call is still there for a real request, which closes the circuit.
    let trial = f.gw.get("/api/agent/ok", &[]).await;
    assert_eq!(trial.status, StatusCode::OK, "{}", trial.text());
    assert_eq!(f.gw.breaker_state("agent"), "closed");
}

#[tokio::test]
async fn a_hung_upstream_is_unhealthy_after_the_registrys_timeout() {
    let hung = Upstream::start(Router::new().fallback(std::future::pending::<&'static str>)).await;
    let gw = start_gateway(settings(
        vec![fragile("slow", &hung.url(), Some("/health"), true)],
        vec![],
    ))
    .await;
    let registry = HealthRegistry::new(Duration::from_millis(200));
    gw.gateway.register_health(&registry);
    let reply = get_health(serve_health(registry).await).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let json = reply.json();
    assert_eq!(
        check(&json, "slow")["message"],
        "timed out after 200ms",
        "{json}"
    );
    assert!(
        check(&json, "slow")["latency_ms"].as_u64().unwrap() >= 200,
        "{json}"
    );
    assert_eq!(gw.breaker_state("slow"), "closed");
}

#[tokio::test]
async fn an_http_check_probes_any_url() {
    let up = Upstream::start(health_answering(StatusCode::OK)).await;
    let closed = closed_port_url().await;
    let registry = HealthRegistry::new(Duration::from_secs(2));
    registry.register(Arc::new(
        HttpCheck::new("auth", true, &format!("{}/health", up.url())).unwrap(),
    ));
    registry.register(Arc::new(
        HttpCheck::new("cache", false, &format!("{closed}/health")).unwrap(),
    ));
    let reply = get_health(serve_health(registry).await).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["status"], "degraded");
    assert_eq!(check(&json, "auth")["status"], "healthy");
    assert_eq!(up.last().uri, "/health");
    assert_eq!(check(&json, "cache")["message"], "unreachable");

    assert!(HttpCheck::new("x", true, "ftp://example.com/").is_err());
    assert!(HttpCheck::new("x", true, "http://user:pw@example.com/").is_err());
    assert!(HttpCheck::new("x", true, "/health").is_err());
}

#[tokio::test]
async fn a_gateway_without_health_paths_registers_nothing() {
    let up = Upstream::start(health_answering(StatusCode::OK)).await;
    let gw = start_gateway(settings(vec![upstream("etl", &up.url())], vec![])).await;
    let registry = HealthRegistry::new(Duration::from_secs(2));
    gw.gateway.register_health(&registry);
    let json = get_health(serve_health(registry).await).await.json();
    assert_eq!(json["status"], "healthy");
    assert_eq!(json["checks"], serde_json::json!({}));
    assert_eq!(up.hits(), 0);
}
