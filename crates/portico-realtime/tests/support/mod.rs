//! Test scaffolding: a hub served on 127.0.0.1:0 with a token table for an authenticator,
//! real WebSocket clients, and a small upstream to route actions to.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::{SinkExt as _, StreamExt as _};
use portico_core::clock::{ManualClock, SharedClock};
use portico_core::error::{ApiError, ErrorCode};
use portico_core::shutdown::Shutdown;
use portico_gateway::identity::{Authenticator, BoxFuture, CredentialKind, Identity};
use portico_realtime::upstream::Upstreams;
use portico_realtime::{Hub, HubParts, RealtimeSettings};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for anything before failing.
pub const WAIT: Duration = Duration::from_secs(5);

/// Tokens the fake authenticator knows.
#[derive(Debug, Default, Clone)]
pub struct Tokens(Arc<Mutex<HashMap<String, Result<Identity, ErrorCode>>>>);

impl Tokens {
    /// `token` belongs to `user` with `permissions` (no expiry).
    pub fn user(&self, token: &str, user: &str, permissions: &[&str]) -> &Self {
        self.add(
            token,
            identity(user, permissions, CredentialKind::User, None),
        )
    }

    /// `token` is a service token of client `id`.
    pub fn service(&self, token: &str, id: &str) -> &Self {
        self.add(token, identity(id, &[], CredentialKind::Service, None))
    }

    /// `token` belongs to `user` and expires at `at`.
    pub fn expiring(&self, token: &str, user: &str, at: SystemTime) -> &Self {
        self.add(token, identity(user, &[], CredentialKind::User, Some(at)))
    }

    /// `token` fails with `code`.
    pub fn failing(&self, token: &str, code: ErrorCode) -> &Self {
        self.0.lock().unwrap().insert(token.into(), Err(code));
        self
    }

    fn add(&self, token: &str, identity: Identity) -> &Self {
        self.0.lock().unwrap().insert(token.into(), Ok(identity));
        self
    }
}

fn identity(
    user: &str,
    permissions: &[&str],
    kind: CredentialKind,
    expires_at: Option<SystemTime>,
) -> Identity {
    Identity {
        user_id: user.into(),
        email: format!("{user}@example.com"),
        permissions: permissions.iter().map(|p| p.to_string()).collect(),
        roles: vec!["user".into()],
        kind,
        credential_id: portico_gateway::identity::credential_id(user),
        expires_at,
    }
}

impl Authenticator for Tokens {
    fn authenticate<'a>(
        &'a self,
        credential: &'a str,
    ) -> BoxFuture<'a, Result<Identity, ApiError>> {
        let found = self.0.lock().unwrap().get(credential).cloned();
        Box::pin(async move {
            match found {
                Some(Ok(identity)) => Ok(identity),
                Some(Err(code)) => Err(ApiError::new(code, code.description())),
                None => Err(ApiError::new(ErrorCode::Auth001, "invalid token")),
            }
        })
    }
}

/// A hub serving on a real listener.
pub struct TestHub {
    pub addr: SocketAddr,
    pub hub: Hub,
    pub tokens: Tokens,
    pub clock: ManualClock,
    pub shutdown: Shutdown,
    server: tokio::task::JoinHandle<()>,
}

/// What a test may change before the hub starts.
pub struct Setup {
    pub settings: RealtimeSettings,
    pub upstreams: Upstreams,
    pub internal_tokens: Vec<(http::HeaderName, String)>,
    pub manual_clock: bool,
}

impl Default for Setup {
    fn default() -> Self {
        let mut settings = RealtimeSettings::default();
        settings.namespaces.insert(
            "room".into(),
            portico_realtime::settings::Namespace {
                permission: None,
                check: None,
                presence: true,
                history_size: 100,
                history_ttl: Duration::from_secs(600),
                allow_client_publish: true,
            },
        );
        settings.namespaces.insert(
            "etl".into(),
            portico_realtime::settings::Namespace {
                permission: Some("etl.access".into()),
                check: None,
                presence: false,
                history_size: 3,
                history_ttl: Duration::from_secs(600),
                allow_client_publish: false,
            },
        );
        Self {
            settings,
            upstreams: Upstreams::default(),
            internal_tokens: vec![(
                http::HeaderName::from_static("x-internal-auth"),
                "s3cret".into(),
            )],
            manual_clock: false,
        }
    }
}

impl TestHub {
    /// A hub with the default setup (namespaces `room` with presence and client publish,
    /// `etl` needing `etl.access` with 3 messages of history) and tokens `alice`, `bob`
    /// (with `etl.access`), `carol`, and the service token `svc`.
    pub async fn start() -> Self {
        Self::with(Setup::default()).await
    }

