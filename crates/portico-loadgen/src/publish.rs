//! The publisher: sends benchmark messages either over HTTP (Portico's `POST /internal/publish`
//! with a service token, the peer's `POST /publish`), the way upstream services push events, or
//! as a client over its own WebSocket (Portico's `publish` action, a Socket.IO `publish`
//! event). Each message carries its sequence number and send time.

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::connect::{Endpoint, open_one};
use crate::protocol::{self, Inbound};
use crate::subscriber::now_us;

/// Sends publishes to one channel.
pub enum Publisher {
    /// One HTTP POST per publish over a kept-alive connection; waits for 2xx.
    Http(Box<HttpPublisher>),
    /// A WebSocket client's publish frames, sent by a task that also drains what the server
    /// sends that connection.
    Ws {
        /// Frames to send.
        frames: mpsc::Sender<String>,
        /// The connection's task.
        task: JoinHandle<anyhow::Result<()>>,
        /// The protocol.
        target: protocol::Target,
        /// The channel.
        channel: String,
    },
}

/// An HTTP publisher's parts.
pub struct HttpPublisher {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: http::Uri,
    /// `Authorization` header value.
    auth: http::HeaderValue,
    channel: String,
}

impl Publisher {
    /// An HTTP publisher posting to `url` with `Authorization: Bearer token`.
    pub fn http(url: &str, token: &str, channel: &str) -> anyhow::Result<Self> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Ok(Publisher::Http(Box::new(HttpPublisher {
            client: Client::builder(TokioExecutor::new()).build(connector),
            uri: url.parse().context("--publish-url")?,
            auth: format!("Bearer {token}")
                .parse()
                .context("--publish-token is not a valid header value")?,
            channel: channel.to_owned(),
        })))
    }

    /// A WebSocket publisher: connects and authenticates (without subscribing).
    pub async fn ws(ep: &Endpoint, channel: &str) -> anyhow::Result<Self> {
        let mut ws = open_one(ep, None).await.context("publisher connection")?;
        let target = ep.target;
        let (frames, mut rx) = mpsc::channel::<String>(1024);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    frame = rx.recv() => match frame {
                        Some(f) => ws.send(Message::text(f)).await?,
                        None => return Ok(()),
                    },
                    msg = ws.next() => match msg {
                        Some(Ok(Message::Text(t))) => match target.inbound(&t) {
                            Inbound::Reply(r) => ws.send(Message::text(r)).await?,
                            Inbound::Refused(f) => bail!("publish refused: {f}"),
                            _ => {}
                        },
                        Some(Ok(Message::Close(f))) => bail!("publisher connection closed: {f:?}"),
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return Err(e.into()),
                        None => bail!("publisher connection ended"),
                    },
                }
            }
        });
        Ok(Publisher::Ws {
            frames,
            task,
            target,
            channel: channel.to_owned(),
        })
    }

    /// Publishes message `seq`, stamped with the current time.
    pub async fn publish(&mut self, seq: u64) -> anyhow::Result<()> {
        match self {
            Publisher::Http(h) => {
                let HttpPublisher {
                    client,
                    uri,
                    auth,
                    channel,
                } = &**h;
                let body = protocol::http_publish_body(channel, &protocol::payload(seq, now_us()));
                let req = http::Request::post(uri.clone())
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .header(http::header::AUTHORIZATION, auth.clone())
                    .body(Full::new(Bytes::from(body)))?;
                let resp = client.request(req).await.context("publish request")?;
                let status = resp.status();
                let body = resp.into_body().collect().await?.to_bytes();
                if !status.is_success() {
                    bail!(
                        "publish answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    );
                }
                Ok(())
            }
            Publisher::Ws {
                frames,
                task,
                target,
                channel,
            } => {
                let frame = target.publish_frame(channel, &protocol::payload(seq, now_us()));
                if frames.send(frame).await.is_err() {
                    // The task ended: its error says why.
                    return match task.await {
                        Ok(Err(e)) => Err(e),
                        Ok(Ok(())) => bail!("publisher stopped"),
                        Err(e) => Err(e.into()),
                    };
                }
                Ok(())
            }
        }
    }
}
