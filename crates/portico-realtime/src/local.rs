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
    /// The subscribers of the thread the connection lives on.
    home: Arc<Subscribers>,
    tx: mpsc::Sender<Outbound>,
    /// The close code the task must close with (0: none asked).
    kill: AtomicU16,
    killed: Notify,
}

impl Peer {
    /// A peer and the receiving end of its queue (`capacity` frames).
    fn new(
        id: Arc<str>,
        user_id: Arc<str>,
        capacity: usize,
        home: Arc<Subscribers>,
    ) -> (Arc<Self>, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let peer = Arc::new(Self {
            id,
            user_id,
            home,
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

/// One shard of a subscriber map: channel → its subscribers, each with the hand-over
/// sequence number current when it subscribed.
type Shard = RwLock<HashMap<Arc<str>, Vec<(Arc<Peer>, u64)>>>;

/// The subscribers of the connections that live on one thread, by channel.
#[derive(Debug)]
pub(crate) struct Subscribers {
    hasher: RandomState,
    shards: Box<[Shard]>,
}

/// What a thread's dispatcher is handed to deliver, with its hand-over sequence number.
#[derive(Debug)]
struct Item {
    /// Subscribers that joined after the hand-over (a higher sequence number) skip it: it was
    /// published before they joined, and dispatch only happens later.
    seq: u64,
    what: Dispatch,
}

/// What an [`Item`] delivers.
#[derive(Debug)]
enum Dispatch {
    /// A publication, for every subscriber of its channel but `exclude`.
    Publication {
        delivery: Arc<Delivery>,
        exclude: Option<Arc<str>>,
    },
    /// A frame without an offset (join and leave events).
    Frame {
        channel: Arc<str>,
        frame: Arc<Utf8Bytes>,
        exclude: Option<Arc<str>>,
    },
}

/// A thread holding connections: its subscribers and its dispatcher's inbox.
#[derive(Debug)]
struct Home {
    thread: std::thread::ThreadId,
    subscribers: Arc<Subscribers>,
    inbox: mpsc::UnboundedSender<Item>,
}

/// The connections of this process, grouped by the thread their task runs on.
///
/// A publication is handed once to each such thread's dispatcher task, which queues it for
/// that thread's subscribers. Waking a task that lives on another thread costs a system call
/// (the other runtime must be unparked); handing the fan-out to a task on the subscribers'
/// own thread costs one such wake per thread and publication instead of one per subscriber,
/// and lets several publications queue up for a connection before it writes them with one
/// send. Every delivery goes through the dispatcher, even from its own thread, so the
/// publications of a channel reach a connection in the order they were handed over.
#[derive(Debug, Default)]
pub(crate) struct Local {
    homes: RwLock<Vec<Home>>,
    /// The next hand-over's sequence number.
    seq: std::sync::atomic::AtomicU64,
    peers: Mutex<HashMap<Arc<str>, Arc<Peer>>>,
}

impl Subscribers {
    fn new() -> Self {
        Self {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
        }
    }

    fn shard(&self, channel: &str) -> &Shard {
        let i = (self.hasher.hash_one(channel) as usize) % SHARDS;
        &self.shards[i]
    }

    fn subscribe(&self, channel: &str, peer: &Arc<Peer>, seq: u64) -> Arc<str> {
        let mut shard = write(self.shard(channel));
        if let Some(name) = shard.get_key_value(channel).map(|(name, _)| name.clone()) {
            if let Some(subscribers) = shard.get_mut(channel)
                && !subscribers.iter().any(|(p, _)| p.id == peer.id)
            {
                subscribers.push((peer.clone(), seq));
            }
            return name;
        }
        let name: Arc<str> = Arc::from(channel);
        shard.insert(name.clone(), vec![(peer.clone(), seq)]);
        name
    }

    fn unsubscribe(&self, channel: &str, id: &str) {
        let mut shard = write(self.shard(channel));
        if let Some(subscribers) = shard.get_mut(channel) {
            subscribers.retain(|(p, _)| &*p.id != id);
            if subscribers.is_empty() {
                shard.remove(channel);
            }
        }
    }

    fn contains(&self, channel: &str) -> bool {
        read(self.shard(channel)).contains_key(channel)
    }

    /// Queues `item` for its channel's subscribers here; returns how many got it.
    fn dispatch(&self, item: &Item) -> usize {
        let (channel, exclude) = match &item.what {
            Dispatch::Publication { delivery, exclude } => (&*delivery.channel, exclude),
            Dispatch::Frame {
                channel, exclude, ..
            } => (&**channel, exclude),
        };
        let shard = read(self.shard(channel));
        let Some(subscribers) = shard.get(channel) else {
            return 0;
        };
        let mut sent = 0;
        for (peer, joined) in subscribers {
            if item.seq < *joined || exclude.as_deref().is_some_and(|x| x == &*peer.id) {
                continue;
            }
            let out = match &item.what {
                Dispatch::Publication { delivery, .. } => Outbound::Publication(delivery.clone()),
                Dispatch::Frame { frame, .. } => Outbound::Frame(frame.clone()),
            };
            sent += usize::from(peer.send(out));
        }
        sent
    }
}

/// A thread's dispatcher: delivers what it is handed, everything waiting at once before it
/// yields, so the connections it wakes find several frames queued. Ends when its [`Local`]
/// is dropped.
async fn dispatcher(subscribers: Arc<Subscribers>, mut inbox: mpsc::UnboundedReceiver<Item>) {
    while let Some(item) = inbox.recv().await {
        let mut sent = subscribers.dispatch(&item);
        while let Ok(item) = inbox.try_recv() {
            sent += subscribers.dispatch(&item);
        }
        metrics::counter!("portico_ws_messages_total", "direction" => "out").increment(sent as u64);
    }
}

impl Local {
    /// The subscribers of the calling thread, with a dispatcher spawned for them on its first
    /// connection. Must run inside a tokio runtime (a connection's task does).
    fn home(&self) -> Arc<Subscribers> {
        let thread = std::thread::current().id();
        if let Some(home) = read(&self.homes).iter().find(|h| h.thread == thread) {
            return home.subscribers.clone();
        }
        let mut homes = write(&self.homes);
        if let Some(home) = homes.iter().find(|h| h.thread == thread) {
            return home.subscribers.clone();
        }
        let subscribers = Arc::new(Subscribers::new());
        let (inbox, rx) = mpsc::unbounded_channel();
        tokio::spawn(dispatcher(subscribers.clone(), rx));
        homes.push(Home {
            thread,
            subscribers: subscribers.clone(),
            inbox,
        });
        subscribers
    }

    /// Registers a new connection of `user_id` living on the calling thread, with a queue of
    /// `capacity` frames; the peer and the receiving end of its queue.
    pub fn connect(
        &self,
        id: Arc<str>,
        user_id: Arc<str>,
        capacity: usize,
    ) -> (Arc<Peer>, mpsc::Receiver<Outbound>) {
        let (peer, rx) = Peer::new(id, user_id, capacity, self.home());
        lock(&self.peers).insert(peer.id.clone(), peer.clone());
        (peer, rx)
    }

    /// Forgets a connection and its subscriptions (`channels`).
    pub fn remove(&self, peer: &Peer, channels: impl IntoIterator<Item = Arc<str>>) {
        for channel in channels {
            self.unsubscribe(&channel, peer);
        }
        lock(&self.peers).remove(&peer.id);
    }

    /// How many connections this process holds.
    pub fn connections(&self) -> usize {
        lock(&self.peers).len()
    }

    /// Adds `peer` to `channel`'s subscribers (once); returns the channel's shared name.
    pub fn subscribe(&self, channel: &str, peer: &Arc<Peer>) -> Arc<str> {
        let seq = self.seq.load(Ordering::SeqCst);
        peer.home.subscribe(channel, peer, seq)
    }

    /// Removes `peer` from `channel`'s subscribers.
    pub fn unsubscribe(&self, channel: &str, peer: &Peer) {
        peer.home.unsubscribe(channel, &peer.id);
    }

    /// Whether anyone here subscribes to `channel`.
    pub fn has_subscribers(&self, channel: &str) -> bool {
        read(&self.homes)
            .iter()
            .any(|h| h.subscribers.contains(channel))
    }

    fn hand_over(&self, make: impl Fn() -> Dispatch) {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst);
        for home in read(&self.homes).iter() {
            // A send fails only once the dispatcher's runtime has stopped: its connections
            // are gone with it.
            let _ = home.inbox.send(Item { seq, what: make() });
        }
    }

    /// Queues a publication for every local subscriber of `channel` but `exclude`.
    pub fn deliver(&self, channel: &str, offset: u64, frame: &Utf8Bytes, exclude: Option<&str>) {
        let delivery = Arc::new(Delivery {
            channel: Arc::from(channel),
            offset,
            frame: frame.clone(),
        });
        let exclude: Option<Arc<str>> = exclude.map(Arc::from);
        self.hand_over(|| Dispatch::Publication {
            delivery: delivery.clone(),
            exclude: exclude.clone(),
        });
    }

    /// Queues a frame without an offset (join and leave events) for `channel`'s local
    /// subscribers but `exclude`.
    pub fn deliver_frame(&self, channel: &str, frame: &Utf8Bytes, exclude: Option<&str>) {
        let channel: Arc<str> = Arc::from(channel);
        let frame = Arc::new(frame.clone());
        let exclude: Option<Arc<str>> = exclude.map(Arc::from);
        self.hand_over(|| Dispatch::Frame {
            channel: channel.clone(),
            frame: frame.clone(),
            exclude: exclude.clone(),
        });
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
        let (slow, _rx_slow) = local.connect("a".into(), "u".into(), 2);
        let (fast, mut rx_fast) = local.connect("b".into(), "u".into(), 64);
        local.subscribe("ns:x", &slow);
        local.subscribe("ns:x", &fast);
        let frame = Utf8Bytes::from_static("{}");
        for offset in 1..=5 {
            local.deliver("ns:x", offset, &frame, None);
        }
        // The dispatcher of this thread delivers them.
        assert_eq!(slow.closed().await, close::SLOW_CONSUMER);
        for offset in 1..=5 {
            let Some(Outbound::Publication(d)) = rx_fast.recv().await else {
                panic!("expected publication {offset}");
            };
            assert_eq!(d.offset, offset);
        }
        local.deliver("ns:x", 6, &frame, Some("b"));
        local.deliver("ns:x", 7, &frame, None);
        let Some(Outbound::Publication(d)) = rx_fast.recv().await else {
            panic!("expected publication 7");
        };
        assert_eq!(d.offset, 7, "the excluded connection got 6");
        local.remove(&slow, ["ns:x".into()]);
        assert_eq!(local.connections(), 1);
        assert!(local.has_subscribers("ns:x"));
        local.remove(&fast, ["ns:x".into()]);
        assert!(!local.has_subscribers("ns:x"));
    }

    #[tokio::test]
    async fn a_subscriber_does_not_get_what_was_handed_over_before_it_joined() {
        let local = Local::default();
        let (early, mut rx_early) = local.connect("a".into(), "u".into(), 8);
        let (late, mut rx_late) = local.connect("b".into(), "u".into(), 8);
        local.subscribe("ns:x", &early);
        let frame = Utf8Bytes::from_static("{}");
        // Handed over, not dispatched yet (the dispatcher runs when this task yields) …
        local.deliver_frame("ns:x", &frame, None);
        // … when `late` joins.
        local.subscribe("ns:x", &late);
        local.deliver("ns:x", 1, &frame, None);
        assert!(matches!(rx_early.recv().await, Some(Outbound::Frame(_))));
        assert!(matches!(
            rx_early.recv().await,
            Some(Outbound::Publication(_))
        ));
        // `late` gets only the publication handed over after it joined.
        assert!(matches!(
            rx_late.recv().await,
            Some(Outbound::Publication(_))
        ));
        assert!(rx_late.try_recv().is_err());
    }
}
