//! Route fallbacks over real HTTP: seed 004's AI tutor answering a static reply when its
//! engine fails, seed 001's search answering the last good result when its upstream fails or
//! its circuit is open, nothing kept → the normal error, one user's answers never served to
//! another, what is not kept (large, unsized, `no-store`, not GET), the body still streamed
//! while it is copied, the log line and the metric.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use portico_gateway::settings::{AuthMode, Fallback, GatewaySettings};
use serde_json::json;
use support::*;

const ALICE: (&str, &str) = ("authorization", "Bearer alice-token");
const BOB: (&str, &str) = ("authorization", "Bearer bob-token");

/// One attempt per call (no backoff sleeps on the manual clock), threshold 5, recovery 60 s.
fn one_attempt(name: &str, url: &str) -> portico_gateway::settings::UpstreamSettings {
    let mut up = upstream(name, url);
    up.policy = policy(1, 5 * SECOND, 5, 60 * SECOND);
    up
}

fn with_fallback(
    name: &str,
    url: &str,
    prefix: &str,
    auth: AuthMode,
    fallback: Fallback,
) -> GatewaySettings {
    let mut r = route(prefix, name, None, auth, &[]);
    r.fallback = Some(fallback);
    settings(vec![one_attempt(name, url)], vec![r])
}

/// An upstream that answers each path from `answer` while `up` is true, else 503.
fn switchable(
    answer: impl Fn(&Request) -> Response + Clone + Send + Sync + 'static,
) -> (Router, Arc<AtomicBool>) {
    let healthy = Arc::new(AtomicBool::new(true));
    let flag = healthy.clone();
    let router = Router::new().fallback(move |request: Request| {
        let answer = answer.clone();
        let up = flag.load(Ordering::SeqCst);
        async move {
            if up {
                answer(&request)
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, "503 from upstream").into_response()
            }
        }
    });
    (router, healthy)
}

/// Search results naming the query and the caller.
fn search_answer(request: &Request) -> Response {
    let user = request
        .headers()
        .get("x-user-id")
        .map(|v| v.to_str().unwrap().to_owned());
    axum::Json(json!({"query": request.uri().query(), "user": user, "results": [1, 2, 3]}))
        .into_response()
}

// === static (seed 004) ===

fn tutor_reply() -> serde_json::Value {
    json!({"reply": "The AI tutor is busy right now; here is a hint: read the error message.",
           "fallback": true})
}

fn tutor_fallback() -> Fallback {
    Fallback::Static {
        status: StatusCode::OK,
        json: Some(tutor_reply()),
    }
}

fn assert_static(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header("x-portico-fallback"), Some("static"));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json(), tutor_reply());
}

#[tokio::test]
async fn seed_004_the_tutor_answers_the_static_reply_when_the_ai_engine_fails() {
    capture_logs();
    let (router, healthy) = switchable(|_| axum::Json(json!({"reply": "real"})).into_response());
    let ai = Upstream::start(router).await;
    let gw = start_gateway(with_fallback(
        "ai",
        &ai.url(),
        "/api/tutor",
        AuthMode::Required,
        tutor_fallback(),
    ))
    .await;
    let ask = || {
        gw.call(
            Method::POST,
            "/api/tutor/ask",
            &[ALICE, ("content-type", "application/json")],
            r#"{"question":"why?"}"#,
        )
    };

    let good = ask().await;
    assert_eq!(good.json(), json!({"reply": "real"}));
    assert_eq!(good.header("x-portico-fallback"), None);

    // The engine answers 5xx: the static reply instead.
    healthy.store(false, Ordering::SeqCst);
    assert_static(&ask().await);
    assert_eq!(ai.hits(), 2);
    let lines = take_messages();
    assert!(
        lines
            .iter()
            .any(|l| l
                == "[ai] POST /api/tutor/ask: upstream answered 503; serving the static fallback"),
        "{lines:#?}"
    );

    // Its circuit open: the static reply, the engine not called.
    gw.gateway.breakers()["ai"].force_open();
    assert_static(&ask().await);
    assert_eq!(ai.hits(), 2);
    assert!(
        take_messages()
            .iter()
            .any(|l| l.ends_with("circuit open; serving the static fallback"))
    );

    // A refused caller is not helped by the fallback.
    let anonymous = gw
        .call(Method::POST, "/api/tutor/ask", &[], Body::empty())
        .await;
    assert_eq!(anonymous.code(), "AUTH_003");
}

