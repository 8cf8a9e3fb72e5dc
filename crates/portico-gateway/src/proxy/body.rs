//! The request body on its way to the upstream: streamed once, or kept for another attempt.
//!
//! A request that may be retried (idempotent method, or the upstream retries everything;
//! more than one attempt allowed) has its body read into memory first when it is known to be
//! at most [`REPLAY_LIMIT`] (an empty body always is), so each attempt sends it again. Any
//! other body — larger, or of unknown length — is streamed to the upstream as it arrives and
//! the request gets a single attempt. A streamed body is cut off at the gateway's `max_body`.

use axum::body::Body;
use bytes::Bytes;
use http_body::Body as _;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use portico_core::error::{ApiError, ErrorCode};

/// The largest request body kept in memory for retries (64 KiB).
pub(crate) const REPLAY_LIMIT: usize = 64 * 1024;

/// The body of the request the upstream is sent.
pub(crate) enum Outgoing {
    /// Read in full; sent again on every attempt.
    Replayable(Bytes),
    /// Streamed; sent on the first attempt only.
    Once(Option<Body>),
}

impl Outgoing {
    /// Decides how `body` is sent: replayable when `may_retry` and it is small enough, else
    /// streamed (and limited to `max_body` bytes).
    pub(crate) async fn prepare(
        body: Body,
        may_retry: bool,
        max_body: usize,
    ) -> Result<Self, ApiError> {
        let limit = REPLAY_LIMIT.min(max_body);
        let small = body
            .size_hint()
            .upper()
            .is_some_and(|upper| upper <= limit as u64);
        if !(may_retry && small) {
            return Ok(Outgoing::Once(Some(Body::new(Limited::new(
                body, max_body,
            )))));
        }
        match Limited::new(body, limit).collect().await {
            Ok(collected) => Ok(Outgoing::Replayable(collected.to_bytes())),
            Err(e) => Err(body_error(&*e)),
        }
    }

    /// Whether the body can be sent more than once.
    pub(crate) fn is_replayable(&self) -> bool {
        matches!(self, Outgoing::Replayable(_))
    }

    /// The body for the next attempt (empty once a streamed body has been used).
    pub(crate) fn for_attempt(&mut self) -> Body {
        match self {
            Outgoing::Replayable(bytes) => Body::from(bytes.clone()),
            Outgoing::Once(body) => body.take().unwrap_or_else(Body::empty),
        }
    }
}

/// Whether `error` (or what caused it) is a body going over its limit.
pub(crate) fn is_too_large(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.is::<LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The answer to a client whose request body could not be read.
pub(crate) fn body_error(error: &(dyn std::error::Error + 'static)) -> ApiError {
    if is_too_large(error) {
        too_large()
    } else {
        tracing::debug!(error = %error, "request body could not be read");
        ApiError::new(ErrorCode::Req001, "request body could not be read")
    }
}

/// 413 `REQ_002`.
pub(crate) fn too_large() -> ApiError {
    ApiError::new(ErrorCode::Req002, "request body too large")
}
