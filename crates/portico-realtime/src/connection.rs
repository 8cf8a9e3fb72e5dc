//! One authenticated WebSocket connection: a single task that writes what its queue holds,
//! reads and answers the client's frames, sends heartbeats, and closes the connection when it
//! goes silent, its token expires, it falls behind, or the server shuts down.
//!
//! ```text
//! close codes: 1000 idle (silent for two heartbeat intervals) · 1001 server shutting down
//!              1008 AUTH_* (bad token at connect, or disconnected by an upstream)
//!              1009 frame too large · 1013 slow consumer (send queue full)
//!              4001 AUTH_002 (token expired and not refreshed)
//! ```
//!
//! Replies to the client's own frames are written at once; publications and join/leave
//! events come through the connection's bounded queue, filled by the hub's delivery to local subscribers.
//! A publication whose offset the connection has already passed (recovery sent it, or it was
//! published before the subscription's starting point) is dropped, so every subscriber sees
//! each channel's messages once and in order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt as _;
use portico_core::error::{ApiError, ErrorCode};
use portico_gateway::identity::Identity;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::broker::Member;
use crate::channel::ChannelName;
use crate::hub::{Inner, invalid_field, refused, unavailable};
use crate::local::{Outbound, Peer, close};
use crate::protocol::{self, Action, Position, Request};

/// Frames written per flush at most when the queue is full of them.
const BATCH: usize = 64;
/// Routed actions one connection may have in flight.
const MAX_ACTIONS_IN_FLIGHT: usize = 8;
/// How long writing a close frame may take before the socket is simply dropped.
const CLOSE_WRITE: Duration = Duration::from_secs(1);

/// The close code of a token that expired (DESIGN.md: 4001 `AUTH_002`).
pub const TOKEN_EXPIRED: u16 = 4001;
/// The close code for a connection silent for two heartbeat intervals.
pub const IDLE: u16 = 1000;
/// The close code for a frame over the size limit.
pub const TOO_BIG: u16 = 1009;

/// Serves an authenticated connection until it ends.
pub(crate) async fn run(hub: Arc<Inner>, mut socket: WebSocket, identity: Identity) {
    let _tracked = hub.shutdown.track();
    let id: Arc<str> = Arc::from(portico_core::hex::u128_string(rand::random::<u128>()));
    let (peer, rx) = Peer::new(
        id.clone(),
        Arc::from(identity.user_id.as_str()),
        hub.settings.send_queue,
    );
    hub.local.add(&peer);
    metrics::gauge!("portico_ws_connections").increment(1.0);
    tracing::debug!(connection_id = &*id, user_id = %identity.user_id, "websocket connected");

    let mut conn = Connection {
        last_seen: hub.clock.now(),
        bucket: Bucket::new(hub.settings.max_messages_per_second, hub.clock.now()),
        hub,
        peer,
        identity,
        subscriptions: HashMap::new(),
        actions: JoinSet::new(),
        expiry_changed: false,
    };
    let reason = match Box::pin(conn.start(&mut socket)).await {
        Ok(()) => conn.serve(&mut socket, rx).await,
        Err(end) => end,
    };
    Box::pin(conn.finish()).await;
    metrics::gauge!("portico_ws_connections").decrement(1.0);
    metrics::counter!("portico_ws_disconnects_total", "reason" => reason.label()).increment(1);
    tracing::debug!(
        connection_id = &*id,
        reason = reason.label(),
        "websocket closed"
    );
}

/// Closes a connection refused at connect: 1008 with the error code as the reason (1011
/// `SYS_002` when auth could not be asked).
pub(crate) async fn refuse(mut socket: WebSocket, error: &ApiError) {
    let code = if error.code() == ErrorCode::Sys002 {
        1011
    } else {
        close::POLICY
    };
    metrics::counter!("portico_ws_disconnects_total", "reason" => "refused").increment(1);
    send_close(&mut socket, code, error.code().as_str()).await;
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client closed it or the socket broke.
    Client,
    /// Closed by the hub with this code.
    Closed(u16),
}

impl End {
    fn label(self) -> &'static str {
        match self {
            End::Client => "client",
            End::Closed(close::GOING_AWAY) => "shutdown",
            End::Closed(close::SLOW_CONSUMER) => "slow_consumer",
            End::Closed(close::POLICY) => "disconnected",
            End::Closed(TOO_BIG) => "too_big",
            End::Closed(TOKEN_EXPIRED) => "token_expired",
            End::Closed(IDLE) => "idle",
            End::Closed(_) => "other",
        }
    }
}

