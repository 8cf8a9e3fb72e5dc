//! examples/vaporform (seed 003) walked through the real processes: `portico up` with the
//! example's own portico.toml in front of `portico demo collab`. A session with an owner, a
//! collaborator and a viewer; joins with the state sync and `user-joined`; a code change
//! reaching everyone but its sender; a viewer's change refused; cursors from anyone; and a
//! service token (client credentials) reading a session's context, which a user cannot — and
//! the AI service (`portico demo tutor`) doing so itself before it answers about a session.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use serde_json::{Value, json};
use support::{
    Demo, JSON, Scratch, Server, Ws, example_config, free_addr, register_user, request,
    service_token, ws_connect, ws_next, ws_send,
};

const SECRETS: [(&str, &str); 3] = [
    ("COLLAB_CLIENT_SECRET", "collab-demo-secret-0123456789"),
    ("AI_CLIENT_SECRET", "ai-demo-secret-0123456789"),
    ("AI_INTERNAL_TOKEN", "ai-internal-secret-0123456789"),
];

/// Sends `frame` and returns the next frame that is not a heartbeat.
fn ask(ws: &mut Ws, frame: Value) -> Value {
    ws_send(ws, &frame);
    ws_next(ws)
}

/// Asks for the channel's presence and expects that answer next: proof that nothing else
/// (a frame that should not have come) was queued before it.
fn nothing_else(ws: &mut Ws, channel: &str) {
    let next = ask(
        ws,
        json!({"action": "presence", "data": {"channel": channel}}),
    );
    assert_eq!(next["type"], "presence", "unexpected frame: {next}");
}

