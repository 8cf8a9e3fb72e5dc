//! `portico up`: the real binary on a real port — operational endpoints, the error envelope,
//! request ids, graceful shutdown on SIGTERM, JSON logs, and start-up failures.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use support::{Scratch, Server, request, run};

const CONFIG: &str = r#"
[server]
data_dir = "data"
max_body = "1KiB"
drain_timeout = "5s"

[upstreams.etl]
url = "http://127.0.0.1:9"
preset = "billing"

[upstreams.search]
url = "http://127.0.0.1:9"
"#;

fn start(scratch: &Scratch, extra: &[&str]) -> Server {
    scratch.write("portico.toml", CONFIG);
    Server::start(scratch.path(), extra, &[])
}

#[test]
fn operational_endpoints_answer() {
    let scratch = Scratch::new();
    let server = start(&scratch, &[]);

    let live = server.get("/health/live", &[]);
    assert_eq!(live.status, 200);

    let health = server.get("/health", &[]);
    assert_eq!(health.status, 200, "{health:?}");
    let report = health.json();
    assert_eq!(report["status"], "healthy", "{report}");
    assert_eq!(
        report["checks"]["data_dir"]["status"], "healthy",
        "{report}"
    );
    assert!(
        report["checks"]["data_dir"]["latency_ms"].is_number(),
        "{report}"
    );
    assert!(report["timestamp"].is_string(), "{report}");
    assert_eq!(server.get("/health/ready", &[]).status, 200);
    assert!(
        scratch.path().join("data").is_dir(),
        "the data dir is created"
    );

    let metrics = server.get("/metrics", &[]);
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("text/plain"),
        "{metrics:?}"
    );
    assert!(
        metrics.body.contains("portico_http_requests_total"),
        "{}",
        metrics.body
    );
}

#[test]
fn status_services_has_the_seed_001_shape() {
    let scratch = Scratch::new();
    let server = start(&scratch, &[]);
    let status = server.get("/status/services", &[]);
    assert_eq!(status.status, 200, "{status:?}");
    let body = status.json();
    let names: Vec<&String> = body["services"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["etl", "search"], "{body}");
    assert!(
        body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{body}"
    );
    for (name, entry) in body["services"].as_object().unwrap() {
        assert_eq!(entry["service"], name.as_str(), "{body}");
        assert_eq!(entry["state"], "closed", "{body}");
        assert_eq!(entry["failure_count"], 0, "{body}");
        assert!(entry["last_failure"].is_null(), "{body}");
    }
}

#[test]
fn an_unknown_path_gets_the_req_003_envelope_with_the_request_id() {
    let scratch = Scratch::new();
    let server = start(&scratch, &[]);

    let response = server.get("/no/such/route", &[]);
    assert_eq!(response.status, 404);
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let body = response.json();
    assert_eq!(body["status"], 404);
    assert_eq!(body["error"]["code"], "REQ_003");
    let id = response
        .header("x-request-id")
        .expect("X-Request-ID on errors");
    assert_eq!(body["error"]["trace_id"], id);

    let echoed = server.get("/no/such/route", &[("X-Request-ID", "client-chosen-id.42")]);
    assert_eq!(echoed.header("x-request-id"), Some("client-chosen-id.42"));
    assert_eq!(echoed.json()["error"]["trace_id"], "client-chosen-id.42");

    let replaced = server.get("/health/live", &[("X-Request-ID", "bad id with spaces")]);
    let id = replaced.header("x-request-id").unwrap();
    assert_ne!(id, "bad id with spaces");
    assert!(!id.is_empty());
}

#[test]
fn a_body_over_max_body_is_refused_with_req_002() {
    let scratch = Scratch::new();
    let server = start(&scratch, &[]);
    let body = vec![b'x'; 4096];
    let response = request(server.addr, "POST", "/anything", &[], &body);
    assert_eq!(response.status, 413, "{response:?}");
    assert_eq!(response.json()["error"]["code"], "REQ_002");
}

#[test]
fn sigterm_logs_the_shutdown_and_exits_zero() {
    let scratch = Scratch::new();
    let mut server = start(&scratch, &[]);
    assert_eq!(server.get("/health/live", &[]).status, 200);
    let signalled = std::time::Instant::now();
    server.terminate();
    let status = server.wait_exit().expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(0));
    // Nothing is in flight, so it must not wait for the 5 s drain deadline.
    assert!(
        signalled.elapsed() < std::time::Duration::from_secs(4),
        "{:?}",
        signalled.elapsed()
    );
    for line in [
        "received SIGTERM",
        "draining for up to 5s",
        "portico up: stopped",
    ] {
        assert!(
            server.wait_for_line(|l| l.contains(line)).is_some(),
            "no {line:?} in {:?}",
            server.output()
        );
    }
}

