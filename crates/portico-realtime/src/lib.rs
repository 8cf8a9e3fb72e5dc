//! The realtime hub: authenticated WebSocket connections with heartbeats, channels,
//! presence, history with recovery, client actions routed to upstreams, and a publish API
//! for upstream services — DESIGN.md's "Realtime" section.
//!
//! A [`Hub`] is built once from [`HubParts`] and serves its [`Hub::router`] (`GET /ws`,
//! `POST /internal/publish`, `POST /internal/disconnect`). Each connection is one task
//! ([`connection`]); publications get their offsets, history and fan-out from a
//! [`broker::Broker`] — in this process by default, or shared by several hub processes
//! through Redis.
//!
//! # Layout
//! - [`protocol`]: client frames decoded, server frames written.
//! - [`channel`]: channel names (`user:<id>`, `<namespace>:<name>`).
//! - [`settings`]: the `[realtime]` settings and what they say about a channel.
//! - [`hub`]: the [`Hub`] and the rules for joining and publishing.
//! - [`connection`]: one connection's task (heartbeat, idle, expiry, queue, close codes).
//! - `local`: this process's connections and subscriptions; delivery into their queues.
//! - [`history`]: a channel's stream in memory (offset, epoch, bounded history).
//! - [`broker`]: offsets, history, fan-out and presence, in memory or in Redis.
//! - [`upstream`]: routed actions and join checks, as HTTP POSTs with the identity headers.
//! - `api`: the HTTP routes.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # fn demo(authenticator: Arc<dyn portico_gateway::identity::Authenticator>) {
//! use portico_realtime::{Hub, HubParts, RealtimeSettings, upstream::Upstreams};
//!
//! let hub = Hub::new(HubParts {
//!     settings: RealtimeSettings::default(),
//!     authenticator,
//!     upstreams: Upstreams::default(),
//!     internal_tokens: Vec::new(),
//!     clock: portico_core::clock::SystemClock::shared(),
//!     shutdown: portico_core::shutdown::Shutdown::new(),
//! });
//! let app: axum::Router = hub.router();
//! # let _ = app; }
//! ```
#![forbid(unsafe_code)]

mod api;
pub mod broker;
pub mod channel;
pub mod connection;
pub mod history;
pub mod hub;
mod local;
pub mod protocol;
pub mod settings;
pub mod upstream;

pub use hub::{Hub, HubParts};
pub use settings::RealtimeSettings;
