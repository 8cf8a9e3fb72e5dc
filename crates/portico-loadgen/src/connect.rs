//! Opening connections: the WebSocket upgrade, the protocol's handshake (authentication and,
//! for subscribers, the subscription) and many of them at once with bounded concurrency and
//! retries, so that ten thousand connects do not overflow the server's accept backlog.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::protocol::{Inbound, Target};

/// An open client WebSocket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long one connection may take from TCP connect to its subscription.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// The server refused the connection (bad token, refused subscription): retrying cannot help.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused: {}", self.0)
    }
}

impl std::error::Error for Refused {}

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The protocol.
    pub target: Target,
    /// The WebSocket URL as given on the command line.
    pub url: String,
    /// The token every connection authenticates with.
    pub token: String,
}

/// The outcome of opening many connections.
pub struct Opened {
    /// The subscribed connections.
    pub connections: Vec<Ws>,
    /// Connections that failed after every retry.
    pub failed: usize,
    /// Attempts beyond the first, over all connections.
    pub retries: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// Wall time to open them all.
    pub elapsed: Duration,
}

/// A small read buffer: the benchmark's frames are tiny, and tungstenite's default (128 KiB,
/// allocated eagerly) would make ten thousand client connections cost over a gigabyte.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// Connects, authenticates and, when `channel` is given, subscribes to it.
pub async fn open_one(ep: &Endpoint, channel: Option<&str>) -> anyhow::Result<Ws> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(ep, channel))
        .await
        .map_err(|_| anyhow!("handshake timed out after {HANDSHAKE_TIMEOUT:?}"))?
}

async fn handshake(ep: &Endpoint, channel: Option<&str>) -> anyhow::Result<Ws> {
    let url = ep.target.connect_url(&ep.url, &ep.token);
    let (mut ws, _) =
        match tokio_tungstenite::connect_async_with_config(url, Some(config()), true).await {
            Ok(ok) => ok,
            // An HTTP answer instead of the upgrade (401, 404 where there is no hub) is final.
            Err(tungstenite::Error::Http(resp)) => {
                let body = resp.body().as_deref().map(String::from_utf8_lossy);
                return Err(Refused(format!(
                    "HTTP {} {}",
                    resp.status(),
                    body.unwrap_or_default()
                ))
                .into());
            }
            Err(e) => return Err(anyhow::Error::new(e).context("websocket connect")),
        };
    if let Some(frame) = ep.target.connect_frame(&ep.token) {
        ws.send(Message::text(frame)).await?;
    }
    wait_for(&mut ws, ep.target, |i| matches!(i, Inbound::Connected)).await?;
    if let Some(channel) = channel {
        ws.send(Message::text(ep.target.subscribe_frame(channel)))
            .await?;
        wait_for(&mut ws, ep.target, |i| matches!(i, Inbound::Subscribed)).await?;
    }
    Ok(ws)
}

/// Reads frames until one satisfies `done`, answering what must be answered on the way.
async fn wait_for(
    ws: &mut Ws,
    target: Target,
    done: impl Fn(&Inbound<'_>) -> bool,
) -> anyhow::Result<()> {
    loop {
        let msg = ws
            .next()
            .await
            .ok_or_else(|| anyhow!("connection closed during the handshake"))??;
        match msg {
            Message::Text(text) => {
                let inbound = target.inbound(&text);
                if done(&inbound) {
                    return Ok(());
                }
                match inbound {
                    Inbound::Refused(frame) => return Err(Refused(frame.to_owned()).into()),
                    Inbound::Reply(r) => ws.send(Message::text(r)).await?,
                    _ => {}
                }
            }
            // A close with a code (Portico: 1008 and the error code) is the server's answer.
            Message::Close(Some(frame)) => {
                return Err(Refused(format!("close {} {}", frame.code, frame.reason)).into());
            }
            Message::Close(None) => bail!("closed during the handshake"),
            _ => {}
        }
    }
}

/// Opens `n` subscribed connections, at most `concurrency` handshakes at a time, each retried
/// up to `attempts` times with a growing pause (a full accept backlog shows as a reset or a
/// timeout, and passes).
pub async fn open_many(
    ep: &Endpoint,
    channel: &str,
    n: usize,
    concurrency: usize,
    attempts: u32,
) -> Opened {
    let start = Instant::now();
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let ep = Arc::new(ep.clone());
    let channel: Arc<str> = Arc::from(channel);
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let (permits, ep, channel) = (permits.clone(), ep.clone(), channel.clone());
        tasks.spawn(async move {
            // The semaphore is never closed, so acquiring only waits.
            let _permit = permits.acquire_owned().await;
            let mut retries = 0;
            loop {
                match open_one(&ep, Some(&channel)).await {
                    Ok(ws) => return (Ok(ws), retries),
                    Err(e) if retries + 1 >= u64::from(attempts) || e.is::<Refused>() => {
                        return (Err(e), retries);
                    }
                    Err(_) => {
                        retries += 1;
                        let pause = Duration::from_millis(50 << retries.min(5));
                        tokio::time::sleep(pause).await;
                    }
                }
            }
        });
    }
    let mut opened = Opened {
        connections: Vec::with_capacity(n),
        failed: 0,
        retries: 0,
        last_error: None,
        elapsed: Duration::ZERO,
    };
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((Ok(ws), retries)) => {
                opened.connections.push(ws);
                opened.retries += retries;
            }
            Ok((Err(e), retries)) => {
                opened.failed += 1;
                opened.retries += retries;
                opened.last_error = Some(format!("{e:#}"));
            }
            Err(e) => {
                opened.failed += 1;
                opened.last_error = Some(e.to_string());
            }
        }
    }
    opened.elapsed = start.elapsed();
    opened
}