#[tokio::test]
async fn the_static_reply_stands_in_for_an_unreachable_engine_with_its_own_status() {
    let url = closed_port_url().await;
    let gw = start_gateway(with_fallback(
        "ai",
        &url,
        "/api/tutor",
        AuthMode::None,
        Fallback::Static {
            status: StatusCode::SERVICE_UNAVAILABLE,
            json: Some(json!({"reply": "offline"})),
        },
    ))
    .await;
    let reply = gw.get("/api/tutor/hint", &[]).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.header("x-portico-fallback"), Some("static"));
    // Not rewritten into an envelope.
    assert_eq!(reply.json(), json!({"reply": "offline"}));
}

#[tokio::test]
async fn a_static_reply_without_json_is_an_empty_answer() {
    let url = closed_port_url().await;
    let gw = start_gateway(with_fallback(
        "ai",
        &url,
        "/api/tutor",
        AuthMode::None,
        Fallback::Static {
            status: StatusCode::NO_CONTENT,
            json: None,
        },
    ))
    .await;
    let reply = gw.get("/api/tutor/hint", &[]).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.header("x-portico-fallback"), Some("static"));
    assert!(reply.body.is_empty());
}

#[tokio::test]
async fn client_errors_of_the_upstream_are_not_replaced() {
    let ai = Upstream::start(
        Router::new()
            .fallback(|| async { (StatusCode::NOT_FOUND, axum::Json(json!({"missing": true}))) }),
    )
    .await;
    let gw = start_gateway(with_fallback(
        "ai",
        &ai.url(),
        "/api/tutor",
        AuthMode::None,
        tutor_fallback(),
    ))
    .await;
    let reply = gw.get("/api/tutor/x", &[]).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.header("x-portico-fallback"), None);
    assert_eq!(reply.json(), json!({"missing": true}));
}

// === cache (seed 001) ===

async fn search_gateway(auth: AuthMode) -> (Upstream, Arc<AtomicBool>, TestGateway) {
    let (router, healthy) = switchable(search_answer);
    let search = Upstream::start(router).await;
    let gw = start_gateway(with_fallback(
        "search",
        &search.url(),
        "/api/search",
        auth,
        Fallback::Cache,
    ))
    .await;
    (search, healthy, gw)
}

#[tokio::test]
async fn seed_001_search_answers_the_last_good_result_when_the_upstream_fails() {
    let metrics = portico_core::telemetry::Metrics::install().unwrap();
    capture_logs();
    let (search, healthy, gw) = search_gateway(AuthMode::None).await;

    let good = gw.get("/api/search?q=rust", &[]).await;
    assert_eq!(good.status, StatusCode::OK);
    assert_eq!(good.header("x-portico-fallback"), None);
    let fresh = good.json();
    assert_eq!(fresh["query"], "q=rust");

    // The upstream fails: the kept answer, marked.
    healthy.store(false, Ordering::SeqCst);
    let cached = gw.get("/api/search?q=rust", &[]).await;
    assert_eq!(cached.status, StatusCode::OK);
    assert_eq!(cached.header("x-portico-fallback"), Some("cache"));
    assert_eq!(cached.header("content-type"), Some("application/json"));
    assert_eq!(cached.json(), fresh);
    assert!(take_messages().iter().any(
        |l| l == "[search] GET /api/search: upstream answered 503; serving the cache fallback"
    ));

    // Another query was never answered well: the upstream's own failure passes through.
    let other = gw.get("/api/search?q=go", &[]).await;
    assert_eq!(other.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(other.header("x-portico-fallback"), None);
    assert_eq!(other.text(), "503 from upstream");

    // The circuit opens: the kept answer without calling; nothing kept → 503 SYS_002.
    gw.gateway.breakers()["search"].force_open();
    let hits = search.hits();
    let cached = gw.get("/api/search?q=rust", &[]).await;
    assert_eq!(cached.header("x-portico-fallback"), Some("cache"));
    assert_eq!(cached.json(), fresh);
    let none = gw.get("/api/search?q=go", &[]).await;
    assert_eq!(none.code(), "SYS_002");
    assert!(none.header("retry-after").is_some());
    assert_eq!(search.hits(), hits);

    let text = metrics.render();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("portico_gateway_fallbacks_total")
                && l.contains("route=\"/api/search\"")
                && l.contains("kind=\"cache\"")
        })
        .unwrap_or_else(|| panic!("no fallbacks_total in\n{text}"));
    assert!(line.ends_with(" 2"), "{line}");
}

