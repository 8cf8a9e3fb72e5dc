//! For services behind Portico: who is calling, and how to push events to clients.
//!
//! The gateway (and the realtime hub's routed actions) call an upstream with the caller's
//! identity: `X-User-ID`, `X-User-Email`, `X-User-Permissions`, the upstream's internal token
//! and `X-Portico-Identity`, a short-lived EdDSA JWT signed by the gateway. A client's own
//! copies of those headers never reach the upstream. This crate turns them back into a
//! [`Caller`]:
//!
//! - [`Verifier::jwks`] checks `X-Portico-Identity` against the gateway's JWKS
//!   (`/.well-known/portico-identity-jwks.json`): signature, `iss` `portico-gateway`, `aud`
//!   this service's upstream name, expiry. Nothing needs to be shared but the URL.
//! - [`Verifier::internal_token`] trusts the `X-User-*` headers when the request carries the
//!   upstream's internal token (compared in constant time), as seeds 000–004 did.
//!
//! A handler takes a [`Caller`] like any axum extractor; a request without a valid identity
//! is refused with DESIGN.md's error envelope (401 `AUTH_003` missing, `AUTH_001` invalid,
//! `AUTH_002` expired), and [`Caller::require`] answers 403 `AUTH_006`.
//!
//! [`Publisher`] sends events to WebSocket clients through the hub's `POST /internal/publish`
//! (and `/internal/disconnect`), with a service token it gets and renews from
//! `POST /auth/token` (client credentials), or a fixed token. [`ServiceClient`] makes any
//! other call to Portico with that token: one service calling another through the gateway.
//!
//! # Layout
//! - `identity`: [`Verifier`], [`Caller`] and the extractor.
//! - `publish`: [`Publisher`].
//! - `service`: [`ServiceClient`] (calls to Portico with a service token) and
//!   [`ServiceError`].
//!
//! # Example
//! ```no_run
//! use axum::{Router, routing::post};
//! use portico_sdk::{Caller, Verifier};
//!
//! async fn start(caller: Caller) -> Result<String, portico_core::error::ApiError> {
//!     caller.require("etl.access")?;
//!     Ok(format!("started for {}", caller.user_id))
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::jwks("http://127.0.0.1:8080", "etl")?;
//! let app: Router = Router::new()
//!     .route("/api/v1/jobs/start", post(start))
//!     .with_state(verifier);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9002").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod identity;
mod publish;
mod service;

/// An HTTP client for calls to Portico, with the workspace's TLS setup (for `https://`).
fn http_client(timeout: std::time::Duration) -> Result<reqwest::Client, String> {
    let tls = portico_core::tls::client_config().map_err(|e| format!("TLS setup: {e}"))?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(timeout)
        .build()
        .map_err(|e| format!("HTTP client setup: {e}"))
}

pub use identity::{Caller, Verifier, VerifierError};
pub use publish::{Publisher, Target};
pub use service::{ServiceClient, ServiceError};
