//! Scaffolding for the proxy tests: a fake authenticator, fake upstreams on 127.0.0.1 that
//! record what reached them, the gateway served the way `portico up` serves it (request ids,
//! envelopes, connect info), a plain hyper client, settings builders, clock driving and
//! per-thread log capture.
// Each test binary uses a different part of this module.
#![allow(dead_code, clippy::unwrap_used)]

use std::cell::RefCell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use portico_core::error::{ApiError, ErrorCode, envelope_layer};
use portico_core::request_id::RequestIdLayer;
use portico_gateway::Gateway;
use portico_gateway::identity::{Authenticator, BoxFuture, CredentialKind, Identity};
use portico_gateway::settings::{AuthMode, GatewaySettings, RouteSettings, UpstreamSettings};
use portico_resilience::{ManualClock, UpstreamPolicy};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::SubscriberExt;

pub const SECOND: Duration = Duration::from_secs(1);

/// The internal token every test upstream is configured with.
pub const INTERNAL_TOKEN: &str = "etl-internal-secret";

// === identity ===

/// Tokens: `alice-token` (alice, `etl.access`), `bob-token` (no permissions),
/// `admin-token` (`*`), `expired` (AUTH_002), `revoked` (AUTH_007), `auth-down` (SYS_002),
/// anything else AUTH_001.
#[derive(Debug, Default)]
pub struct FakeAuth;

pub fn identity(user: &str, permissions: &[&str]) -> Identity {
    Identity {
        user_id: user.to_owned(),
        email: format!("{user}@example.com"),
        permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
        roles: vec!["user".into()],
        kind: CredentialKind::User,
        credential_id: format!("cred-{user}"),
        expires_at: None,
    }
}

impl Authenticator for FakeAuth {
    fn authenticate<'a>(
        &'a self,
        credential: &'a str,
    ) -> BoxFuture<'a, Result<Identity, ApiError>> {
        Box::pin(async move {
            match credential {
                "alice-token" => Ok(identity("alice", &["etl.access"])),
                "bob-token" => Ok(identity("bob", &[])),
                "admin-token" => Ok(identity("admin", &["*"])),
                "expired" => Err(ApiError::new(ErrorCode::Auth002, "token expired")),
                "revoked" => Err(ApiError::new(ErrorCode::Auth007, "token revoked")),
                "auth-down" => Err(ApiError::new(ErrorCode::Sys002, "auth unavailable")
                    .with_retry_after(Duration::from_secs(5))),
                _ => Err(ApiError::new(ErrorCode::Auth001, "invalid token")),
            }
        })
    }
}

// === settings ===

/// 3 attempts, 5 s per attempt, threshold 5, recovery 60 s.
pub fn policy(
    attempts: u32,
    timeout: Duration,
    threshold: u32,
    recovery: Duration,
) -> UpstreamPolicy {
    UpstreamPolicy::new(attempts, timeout, threshold, recovery).unwrap()
}

pub fn default_policy() -> UpstreamPolicy {
    policy(3, 5 * SECOND, 5, 60 * SECOND)
}

/// An upstream at `url` with the default policy and `X-Internal-Auth: INTERNAL_TOKEN`.
pub fn upstream(name: &str, url: &str) -> UpstreamSettings {
    UpstreamSettings {
        name: name.to_owned(),
        url: url.to_owned(),
        policy: default_policy(),
        retry_non_idempotent: false,
        internal_token: Some((
            HeaderName::from_static("x-internal-auth"),
            INTERNAL_TOKEN.to_owned(),
        )),
        health: None,
        critical: false,
    }
}

pub fn route(
    prefix: &str,
    upstream: &str,
    rewrite: Option<&str>,
    auth: AuthMode,
    permissions: &[&str],
) -> RouteSettings {
    RouteSettings {
        prefix: prefix.to_owned(),
        upstream: upstream.to_owned(),
        rewrite: rewrite.map(str::to_owned),
        auth,
        permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
        rate_limit: None,
        fallback: None,
        cache: None,
        cors: None,
    }
}

pub fn settings(upstreams: Vec<UpstreamSettings>, routes: Vec<RouteSettings>) -> GatewaySettings {
    GatewaySettings {
        upstreams: upstreams.into_iter().map(|u| (u.name.clone(), u)).collect(),
        routes,
        ..GatewaySettings::default()
    }
}

/// Seed 002: `/api/etl` → `etl` `/api/v1`, auth required, `etl.access`.
pub fn etl_settings(url: &str, policy: UpstreamPolicy) -> GatewaySettings {
    let mut etl = upstream("etl", url);
    etl.policy = policy;
    settings(
        vec![etl],
        vec![route(
            "/api/etl",
            "etl",
            Some("/api/v1"),
            AuthMode::Required,
            &["etl.access"],
        )],
    )
}

// === fake upstreams ===

/// What reached a fake upstream.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub uri: String,
    pub version: http::Version,
    pub headers: HeaderMap,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// A fake upstream: `router` on 127.0.0.1, every request recorded before it is handled.
pub struct Upstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    pub async fn start(router: Router) -> Upstream {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let app = router.layer(axum::middleware::from_fn(
            move |req: Request, next: Next| {
                let record = record.clone();
                async move {
                    record.lock().unwrap().push(Seen {
                        method: req.method().clone(),
                        uri: req.uri().to_string(),
                        version: req.version(),
                        headers: req.headers().clone(),
                    });
                    next.run(req).await
                }
            },
        ));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Upstream { addr, seen }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a request reached the upstream")
    }
}

