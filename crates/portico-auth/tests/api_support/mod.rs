//! Scaffolding for the black-box HTTP tests of the Auth API: a real server on `127.0.0.1:0`
//! (router wrapped in the envelope and request-id layers, as production serves it) over a
//! fresh SQLite store in a scratch directory and a [`ManualClock`], and a tiny HTTP/1.1
//! client on a raw `TcpStream` that returns status, headers and the JSON body.
// Not every helper is used by every test.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portico_auth::rbac::Roles;
use portico_auth::settings::AuthSettings;
use portico_auth::store::Store;
use portico_core::clock::ManualClock;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// The issuer every test server uses.
pub const ISSUER: &str = "https://auth.portico.test";

/// The permission the test `user` role grants, so permission lists are not empty.
pub const USER_PERMISSION: &str = "etl.access";

/// A good password for test accounts.
pub const PASSWORD: &str = "correct horse battery staple";

/// Settings with the test issuer and roles: `user` → [`USER_PERMISSION`], `admin` → `*`.
pub fn settings() -> AuthSettings {
    let mut settings = AuthSettings::new(ISSUER);
    settings.roles = Roles::new([
        ("user".to_string(), vec![USER_PERMISSION.to_string()]),
        ("admin".to_string(), vec!["*".to_string()]),
    ]);
    settings
}

/// A running auth server over its own store and clock; the store's directory is removed on drop.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The clock the service reads.
    pub clock: ManualClock,
    /// The settings it was started with.
    pub settings: AuthSettings,
    /// The service behind the API, for what a caller in the same process uses.
    pub service: Arc<portico_auth::service::AuthService>,
    dir: PathBuf,
    task: JoinHandle<()>,
}

impl Server {
    /// A server with [`settings`].
    pub async fn start() -> Server {
        Self::start_with(settings()).await
    }

