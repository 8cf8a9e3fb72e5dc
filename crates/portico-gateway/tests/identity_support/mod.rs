//! Scaffolding for the identity tests: a real `portico-auth` server on `127.0.0.1:0` over a
//! fresh SQLite store and a [`ManualClock`] (the gateway under test reads the same clock),
//! counting the requests it receives per path, which can be stopped (its listener and
//! every open connection closed: "auth is down") and started again on the same address
//! and store.
// Not every helper is used by every test.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use portico_auth::api::dto::{
    ApiKeyCreated, CreateApiKeyRequest, LogoutRequest, RegisterRequest, TokenResponse,
};
use portico_auth::rbac::Roles;
use portico_auth::service::AuthService;
use portico_auth::settings::AuthSettings;
use portico_auth::store::Store;
use portico_core::clock::ManualClock;
use portico_core::error::{ApiError, ErrorCode};
use portico_gateway::identity::{Authenticator, Identity, RemoteAuthSettings, RemoteAuthenticator};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The issuer every test server uses.
pub const ISSUER: &str = "https://auth.portico.test";

/// The permission the test `user` role grants.
pub const USER_PERMISSION: &str = "etl.access";

/// A good password for test accounts.
pub const PASSWORD: &str = "correct horse battery staple";

/// Auth settings with the test issuer and roles: `user` → [`USER_PERMISSION`], `admin` → `*`.
pub fn auth_settings() -> AuthSettings {
    let mut settings = AuthSettings::new(ISSUER);
    settings.roles = Roles::new([
        ("user".to_string(), vec![USER_PERMISSION.to_string()]),
        ("admin".to_string(), vec!["*".to_string()]),
    ]);
    settings
}

/// Requests received, by path.
#[derive(Default)]
pub struct Calls(Mutex<HashMap<String, usize>>);

impl Calls {
    fn hit(&self, path: &str) {
        *self.0.lock().unwrap().entry(path.to_owned()).or_default() += 1;
    }