/// What woke the connection's task.
enum Event {
    /// Close with this code (killed, or shutting down).
    Stop(u16),
    /// A frame in the queue.
    Queued(Outbound),
    /// A frame (or a read error) from the client.
    Received(Result<Message, axum::Error>),
    /// Time for a heartbeat (and the idle check).
    Heartbeat,
    /// The token's expiry time came.
    Expiry,
}

/// What to do after an event.
enum Step {
    Continue,
    /// The socket failed or the client left.
    Gone,
    /// Close with this code.
    Close(u16),
}

/// The connection's two timers.
struct Timers {
    heartbeat: portico_core::clock::Sleep,
    expiry: portico_core::clock::Sleep,
}

/// The reason sent with a close code.
fn close_reason(code: u16) -> &'static str {
    match code {
        close::GOING_AWAY => "server shutting down",
        close::SLOW_CONSUMER => "slow consumer",
        close::POLICY => "AUTH_007",
        TOO_BIG => "frame too large",
        TOKEN_EXPIRED => "AUTH_002",
        IDLE => "idle timeout",
        _ => "",
    }
}

struct Connection {
    hub: Arc<Inner>,
    peer: Arc<Peer>,
    identity: Identity,
    /// Subscribed channels, with the last offset delivered on each.
    subscriptions: HashMap<Arc<str>, u64>,
    actions: JoinSet<()>,
    last_seen: Instant,
    bucket: Bucket,
    /// Set when `refresh_token` moved the expiry.
    expiry_changed: bool,
}

impl Connection {
    /// Joins the personal channel and sends `connection_established`.
    async fn start(&mut self, socket: &mut WebSocket) -> Result<(), End> {
        let personal = ChannelName::personal(&self.identity.user_id);
        if let Err(e) = self.join(&personal, None).await {
            tracing::warn!(user_id = %self.identity.user_id, "cannot join the personal channel: {}", e.message());
            send_close(socket, 1011, e.code().as_str()).await;
            return Err(End::Closed(1011));
        }
        let now = self.hub.clock.system_now();
        let data = json!({
            "connection_id": &*self.peer.id,
            "user_id": self.identity.user_id,
            "heartbeat_interval": self.hub.settings.heartbeat_interval.as_secs(),
        });
        let mut metadata = protocol::reply_metadata(now, None);
        metadata.insert(
            "user_id".into(),
            Value::String(self.identity.user_id.clone()),
        );
        write(
            socket,
            protocol::frame("connection_established", &data, &metadata),
        )
        .await
        .map_err(|()| End::Client)
    }

    /// Waits for the next event, then handles it while still watching for a kill or the
    /// shutdown: a write blocked on a client that reads nothing (or a slow upstream check)
    /// never keeps the connection from closing.
    async fn serve(&mut self, socket: &mut WebSocket, mut rx: mpsc::Receiver<Outbound>) -> End {
        let hub = self.hub.clone();
        let mut timers = Timers {
            heartbeat: hub.clock.sleep(hub.settings.heartbeat_interval),
            expiry: self.expiry_sleep(),
        };
        let shutdown = hub.shutdown.wait();
        tokio::pin!(shutdown);
        let peer = self.peer.clone();
        let killed = peer.closed();
        tokio::pin!(killed);
        loop {
            let event = tokio::select! {
                biased;
                code = &mut killed => Event::Stop(code),
                () = &mut shutdown => Event::Stop(close::GOING_AWAY),
                out = rx.recv() => match out {
                    Some(out) => Event::Queued(out),
                    None => return End::Client,
                },
                incoming = socket.recv() => match incoming {
                    Some(incoming) => Event::Received(incoming),
                    None => return End::Client,
                },
                () = &mut timers.heartbeat => Event::Heartbeat,
                () = &mut timers.expiry => Event::Expiry,
                Some(_) = self.actions.join_next(), if !self.actions.is_empty() => continue,
            };
            // A finished future must not be polled again: a stop is handled here.
            let step = if let Event::Stop(code) = event {
                Step::Close(code)
            } else {
                tokio::select! {
                biased;
                code = &mut killed => Step::Close(code),
                () = &mut shutdown => Step::Close(close::GOING_AWAY),
                step = self.handle(event, socket, &mut rx, &mut timers) => step,
                }
            };
            match step {
                Step::Continue => {}
                Step::Gone => return End::Client,
                Step::Close(code) => {
                    send_close(socket, code, close_reason(code)).await;
                    return End::Closed(code);
                }
            }
        }
    }