    pub async fn with(setup: Setup) -> Self {
        let tokens = Tokens::default();
        tokens
            .user("alice", "alice", &[])
            .user("bob", "bob", &["etl.access"])
            .user("carol", "carol", &[])
            .service("svc", "etl-service");
        let clock = ManualClock::new();
        let shared: SharedClock = if setup.manual_clock {
            clock.shared()
        } else {
            portico_core::clock::SystemClock::shared()
        };
        let shutdown = Shutdown::new();
        let hub = Hub::new(HubParts {
            settings: setup.settings,
            authenticator: Arc::new(tokens.clone()),
            upstreams: setup.upstreams,
            internal_tokens: setup.internal_tokens,
            clock: shared,
            shutdown: shutdown.clone(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = hub.router();
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            portico_core::shutdown::serve(listener, app, stop, Duration::from_secs(5))
                .await
                .unwrap();
        });
        Self {
            addr,
            hub,
            tokens,
            clock,
            shutdown,
            server,
        }
    }

    pub fn ws_url(&self, token: &str) -> String {
        format!("ws://{}/ws?token={token}", self.addr)
    }

    /// A connected client past its `connection_established` frame.
    pub async fn connect(&self, token: &str) -> Client {
        let mut client = Client::open(&self.ws_url(token)).await;
        let first = client.recv().await;
        assert_eq!(first["type"], "connection_established", "{first}");
        client.connection_id = first["data"]["connection_id"].as_str().unwrap().to_owned();
        client
    }

    /// `POST path` with a JSON body and headers; status and JSON answer.
    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: Value) -> (u16, Value) {
        http_post(&format!("http://{}{path}", self.addr), headers, body).await
    }

    /// Publishes as the service `svc`; the answer's offset.
    pub async fn publish(&self, channel: &str, event: &str, data: Value) -> u64 {
        let (status, body) = self
            .post(
                "/internal/publish",
                &[("authorization", "Bearer svc")],
                json!({"channel": channel, "event": event, "data": data}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        body["offset"].as_u64().unwrap()
    }

    /// Waits until the manual clock has at least `n` sleeps pending.
    pub async fn sleeps(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.clock.pending_sleeps() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "sleeps never reached {n}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until the hub holds `n` connections.
    pub async fn connections(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.hub.connections() != n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "connections stayed {} (expected {n})",
                self.hub.connections()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub async fn stop(self) {
        self.shutdown.trigger();
        let _ = tokio::time::timeout(WAIT, self.server).await;
    }
}

/// A minimal HTTP/1.1 GET; status and JSON answer.
pub async fn http_get(url: &str) -> (u16, Value) {
    http_request("GET", url, &[], None).await
}

/// A minimal HTTP/1.1 POST with a JSON body; status and JSON answer.
pub async fn http_post(url: &str, headers: &[(&str, &str)], body: Value) -> (u16, Value) {
    http_request("POST", url, headers, Some(body)).await
}

/// A minimal HTTP/1.1 request (one request per connection, `Connection: close`).
async fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Value) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    let mut stream = TcpStream::connect(host).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status: u16 = response[9..12].parse().unwrap();
    let text = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (
        status,
        serde_json::from_str(text).unwrap_or(Value::String(text.to_owned())),
    )
}

/// A WebSocket client.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub connection_id: String,
}

impl Client {
    pub async fn open(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Self {
            ws,
            connection_id: String::new(),
        }
    }

    pub async fn send(&mut self, frame: Value) {
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .unwrap();
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_owned())).await.unwrap();
    }

    /// The next JSON text frame (pings and pongs skipped).
    pub async fn recv(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("no frame in time")
                .expect("connection ended")
                .expect("read failed");
            match message {
                Message::Text(text) => return serde_json::from_str(&text).unwrap(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next frame whose `type` is not `heartbeat`.
    pub async fn recv_event(&mut self) -> Value {
        loop {
            let v = self.recv().await;
            if v["type"] != "heartbeat" {
                return v;
            }
        }
    }

    /// Sends an action and returns the next non-heartbeat frame.
    pub async fn ask(&mut self, action: &str, data: Value) -> Value {
        self.send(json!({"action": action, "data": data})).await;
        self.recv_event().await
    }

    /// Reads until the close frame; its code and reason (text frames before it skipped).
    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("no close in time");
            match message {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (u16::from(frame.code), frame.reason.to_string());
                }
                Some(Ok(Message::Close(None))) => {
                    return (u16::from(CloseCode::Status), String::new());
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("read failed before a close frame: {e}"),
                None => panic!("connection ended without a close frame"),
            }
        }
    }

    /// Asserts nothing but heartbeats arrives within `for_`.
    pub async fn quiet(&mut self, for_: Duration) {
        let deadline = tokio::time::Instant::now() + for_;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Text(text)))) => {
                    let v: Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(v["type"], "heartbeat", "unexpected frame {v}");
                }
                Ok(Some(Ok(_))) => {}
                Ok(other) => panic!("connection ended: {other:?}"),
            }
        }
    }
}

/// A local upstream: answers POSTs on `/echo` with the request's identity headers and body,
/// `/fail` with 500, `/slow` after `delay`, `/allow` 204 and `/deny` 403.
pub async fn upstream() -> SocketAddr {
    use axum::routing::post;
    async fn echo(headers: http::HeaderMap, body: String) -> axum::Json<Value> {
        let h = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        axum::Json(json!({
            "user_id": h("x-user-id"),
            "email": h("x-user-email"),
            "permissions": h("x-user-permissions"),
            "internal": h("x-internal-auth"),
            "identity_token": h("x-portico-identity").is_some(),
            "connection_id": h("x-portico-connection-id"),
            "request_id": h("x-request-id"),
            "body": serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
        }))
    }
    let app = axum::Router::new()
        .route("/echo", post(echo))
        .route(
            "/fail",
            post(|| async { (http::StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route(
            "/forbidden",
            post(|| async {
                (
                    http::StatusCode::FORBIDDEN,
                    axum::Json(
                        json!({"error": {"code": "AUTH_006", "message": "not in this session"}}),
                    ),
                )
            }),
        )
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route("/allow", post(|| async { http::StatusCode::NO_CONTENT }))
        .route("/deny", post(|| async { http::StatusCode::FORBIDDEN }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    addr
}
