//! Seed 002 (Pulse) walked through the real processes: `portico up` in front of
//! `portico demo etl`. A job started through the gateway with `etl.access`, its progress
//! pushed over the hub to `job:<id>` instead of polled, a bad job name refused with 400, a
//! call around the gateway refused with 403, and the ETL service stopped → 503.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use serde_json::{Value, json};
use support::{
    Demo, JSON, Scratch, Server, free_addr, register, request, ws_connect, ws_next, ws_send,
};

#[test]
fn pulse_etl_jobs_through_portico_with_progress_over_the_hub() {
    let demo_addr = free_addr();
    let scratch = Scratch::new();
    scratch.write(
        "portico.toml",
        &format!(
            r#"
[server]
data_dir = "data"

[[auth.clients]]
id = "etl-demo"
secret = "etl-demo-secret-0123456789"
audiences = ["realtime"]

[upstreams.etl]
url = "http://{demo_addr}"
internal_token = "etl-internal-secret"

[[routes]]
prefix = "/api/etl"
upstream = "etl"
rewrite = "/api/v1"
auth = "required"
permissions = ["etl.access"]

[roles.user]
permissions = ["etl.access"]

[realtime.namespaces.job]
"#
        ),
    );
    let server = Server::start(scratch.path(), &["--config", "portico.toml"], &[]);
    let portico_url = format!("http://{}", server.addr);
    let demo = Demo::start(
        scratch.path(),
        "etl",
        demo_addr,
        &[
            "--portico",
            &portico_url,
            "--client-id",
            "etl-demo",
            "--internal-token",
            "etl-internal-secret",
        ],
        &[("PORTICO_DEMO_CLIENT_SECRET", "etl-demo-secret-0123456789")],
    );
    let token = register(server.addr, "ops@example.com");
    let bearer = format!("Bearer {token}");
    let auth = [("Authorization", bearer.as_str()), JSON[0]];
    let start = |job: &str| {
        let body = format!(r#"{{"job":"{job}"}}"#);
        request(
            server.addr,
            "POST",
            "/api/etl/jobs/start",
            &auth,
            body.as_bytes(),
        )
    };

    let bad = start("salesforce_sync");
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(bad.json()["error"]["code"], "REQ_001");

    // Around the gateway, even with the user's headers: no internal token, no job.
    let around = request(
        demo_addr,
        "POST",
        "/api/v1/jobs/start",
        &[
            JSON[0],
            ("X-User-ID", "admin"),
            ("X-User-Permissions", "etl.access"),
        ],
        br#"{"job":"jira_sync"}"#,
    );
    assert_eq!(around.status, 403, "{}", around.body);
    assert_eq!(around.json()["error"]["code"], "AUTH_006");

    let started = start("jira_sync");
    assert_eq!(started.status, 202, "{}", started.body);
    let job_id = started.json()["job_id"].as_str().unwrap().to_owned();

    // The job's progress comes over the hub: no polling.
    let mut ws = ws_connect(server.addr, &token);
    let mut next = move |send: Option<Value>| {
        if let Some(frame) = send {
            ws_send(&mut ws, &frame);
        }
        ws_next(&mut ws)
    };
    assert_eq!(next(None)["type"], "connection_established");
    let subscribed = next(Some(
        json!({"action": "subscribe", "data": {"channel": format!("job:{job_id}")}}),
    ));
    assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
    // What was published before the subscription is in `missed`, the rest arrives.
    let mut progress: Vec<i64> = subscribed["data"]["missed"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|f| f["data"]["progress"].as_i64().unwrap())
        .collect();
    while progress.last() != Some(&100) {
        let event = next(None);
        assert!(
            event["type"] == "job_progress" || event["type"] == "job_completed",
            "{event}"
        );
        assert_eq!(event["metadata"]["job_id"], job_id.as_str());
        progress.push(event["data"]["progress"].as_i64().unwrap());
    }
    assert!(progress.windows(2).all(|w| w[0] < w[1]), "{progress:?}");
    let state = server.get(
        &format!("/api/etl/jobs/{job_id}"),
        &[("Authorization", &bearer)],
    );
    assert_eq!(state.status, 200, "{}", state.body);
    assert_eq!(state.json()["status"], "completed");

    // The ETL service stops: Portico answers 503 SYS_002 for it.
    drop(demo);
    let down = start("jira_sync");
    assert_eq!(down.status, 503, "{}", down.body);
    assert_eq!(down.json()["error"]["code"], "SYS_002");
}
