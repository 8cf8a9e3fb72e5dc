//! examples/codementor (seed 004) walked through the real processes: `portico up` with the
//! example's own portico.toml in front of `portico demo collab` and `portico demo tutor`.
//! The seed's auth calls under `/api/auth/*` (register, login, refresh, logout); a
//! pair-programming session joined over the WebSocket, a `code-change` reaching the partner
//! and not its sender; and the tutor failing: the static fallback answers, the circuit
//! opens, and the tutor is left alone while it is open.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use serde_json::{Value, json};
use support::{
    Demo, JSON, Scratch, Server, Ws, example_config, free_addr, request, ws_connect, ws_next,
    ws_send,
};

const TUTOR_TOKEN: &str = "tutor-internal-secret-0123456789";
const SECRETS: [(&str, &str); 2] = [
    ("COLLAB_CLIENT_SECRET", "collab-demo-secret-0123456789"),
    ("TUTOR_INTERNAL_TOKEN", TUTOR_TOKEN),
];

fn ask(ws: &mut Ws, frame: Value) -> Value {
    ws_send(ws, &frame);
    ws_next(ws)
}

#[test]
fn codementor_auth_under_api_auth_pair_sessions_and_the_tutor_fallback() {
    let collab = free_addr();
    let tutor = free_addr();
    let scratch = Scratch::new();
    example_config(
        &scratch,
        "codementor",
        &[("127.0.0.1:9003", collab), ("127.0.0.1:9004", tutor)],
    );
    let server = Server::start(scratch.path(), &["--config", "portico.toml"], &SECRETS);
    let portico_url = format!("http://{}", server.addr);
    let _collab = Demo::start(
        scratch.path(),
        "collab",
        collab,
        &["--portico", &portico_url, "--client-id", "collab"],
        &[("PORTICO_DEMO_CLIENT_SECRET", SECRETS[0].1)],
    );
    let _tutor = Demo::start(
        scratch.path(),
        "tutor",
        tutor,
        &["--internal-token", TUTOR_TOKEN],
        &[],
    );
    let post = |path: &str, headers: &[(&str, &str)], body: &str| {
        let mut all = vec![JSON[0]];
        all.extend_from_slice(headers);
        request(server.addr, "POST", path, &all, body.as_bytes())
    };

    // The seed's auth endpoints, under /api/auth.
    let credentials = r#"{"email":"ada@example.com","password":"correct horse battery"}"#;
    let registered = post("/api/auth/register", &[], credentials);
    assert_eq!(registered.status, 201, "{}", registered.body);
    let again = post("/api/auth/register", &[], credentials);
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.json()["error"]["code"], "AUTH_008");
    let wrong = post(
        "/api/auth/login",
        &[],
        r#"{"email":"ada@example.com","password":"not the password"}"#,
    );
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert_eq!(wrong.json()["error"]["code"], "AUTH_005");
    let login = post("/api/auth/login", &[], credentials).json();
    let refresh = login["refresh_token"].as_str().unwrap();
    let refreshed = post(
        "/api/auth/refresh",
        &[],
        &json!({"refresh_token": refresh}).to_string(),
    );
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    // Rotation: the old refresh token is spent.
    let reused = post(
        "/api/auth/refresh",
        &[],
        &json!({"refresh_token": refresh}).to_string(),
    );
    assert_eq!(reused.status, 401, "{}", reused.body);
    assert_eq!(reused.json()["error"]["code"], "AUTH_007");
    // Reuse revoked the whole family: log in again and log that session out.
    let login = post("/api/auth/login", &[], credentials).json();
    let short_lived = login["access_token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {short_lived}");
    let out = post(
        "/api/auth/logout",
        &[("Authorization", &bearer)],
        &json!({"refresh_token": login["refresh_token"]}).to_string(),
    );
    assert_eq!(out.status, 204, "{}", out.body);
    let after = server.get("/api/sessions", &[("Authorization", &bearer)]);
    assert_eq!(after.status, 401, "{}", after.body);
    assert_eq!(after.json()["error"]["code"], "AUTH_007");

    // Pair programming: Ada opens a session anyone may join as a collaborator.
    let ada = post("/api/auth/login", &[], credentials).json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let grace = post(
        "/api/auth/register",
        &[],
        r#"{"email":"grace@example.com","password":"correct horse battery"}"#,
    )
    .json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = post(
        "/api/sessions",
        &[("Authorization", &format!("Bearer {ada}"))],
        r#"{"name":"binary search","code":"def search(xs, x):","open":"collaborator"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let session = created.json()["session_id"].as_str().unwrap().to_owned();
    let channel = format!("session:{session}");
    let join = |token: &str| {
        let mut ws = ws_connect(server.addr, token);
        assert_eq!(ws_next(&mut ws)["type"], "connection_established");
        let synced = ask(
            &mut ws,
            json!({"action": "join-session", "data": {"sessionId": session}}),
        );
        assert_eq!(synced["type"], "action_result", "{synced}");
        assert_eq!(synced["data"]["code"], "def search(xs, x):");
        let subscribed = ask(
            &mut ws,
            json!({"action": "subscribe", "data": {"channel": channel}}),
        );
        assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
        (ws, synced)
    };
    let (mut a, _) = join(&ada);
    let (mut g, synced) = join(&grace);
    assert_eq!(synced["data"]["role"], "collaborator", "{synced}");
    assert_eq!(ws_next(&mut a)["type"], "user-joined");

    let sent = ask(
        &mut g,
        json!({"action": "code-change", "data": {"sessionId": session, "code": "def search(xs, x):\n    lo, hi = 0, len(xs)"}}),
    );
    assert_eq!(sent["type"], "action_result", "{sent}");
    let change = ws_next(&mut a);
    assert_eq!(change["type"], "code-change", "{change}");
    assert!(change["data"]["code"].as_str().unwrap().contains("lo, hi"));
    // Not echoed to its sender: the next frame Grace gets is the answer to this.
    let next = ask(
        &mut g,
        json!({"action": "presence", "data": {"channel": channel}}),
    );
    assert_eq!(next["type"], "presence", "{next}");
    assert_eq!(next["data"]["members"].as_array().unwrap().len(), 2);

    // The AI tutor answers, then fails: the static fallback answers instead.
    let bearer = format!("Bearer {ada}");
    let ask_tutor = || {
        post(
            "/api/tutor/ask",
            &[("Authorization", &bearer)],
            r#"{"question":"Why does my loop never end?"}"#,
        )
    };
    let answer = ask_tutor();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["source"], "tutor");
    assert_eq!(answer.header("x-portico-fallback"), None);
    assert_eq!(answer.header("ratelimit-limit"), Some("30"));
    Demo::set_failing(tutor, TUTOR_TOKEN, true);
    for _ in 0..3 {
        let fallback = ask_tutor();
        assert_eq!(fallback.status, 200, "{}", fallback.body);
        assert_eq!(fallback.header("x-portico-fallback"), Some("static"));
        assert_eq!(fallback.json()["source"], "fallback");
        assert!(
            fallback.json()["reply"]
                .as_str()
                .unwrap()
                .starts_with("The tutor is busy")
        );
    }
    let status = server.get("/status/services", &[]).json();
    assert_eq!(status["services"]["tutor"]["state"], "open", "{status}");
    let health = server.get("/health", &[]);
    assert_eq!(health.status, 200, "{}", health.body);
    // While the circuit is open the tutor is not called: it recovers, the fallback stays.
    Demo::set_failing(tutor, TUTOR_TOKEN, false);
    let fallback = ask_tutor();
    assert_eq!(fallback.header("x-portico-fallback"), Some("static"));
}
