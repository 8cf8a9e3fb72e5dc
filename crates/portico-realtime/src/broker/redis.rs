//! The shared broker: offsets, history and presence in Redis, fan-out over Redis pub/sub, so
//! several hub processes on one Redis form one hub.
//!
//! # Keys (under the prefix, `portico:rt:` by default)
//! - `meta:<channel>`: a hash `{epoch, offset}`. Created with a random epoch by the first
//!   publication or subscription; expires `max(history ttl, 10 min)` after the last
//!   publication, and is kept alive while a node has subscribers (see [`Broker::upkeep`]).
//!   When it is gone a new epoch starts, and clients holding old positions get
//!   `recovered: false`.
//! - `hist:<channel>`: a list of `"<offset> <unix ms> <exclude length> <exclude><frame>"`
//!   (`exclude`: the connection not to deliver to), newest last, trimmed to the history size
//!   and expiring after the history ttl (never outliving `meta:`).
//! - `presence:<channel>`: a hash connection id → `"<expires unix ms> <member JSON>"`.
//! - `bus`: the one pub/sub channel every node listens to.
//!
//! Times kept in Redis are Redis's own (`TIME`), so nodes whose clocks differ agree on ages.
//!
//! # Publishing
//! One Lua script does all of a publication: reads (or creates) the epoch, increments the
//! offset, puts the offset into the frame, appends it to the history, trims, sets expiries and
//! `PUBLISH`es it on the bus. Redis runs scripts one at a time, so the bus carries a
//! channel's publications in offset order, and every node — the publishing one too, which
//! delivers only what comes back from the bus — hands them to its subscribers in that order.
//!
//! # One bus channel
//! Every node subscribes to the single `bus` channel and drops what none of its connections
//! subscribe to. Subscribing per channel would spare nodes the traffic of channels they do not
//! serve, but a join would then wait for a Redis `SUBSCRIBE` round trip on the pub/sub
//! connection before reading the position (or risk losing what is published in between), and
//! a lost pub/sub connection would have to replay every subscription. One channel keeps
//! joining at one round trip and reconnection trivial; the cost is that each node receives
//! every publication, which is what a hub whose channels have subscribers on most nodes
//! receives anyway.
//!
//! Bus messages are `<kind><number> <exclude length> <channel length> <exclude><channel><frame>`
//! in bytes: kind `p` (publication; number = offset), `b` (join/leave event; number 0) or
//! `d` (disconnect; number = close code, "channel" = the user id, no frame).
//!
//! # Presence
//! Each member is stored with an expiry ([`PRESENCE_TTL`]); the node holding the connection
//! rewrites its members every upkeep, readers skip (and delete) expired ones, so the members
//! of a node that died disappear within the ttl. Leaving deletes at once.
//!
//! # Failures
//! Every call is bounded by [`CALL_TIMEOUT`] and a failure is [`BrokerError::Redis`] (the
//! hub answers SYS_002). The pub/sub connection is owned by a task that reconnects with
//! backoff (logging the loss and the return once each) until shutdown. Once subscribed
//! again it hands every locally subscribed channel's subscribers what was published while it
//! was away, from history and in order (connections drop offsets they already have). What
//! history no longer holds is skipped and logged: those subscribers see a gap in the offsets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use futures_util::StreamExt;
use portico_core::clock::SharedClock;
use portico_core::shutdown::Shutdown;
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{BoxFuture, Broker, BrokerError, Member, Publish};
use crate::history::{Recovery, new_epoch};
use crate::local::{Local, lock};
use crate::protocol::Position;
use crate::settings::HistoryBounds;

/// The key prefix when none is configured.
pub const DEFAULT_KEY_PREFIX: &str = "portico:rt:";

/// The longest any one Redis call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a member stays listed without its node refreshing it.
pub const PRESENCE_TTL: Duration = Duration::from_secs(30);

/// How long a channel's epoch and offset outlive its last publication when its history is
/// shorter (as the memory broker's idle streams).
const IDLE_STREAM: Duration = Duration::from_secs(600);

/// How often the pub/sub connection is pinged: a connection that died without closing is
/// noticed within this (plus [`CALL_TIMEOUT`]).
const BUS_PING: Duration = Duration::from_secs(10);

