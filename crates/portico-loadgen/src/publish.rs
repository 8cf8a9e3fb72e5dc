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
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::tungstenite::Message;

use crate::connect::{Endpoint, open_one};
use crate::protocol::{self, Inbound};
use crate::subscriber::now_us;

/// Sends publishes to one channel.
pub enum Publisher {
    /// One HTTP POST per publish over kept-alive connections, up to `in_flight` at once (a
    /// service pushing events does not wait for one answer before sending the next); each
    /// must answer 2xx.
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
    /// Requests not answered yet.
    pending: JoinSet<anyhow::Result<()>>,
    /// How many may be pending at once.
    in_flight: usize,
}

impl Publisher {
    /// An HTTP publisher posting to `url` with `Authorization: Bearer token`, with up to
    /// `in_flight` requests unanswered at once.
    pub fn http(url: &str, token: &str, channel: &str, in_flight: usize) -> anyhow::Result<Self> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Ok(Publisher::Http(Box::new(HttpPublisher {
            client: Client::builder(TokioExecutor::new()).build(connector),
            uri: url.parse().context("--publish-url")?,
            auth: format!("Bearer {token}")
                .parse()
                .context("--publish-token is not a valid header value")?,
            channel: channel.to_owned(),
            pending: JoinSet::new(),
            in_flight: in_flight.max(1),
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
                // An earlier request's failure ends the run here; a full window waits for
                // the oldest answers.
                while let Some(done) = h.pending.try_join_next() {
                    done??;
                }
                while h.pending.len() >= h.in_flight {
                    if let Some(done) = h.pending.join_next().await {
                        done??;
                    }
                }
                let body =
                    protocol::http_publish_body(&h.channel, &protocol::payload(seq, now_us()));
                let req = http::Request::post(h.uri.clone())
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .header(http::header::AUTHORIZATION, h.auth.clone())
                    .body(Full::new(Bytes::from(body)))?;
                let client = h.client.clone();
                h.pending.spawn(async move {
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
                });
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

    /// Waits for every publish handed over to be answered; the first failure is returned.
    pub async fn finish(&mut self) -> anyhow::Result<()> {
        if let Publisher::Http(h) = self {
            while let Some(done) = h.pending.join_next().await {
                done??;
            }
        }
        Ok(())
    }
}
