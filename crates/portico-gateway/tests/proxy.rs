//! The gateway's proxy over real HTTP: routing and rewrite (seed 002), identity and
//! permissions at the edge, the headers upstreams get (and the ones they never get), bodies
//! and errors in the envelope.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::IntoResponse;
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use portico_gateway::settings::AuthMode;
use portico_gateway::{Gateway, GatewayError};
use serde_json::json;
use support::*;

/// An upstream answering every request with what it received: method, URI and body.
fn echo() -> Router {
    Router::new().fallback(|request: Request| async move {
        let (parts, body) = request.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            StatusCode::ACCEPTED,
            axum::Json(json!({
                "method": parts.method.as_str(),
                "uri": parts.uri.to_string(),
                "body": String::from_utf8_lossy(&body),
            })),
        )
    })
}

#[tokio::test]
async fn seed_002_job_start_reaches_the_etl_service_rewritten_with_identity_and_token() {
    let etl = Upstream::start(echo()).await;
    let gw = start_gateway(etl_settings(&etl.url(), default_policy())).await;

    let reply = gw
        .call(
            Method::POST,
            "/api/etl/jobs/start?dry_run=1",
            &[
                ("authorization", "Bearer alice-token"),
                ("content-type", "application/json"),
                ("x-request-id", "req-seed-002"),
            ],
            r#"{"source":"s3://bucket"}"#,
        )
        .await;

    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(
        reply.json(),
        json!({"method": "POST", "uri": "/api/v1/jobs/start?dry_run=1",
               "body": r#"{"source":"s3://bucket"}"#})
    );
    assert_eq!(reply.header("x-request-id"), Some("req-seed-002"));
    let seen = etl.last();
    assert_eq!(seen.header("x-internal-auth"), Some(INTERNAL_TOKEN));
    assert_eq!(seen.header("x-user-id"), Some("alice"));
    assert_eq!(seen.header("x-user-email"), Some("alice@example.com"));
    assert_eq!(seen.header("x-user-permissions"), Some("etl.access"));
    assert_eq!(seen.header("x-request-id"), Some("req-seed-002"));
    assert_eq!(seen.header("x-correlation-id"), Some("req-seed-002"));
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some(gw.addr.to_string().as_str())
    );
    assert_eq!(seen.header("host"), Some(etl.addr.to_string().as_str()));
    // The client's bearer token is passed on (see the headers module for why).
    assert_eq!(seen.header("authorization"), Some("Bearer alice-token"));
    assert_eq!(seen.version, http::Version::HTTP_11);
}

#[tokio::test]
async fn without_a_token_the_answer_is_401_auth_003_and_the_upstream_is_not_called() {
    let etl = Upstream::start(echo()).await;
    let gw = start_gateway(etl_settings(&etl.url(), default_policy())).await;

    let reply = gw.get("/api/etl/jobs/1", &[]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "AUTH_003");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    // The envelope's trace id is the request id echoed in the header.
    assert_eq!(
        reply.json()["error"]["trace_id"].as_str(),
        reply.header("x-request-id")
    );

    for (headers, status, code) in [
        (("authorization", "Bearer expired"), 401, "AUTH_002"),
        (("authorization", "Bearer revoked"), 401, "AUTH_007"),
        (("authorization", "Bearer forged"), 401, "AUTH_001"),
        (("authorization", "Basic YTpi"), 401, "AUTH_001"),
        (("x-api-key", "nope"), 401, "AUTH_001"),
        (("authorization", "Bearer auth-down"), 503, "SYS_002"),
        (("authorization", "Bearer bob-token"), 403, "AUTH_006"),
    ] {
        let reply = gw.get("/api/etl/jobs/1", &[headers]).await;
        assert_eq!(reply.status.as_u16(), status, "{headers:?}");
        assert_eq!(reply.code(), code, "{headers:?}");
    }
    assert_eq!(etl.hits(), 0);

    // An API key in X-API-Key works like a bearer token.
    let reply = gw
        .get("/api/etl/jobs/1", &[("x-api-key", "admin-token")])
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(etl.last().header("x-user-id"), Some("admin"));
}

#[tokio::test]
async fn optional_and_open_routes() {
    let up = Upstream::start(echo()).await;
    let gw = start_gateway(settings(
        vec![upstream("svc", &up.url())],
        vec![
            route("/maybe", "svc", None, AuthMode::Optional, &[]),
            route("/open", "svc", None, AuthMode::None, &[]),
        ],
    ))
    .await;

    let reply = gw.get("/maybe/x", &[]).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(up.last().header("x-user-id"), None);

    gw.get("/maybe/x", &[("authorization", "Bearer bob-token")])
        .await;
    assert_eq!(up.last().header("x-user-id"), Some("bob"));
    assert_eq!(up.last().header("x-user-permissions"), Some(""));

    let reply = gw
        .get("/maybe/x", &[("authorization", "Bearer expired")])
        .await;
    assert_eq!(reply.code(), "AUTH_002");

    // `none`: the credential is not even looked at, and no identity is forwarded.
    let reply = gw
        .get("/open/x", &[("authorization", "Bearer expired")])
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(up.last().header("x-user-id"), None);
    assert_eq!(up.last().header("x-internal-auth"), Some(INTERNAL_TOKEN));
    assert_eq!(up.hits(), 3);
}

#[tokio::test]
async fn identity_headers_sent_by_a_client_never_reach_the_upstream() {
    let up = Upstream::start(echo()).await;
    let mut svc = upstream("svc", &up.url());
    svc.internal_token = Some((
        http::HeaderName::from_static("x-internal-token"),
        "configured".into(),
    ));
    let gw = start_gateway(settings(
        vec![svc],
        vec![
            route("/open", "svc", None, AuthMode::None, &[]),
            route("/closed", "svc", None, AuthMode::Required, &[]),
        ],
    ))
    .await;
    let spoofed = [
        ("x-user-id", "admin"),
        ("x-user-email", "root@example.com"),
        ("x-user-permissions", "*"),
        ("x-user-roles", "admin"),
        ("x-internal-auth", "guess"),
        ("x-internal-token", "guess"),
        ("x-portico-identity", "forged.jwt.value"),
    ];

    gw.get("/open/x", &spoofed).await;
    let seen = up.last();
    for (name, _) in &spoofed[..4] {
        assert_eq!(seen.header(name), None, "{name}");
    }
    assert_eq!(seen.header("x-internal-auth"), None);
    assert_eq!(seen.header("x-portico-identity"), None);
    assert_eq!(seen.header("x-internal-token"), Some("configured"));

    let mut with_token = spoofed.to_vec();
    with_token.push(("authorization", "Bearer bob-token"));
    gw.get("/closed/x", &with_token).await;
    let seen = up.last();
    assert_eq!(seen.header("x-user-id"), Some("bob"));
    assert_eq!(seen.header("x-user-email"), Some("bob@example.com"));
    assert_eq!(seen.header("x-user-permissions"), Some(""));
    assert_eq!(seen.header("x-user-roles"), None);
    assert_eq!(seen.header("x-internal-auth"), None);
    // The gateway's own signed token, never the client's (tests/identity_header.rs).
    let identity = seen.header("x-portico-identity").unwrap();
    assert!(
        identity.starts_with("eyJ") && identity != "forged.jwt.value",
        "{identity}"
    );
    assert_eq!(seen.header("x-internal-token"), Some("configured"));
}

#[tokio::test]
async fn hop_by_hop_headers_are_not_forwarded_either_way() {
    let up = Upstream::start(Router::new().fallback(|| async {
        (
            [
                ("connection", "x-upstream-secret"),
                ("x-upstream-secret", "1"),
                ("keep-alive", "timeout=5"),
                ("proxy-authenticate", "Basic"),
                ("x-kept", "yes"),
            ],
            "fine",
        )
    }))
    .await;
    let gw = start_gateway(settings(
        vec![upstream("svc", &up.url())],
        vec![route("/svc", "svc", None, AuthMode::None, &[])],
    ))
    .await;

    let reply = gw
        .get(
            "/svc/x",
            &[
                ("connection", "x-secret, keep-alive"),
                ("x-secret", "1"),
                ("keep-alive", "timeout=5"),
                ("te", "trailers"),
                ("proxy-authorization", "Basic YTpi"),
                ("proxy-connection", "keep-alive"),
                ("x-end-to-end", "kept"),
            ],
        )
        .await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "fine");
    let seen = up.last();
    for name in [
        "x-secret",
        "te",
        "proxy-authorization",
        "proxy-connection",
        "keep-alive",
    ] {
        assert_eq!(seen.header(name), None, "{name} reached the upstream");
    }
    assert_eq!(seen.header("x-end-to-end"), Some("kept"));
    assert_eq!(reply.header("x-upstream-secret"), None);
    assert_eq!(reply.header("proxy-authenticate"), None);
    assert_eq!(reply.header("keep-alive"), None);
    assert_eq!(reply.header("x-kept"), Some("yes"));
}

