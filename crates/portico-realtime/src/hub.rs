//! The [`Hub`]: what every connection task and the publish API share — settings, the
//! authenticator, the broker, this process's connections, the upstream clients — and the
//! rules they apply: who may join or publish to a channel, and what a publication looks like.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use http::HeaderName;
use portico_core::clock::SharedClock;
use portico_core::error::{ApiError, ErrorCode};
use portico_core::shutdown::Shutdown;
use portico_gateway::identity::{Authenticator, Identity};
use serde_json::{Map, Value};

use crate::broker::{BrokerError, MemoryBroker, Publish, RedisBroker, SharedBroker};
use crate::channel::ChannelName;
use crate::local::Local;
use crate::protocol::{FrameParts, Position};
use crate::settings::{ChannelOptions, RealtimeSettings};
use crate::upstream::{Upstreams, Verdict};

/// How often the broker's housekeeping runs.
const UPKEEP: Duration = Duration::from_secs(5);

/// What the hub is built from.
pub struct HubParts {
    /// The `[realtime]` settings.
    pub settings: RealtimeSettings,
    /// Checks connect tokens, `refresh_token` and the publish API's service tokens.
    pub authenticator: Arc<dyn Authenticator>,
    /// The upstreams actions and join checks call.
    pub upstreams: Upstreams,
    /// Shared secrets accepted on `/internal/*` instead of a service token: header name and
    /// value (the upstreams' internal tokens).
    pub internal_tokens: Vec<(HeaderName, String)>,
    /// Time for heartbeats, idle detection, token expiry and history ages.
    pub clock: SharedClock,
    /// Connections close with 1001 when this triggers, and are tracked by it.
    pub shutdown: Shutdown,
}

/// The WebSocket hub. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub settings: RealtimeSettings,
    pub authenticator: Arc<dyn Authenticator>,
    pub upstreams: Upstreams,
    pub internal_tokens: Vec<(HeaderName, String)>,
    pub clock: SharedClock,
    pub shutdown: Shutdown,
    pub local: Arc<Local>,
    pub broker: SharedBroker,
}

/// Why a channel may not be joined or published to.
pub(crate) fn refused(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Auth006, message)
}

impl Hub {
    /// A hub on the in-process broker (one process; no Redis).
    pub fn new(parts: HubParts) -> Self {
        let local = Arc::new(Local::default());
        let broker = Arc::new(MemoryBroker::new(local.clone(), parts.clock.clone()));
        Self::with_broker(parts, local, broker)
    }

    /// A hub sharing offsets, history, presence and fan-out with every other hub on the Redis
    /// at `url` (keys under `portico:rt:`). Fails when Redis does not answer: a node
    /// configured for Redis must not serve on its own. Run [`Hub::spawn_upkeep`] too: it
    /// renews this node's presence entries, which other nodes drop after
    /// [`PRESENCE_TTL`](crate::broker::PRESENCE_TTL) without it.
    pub async fn with_redis(parts: HubParts, url: &str) -> Result<Self, BrokerError> {
        Self::with_redis_prefix(parts, url, crate::broker::DEFAULT_KEY_PREFIX).await
    }

    /// [`Hub::with_redis`] with keys under `key_prefix` (hubs form one hub when they share
    /// the Redis and the prefix).
    pub async fn with_redis_prefix(
        parts: HubParts,
        url: &str,
        key_prefix: &str,
    ) -> Result<Self, BrokerError> {
        let local = Arc::new(Local::default());
        let broker = RedisBroker::connect(
            url,
            key_prefix,
            local.clone(),
            parts.clock.clone(),
            parts.shutdown.clone(),
        )
        .await?;
        Ok(Self::with_broker(parts, local, Arc::new(broker)))
    }

    pub(crate) fn with_broker(parts: HubParts, local: Arc<Local>, broker: SharedBroker) -> Self {
        describe_metrics();
        Self {
            inner: Arc::new(Inner {
                settings: parts.settings,
                authenticator: parts.authenticator,
                upstreams: parts.upstreams,
                internal_tokens: parts.internal_tokens,
                clock: parts.clock,
                shutdown: parts.shutdown,
                local,
                broker,
            }),
        }
    }

    /// `GET /ws`, `POST /internal/publish` and `POST /internal/disconnect`.
    pub fn router(&self) -> Router {
        crate::api::router(self.clone())
    }

    /// How many WebSocket connections this process holds.
    pub fn connections(&self) -> usize {
        self.inner.local.connections()
    }

    /// Whether a connection of this process subscribes to `channel` (the dashboard makes its
    /// live status only while one does).
    pub fn has_local_subscribers(&self, channel: &str) -> bool {
        self.inner.local.has_subscribers(channel)
    }

