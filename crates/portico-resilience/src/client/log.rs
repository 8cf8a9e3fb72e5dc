//! The client's log lines, word for word those of seed 001:
//!
//! ```text
//! [Chroma Server] POST /query (attempt 1/3)
//! [Chroma Server] Connection failed on attempt 1/3: Connection refused
//! [Chroma Server] Server error 500 on attempt 2/3
//! [Chroma Server] ✓ POST /query succeeded
//! ```
//!
//! They are written from inside the attempt, around the breaker: the attempt line only once
//! the breaker has let the call through (a rejected call logs just the breaker's
//! `Circuit breaker OPEN - rejecting request`), the outcome line before the outcome is
//! recorded, so that a transition it causes (`Circuit breaker OPEN (threshold reached: 5/5)`,
//! `Circuit breaker CLOSED (service recovered)`) follows the line that explains it. The retry
//! lines (`Retrying in 1s...`, `✗ All 3 retry attempts failed`) come from
//! [`LogObserver`](crate::retry::LogObserver).
//!
//! Public so that other callers of upstreams (the gateway's streaming proxy) log the same
//! lines; the response body type is left open for them.

use http::{Method, Response};

use super::ClientError;
use crate::retry::{Attempt, HumanDelay};

/// `[name] METHOD /path (attempt n/max)`.
pub fn started(name: &str, method: &Method, path: &str, attempt: Attempt) {
    tracing::info!(
        upstream = name,
        "[{name}] {method} {path} (attempt {attempt})"
    );
}

/// The outcome line of one attempt.
pub fn finished<B>(
    name: &str,
    method: &Method,
    path: &str,
    attempt: Attempt,
    outcome: Result<&Response<B>, &ClientError>,
) {
    match outcome {
        Ok(response) if response.status().is_server_error() => tracing::warn!(
            upstream = name,
            "[{name}] Server error {} on attempt {attempt}",
            response.status().as_u16()
        ),
        Ok(_) => tracing::info!(upstream = name, "[{name}] ✓ {method} {path} succeeded"),
        Err(ClientError::Connect { reason, .. }) => tracing::warn!(
            upstream = name,
            "[{name}] Connection failed on attempt {attempt}: {reason}"
        ),
        Err(ClientError::Timeout { after, .. }) => tracing::warn!(
            upstream = name,
            "[{name}] Timeout on attempt {attempt} after {}",
            HumanDelay(*after)
        ),
        Err(other) => tracing::warn!(
            upstream = name,
            "[{name}] Request failed on attempt {attempt}: {other}"
        ),
    }
}