#[test]
fn json_log_format_writes_one_json_object_per_line() {
    let scratch = Scratch::new();
    let mut server = start(&scratch, &["--log-format", "json"]);
    assert_eq!(server.get("/health/live", &[]).status, 200);
    server.terminate();
    server.wait_exit().expect("exits after SIGTERM");
    server.wait_for_line(|l| l.contains("portico up: stopped"));
    let lines = server.output();
    assert!(lines.len() >= 3, "{lines:?}");
    for line in lines.iter().filter(|l| !l.trim().is_empty()) {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
        assert!(
            parsed.is_ok_and(|v| v.is_object()),
            "not a JSON object: {line:?}"
        );
    }
}

#[test]
fn a_port_in_use_is_a_clear_error_with_exit_1() {
    let scratch = Scratch::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for command in ["up", "auth", "gateway", "realtime"] {
        let out = run(scratch.path(), &[command, "--listen", &addr], &[]);
        assert_eq!(out.code, Some(1), "{out:?}");
        assert!(
            out.stderr
                .contains(&format!("portico {command}: cannot listen on {addr}")),
            "{command}: {}",
            out.stderr
        );
    }
}

#[test]
fn a_bad_config_stops_up_with_exit_2() {
    let scratch = Scratch::new();
    scratch.write("portico.toml", "[server]\nmax_body = \"huge\"\n");
    let out = run(scratch.path(), &["up", "--listen", "127.0.0.1:0"], &[]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("portico.toml:2: server.max_body: invalid size"),
        "{}",
        out.stderr
    );
}

#[test]
fn portico_listen_env_sets_the_address_when_no_flag_is_given() {
    let scratch = Scratch::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    // The env var is honoured: binding the taken port fails and names it.
    let out = run(scratch.path(), &["up"], &[("PORTICO_LISTEN", &addr)]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains(&addr), "{}", out.stderr);
}

#[test]
fn an_invalid_log_filter_is_a_usage_error() {
    let scratch = Scratch::new();
    let out = run(
        scratch.path(),
        &[
            "up",
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            "portico=loudest",
        ],
        &[],
    );
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("--log-level"), "{}", out.stderr);
}

#[test]
fn auth_is_served_under_slash_auth_with_a_sqlite_store_in_the_data_dir() {
    let scratch = Scratch::new();
    scratch.write(
        "portico.toml",
        "[server]\ndata_dir = \"data\"\n\n[roles.user]\npermissions = [\"etl.access\"]\n",
    );
    let server = Server::start(scratch.path(), &[], &[]);
    let json = [("Content-Type", "application/json")];
    let registered = request(
        server.addr,
        "POST",
        "/auth/register",
        &json,
        br#"{"email":"ada@example.com","password":"correct horse","name":"Ada"}"#,
    );
    assert_eq!(registered.status, 201, "{}", registered.body);
    let access = registered.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let validated = request(
        server.addr,
        "POST",
        "/auth/validate",
        &json,
        format!(r#"{{"token":"{access}"}}"#).as_bytes(),
    );
    assert_eq!(validated.status, 200, "{}", validated.body);
    let body = validated.json();
    assert_eq!(body["email"], "ada@example.com");
    assert_eq!(body["token_type"], "user");
    assert_eq!(body["permissions"], serde_json::json!(["etl.access"]));

    let wrong = request(
        server.addr,
        "POST",
        "/auth/login",
        &json,
        br#"{"email":"ada@example.com","password":"wrong password"}"#,
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["error"]["code"], "AUTH_005");
    assert_eq!(
        wrong.json()["error"]["trace_id"].as_str(),
        wrong.header("x-request-id")
    );

    let jwks = server.get("/.well-known/jwks.json", &[]);
    assert_eq!(jwks.json()["keys"][0]["crv"], "Ed25519");
    let health = server.get("/health", &[]).json();
    assert_eq!(health["checks"]["database"]["status"], "healthy");
    assert!(scratch.path().join("data/portico.db").exists());
}

#[test]
fn portico_auth_serves_the_auth_api_alone() {
    let scratch = Scratch::new();
    scratch.write("portico.toml", "[server]\ndata_dir = \"data\"\n");
    let server = Server::start_command(scratch.path(), "auth", &[], &[]);
    assert!(
        server
            .wait_for_line(|l| l.contains("portico auth: listening on"))
            .is_some()
    );
    let jwks = server.get("/.well-known/jwks.json", &[]);
    assert_eq!(jwks.status, 200);
    assert_eq!(jwks.json()["keys"][0]["kty"], "OKP");
    let missing = server.get("/auth/me", &[]);
    assert_eq!(missing.json()["error"]["code"], "AUTH_003");
}
