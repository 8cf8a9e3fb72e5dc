//! The gateway in the real binary: `portico up` proxying to a real upstream with the caller's
//! identity (seed 002's ETL route), and `portico gateway` alone in front of a separate
//! `portico auth` that is then stopped (seed 000 scenario 3).
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use support::{JSON, Scratch, Server, register, request};

/// A tiny HTTP upstream: records every request head and answers `{"ok":true}`.
struct Upstream {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut raw = Vec::new();
                let mut buf = [0u8; 4096];
                while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => raw.extend_from_slice(&buf[..n]),
                    }
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&raw).to_lowercase());
                let body = r#"{"ok":true}"#;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Upstream { addr, heads }
    }

    fn last_head(&self) -> String {
        self.heads
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }

    fn hits(&self) -> usize {
        self.heads.lock().unwrap().len()
    }
}

fn config(upstream: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[server]
data_dir = "data"

[upstreams.etl]
url = "http://{upstream}"
internal_token = "etl-internal-secret"

[[routes]]
prefix = "/api/etl"
upstream = "etl"
rewrite = "/api/v1"
auth = "required"
permissions = ["etl.access"]

[roles.user]
permissions = ["etl.access"]
[roles.viewer]
permissions = []
{extra}"#
    )
}

#[test]
fn portico_up_proxies_the_etl_route_with_the_callers_identity() {
    let upstream = Upstream::start();
    let scratch = Scratch::new();
    scratch.write("portico.toml", &config(upstream.addr, ""));
    let server = Server::start(scratch.path(), &[], &[]);

    let missing = server.get("/api/etl/jobs/start", &[]);
    assert_eq!(missing.status, 401, "{}", missing.body);
    assert_eq!(missing.json()["error"]["code"], "AUTH_003");
    assert_eq!(upstream.hits(), 0);

    let token = register(server.addr, "ada@example.com");
    let bearer = format!("Bearer {token}");
    let res = request(
        server.addr,
        "POST",
        "/api/etl/jobs/start",
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
            ("X-User-ID", "admin"),
            ("X-Internal-Auth", "guessed"),
            ("X-Request-ID", "e2e-etl-1"),
        ],
        br#"{"job":"jira_sync"}"#,
    );
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["ok"], true);
    assert_eq!(res.header("x-request-id"), Some("e2e-etl-1"));
    let head = upstream.last_head();
    assert!(
        head.starts_with("post /api/v1/jobs/start http/1.1"),
        "{head}"
    );
    assert!(head.contains("x-user-email: ada@example.com"), "{head}");
    assert!(head.contains("x-user-permissions: etl.access"), "{head}");
    assert!(
        head.contains("x-internal-auth: etl-internal-secret"),
        "{head}"
    );
    assert!(head.contains("x-request-id: e2e-etl-1"), "{head}");
    assert!(
        !head.contains("x-user-id: admin"),
        "spoofed id reached the upstream: {head}"
    );
    assert!(!head.contains("guessed"), "{head}");

    let status = server.get("/status/services", &[]).json();
    assert_eq!(status["services"]["etl"]["state"], "closed");
    let unknown = server.get("/nowhere", &[]);
    assert_eq!(unknown.json()["error"]["code"], "REQ_003");

    // Proxied requests count under their route's prefix, not as unmatched.
    let metrics = server.get("/metrics", &[]).body;
    let counted = |route: &str, status: &str| {
        metrics.lines().any(|l| {
            l.starts_with("portico_http_requests_total{")
                && l.contains(&format!("route=\"{route}\""))
                && l.contains(&format!("status=\"{status}\""))
        })
    };
    assert!(counted("/api/etl", "200"), "{metrics}");
    assert!(counted("/api/etl", "401"), "{metrics}");
    assert!(counted("unmatched", "404"), "{metrics}");
    assert!(!counted("unmatched", "200"), "{metrics}");
}

