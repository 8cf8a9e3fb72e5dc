//! What every Portico component shares: the error envelope and its code table, request ids,
//! the health registry and `/health`, tracing and Prometheus setup, graceful shutdown, and
//! config primitives. The clock is re-exported from `portico-resilience`.
//!
//! An HTTP component builds its `axum::Router`, answers errors with [`ApiError`] (or lets
//! [`error::envelope_layer`] rewrite axum's own 404/405/413), and the binary stacks the shared
//! layers once around the whole app.
//!
//! # Layout
//! - [`error`]: [`ErrorCode`], [`ApiError`] and the envelope, [`error::ApiJson`],
//!   [`error::envelope_layer`], [`error::fallback_not_found`].
//! - [`request_id`]: [`RequestId`], `X-Request-ID` handling and the request span
//!   ([`request_id::RequestIdLayer`]).
//! - [`health`]: checks, the registry and its aggregation, `/health` routes.
//! - [`telemetry`]: `init_tracing`, the Prometheus recorder, `/metrics`, HTTP metrics layer.
//! - [`shutdown`]: the [`Shutdown`] handle and [`shutdown::serve`] with a drain deadline.
//! - [`config`]: `parse_duration` and [`config::ByteSize`].
//! - [`permissions`]: whether granted permissions (`*`, `etl.*`) satisfy a requirement.
//! - [`tls`]: the TLS client configuration of every outgoing HTTPS call.
//! - [`trace_context`]: W3C `traceparent` parsing and the request id's trace-id.
//! - [`hex`]: lowercase hex encoding (and 32-digit decoding) without `core::fmt`.
//! - [`jws`]: Ed25519 compact JWS — the RFC 7638 `kid`, the public JWK, signing.
//! - [`clock`]: the project's `Clock` (re-export).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use axum::{Router, routing::post};
//! use portico_core::error::{ApiError, ApiJson, ErrorCode, envelope_layer, fallback_not_found};
//! use portico_core::request_id::RequestIdLayer;
//! use portico_core::shutdown::{Shutdown, serve};
//!
//! #[derive(serde::Deserialize)]
//! struct Login { email: String }
//!
//! async fn login(ApiJson(body): ApiJson<Login>) -> Result<&'static str, ApiError> {
//!     Err(ApiError::new(ErrorCode::Auth005, format!("no luck for {}", body.email.len())))
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let app = Router::new()
//!     .route("/login", post(login))
//!     .fallback(fallback_not_found)
//!     .layer(envelope_layer())        // inner: sees responses first
//!     .layer(RequestIdLayer::new());  // outer: id, span, X-Request-ID on every response
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let shutdown = Shutdown::new();
//! shutdown.listen_for_signals();
//! serve(listener, app, shutdown, Duration::from_secs(30)).await
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod clock;
pub mod config;
pub mod error;
pub mod health;
pub mod hex;
pub mod jws;
pub mod permissions;
pub mod request_id;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
pub mod trace_context;

pub use error::{ApiError, ErrorCode};
pub use request_id::RequestId;
pub use shutdown::Shutdown;