    async fn handle(
        &mut self,
        event: Event,
        socket: &mut WebSocket,
        rx: &mut mpsc::Receiver<Outbound>,
        timers: &mut Timers,
    ) -> Step {
        let hub = self.hub.clone();
        match event {
            Event::Stop(code) => Step::Close(code),
            Event::Queued(out) => match self.write_queued(socket, out, rx).await {
                Ok(()) => Step::Continue,
                Err(()) => Step::Gone,
            },
            Event::Received(Err(e)) if is_too_big(&e) => Step::Close(TOO_BIG),
            Event::Received(Err(_)) => Step::Gone,
            Event::Received(Ok(message)) => {
                if self.receive(socket, message).await.is_err() {
                    return Step::Gone;
                }
                if std::mem::take(&mut self.expiry_changed) {
                    timers.expiry = self.expiry_sleep();
                }
                Step::Continue
            }
            Event::Heartbeat => {
                let interval = hub.settings.heartbeat_interval;
                if hub.clock.now().saturating_duration_since(self.last_seen) >= interval * 2 {
                    return Step::Close(IDLE);
                }
                let frame = protocol::frame(
                    "heartbeat",
                    &json!({}),
                    &protocol::reply_metadata(hub.clock.system_now(), None),
                );
                if write(socket, frame).await.is_err()
                    || socket
                        .send(Message::Ping(bytes::Bytes::new()))
                        .await
                        .is_err()
                {
                    return Step::Gone;
                }
                timers.heartbeat = hub.clock.sleep(interval);
                Step::Continue
            }
            Event::Expiry => {
                let expired = self
                    .identity
                    .expires_at
                    .is_some_and(|at| hub.clock.system_now() >= at);
                if expired {
                    return Step::Close(TOKEN_EXPIRED);
                }
                timers.expiry = self.expiry_sleep();
                Step::Continue
            }
        }
    }

    /// A sleep until the token expires (forever when it does not).
    fn expiry_sleep(&self) -> portico_core::clock::Sleep {
        match self.identity.expires_at {
            Some(at) => {
                let left = at
                    .duration_since(self.hub.clock.system_now())
                    .unwrap_or(Duration::ZERO);
                self.hub.clock.sleep(left)
            }
            None => Box::pin(std::future::pending()),
        }
    }

