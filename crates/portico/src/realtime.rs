//! The realtime hub as the binary runs it: its settings from `[realtime]`, the upstream
//! clients its actions and join checks call (from `[upstreams.*]`), and the internal tokens
//! its publish API accepts.

use std::collections::BTreeMap;
use std::sync::Arc;

use portico_core::clock::SystemClock;
use portico_core::shutdown::Shutdown;
use portico_gateway::identity::token::IdentitySigner;
use portico_gateway::identity::{Authenticator, IdentityKey};
use portico_realtime::settings::{Endpoint, Namespace, RealtimeSettings};
use portico_realtime::upstream::Upstreams;
use portico_realtime::{Hub, HubParts};
use portico_resilience::breaker::CircuitBreaker;
use portico_resilience::client::UpstreamClient;

use crate::config::Config;
use crate::config::schema::UpstreamCheck;

/// The hub's settings in checked form, from the config.
pub fn settings(config: &Config) -> RealtimeSettings {
    let rt = &config.realtime;
    let endpoint = |c: &UpstreamCheck| Endpoint {
        upstream: c.upstream.clone(),
        path: c.path.as_str().to_owned(),
    };
    RealtimeSettings {
        heartbeat_interval: rt.heartbeat_interval,
        max_frame: usize::try_from(rt.max_frame.as_u64()).unwrap_or(usize::MAX),
        history_size: rt.history_size,
        history_ttl: rt.history_ttl,
        send_queue: rt.send_queue,
        max_messages_per_second: rt.max_messages_per_second,
        max_subscriptions: rt.max_subscriptions,
        actions: rt
            .actions
            .iter()
            .map(|(name, a)| (name.clone(), endpoint(a)))
            .collect(),
        namespaces: rt
            .namespaces
            .iter()
            .map(|(name, ns)| {
                let namespace = Namespace {
                    permission: ns.permission.clone(),
                    check: ns.check.as_ref().map(endpoint),
                    presence: ns.presence,
                    history_size: ns.history_size,
                    history_ttl: ns.history_ttl,
                    allow_client_publish: ns.allow_client_publish,
                };
                (name.clone(), namespace)
            })
            .collect(),
    }
}

/// Builds the hub: upstream clients for every upstream an action or a check names (with the
/// gateway's circuit breaker of that upstream when `breakers` has one), the identity key for
/// `X-Portico-Identity`, and the upstreams' internal tokens as credentials
/// of the publish API; `namespaces` are added to the configured ones unless one of that name
/// is configured (the dashboard's live status channel). With `[redis] url` the hub shares offsets, history, presence and
/// fan-out with every other instance on that Redis, and does not start without it.
pub async fn hub(
    config: &Config,
    authenticator: Arc<dyn Authenticator>,
    identity_key: Option<IdentityKey>,
    breakers: &BTreeMap<String, CircuitBreaker>,
    namespaces: Vec<(String, Namespace)>,
    shutdown: Shutdown,
) -> Result<Hub, String> {
    let mut settings = settings(config);
    for (name, namespace) in namespaces {
        if settings.namespaces.contains_key(&name) {
            tracing::warn!(
                "[realtime.namespaces.{name}] is configured: the dashboard's live status uses it as it is"
            );
            continue;
        }
        settings.namespaces.insert(name, namespace);
    }
    let used: std::collections::BTreeSet<&str> = settings
        .actions
        .values()
        .map(|e| e.upstream.as_str())
        .chain(
            settings
                .namespaces
                .values()
                .filter_map(|ns| ns.check.as_ref().map(|c| c.upstream.as_str())),
        )
        .collect();
    let mut clients = BTreeMap::new();
    for name in used {
        let Some(u) = config.upstreams.get(name) else {
            // The config check refuses unknown upstream names; nothing to call.
            continue;
        };
        let mut builder = UpstreamClient::builder(name, u.url.as_str()).policy(u.policy);
        if let Some(token) = &u.internal_token {
            builder = builder.internal_token(u.internal_token_header.as_str(), token.expose());
        }
        if let Some(breaker) = breakers.get(name) {
            builder = builder.breaker(breaker.clone());
        }
        let client = builder
            .build()
            .map_err(|e| format!("realtime: upstream {name}: {e}"))?;
        clients.insert(name.to_owned(), client);
    }
    let clock = SystemClock::shared();
    let signer = identity_key.map(|key| IdentitySigner::new(key, clock.clone()));
    let internal_tokens = config
        .upstreams
        .values()
        .filter_map(|u| {
            let token = u.internal_token.as_ref()?;
            Some((u.internal_token_header.clone(), token.expose().to_owned()))
        })
        .collect();
    let parts = HubParts {
        settings,
        authenticator,
        upstreams: Upstreams::new(clients, signer),
        internal_tokens,
        clock,
        shutdown,
    };
    let hub = match &config.redis.url {
        Some(url) => Hub::with_redis(parts, url.as_str())
            .await
            .map_err(|e| format!("realtime: {e}"))?,
        None => Hub::new(parts),
    };
    hub.spawn_upkeep();
    Ok(hub)
}
