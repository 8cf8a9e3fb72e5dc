//! examples/netra-apex (seed 000) walked through the real processes, with the example's own
//! portico.toml:
//!
//! 1. `portico up` in front of `portico demo agent`: password sign-in, a WebSocket refused
//!    with 1008 for a bad token and accepted with a good one (30 s heartbeat announced), a run
//!    started with `user_message` or `start_agent` streamed back from `agent_started` to
//!    `agent_completed`, and an enterprise API key calling `POST /api/optimize`.
//! 2. Scenario 3, scaled out: `portico auth` and `portico gateway` apart; auth stops, the
//!    token and the key the gateway validated before still serve, a new token gets 503.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use serde_json::{Value, json};
use support::{
    Demo, JSON, Scratch, Server, example_config, free_addr, register, request, ws_connect, ws_next,
    ws_send,
};

const INTERNAL: &str = "agent-internal-secret-0123456789";
const SECRETS: [(&str, &str); 2] = [
    ("AGENT_CLIENT_SECRET", "agent-demo-secret-0123456789"),
    ("AGENT_INTERNAL_TOKEN", INTERNAL),
];

/// Creates an API key for the holder of `token` on `addr`; the key.
fn api_key(addr: std::net::SocketAddr, token: &str) -> String {
    let created = request(
        addr,
        "POST",
        "/auth/api-keys",
        &[("Authorization", &format!("Bearer {token}")), JSON[0]],
        br#"{"name":"nightly optimizer"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.body);
    created.json()["key"].as_str().unwrap().to_owned()
}

/// `POST /api/optimize` on `addr` with `headers`.
fn optimize(addr: std::net::SocketAddr, headers: &[(&str, &str)]) -> support::Response {
    let mut all = vec![JSON[0]];
    all.extend_from_slice(headers);
    request(
        addr,
        "POST",
        "/api/optimize",
        &all,
        br#"{"message":"Optimize my AI workload costs"}"#,
    )
}

#[test]
fn netra_sign_in_streamed_agent_runs_and_the_enterprise_api_key() {
    let agent = free_addr();
    let scratch = Scratch::new();
    example_config(&scratch, "netra-apex", &[("127.0.0.1:9000", agent)]);
    let server = Server::start(scratch.path(), &["--config", "portico.toml"], &SECRETS);
    let portico_url = format!("http://{}", server.addr);
    let _demo = Demo::start(
        scratch.path(),
        "agent",
        agent,
        &[
            "--portico",
            &portico_url,
            "--client-id",
            "agent",
            "--internal-token",
            INTERNAL,
        ],
        &[("PORTICO_DEMO_CLIENT_SECRET", SECRETS[0].1)],
    );
    register(server.addr, "founder@example.com");
    let login = request(
        server.addr,
        "POST",
        "/auth/login",
        &JSON,
        br#"{"email":"founder@example.com","password":"correct horse battery"}"#,
    );
    assert_eq!(login.status, 200, "{}", login.body);
    let token = login.json()["access_token"].as_str().unwrap().to_owned();

    // A bad token: the connection is closed with 1008 and the code.
    {
        use tokio_tungstenite::tungstenite::{self, Message, protocol::frame::coding::CloseCode};
        let (mut ws, _) =
            tungstenite::connect(format!("ws://{}/ws?token=not-a-token", server.addr)).unwrap();
        let closed = loop {
            match ws.read() {
                Ok(Message::Close(frame)) => break frame,
                Ok(_) => continue,
                Err(e) => panic!("no close frame: {e}"),
            }
        };
        let frame = closed.unwrap();
        assert_eq!(frame.code, CloseCode::Policy);
        assert_eq!(frame.reason.as_str(), "AUTH_001");
    }

    let mut ws = ws_connect(server.addr, &token);
    let mut next = move |send: Option<Value>| {
        if let Some(frame) = send {
            ws_send(&mut ws, &frame);
        }
        ws_next(&mut ws)
    };
    let hello = next(None);
    assert_eq!(hello["type"], "connection_established", "{hello}");
    assert_eq!(hello["data"]["heartbeat_interval"], 30, "{hello}");
    for action in ["user_message", "start_agent"] {
        let started = next(Some(json!({"action": action, "client_id": "m1",
                                       "data": {"message": "Optimize my AI workload costs"}})));
        assert_eq!(started["type"], "action_result", "{started}");
        assert_eq!(started["metadata"]["client_id"], "m1");
        let run_id = started["data"]["run_id"].as_str().unwrap().to_owned();
        let mut seen = Vec::new();
        while seen.last().map(String::as_str) != Some("agent_completed") {
            let event = next(None);
            assert_eq!(event["metadata"]["run_id"], run_id.as_str(), "{event}");
            assert!(event["metadata"]["agent_name"].is_string(), "{event}");
            assert!(event["metadata"]["thread_id"].is_string(), "{event}");
            seen.push(event["type"].as_str().unwrap().to_owned());
        }
        assert_eq!(
            seen,
            [
                "agent_started",
                "sub_agent_update",
                "tool_call",
                "tool_result",
                "agent_completed"
            ],
            "{action}"
        );
    }

    // The same start as an HTTP call through the gateway.
    let bearer = format!("Bearer {token}");
    let res = request(
        server.addr,
        "POST",
        "/api/agent/start",
        &[("Authorization", bearer.as_str()), JSON[0]],
        br#"{"message":"and again","thread_id":"t-7"}"#,
    );
    assert_eq!(res.status, 202, "{}", res.body);
    assert_eq!(res.json()["thread_id"], "t-7");

    // Scenario 2: the enterprise client's API key, in either header.
    let key = api_key(server.addr, &token);
    for header in [
        ("X-API-Key", key.clone()),
        ("Authorization", format!("Bearer {key}")),
    ] {
        let report = optimize(server.addr, &[(header.0, &header.1)]);
        assert_eq!(report.status, 200, "{}", report.body);
        assert_eq!(report.json()["status"], "completed");
        assert!(report.json()["report"]["savings_potential_usd"].is_u64());
        assert_eq!(report.header("ratelimit-limit"), Some("60"));
    }
    let without = optimize(server.addr, &[]);
    assert_eq!(without.status, 401, "{}", without.body);
    assert_eq!(without.json()["error"]["code"], "AUTH_003");
}

#[test]
fn netra_scaled_out_keeps_serving_validated_callers_while_auth_is_down() {
    let agent = free_addr();
    let scratch = Scratch::new();
    example_config(&scratch, "netra-apex", &[("127.0.0.1:9000", agent)]);
    let _demo = Demo::start(
        scratch.path(),
        "agent",
        agent,
        &["--internal-token", INTERNAL],
        &[],
    );
    // Two machines' worth: auth with the store, the gateway with only its own key.
    let auth_env = [SECRETS[0], SECRETS[1], ("PORTICO_DATA_DIR", "auth-data")];
    let mut auth = Server::start_command(
        scratch.path(),
        "auth",
        &["--config", "portico.toml"],
        &auth_env,
    );
    let auth_url = format!("http://{}", auth.addr);
    let gateway_env = [
        SECRETS[0],
        SECRETS[1],
        ("PORTICO_DATA_DIR", "gateway-data"),
        ("PORTICO_AUTH__URL", auth_url.as_str()),
    ];
    let gateway = Server::start_command(
        scratch.path(),
        "gateway",
        &["--config", "portico.toml"],
        &gateway_env,
    );
    let seen = register(auth.addr, "cached@example.com");
    let unseen = register(auth.addr, "fresh@example.com");
    let key = api_key(auth.addr, &seen);
    let with_token = |token: &str| {
        optimize(
            gateway.addr,
            &[("Authorization", &format!("Bearer {token}"))],
        )
    };
    assert_eq!(with_token(&seen).status, 200);
    assert_eq!(optimize(gateway.addr, &[("X-API-Key", &key)]).status, 200);

    auth.terminate();
    auth.wait_exit();
    // What the gateway validated before still serves …
    let cached = with_token(&seen);
    assert_eq!(cached.status, 200, "{}", cached.body);
    let cached = optimize(gateway.addr, &[("X-API-Key", &key)]);
    assert_eq!(cached.status, 200, "{}", cached.body);
    // … and what it never saw gets 503 SYS_002, not a guess.
    let fresh = with_token(&unseen);
    assert_eq!(fresh.status, 503, "{}", fresh.body);
    assert_eq!(fresh.json()["error"]["code"], "SYS_002");
    assert!(fresh.header("retry-after").is_some());
    // The gateway says auth is down.
    let health = gateway.get("/health", &[]);
    assert_eq!(health.status, 503, "{}", health.body);
    assert_eq!(health.json()["checks"]["auth"]["status"], "unhealthy");
}