#[tokio::test]
async fn request_ids_and_trace_context_are_propagated() {
    let up = Upstream::start(echo()).await;
    let gw = start_gateway(settings(
        vec![upstream("svc", &up.url())],
        vec![route("/svc", "svc", None, AuthMode::None, &[])],
    ))
    .await;

    // No id, no traceparent: the generated id is sent, and the trace is named after it.
    let reply = gw.get("/svc/a", &[]).await;
    let id = reply.header("x-request-id").unwrap().to_owned();
    let seen = up.last();
    assert_eq!(seen.header("x-request-id"), Some(id.as_str()));
    assert_eq!(seen.header("x-correlation-id"), Some(id.as_str()));
    let trace: Vec<&str> = seen.header("traceparent").unwrap().split('-').collect();
    assert_eq!(trace.len(), 4);
    assert_eq!((trace[0], trace[1], trace[3]), ("00", id.as_str(), "01"));
    assert_eq!(trace[2].len(), 16);

    // A valid traceparent keeps its trace id; the gateway is a new span in it.
    let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    gw.get(
        "/svc/b",
        &[
            ("traceparent", parent),
            ("x-correlation-id", "client-chosen"),
        ],
    )
    .await;
    let seen = up.last();
    let trace: Vec<&str> = seen.header("traceparent").unwrap().split('-').collect();
    assert_eq!(trace[1], "0af7651916cd43dd8448eb211c80319c");
    assert_ne!(trace[2], "b7ad6b7169203331");
    assert_eq!(
        seen.header("x-correlation-id"),
        seen.header("x-request-id"),
        "X-Correlation-ID is the request id, whatever the client sent"
    );

    // An invalid one is replaced.
    gw.get(
        "/svc/c",
        &[("traceparent", "garbage"), ("x-request-id", "my-id-1")],
    )
    .await;
    let seen = up.last();
    let trace: Vec<&str> = seen.header("traceparent").unwrap().split('-').collect();
    assert_eq!(trace.len(), 4);
    assert_eq!(trace[1].len(), 32);
    assert_ne!(trace[1], "0af7651916cd43dd8448eb211c80319c");

    // X-Forwarded-For gets the client's address appended.
    gw.get("/svc/d", &[("x-forwarded-for", "203.0.113.7")])
        .await;
    assert_eq!(
        up.last().header("x-forwarded-for"),
        Some("203.0.113.7, 127.0.0.1")
    );
}

