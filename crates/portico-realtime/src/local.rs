//! The connections of this process and their subscriptions: where a broker hands a
//! publication to be written to every local subscriber.
//!
//! Delivery never waits: each connection has a bounded queue ([`Peer`]); a frame that does
//! not fit marks the connection a slow consumer, which its task then closes with 1013. One
//! publication's frame is serialized once and shared (reference-counted) by every queue.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{Notify, mpsc};

/// A frame on its way to one connection. One pointer wide, so a connection's queue (whose
/// first block of slots every connection allocates) stays small.
#[derive(Debug, Clone)]
pub(crate) enum Outbound {
    /// A publication: delivered unless the connection has already seen its offset of its
    /// channel (recovery may have sent it). Shared by every subscriber.
    Publication(Arc<Delivery>),
    /// Any other frame, written as it is.
    Frame(Arc<Utf8Bytes>),
}

/// A publication as every local subscriber receives it.
#[derive(Debug)]
pub(crate) struct Delivery {
    /// The channel.
    pub channel: Arc<str>,
    /// Its offset in the channel.
    pub offset: u64,
    /// The frame.
    pub frame: Utf8Bytes,
}

/// Close codes a connection can be told to close with from outside its task.
pub(crate) mod close {
    /// The server is shutting down: reconnect elsewhere.
    pub const GOING_AWAY: u16 = 1001;
    /// The connection's queue overflowed.
    pub const SLOW_CONSUMER: u16 = 1013;
    /// An upstream asked for the user to be disconnected.
    pub const POLICY: u16 = 1008;
}

/// One connection as the rest of the hub sees it.
#[derive(Debug)]
pub(crate) struct Peer {
    /// The connection id (unique across nodes).
    pub id: Arc<str>,
    /// Whose connection it is.
    pub user_id: Arc<str>,
    tx: mpsc::Sender<Outbound>,
    /// The close code the task must close with (0: none asked).
    kill: AtomicU16,
    killed: Notify,
}

impl Peer {
    /// A peer and the receiving end of its queue (`capacity` frames).
    pub fn new(
        id: Arc<str>,
        user_id: Arc<str>,
        capacity: usize,
    ) -> (Arc<Self>, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let peer = Arc::new(Self {
            id,
            user_id,
            tx,
            kill: AtomicU16::new(0),
            killed: Notify::new(),
        });
        (peer, rx)
    }

    /// Queues `frame`; a full queue asks the connection to close as a slow consumer.
    /// Returns whether it was queued.
    pub fn send(&self, frame: Outbound) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close(close::SLOW_CONSUMER);
                false
            }
            // The task has ended; its subscriptions are being removed.
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Asks the connection's task to close with `code` (the first code asked wins).
    pub fn close(&self, code: u16) {
        if self
            .kill
            .compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            // notify_one keeps a permit when the task is not waiting yet.
            self.killed.notify_one();
        }
    }

    /// Completes with the close code once [`Peer::close`] has been called.
    pub async fn closed(&self) -> u16 {
        loop {
            let code = self.kill.load(Ordering::SeqCst);
            if code != 0 {
                return code;
            }
            self.killed.notified().await;
        }
    }
}

const SHARDS: usize = 16;

/// One shard of the subscriber map: channel → its local subscribers.
type Shard = RwLock<HashMap<Arc<str>, Vec<Arc<Peer>>>>;

/// Subscribers by channel, and every connection by id.
#[derive(Debug)]
pub(crate) struct Local {
    hasher: RandomState,
    shards: Box<[Shard]>,
    peers: Mutex<HashMap<Arc<str>, Arc<Peer>>>,
}

impl Default for Local {
    fn default() -> Self {
        Self {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            peers: Mutex::default(),
        }
    }
}

impl Local {
    fn shard(&self, channel: &str) -> &Shard {
        let i = (self.hasher.hash_one(channel) as usize) % SHARDS;
        &self.shards[i]
    }

    /// Registers a new connection.
    pub fn add(&self, peer: &Arc<Peer>) {
        lock(&self.peers).insert(peer.id.clone(), peer.clone());
    }

    /// Forgets a connection and its subscriptions (`channels`).
    pub fn remove(&self, peer: &Peer, channels: impl IntoIterator<Item = Arc<str>>) {
        for channel in channels {
            self.unsubscribe(&channel, &peer.id);
        }
        lock(&self.peers).remove(&peer.id);
    }

    /// How many connections this process holds.
    pub fn connections(&self) -> usize {
        lock(&self.peers).len()
    }

