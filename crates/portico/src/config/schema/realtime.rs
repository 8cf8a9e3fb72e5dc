//! `[realtime]`, `[realtime.actions]` and `[realtime.namespaces.*]`.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::time::Duration;

use portico_core::config::ByteSize;

use crate::config::problem::Problems;
use crate::config::reader::{Positive, Section, text};
use crate::config::types::UrlPath;

/// `[realtime]`.
#[derive(Debug, Clone)]
pub struct RealtimeConfig {
    /// `heartbeat_interval` (default `30s`); a connection silent for two intervals is closed.
    pub heartbeat_interval: Duration,
    /// `max_frame` (default `64KiB`): the largest frame accepted (close 1009 beyond).
    pub max_frame: ByteSize,
    /// `history_size` (default `100`): messages kept per channel.
    pub history_size: usize,
    /// `history_ttl` (default `10m`): how long history is kept.
    pub history_ttl: Duration,
    /// `send_queue` (default `1024`): frames queued for one connection before it is cut off
    /// as a slow consumer (close 1013).
    pub send_queue: usize,
    /// `max_messages_per_second` (default `50`): frames one client may send per second.
    pub max_messages_per_second: u32,
    /// `max_subscriptions` (default `128`): channels one connection may join.
    pub max_subscriptions: usize,
    /// `[realtime.actions]`: client action name → the upstream call that handles it.
    pub actions: BTreeMap<String, ActionConfig>,
    /// `[realtime.namespaces.<name>]`: channel namespaces (`session:…` → `session`).
    pub namespaces: BTreeMap<String, NamespaceConfig>,
}

/// An upstream endpoint: `{ upstream = "agent", path = "/api/agent/start" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamCheck {
    /// A name from `[upstreams]`.
    pub upstream: String,
    /// The path to POST to.
    pub path: UrlPath,
}

/// A routed client action (`[realtime.actions] start_agent = { upstream, path }`).
pub type ActionConfig = UpstreamCheck;

/// `[realtime.namespaces.<name>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceConfig {
    /// `permission`: joining needs this permission. With neither this nor `check`, any
    /// authenticated connection may join.
    pub permission: Option<String>,
    /// `check = { upstream, path }`: joining asks this upstream (2xx = allowed).
    pub check: Option<UpstreamCheck>,
    /// `presence` (default `false`): track members and publish `user-joined`/`user-left`.
    pub presence: bool,
    /// `history_size` (default: `realtime.history_size`).
    pub history_size: usize,
    /// `history_ttl` (default: `realtime.history_ttl`).
    pub history_ttl: Duration,
    /// `allow_client_publish` (default `false`): clients may publish, not only upstreams.
    pub allow_client_publish: bool,
}

impl RealtimeConfig {
    pub(crate) fn read(
        mut s: Section<'_>,
        upstreams: &BTreeSet<&str>,
        problems: &mut Problems,
    ) -> Option<Self> {
        let heartbeat_interval = s
            .or(
                "heartbeat_interval",
                Positive(Duration::from_secs(30)),
                problems,
            )
            .0;
        let max_frame = s.or("max_frame", ByteSize(64 * 1024), problems);
        let history_size = s.or("history_size", 100, problems);
        let history_ttl = s.or("history_ttl", Duration::from_secs(600), problems);
        let count = |s: &mut Section<'_>, key, default: u32, problems: &mut Problems| {
            s.or(
                key,
                NonZeroU32::new(default).unwrap_or(NonZeroU32::MIN),
                problems,
            )
            .get()
        };
        let send_queue = count(&mut s, "send_queue", 1024, problems) as usize;
        let max_messages_per_second = count(&mut s, "max_messages_per_second", 50, problems);
        let max_subscriptions = count(&mut s, "max_subscriptions", 128, problems) as usize;

        let actions = s
            .named_sections("actions", problems)
            .into_iter()
            .filter_map(|(name, mut a)| {
                let endpoint = UpstreamCheck::read(&mut a, upstreams, problems);
                a.finish(problems);
                Some((name.to_owned(), endpoint?))
            })
            .collect();

        let namespaces = s
            .named_sections("namespaces", problems)
            .into_iter()
            .filter_map(|(name, mut ns)| {
                if name.contains(':') {
                    problems.at(
                        ns.origin(),
                        ns.path(),
                        "a namespace name cannot contain \":\"",
                    );
                }
                let check = if ns.has("check") {
                    let mut c = ns.section("check", problems);
                    let check = UpstreamCheck::read(&mut c, upstreams, problems);
                    c.finish(problems);
                    Some(check?)
                } else {
                    None
                };
                let namespace = NamespaceConfig {
                    permission: ns.get("permission", problems),
                    check,
                    presence: ns.or("presence", false, problems),
                    history_size: ns.or("history_size", history_size, problems),
                    history_ttl: ns.or("history_ttl", history_ttl, problems),
                    allow_client_publish: ns.or("allow_client_publish", false, problems),
                };
                ns.finish(problems);
                Some((name.to_owned(), namespace))
            })
            .collect();
        s.finish(problems);
        Some(Self {
            heartbeat_interval,
            max_frame,
            history_size,
            history_ttl,
            send_queue,
            max_messages_per_second,
            max_subscriptions,
            actions,
            namespaces,
        })
    }
}

impl UpstreamCheck {
    /// Reads `upstream` (must name a configured upstream) and `path` from a table.
    fn read(
        s: &mut Section<'_>,
        upstreams: &BTreeSet<&str>,
        problems: &mut Problems,
    ) -> Option<Self> {
        let upstream = s.required_with("upstream", problems, |n| known_upstream(n, upstreams));
        let path = s.required::<UrlPath>("path", problems);
        Some(Self {
            upstream: upstream?,
            path: path?,
        })
    }
}

/// The upstream name in `node`, which must be one of `upstreams`.
pub(crate) fn known_upstream(
    node: &crate::config::tree::Node,
    upstreams: &BTreeSet<&str>,
) -> Result<String, String> {
    let name = text(node)?;
    if upstreams.contains(name) {
        return Ok(name.to_owned());
    }
    let known: Vec<&str> = upstreams.iter().copied().collect();
    Err(match crate::config::problem::suggest(name, &known) {
        Some(close) => format!("no upstream named {name:?} (did you mean \"{close}\"?)"),
        None if known.is_empty() => {
            format!("no upstream named {name:?} (no [upstreams] are configured)")
        }
        None => format!(
            "no upstream named {name:?} (configured: {})",
            known.join(", ")
        ),
    })
}
