//! The proxy's resilience over real HTTP, timed by a `ManualClock`: seed 002's timeout (504)
//! and unreachable upstream (503 + Retry-After), seed 001's breaker sequence
//! (CLOSED → OPEN → HALF_OPEN → CLOSED) with its log lines, retries only where they are safe
//! (idempotent methods or `retry_non_idempotent`, replayable bodies), and the metrics.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::IntoResponse;
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use support::*;

const ALICE: (&str, &str) = ("authorization", "Bearer alice-token");

/// An upstream that answers `status` (with `Retry-After: retry_after` if given) to the
/// first `failures` requests, then 200 `ok`; it keeps every request body.
fn scripted(
    failures: usize,
    status: StatusCode,
    retry_after: Option<&'static str>,
) -> (Router, Arc<Mutex<Vec<Bytes>>>) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    let router = Router::new().fallback(move |request: Request| {
        let kept = kept.clone();
        async move {
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let n = {
                let mut kept = kept.lock().unwrap();
                kept.push(body);
                kept.len()
            };
            if n <= failures {
                let mut response =
                    (status, format!("{} from upstream", status.as_u16())).into_response();
                if let Some(after) = retry_after {
                    response
                        .headers_mut()
                        .insert("retry-after", header_value(after));
                }
                response
            } else {
                (StatusCode::OK, "ok").into_response()
            }
        }
    });
    (router, bodies)
}

/// An upstream that never answers.
fn hung() -> Router {
    Router::new().fallback(std::future::pending::<&'static str>)
}

fn assert_no_address(reply: &Reply) {
    let text = reply.text();
    assert!(!text.contains("127.0.0.1"), "address leaked: {text}");
    assert!(
        !text.to_lowercase().contains("refused"),
        "OS error leaked: {text}"
    );
}

#[tokio::test]
async fn a_slow_upstream_is_504_sys_004_after_the_timeout_of_each_attempt() {
    let etl = Upstream::start(hung()).await;
    let gw = start_gateway(etl_settings(
        &etl.url(),
        policy(1, 15 * SECOND, 5, 60 * SECOND),
    ))
    .await;

    let call = tokio::spawn(send(gw.request(
        Method::POST,
        "/api/etl/jobs/start",
        &[ALICE],
        "{}",
    )));
    until("the upstream is called", || etl.hits() == 1).await;
    advance_when_sleeping(&gw.clock, 15 * SECOND).await;
    let reply = call.await.unwrap();
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(reply.code(), "SYS_004");
    assert_no_address(&reply);
    assert_eq!(etl.hits(), 1);

    // A GET gets every attempt, each with its own timeout, with the backoff between them.
    let gw = start_gateway(etl_settings(
        &etl.url(),
        policy(3, 15 * SECOND, 5, 60 * SECOND),
    ))
    .await;
    capture_logs();
    let call = tokio::spawn(send(gw.request(
        Method::GET,
        "/api/etl/jobs/1",
        &[ALICE],
        Body::empty(),
    )));
    for attempt in 1..=3u32 {
        until("the upstream is called", || {
            etl.hits() == 1 + attempt as usize
        })
        .await;
        advance_when_sleeping(&gw.clock, 15 * SECOND).await;
        if attempt < 3 {
            advance_when_sleeping(&gw.clock, attempt * SECOND).await;
        }
    }
    let reply = call.await.unwrap();
    assert_eq!(reply.code(), "SYS_004");
    assert_eq!(etl.hits(), 4);
    let logs = take_messages();
    for line in [
        "[etl] GET /api/v1/jobs/1 (attempt 1/3)",
        "[etl] Timeout on attempt 1/3 after 15s",
        "[etl] Retrying in 1s...",
        "[etl] Retrying in 2s...",
        "[etl] ✗ All 3 retry attempts failed",
    ] {
        assert!(logs.iter().any(|l| l == line), "{line:?} not in {logs:#?}");
    }
}

#[tokio::test]
async fn an_unreachable_upstream_is_503_sys_002_with_retry_after() {
    let url = closed_port_url().await;
    let gw = start_gateway(etl_settings(&url, policy(3, 5 * SECOND, 5, 60 * SECOND))).await;

    // POST: one attempt.
    let reply = gw
        .call(Method::POST, "/api/etl/jobs/start", &[ALICE], "{}")
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.code(), "SYS_002");
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_no_address(&reply);

    // GET: three attempts, 1 s and 2 s apart on the gateway's clock.
    capture_logs();
    let call = tokio::spawn(send(gw.request(
        Method::GET,
        "/api/etl/jobs/1",
        &[ALICE],
        Body::empty(),
    )));
    advance_when_sleeping(&gw.clock, SECOND).await;
    advance_when_sleeping(&gw.clock, 2 * SECOND).await;
    let reply = call.await.unwrap();
    assert_eq!(reply.code(), "SYS_002");
    assert!(reply.header("retry-after").is_some());
    let logs = take_messages();
    assert!(
        logs.iter()
            .any(|l| l == "[etl] Connection failed on attempt 3/3: Connection refused"),
        "{logs:#?}"
    );
    assert_eq!(gw.gateway.breakers()["etl"].snapshot().failure_count, 4);
}