    /// A server with `settings`.
    pub async fn start_with(settings: AuthSettings) -> Server {
        let dir = std::env::temp_dir().join(format!(
            "portico-auth-api-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(None, &dir).await.unwrap();
        let clock = ManualClock::new();
        let service =
            portico_auth::service::AuthService::start(settings.clone(), store, clock.shared())
                .await
                .unwrap();
        let service: Arc<_> = service;
        let app = portico_auth::api::router(service.clone())
            .layer(portico_core::error::envelope_layer())
            .layer(portico_core::request_id::RequestIdLayer::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Server {
            addr,
            clock,
            settings,
            service,
            dir,
            task,
        }
    }

    /// Sends one request; `body` is sent as `application/json` when given.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Response {
        send_raw(self.addr, method, path, headers, body).await
    }

    /// The data directory of the server's SQLite store.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Response {
        self.send("GET", path, &[], None).await
    }

    /// `GET path` with `Authorization: Bearer <token>`.
    pub async fn get_bearer(&self, path: &str, token: &str) -> Response {
        let auth = format!("Bearer {token}");
        self.send("GET", path, &[("Authorization", &auth)], None)
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.send("POST", path, &[], Some(body.to_string().into_bytes()))
            .await
    }

    /// `POST path` with a JSON body and `Authorization: Bearer <token>`.
    pub async fn post_bearer(&self, path: &str, token: &str, body: Option<&Value>) -> Response {
        let auth = format!("Bearer {token}");
        self.send(
            "POST",
            path,
            &[("Authorization", &auth)],
            body.map(|b| b.to_string().into_bytes()),
        )
        .await
    }

    /// `POST /auth/register`.
    pub async fn register(&self, email: &str, password: &str, name: Option<&str>) -> Response {
        let mut body = json!({"email": email, "password": password});
        if let Some(name) = name {
            body["name"] = json!(name);
        }
        self.post("/auth/register", &body).await
    }

    /// Registers `email` with [`PASSWORD`], asserting 201; returns the token response.
    pub async fn register_ok(&self, email: &str) -> Value {
        let response = self.register(email, PASSWORD, None).await;
        assert_eq!(response.status, 201, "register: {response:?}");
        response.json
    }

    /// `POST /auth/login`.
    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post(
            "/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// `POST /auth/refresh`.
    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post("/auth/refresh", &json!({"refresh_token": refresh_token}))
            .await
    }

    /// `POST /auth/validate`.
    pub async fn validate(&self, token: &str) -> Response {
        self.post("/auth/validate", &json!({"token": token})).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
    /// The body as JSON (`Null` when empty or not JSON).
    pub json: Value,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one HTTP/1.1 request with `Connection: close` and reads the response to the end.
/// The body is written by its own task while the response is read, so a server that answers
/// before reading the whole body (413) is still heard.
pub async fn send_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Response {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or_default();
    let has_content_type = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
    if !body.is_empty() && !has_content_type {
        head.push_str("Content-Type: application/json\r\n");
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let writer = tokio::spawn(async move {
        // Errors are ignored: the server may answer and close before reading everything.
        let _ = wr.write_all(head.as_bytes()).await;
        for chunk in body.chunks(64 * 1024) {
            if wr.write_all(chunk).await.is_err() {
                return;
            }
        }
        let _ = wr.flush().await;
        // Keep the write half open (no FIN) until the response is read.
        std::future::pending::<()>().await;
    });
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match rd.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // A reset after the response was sent (unread request body): keep what arrived.
            Err(_) if !raw.is_empty() => break,
            Err(e) => panic!("{method} {path}: read failed: {e}"),
        }
        if response_complete(&raw) {
            break;
        }
    }
    writer.abort();
    parse_response(&raw)
}

/// Whether `raw` holds a whole response with a `Content-Length` (so reading can stop early).
fn response_complete(raw: &[u8]) -> bool {
    let Some(end) = find(raw, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    head.lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .is_some_and(|len| raw.len() >= end + 4 + len)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_response(raw: &[u8]) -> Response {
    let end = find(raw, b"\r\n\r\n").unwrap_or_else(|| {
        panic!(
            "no complete response head in {:?}",
            String::from_utf8_lossy(raw)
        )
    });
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        match headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
        {
            Some(len) => rest[..len.min(rest.len())].to_vec(),
            None => rest.to_vec(),
        }
    };
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Response {
        status,
        headers,
        body,
        json,
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = find(rest, b"\r\n") {
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim().to_string();
        let Ok(size) = usize::from_str_radix(&size_text, 16) else {
            break;
        };
        rest = &rest[line_end + 2..];
        if size == 0 || rest.len() < size {
            out.extend_from_slice(&rest[..size.min(rest.len())]);
            break;
        }
        out.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or(&[]);
    }
    out
}

/// Asserts `response` is the error envelope of DESIGN.md with `status` and `code`, its
/// `trace_id` equal to the `X-Request-ID` response header; returns `error`.
#[track_caller]
pub fn assert_error(response: &Response, status: u16, code: &str) -> Value {
    assert_eq!(
        (response.status, response.json["error"]["code"].as_str()),
        (status, Some(code)),
        "expected {status} {code}, got: {response:?} body {}",
        String::from_utf8_lossy(&response.body)
    );
    assert_envelope(response);
    response.json["error"].clone()
}

/// Asserts `response` is a well-formed error envelope (any code).
#[track_caller]
pub fn assert_envelope(response: &Response) {
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "envelope Content-Type {content_type:?}: {response:?}"
    );
    let error = &response.json["error"];
    assert!(error["code"].is_string(), "no error.code: {response:?}");
    assert!(
        error["message"].is_string(),
        "no error.message: {response:?}"
    );
    assert!(
        error["details"].is_object(),
        "no error.details: {response:?}"
    );
    assert!(
        error["timestamp"].is_string(),
        "no error.timestamp: {response:?}"
    );
    assert_eq!(
        response.json["status"].as_u64(),
        Some(u64::from(response.status)),
        "envelope status: {response:?}"
    );
    let request_id = response
        .header("x-request-id")
        .unwrap_or_else(|| panic!("no X-Request-ID header: {response:?}"));
    assert_eq!(
        error["trace_id"].as_str(),
        Some(request_id),
        "trace_id vs X-Request-ID: {response:?}"
    );
}

/// The names in `error.details.fields` (an object keyed by field path).
pub fn field_names(error: &Value) -> Vec<String> {
    error["details"]["fields"]
        .as_object()
        .map(|fields| fields.keys().cloned().collect())
        .unwrap_or_default()
}

/// A JWT's three parts, header and payload decoded.
pub struct Jwt {
    /// The decoded header.
    pub header: Value,
    /// The decoded payload.
    pub claims: Value,
    /// The three base64url parts.
    pub parts: [String; 3],
}

/// Splits and decodes a compact JWT (panics when it is not one).
pub fn decode_jwt(token: &str) -> Jwt {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWT: {token:?}");
    let header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    Jwt {
        header,
        claims,
        parts: [
            parts[0].to_string(),
            parts[1].to_string(),
            parts[2].to_string(),
        ],
    }
}

/// base64url (no padding) of `json`.
pub fn b64_json(json: &Value) -> String {
    URL_SAFE_NO_PAD.encode(json.to_string())
}

/// Decodes base64url without padding.
pub fn b64_decode(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

/// `secs` since the Unix epoch as `YYYY-MM-DDTHH:MM:SS` (UTC), the prefix of its RFC 3339 form.
pub fn rfc3339_prefix(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}