    /// Writes `first` and whatever else is queued (up to [`BATCH`]) with one flush.
    async fn write_queued(
        &mut self,
        socket: &mut WebSocket,
        first: Outbound,
        rx: &mut mpsc::Receiver<Outbound>,
    ) -> Result<(), ()> {
        let mut next = Some(first);
        let mut taken = 0;
        let mut written = false;
        while let Some(out) = next {
            taken += 1;
            if let Some(frame) = self.admit(out) {
                socket.feed(Message::Text(frame)).await.map_err(|_| ())?;
                written = true;
            }
            next = if taken < BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if written {
            socket.flush().await.map_err(|_| ())?;
        }
        Ok(())
    }

    /// The frame to write for `out`, unless it is a publication already delivered (or of a
    /// channel left since).
    fn admit(&mut self, out: Outbound) -> Option<Utf8Bytes> {
        match out {
            Outbound::Frame(frame) => Some(Arc::unwrap_or_clone(frame)),
            Outbound::Publication(delivery) => {
                let last = self.subscriptions.get_mut(&delivery.channel)?;
                if delivery.offset <= *last {
                    return None;
                }
                *last = delivery.offset;
                Some(delivery.frame.clone())
            }
        }
    }

    /// Handles one frame from the client. `Err` when the socket failed.
    async fn receive(&mut self, socket: &mut WebSocket, message: Message) -> Result<(), ()> {
        let now = self.hub.clock.now();
        self.last_seen = now;
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                let e = ApiError::new(
                    ErrorCode::Req001,
                    "binary frames are not supported; send JSON text",
                );
                return self.error(socket, &e, None).await;
            }
            // Pings are answered by the WebSocket layer; both count as signs of life.
            Message::Ping(_) | Message::Pong(_) => return Ok(()),
            // The WebSocket layer answers the close; the next read ends the connection.
            Message::Close(_) => return Ok(()),
        };
        metrics::counter!("portico_ws_messages_total", "direction" => "in").increment(1);
        if !self.bucket.take(now) {
            let limit = self.hub.settings.max_messages_per_second;
            let e = ApiError::new(
                ErrorCode::Backend003,
                format!("more than {limit} messages per second; this one was dropped"),
            );
            return self.error(socket, &e, None).await;
        }
        let request = match protocol::decode(&text) {
            Ok(request) => request,
            Err(e) => {
                let client_id = e.client_id.clone();
                return self
                    .error(socket, &e.to_api_error(), client_id.as_deref())
                    .await;
            }
        };
        let Request { action, client_id } = request;
        let client_id = client_id.as_deref();
        // The rarer actions run boxed: a connection's task is as large as the largest future
        // it may hold, and an upstream check would otherwise make every idle connection pay
        // for its size.
        let reply = match action {
            Action::Ping => Ok(protocol::frame(
                "heartbeat",
                &json!({}),
                &protocol::reply_metadata(self.hub.clock.system_now(), client_id),
            )),
            Action::Subscribe { channel, since } => {
                Box::pin(self.subscribe(&channel, since.as_ref(), client_id)).await
            }
            Action::Unsubscribe { channel } => {
                Box::pin(self.unsubscribe(&channel, client_id)).await
            }
            Action::Publish {
                channel,
                event,
                payload,
                exclude_self,
            } => Box::pin(self.publish(&channel, &event, &payload, exclude_self, client_id)).await,
            Action::Presence { channel } => Box::pin(self.presence(&channel, client_id)).await,
            Action::RefreshToken { token } => Box::pin(self.refresh(&token, client_id)).await,
            Action::Other { name, data } => {
                self.route(name, data, client_id).map(|()| String::new())
            }
        };
        match reply {
            Ok(frame) if frame.is_empty() => Ok(()),
            Ok(frame) => write(socket, frame).await,
            Err(e) => self.error(socket, &e, client_id).await,
        }
    }

    async fn error(
        &self,
        socket: &mut WebSocket,
        e: &ApiError,
        client_id: Option<&str>,
    ) -> Result<(), ()> {
        write(
            socket,
            protocol::error_frame(e, self.hub.clock.system_now(), client_id),
        )
        .await
    }

    fn metadata(&self, client_id: Option<&str>) -> Map<String, Value> {
        protocol::reply_metadata(self.hub.clock.system_now(), client_id)
    }

    async fn subscribe(
        &mut self,
        channel: &str,
        since: Option<&Position>,
        client_id: Option<&str>,
    ) -> Result<String, ApiError> {
        let name = ChannelName::parse(channel)
            .map_err(|e| invalid_field("data.channel", e.to_string()))?;
        if !self.subscriptions.contains_key(channel)
            && self.subscriptions.len() >= self.hub.settings.max_subscriptions
        {
            return Err(invalid_field(
                "data.channel",
                format!(
                    "at most {} subscriptions per connection",
                    self.hub.settings.max_subscriptions
                ),
            ));
        }
        self.hub
            .may_join(&name, &self.identity, &self.peer.id)
            .await?;
        let (position, recovered, missed) = self.join(channel, since).await?;
        let mut out =
            String::with_capacity(160 + missed.iter().map(|m| m.len() + 1).sum::<usize>());
        out.push_str("{\"type\":\"subscribed\",\"data\":{\"channel\":");
        out.push_str(&Value::String(channel.to_owned()).to_string());
        out.push_str(",\"offset\":");
        out.push_str(&position.offset.to_string());
        out.push_str(",\"epoch\":");
        out.push_str(&Value::String(position.epoch).to_string());
        out.push_str(",\"recovered\":");
        out.push_str(if recovered { "true" } else { "false" });
        out.push_str(",\"missed\":[");
        for (i, frame) in missed.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(frame.as_str());
        }
        out.push_str("]},\"metadata\":");
        out.push_str(&Value::Object(self.metadata(client_id)).to_string());
        out.push('}');
        Ok(out)
    }

    /// Subscribes (checks done), recovers from `since`, and announces the join where the
    /// channel has presence. Returns the position, whether recovery was complete, and the
    /// frames missed.
    async fn join(
        &mut self,
        channel: &str,
        since: Option<&Position>,
    ) -> Result<(Position, bool, Vec<Utf8Bytes>), ApiError> {
        let name = ChannelName::parse(channel)
            .map_err(|e| invalid_field("data.channel", e.to_string()))?;
        let options = self.hub.options(&name)?;
        let first_time = !self.subscriptions.contains_key(channel);
        // Registered before reading the position, so nothing published in between is lost;
        // what arrives twice is dropped by offset.
        let shared = self.hub.local.subscribe(channel, &self.peer);
        let recovery = match self
            .hub
            .broker
            .recover(channel, since, options.history)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                if first_time {
                    self.hub.local.unsubscribe(channel, &self.peer.id);
                }
                return Err(unavailable(e));
            }
        };
        let last = self.subscriptions.entry(shared).or_insert(0);
        *last = (*last).max(recovery.position.offset);
        if options.presence && first_time {
            let member = Member {
                user_id: self.identity.user_id.clone(),
                connection_id: self.peer.id.to_string(),
                joined_at: protocol::timestamp(self.hub.clock.system_now()),
            };
            if let Err(e) = self.hub.broker.join(channel, member).await {
                tracing::warn!(channel, "presence join failed: {e}");
            }
            self.announce("user-joined", channel).await;
        }
        Ok((recovery.position, recovery.recovered, recovery.missed))
    }

    /// Publishes a `user-joined`/`user-left` event to the channel's other subscribers.
    async fn announce(&self, event: &str, channel: &str) {
        let data = json!({
            "channel": channel,
            "user_id": self.identity.user_id,
            "connection_id": &*self.peer.id,
        });
        let mut metadata = protocol::reply_metadata(self.hub.clock.system_now(), None);
        metadata.insert("channel".into(), Value::String(channel.to_owned()));
        metadata.insert(
            "user_id".into(),
            Value::String(self.identity.user_id.clone()),
        );
        let frame = protocol::frame(event, &data, &metadata);
        if let Err(e) = self
            .hub
            .broker
            .broadcast(channel, frame, Some(&self.peer.id))
            .await
        {
            tracing::warn!(channel, "cannot announce {event}: {e}");
        }
    }

    async fn unsubscribe(
        &mut self,
        channel: &str,
        client_id: Option<&str>,
    ) -> Result<String, ApiError> {
        if channel == ChannelName::personal(&self.identity.user_id) {
            return Err(invalid_field(
                "data.channel",
                "the personal channel cannot be left",
            ));
        }
        self.leave(channel).await;
        Ok(protocol::frame(
            "unsubscribed",
            &json!({ "channel": channel }),
            &self.metadata(client_id),
        ))
    }

    /// Leaves `channel` (announcing it where the channel has presence).
    async fn leave(&mut self, channel: &str) {
        if self.subscriptions.remove(channel).is_none() {
            return;
        }
        self.hub.local.unsubscribe(channel, &self.peer.id);
        let presence = ChannelName::parse(channel)
            .ok()
            .and_then(|name| self.hub.settings.options(&name))
            .is_some_and(|o| o.presence);
        if presence {
            if let Err(e) = self.hub.broker.leave(channel, &self.peer.id).await {
                tracing::warn!(channel, "presence leave failed: {e}");
            }
            self.announce("user-left", channel).await;
        }
    }

    async fn publish(
        &mut self,
        channel: &str,
        event: &str,
        payload: &Value,
        exclude_self: bool,
        client_id: Option<&str>,
    ) -> Result<String, ApiError> {
        let name = ChannelName::parse(channel)
            .map_err(|e| invalid_field("data.channel", e.to_string()))?;
        let options = self.hub.options(&name)?;
        if !options.allow_client_publish {
            return Err(refused(format!("clients may not publish to {channel}")));
        }
        let ns = self.hub.settings.namespace(&name);
        if let Some(p) = ns.and_then(|ns| ns.permission.as_ref())
            && !portico_core::permissions::permits(&self.identity.permissions, p)
        {
            return Err(refused(format!(
                "publishing to {channel} needs the permission {p:?}"
            )));
        }
        // An upstream check is asked on joining: only members may publish.
        if ns.is_some_and(|ns| ns.check.is_some()) && !self.subscriptions.contains_key(channel) {
            return Err(refused(format!(
                "subscribe to {channel} before publishing to it"
            )));
        }
        let mut metadata = Map::new();
        metadata.insert(
            "user_id".into(),
            Value::String(self.identity.user_id.clone()),
        );
        if let Some(id) = client_id {
            metadata.insert("client_id".into(), Value::String(id.to_owned()));
        }
        let exclude = exclude_self.then_some(&*self.peer.id);
        let position = self
            .hub
            .publish(channel, event, payload, &metadata, exclude, options)
            .await?;
        Ok(protocol::frame(
            "published",
            &json!({ "channel": channel, "offset": position.offset, "epoch": position.epoch }),
            &self.metadata(client_id),
        ))
    }

    async fn presence(&self, channel: &str, client_id: Option<&str>) -> Result<String, ApiError> {
        let name = ChannelName::parse(channel)
            .map_err(|e| invalid_field("data.channel", e.to_string()))?;
        if !self.hub.options(&name)?.presence {
            return Err(invalid_field(
                "data.channel",
                format!("{channel} has no presence"),
            ));
        }
        if !self.subscriptions.contains_key(channel) {
            return Err(refused(format!(
                "subscribe to {channel} to see who is there"
            )));
        }
        let members = self
            .hub
            .broker
            .members(channel)
            .await
            .map_err(unavailable)?;
        Ok(protocol::frame(
            "presence",
            &json!({ "channel": channel, "members": members }),
            &self.metadata(client_id),
        ))
    }

    async fn refresh(&mut self, token: &str, client_id: Option<&str>) -> Result<String, ApiError> {
        let identity = self.hub.authenticator.authenticate(token).await?;
        if identity.user_id != self.identity.user_id {
            return Err(ApiError::new(
                ErrorCode::Auth001,
                "the new token belongs to another user",
            ));
        }
        let expires_at = identity.expires_at.map(protocol::timestamp);
        self.identity = identity;
        self.expiry_changed = true;
        Ok(protocol::frame(
            "token_refreshed",
            &json!({ "expires_at": expires_at }),
            &self.metadata(client_id),
        ))
    }

    /// Starts forwarding a configured action; its answer comes through the queue.
    fn route(
        &mut self,
        name: String,
        data: Value,
        client_id: Option<&str>,
    ) -> Result<(), ApiError> {
        let Some(endpoint) = self.hub.settings.actions.get(&name).cloned() else {
            return Err(invalid_field("action", format!("unknown action {name:?}")));
        };
        if self.actions.len() >= MAX_ACTIONS_IN_FLIGHT {
            return Err(ApiError::new(
                ErrorCode::Backend003,
                format!("at most {MAX_ACTIONS_IN_FLIGHT} actions in flight per connection"),
            ));
        }
        let hub = self.hub.clone();
        let peer = self.peer.clone();
        let identity = self.identity.clone();
        let client_id = client_id.map(str::to_owned);
        self.actions.spawn(async move {
            let result = hub
                .upstreams
                .action(&endpoint, &identity, &peer.id, &data)
                .await;
            let now = hub.clock.system_now();
            let frame = match result {
                Ok(answer) => {
                    let mut metadata = protocol::reply_metadata(now, client_id.as_deref());
                    metadata.insert("action".into(), Value::String(name));
                    protocol::frame("action_result", &answer, &metadata)
                }
                Err(e) => protocol::error_frame(&e, now, client_id.as_deref()),
            };
            peer.send(Outbound::Frame(Arc::new(Utf8Bytes::from(frame))));
        });
        Ok(())
    }

    /// Leaves every channel and forgets the connection.
    async fn finish(&mut self) {
        self.actions.abort_all();
        let channels: Vec<Arc<str>> = self.subscriptions.keys().cloned().collect();
        for channel in &channels {
            self.leave(channel).await;
        }
        self.hub.local.remove(&self.peer, channels);
    }
}