#[tokio::test]
async fn seed_001_breaker_opens_rejects_without_calling_then_recovers_through_a_trial() {
    let healthy = Arc::new(AtomicBool::new(false));
    let hits = Arc::new(AtomicUsize::new(0));
    let (h, n) = (healthy.clone(), hits.clone());
    let etl = Upstream::start(Router::new().fallback(move || {
        n.fetch_add(1, Ordering::SeqCst);
        let up = h.load(Ordering::SeqCst);
        async move {
            if up {
                (StatusCode::OK, "recovered")
            } else {
                (StatusCode::INTERNAL_SERVER_ERROR, "boom")
            }
        }
    }))
    .await;
    let gw = start_gateway(etl_settings(
        &etl.url(),
        policy(1, 5 * SECOND, 3, 30 * SECOND),
    ))
    .await;
    capture_logs();

    for i in 1..=3 {
        assert_eq!(gw.breaker_state("etl"), "closed", "before failure {i}");
        let reply = gw.get("/api/etl/jobs", &[ALICE]).await;
        // 5xx after retries: the upstream's own answer.
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(reply.text(), "boom");
    }
    assert_eq!(gw.breaker_state("etl"), "open");
    let logs = take_messages();
    assert!(
        logs.iter()
            .any(|l| l == "[etl] Circuit breaker OPEN (threshold reached: 3/3)"),
        "{logs:#?}"
    );

    // Open: answered at once, without calling the upstream, with the time to the trial.
    let reply = gw.get("/api/etl/jobs", &[ALICE]).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.code(), "SYS_002");
    assert_eq!(reply.header("retry-after"), Some("30"));
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    gw.clock.advance(Duration::from_secs(12));
    let reply = gw.get("/api/etl/jobs", &[ALICE]).await;
    assert_eq!(reply.header("retry-after"), Some("18"));
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    // Still failing at the trial: open for another recovery timeout.
    gw.clock.advance(Duration::from_secs(18));
    assert_eq!(gw.breaker_state("etl"), "half_open");
    let reply = gw.get("/api/etl/jobs", &[ALICE]).await;
    assert_eq!(reply.text(), "boom");
    assert_eq!(gw.breaker_state("etl"), "open");
    assert_eq!(hits.load(Ordering::SeqCst), 4);
    assert_eq!(
        gw.get("/api/etl/jobs", &[ALICE])
            .await
            .header("retry-after"),
        Some("30")
    );

    // Recovered: the trial passes and the circuit closes.
    gw.clock.advance(Duration::from_secs(30));
    healthy.store(true, Ordering::SeqCst);
    let reply = gw.get("/api/etl/jobs", &[ALICE]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "recovered");
    assert_eq!(gw.breaker_state("etl"), "closed");
    assert_eq!(gw.gateway.breakers()["etl"].snapshot().failure_count, 0);
    assert_eq!(hits.load(Ordering::SeqCst), 5);
    let logs = take_messages();
    assert!(
        logs.iter()
            .any(|l| l == "[etl] Circuit breaker CLOSED (service recovered)"),
        "{logs:#?}"
    );
}

#[tokio::test]
async fn connect_failures_open_the_circuit_and_retry_after_says_when_it_tests_again() {
    let url = closed_port_url().await;
    let gw = start_gateway(etl_settings(&url, policy(1, 5 * SECOND, 2, 45 * SECOND))).await;

    let first = gw.get("/api/etl/x", &[ALICE]).await;
    assert_eq!(first.header("retry-after"), Some("1"));
    let second = gw.get("/api/etl/x", &[ALICE]).await;
    assert_eq!(second.code(), "SYS_002");
    assert_eq!(second.header("retry-after"), Some("45"));
    assert_eq!(gw.breaker_state("etl"), "open");
    let third = gw.get("/api/etl/x", &[ALICE]).await;
    assert_eq!(third.code(), "SYS_002");
    assert_eq!(third.header("retry-after"), Some("45"));
    // The refused call was not an attempt: the count stays at the two failures.
    assert_eq!(gw.gateway.breakers()["etl"].snapshot().failure_count, 2);
}

