//! Every `ErrorCode` against DESIGN.md's table, copied here literally, and `ApiError`'s
//! builders as seen in the envelope.

use std::time::{Duration, SystemTime};

use axum::response::IntoResponse;
use http::{HeaderName, HeaderValue, StatusCode};
use portico_core::error::{ApiError, ErrorCode, ErrorEnvelope};

/// DESIGN.md "Error envelope", verbatim.
const DESIGN_TABLE: &str = "\
| AUTH_001 | 401 | invalid token (bad signature, malformed, wrong issuer/audience, unknown key) |
| AUTH_002 | 401 | expired token |
| AUTH_003 | 401 | missing token |
| AUTH_004 | 400/502 | OAuth error (bad state, provider error, provider unreachable) |
| AUTH_005 | 401 | invalid credentials (same answer for unknown email and wrong password) |
| AUTH_006 | 403 | insufficient permissions |
| AUTH_007 | 401 | token revoked (logout, refresh-token reuse, key deleted) |
| AUTH_008 | 409 | account already exists |
| BACKEND_001 | 502 | upstream failed (5xx after retries, invalid response) |
| BACKEND_002 | 404 | unknown resource id |
| BACKEND_003 | 429 | rate limit exceeded (with `Retry-After`) |
| BACKEND_004 | 400 | WebSocket connection failed (bad upgrade) |
| REQ_001 | 400/422 | invalid request body or parameters; `details.fields` names each field |
| REQ_002 | 413 | payload too large |
| REQ_003 | 404 | no route |
| REQ_004 | 405 | method not allowed |
| SYS_001 | 503 | database unavailable |
| SYS_002 | 503 | upstream or dependency unavailable (connect failure, circuit open; with `Retry-After`) |
| SYS_003 | 500 | internal error |
| SYS_004 | 504 | upstream timeout |
";

#[test]
fn every_code_matches_the_design_table() {
    let rows: Vec<Vec<&str>> = DESIGN_TABLE
        .lines()
        .map(|line| line.trim_matches('|').split('|').map(str::trim).collect())
        .collect();
    assert_eq!(rows.len(), ErrorCode::ALL.len(), "one code per table row");

    for (code, row) in ErrorCode::ALL.into_iter().zip(&rows) {
        assert_eq!(code.as_str(), row[0]);
        assert_eq!(code.to_string(), row[0]);
        assert_eq!(ErrorCode::from_code(row[0]), Some(code));
        // The default status is the first of the table's (400/502 → 400).
        let default_status = row[1].split('/').next().unwrap();
        assert_eq!(code.status().as_str(), default_status, "{}", row[0]);
        // The description is the table's meaning, less its remarks about headers and details.
        let meaning = row[2]
            .replace(" (with `Retry-After`)", "")
            .replace("; with `Retry-After`", "")
            .replace("; `details.fields` names each field", "");
        assert_eq!(code.description(), meaning, "{}", row[0]);
    }
    assert_eq!(ErrorCode::from_code("AUTH_999"), None);
}

#[test]
fn every_code_renders_an_envelope_with_its_status() {
    for code in ErrorCode::ALL {
        let response = ApiError::from(code).into_response();
        assert_eq!(response.status(), code.status());
    }
}

#[test]
fn envelope_serializes_to_the_documented_shape() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600); // 2026-01-01
    let envelope = ApiError::new(ErrorCode::Auth002, "token expired")
        .to_envelope("0af7651916cd43dd8448eb211c80319c", now);
    let json = serde_json::to_value(&envelope).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"error": {"code": "AUTH_002", "message": "token expired", "details": {},
            "trace_id": "0af7651916cd43dd8448eb211c80319c", "timestamp": "2026-01-01T00:00:00.000Z"},
            "status": 401})
    );
    let back: ErrorEnvelope = serde_json::from_value(json).unwrap();
    assert_eq!(back, envelope);
}

#[test]
fn with_status_overrides_the_default_for_two_status_codes() {
    let e = ApiError::new(ErrorCode::Auth004, "provider unreachable")
        .with_status(StatusCode::BAD_GATEWAY);
    assert_eq!(e.code(), ErrorCode::Auth004);
    assert_eq!(e.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(e.into_response().status(), StatusCode::BAD_GATEWAY);
}

#[test]
fn retry_after_sets_the_header_rounded_up_and_the_detail() {
    let response = ApiError::new(ErrorCode::Backend003, "slow down")
        .with_retry_after(Duration::from_millis(1500))
        .into_response();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "2");

    let envelope = ApiError::new(ErrorCode::Sys002, "circuit open")
        .with_retry_after(Duration::from_millis(10))
        .to_envelope("id", SystemTime::now());
    assert_eq!(envelope.error.details["retry_after"], 1);
}

#[test]
fn extra_headers_and_details_are_carried() {
    let response = ApiError::new(ErrorCode::Auth003, "missing token")
        .with_header(
            HeaderName::from_static("www-authenticate"),
            HeaderValue::from_static("Bearer"),
        )
        .with_detail("hint", "send Authorization: Bearer <token>")
        .into_response();
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(response.headers()["content-type"], "application/json");
}

#[test]
fn invalid_fields_names_each_field_under_details_fields() {
    let e = ApiError::invalid_fields(
        StatusCode::UNPROCESSABLE_ENTITY,
        [
            ("email".to_owned(), "not an email".to_owned()),
            ("password".to_owned(), "shorter than 8".to_owned()),
        ],
    );
    assert_eq!(e.code(), ErrorCode::Req001);
    assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e.details()["fields"]["email"], "not an email");
    assert_eq!(e.details()["fields"]["password"], "shorter than 8");
}

#[test]
fn internal_error_hides_the_cause() {
    let e = ApiError::internal_error("SELECT * FROM users failed: password=hunter2");
    assert_eq!(e.code(), ErrorCode::Sys003);
    assert_eq!(e.message(), "internal error");
    assert!(e.details().is_empty());
}
