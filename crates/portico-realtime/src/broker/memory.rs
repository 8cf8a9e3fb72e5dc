//! The in-process broker: streams and presence in this process's memory, delivery straight
//! to the local subscribers. What `portico up` uses without Redis.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use portico_core::clock::SharedClock;

use super::{BoxFuture, Broker, BrokerError, Member, Publish};
use crate::history::{Recovery, Stream};
use crate::local::{Local, lock};
use crate::protocol::Position;
use crate::settings::HistoryBounds;

const SHARDS: usize = 16;

/// How long a stream with no history left is kept after its last publication: long enough
/// that a client reconnecting within it still recovers (with nothing missed) in the same
/// epoch.
const IDLE_STREAM: Duration = Duration::from_secs(600);

/// Streams and presence in memory.
#[derive(Debug)]
pub struct MemoryBroker {
    local: Arc<Local>,
    clock: SharedClock,
    hasher: RandomState,
    streams: Box<[Mutex<HashMap<String, Stream>>]>,
    presence: Mutex<HashMap<String, Vec<Member>>>,
}

impl MemoryBroker {
    pub(crate) fn new(local: Arc<Local>, clock: SharedClock) -> Self {
        Self {
            local,
            clock,
            hasher: RandomState::new(),
            streams: (0..SHARDS).map(|_| Mutex::default()).collect(),
            presence: Mutex::default(),
        }
    }

    fn shard(&self, channel: &str) -> &Mutex<HashMap<String, Stream>> {
        &self.streams[(self.hasher.hash_one(channel) as usize) % SHARDS]
    }
}

impl Broker for MemoryBroker {
    fn publish<'a>(&'a self, p: Publish<'a>) -> BoxFuture<'a, Result<Position, BrokerError>> {
        let now = self.clock.now();
        let mut shard = lock(self.shard(p.channel));
        let stream = shard
            .entry(p.channel.to_owned())
            .or_insert_with(|| Stream::new(now));
        let offset = stream.next_offset();
        let frame = Utf8Bytes::from(p.parts.with_offset(offset));
        stream.push(now, p.history, frame.clone());
        // Delivered under the shard's lock: a later publication to this channel cannot
        // overtake this one on its way to the queues.
        self.local.deliver(p.channel, offset, &frame, p.exclude);
        let position = Position {
            offset,
            epoch: stream.epoch().to_owned(),
        };
        drop(shard);
        Box::pin(async move { Ok(position) })
    }

    fn broadcast<'a>(
        &'a self,
        channel: &'a str,
        frame: String,
        exclude: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        self.local
            .deliver_frame(channel, &Utf8Bytes::from(frame), exclude);
        Box::pin(async { Ok(()) })
    }

    fn recover<'a>(
        &'a self,
        channel: &'a str,
        since: Option<&'a Position>,
        history: HistoryBounds,
    ) -> BoxFuture<'a, Result<Recovery, BrokerError>> {
        let now = self.clock.now();
        let recovery = lock(self.shard(channel))
            .entry(channel.to_owned())
            .or_insert_with(|| Stream::new(now))
            .recover(now, history, since);
        Box::pin(async move { Ok(recovery) })
    }

    fn join<'a>(
        &'a self,
        channel: &'a str,
        member: Member,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        let mut presence = lock(&self.presence);
        let members = presence.entry(channel.to_owned()).or_default();
        members.retain(|m| m.connection_id != member.connection_id);
        members.push(member);
        Box::pin(async { Ok(()) })
    }

    fn leave<'a>(
        &'a self,
        channel: &'a str,
        connection_id: &'a str,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        let mut presence = lock(&self.presence);
        if let Some(members) = presence.get_mut(channel) {
            members.retain(|m| m.connection_id != connection_id);
            if members.is_empty() {
                presence.remove(channel);
            }
        }
        Box::pin(async { Ok(()) })
    }

    fn members<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<Vec<Member>, BrokerError>> {
        let members = lock(&self.presence)
            .get(channel)
            .cloned()
            .unwrap_or_default();
        Box::pin(async move { Ok(members) })
    }

    fn disconnect_user<'a>(
        &'a self,
        user_id: &'a str,
        code: u16,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        self.local.disconnect_user(user_id, code);
        Box::pin(async { Ok(()) })
    }

    fn upkeep(&self) -> BoxFuture<'_, ()> {
        let now = self.clock.now();
        for shard in self.streams.iter() {
            lock(shard).retain(|channel, stream| {
                // Subscribed channels keep their epoch: their subscribers hold positions in it.
                !stream.is_disposable(now, IDLE_STREAM) || self.local.has_subscribers(channel)
            });
        }
        Box::pin(async {})
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}
