//! The error envelope every Portico component answers with.
//!
//! [`ApiError`] is the one error type that reaches a client. It carries an [`ErrorCode`] from
//! the table, a client-safe message and optional details; turning it into a response writes
//!
//! ```json
//! {"error": {"code": "AUTH_002", "message": "token expired", "details": {},
//!            "trace_id": "0af7651916cd43dd8448eb211c80319c",
//!            "timestamp": "2026-01-01T00:00:00.000Z"},
//!  "status": 401}
//! ```
//!
//! where `trace_id` is the request's `X-Request-ID` (see [`crate::request_id`]).
//!
//! # Layout
//! - `code`: [`ErrorCode`], the code table.
//! - `envelope`: the JSON shape ([`ErrorEnvelope`]) and `impl IntoResponse for ApiError`.
//! - `layer`: [`envelope_layer`], which rewrites axum's own bare 404/405/413 responses, and
//!   [`fallback_not_found`].
//! - `json`: [`ApiJson`], a JSON extractor whose rejections are envelopes.

mod code;
mod envelope;
mod json;
mod layer;

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::{Map, Value};

pub use code::ErrorCode;
pub use envelope::{EnvelopeBody, ErrorEnvelope, Passthrough};
pub use json::ApiJson;
pub use layer::{
    EnvelopeFuture, EnvelopeLayer, EnvelopeService, envelope_layer, fallback_not_found,
};

/// An error answered to a client as the envelope.
///
/// The message and details go to the client verbatim: they must never hold a stack trace, SQL
/// text, a secret or an internal error's text. Log those with [`ApiError::internal_error`]
/// instead, which records the cause (with the request id) and answers a plain `SYS_003`.
///
/// Boxed inside, so `Result<T, ApiError>` stays one pointer wide on the error side.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {}", .0.code, .0.message)]
pub struct ApiError(Box<Inner>);

#[derive(Debug, Clone)]
struct Inner {
    code: ErrorCode,
    status: StatusCode,
    message: String,
    details: Map<String, Value>,
    retry_after: Option<Duration>,
    headers: HeaderMap,
}

impl ApiError {
    /// An error with `code`'s default status and no details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            code,
            status: code.status(),
            message: message.into(),
            details: Map::new(),
            retry_after: None,
            headers: HeaderMap::new(),
        }))
    }

    /// Overrides the status (for the codes with two: `AUTH_004` 400/502, `REQ_001` 400/422).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.0.status = status;
        self
    }

    /// Sets the envelope's `details` object.
    pub fn with_details(mut self, details: Map<String, Value>) -> Self {
        self.0.details = details;
        self
    }

    /// Adds one entry to `details`.
    pub fn with_detail(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.0.details.insert(key.into(), value.into());
        self
    }

    /// Sets `Retry-After` (whole seconds, rounded up, at least 1) and `details.retry_after`.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.0.retry_after = Some(after);
        self
    }

    /// Adds a response header (e.g. `WWW-Authenticate`).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.0.headers.append(name, value);
        self
    }

    /// `REQ_001` naming each bad field: `details.fields = {field: problem}`.
    /// Use 400 for malformed input and 422 for well-formed input that fails validation.
    pub fn invalid_fields(
        status: StatusCode,
        fields: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        let fields: Map<String, Value> = fields
            .into_iter()
            .map(|(field, problem)| (field, Value::String(problem)))
            .collect();
        let message = match fields.len() {
            1 => "invalid request: 1 field is invalid".to_owned(),
            n => format!("invalid request: {n} fields are invalid"),
        };
        Self::new(ErrorCode::Req001, message)
            .with_status(status)
            .with_detail("fields", fields)
    }

    /// `REQ_001` (400) with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Req001, message)
    }

    /// `REQ_003` (404): no route.
    pub fn not_found() -> Self {
        Self::new(ErrorCode::Req003, "no route")
    }

    /// `SYS_003` (500) with a generic message.
    pub fn internal() -> Self {
        Self::new(ErrorCode::Sys003, "internal error")
    }

    /// `SYS_003` (500) for an unexpected failure: logs `cause` at error level (inside the
    /// request's span, so with its request id) and tells the client only "internal error".
    pub fn internal_error(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::internal()
    }

    /// The code.
    pub fn code(&self) -> ErrorCode {
        self.0.code
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The client-facing message.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The `details` object.
    pub fn details(&self) -> &Map<String, Value> {
        &self.0.details
    }

    /// The `Retry-After` hint, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.0.retry_after
    }
}

impl From<ErrorCode> for ApiError {
    /// An error whose message is the code's table meaning.
    fn from(code: ErrorCode) -> Self {
        Self::new(code, code.description())
    }
}
