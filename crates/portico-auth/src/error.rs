//! What the auth component can answer instead of a success, and how each maps onto the
//! error envelope. Handlers return [`AuthError`]; the one `From` impl below is the only place
//! that chooses codes and statuses.

use std::collections::BTreeMap;
use std::time::Duration;

use http::StatusCode;
use portico_core::error::{ApiError, ErrorCode};

/// An auth failure a client can act on.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Malformed, badly signed, wrong issuer/audience or unknown key (AUTH_001).
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The token has expired (AUTH_002).
    #[error("token expired")]
    Expired,
    /// No token where one is needed (AUTH_003).
    #[error("missing token")]
    MissingToken,
    /// The OAuth flow failed: bad or replayed state, provider error (AUTH_004, 400).
    #[error("oauth error: {0}")]
    OAuth(String),
    /// The OAuth provider could not be reached or answered nonsense (AUTH_004, 502).
    #[error("oauth provider error: {0}")]
    OAuthProvider(String),
    /// Unknown email or wrong password — one answer for both (AUTH_005).
    #[error("invalid email or password")]
    InvalidCredentials,
    /// Authenticated but not allowed (AUTH_006).
    #[error("insufficient permissions: {0}")]
    Forbidden(String),
    /// Logged out, refresh token reused, key deleted (AUTH_007).
    #[error("token revoked: {0}")]
    Revoked(String),
    /// Registration with an email that has an account (AUTH_008).
    #[error("an account with this email already exists")]
    AccountExists,
    /// Too many attempts (BACKEND_003, with `Retry-After`).
    #[error("too many attempts; retry in {}s", retry_after.as_secs().max(1))]
    Throttled {
        /// When to try again.
        retry_after: Duration,
    },
    /// A field of the request is invalid (REQ_001, 422): field → problem.
    #[error("invalid request")]
    InvalidFields(BTreeMap<String, String>),
    /// No such resource (BACKEND_002).
    #[error("not found")]
    NotFound,
    /// The store cannot be reached (SYS_001).
    #[error("database unavailable")]
    StoreUnavailable,
    /// Anything else: logged with its cause, answered as SYS_003 without it.
    #[error("internal error")]
    Internal(String),
}

impl AuthError {
    /// A single invalid field.
    pub fn field(name: &str, problem: impl Into<String>) -> Self {
        AuthError::InvalidFields(BTreeMap::from([(name.to_owned(), problem.into())]))
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        let message = error.to_string();
        match error {
            AuthError::InvalidToken(_) => ApiError::new(ErrorCode::Auth001, message),
            AuthError::Expired => ApiError::new(ErrorCode::Auth002, message),
            AuthError::MissingToken => ApiError::new(ErrorCode::Auth003, message),
            AuthError::OAuth(_) => {
                ApiError::new(ErrorCode::Auth004, message).with_status(StatusCode::BAD_REQUEST)
            }
            AuthError::OAuthProvider(_) => {
                ApiError::new(ErrorCode::Auth004, message).with_status(StatusCode::BAD_GATEWAY)
            }
            AuthError::InvalidCredentials => ApiError::new(ErrorCode::Auth005, message),
            AuthError::Forbidden(_) => ApiError::new(ErrorCode::Auth006, message),
            AuthError::Revoked(_) => ApiError::new(ErrorCode::Auth007, message),
            AuthError::AccountExists => ApiError::new(ErrorCode::Auth008, message),
            AuthError::Throttled { retry_after } => {
                ApiError::new(ErrorCode::Backend003, message).with_retry_after(retry_after)
            }
            AuthError::InvalidFields(fields) => {
                ApiError::invalid_fields(StatusCode::UNPROCESSABLE_ENTITY, fields)
            }
            AuthError::NotFound => ApiError::new(ErrorCode::Backend002, message),
            AuthError::StoreUnavailable => ApiError::new(ErrorCode::Sys001, message),
            AuthError::Internal(cause) => ApiError::internal_error(cause),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_its_design_code_and_status() {
        let cases = [
            (AuthError::InvalidToken("x".into()), "AUTH_001", 401),
            (AuthError::Expired, "AUTH_002", 401),
            (AuthError::MissingToken, "AUTH_003", 401),
            (AuthError::OAuth("state".into()), "AUTH_004", 400),
            (AuthError::OAuthProvider("down".into()), "AUTH_004", 502),
            (AuthError::InvalidCredentials, "AUTH_005", 401),
            (AuthError::Forbidden("etl.access".into()), "AUTH_006", 403),
            (AuthError::Revoked("logout".into()), "AUTH_007", 401),
            (AuthError::AccountExists, "AUTH_008", 409),
            (
                AuthError::Throttled {
                    retry_after: Duration::from_secs(3),
                },
                "BACKEND_003",
                429,
            ),
            (AuthError::field("email", "required"), "REQ_001", 422),
            (AuthError::NotFound, "BACKEND_002", 404),
            (AuthError::StoreUnavailable, "SYS_001", 503),
            (AuthError::Internal("boom".into()), "SYS_003", 500),
        ];
        for (error, code, status) in cases {
            let api = ApiError::from(error);
            assert_eq!(api.code().as_str(), code);
            assert_eq!(api.status().as_u16(), status, "{code}");
        }
    }
}
