//! Where publications get their offsets, are kept for recovery and reach every node's
//! subscribers; where presence lives.
//!
//! [`MemoryBroker`] does it in this process (the embedded default). With Redis, several hub
//! processes share offsets, history and presence in Redis, and publications reach the other
//! nodes over Redis pub/sub.
//!
//! Either way a publication's offset is assigned, its frame stored, and its delivery started
//! as one step, so every subscriber sees a channel's messages in offset order.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::history::Recovery;
use crate::protocol::{FrameParts, Position};
use crate::settings::HistoryBounds;

mod memory;
mod redis;

pub use memory::MemoryBroker;
pub use redis::{CALL_TIMEOUT, DEFAULT_KEY_PREFIX, PRESENCE_TTL, RedisBroker};

/// A boxed future, as the broker returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why the broker could not do something.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Redis failed or did not answer.
    #[error("redis: {0}")]
    Redis(String),
}

/// A member of a channel with presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The user.
    pub user_id: String,
    /// The connection.
    pub connection_id: String,
    /// When it joined (RFC 3339).
    pub joined_at: String,
}

/// A publication to make.
#[derive(Debug, Clone)]
pub struct Publish<'a> {
    /// The channel.
    pub channel: &'a str,
    /// Its frame, without the offset.
    pub parts: FrameParts,
    /// A connection not to deliver to (`exclude_self`).
    pub exclude: Option<&'a str>,
    /// The channel's history bounds.
    pub history: HistoryBounds,
}

/// Offsets, history, fan-out and presence, local or shared.
pub trait Broker: Send + Sync + 'static {
    /// Assigns `publish` the channel's next offset, keeps it in history and delivers it to
    /// the channel's subscribers on every node; returns its position.
    fn publish<'a>(&'a self, publish: Publish<'a>) -> BoxFuture<'a, Result<Position, BrokerError>>;

    /// Delivers `frame` (no offset, not kept) to `channel`'s subscribers on every node but
    /// connection `exclude`: join and leave events.
    fn broadcast<'a>(
        &'a self,
        channel: &'a str,
        frame: String,
        exclude: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), BrokerError>>;

    /// `channel`'s position now and, with `since`, what came after it.
    fn recover<'a>(
        &'a self,
        channel: &'a str,
        since: Option<&'a Position>,
        history: HistoryBounds,
    ) -> BoxFuture<'a, Result<Recovery, BrokerError>>;

    /// Adds `member` to `channel`'s presence.
    fn join<'a>(
        &'a self,
        channel: &'a str,
        member: Member,
    ) -> BoxFuture<'a, Result<(), BrokerError>>;

    /// Removes connection `connection_id` from `channel`'s presence.
    fn leave<'a>(
        &'a self,
        channel: &'a str,
        connection_id: &'a str,
    ) -> BoxFuture<'a, Result<(), BrokerError>>;

    /// `channel`'s members, on every node.
    fn members<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<Vec<Member>, BrokerError>>;

    /// Closes every connection of `user_id` on every node with close code `code`.
    fn disconnect_user<'a>(
        &'a self,
        user_id: &'a str,
        code: u16,
    ) -> BoxFuture<'a, Result<(), BrokerError>>;

    /// Periodic housekeeping (dropping idle streams, refreshing presence); called by the hub
    /// every few seconds.
    fn upkeep(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Whether the broker can do its work now (Redis answers a PING); for `/health`.
    fn ping(&self) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(async { Ok(()) })
    }

    /// A name for logs and `/health` (`memory`, `redis`).
    fn kind(&self) -> &'static str;
}

/// A shared broker.
pub type SharedBroker = Arc<dyn Broker>;
