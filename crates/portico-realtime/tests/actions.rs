//! Client actions routed to a real local upstream, and namespaces whose joins an upstream
//! checks.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use portico_realtime::settings::{Endpoint, Namespace};
use portico_realtime::upstream::Upstreams;
use portico_resilience::UpstreamPolicy;
use portico_resilience::client::UpstreamClient;
use serde_json::json;
use support::{Setup, TestHub};

fn endpoint(path: &str) -> Endpoint {
    Endpoint {
        upstream: "collab".into(),
        path: path.into(),
    }
}

/// A hub whose `collab` upstream is at `addr` (one attempt, 300 ms timeout, opens after 3
/// failures), with actions `join-session` → /echo, `explode` → /fail, `forbidden` →
/// /forbidden, `dawdle` → /slow, and namespaces `session` (checked at /allow) and `secret`
/// (checked at /deny).
async fn hub_with_upstream(addr: SocketAddr) -> TestHub {
    let policy =
        UpstreamPolicy::new(1, Duration::from_millis(300), 3, Duration::from_secs(60)).unwrap();
    let client = UpstreamClient::builder("collab", format!("http://{addr}"))
        .policy(policy)
        .internal_token("X-Internal-Auth", "collab-secret")
        .build()
        .unwrap();
    let mut setup = Setup {
        upstreams: Upstreams::new(BTreeMap::from([("collab".to_owned(), client)]), None),
        ..Setup::default()
    };
    for (action, path) in [
        ("join-session", "/echo"),
        ("explode", "/fail"),
        ("forbidden", "/forbidden"),
        ("dawdle", "/slow"),
    ] {
        setup.settings.actions.insert(action.into(), endpoint(path));
    }
    for (ns, path) in [("session", "/allow"), ("secret", "/deny")] {
        setup.settings.namespaces.insert(
            ns.into(),
            Namespace {
                permission: None,
                check: Some(endpoint(path)),
                presence: true,
                history_size: 10,
                history_ttl: Duration::from_secs(60),
                allow_client_publish: true,
            },
        );
    }
    TestHub::with(setup).await
}

#[tokio::test]
async fn an_action_is_posted_with_the_identity_and_its_answer_comes_back() {
    let hub = hub_with_upstream(support::upstream().await).await;
    let mut bob = hub.connect("bob").await;
    bob.send(json!({"action": "join-session", "data": {"session_id": "s1"}, "client_id": "j1"}))
        .await;
    let result = bob.recv_event().await;
    assert_eq!(result["type"], "action_result", "{result}");
    assert_eq!(result["metadata"]["client_id"], "j1");
    assert_eq!(result["metadata"]["action"], "join-session");
    let echo = &result["data"];
    assert_eq!(echo["user_id"], "bob");
    assert_eq!(echo["email"], "bob@example.com");
    assert_eq!(echo["permissions"], "etl.access");
    assert_eq!(echo["internal"], "collab-secret");
    assert_eq!(echo["connection_id"], bob.connection_id.as_str());
    assert_eq!(echo["request_id"].as_str().unwrap().len(), 32);
    assert_eq!(echo["body"], json!({"session_id": "s1"}));
}

#[tokio::test]
async fn upstream_failures_come_back_as_error_frames_and_the_connection_stays() {
    let hub = hub_with_upstream(support::upstream().await).await;
    let mut alice = hub.connect("alice").await;
    let e = alice.ask("explode", json!({})).await;
    assert_eq!(
        (e["type"].as_str(), e["data"]["code"].as_str()),
        (Some("error"), Some("BACKEND_001")),
        "{e}"
    );
    // The upstream's own envelope code is kept.
    let e = alice.ask("forbidden", json!({})).await;
    assert_eq!(e["data"]["code"], "AUTH_006");
    assert_eq!(e["data"]["message"], "not in this session");
    let e = alice.ask("dawdle", json!({})).await;
    assert_eq!(e["data"]["code"], "SYS_004", "{e}");
    alice.send(json!({"action": "ping"})).await;
    assert_eq!(alice.recv().await["type"], "heartbeat");
}

#[tokio::test]
async fn an_unreachable_upstream_is_sys_002_and_its_circuit_opens() {
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let hub = hub_with_upstream(closed).await;
    let mut alice = hub.connect("alice").await;
    for _ in 0..3 {
        let e = alice.ask("join-session", json!({})).await;
        assert_eq!(e["data"]["code"], "SYS_002", "{e}");
    }
    let e = alice.ask("join-session", json!({})).await;
    assert_eq!(e["data"]["code"], "SYS_002");
    assert!(
        e["data"]["message"]
            .as_str()
            .unwrap()
            .contains("circuit open"),
        "{e}"
    );
}

#[tokio::test]
async fn a_namespace_check_lets_in_or_refuses() {
    let hub = hub_with_upstream(support::upstream().await).await;
    let mut carol = hub.connect("carol").await;
    let ok = carol
        .ask("subscribe", json!({"channel": "session:s1"}))
        .await;
    assert_eq!(ok["type"], "subscribed", "{ok}");
    let no = carol
        .ask("subscribe", json!({"channel": "secret:s1"}))
        .await;
    assert_eq!(no["data"]["code"], "AUTH_006");
    // Publishing to a checked namespace needs the subscription.
    let no = carol
        .ask(
            "publish",
            json!({"channel": "secret:s1", "event": "x", "payload": {}}),
        )
        .await;
    assert_eq!(no["data"]["code"], "AUTH_006");
}