/// Writes one text frame.
async fn write(socket: &mut WebSocket, frame: String) -> Result<(), ()> {
    socket
        .send(Message::Text(Utf8Bytes::from(frame)))
        .await
        .map_err(|_| ())
}

/// Sends a close frame, giving up after [`CLOSE_WRITE`] (a client that reads nothing would
/// otherwise hold the task forever).
async fn send_close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.to_owned()),
    }));
    let _ = tokio::time::timeout(CLOSE_WRITE, socket.send(frame)).await;
}

/// Whether a read failed because the message was over the size limit.
fn is_too_big(e: &axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error;
    use tokio_tungstenite::tungstenite::error::CapacityError;
    let source = std::error::Error::source(e);
    matches!(
        source.and_then(|s| s.downcast_ref::<Error>()),
        Some(Error::Capacity(
            CapacityError::MessageTooLong { .. } | CapacityError::TooManyHeaders
        ))
    )
}

/// The per-connection message rate limit: a token bucket of `rate` tokens refilled at
/// `rate` per second.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate.max(1));
        Self {
            rate,
            tokens: rate,
            at: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_the_rate_and_refills() {
        let t0 = Instant::now();
        let mut b = Bucket::new(3, t0);
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        assert!(b.take(t0 + Duration::from_millis(400)));
        assert!(!b.take(t0 + Duration::from_millis(400)));
    }
}