    /// `memory` or `redis`.
    pub fn broker_kind(&self) -> &'static str {
        self.inner.broker.kind()
    }

    /// The `/health` check of the hub, named `realtime` and critical: healthy while its
    /// broker works (with Redis: while Redis answers); without it nothing can be published.
    pub fn health_check(&self) -> Arc<dyn portico_core::health::HealthCheck> {
        Arc::new(BrokerCheck(self.inner.clone()))
    }

    /// Runs the broker's housekeeping every few seconds until shutdown.
    pub fn spawn_upkeep(&self) {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let stop = inner.shutdown.wait();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    () = &mut stop => break,
                    () = inner.clock.sleep(UPKEEP) => inner.broker.upkeep().await,
                }
            }
        });
    }

    /// Publishes `event` with `data` to `channel` as an upstream: checks the channel, assigns
    /// its offset and delivers it everywhere.
    pub async fn publish(
        &self,
        channel: &str,
        event: &str,
        data: &Value,
        metadata: &Map<String, Value>,
        exclude_connection: Option<&str>,
    ) -> Result<Position, ApiError> {
        let name =
            ChannelName::parse(channel).map_err(|e| invalid_field("channel", e.to_string()))?;
        let options = self.inner.options(&name)?;
        let mut metadata = metadata.clone();
        if let ChannelName::User(id) = &name {
            metadata
                .entry("user_id")
                .or_insert_with(|| Value::String(id.clone()));
        }
        self.inner
            .publish(channel, event, data, &metadata, exclude_connection, options)
            .await
    }

    /// Closes every connection of `user_id`, on every node.
    pub async fn disconnect_user(&self, user_id: &str) -> Result<(), ApiError> {
        self.inner
            .broker
            .disconnect_user(user_id, crate::local::close::POLICY)
            .await
            .map_err(unavailable)
    }
}

impl Inner {
    /// The options of `channel`; REQ_001 when its namespace is not configured.
    pub fn options(&self, channel: &ChannelName) -> Result<ChannelOptions, ApiError> {
        self.settings.options(channel).ok_or_else(|| {
            let ns = match channel {
                ChannelName::Namespaced { namespace, .. } => namespace.as_str(),
                ChannelName::User(_) => "user",
            };
            invalid_field(
                "channel",
                format!("no namespace {ns:?} is configured ([realtime.namespaces.{ns}])"),
            )
        })
    }

    /// Whether `identity` (on `connection_id`) may join `channel`: its own personal channel,
    /// or a namespace whose permission it has and whose upstream check (if any) says yes.
    pub async fn may_join(
        &self,
        channel: &ChannelName,
        identity: &Identity,
        connection_id: &str,
    ) -> Result<ChannelOptions, ApiError> {
        let options = self.options(channel)?;
        match channel {
            ChannelName::User(id) if *id == identity.user_id => Ok(options),
            ChannelName::User(_) => Err(refused("only your own user channel can be joined")),
            ChannelName::Namespaced { full, .. } => {
                let Some(ns) = self.settings.namespace(channel) else {
                    return Ok(options);
                };
                if let Some(p) = &ns.permission
                    && !portico_core::permissions::permits(&identity.permissions, p)
                {
                    return Err(
                        refused(format!("joining {full} needs the permission {p:?}"))
                            .with_detail("required", vec![Value::String(p.clone())]),
                    );
                }
                if let Some(check) = &ns.check {
                    match self
                        .upstreams
                        .check(check, identity, connection_id, full)
                        .await?
                    {
                        Verdict::Allowed => {}
                        Verdict::Refused => {
                            return Err(refused(format!(
                                "{} refused joining {full}",
                                check.upstream
                            )));
                        }
                    }
                }
                Ok(options)
            }
        }
    }

    /// Publishes with the channel's options (checks done by the caller).
    pub async fn publish(
        &self,
        channel: &str,
        event: &str,
        data: &Value,
        metadata: &Map<String, Value>,
        exclude: Option<&str>,
        options: ChannelOptions,
    ) -> Result<Position, ApiError> {
        let parts = FrameParts::new(channel, event, data, metadata, self.clock.system_now());
        self.broker
            .publish(Publish {
                channel,
                parts,
                exclude,
                history: options.history,
            })
            .await
            .map_err(unavailable)
    }
}

/// See [`Hub::health_check`].
struct BrokerCheck(Arc<Inner>);

impl portico_core::health::HealthCheck for BrokerCheck {
    fn name(&self) -> &str {
        "realtime"
    }

    fn critical(&self) -> bool {
        true
    }

    fn check(
        &self,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = portico_core::health::CheckResult> + Send + '_>,
    > {
        use portico_core::health::CheckResult;
        Box::pin(async move {
            match self.0.broker.ping().await {
                Ok(()) => CheckResult::healthy(),
                Err(e) => CheckResult::unhealthy(format!("{} broker: {e}", self.0.broker.kind())),
            }
        })
    }
}

/// Names the hub's metrics, so `/metrics` shows them (at zero) before the first connection.
fn describe_metrics() {
    metrics::describe_gauge!("portico_ws_connections", "open WebSocket connections");
    metrics::describe_counter!(
        "portico_ws_messages_total",
        "WebSocket frames received from clients (in) and queued to them (out)"
    );
    metrics::describe_counter!(
        "portico_ws_disconnects_total",
        "WebSocket connections ended, by reason"
    );
    metrics::gauge!("portico_ws_connections").increment(0.0);
    for direction in ["in", "out"] {
        metrics::counter!("portico_ws_messages_total", "direction" => direction).increment(0);
    }
}

/// SYS_002 for a broker failure (logged; its text is not for clients).
pub(crate) fn unavailable(e: crate::broker::BrokerError) -> ApiError {
    tracing::warn!("realtime broker failed: {e}");
    ApiError::new(ErrorCode::Sys002, "the realtime broker is unavailable")
}

/// A REQ_001 (400) naming one field.
pub(crate) fn invalid_field(field: &str, problem: impl Into<String>) -> ApiError {
    ApiError::invalid_fields(
        http::StatusCode::BAD_REQUEST,
        [(field.to_owned(), problem.into())],
    )
}
