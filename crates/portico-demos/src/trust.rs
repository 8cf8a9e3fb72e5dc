//! Who may call a demo: the gateway, which carries the upstream's internal token in
//! `X-Internal-Auth` with the caller's `X-User-*` headers ([`portico_sdk::Verifier`]).

use axum::http::HeaderMap;
use portico_core::error::{ApiError, ErrorCode};
use portico_sdk::{Caller, Verifier};

use crate::DemoSettings;

/// The internal-token check of a demo, or none when it runs without `--internal-token`
/// (then every call but `/health` is refused).
#[derive(Debug, Clone)]
pub(crate) struct Trust(Option<Verifier>);

impl Trust {
    pub(crate) fn new(settings: &DemoSettings) -> Result<Self, String> {
        match &settings.internal_token {
            Some(token) => Verifier::internal_token("X-Internal-Auth", token)
                .map(|v| Self(Some(v)))
                .map_err(|e| e.to_string()),
            None => Ok(Self(None)),
        }
    }

    /// The caller, when the call carries the internal token and a user.
    pub(crate) async fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        match &self.0 {
            Some(verifier) => verifier.caller(headers).await,
            None => Err(ApiError::new(
                ErrorCode::Sys001,
                "the demo runs without --internal-token: set the upstream's internal_token",
            )),
        }
    }
}