#[tokio::test]
async fn a_get_is_retried_on_503_with_seed_001_backoff_until_it_succeeds() {
    let (router, bodies) = scripted(2, StatusCode::SERVICE_UNAVAILABLE, None);
    let etl = Upstream::start(router).await;
    let gw = start_gateway(etl_settings(&etl.url(), default_policy())).await;
    capture_logs();

    let call = tokio::spawn(send(gw.request(
        Method::GET,
        "/api/etl/jobs/1",
        &[ALICE],
        Body::empty(),
    )));
    advance_when_sleeping(&gw.clock, SECOND).await;
    advance_when_sleeping(&gw.clock, 2 * SECOND).await;
    let reply = call.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "ok");
    assert_eq!(bodies.lock().unwrap().len(), 3);
    assert_eq!(etl.hits(), 3);
    let logs = take_messages();
    let retries: Vec<_> = logs.iter().filter(|l| l.contains("Retrying in")).collect();
    assert_eq!(
        retries,
        ["[etl] Retrying in 1s...", "[etl] Retrying in 2s..."]
    );
    assert!(
        logs.iter()
            .any(|l| l == "[etl] Server error 503 on attempt 1/3")
    );
    assert!(
        logs.iter()
            .any(|l| l == "[etl] ✓ GET /api/v1/jobs/1 succeeded")
    );
}

#[tokio::test]
async fn after_the_last_attempt_the_upstreams_5xx_is_passed_through() {
    let (router, _) = scripted(usize::MAX, StatusCode::BAD_GATEWAY, None);
    let etl = Upstream::start(router).await;
    let gw = start_gateway(etl_settings(&etl.url(), default_policy())).await;
    let call = tokio::spawn(send(gw.request(
        Method::DELETE,
        "/api/etl/jobs/1",
        &[ALICE],
        Body::empty(),
    )));
    advance_when_sleeping(&gw.clock, SECOND).await;
    advance_when_sleeping(&gw.clock, 2 * SECOND).await;
    let reply = call.await.unwrap();
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.text(), "502 from upstream");
    assert_eq!(etl.hits(), 3);
}

#[tokio::test]
async fn post_is_sent_once_unless_the_upstream_allows_retrying_it() {
    let (router, bodies) = scripted(usize::MAX, StatusCode::SERVICE_UNAVAILABLE, None);
    let etl = Upstream::start(router).await;
    let gw = start_gateway(etl_settings(&etl.url(), default_policy())).await;
    for method in [Method::POST, Method::PATCH] {
        let reply = gw
            .call(method.clone(), "/api/etl/jobs/start", &[ALICE], "{\"n\":1}")
            .await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{method}");
        assert_eq!(reply.text(), "503 from upstream");
    }
    assert_eq!(etl.hits(), 2);
    assert_eq!(gw.clock.pending_sleeps(), 0);

    let mut s = etl_settings(&etl.url(), default_policy());
    s.upstreams.get_mut("etl").unwrap().retry_non_idempotent = true;
    let gw = start_gateway(s).await;
    bodies.lock().unwrap().clear();
    let call = tokio::spawn(send(gw.request(
        Method::POST,
        "/api/etl/jobs/start",
        &[ALICE],
        "{\"n\":2}",
    )));
    advance_when_sleeping(&gw.clock, SECOND).await;
    advance_when_sleeping(&gw.clock, 2 * SECOND).await;
    assert_eq!(call.await.unwrap().status, StatusCode::SERVICE_UNAVAILABLE);
    // Every attempt carried the whole body.
    assert_eq!(
        *bodies.lock().unwrap(),
        vec![Bytes::from_static(b"{\"n\":2}"); 3]
    );
}