#[tokio::test]
async fn nothing_kept_and_the_upstream_unreachable_is_503_sys_002() {
    let url = closed_port_url().await;
    let gw = start_gateway(with_fallback(
        "search",
        &url,
        "/api/search",
        AuthMode::None,
        Fallback::Cache,
    ))
    .await;
    let reply = gw.get("/api/search?q=rust", &[]).await;
    assert_eq!(reply.code(), "SYS_002");
    assert_eq!(reply.header("x-portico-fallback"), None);
}

#[tokio::test]
async fn one_users_kept_answer_is_never_served_to_another() {
    let (_search, healthy, gw) = search_gateway(AuthMode::Required).await;
    let alices = gw.get("/api/search?q=mine", &[ALICE]).await.json();
    assert_eq!(alices["user"], "alice");

    healthy.store(false, Ordering::SeqCst);
    let bobs = gw.get("/api/search?q=mine", &[BOB]).await;
    assert_eq!(bobs.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(bobs.header("x-portico-fallback"), None);
    assert_eq!(bobs.text(), "503 from upstream");

    let again = gw.get("/api/search?q=mine", &[ALICE]).await;
    assert_eq!(again.header("x-portico-fallback"), Some("cache"));
    assert_eq!(again.json(), alices);
}

#[tokio::test]
async fn the_query_is_part_of_the_key() {
    let (_search, healthy, gw) = search_gateway(AuthMode::None).await;
    gw.get("/api/search?q=a", &[]).await;
    let second = gw.get("/api/search?q=a&page=2", &[]).await.json();
    healthy.store(false, Ordering::SeqCst);
    let reply = gw.get("/api/search?q=a&page=2", &[]).await;
    assert_eq!(reply.json(), second);
    assert_eq!(reply.json()["query"], "q=a&page=2");
}

/// An upstream answering `/svc/big` with `size` bytes, `/svc/chunked` with an unsized body,
/// `/svc/no-store` with `Cache-Control: no-store`, and anything else a small body; 503 once
/// it is switched off.
fn varied(size: usize) -> (Router, Arc<AtomicBool>) {
    switchable(move |request| match request.uri().path() {
        "/svc/big" => vec![b'x'; size].into_response(),
        "/svc/chunked" => Response::new(unsized_body(vec![
            Bytes::from_static(b"part one, "),
            Bytes::from_static(b"part two"),
        ])),
        "/svc/no-store" => ([("cache-control", "private, no-store")], "secret").into_response(),
        _ => "small".into_response(),
    })
}

/// An unsized body of `chunks`.
fn unsized_body(chunks: Vec<Bytes>) -> Body {
    let (tx, body) = channel_body();
    tokio::spawn(async move {
        for chunk in chunks {
            tx.send(chunk).await.unwrap();
        }
    });
    body
}

#[tokio::test]
async fn large_unsized_no_store_and_non_get_answers_are_not_kept_but_still_served() {
    let (router, healthy) = varied(1024 * 1024 + 1);
    let up = Upstream::start(router).await;
    let gw = start_gateway(with_fallback(
        "svc",
        &up.url(),
        "/svc",
        AuthMode::None,
        Fallback::Cache,
    ))
    .await;
    // One byte over 1 MiB is not kept (exactly 1 MiB is: the next test).
    let big = gw.get("/svc/big", &[]).await;
    assert_eq!(big.body.len(), 1024 * 1024 + 1);
    let chunked = gw.get("/svc/chunked", &[]).await;
    assert_eq!(chunked.text(), "part one, part two");
    assert_eq!(chunked.header("content-length"), None);
    assert_eq!(gw.get("/svc/no-store", &[]).await.text(), "secret");
    let posted = gw
        .call(Method::POST, "/svc/small", &[], Body::empty())
        .await;
    assert_eq!(posted.text(), "small");

    healthy.store(false, Ordering::SeqCst);
    for path in ["/svc/big", "/svc/chunked", "/svc/no-store"] {
        let reply = gw.get(path, &[]).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(reply.header("x-portico-fallback"), None, "{path}");
    }
    let posted = gw
        .call(Method::POST, "/svc/small", &[], Body::empty())
        .await;
    assert_eq!(posted.status, StatusCode::SERVICE_UNAVAILABLE);
    // A GET of the same path was never made: nothing to serve.
    assert_eq!(
        gw.get("/svc/small", &[]).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn a_body_of_exactly_the_bound_is_kept() {
    let (router, healthy) = varied(1024 * 1024);
    let up = Upstream::start(router).await;
    let gw = start_gateway(with_fallback(
        "svc",
        &up.url(),
        "/svc",
        AuthMode::None,
        Fallback::Cache,
    ))
    .await;
    assert_eq!(gw.get("/svc/big", &[]).await.body.len(), 1024 * 1024);
    healthy.store(false, Ordering::SeqCst);
    let reply = gw.get("/svc/big", &[]).await;
    assert_eq!(reply.header("x-portico-fallback"), Some("cache"));
    assert_eq!(reply.body.len(), 1024 * 1024);
}

#[tokio::test]
async fn a_kept_answer_still_streams_and_is_stored_only_once_complete() {
    let (tx, body) = channel_body();
    let slot = Arc::new(Mutex::new(Some(body)));
    let healthy = Arc::new(AtomicBool::new(true));
    let flag = healthy.clone();
    let up = Upstream::start(Router::new().fallback(move || {
        let body = slot.lock().unwrap().take();
        let up = flag.load(Ordering::SeqCst);
        async move {
            match (up, body) {
                (true, Some(body)) => {
                    let mut response = Response::new(body);
                    response
                        .headers_mut()
                        .insert("content-length", header_value("23"));
                    response
                }
                _ => StatusCode::SERVICE_UNAVAILABLE.into_response(),
            }
        }
    }))
    .await;
    let gw = start_gateway(with_fallback(
        "svc",
        &up.url(),
        "/svc",
        AuthMode::None,
        Fallback::Cache,
    ))
    .await;

    tx.send(Bytes::from_static(b"first half, ")).await.unwrap();
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        client().request(gw.request(Method::GET, "/svc/doc", &[], Body::empty())),
    )
    .await
    .unwrap()
    .unwrap();
    let mut body = response.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("the first half arrives while the upstream holds the rest")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "first half, ");

    // Not complete yet: nothing to fall back on.
    healthy.store(false, Ordering::SeqCst);
    let early = gw.get("/svc/doc", &[]).await;
    assert_eq!(early.header("x-portico-fallback"), None);

    tx.send(Bytes::from_static(b"second half")).await.unwrap();
    let rest = tokio::time::timeout(Duration::from_secs(5), body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(rest, "second half");
    let kept = gw.get("/svc/doc", &[]).await;
    assert_eq!(kept.header("x-portico-fallback"), Some("cache"));
    assert_eq!(kept.text(), "first half, second half");
}