#[test]
fn portico_up_refuses_a_logged_out_token_at_once_after_serving_it() {
    // The gateway of `portico up` keeps what a token's claims made per serving thread; auth
    // still decides every request, so a logout is seen by the very next one.
    let upstream = Upstream::start();
    let scratch = Scratch::new();
    scratch.write("portico.toml", &config(upstream.addr, ""));
    let server = Server::start(scratch.path(), &[], &[]);
    let token = register(server.addr, "eve@example.com");
    let bearer = format!("Bearer {token}");
    for _ in 0..20 {
        let res = server.get("/api/etl/jobs", &[("Authorization", &bearer)]);
        assert_eq!(res.status, 200, "{}", res.body);
        let head = upstream.last_head();
        assert!(head.contains("x-user-email: eve@example.com"), "{head}");
        assert!(head.contains("x-portico-identity: "), "{head}");
    }
    let out = request(
        server.addr,
        "POST",
        "/auth/logout",
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(out.status, 204, "{}", out.body);
    let res = server.get("/api/etl/jobs", &[("Authorization", &bearer)]);
    assert_eq!(res.status, 401, "{}", res.body);
    assert_eq!(res.json()["error"]["code"], "AUTH_007");
    assert_eq!(upstream.hits(), 20);
}

#[test]
fn portico_up_refuses_a_caller_without_the_routes_permission() {
    let upstream = Upstream::start();
    let scratch = Scratch::new();
    scratch.write(
        "portico.toml",
        &config(upstream.addr, "").replace(
            "[roles.user]\npermissions = [\"etl.access\"]",
            "[roles.user]\npermissions = []",
        ),
    );
    let server = Server::start(scratch.path(), &[], &[]);
    let token = register(server.addr, "bob@example.com");
    let res = server.get(
        "/api/etl/jobs",
        &[("Authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(res.status, 403, "{}", res.body);
    assert_eq!(res.json()["error"]["code"], "AUTH_006");
    assert_eq!(upstream.hits(), 0);
}

#[test]
fn portico_gateway_alone_keeps_serving_cached_callers_when_auth_stops() {
    let upstream = Upstream::start();
    let scratch = Scratch::new();
    // Auth first, on its own data dir; the gateway finds it through [auth] url.
    scratch.write("auth.toml", &config(upstream.addr, ""));
    let mut auth = Server::start_command(scratch.path(), "auth", &["--config", "auth.toml"], &[]);
    let auth_url = format!("http://{}", auth.addr);
    scratch.write(
        "gateway.toml",
        &config(
            upstream.addr,
            &format!("\n[auth]\nurl = \"{auth_url}\"\nissuer = \"http://127.0.0.1:8080\"\n"),
        ),
    );
    let gateway = Server::start_command(
        scratch.path(),
        "gateway",
        &["--config", "gateway.toml"],
        &[],
    );
    assert!(
        gateway
            .wait_for_line(|l| l.contains("gateway serving 1 route to 1 upstream"))
            .is_some()
    );
    let seen = register(auth.addr, "cached@example.com");
    let unseen = register(auth.addr, "fresh@example.com");
    let call = |token: &str| {
        gateway.get(
            "/api/etl/jobs",
            &[("Authorization", &format!("Bearer {token}"))],
        )
    };
    assert_eq!(call(&seen).status, 200);

    auth.terminate();
    auth.wait_exit();
    // Seed 000 scenario 3: a validation the gateway holds still serves …
    let cached = call(&seen);
    assert_eq!(cached.status, 200, "{}", cached.body);
    // … and one it never made gets 503 SYS_002, not a guess.
    let fresh = call(&unseen);
    assert_eq!(fresh.status, 503, "{}", fresh.body);
    assert_eq!(fresh.json()["error"]["code"], "SYS_002");
    assert!(fresh.header("retry-after").is_some());
}

/// `etl` probed at `/health` (critical) plus a non-critical `search` on a closed port.
fn config_with_health(upstream: SocketAddr, extra: &str) -> String {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    config(
        upstream,
        &format!("\n[upstreams.search]\nurl = \"http://{closed}\"\nhealth = \"/health\"\n{extra}"),
    )
    .replace(
        "internal_token = \"etl-internal-secret\"\n",
        "internal_token = \"etl-internal-secret\"\nhealth = \"/health\"\ncritical = true\n",
    )
}

#[test]
fn portico_up_health_lists_each_probed_upstream() {
    let upstream = Upstream::start();
    let scratch = Scratch::new();
    scratch.write("portico.toml", &config_with_health(upstream.addr, ""));
    let server = Server::start(scratch.path(), &[], &[]);

    let res = server.get("/health", &[]);
    // Only the non-critical `search` fails: degraded, still 200.
    assert_eq!(res.status, 200, "{}", res.body);
    let json = res.json();
    assert_eq!(json["status"], "degraded", "{json}");
    assert_eq!(json["checks"]["etl"]["status"], "healthy", "{json}");
    assert_eq!(json["checks"]["etl"]["critical"], true, "{json}");
    assert!(json["checks"]["etl"]["latency_ms"].is_u64(), "{json}");
    assert_eq!(json["checks"]["search"]["status"], "unhealthy", "{json}");
    assert_eq!(json["checks"]["search"]["message"], "unreachable", "{json}");
    assert_eq!(json["checks"]["database"]["status"], "healthy", "{json}");
    // `portico up` runs auth itself: no `auth` probe.
    assert!(json["checks"].get("auth").is_none(), "{json}");
    let head = upstream.last_head();
    assert!(head.starts_with("get /health http/1.1"), "{head}");
    assert!(!res.body.contains("127.0.0.1"), "{}", res.body);
    // The probe failures did not touch the breakers.
    let status = server.get("/status/services", &[]).json();
    assert_eq!(status["services"]["search"]["state"], "closed", "{status}");
    assert_eq!(status["services"]["search"]["failure_count"], 0, "{status}");
}

#[test]
fn portico_gateway_health_is_503_while_auth_is_down() {
    let upstream = Upstream::start();
    let scratch = Scratch::new();
    scratch.write("auth.toml", &config(upstream.addr, ""));
    let mut auth = Server::start_command(scratch.path(), "auth", &["--config", "auth.toml"], &[]);
    let auth_url = format!("http://{}", auth.addr);
    scratch.write(
        "gateway.toml",
        &config_with_health(
            upstream.addr,
            &format!("\n[auth]\nurl = \"{auth_url}\"\nissuer = \"http://127.0.0.1:8080\"\n"),
        ),
    );
    let gateway = Server::start_command(
        scratch.path(),
        "gateway",
        &["--config", "gateway.toml"],
        &[],
    );

    let up = gateway.get("/health", &[]);
    assert_eq!(up.status, 200, "{}", up.body);
    let json = up.json();
    assert_eq!(json["checks"]["auth"]["status"], "healthy", "{json}");
    assert_eq!(json["checks"]["auth"]["critical"], true, "{json}");
    assert_eq!(json["checks"]["etl"]["status"], "healthy", "{json}");

    auth.terminate();
    auth.wait_exit();
    let down = gateway.get("/health", &[]);
    assert_eq!(down.status, 503, "{}", down.body);
    let json = down.json();
    assert_eq!(json["status"], "unhealthy", "{json}");
    assert_eq!(json["checks"]["auth"]["status"], "unhealthy", "{json}");
    assert_eq!(json["checks"]["auth"]["message"], "unreachable", "{json}");
    assert!(!down.body.contains("127.0.0.1"), "{}", down.body);
}

#[test]
fn portico_up_keeps_the_gateway_identity_key_across_restarts() {
    let upstream = Upstream::start();
    let scratch = Scratch::new();
    scratch.write("portico.toml", &config(upstream.addr, ""));
    let jwks_path = "/.well-known/portico-identity-jwks.json";

    let mut first = Server::start(scratch.path(), &[], &[]);
    let created = first.wait_for_line(|l| l.contains("gateway identity key created at"));
    assert!(
        created.is_some_and(|l| l.contains("gateway-identity.key")),
        "{:?}",
        first.output()
    );
    let jwks = first.get(jwks_path, &[]);
    assert_eq!(jwks.status, 200, "{}", jwks.body);
    assert_eq!(jwks.header("cache-control"), Some("public, max-age=300"));
    let kid = jwks.json()["keys"][0]["kid"].as_str().unwrap().to_owned();
    assert_eq!(kid.len(), 43, "an RFC 7638 thumbprint: {kid}");

    let token = register(first.addr, "ada@example.com");
    let res = first.get(
        "/api/etl/jobs",
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("X-Portico-Identity", "forged"),
        ],
    );
    assert_eq!(res.status, 200, "{}", res.body);
    let head = upstream.last_head();
    assert!(head.contains("x-portico-identity: ey"), "{head}");
    assert!(!head.contains("forged"), "{head}");

    let key_file = scratch.path().join("data").join("gateway-identity.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    first.terminate();
    assert!(first.wait_exit().is_some());
    drop(first);

    let second = Server::start(scratch.path(), &[], &[]);
    let again = second.get(jwks_path, &[]).json();
    assert_eq!(again["keys"][0]["kid"], kid.as_str());
    assert!(
        !second
            .output()
            .iter()
            .any(|l| l.contains("gateway identity key created")),
        "the key was made again: {:?}",
        second.output()
    );
}

#[test]
fn portico_up_applies_cors_from_the_config() {
    let upstream = Upstream::start();
    let scratch = Scratch::new();
    let extra = "[cors]\nallow_origins = [\"https://app.example.com\"]\nmax_age = \"2m\"\n";
    let text = config(upstream.addr, extra).replace(
        "permissions = [\"etl.access\"]\n\n[roles.user]",
        "permissions = [\"etl.access\"]\n\n[[routes]]\nprefix = \"/nocors\"\nupstream = \"etl\"\nauth = \"none\"\ncors = false\n\n[roles.user]",
    );
    scratch.write("portico.toml", &text);
    let server = Server::start(scratch.path(), &[], &[]);

    let app = [
        ("Origin", "https://app.example.com"),
        ("Access-Control-Request-Method", "POST"),
    ];
    let pre = request(server.addr, "OPTIONS", "/api/etl/jobs", &app, b"");
    assert_eq!(pre.status, 204, "{}", pre.body);
    assert_eq!(
        pre.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(pre.header("access-control-max-age"), Some("120"));
    assert_eq!(upstream.hits(), 0);

    let denied = server.get("/api/etl/jobs", &app[..1]);
    assert_eq!(denied.status, 401);
    assert_eq!(
        denied.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );

    let off = request(server.addr, "OPTIONS", "/nocors/x", &app, b"");
    assert_eq!(off.status, 200, "proxied: {}", off.body);
    assert_eq!(off.header("access-control-allow-origin"), None);
    assert_eq!(upstream.hits(), 1);
}

/// Proxied paths skip the router (crates/portico/src/front.rs), but Portico's own endpoints
/// keep their precedence over a gateway route on `/`; everything else is proxied, with the
/// request id, metrics and body limit the router's stack gives.
#[test]
fn front_keeps_portico_endpoints_before_a_catch_all_route() {
    let upstream = Upstream::start();
    let scratch = Scratch::new();
    let text = format!(
        "[server]\ndata_dir = \"data\"\nmax_body = \"1KB\"\n\n[upstreams.all]\nurl = \"http://{}\"\n\n[[routes]]\nprefix = \"/\"\nupstream = \"all\"\nauth = \"none\"\n",
        upstream.addr
    );
    scratch.write("portico.toml", &text);
    let server = Server::start(scratch.path(), &[], &[]);

    let live = server.get("/health/live", &[]);
    assert_eq!(live.status, 200, "{}", live.body);
    assert_ne!(live.body, r#"{"ok":true}"#, "proxied: {}", live.body);
    assert!(server.get("/health", &[]).json()["checks"].is_object());
    assert!(server.get("/status/services", &[]).json()["services"]["all"].is_object());
    assert!(server.get("/.well-known/jwks.json", &[]).json()["keys"].is_array());
    let identity_jwks = server.get("/.well-known/portico-identity-jwks.json", &[]);
    assert!(
        identity_jwks.json()["keys"].is_array(),
        "{}",
        identity_jwks.body
    );
    let login = request(server.addr, "POST", "/auth/login", &JSON, b"{}");
    assert_eq!(login.json()["error"]["code"], "REQ_001", "{}", login.body);
    // The realtime hub's routes: /ws (not an upgrade here) and the publish API.
    let ws = server.get("/ws", &[]);
    assert_eq!(ws.json()["error"]["code"], "BACKEND_004", "{}", ws.body);
    let publish = request(
        server.addr,
        "POST",
        "/internal/publish",
        &JSON,
        b"{\"event\":\"x\"}",
    );
    assert_eq!(
        publish.json()["error"]["code"],
        "AUTH_003",
        "{}",
        publish.body
    );
    // The dashboard's pages.
    let dashboard = server.get("/dashboard/sign-in", &[]);
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    assert!(dashboard.body.contains("<form"), "{}", dashboard.body);
    assert_eq!(upstream.hits(), 0, "{}", upstream.last_head());

    // Paths the router has no route for are the gateway's, under Portico's prefixes too.
    for path in ["/healthz", "/health/other", "/anything/deeper?q=1", "/"] {
        let res = server.get(path, &[("X-Request-ID", "front-1")]);
        assert_eq!(res.status, 200, "{path}: {}", res.body);
        assert_eq!(res.json()["ok"], true, "{path}");
        assert_eq!(res.header("x-request-id"), Some("front-1"), "{path}");
        assert!(upstream.last_head().contains("x-request-id: front-1"));
    }
    assert_eq!(upstream.hits(), 4);

    let big = vec![b'x'; 2048];
    let refused = request(server.addr, "POST", "/upload", &JSON, &big);
    assert_eq!(refused.status, 413, "{}", refused.body);
    assert_eq!(refused.json()["error"]["code"], "REQ_002");
    assert!(refused.header("x-request-id").is_some());
    assert_eq!(upstream.hits(), 4);

    let metrics = server.get("/metrics", &[]).body;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("portico_http_requests_total{")
                && l.contains("route=\"/\"")
                && l.contains("status=\"200\"")),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("portico_http_requests_total{")
                && l.contains("route=\"/health/live\"")),
        "{metrics}"
    );
}
