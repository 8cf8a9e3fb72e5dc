//! What can go wrong on a call through the [`UpstreamClient`](super::UpstreamClient), with
//! where it came from and whether it is worth another attempt.

use std::time::Duration;

use crate::error::{CircuitOpen, TimeoutElapsed};

/// A failed call to an upstream. An HTTP response of any status is not an error: the caller
/// decides what a 404 or a 503 after retries means (the gateway passes it through).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The upstream's circuit is open; nothing was sent.
    #[error(transparent)]
    CircuitOpen(#[from] CircuitOpen),
    /// No connection could be made (refused, unreachable, DNS, connect timeout).
    #[error("[{upstream}] connection failed: {reason}")]
    Connect {
        /// The upstream's name.
        upstream: String,
        /// The cause in words (`Connection refused`).
        reason: String,
    },
    /// An attempt ran out of time, or the call's overall deadline passed.
    #[error("[{upstream}] timed out after {}", humantime::format_duration(*.after))]
    Timeout {
        /// The upstream's name.
        upstream: String,
        /// The time waited.
        after: Duration,
    },
    /// The connection broke or the upstream sent something that is not valid HTTP.
    #[error("[{upstream}] invalid response: {reason}")]
    Protocol {
        /// The upstream's name.
        upstream: String,
        /// The cause in words.
        reason: String,
    },
    /// The response body is larger than the client accepts.
    #[error("[{upstream}] response body over {limit} bytes")]
    BodyTooLarge {
        /// The upstream's name.
        upstream: String,
        /// The configured limit in bytes.
        limit: usize,
    },
    /// The request could not be built (bad path or header).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl ClientError {
    /// Whether another attempt could succeed: connection failures, timeouts and broken
    /// connections are transient; an open circuit, an oversized body or a bad request are not.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ClientError::Connect { .. }
                | ClientError::Timeout { .. }
                | ClientError::Protocol { .. }
        )
    }

    /// When the caller may try again, if known (an open circuit says when it will test).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::CircuitOpen(open) => Some(open.retry_after),
            _ => None,
        }
    }

    pub(crate) fn timeout(upstream: &str, elapsed: TimeoutElapsed) -> Self {
        ClientError::Timeout {
            upstream: upstream.to_owned(),
            after: elapsed.0,
        }
    }
}