    fn get(&self, path: &str) -> usize {
        self.0.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// A running (or stopped) auth server over its own store; the store's directory is removed
/// on drop.
pub struct AuthServer {
    /// Where it listens (kept across stop and restart).
    pub addr: SocketAddr,
    /// The clock auth reads; give the gateway the same one.
    pub clock: ManualClock,
    /// The settings it runs with.
    pub settings: AuthSettings,
    service: Arc<AuthService>,
    calls: Arc<Calls>,
    dir: PathBuf,
    running: Option<Running>,
}

impl AuthServer {
    /// A server with [`auth_settings`].
    pub async fn start() -> AuthServer {
        Self::start_with(auth_settings()).await
    }

    /// A server with `settings`.
    pub async fn start_with(settings: AuthSettings) -> AuthServer {
        let dir = std::env::temp_dir().join(format!(
            "portico-gateway-identity-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let clock = ManualClock::new();
        let service = open_service(&settings, &dir, &clock).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(Calls::default());
        let running = serve(listener, service.clone(), calls.clone());
        AuthServer {
            addr,
            clock,
            settings,
            service,
            calls,
            dir,
            running: Some(running),
        }
    }

    /// Stops serving: the listener is closed and every connection with it, so calls get
    /// "connection refused".
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            running.task.await.unwrap();
        }
    }

    /// Serves again on the same address, with a fresh service on the same store (signing
    /// keys, users, sessions and keys are kept).
    pub async fn restart(&mut self) {
        self.stop().await;
        self.service = open_service(&self.settings, &self.dir, &self.clock).await;
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.running = Some(serve(listener, self.service.clone(), self.calls.clone()));
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests for `path` it has received.
    pub fn calls(&self, path: &str) -> usize {
        self.calls.get(path)
    }

    /// `POST /auth/validate` requests received.
    pub fn validations(&self) -> usize {
        self.calls("/auth/validate")
    }

    /// `GET /.well-known/jwks.json` requests received.
    pub fn jwks_fetches(&self) -> usize {
        self.calls("/.well-known/jwks.json")
    }

    /// The auth service itself, for what a test does "on auth" (logout, rotation, …).
    pub fn service(&self) -> &Arc<AuthService> {
        &self.service
    }

    /// Registers `email` (directly on the service, not counted) and returns its tokens.
    pub async fn register(&self, email: &str) -> TokenResponse {
        self.service
            .register(RegisterRequest {
                email: email.to_owned(),
                password: PASSWORD.to_owned(),
                name: None,
            })
            .await
            .unwrap()
    }

    /// Creates an API key for the holder of `access`, expiring after `expires_in` seconds.
    pub async fn api_key(&self, access: &str, expires_in: Option<u64>) -> ApiKeyCreated {
        self.service
            .create_api_key(
                access,
                CreateApiKeyRequest {
                    name: "test key".to_owned(),
                    permissions: None,
                    expires_in,
                },
            )
            .await
            .unwrap()
    }

    /// Ends the session of `access` on auth.
    pub async fn logout(&self, access: &str) {
        self.service
            .logout(access, LogoutRequest::default())
            .await
            .unwrap();
    }

    /// Gateway settings for this server: its URL and issuer, defaults otherwise.
    pub fn gateway_settings(&self) -> RemoteAuthSettings {
        RemoteAuthSettings::new(self.url(), ISSUER)
    }

    /// A gateway authenticator for this server with default settings, on its clock.
    pub fn authenticator(&self) -> RemoteAuthenticator {
        self.authenticator_with(self.gateway_settings())
    }

    /// A gateway authenticator with `settings`, on this server's clock.
    pub fn authenticator_with(&self, settings: RemoteAuthSettings) -> RemoteAuthenticator {
        RemoteAuthenticator::new(settings, self.clock.shared()).unwrap()
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.task.abort();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn open_service(
    settings: &AuthSettings,
    dir: &std::path::Path,
    clock: &ManualClock,
) -> Arc<AuthService> {
    let store = Store::open(None, dir).await.unwrap();
    AuthService::start(settings.clone(), store, clock.shared())
        .await
        .unwrap()
}

/// Serves the Auth API (as production wraps it) on `listener`, counting requests by path,
/// until told to stop.
fn serve(
    listener: tokio::net::TcpListener,
    service: Arc<AuthService>,
    calls: Arc<Calls>,
) -> Running {
    let app = portico_auth::api::router(service)
        .layer(portico_core::error::envelope_layer())
        .layer(portico_core::request_id::RequestIdLayer::new())
        .layer(axum::middleware::map_request(
            move |request: axum::extract::Request| {
                calls.hit(request.uri().path());
                std::future::ready(request)
            },
        ));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Running { stop, task }
}

/// A listener that accepts connections and never answers: a hung auth.
pub async fn black_hole() -> (SocketAddr, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (addr, task)
}

/// Serves `app` on `127.0.0.1:0` (a fake auth); returns its URL and task.
pub async fn fake_auth(app: axum::Router) -> (String, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), task)
}

/// Every log line this test process writes (INFO and up), through a global subscriber
/// installed on first use. Tests run in parallel, so read only lines that carry something
/// unique to the test (its auth URL).
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    /// The process's captured logs (installing the subscriber the first time).
    pub fn global() -> &'static CapturedLogs {
        static LOGS: std::sync::OnceLock<CapturedLogs> = std::sync::OnceLock::new();
        LOGS.get_or_init(|| {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            let writer = buffer.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .with_writer(move || LogWriter(writer.clone()))
                .finish();
            tracing::subscriber::set_global_default(subscriber).unwrap();
            CapturedLogs(buffer)
        })
    }

    /// The lines containing every one of `texts`.
    pub fn lines_with(&self, texts: &[&str]) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| texts.iter().all(|t| l.contains(t)))
            .map(str::to_owned)
            .collect()
    }
}

/// The identity `gateway` finds for `credential`; panics on a refusal.
pub async fn ok(gateway: &RemoteAuthenticator, credential: &str) -> Identity {
    match gateway.authenticate(credential).await {
        Ok(identity) => identity,
        Err(e) => panic!("expected an identity, got {e:?}"),
    }
}

/// The refusal in `result`, asserted to carry `code`.
#[track_caller]
pub fn assert_refused(result: Result<Identity, ApiError>, code: ErrorCode) -> ApiError {
    match result {
        Ok(identity) => panic!("expected {code:?}, got {identity:?}"),
        Err(e) => {
            assert_eq!(e.code(), code, "{e:?}");
            e
        }
    }
}
