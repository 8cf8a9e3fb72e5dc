//! The error code table of the envelope: every code, its default HTTP status and its meaning.
//!
//! This is the one place the table of DESIGN.md lives in code; everything else asks
//! [`ErrorCode`] instead of repeating a status or a string.

use std::fmt;

use http::StatusCode;

/// One row of the error code table.
///
/// Codes are grouped by who is at fault: `AUTH_*` identity, `BACKEND_*` upstream services and
/// rate limits, `REQ_*` the request itself, `SYS_*` Portico or its dependencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    /// `AUTH_001`, 401: invalid token (bad signature, malformed, wrong issuer/audience, unknown key).
    Auth001,
    /// `AUTH_002`, 401: expired token.
    Auth002,
    /// `AUTH_003`, 401: missing token.
    Auth003,
    /// `AUTH_004`, 400 (or 502): OAuth error (bad state, provider error, provider unreachable).
    Auth004,
    /// `AUTH_005`, 401: invalid credentials.
    Auth005,
    /// `AUTH_006`, 403: insufficient permissions.
    Auth006,
    /// `AUTH_007`, 401: token revoked.
    Auth007,
    /// `AUTH_008`, 409: account already exists.
    Auth008,
    /// `BACKEND_001`, 502: upstream failed.
    Backend001,
    /// `BACKEND_002`, 404: unknown resource id.
    Backend002,
    /// `BACKEND_003`, 429: rate limit exceeded.
    Backend003,
    /// `BACKEND_004`, 400: WebSocket connection failed.
    Backend004,
    /// `REQ_001`, 400 (or 422): invalid request body or parameters.
    Req001,
    /// `REQ_002`, 413: payload too large.
    Req002,
    /// `REQ_003`, 404: no route.
    Req003,
    /// `REQ_004`, 405: method not allowed.
    Req004,
    /// `SYS_001`, 503: database unavailable.
    Sys001,
    /// `SYS_002`, 503: upstream or dependency unavailable.
    Sys002,
    /// `SYS_003`, 500: internal error.
    Sys003,
    /// `SYS_004`, 504: upstream timeout.
    Sys004,
}

impl ErrorCode {
    /// Every code, in table order.
    pub const ALL: [ErrorCode; 20] = [
        ErrorCode::Auth001,
        ErrorCode::Auth002,
        ErrorCode::Auth003,
        ErrorCode::Auth004,
        ErrorCode::Auth005,
        ErrorCode::Auth006,
        ErrorCode::Auth007,
        ErrorCode::Auth008,
        ErrorCode::Backend001,
        ErrorCode::Backend002,
        ErrorCode::Backend003,
        ErrorCode::Backend004,
        ErrorCode::Req001,
        ErrorCode::Req002,
        ErrorCode::Req003,
        ErrorCode::Req004,
        ErrorCode::Sys001,
        ErrorCode::Sys002,
        ErrorCode::Sys003,
        ErrorCode::Sys004,
    ];

    /// The wire form, e.g. `"AUTH_001"`.
    pub fn as_str(self) -> &'static str {
        self.row().0
    }

    /// The default HTTP status. `AUTH_004` (400/502) and `REQ_001` (400/422) have two;
    /// the first is the default and [`ApiError::with_status`](super::ApiError::with_status)
    /// picks the other.
    pub fn status(self) -> StatusCode {
        self.row().1
    }

    /// What the code means, as the table says it.
    pub fn description(self) -> &'static str {
        self.row().2
    }

    /// Parses the wire form (`"AUTH_001"`); `None` for anything else.
    pub fn from_code(s: &str) -> Option<ErrorCode> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    fn row(self) -> (&'static str, StatusCode, &'static str) {
        use ErrorCode::*;
        match self {
            Auth001 => (
                "AUTH_001",
                StatusCode::UNAUTHORIZED,
                "invalid token (bad signature, malformed, wrong issuer/audience, unknown key)",
            ),
            Auth002 => ("AUTH_002", StatusCode::UNAUTHORIZED, "expired token"),
            Auth003 => ("AUTH_003", StatusCode::UNAUTHORIZED, "missing token"),
            Auth004 => (
                "AUTH_004",
                StatusCode::BAD_REQUEST,
                "OAuth error (bad state, provider error, provider unreachable)",
            ),
            Auth005 => (
                "AUTH_005",
                StatusCode::UNAUTHORIZED,
                "invalid credentials (same answer for unknown email and wrong password)",
            ),
            Auth006 => (
                "AUTH_006",
                StatusCode::FORBIDDEN,
                "insufficient permissions",
            ),
            Auth007 => (
                "AUTH_007",
                StatusCode::UNAUTHORIZED,
                "token revoked (logout, refresh-token reuse, key deleted)",
            ),
            Auth008 => ("AUTH_008", StatusCode::CONFLICT, "account already exists"),
            Backend001 => (
                "BACKEND_001",
                StatusCode::BAD_GATEWAY,
                "upstream failed (5xx after retries, invalid response)",
            ),
            Backend002 => ("BACKEND_002", StatusCode::NOT_FOUND, "unknown resource id"),
            Backend003 => (
                "BACKEND_003",
                StatusCode::TOO_MANY_REQUESTS,
                "rate limit exceeded",
            ),
            Backend004 => (
                "BACKEND_004",
                StatusCode::BAD_REQUEST,
                "WebSocket connection failed (bad upgrade)",
            ),
            Req001 => (
                "REQ_001",
                StatusCode::BAD_REQUEST,
                "invalid request body or parameters",
            ),
            Req002 => (
                "REQ_002",
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload too large",
            ),
            Req003 => ("REQ_003", StatusCode::NOT_FOUND, "no route"),
            Req004 => (
                "REQ_004",
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
            ),
            Sys001 => (
                "SYS_001",
                StatusCode::SERVICE_UNAVAILABLE,
                "database unavailable",
            ),
            Sys002 => (
                "SYS_002",
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream or dependency unavailable (connect failure, circuit open)",
            ),
            Sys003 => (
                "SYS_003",
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
            ),
            Sys004 => ("SYS_004", StatusCode::GATEWAY_TIMEOUT, "upstream timeout"),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        ErrorCode::from_code(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown error code {s:?}")))
    }
}
