//! The gateway: the public edge of Portico. It matches a request to a route (longest prefix),
//! checks the caller's identity and permissions, and proxies the request to the route's
//! upstream — streamed both ways, through that upstream's timeout, retries and circuit
//! breaker — adding the identity headers upstreams trust and removing any a client forged.
//!
//! # Layout
//! - [`settings`]: the checked settings (`[upstreams.*]`, `[[routes]]`).
//! - [`routes`]: the route table (longest prefix on whole segments, rewrite).
//! - [`identity`]: the caller's [`identity::Identity`], the [`identity::Authenticator`] that
//!   finds it, and the identity headers.
//! - [`proxy`]: the streaming forwarder and the gateway's request handler.
//! - [`health`]: the `/health` probes of the upstreams (and of any HTTP dependency).
//! - [`ratelimit`]: rate limits shared through Redis, local while it is unreachable.
#![forbid(unsafe_code)]

pub mod health;
pub mod identity;
pub mod proxy;
pub mod ratelimit;
mod redis_link;
pub mod routes;
pub mod settings;

pub use proxy::{Gateway, GatewayError};
