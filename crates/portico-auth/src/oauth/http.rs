//! The HTTP client that talks to OAuth providers: TLS as [`portico_core::tls`] sets it up,
//! short timeouts, no redirects followed, bounded bodies.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::error::AuthError;

/// Largest provider answer read (discovery documents, JWKS and token responses are a few KiB).
pub const MAX_RESPONSE: usize = 1024 * 1024;

/// How long one call to a provider may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A client for provider calls.
pub fn client() -> Result<reqwest::Client, AuthError> {
    let tls = portico_core::tls::client_config()
        .map_err(|e| AuthError::Internal(format!("TLS setup: {e}")))?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(REQUEST_TIMEOUT)
        // GitHub refuses API calls without a User-Agent.
        .user_agent(concat!("portico/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| AuthError::Internal(format!("HTTP client setup: {e}")))
}

/// What a provider answered: status and (bounded) body.
pub struct Answer {
    /// The HTTP status.
    pub status: reqwest::StatusCode,
    /// The body, at most [`MAX_RESPONSE`] bytes.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON of type `T`; [`AuthError::OAuthProvider`] naming `what` otherwise.
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, AuthError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| AuthError::OAuthProvider(format!("{what}: unexpected answer ({e})")))
    }

    /// The OAuth `error` code of an error answer (RFC 6749 §5.2), if it has one.
    pub fn oauth_error(&self) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct ErrorBody {
            error: String,
        }
        let body: ErrorBody = serde_json::from_slice(&self.body).ok()?;
        Some(printable(&body.error))
    }
}

/// Sends `request` and reads its answer; connection failures, timeouts and oversized bodies
/// are [`AuthError::OAuthProvider`] naming `what`.
pub async fn send(request: reqwest::RequestBuilder, what: &str) -> Result<Answer, AuthError> {
    let unreachable = |e: reqwest::Error| {
        let kind = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "unreachable"
        } else {
            "failed"
        };
        tracing::warn!(error = %e, what, "OAuth provider call {kind}");
        AuthError::OAuthProvider(format!("{what}: provider {kind}"))
    };
    let mut response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        if body.len() + chunk.len() > MAX_RESPONSE {
            return Err(AuthError::OAuthProvider(format!(
                "{what}: answer larger than {MAX_RESPONSE} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer { status, body })
}

/// `text` cut to 100 printable ASCII characters, safe to put in an error message.
pub fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(100)
        .collect()
}
