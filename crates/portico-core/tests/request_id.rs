//! `X-Request-ID` over real HTTP: kept when valid, replaced when not, echoed on every
//! response, visible to handlers.

mod support;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::Method;
use portico_core::error::{ApiError, ErrorCode, envelope_layer};
use portico_core::request_id::{RequestId, RequestIdLayer};
use support::{TestServer, assert_envelope, send};

/// Answers "<extractor id> <task-local id>".
async fn whoami(id: RequestId) -> String {
    let current = RequestId::current()
        .map(|c| c.to_string())
        .unwrap_or_default();
    format!("{id} {current}")
}

async fn fail() -> ApiError {
    ApiError::new(ErrorCode::Auth006, "insufficient permissions")
}

fn app() -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .route("/fail", get(fail))
        .layer(envelope_layer())
        .layer(RequestIdLayer::new())
}

async fn get_with_id(server: &TestServer, path: &str, id: Option<&str>) -> support::Reply {
    let headers: Vec<(&str, &str)> = id.map(|id| ("x-request-id", id)).into_iter().collect();
    send(Method::GET, &server.url(path), &headers, Bytes::new()).await
}

fn is_generated(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test]
async fn valid_incoming_id_is_kept_echoed_and_seen_by_the_handler() {
    let server = TestServer::start(app()).await;
    let id = "client-42.retry:1_A";
    let reply = get_with_id(&server, "/whoami", Some(id)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-request-id"), Some(id));
    assert_eq!(reply.text(), format!("{id} {id}"));
}

#[tokio::test]
async fn valid_incoming_id_is_the_envelope_trace_id() {
    let server = TestServer::start(app()).await;
    let id = "0af7651916cd43dd8448eb211c80319c";
    let reply = get_with_id(&server, "/fail", Some(id)).await;
    let error = assert_envelope(&reply, "AUTH_006", 403);
    assert_eq!(error["trace_id"], id);
}

#[tokio::test]
async fn missing_id_is_generated_as_32_hex() {
    let server = TestServer::start(app()).await;
    let reply = get_with_id(&server, "/whoami", None).await;
    let id = reply.header("x-request-id").unwrap().to_owned();
    assert!(is_generated(&id), "{id}");
    assert_eq!(reply.text(), format!("{id} {id}"));
}

#[tokio::test]
async fn too_long_or_badly_formed_ids_are_replaced() {
    let server = TestServer::start(app()).await;
    let too_long = "a".repeat(129);
    for bad in [
        too_long.as_str(),
        "has space",
        "semi;colon",
        "quote\"d",
        "slash/y",
    ] {
        let reply = get_with_id(&server, "/whoami", Some(bad)).await;
        let id = reply.header("x-request-id").unwrap();
        assert!(is_generated(id), "{bad:?} should be replaced, got {id}");
    }
    // 128 characters is still fine.
    let longest = "b".repeat(128);
    let reply = get_with_id(&server, "/whoami", Some(&longest)).await;
    assert_eq!(reply.header("x-request-id"), Some(longest.as_str()));
}

#[tokio::test]
async fn each_request_without_an_id_gets_a_new_one() {
    let server = TestServer::start(app()).await;
    let a = get_with_id(&server, "/whoami", None).await;
    let b = get_with_id(&server, "/whoami", None).await;
    assert_ne!(a.header("x-request-id"), b.header("x-request-id"));
}

#[tokio::test]
async fn unknown_route_404_also_carries_the_incoming_id() {
    let server = TestServer::start(app()).await;
    let reply = get_with_id(&server, "/missing", Some("trace-me")).await;
    let error = assert_envelope(&reply, "REQ_003", 404);
    assert_eq!(error["trace_id"], "trace-me");
}
