//! Seed 000 (Netra Apex) walked through the real processes: `portico up` in front of
//! `portico demo agent`. A WebSocket client starts a run with the routed action
//! `start_agent` (the hub POSTs it to the agent with the caller's identity) and receives the
//! run's events on its personal channel, in order, from `agent_started` to
//! `agent_completed`; the same start works as an HTTP call through the gateway.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use serde_json::{Value, json};
use support::{
    Demo, JSON, Scratch, Server, free_addr, register, request, ws_connect, ws_next, ws_send,
};

#[test]
fn netra_agent_run_started_over_the_websocket_streams_its_events_back() {
    let agent = free_addr();
    let scratch = Scratch::new();
    scratch.write(
        "portico.toml",
        &format!(
            r#"
[server]
data_dir = "data"

[[auth.clients]]
id = "agent-demo"
secret = "agent-demo-secret-0123456789"
audiences = ["realtime"]

[upstreams.agent]
url = "http://{agent}"
internal_token = "agent-internal-secret"

[[routes]]
prefix = "/api/agent"
upstream = "agent"
auth = "required"

[realtime.actions]
start_agent = {{ upstream = "agent", path = "/api/agent/start" }}
"#
        ),
    );
    let server = Server::start(scratch.path(), &["--config", "portico.toml"], &[]);
    let portico_url = format!("http://{}", server.addr);
    let _demo = Demo::start(
        scratch.path(),
        "agent",
        agent,
        &[
            "--portico",
            &portico_url,
            "--client-id",
            "agent-demo",
            "--internal-token",
            "agent-internal-secret",
        ],
        &[("PORTICO_DEMO_CLIENT_SECRET", "agent-demo-secret-0123456789")],
    );
    let token = register(server.addr, "founder@example.com");

    let mut ws = ws_connect(server.addr, &token);
    let mut next = move |send: Option<Value>| {
        if let Some(frame) = send {
            ws_send(&mut ws, &frame);
        }
        ws_next(&mut ws)
    };
    assert_eq!(next(None)["type"], "connection_established");
    let started = next(Some(json!({"action": "start_agent", "client_id": "m1",
                                   "data": {"message": "Why is my cloud bill so high?"}})));
    assert_eq!(started["type"], "action_result", "{started}");
    assert_eq!(started["metadata"]["client_id"], "m1");
    let run_id = started["data"]["run_id"].as_str().unwrap().to_owned();
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("agent_completed") {
        let event = next(None);
        assert_eq!(event["metadata"]["run_id"], run_id.as_str(), "{event}");
        assert!(event["metadata"]["agent_name"].is_string(), "{event}");
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
        ]
    );

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
}
