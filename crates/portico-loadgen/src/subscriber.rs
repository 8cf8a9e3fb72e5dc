//! The subscribers: one task per connection that reads frames until told to stop, counts
//! deliveries and records each one's latency (receive time minus the publisher's send time),
//! and answers what the protocol wants answered (Engine.IO pings; WebSocket pings are
//! answered by tungstenite itself while it reads).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::connect::Ws;
use crate::histogram::Histogram;
use crate::protocol::{Inbound, Target};

/// What every subscriber reports into.
#[derive(Default)]
pub struct Stats {
    /// Deliveries received.
    pub delivered: AtomicU64,
    /// Delivery latencies, µs.
    pub latency: Histogram,
    /// Connections that ended before they were told to stop.
    pub dropped: AtomicU64,
    /// The last reason a connection ended early.
    pub last_drop: std::sync::Mutex<Option<String>>,
}

impl Stats {
    fn drop_with(&self, reason: String) {
        self.dropped.fetch_add(1, Relaxed);
        if let Ok(mut last) = self.last_drop.lock() {
            *last = Some(reason);
        }
    }

    /// The last reason a connection ended early, if one did.
    pub fn last_drop(&self) -> Option<String> {
        self.last_drop.lock().ok().and_then(|l| l.clone())
    }
}

/// Microseconds since the Unix epoch on this host's clock (publisher and subscribers share it).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Running subscriber tasks; dropping or stopping them closes their connections.
pub struct Subscribers {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Subscribers {
    /// Starts one task per connection.
    pub fn spawn(connections: Vec<Ws>, target: Target, stats: Arc<Stats>) -> Self {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for ws in connections {
            tasks.spawn(run(ws, target, stats.clone(), stopped.clone()));
        }
        Self { stop, tasks }
    }

    /// Tells every task to stop and waits for them.
    pub async fn stop(mut self) {
        // Receivers outlive this send: they are held by the tasks being joined below.
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn run(mut ws: Ws, target: Target, stats: Arc<Stats>, mut stop: watch::Receiver<bool>) {
    // One wait for the stop signal for the connection's life: a new `changed()` per frame
    // would register and drop a waiter on every delivery.
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            biased;
            _ = &mut stopped => return,
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => match target.inbound(&text) {
                    Inbound::Delivery(d) => {
                        stats.latency.record(now_us().saturating_sub(d.sent_us));
                        stats.delivered.fetch_add(1, Relaxed);
                    }
                    Inbound::Reply(r) => {
                        if let Err(e) = ws.send(Message::text(r)).await {
                            return stats.drop_with(format!("send: {e}"));
                        }
                    }
                    _ => {}
                },
                Some(Ok(Message::Close(frame))) => {
                    return stats.drop_with(frame.map_or_else(
                        || "closed by the server".to_owned(),
                        |f| format!("closed by the server: {} {}", f.code, f.reason),
                    ));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return stats.drop_with(format!("read: {e}")),
                None => return stats.drop_with("end of stream".to_owned()),
            },
        }
    }
}