#[tokio::test]
async fn upstream_answers_pass_through_untouched() {
    let up = Upstream::start(
        Router::new()
            .route(
                "/svc/missing",
                axum::routing::get(|| async { (StatusCode::NOT_FOUND, "no such job") }),
            )
            .route(
                "/svc/json",
                axum::routing::get(|| async {
                    (
                        StatusCode::CONFLICT,
                        [("x-upstream", "1")],
                        axum::Json(json!({"detail": "theirs"})),
                    )
                }),
            ),
    )
    .await;
    let gw = start_gateway(settings(
        vec![upstream("svc", &format!("{}/", up.url()))],
        vec![route("/svc", "svc", None, AuthMode::None, &[])],
    ))
    .await;

    // A bare text 404 from the upstream is the upstream's, not rewritten into an envelope.
    let reply = gw.get("/svc/missing", &[]).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.text(), "no such job");
    let reply = gw.get("/svc/json", &[]).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.json(), json!({"detail": "theirs"}));
    assert_eq!(reply.header("x-upstream"), Some("1"));
    assert!(reply.header("x-request-id").is_some());
}

#[tokio::test]
async fn an_upstream_url_with_a_path_prefixes_every_forwarded_path() {
    let up = Upstream::start(echo()).await;
    let gw = start_gateway(settings(
        vec![upstream("svc", &format!("{}/base/", up.url()))],
        vec![route("/api/svc", "svc", Some("/v2"), AuthMode::None, &[])],
    ))
    .await;
    let reply = gw.get("/api/svc/items/7?full=true", &[]).await;
    assert_eq!(reply.json()["uri"], "/base/v2/items/7?full=true");
    let reply = gw.get("/api/svc", &[]).await;
    assert_eq!(reply.json()["uri"], "/base/v2");
}