/// An upstream answering every path with `status` and a text body `"<status> from upstream"`
/// (the first `failures` requests), then 200 `ok`.
pub fn failing_then_ok(failures: usize, status: StatusCode) -> (Router, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let router = Router::new().fallback(move || {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < failures {
                (status, format!("{} from upstream", status.as_u16()))
            } else {
                (StatusCode::OK, "ok".to_owned())
            }
        }
    });
    (router, count)
}

/// A port nothing listens on.
pub async fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

// === the gateway ===

/// The gateway served like `portico up` serves it.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    pub clock: ManualClock,
}

pub async fn start_gateway(settings: GatewaySettings) -> TestGateway {
    start_gateway_with_auth(settings, Arc::new(FakeAuth)).await
}

impl TestGateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn breaker_state(&self, upstream: &str) -> &'static str {
        self.gateway.breakers()[upstream].state().as_str()
    }

    /// The request `method path` with `headers` and `body` (for tests that spawn the call).
    pub fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> http::Request<Body> {
        let mut request = http::Request::builder().method(method).uri(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(body.into()).unwrap()
    }

    /// `method path` with `headers` and `body`, answered in full.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> Reply {
        send(self.request(method, path, headers, body)).await
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.call(Method::GET, path, headers, Body::empty()).await
    }
}

// === the client ===

pub type Client = HyperClient<HttpConnector, Body>;

pub fn client() -> Client {
    HyperClient::builder(TokioExecutor::new()).build_http()
}

/// A response read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The envelope's code (panics if the body is not an envelope).
    pub fn code(&self) -> String {
        let json = self.json();
        assert_eq!(json["status"], self.status.as_u16(), "{json}");
        json["error"]["code"].as_str().unwrap().to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// Sends `request` and reads the whole answer; fails the test after 10 s of real time (a
/// call waiting on a manual clock nobody advances would otherwise hang).
pub async fn send(request: http::Request<Body>) -> Reply {
    send_with(&client(), request).await
}

/// [`send`] through `client`.
async fn send_with(client: &Client, request: http::Request<Body>) -> Reply {
    let exchange = async {
        let response = client.request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        (parts, body.collect().await.unwrap().to_bytes())
    };
    let (parts, body) = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("the gateway answered within 10 s");
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

// === bodies fed by a test ===

/// A body whose frames the test sends one by one through the returned sender.
pub fn channel_body() -> (mpsc::Sender<Bytes>, Body) {
    let (tx, rx) = mpsc::channel(8);
    (tx, Body::new(ChannelBody { rx }))
}

struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

// === time ===

/// Lets the other tasks run until `condition` holds, failing the test after 5 s of real time.
pub async fn until(what: &str, condition: impl Fn() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < give_up, "still waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits until the code under test sleeps for exactly `wait` on the manual clock, then lets
/// that time pass.
pub async fn advance_when_sleeping(clock: &ManualClock, wait: Duration) {
    until(&format!("a sleep of {wait:?}"), || {
        clock.pending_sleep_durations().contains(&wait)
    })
    .await;
    clock.advance(wait);
}

// === logs ===

// One global subscriber keeps what is logged on the threads that asked for it: each
// `#[tokio::test]` runs its servers and client on its own current-thread runtime.

thread_local! {
    static MESSAGES: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Starts capturing this thread's log messages (again, from empty).
pub fn capture_logs() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(ThreadMessages);
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in this test binary");
    });
    tracing::callsite::rebuild_interest_cache();
    MESSAGES.with_borrow_mut(|m| *m = Some(Vec::new()));
}

/// The messages logged on this thread since the last take.
pub fn take_messages() -> Vec<String> {
    MESSAGES.with_borrow_mut(|m| std::mem::take(m.get_or_insert_with(Vec::new)))
}

struct ThreadMessages;

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ThreadMessages {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        MESSAGES.with_borrow_mut(|sink| {
            if let Some(sink) = sink {
                let mut message = Message(String::new());
                event.record(&mut message);
                sink.push(message.0);
            }
        });
    }
}

pub fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap()
}

// === rate limits and fallbacks (proxy_limits, proxy_fallback) ===

/// [`start_gateway`] with another authenticator.
pub async fn start_gateway_with_auth(
    settings: GatewaySettings,
    authenticator: Arc<dyn Authenticator>,
) -> TestGateway {
    let clock = ManualClock::new();
    let gateway = Gateway::new(settings, authenticator, clock.shared()).unwrap();
    let app = gateway
        .router()
        .layer(envelope_layer())
        .layer(RequestIdLayer::new());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    TestGateway {
        addr,
        gateway,
        clock,
    }
}

/// [`send`] from the local address `from` (another loopback address, e.g. 127.0.0.2, is
/// another client IP to the gateway).
pub async fn send_from(from: std::net::IpAddr, request: http::Request<Body>) -> Reply {
    let mut connector = HttpConnector::new();
    connector.set_local_address(Some(from));
    let client: Client = HyperClient::builder(TokioExecutor::new()).build(connector);
    send_with(&client, request).await
}

// === Redis (ratelimit_redis) ===

/// `PORTICO_TEST_REDIS_URL`; tests that need it are `#[ignore]`d and run by `scripts/test`
/// when Redis answers.
pub fn test_redis_url() -> String {
    std::env::var("PORTICO_TEST_REDIS_URL")
        .expect("PORTICO_TEST_REDIS_URL names a Redis (scripts/test sets it when one answers)")
}

/// A name no other test run uses (process id and time), for keys in a shared Redis.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// `/health` served from `registry` on 127.0.0.1, as `portico up` serves it.
pub async fn serve_health_report(registry: portico_core::health::HealthRegistry) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = portico_core::health::routes(registry);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}