    /// Adds `peer` to `channel`'s subscribers (once); returns the channel's shared name.
    pub fn subscribe(&self, channel: &str, peer: &Arc<Peer>) -> Arc<str> {
        let mut shard = write(self.shard(channel));
        if let Some(name) = shard.get_key_value(channel).map(|(name, _)| name.clone()) {
            if let Some(subscribers) = shard.get_mut(channel)
                && !subscribers.iter().any(|p| p.id == peer.id)
            {
                subscribers.push(peer.clone());
            }
            return name;
        }
        let name: Arc<str> = Arc::from(channel);
        shard.insert(name.clone(), vec![peer.clone()]);
        name
    }

    /// Removes connection `id` from `channel`'s subscribers.
    pub fn unsubscribe(&self, channel: &str, id: &str) {
        let mut shard = write(self.shard(channel));
        if let Some(subscribers) = shard.get_mut(channel) {
            subscribers.retain(|p| &*p.id != id);
            if subscribers.is_empty() {
                shard.remove(channel);
            }
        }
    }

    /// Whether anyone here subscribes to `channel`.
    pub fn has_subscribers(&self, channel: &str) -> bool {
        read(self.shard(channel)).contains_key(channel)
    }

    /// Queues a publication for every local subscriber of `channel` but `exclude`; returns
    /// how many it was queued for.
    pub fn deliver(
        &self,
        channel: &str,
        offset: u64,
        frame: &Utf8Bytes,
        exclude: Option<&str>,
    ) -> usize {
        let shard = read(self.shard(channel));
        let Some((name, subscribers)) = shard.get_key_value(channel) else {
            return 0;
        };
        let delivery = Arc::new(Delivery {
            channel: name.clone(),
            offset,
            frame: frame.clone(),
        });
        let mut sent = 0;
        for peer in subscribers {
            if exclude.is_some_and(|x| x == &*peer.id) {
                continue;
            }
            sent += usize::from(peer.send(Outbound::Publication(delivery.clone())));
        }
        drop(shard);
        metrics::counter!("portico_ws_messages_total", "direction" => "out").increment(sent as u64);
        sent
    }

    /// Queues a frame without an offset (join and leave events) for `channel`'s local
    /// subscribers but `exclude`.
    pub fn deliver_frame(&self, channel: &str, frame: &Utf8Bytes, exclude: Option<&str>) -> usize {
        let shard = read(self.shard(channel));
        let Some(subscribers) = shard.get(channel) else {
            return 0;
        };
        let frame = Arc::new(frame.clone());
        let sent = subscribers
            .iter()
            .filter(|p| exclude.is_none_or(|x| x != &*p.id))
            .map(|p| usize::from(p.send(Outbound::Frame(frame.clone()))))
            .sum::<usize>();
        drop(shard);
        metrics::counter!("portico_ws_messages_total", "direction" => "out").increment(sent as u64);
        sent
    }

    /// Closes every local connection of `user_id` with `code`; returns how many.
    pub fn disconnect_user(&self, user_id: &str, code: u16) -> usize {
        let peers = lock(&self.peers);
        let mut n = 0;
        for peer in peers.values().filter(|p| &*p.user_id == user_id) {
            peer.close(code);
            n += 1;
        }
        n
    }
}

// A panic while a lock is held cannot leave the hub's maps half-updated in a way that matters
// (each update is one insert, push or remove), so a poisoned lock is used as it is.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}
fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_closes_the_peer_as_a_slow_consumer() {
        let local = Local::default();
        let (slow, _rx_slow) = Peer::new("a".into(), "u".into(), 2);
        let (fast, mut rx_fast) = Peer::new("b".into(), "u".into(), 64);
        local.add(&slow);
        local.add(&fast);
        local.subscribe("ns:x", &slow);
        local.subscribe("ns:x", &fast);
        let frame = Utf8Bytes::from_static("{}");
        for offset in 1..=5 {
            local.deliver("ns:x", offset, &frame, None);
        }
        assert_eq!(slow.closed().await, close::SLOW_CONSUMER);
        for _ in 1..=5 {
            assert!(matches!(rx_fast.try_recv(), Ok(Outbound::Publication(_))));
        }
        assert_eq!(local.deliver("ns:x", 6, &frame, Some("b")), 0);
        local.remove(&slow, ["ns:x".into()]);
        assert_eq!(local.connections(), 1);
        local.remove(&fast, ["ns:x".into()]);
        assert!(!local.has_subscribers("ns:x"));
    }
}
