//! The demo upstreams of DESIGN.md ("Demo upstreams"): small services shaped like the seed
//! systems' own, that trust the identity Portico forwards and push their events through the
//! realtime hub with [`portico_sdk`]. `portico demo <name>` runs one.
//!
//! # Layout
//! - `agent`: seed 000's agent runs, streamed to the user ([`agent::router`]).
//! - `collab`: seeds 003/004's shared code sessions with roles ([`collab::router`]).
//! - `etl`: seed 002's ETL service ([`etl::router`]).
//! - `search`: seed 001's search over a chroma-like store that fails on cue
//!   ([`search::router`]).
//! - `tutor`: seed 004's slow, sometimes failing AI tutor ([`tutor::router`]).
//! - `trust` (the internal-token check) and `failure` (failing on purpose), which they share.
//!
#![forbid(unsafe_code)]

pub mod agent;
pub mod collab;
pub mod etl;
mod failure;
pub mod search;
mod trust;
pub mod tutor;

use portico_sdk::Publisher;

/// What every demo is given.
#[derive(Debug, Clone)]
pub struct DemoSettings {
    /// Where Portico runs (`http://127.0.0.1:8080`).
    pub portico: String,
    /// Publishes the demo's events, when a service client was given.
    pub publisher: Option<Publisher>,
    /// The upstream's internal token, which calls from the gateway carry.
    pub internal_token: Option<String>,
}