#[tokio::test]
async fn only_replayable_bodies_are_retried() {
    let (router, bodies) = scripted(usize::MAX, StatusCode::SERVICE_UNAVAILABLE, None);
    let etl = Upstream::start(router).await;
    let gw = start_gateway(etl_settings(&etl.url(), default_policy())).await;

    // Over 64 KiB: sent once, streamed.
    let big = vec![b'b'; 64 * 1024 + 1];
    let reply = gw
        .call(Method::PUT, "/api/etl/blob", &[ALICE], big.clone())
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(*bodies.lock().unwrap(), vec![Bytes::from(big)]);

    // Unknown length (chunked): sent once.
    bodies.lock().unwrap().clear();
    let (tx, body) = channel_body();
    let call = tokio::spawn(send(gw.request(
        Method::PUT,
        "/api/etl/blob",
        &[ALICE],
        body,
    )));
    tx.send(Bytes::from_static(b"part 1, ")).await.unwrap();
    tx.send(Bytes::from_static(b"part 2")).await.unwrap();
    drop(tx);
    assert_eq!(call.await.unwrap().status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        *bodies.lock().unwrap(),
        vec![Bytes::from_static(b"part 1, part 2")]
    );

    // Exactly 64 KiB with a length: kept and sent three times.
    bodies.lock().unwrap().clear();
    let fits = vec![b'f'; 64 * 1024];
    let call = tokio::spawn(send(gw.request(
        Method::PUT,
        "/api/etl/blob",
        &[ALICE],
        fits.clone(),
    )));
    advance_when_sleeping(&gw.clock, SECOND).await;
    advance_when_sleeping(&gw.clock, 2 * SECOND).await;
    assert_eq!(call.await.unwrap().status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(*bodies.lock().unwrap(), vec![Bytes::from(fits); 3]);
}

#[tokio::test]
async fn an_upstreams_retry_after_sets_the_wait_and_a_long_one_ends_the_retries() {
    let (router, _) = scripted(1, StatusCode::SERVICE_UNAVAILABLE, Some("3"));
    let etl = Upstream::start(router).await;
    let gw = start_gateway(etl_settings(&etl.url(), default_policy())).await;
    let call = tokio::spawn(send(gw.request(
        Method::GET,
        "/api/etl/jobs",
        &[ALICE],
        Body::empty(),
    )));
    advance_when_sleeping(&gw.clock, 3 * SECOND).await;
    assert_eq!(call.await.unwrap().status, StatusCode::OK);
    assert_eq!(etl.hits(), 2);

    let (router, _) = scripted(usize::MAX, StatusCode::SERVICE_UNAVAILABLE, Some("120"));
    let etl = Upstream::start(router).await;
    let gw = start_gateway(etl_settings(&etl.url(), default_policy())).await;
    let reply = gw.get("/api/etl/jobs", &[ALICE]).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.header("retry-after"), Some("120"));
    assert_eq!(etl.hits(), 1);
}

#[tokio::test]
async fn metrics_count_requests_retries_and_the_circuit_state() {
    let metrics = portico_core::telemetry::Metrics::install().unwrap();
    let (router, _) = scripted(1, StatusCode::SERVICE_UNAVAILABLE, None);
    let up = Upstream::start(router).await;
    let mut metered = upstream("metered", &up.url());
    metered.policy = policy(2, 5 * SECOND, 5, 60 * SECOND);
    let gw = start_gateway(settings(
        vec![metered],
        vec![route(
            "/metered",
            "metered",
            None,
            portico_gateway::settings::AuthMode::None,
            &[],
        )],
    ))
    .await;

    let call = tokio::spawn(send(gw.request(
        Method::GET,
        "/metered/a",
        &[],
        Body::empty(),
    )));
    advance_when_sleeping(&gw.clock, SECOND).await;
    assert_eq!(call.await.unwrap().status, StatusCode::OK);
    gw.get("/metered/b", &[]).await;
    let text = metrics.render();
    let line = |name: &str| {
        text.lines()
            .find(|l| {
                l.starts_with(name) && l.contains("upstream=\"metered\"") && {
                    !name.ends_with("_total") || !l.contains("status=\"5")
                }
            })
            .unwrap_or_else(|| panic!("no {name} for metered in\n{text}"))
            .to_owned()
    };
    let requests = line("portico_gateway_requests_total");
    assert!(requests.contains("route=\"/metered\""), "{requests}");
    assert!(requests.contains("status=\"200\""), "{requests}");
    assert!(requests.ends_with(" 2"), "{requests}");
    assert!(line("portico_gateway_retries_total").ends_with(" 1"));
    assert!(line("portico_gateway_request_duration_seconds_count").ends_with(" 2"));
    // The first attempt's 503 opened nothing: the retry succeeded and reset the count.
    assert!(line("portico_gateway_circuit_state").ends_with(" 0"));

    gw.gateway.breakers()["metered"].force_open();
    let reply = gw.get("/metered/c", &[]).await;
    assert_eq!(reply.code(), "SYS_002");
    let text = metrics.render();
    let state = text
        .lines()
        .find(|l| l.starts_with("portico_gateway_circuit_state") && l.contains("metered"))
        .unwrap();
    assert!(state.ends_with(" 2"), "{state}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("portico_gateway_requests_total")
                && l.contains("upstream=\"metered\"")
                && l.contains("status=\"503\"")
                && l.ends_with(" 1"))
    );
}
