//! The envelope over real HTTP: handler errors, axum's own 404/405/413 and extractor
//! rejections all answer the documented shape with `trace_id == X-Request-ID`.

mod support;

use axum::extract::{DefaultBodyLimit, Path};
use axum::routing::{get, post};
use axum::{Router, body::Bytes};
use http::Method;
use portico_core::error::{
    ApiError, ApiJson, ErrorCode, Passthrough, envelope_layer, fallback_not_found,
};
use portico_core::request_id::RequestIdLayer;
use serde::{Deserialize, Serialize};
use support::{TestServer, assert_envelope, get as http_get, post_json, send};

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Signup {
    email: String,
    age: u32,
    address: Option<Address>,
}

#[derive(Debug, Deserialize, Serialize)]
struct Address {
    city: String,
}

async fn signup(ApiJson(body): ApiJson<Signup>) -> ApiJson<Signup> {
    ApiJson(body)
}

async fn expired() -> Result<&'static str, ApiError> {
    Err(ApiError::new(ErrorCode::Auth002, "token expired"))
}

async fn item(Path(id): Path<u32>) -> String {
    format!("item {id}")
}

async fn upstream_404() -> axum::response::Response {
    // A proxied upstream's own 404 in plain text: marked, so the envelope layer keeps it.
    let mut response = (http::StatusCode::NOT_FOUND, "upstream says no").into_response();
    Passthrough::mark(&mut response);
    response
}

use axum::response::IntoResponse;

fn app() -> Router {
    Router::new()
        .route("/expired", get(expired))
        .route("/signup", post(signup))
        .route(
            "/raw",
            post(|body: Bytes| async move { body.len().to_string() }),
        )
        .route("/items/{id}", get(item))
        .route("/upstream", get(upstream_404))
        .layer(DefaultBodyLimit::max(64))
        .layer(envelope_layer())
        .layer(RequestIdLayer::new())
}

#[tokio::test]
async fn handler_error_answers_the_envelope_with_trace_id_equal_to_request_id() {
    let server = TestServer::start(app()).await;
    let reply = http_get(&server.url("/expired")).await;
    let error = assert_envelope(&reply, "AUTH_002", 401);
    assert_eq!(error["message"], "token expired");
    assert_eq!(error["details"], serde_json::json!({}));
}

#[tokio::test]
async fn unknown_route_is_404_req_003() {
    let server = TestServer::start(app()).await;
    let reply = http_get(&server.url("/nowhere")).await;
    let error = assert_envelope(&reply, "REQ_003", 404);
    assert_eq!(error["message"], "no route for GET /nowhere");
}

#[tokio::test]
async fn fallback_not_found_answers_req_003_with_method_and_path() {
    let app = Router::new()
        .fallback(fallback_not_found)
        .layer(RequestIdLayer::new());
    let server = TestServer::start(app).await;
    let reply = send(Method::DELETE, &server.url("/a/b?q=1"), &[], "").await;
    let error = assert_envelope(&reply, "REQ_003", 404);
    assert_eq!(error["message"], "no route for DELETE /a/b");
}

#[tokio::test]
async fn wrong_method_is_405_req_004_keeping_allow() {
    let server = TestServer::start(app()).await;
    let reply = send(Method::PUT, &server.url("/expired"), &[], "").await;
    assert_envelope(&reply, "REQ_004", 405);
    let allow = reply.header("allow").expect("Allow header kept");
    assert!(allow.contains("GET"), "allow: {allow}");
}

#[tokio::test]
async fn body_over_limit_is_413_req_002_from_api_json_and_from_plain_extractors() {
    let server = TestServer::start(app()).await;
    let big = format!(r#"{{"email":"{}","age":1}}"#, "x".repeat(100));
    let reply = post_json(&server.url("/signup"), &big).await;
    assert_envelope(&reply, "REQ_002", 413);

    let reply = send(Method::POST, &server.url("/raw"), &[], "y".repeat(100)).await;
    assert_envelope(&reply, "REQ_002", 413);
    // Under the limit the same route works.
    let reply = send(Method::POST, &server.url("/raw"), &[], "y".repeat(10)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "10");
}

#[tokio::test]
async fn malformed_json_is_400_req_001() {
    let server = TestServer::start(app()).await;
    let reply = post_json(&server.url("/signup"), r#"{"email": "a@b.c", "age": "#).await;
    let error = assert_envelope(&reply, "REQ_001", 400);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("malformed JSON"),
        "{error}"
    );
}

#[tokio::test]
async fn wrong_field_type_is_422_req_001_naming_the_field() {
    let server = TestServer::start(app()).await;
    let reply = post_json(
        &server.url("/signup"),
        r#"{"email": "a@b.c", "age": "ten"}"#,
    )
    .await;
    let error = assert_envelope(&reply, "REQ_001", 422);
    let fields = error["details"]["fields"].as_object().unwrap();
    assert_eq!(fields.len(), 1, "{error}");
    assert!(
        fields["age"].as_str().unwrap().contains("invalid type"),
        "{error}"
    );
}

#[tokio::test]
async fn missing_nested_and_unknown_fields_are_named_by_path() {
    let server = TestServer::start(app()).await;
    let url = server.url("/signup");

    let reply = post_json(&url, r#"{"age": 3}"#).await;
    let error = assert_envelope(&reply, "REQ_001", 422);
    assert!(error["details"]["fields"]["email"].is_string(), "{error}");

    let reply = post_json(&url, r#"{"email":"a","age":3,"address":{"city":7}}"#).await;
    let error = assert_envelope(&reply, "REQ_001", 422);
    assert!(
        error["details"]["fields"]["address.city"].is_string(),
        "{error}"
    );

    let reply = post_json(&url, r#"{"email":"a","age":3,"admin":true}"#).await;
    let error = assert_envelope(&reply, "REQ_001", 422);
    assert!(error["details"]["fields"]["admin"].is_string(), "{error}");
}

#[tokio::test]
async fn non_json_content_type_is_400_req_001() {
    let server = TestServer::start(app()).await;
    let reply = send(
        Method::POST,
        &server.url("/signup"),
        &[("content-type", "text/plain")],
        r#"{"email":"a","age":3}"#,
    )
    .await;
    assert_envelope(&reply, "REQ_001", 400);
}

#[tokio::test]
async fn valid_json_round_trips_through_api_json() {
    let server = TestServer::start(app()).await;
    let reply = send(
        Method::POST,
        &server.url("/signup"),
        &[("content-type", "application/json; charset=utf-8")],
        r#"{"email":"a@b.c","age":30}"#,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json()["age"], 30);
}

#[tokio::test]
async fn path_rejection_becomes_req_001_keeping_its_status() {
    let server = TestServer::start(app()).await;
    let reply = http_get(&server.url("/items/abc")).await;
    let error = assert_envelope(&reply, "REQ_001", 400);
    assert!(!error["message"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn passthrough_responses_are_left_alone() {
    let server = TestServer::start(app()).await;
    let reply = http_get(&server.url("/upstream")).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.text(), "upstream says no");
}
