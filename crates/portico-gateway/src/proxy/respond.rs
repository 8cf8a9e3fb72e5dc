//! What the client is answered once the upstream call is over: the upstream's response,
//! streamed and marked final for the envelope layer, or the envelope for the failure.
//!
//! | outcome | answer |
//! |---|---|
//! | any response, 5xx after retries included | passed through (hop-by-hop headers removed) |
//! | 5xx after retries, or no response, with a fallback that has an answer | the fallback's answer |
//! | open circuit | 503 `SYS_002`, `Retry-After` = time until a trial call (≥ 1 s) |
//! | connect failure | 503 `SYS_002`, `Retry-After` = time until a trial call if the circuit is now open, else 1 s |
//! | timeout | 504 `SYS_004` |
//! | broken or invalid response | 502 `BACKEND_001` |
//! | the client's body over `max_body` | 413 `REQ_002` |
//! | the client's body cut short | 400 `REQ_001` |
//!
//! Messages name the upstream, never its address or an OS error (those are in the log).
//!
//! Fallbacks (`route.fallback`: the cached answer or a static one, see `fallback`) are asked
//! first for any upstream failure; a failure of the client's own body is never replaced.
//! Good answers pass through the fallback on their way, so the cache can keep a copy.

use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, Version};
use hyper::body::Incoming;
use portico_core::error::{ApiError, ErrorCode, Passthrough};
use portico_resilience::client::ClientError;

use super::body::too_large;
use super::fallback::Fallback;
use super::headers;
use super::upstream::{Failure, Upstream};

/// The shortest `Retry-After` sent.
const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The answer for `outcome` of a call to `upstream`, with the route's `fallback` if it has
/// one.
pub(crate) fn respond(
    upstream: &Upstream,
    outcome: Result<http::Response<Incoming>, Failure>,
    fallback: Option<&Fallback<'_>>,
) -> Response {
    let name = upstream.name.as_ref();
    match (outcome, fallback) {
        (Ok(response), Some(fallback)) if response.status().is_server_error() => {
            let why = format!("upstream answered {}", response.status().as_u16());
            fallback
                .serve(name, &why)
                .unwrap_or_else(|| pass_through(response))
        }
        (Ok(response), Some(fallback)) => {
            let mut response = fallback.keep(for_client(response));
            Passthrough::mark(&mut response);
            response
        }
        (Ok(response), None) => pass_through(response),
        (Err(Failure::Upstream(error)), Some(fallback)) => {
            let why = describe(&error);
            fallback.serve(name, why).unwrap_or_else(|| {
                failure_error(upstream, Failure::Upstream(error)).into_response()
            })
        }
        (Err(failure), _) => failure_error(upstream, failure).into_response(),
    }
}

/// The upstream's response as the client gets it: streamed, hop-by-hop headers removed,
/// left alone by the envelope layer.
pub(crate) fn pass_through(response: http::Response<Incoming>) -> Response {
    let mut response = for_client(response).map(Body::new);
    Passthrough::mark(&mut response);
    response
}

/// `response` with its hop-by-hop headers removed and the version left to the server.
fn for_client(response: http::Response<Incoming>) -> http::Response<Incoming> {
    let (mut parts, body) = response.into_parts();
    headers::for_client(
        &mut parts.headers,
        parts.status == StatusCode::SWITCHING_PROTOCOLS,
    );
    parts.version = Version::default();
    http::Response::from_parts(parts, body)
}

/// A failure in a few words, for the fallback's log line.
fn describe(error: &ClientError) -> &'static str {
    match error {
        ClientError::CircuitOpen(_) => "circuit open",
        ClientError::Connect { .. } => "upstream unreachable",
        ClientError::Timeout { .. } => "upstream timed out",
        _ => "upstream failed (invalid response)",
    }
}

/// The envelope for a call that got no response.
fn failure_error(upstream: &Upstream, failure: Failure) -> ApiError {
    let name = upstream.name.as_ref();
    match failure {
        Failure::Upstream(ClientError::CircuitOpen(open)) => ApiError::new(
            ErrorCode::Sys002,
            format!("upstream {name} unavailable (circuit open)"),
        )
        .with_detail("upstream", name)
        .with_retry_after(open.retry_after.max(MIN_RETRY_AFTER)),
        Failure::Upstream(ClientError::Connect { .. }) => {
            let after = upstream.open_for().unwrap_or(MIN_RETRY_AFTER);
            ApiError::new(ErrorCode::Sys002, format!("upstream {name} unavailable"))
                .with_detail("upstream", name)
                .with_retry_after(after.max(MIN_RETRY_AFTER))
        }
        Failure::Upstream(ClientError::Timeout { .. }) => {
            ApiError::new(ErrorCode::Sys004, format!("upstream {name} timed out"))
                .with_detail("upstream", name)
        }
        Failure::Upstream(_) => ApiError::new(
            ErrorCode::Backend001,
            format!("upstream {name} failed (invalid response)"),
        )
        .with_detail("upstream", name),
        Failure::RequestBody { too_large: true } => too_large(),
        Failure::RequestBody { too_large: false } => {
            ApiError::new(ErrorCode::Req001, "request body could not be read")
        }
    }
}