#[test]
fn vaporform_sessions_with_roles_over_the_hub_and_a_service_token() {
    let collab = free_addr();
    let ai = free_addr();
    let scratch = Scratch::new();
    example_config(
        &scratch,
        "vaporform",
        &[("127.0.0.1:9003", collab), ("127.0.0.1:9004", ai)],
    );
    let server = Server::start(scratch.path(), &["--config", "portico.toml"], &SECRETS);
    let portico_url = format!("http://{}", server.addr);
    let _demo = Demo::start(
        scratch.path(),
        "collab",
        collab,
        &["--portico", &portico_url, "--client-id", "collab"],
        &[("PORTICO_DEMO_CLIENT_SECRET", SECRETS[0].1)],
    );
    let _ai = Demo::start(
        scratch.path(),
        "tutor",
        ai,
        &[
            "--portico",
            &portico_url,
            "--client-id",
            "ai",
            "--internal-token",
            SECRETS[2].1,
        ],
        &[("PORTICO_DEMO_CLIENT_SECRET", SECRETS[1].1)],
    );
    let (owner, owner_id) = register_user(server.addr, "owner@example.com");
    let (editor, editor_id) = register_user(server.addr, "editor@example.com");
    let (viewer, viewer_id) = register_user(server.addr, "viewer@example.com");
    let (outsider, _) = register_user(server.addr, "outsider@example.com");
    let call = |token: &str, method: &str, path: &str, body: &str| {
        let bearer = format!("Bearer {token}");
        request(
            server.addr,
            method,
            path,
            &[("Authorization", &bearer), JSON[0]],
            body.as_bytes(),
        )
    };

    // The owner creates a session through the gateway and gives the others their roles.
    let created = call(
        &owner,
        "POST",
        "/api/sessions",
        r#"{"name":"landing page","code":"<h1>Hi</h1>"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let session = created.json()["session_id"].as_str().unwrap().to_owned();
    let channel = format!("session:{session}");
    assert_eq!(created.json()["role"], "owner");
    for (user, role) in [(&editor_id, "collaborator"), (&viewer_id, "viewer")] {
        let body = format!(r#"{{"role":"{role}"}}"#);
        let path = format!("/api/sessions/{session}/members/{user}");
        let set = call(&owner, "PUT", &path, &body);
        assert_eq!(set.status, 200, "{}", set.body);
    }
    // Only the owner hands out roles; a stranger sees nothing.
    let path = format!("/api/sessions/{session}/members/{viewer_id}");
    let refused = call(&editor, "PUT", &path, r#"{"role":"collaborator"}"#);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.json()["error"]["code"], "AUTH_006");
    let stranger = call(&outsider, "GET", &format!("/api/sessions/{session}"), "");
    assert_eq!(stranger.status, 403, "{}", stranger.body);
    let unknown = call(&owner, "GET", "/api/sessions/no-such-session", "");
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert_eq!(unknown.json()["error"]["code"], "BACKEND_002");

    // Everyone joins: the state sync comes back as the action's result, then the channel.
    let join = |token: &str, role: &str| {
        let mut ws = ws_connect(server.addr, token);
        assert_eq!(ws_next(&mut ws)["type"], "connection_established");
        let synced = ask(
            &mut ws,
            json!({"action": "join-session", "client_id": "j1", "data": {"sessionId": session}}),
        );
        assert_eq!(synced["type"], "action_result", "{synced}");
        assert_eq!(synced["data"]["role"], role, "{synced}");
        assert_eq!(synced["data"]["code"], "<h1>Hi</h1>", "{synced}");
        assert_eq!(synced["data"]["members"].as_array().unwrap().len(), 3);
        let subscribed = ask(
            &mut ws,
            json!({"action": "subscribe", "data": {"channel": channel}}),
        );
        assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
        ws
    };
    let mut a = join(&owner, "owner");
    let mut b = join(&editor, "collaborator");
    let joined = ws_next(&mut a);
    assert_eq!(joined["type"], "user-joined", "{joined}");
    assert_eq!(joined["data"]["user_id"], editor_id.as_str());
    let mut c = join(&viewer, "viewer");
    for ws in [&mut a, &mut b] {
        let joined = ws_next(ws);
        assert_eq!(joined["type"], "user-joined", "{joined}");
        assert_eq!(joined["data"]["user_id"], viewer_id.as_str());
    }
    // A stranger can neither join the session nor its channel.
    let mut d = ws_connect(server.addr, &outsider);
    ws_next(&mut d);
    let no = ask(
        &mut d,
        json!({"action": "join-session", "data": {"session_id": session}}),
    );
    assert_eq!(no["type"], "error", "{no}");
    assert_eq!(no["data"]["code"], "AUTH_006", "{no}");
    let no = ask(
        &mut d,
        json!({"action": "subscribe", "data": {"channel": channel}}),
    );
    assert_eq!(no["type"], "error", "{no}");
    assert_eq!(no["data"]["code"], "AUTH_006", "{no}");

    // The owner's change reaches the others, not the owner.
    let done = ask(
        &mut a,
        json!({"action": "code-change", "data": {"session_id": session, "code": "<h1>Hello</h1>"}}),
    );
    assert_eq!(done["type"], "action_result", "{done}");
    assert_eq!(done["data"]["version"], 1);
    nothing_else(&mut a, &channel);
    for ws in [&mut b, &mut c] {
        let change = ws_next(ws);
        assert_eq!(change["type"], "code-change", "{change}");
        assert_eq!(change["data"]["code"], "<h1>Hello</h1>");
        assert_eq!(change["data"]["user_id"], owner_id.as_str());
        assert_eq!(change["metadata"]["channel"], channel.as_str());
    }

    // A viewer may not change the code: refused, and nobody hears of it.
    let no = ask(
        &mut c,
        json!({"action": "code-change", "data": {"session_id": session, "code": "defaced"}}),
    );
    assert_eq!(no["type"], "error", "{no}");
    assert_eq!(no["data"]["code"], "AUTH_006", "{no}");
    // … but moves their cursor, which the others see.
    let moved = ask(
        &mut c,
        json!({"action": "cursor-update", "data": {"session_id": session, "position": {"line": 1, "column": 4}}}),
    );
    assert_eq!(moved["type"], "action_result", "{moved}");
    nothing_else(&mut c, &channel);
    for ws in [&mut a, &mut b] {
        let cursor = ws_next(ws);
        assert_eq!(cursor["type"], "cursor-update", "{cursor}");
        assert_eq!(cursor["data"]["user_id"], viewer_id.as_str());
        assert_eq!(cursor["data"]["position"]["column"], 4);
        nothing_else(ws, &channel);
    }

    // Service to service: the AI service's client-credentials token reads the session's
    // context through the gateway; a user's token may not.
    let token = service_token(server.addr, "ai", SECRETS[1].1);
    let path = format!("/api/sessions/{session}/context?user_id={editor_id}");
    let context = call(&token, "GET", &path, "");
    assert_eq!(context.status, 200, "{}", context.body);
    let context = context.json();
    assert_eq!(context["code"], "<h1>Hello</h1>", "{context}");
    assert_eq!(context["role"], "collaborator", "{context}");
    assert_eq!(context["service"], "ai", "{context}");
    let as_user = call(&owner, "GET", &path, "");
    assert_eq!(as_user.status, 403, "{}", as_user.body);
    assert_eq!(as_user.json()["error"]["code"], "AUTH_006");
    // Around the gateway, a forged identity is refused.
    let forged = request(
        collab,
        "GET",
        &path,
        &[("X-User-ID", "ai"), ("X-Portico-Identity", "forged")],
        b"",
    );
    assert_eq!(forged.status, 401, "{}", forged.body);

    // The AI service does the same itself: it answers a member about the session …
    let question =
        json!({"question": "Why is my heading small?", "session_id": session}).to_string();
    let answer = call(&editor, "POST", "/api/ai/ask", &question);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let answer = answer.json();
    assert_eq!(answer["session"]["role"], "collaborator", "{answer}");
    assert_eq!(answer["session"]["version"], 1, "{answer}");
    assert!(
        answer["reply"].as_str().unwrap().contains("1 lines"),
        "{answer}"
    );
    // … and refuses whoever holds no role in it.
    let refused = call(&outsider, "POST", "/api/ai/ask", &question);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.json()["error"]["code"], "AUTH_006");
}