/// Reconnection backoff of the pub/sub connection.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The start of the scripts that read a channel's position (`KEYS[1]` its meta hash,
/// `KEYS[2]` its history, `ARGV[1]` a new epoch): `epoch` is the channel's, made now (with
/// offset 0 and the history dropped) when the channel has none.
macro_rules! epoch_of_meta {
    () => {
        r"
if redis.replicate_commands then redis.replicate_commands() end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0)
end
"
    };
}

/// `KEYS`: meta, history. `ARGV`: new epoch, frame head, frame tail, history size, history
/// ttl (ms), meta ttl (ms), bus channel, excluded connection, channel.
/// Returns `{offset, epoch}`.
const PUBLISH: &str = concat!(
    epoch_of_meta!(),
    r"
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
local o = string.format('%d', offset)
local frame = ARGV[2] .. o .. ARGV[3]
local size = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
if size > 0 and ttl > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('RPUSH', KEYS[2],
    o .. ' ' .. string.format('%d', now) .. ' ' .. #ARGV[8] .. ' ' .. ARGV[8] .. frame)
  redis.call('LTRIM', KEYS[2], -size, -1)
  redis.call('PEXPIRE', KEYS[2], ttl)
else
  redis.call('DEL', KEYS[2])
end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[6]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
end
redis.call('PUBLISH', ARGV[7],
  'p' .. o .. ' ' .. #ARGV[8] .. ' ' .. #ARGV[9] .. ' ' .. ARGV[8] .. ARGV[9] .. frame)
return {offset, epoch}
"
);

/// `KEYS`: meta, history. `ARGV`: new epoch, meta ttl (ms), since offset (-1: none), since
/// epoch, history size, history ttl (ms).
/// Returns `{epoch, offset, frames after since…}` (frames only when the epochs match; each
/// kept frame within the bounds).
const RECOVER: &str = concat!(
    epoch_of_meta!(),
    r"
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local offset = tonumber(redis.call('HGET', KEYS[1], 'offset')) or 0
local out = {epoch, string.format('%d', offset)}
local since = tonumber(ARGV[3])
local size = tonumber(ARGV[5])
local ttl = tonumber(ARGV[6])
if since < 0 or ARGV[4] ~= epoch or since >= offset or size <= 0 or ttl <= 0 then
  return out
end
local t = redis.call('TIME')
local cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - ttl
for _, e in ipairs(redis.call('LRANGE', KEYS[2], -size, -1)) do
  local o, at, n, rest = string.match(e, '^(%d+) (%d+) (%d+) ()')
  if o and tonumber(o) > since and tonumber(at) >= cutoff then
    out[#out + 1] = string.sub(e, rest + tonumber(n))
  end
end
return out
"
);

/// `KEYS`: meta. `ARGV`: meta ttl (ms). Keeps a subscribed channel's epoch alive.
const KEEP: &str = r"
local ttl = redis.call('PTTL', KEYS[1])
if ttl >= 0 and ttl < tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return ttl
";

/// `KEYS`: meta, history. `ARGV`: an offset. Returns `{offset now, offset, exclude, frame,
/// offset, exclude, frame…}` with the kept publications after the given offset: what a node
/// missed while its bus was down.
const FETCH: &str = r"
local offset = redis.call('HGET', KEYS[1], 'offset')
if not offset then return {'0'} end
local out = {offset}
local after = tonumber(ARGV[1])
for _, e in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  local o, n, rest = string.match(e, '^(%d+) %d+ (%d+) ()')
  if o and tonumber(o) > after then
    n = tonumber(n)
    out[#out + 1] = o
    out[#out + 1] = string.sub(e, rest, rest + n - 1)
    out[#out + 1] = string.sub(e, rest + n)
  end
end
return out
";

/// `KEYS`: presence. `ARGV`: connection id, member JSON, ttl (ms).
const JOIN: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', now + ttl) .. ' ' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return 1
";

/// `KEYS`: presence. Returns the members' JSON, deleting the expired ones.
const MEMBERS: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local expires, rest = string.match(all[i + 1], '^(%d+) ()')
  if expires and tonumber(expires) >= now then
    out[#out + 1] = string.sub(all[i + 1], rest)
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return out
";

/// Offsets, history, fan-out and presence in Redis.
pub struct RedisBroker {
    manager: ConnectionManager,
    prefix: String,
    bus: String,
    local: Arc<Local>,
    scripts: Scripts,
    /// This node's members, by channel and connection: refreshed every upkeep.
    joined: Mutex<HashMap<String, HashMap<String, Member>>>,
    /// Channels subscribed here: their epochs are kept alive, and what the bus delivered
    /// of them is known (shared with the bus task).
    streams: Streams,
    /// Dropped with the broker: the bus task then ends (as it does on shutdown).
    _bus_stop: tokio::sync::oneshot::Sender<()>,
}

/// A channel subscribed on this node.
#[derive(Debug, Clone, Copy)]
struct Tracked {
    bounds: HistoryBounds,
    /// The highest offset this node has handed to its subscribers (or they started from).
    last: u64,
}

type Streams = Arc<Mutex<HashMap<String, Tracked>>>;

/// What the bus task needs to hand this node's subscribers what it missed while the bus
/// was down.
struct Catchup {
    manager: ConnectionManager,
    fetch: Script,
    prefix: String,
    streams: Streams,
}

struct Scripts {
    publish: Script,
    recover: Script,
    keep: Script,
    join: Script,
    members: Script,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// A Redis error as the broker reports it (never the URL: it may hold a password).
fn failed(what: &str, e: &redis::RedisError) -> BrokerError {
    BrokerError::Redis(format!("{what}: {e}"))
}

/// Runs `call` within [`CALL_TIMEOUT`].
async fn bounded<T>(
    what: &str,
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, BrokerError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Err(_) => Err(BrokerError::Redis(format!(
            "{what}: no answer within {CALL_TIMEOUT:?}"
        ))),
        Ok(Err(e)) => Err(failed(what, &e)),
        Ok(Ok(v)) => Ok(v),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl RedisBroker {
    /// Connects to the Redis at `url` (keys under `key_prefix`), subscribes to the bus and
    /// starts the task delivering what it carries to `local` until `shutdown`. Fails when
    /// Redis does not answer within [`CALL_TIMEOUT`]: a hub configured for Redis does not
    /// start without it.
    pub(crate) async fn connect(
        url: &str,
        key_prefix: &str,
        local: Arc<Local>,
        clock: SharedClock,
        shutdown: Shutdown,
    ) -> Result<Self, BrokerError> {
        let client = redis::Client::open(url)
            .map_err(|e| BrokerError::Redis(format!("invalid redis url ({:?})", e.kind())))?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_max_delay(BACKOFF_MAX)
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT));
        let mut manager = bounded(
            "cannot connect to redis",
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await?;
        bounded(
            "redis does not answer PING",
            redis::cmd("PING").query_async::<()>(&mut manager),
        )
        .await?;
        let bus = format!("{key_prefix}bus");
        // Subscribed before returning, so this node's first publication already comes back.
        let pubsub = subscribe(&client, &bus).await?;
        let streams = Streams::default();
        let catchup = Catchup {
            manager: manager.clone(),
            fetch: Script::new(FETCH),
            prefix: key_prefix.to_owned(),
            streams: streams.clone(),
        };
        let (bus_stop, dropped) = tokio::sync::oneshot::channel();
        let stop = async move {
            tokio::select! {
                () = shutdown.wait() => {}
                _ = dropped => {}
            }
        };
        tokio::spawn(run_bus(
            client,
            bus.clone(),
            pubsub,
            (local.clone(), catchup),
            clock,
            stop,
        ));
        Ok(Self {
            manager,
            prefix: key_prefix.to_owned(),
            bus,
            local,
            scripts: Scripts {
                publish: Script::new(PUBLISH),
                recover: Script::new(RECOVER),
                keep: Script::new(KEEP),
                join: Script::new(JOIN),
                members: Script::new(MEMBERS),
            },
            joined: Mutex::default(),
            streams,
            _bus_stop: bus_stop,
        })
    }

    fn key(&self, kind: &str, channel: &str) -> String {
        key(&self.prefix, kind, channel)
    }

    async fn send_bus(&self, message: Vec<u8>) -> Result<(), BrokerError> {
        let mut c = self.manager.clone();
        bounded(
            "redis PUBLISH failed",
            redis::cmd("PUBLISH")
                .arg(&self.bus)
                .arg(message)
                .query_async::<()>(&mut c),
        )
        .await
    }

    async fn write_member(&self, channel: &str, member: &Member) -> Result<(), BrokerError> {
        let json = serde_json::to_string(member)
            .map_err(|e| BrokerError::Redis(format!("member not serializable: {e}")))?;
        let mut c = self.manager.clone();
        bounded(
            "redis presence join failed",
            self.scripts
                .join
                .key(self.key("presence", channel))
                .arg(&member.connection_id)
                .arg(json)
                .arg(millis(PRESENCE_TTL))
                .invoke_async::<()>(&mut c),
        )
        .await
    }
}

/// The key of `channel`'s `kind` (`meta`, `hist`, `presence`).
fn key(prefix: &str, kind: &str, channel: &str) -> String {
    let mut key = String::with_capacity(prefix.len() + kind.len() + 1 + channel.len());
    key.push_str(prefix);
    key.push_str(kind);
    key.push(':');
    key.push_str(channel);
    key
}

/// A bus message: `<kind><number> <exclude len> <channel len> <exclude><channel><frame>`.
fn bus_message(kind: u8, number: u64, exclude: &str, channel: &str, frame: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(32 + exclude.len() + channel.len() + frame.len());
    m.push(kind);
    m.extend_from_slice(format!("{number} {} {} ", exclude.len(), channel.len()).as_bytes());
    m.extend_from_slice(exclude.as_bytes());
    m.extend_from_slice(channel.as_bytes());
    m.extend_from_slice(frame.as_bytes());
    m
}

/// A decoded bus message.
#[derive(Debug, PartialEq, Eq)]
struct BusMessage<'a> {
    kind: u8,
    number: u64,
    exclude: Option<&'a str>,
    channel: &'a str,
    frame: &'a str,
}

fn parse_bus(m: &[u8]) -> Option<BusMessage<'_>> {
    let (&kind, rest) = m.split_first()?;
    let mut fields = rest.splitn(4, |&b| b == b' ');
    let mut number = || -> Option<u64> { std::str::from_utf8(fields.next()?).ok()?.parse().ok() };
    let n = number()?;
    let exclude_len = usize::try_from(number()?).ok()?;
    let channel_len = usize::try_from(number()?).ok()?;
    let body = fields.next()?;
    let exclude = body.get(..exclude_len)?;
    let channel = body.get(exclude_len..exclude_len.checked_add(channel_len)?)?;
    let frame = body.get(exclude_len + channel_len..)?;
    Some(BusMessage {
        kind,
        number: n,
        exclude: (!exclude.is_empty())
            .then(|| std::str::from_utf8(exclude).ok())
            .flatten(),
        channel: std::str::from_utf8(channel).ok()?,
        frame: std::str::from_utf8(frame).ok()?,
    })
}

/// Hands one bus message to this node's connections.
fn dispatch(local: &Local, streams: &Streams, payload: &[u8]) {
    let Some(m) = parse_bus(payload) else {
        tracing::warn!(
            len = payload.len(),
            "ignoring a malformed realtime bus message"
        );
        return;
    };
    match m.kind {
        b'p' => {
            if local.has_subscribers(m.channel) {
                let frame = Utf8Bytes::from(m.frame.to_owned());
                local.deliver(m.channel, m.number, &frame, m.exclude);
                if let Some(t) = lock(streams).get_mut(m.channel) {
                    t.last = t.last.max(m.number);
                }
            }
        }
        b'b' => {
            if local.has_subscribers(m.channel) {
                let frame = Utf8Bytes::from(m.frame.to_owned());
                local.deliver_frame(m.channel, &frame, m.exclude);
            }
        }
        b'd' => {
            let code = u16::try_from(m.number).unwrap_or(crate::local::close::POLICY);
            local.disconnect_user(m.channel, code);
        }
        other => tracing::warn!(
            kind = other,
            "ignoring a realtime bus message of unknown kind"
        ),
    }
}

async fn subscribe(client: &redis::Client, bus: &str) -> Result<redis::aio::PubSub, BrokerError> {
    let call = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(bus).await?;
        Ok(pubsub)
    };
    bounded("cannot subscribe to the redis bus", call).await
}

/// After the bus was lost: hands each locally subscribed channel's publications after the
/// last one delivered here to its subscribers, from history, in order (each connection drops
/// what it has already seen). What history no longer holds is lost for them, and logged.
/// `Err` when Redis failed: the bus is then treated as still lost, and the catch-up is tried
/// again (from where it got to) with the next subscription.
async fn catch_up(local: &Local, c: &Catchup) -> Result<(), BrokerError> {
    let channels: Vec<(String, u64)> = lock(&c.streams)
        .iter()
        .filter(|(channel, _)| local.has_subscribers(channel))
        .map(|(channel, t)| (channel.clone(), t.last))
        .collect();
    for (channel, last) in channels {
        let mut manager = c.manager.clone();
        let reply = bounded(
            "redis catch-up failed",
            c.fetch
                .key(key(&c.prefix, "meta", &channel))
                .key(key(&c.prefix, "hist", &channel))
                .arg(last)
                .invoke_async::<Vec<String>>(&mut manager),
        )
        .await;
        let mut reply = reply?.into_iter();
        let now: u64 = reply.next().and_then(|o| o.parse().ok()).unwrap_or(0);
        let mut delivered = 0u64;
        let mut top = last;
        while let (Some(offset), Some(exclude), Some(frame)) =
            (reply.next(), reply.next(), reply.next())
        {
            let Ok(offset) = offset.parse::<u64>() else {
                continue;
            };
            let exclude = (!exclude.is_empty()).then_some(exclude.as_str());
            local.deliver(&channel, offset, &Utf8Bytes::from(frame), exclude);
            delivered += 1;
            top = top.max(offset);
        }
        let missing = now.saturating_sub(last).saturating_sub(delivered);
        if missing > 0 {
            tracing::warn!(
                channel,
                missing,
                "publications made while the realtime bus was down are no longer in history; \
                 this node's subscribers skip them"
            );
        }
        if let Some(t) = lock(&c.streams).get_mut(&channel) {
            t.last = t.last.max(top);
        }
    }
    Ok(())
}

/// The pub/sub task: delivers bus messages until `stop` (shutdown, or the broker dropped);
/// reconnects with backoff, then catches up on what it missed.
async fn run_bus(
    client: redis::Client,
    bus: String,
    pubsub: redis::aio::PubSub,
    (local, catchup): (Arc<Local>, Catchup),
    clock: SharedClock,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut pubsub = Some(pubsub);
    let mut backoff = BACKOFF_MIN;
    let mut lost = false;
    loop {
        let connection = match pubsub.take() {
            Some(p) => Ok(p),
            None => subscribe(&client, &bus).await,
        };
        match connection {
            Ok(p) => 'connected: {
                if lost {
                    // Subscribed first: what is published from now on is buffered in the
                    // stream, and connections drop what the catch-up already gave them.
                    if let Err(e) = catch_up(&local, &catchup).await {
                        tracing::debug!("realtime bus catch-up failed, retrying: {e}");
                        break 'connected;
                    }
                    tracing::info!("redis is back: realtime bus subscribed again");
                }
                backoff = BACKOFF_MIN;
                let (mut sink, mut messages) = p.split();
                let mut ping = clock.sleep(BUS_PING);
                let ended = loop {
                    tokio::select! {
                        () = &mut stop => return,
                        m = messages.next() => match m {
                            Some(m) => dispatch(&local, &catchup.streams, m.get_payload_bytes()),
                            None => break "connection closed".to_owned(),
                        },
                        () = &mut ping => {
                            let pong = tokio::time::timeout(CALL_TIMEOUT, sink.ping::<()>()).await;
                            match pong {
                                Ok(Ok(())) => ping = clock.sleep(BUS_PING),
                                Ok(Err(e)) => break e.to_string(),
                                Err(_) => break format!("no PING answer within {CALL_TIMEOUT:?}"),
                            }
                        }
                    }
                };
                tracing::warn!(
                    error = %ended,
                    "redis unreachable: the realtime bus is lost; other nodes' publications \
                     do not reach this node's subscribers until it is back"
                );
                lost = true;
            }
            Err(e) => {
                if !lost {
                    tracing::warn!(error = %e, "redis unreachable: the realtime bus is lost");
                    lost = true;
                }
            }
        }
        tokio::select! {
            () = &mut stop => return,
            () = clock.sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

impl Broker for RedisBroker {
    fn publish<'a>(&'a self, p: Publish<'a>) -> BoxFuture<'a, Result<Position, BrokerError>> {
        Box::pin(async move {
            let mut c = self.manager.clone();
            let meta_ttl = p.history.ttl.max(IDLE_STREAM);
            let (offset, epoch) = bounded(
                "redis publish failed",
                self.scripts
                    .publish
                    .key(self.key("meta", p.channel))
                    .key(self.key("hist", p.channel))
                    .arg(new_epoch())
                    .arg(&p.parts.head)
                    .arg(&p.parts.tail)
                    .arg(p.history.size)
                    .arg(millis(p.history.ttl))
                    .arg(millis(meta_ttl))
                    .arg(&self.bus)
                    .arg(p.exclude.unwrap_or(""))
                    .arg(p.channel)
                    .invoke_async::<(u64, String)>(&mut c),
            )
            .await?;
            Ok(Position { offset, epoch })
        })
    }

    fn broadcast<'a>(
        &'a self,
        channel: &'a str,
        frame: String,
        exclude: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            self.send_bus(bus_message(b'b', 0, exclude.unwrap_or(""), channel, &frame))
                .await
        })
    }

    fn recover<'a>(
        &'a self,
        channel: &'a str,
        since: Option<&'a Position>,
        history: HistoryBounds,
    ) -> BoxFuture<'a, Result<Recovery, BrokerError>> {
        Box::pin(async move {
            lock(&self.streams)
                .entry(channel.to_owned())
                .and_modify(|t| t.bounds = history)
                .or_insert(Tracked {
                    bounds: history,
                    last: 0,
                });
            let mut c = self.manager.clone();
            let since_offset = since.map_or(-1, |s| i128::from(s.offset));
            let reply = bounded(
                "redis recover failed",
                self.scripts
                    .recover
                    .key(self.key("meta", channel))
                    .key(self.key("hist", channel))
                    .arg(new_epoch())
                    .arg(millis(history.ttl.max(IDLE_STREAM)))
                    .arg(since_offset.to_string())
                    .arg(since.map_or("", |s| s.epoch.as_str()))
                    .arg(history.size)
                    .arg(millis(history.ttl))
                    .invoke_async::<Vec<String>>(&mut c),
            )
            .await?;
            let mut reply = reply.into_iter();
            let (Some(epoch), Some(offset)) = (reply.next(), reply.next()) else {
                return Err(BrokerError::Redis("unexpected recover reply".into()));
            };
            let offset: u64 = offset
                .parse()
                .map_err(|_| BrokerError::Redis(format!("unexpected offset {offset:?}")))?;
            let missed: Vec<Utf8Bytes> = reply.map(Utf8Bytes::from).collect();
            if let Some(t) = lock(&self.streams).get_mut(channel) {
                t.last = t.last.max(offset);
            }
            let position = Position { offset, epoch };
            // Complete when every offset in (since, now] came back (the script returns
            // frames only for a matching epoch and a `since` not past the end).
            let recovered = since.is_some_and(|s| {
                s.epoch == position.epoch
                    && s.offset <= offset
                    && missed.len() as u64 == offset - s.offset
            });
            Ok(Recovery {
                position,
                recovered,
                missed: if recovered { missed } else { Vec::new() },
            })
        })
    }

    fn join<'a>(
        &'a self,
        channel: &'a str,
        member: Member,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            lock(&self.joined)
                .entry(channel.to_owned())
                .or_default()
                .insert(member.connection_id.clone(), member.clone());
            self.write_member(channel, &member).await
        })
    }

    fn leave<'a>(
        &'a self,
        channel: &'a str,
        connection_id: &'a str,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            {
                let mut joined = lock(&self.joined);
                if let Some(members) = joined.get_mut(channel) {
                    members.remove(connection_id);
                    if members.is_empty() {
                        joined.remove(channel);
                    }
                }
            }
            let mut c = self.manager.clone();
            bounded(
                "redis presence leave failed",
                redis::cmd("HDEL")
                    .arg(self.key("presence", channel))
                    .arg(connection_id)
                    .query_async::<()>(&mut c),
            )
            .await
        })
    }

    fn members<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<Vec<Member>, BrokerError>> {
        Box::pin(async move {
            let mut c = self.manager.clone();
            let reply = bounded(
                "redis presence failed",
                self.scripts
                    .members
                    .key(self.key("presence", channel))
                    .invoke_async::<Vec<String>>(&mut c),
            )
            .await?;
            let mut members: Vec<Member> = reply
                .iter()
                .filter_map(|json| serde_json::from_str(json).ok())
                .collect();
            members.sort_by(|a, b| {
                (&a.joined_at, &a.connection_id).cmp(&(&b.joined_at, &b.connection_id))
            });
            Ok(members)
        })
    }

    fn disconnect_user<'a>(
        &'a self,
        user_id: &'a str,
        code: u16,
    ) -> BoxFuture<'a, Result<(), BrokerError>> {
        Box::pin(async move {
            self.send_bus(bus_message(b'd', u64::from(code), "", user_id, ""))
                .await
        })
    }

    fn upkeep(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // Members of this node: written again with a new expiry.
            let members: Vec<(String, Member)> = lock(&self.joined)
                .iter()
                .flat_map(|(channel, members)| {
                    members.values().map(|m| (channel.clone(), m.clone()))
                })
                .collect();
            for (channel, member) in members {
                if let Err(e) = self.write_member(&channel, &member).await {
                    tracing::warn!(channel, "presence refresh failed: {e}");
                    return;
                }
            }
            // Subscribed channels keep their epoch: their subscribers hold positions in it.
            let streams: Vec<(String, HistoryBounds)> = {
                let mut streams = lock(&self.streams);
                streams.retain(|channel, _| self.local.has_subscribers(channel));
                streams.iter().map(|(c, t)| (c.clone(), t.bounds)).collect()
            };
            for (channel, bounds) in streams {
                let mut c = self.manager.clone();
                let kept = bounded(
                    "redis keep-alive failed",
                    self.scripts
                        .keep
                        .key(self.key("meta", &channel))
                        .arg(millis(bounds.ttl.max(IDLE_STREAM)))
                        .invoke_async::<i64>(&mut c),
                )
                .await;
                if let Err(e) = kept {
                    tracing::warn!(channel, "keeping the channel's epoch failed: {e}");
                    return;
                }
            }
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), BrokerError>> {
        let mut manager = self.manager.clone();
        Box::pin(async move {
            bounded("PING", redis::cmd("PING").query_async::<()>(&mut manager)).await
        })
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_messages_round_trip() {
        let m = bus_message(b'p', 42, "conn-1", "session:é", "{\"type\":\"x\"}");
        assert_eq!(
            parse_bus(&m),
            Some(BusMessage {
                kind: b'p',
                number: 42,
                exclude: Some("conn-1"),
                channel: "session:é",
                frame: "{\"type\":\"x\"}",
            })
        );
        let m = bus_message(b'd', 1008, "", "user 7", "");
        let parsed = parse_bus(&m).unwrap();
        assert_eq!((parsed.kind, parsed.number), (b'd', 1008));
        assert_eq!(
            (parsed.exclude, parsed.channel, parsed.frame),
            (None, "user 7", "")
        );
    }

    #[test]
    fn malformed_bus_messages_are_rejected() {
        for bad in [
            &b""[..],
            b"p",
            b"p1 2",
            b"p1 2 3 ab",
            b"px 0 1 a",
            b"p1 99999999999999999999 1 a",
            b"p1 18446744073709551615 2 ab",
        ] {
            assert_eq!(parse_bus(bad), None, "{bad:?}");
        }
    }
}