#[tokio::test]
async fn unrouted_and_unsafe_paths_are_refused_in_the_envelope() {
    let up = Upstream::start(echo()).await;
    let gw = start_gateway(etl_settings(&up.url(), default_policy())).await;
    let alice = [("authorization", "Bearer alice-token")];

    let reply = gw.get("/api/etlx/jobs", &alice).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.code(), "REQ_003");
    let reply = gw
        .call(Method::DELETE, "/nowhere", &[], Body::empty())
        .await;
    assert_eq!(reply.code(), "REQ_003");

    for path in [
        "/api/etl/../admin",
        "/api/etl/%2e%2e/admin",
        "/api/etl/x%2F..%2Fadmin",
    ] {
        let reply = gw.get(path, &alice).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(reply.code(), "REQ_001", "{path}");
    }
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn a_declared_body_over_max_body_is_413_req_002_before_anything_else() {
    let up = Upstream::start(echo()).await;
    let mut s = etl_settings(&up.url(), default_policy());
    s.max_body = 1024;
    let gw = start_gateway(s).await;

    let reply = gw
        .call(
            Method::POST,
            "/api/etl/upload",
            &[("authorization", "Bearer alice-token")],
            vec![b'x'; 2048],
        )
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.code(), "REQ_002");
    // Refused before identity: even without a token it is the size that is answered.
    let reply = gw
        .call(Method::PUT, "/api/etl/upload", &[], vec![b'x'; 1025])
        .await;
    assert_eq!(reply.code(), "REQ_002");
    assert_eq!(up.hits(), 0);

    // At the limit it passes.
    let reply = gw
        .call(
            Method::POST,
            "/api/etl/upload",
            &[("authorization", "Bearer alice-token")],
            vec![b'x'; 1024],
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(reply.json()["body"].as_str().unwrap().len(), 1024);
}

#[tokio::test]
async fn a_streamed_body_over_max_body_is_cut_off_with_413() {
    let up = Upstream::start(echo()).await;
    let mut s = etl_settings(&up.url(), default_policy());
    s.max_body = 1024;
    let gw = start_gateway(s).await;

    let (tx, body) = channel_body();
    let request = http::Request::post(gw.url("/api/etl/upload"))
        .header("authorization", "Bearer alice-token")
        .body(body)
        .unwrap();
    let reply = tokio::spawn(send(request));
    for _ in 0..4 {
        if tx.send(Bytes::from(vec![b'y'; 512])).await.is_err() {
            break;
        }
    }
    drop(tx);
    let reply = reply.await.unwrap();
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.code(), "REQ_002");
}

#[tokio::test]
async fn a_route_to_an_unknown_upstream_is_refused_at_build() {
    let s = settings(
        vec![upstream("svc", "http://127.0.0.1:1")],
        vec![route("/x", "nope", None, AuthMode::None, &[])],
    );
    let err = Gateway::new(
        s,
        std::sync::Arc::new(FakeAuth),
        portico_resilience::SystemClock::shared(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, GatewayError::UnknownUpstream { route, upstream } if route == "/x" && upstream == "nope"),
        "{err}"
    );

    for url in ["ftp://h", "127.0.0.1:80", "http://u:p@h", "http://h/?q=1"] {
        let s = settings(vec![upstream("svc", url)], vec![]);
        let err = Gateway::new(
            s,
            std::sync::Arc::new(FakeAuth),
            portico_resilience::SystemClock::shared(),
        )
        .unwrap_err();
        assert!(
            matches!(err, GatewayError::InvalidUrl { .. }),
            "{url}: {err}"
        );
        assert!(err.to_string().starts_with("upstreams.svc.url"), "{err}");
    }
}

#[tokio::test]
async fn head_and_empty_bodies_are_forwarded_as_they_are() {
    let up = Upstream::start(Router::new().fallback(|request: Request| async move {
        let length = request
            .headers()
            .get("content-length")
            .map(|v| v.to_str().unwrap().to_owned());
        (
            [("x-seen-length", length.unwrap_or_else(|| "none".into()))],
            "0123456789",
        )
            .into_response()
    }))
    .await;
    let gw = start_gateway(settings(
        vec![upstream("svc", &up.url())],
        vec![route("/svc", "svc", None, AuthMode::None, &[])],
    ))
    .await;

    let reply = gw.call(Method::HEAD, "/svc/x", &[], Body::empty()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-length"), Some("10"));
    assert!(reply.body.is_empty());
    let reply = gw.get("/svc/x", &[]).await;
    assert_eq!(reply.header("x-seen-length"), Some("none"));
    assert_eq!(reply.text(), "0123456789");
}
