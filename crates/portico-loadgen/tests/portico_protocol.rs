//! The load generator's Portico side against a mock of the hub's protocol (DESIGN.md
//! "Realtime": `?token=`, close 1008, `connection_established`, `subscribe` → `subscribed`,
//! the `publish` action delivered as `{"type":event,"data":payload,"metadata":{…}}`), so the
//! binary's scenarios are proven end to end before the real hub exists. Not a hub: one
//! channel, no limits.

#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

use std::process::{Command, Output};
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

async fn mock_hub() -> String {
    let (deliveries, _) = broadcast::channel::<String>(4096);
    mock_hub_with(deliveries).await
}

async fn mock_hub_with(deliveries: broadcast::Sender<String>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(connection(stream, deliveries.clone()));
        }
    });
    format!("ws://{addr}/ws")
}

async fn connection(stream: TcpStream, deliveries: broadcast::Sender<String>) {
    let mut authorised = false;
    // The error type is tungstenite's `Callback` signature, not ours to shrink.
    #[allow(clippy::result_large_err)]
    let check = |req: &Request, resp: Response| {
        authorised = req.uri().query().is_some_and(|q| q.contains("token=good"));
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, check).await else {
        return;
    };
    if !authorised {
        let close = CloseFrame {
            code: CloseCode::Policy,
            reason: "AUTH_001".into(),
        };
        let _ = ws.close(Some(close)).await;
        return;
    }
    let hello = json!({"type": "connection_established", "data": {"connection_id": "c1"}});
    ws.send(Message::text(hello.to_string())).await.unwrap();
    let mut subscribed: Option<broadcast::Receiver<String>> = None;
    let mut offset = 0u64;
    loop {
        tokio::select! {
            frame = async {
                match subscribed.as_mut() {
                    Some(rx) => rx.recv().await.ok(),
                    None => std::future::pending().await,
                }
            } => {
                let Some(frame) = frame else { return };
                if ws.send(Message::text(frame)).await.is_err() {
                    return;
                }
            }
            msg = ws.next() => {
                let Some(Ok(Message::Text(text))) = msg else { return };
                let v: Value = serde_json::from_str(&text).unwrap();
                let data = &v["data"];
                match v["action"].as_str() {
                    Some("subscribe") => {
                        subscribed = Some(deliveries.subscribe());
                        let ok = json!({"type": "subscribed", "data": {"channel": data["channel"], "offset": 0, "epoch": "e", "recovered": false, "missed": []}});
                        ws.send(Message::text(ok.to_string())).await.unwrap();
                    }
                    Some("publish") => {
                        offset += 1;
                        let out = json!({"type": data["event"], "data": data["payload"],
                            "metadata": {"channel": data["channel"], "offset": offset, "user_id": "u", "timestamp": "2026-01-01T00:00:00Z"}});
                        let _ = deliveries.send(out.to_string());
                    }
                    _ => {
                        let hb = json!({"type": "heartbeat"});
                        ws.send(Message::text(hb.to_string())).await.unwrap();
                    }
                }
            }
        }
    }
}

/// The mock's `POST /internal/publish`: answers no publish until two have been unanswered at
/// the same moment (then every publish, 202), or 503 after 5 s, so a publisher that waits for
/// each answer before sending the next one fails the run.
async fn mock_publish_api(deliveries: broadcast::Sender<String>) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use axum::http::StatusCode;
    use tokio::sync::watch;

    #[derive(Clone)]
    struct State {
        deliveries: broadcast::Sender<String>,
        pending: Arc<AtomicUsize>,
        overlapped: Arc<watch::Sender<bool>>,
    }
    async fn publish(
        axum::extract::State(s): axum::extract::State<State>,
        body: String,
    ) -> StatusCode {
        if s.pending.fetch_add(1, Ordering::SeqCst) + 1 >= 2 {
            s.overlapped.send_replace(true);
        }
        let mut overlapped = s.overlapped.subscribe();
        let waited =
            tokio::time::timeout(Duration::from_secs(5), overlapped.wait_for(|seen| *seen)).await;
        s.pending.fetch_sub(1, Ordering::SeqCst);
        if waited.is_err() {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        let v: Value = serde_json::from_str(&body).unwrap();
        let out = json!({"type": v["event"], "data": v["data"],
            "metadata": {"channel": v["channel"], "offset": 1, "timestamp": "2026-01-01T00:00:00Z"}});
        let _ = s.deliveries.send(out.to_string());
        StatusCode::ACCEPTED
    }
    let state = State {
        deliveries,
        pending: Arc::default(),
        overlapped: Arc::new(watch::channel(false).0),
    };
    let app = axum::Router::new()
        .route("/internal/publish", axum::routing::post(publish))
        .with_state(state);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/internal/publish")
}

/// Runs the binary on a blocking thread, so the mock keeps serving on the runtime.
async fn loadgen(url: &str, token: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portico-loadgen"));
    cmd.args(["--target", "portico", "--url", url, "--token", token])
        .args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn result_line(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find(|l| l.starts_with("result "))
        .unwrap_or_else(|| panic!("no result line in {stdout}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_counts_every_delivery_to_every_subscriber() {
    let url = mock_hub().await;
    let out = loadgen(
        &url,
        "good",
        &[
            "fanout",
            "--subscribers",
            "20",
            "--publishes",
            "3",
            "--warmup",
            "1",
        ],
    )
    .await;
    let line = result_line(&out);
    assert!(out.status.success(), "{line}");
    for kv in [
        "target=portico",
        "connections=20",
        "deliveries=60",
        "expected=60",
        "lost=0",
        "publish_via=ws",
    ] {
        assert!(line.contains(kv), "{kv} missing from {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_loses_nothing_in_flat_out_mode() {
    let url = mock_hub().await;
    let out = loadgen(
        &url,
        "good",
        &[
            "throughput",
            "--subscribers",
            "10",
            "--duration",
            "0.5",
            "--warmup",
            "0.1",
        ],
    )
    .await;
    let line = result_line(&out);
    assert!(out.status.success(), "{line}");
    assert!(line.contains(" lost=0 "), "{line}");
    let rate: f64 = line
        .split(' ')
        .find_map(|kv| kv.strip_prefix("msgs_per_s="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(rate > 0.0, "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_publishes_do_not_wait_for_each_others_answers() {
    let (deliveries, _) = broadcast::channel::<String>(4096);
    let url = mock_hub_with(deliveries.clone()).await;
    let publish_url = mock_publish_api(deliveries).await;
    let out = loadgen(
        &url,
        "good",
        &[
            "--publish-url",
            &publish_url,
            "--publish-token",
            "service",
            "throughput",
            "--subscribers",
            "10",
            "--duration",
            "0.5",
            "--warmup",
            "0.1",
            "--window",
            "4",
        ],
    )
    .await;
    let line = result_line(&out);
    assert!(
        out.status.success(),
        "{line}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(line.contains("publish_via=http"), "{line}");
    assert!(line.contains(" lost=0 "), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_fails_at_once_without_retries() {
    let url = mock_hub().await;
    let out = loadgen(&url, "bad", &["idle", "--connections", "3", "--hold", "0"]).await;
    let line = result_line(&out);
    assert!(!out.status.success());
    assert!(line.contains("connect_failed=3"), "{line}");
    assert!(line.contains("connect_retries=0"), "{line}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1008") && stderr.contains("AUTH_001"),
        "{stderr}"
    );
}
