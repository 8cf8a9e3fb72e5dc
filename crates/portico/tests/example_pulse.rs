//! examples/pulse (seed 002) walked through the real processes: `portico up` with the
//! example's own portico.toml in front of `portico demo etl`. A job started through the
//! gateway only with `etl.access` (granted by `portico admin user grant` while Portico runs),
//! its progress pushed over the hub to `job:<id>` instead of polled, a bad job name refused
//! with 400, a call around the gateway refused with 403, a slow ETL service → 504 SYS_004,
//! and the ETL service stopped → 503 SYS_002.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use serde_json::{Value, json};
use support::{
    Demo, JSON, Scratch, Server, example_config, free_addr, register, request, run, ws_connect,
    ws_next, ws_send,
};

const INTERNAL_KEY: &str = "etl-internal-secret-0123456789";
const SECRETS: [(&str, &str); 3] = [
    ("ETL_CLIENT_SECRET", "etl-demo-secret-0123456789"),
    ("ETL_INTERNAL_KEY", INTERNAL_KEY),
    // A short timeout, so the slow call's 504 comes within the test's patience.
    ("PORTICO_UPSTREAMS__ETL__TIMEOUT", "1s"),
];

#[test]
fn pulse_etl_jobs_through_portico_with_progress_over_the_hub() {
    let demo_addr = free_addr();
    let scratch = Scratch::new();
    example_config(&scratch, "pulse", &[("127.0.0.1:9002", demo_addr)]);
    let server = Server::start(scratch.path(), &["--config", "portico.toml"], &SECRETS);
    let portico_url = format!("http://{}", server.addr);
    let demo = Demo::start(
        scratch.path(),
        "etl",
        demo_addr,
        &[
            "--portico",
            &portico_url,
            "--client-id",
            "etl",
            "--internal-token",
            INTERNAL_KEY,
        ],
        &[("PORTICO_DEMO_CLIENT_SECRET", SECRETS[0].1)],
    );
    // A new user may not run jobs …
    let token = register(server.addr, "ops@example.com");
    let denied = request(
        server.addr,
        "POST",
        "/api/etl/jobs/start",
        &[("Authorization", &format!("Bearer {token}")), JSON[0]],
        br#"{"job":"jira_sync"}"#,
    );
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert_eq!(denied.json()["error"]["code"], "AUTH_006");
    // … until an admin grants the analyst role (on the running Portico's store); the next
    // login's token carries etl.access.
    let granted = run(
        scratch.path(),
        &[
            "--config",
            "portico.toml",
            "admin",
            "user",
            "grant",
            "--email",
            "ops@example.com",
            "--role",
            "analyst",
        ],
        &SECRETS,
    );
    assert_eq!(granted.code, Some(0), "{granted:?}");
    let login = request(
        server.addr,
        "POST",
        "/auth/login",
        &JSON,
        br#"{"email":"ops@example.com","password":"correct horse battery"}"#,
    );
    assert_eq!(login.status, 200, "{}", login.body);
    let token = login.json()["access_token"].as_str().unwrap().to_owned();
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

    // The ETL service is slow: past the upstream's timeout, 504 SYS_004.
    let slow = request(
        demo_addr,
        "POST",
        "/control/delay",
        &[
            JSON[0],
            ("X-Internal-Auth", INTERNAL_KEY),
            ("X-User-ID", "ops"),
        ],
        br#"{"delay_ms":1500}"#,
    );
    assert_eq!(slow.status, 200, "{}", slow.body);
    let late = start("github_sync");
    assert_eq!(late.status, 504, "{}", late.body);
    assert_eq!(late.json()["error"]["code"], "SYS_004");

    // The ETL service stops: Portico answers 503 SYS_002 for it.
    drop(demo);
    let down = start("jira_sync");
    assert_eq!(down.status, 503, "{}", down.body);
    assert_eq!(down.json()["error"]["code"], "SYS_002");
}
