//! The hub's checked settings (`[realtime]`, `[realtime.actions]`, `[realtime.namespaces.*]`),
//! built by the binary from the config, and what they say about one channel.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::channel::ChannelName;

/// Everything the hub is told by the config.
#[derive(Debug, Clone)]
pub struct RealtimeSettings {
    /// A heartbeat frame and a WS ping go out this often; a connection silent for two
    /// intervals is closed.
    pub heartbeat_interval: Duration,
    /// The largest frame (and message) accepted, in bytes; larger ones close with 1009.
    pub max_frame: usize,
    /// Messages kept per channel for recovery (namespaces may say otherwise).
    pub history_size: usize,
    /// How long a message stays in a channel's history.
    pub history_ttl: Duration,
    /// Frames queued for one connection before it counts as a slow consumer (close 1013).
    pub send_queue: usize,
    /// Frames a client may send per second (burst: the same number); more get an `error`
    /// frame BACKEND_003 and are not acted on.
    pub max_messages_per_second: u32,
    /// Channels one connection may be subscribed to at once.
    pub max_subscriptions: usize,
    /// Client actions routed to upstreams, by action name.
    pub actions: BTreeMap<String, Endpoint>,
    /// Channel namespaces, by name (`session` for `session:42`).
    pub namespaces: BTreeMap<String, Namespace>,
}

impl Default for RealtimeSettings {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(30),
            max_frame: 64 * 1024,
            history_size: 100,
            history_ttl: Duration::from_secs(600),
            send_queue: DEFAULT_SEND_QUEUE,
            max_messages_per_second: DEFAULT_MESSAGES_PER_SECOND,
            max_subscriptions: DEFAULT_MAX_SUBSCRIPTIONS,
            actions: BTreeMap::new(),
            namespaces: BTreeMap::new(),
        }
    }
}

/// Default of [`RealtimeSettings::send_queue`].
pub const DEFAULT_SEND_QUEUE: usize = 1024;
/// Default of [`RealtimeSettings::max_messages_per_second`].
pub const DEFAULT_MESSAGES_PER_SECOND: u32 = 50;
/// Default of [`RealtimeSettings::max_subscriptions`].
pub const DEFAULT_MAX_SUBSCRIPTIONS: usize = 128;

/// An upstream endpoint the hub POSTs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The upstream's name (a key of the hub's upstream clients).
    pub upstream: String,
    /// The path, starting with `/`.
    pub path: String,
}

/// `[realtime.namespaces.<name>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// Joining needs this permission.
    pub permission: Option<String>,
    /// Joining asks this upstream (2xx = allowed).
    pub check: Option<Endpoint>,
    /// Track members and publish `user-joined`/`user-left`.
    pub presence: bool,
    /// Messages kept for recovery.
    pub history_size: usize,
    /// How long they are kept.
    pub history_ttl: Duration,
    /// Clients may publish, not only upstreams.
    pub allow_client_publish: bool,
}

/// What applies to one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelOptions {
    /// Presence and join/leave events.
    pub presence: bool,
    /// History bounds.
    pub history: HistoryBounds,
    /// Clients may publish.
    pub allow_client_publish: bool,
}

/// How much history a channel keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryBounds {
    /// At most this many messages.
    pub size: usize,
    /// None older than this.
    pub ttl: Duration,
}

impl RealtimeSettings {
    /// The options of `channel`, or `None` when its namespace is not configured. Personal
    /// channels (`user:<id>`) keep the default history, have no presence, and take
    /// publications from upstreams only.
    pub fn options(&self, channel: &ChannelName) -> Option<ChannelOptions> {
        match channel {
            ChannelName::User(_) => Some(ChannelOptions {
                presence: false,
                history: HistoryBounds {
                    size: self.history_size,
                    ttl: self.history_ttl,
                },
                allow_client_publish: false,
            }),
            ChannelName::Namespaced { namespace, .. } => {
                let ns = self.namespaces.get(namespace.as_str())?;
                Some(ChannelOptions {
                    presence: ns.presence,
                    history: HistoryBounds {
                        size: ns.history_size,
                        ttl: ns.history_ttl,
                    },
                    allow_client_publish: ns.allow_client_publish,
                })
            }
        }
    }

    /// The namespace of `channel`, if it has a configured one.
    pub fn namespace(&self, channel: &ChannelName) -> Option<&Namespace> {
        match channel {
            ChannelName::User(_) => None,
            ChannelName::Namespaced { namespace, .. } => self.namespaces.get(namespace.as_str()),
        }
    }
}
