//! The envelope's JSON shape and the conversion of [`ApiError`] into a response.

use std::time::{Duration, SystemTime};

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{ApiError, ErrorCode};
use crate::request_id::RequestId;

/// The whole envelope: `{"error": {...}, "status": 401}`.
///
/// `ApiError` writes it; clients and tests can read it back with `serde_json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    /// The error itself.
    pub error: EnvelopeBody,
    /// The HTTP status, repeated for clients that only see the body.
    pub status: u16,
}

/// The `error` object of the envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvelopeBody {
    /// The code from the table.
    pub code: ErrorCode,
    /// A client-safe message.
    pub message: String,
    /// Structured details (`fields` for `REQ_001`, `retry_after` when set, ...).
    pub details: Map<String, Value>,
    /// The request's `X-Request-ID`.
    pub trace_id: String,
    /// When the error was produced, RFC 3339 UTC with milliseconds.
    pub timestamp: String,
}

/// Response extension marking a response as already final: an envelope written by
/// [`ApiError`], or a response the handler wants passed through as is (a proxied upstream's
/// own 404, say). [`envelope_layer`](super::envelope_layer) leaves marked responses alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct Passthrough;

impl Passthrough {
    /// Marks `response` so the envelope layer does not rewrite it.
    pub fn mark<B>(response: &mut http::Response<B>) {
        response.extensions_mut().insert(Passthrough);
    }

    /// Whether `response` carries the mark.
    pub fn is_marked<B>(response: &http::Response<B>) -> bool {
        response.extensions().get::<Passthrough>().is_some()
    }
}

/// `Retry-After` in whole seconds: rounded up, at least 1.
fn retry_after_secs(after: Duration) -> u64 {
    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    secs.max(1)
}

impl ApiError {
    /// The envelope this error answers with, stamped with `trace_id` and `now`.
    pub fn to_envelope(&self, trace_id: &str, now: SystemTime) -> ErrorEnvelope {
        let mut details = self.0.details.clone();
        if let Some(after) = self.0.retry_after {
            details
                .entry("retry_after")
                .or_insert_with(|| Value::from(retry_after_secs(after)));
        }
        ErrorEnvelope {
            error: EnvelopeBody {
                code: self.0.code,
                message: self.0.message.clone(),
                details,
                trace_id: trace_id.to_owned(),
                timestamp: humantime::format_rfc3339_millis(now).to_string(),
            },
            status: self.0.status.as_u16(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Outside a request scope (a background task, a test) there is no id to echo; a fresh
        // one still gives the client something unique to quote.
        let trace_id = RequestId::current().unwrap_or_else(RequestId::generate);
        let envelope = self.to_envelope(trace_id.as_str(), SystemTime::now());
        if self.0.status.is_server_error() {
            tracing::warn!(code = %self.0.code, status = self.0.status.as_u16(), message = %self.0.message, "request failed");
        } else {
            tracing::debug!(code = %self.0.code, status = self.0.status.as_u16(), message = %self.0.message, "request rejected");
        }
        let body = match serde_json::to_vec(&envelope) {
            Ok(body) => body,
            // Serializing strings and a JSON map cannot fail; answer a minimal envelope anyway.
            Err(_) => br#"{"error":{"code":"SYS_003","message":"internal error","details":{},"trace_id":"","timestamp":""},"status":500}"#.to_vec(),
        };

        let mut response = (self.0.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(after) = self.0.retry_after {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(after)),
            );
        }
        for (name, value) in &self.0.headers {
            headers.append(name, value.clone());
        }
        Passthrough::mark(&mut response);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_at_least_one() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(200)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }
}
