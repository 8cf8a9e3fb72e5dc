//! The hub through its public surface, one node: real WebSocket clients against a hub on
//! 127.0.0.1:0.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use std::time::Duration;

use portico_core::error::ErrorCode;
use serde_json::json;
use support::{Client, Setup, TestHub};

#[tokio::test]
async fn connecting_without_a_good_token_closes_with_1008_and_the_code() {
    let hub = TestHub::start().await;
    hub.tokens
        .failing("old", ErrorCode::Auth002)
        .failing("revoked", ErrorCode::Auth007);
    for (url, reason) in [
        (format!("ws://{}/ws", hub.addr), "AUTH_003"),
        (hub.ws_url("nonsense"), "AUTH_001"),
        (hub.ws_url("old"), "AUTH_002"),
        (hub.ws_url("revoked"), "AUTH_007"),
    ] {
        let mut client = Client::open(&url).await;
        assert_eq!(client.closed().await, (1008, reason.to_owned()), "{url}");
    }
    assert_eq!(hub.hub.connections(), 0);
}

#[tokio::test]
async fn auth_being_down_closes_with_1011() {
    let hub = TestHub::start().await;
    hub.tokens.failing("t", ErrorCode::Sys002);
    let mut client = Client::open(&hub.ws_url("t")).await;
    assert_eq!(client.closed().await, (1011, "SYS_002".to_owned()));
}

#[tokio::test]
async fn a_plain_get_of_ws_is_backend_004() {
    let hub = TestHub::start().await;
    let (status, body) = support::http_get(&format!("http://{}/ws", hub.addr)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "BACKEND_004", "{body}");
}

#[tokio::test]
async fn the_first_frame_is_connection_established_and_ping_gets_a_heartbeat() {
    let hub = TestHub::start().await;
    let mut client = Client::open(&hub.ws_url("alice")).await;
    let first = client.recv().await;
    assert_eq!(first["type"], "connection_established");
    assert_eq!(first["data"]["user_id"], "alice");
    assert_eq!(first["data"]["heartbeat_interval"], 30);
    assert_eq!(first["data"]["connection_id"].as_str().unwrap().len(), 32);
    assert_eq!(first["metadata"]["user_id"], "alice");
    assert!(
        first["metadata"]["timestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    client
        .send(json!({"action": "ping", "client_id": "c-1"}))
        .await;
    let beat = client.recv().await;
    assert_eq!(beat["type"], "heartbeat");
    assert_eq!(beat["metadata"]["client_id"], "c-1");
    // The Authorization header works as well as ?token=.
    let request = http::Request::builder()
        .uri(format!("ws://{}/ws", hub.addr))
        .header("host", hub.addr.to_string())
        .header("authorization", "Bearer bob")
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header(
            "sec-websocket-key",
            tokio_tungstenite::tungstenite::handshake::client::generate_key(),
        )
        .body(())
        .unwrap();
    let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut bob = Client {
        ws,
        connection_id: String::new(),
    };
    assert_eq!(bob.recv().await["data"]["user_id"], "bob");
}

#[tokio::test]
async fn heartbeats_go_out_every_interval_and_a_silent_connection_is_closed_after_two() {
    let hub = TestHub::with(Setup {
        manual_clock: true,
        ..Setup::default()
    })
    .await;
    // A client that answers: it reads (its library answers each ping with a pong).
    let mut live = hub.connect("alice").await;
    // A client that never reads nor writes after connecting.
    let mut silent = hub.connect("bob").await;
    hub.sleeps(2).await;
    hub.clock.advance(Duration::from_secs(30));
    assert_eq!(live.recv().await["type"], "heartbeat");
    // The live client's pong reaches the hub before the next tick.
    live.send(json!({"action": "ping"})).await;
    assert_eq!(live.recv().await["type"], "heartbeat");
    hub.sleeps(2).await;
    hub.clock.advance(Duration::from_secs(30));
    assert_eq!(live.recv().await["type"], "heartbeat");
    // Two intervals without a word from `silent`: closed with 1000.
    assert_eq!(silent.closed().await, (1000, "idle timeout".to_owned()));
    hub.connections(1).await;
    live.send(json!({"action": "ping"})).await;
    assert_eq!(live.recv().await["type"], "heartbeat");
}

#[tokio::test]
async fn a_bad_frame_gets_req_001_and_the_connection_stays() {
    let hub = TestHub::start().await;
    let mut client = hub.connect("alice").await;
    client.send_text("{not json").await;
    let e = client.recv().await;
    assert_eq!(e["type"], "error");
    assert_eq!(e["data"]["code"], "REQ_001");
    client
        .send(json!({"action": "subscribe", "data": {}, "client_id": "x"}))
        .await;
    let e = client.recv().await;
    assert_eq!(e["data"]["code"], "REQ_001");
    assert_eq!(e["metadata"]["client_id"], "x");
    assert!(e["data"]["details"]["fields"]["data"].is_string(), "{e}");
    let e = client.ask("no_such_action", json!({})).await;
    assert_eq!(e["data"]["code"], "REQ_001");
    client.send(json!({"action": "ping"})).await;
    assert_eq!(client.recv().await["type"], "heartbeat");
}

#[tokio::test]
async fn subscribing_is_refused_without_the_permission_or_to_another_users_channel() {
    let hub = TestHub::start().await;
    let mut alice = hub.connect("alice").await;
    let e = alice
        .ask("subscribe", json!({"channel": "etl:job-1"}))
        .await;
    assert_eq!(e["type"], "error");
    assert_eq!(e["data"]["code"], "AUTH_006", "{e}");
    let e = alice.ask("subscribe", json!({"channel": "user:bob"})).await;
    assert_eq!(e["data"]["code"], "AUTH_006");
    let e = alice
        .ask("subscribe", json!({"channel": "nowhere:1"}))
        .await;
    assert_eq!(e["data"]["code"], "REQ_001");
    // bob has etl.access.
    let mut bob = hub.connect("bob").await;
    let ok = bob.ask("subscribe", json!({"channel": "etl:job-1"})).await;
    assert_eq!(ok["type"], "subscribed", "{ok}");
    assert_eq!(ok["data"]["channel"], "etl:job-1");
    assert_eq!(ok["data"]["recovered"], false);
}

#[tokio::test]
async fn publications_reach_subscribers_in_order_and_exclude_self_skips_the_sender() {
    let hub = TestHub::start().await;
    let mut alice = hub.connect("alice").await;
    let mut bob = hub.connect("bob").await;
    for c in [&mut alice, &mut bob] {
        assert_eq!(
            c.ask("subscribe", json!({"channel": "room:1"})).await["type"],
            "subscribed"
        );
    }
    // bob's join is announced to alice.
    let joined = alice.recv_event().await;
    assert_eq!(joined["type"], "user-joined");
    assert_eq!(joined["data"]["user_id"], "bob");

    alice
        .send(json!({"action": "publish", "client_id": "p1", "data": {
            "channel": "room:1", "event": "code-change", "payload": {"text": "fn main"}, "exclude_self": true}}))
        .await;
    let ack = alice.recv_event().await;
    assert_eq!(ack["type"], "published");
    assert_eq!(ack["data"]["offset"], 1);
    let got = bob.recv_event().await;
    assert_eq!(got["type"], "code-change");
    assert_eq!(got["data"]["text"], "fn main");
    assert_eq!(got["metadata"]["channel"], "room:1");
    assert_eq!(got["metadata"]["offset"], 1);
    assert_eq!(got["metadata"]["user_id"], "alice");

    // Without exclude_self the sender gets it too; an upstream's publications follow in order.
    alice
        .send(json!({"action": "publish", "data": {"channel": "room:1", "event": "cursor-update", "payload": {"line": 3}}}))
        .await;
    for i in 0..5 {
        hub.publish("room:1", "tick", json!({"i": i})).await;
    }
    let mut seen_by_alice = Vec::new();
    while seen_by_alice.len() < 6 {
        let v = alice.recv_event().await;
        if v["type"] != "published" {
            seen_by_alice.push(v["metadata"]["offset"].as_u64().unwrap());
        }
    }
    assert_eq!(seen_by_alice, [2, 3, 4, 5, 6, 7]);
    for expected in 2..=7 {
        assert_eq!(bob.recv_event().await["metadata"]["offset"], expected);
    }
    // A channel where clients may not publish.
    let e = bob
        .ask(
            "publish",
            json!({"channel": "etl:1", "event": "x", "payload": {}}),
        )
        .await;
    assert_eq!(e["data"]["code"], "AUTH_006");
}

#[tokio::test]
async fn presence_lists_members_and_announces_joins_and_leaves() {
    let hub = TestHub::start().await;
    let mut alice = hub.connect("alice").await;
    alice.ask("subscribe", json!({"channel": "room:p"})).await;
    let mut carol = hub.connect("carol").await;
    carol.ask("subscribe", json!({"channel": "room:p"})).await;
    let joined = alice.recv_event().await;
    assert_eq!(
        (joined["type"].as_str(), joined["data"]["user_id"].as_str()),
        (Some("user-joined"), Some("carol"))
    );
    let p = alice.ask("presence", json!({"channel": "room:p"})).await;
    assert_eq!(p["type"], "presence");
    let mut users: Vec<&str> = p["data"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap())
        .collect();
    users.sort();
    assert_eq!(users, ["alice", "carol"]);
    assert!(p["data"]["members"][0]["joined_at"].is_string());

    assert_eq!(
        carol.ask("unsubscribe", json!({"channel": "room:p"})).await["type"],
        "unsubscribed"
    );
    let left = alice.recv_event().await;
    assert_eq!(
        (left["type"].as_str(), left["data"]["user_id"].as_str()),
        (Some("user-left"), Some("carol"))
    );
    // Dropping the connection leaves too.
    carol.ask("subscribe", json!({"channel": "room:p"})).await;
    assert_eq!(alice.recv_event().await["type"], "user-joined");
    drop(carol);
    let left = alice.recv_event().await;
    assert_eq!(left["type"], "user-left");
    let p = alice.ask("presence", json!({"channel": "room:p"})).await;
    assert_eq!(p["data"]["members"].as_array().unwrap().len(), 1);
    // Presence needs a subscription, and a channel with presence.
    let mut bob = hub.connect("bob").await;
    assert_eq!(
        bob.ask("presence", json!({"channel": "room:p"})).await["data"]["code"],
        "AUTH_006"
    );
    assert_eq!(
        bob.ask("presence", json!({"channel": "etl:1"})).await["data"]["code"],
        "REQ_001"
    );
}

#[tokio::test]
async fn a_reconnecting_client_recovers_exactly_what_it_missed() {
    let hub = TestHub::start().await;
    let mut bob = hub.connect("bob").await;
    hub.publish("etl:job-7", "progress", json!({"pct": 10}))
        .await;
    let sub = bob.ask("subscribe", json!({"channel": "etl:job-7"})).await;
    let epoch = sub["data"]["epoch"].as_str().unwrap().to_owned();
    assert_eq!(sub["data"]["offset"], 1);
    hub.publish("etl:job-7", "progress", json!({"pct": 20}))
        .await;
    assert_eq!(bob.recv_event().await["data"]["pct"], 20);
    drop(bob);
    hub.connections(0).await;

    for pct in [30, 40] {
        hub.publish("etl:job-7", "progress", json!({"pct": pct}))
            .await;
    }
    let mut bob = hub.connect("bob").await;
    let sub = bob
        .ask(
            "subscribe",
            json!({"channel": "etl:job-7", "since": {"offset": 2, "epoch": epoch}}),
        )
        .await;
    assert_eq!(sub["data"]["recovered"], true, "{sub}");
    assert_eq!(sub["data"]["offset"], 4);
    let missed: Vec<_> = sub["data"]["missed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["metadata"]["offset"].as_u64().unwrap(),
                m["data"]["pct"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(missed, [(3, 30), (4, 40)]);
    // Live again, nothing twice.
    hub.publish("etl:job-7", "progress", json!({"pct": 50}))
        .await;
    assert_eq!(bob.recv_event().await["metadata"]["offset"], 5);

    // The history keeps 3 messages: from offset 1, offset 2 is gone → not recovered.
    let sub = bob
        .ask(
            "subscribe",
            json!({"channel": "etl:job-7", "since": {"offset": 1, "epoch": epoch}}),
        )
        .await;
    assert_eq!(sub["data"]["recovered"], false);
    assert_eq!(sub["data"]["missed"], json!([]));
    // Another epoch → not recovered.
    let sub = bob
        .ask(
            "subscribe",
            json!({"channel": "etl:job-7", "since": {"offset": 4, "epoch": "other"}}),
        )
        .await;
    assert_eq!(sub["data"]["recovered"], false);
}

#[tokio::test]
async fn the_personal_channel_is_joined_automatically_and_upstreams_publish_to_it() {
    let hub = TestHub::start().await;
    let mut alice = hub.connect("alice").await;
    let (status, body) = hub
        .post(
            "/internal/publish",
            &[("authorization", "Bearer svc")],
            json!({"user_id": "alice", "event": "agent_started", "data": {"run_id": "r1"},
                   "metadata": {"thread_id": "t1", "run_id": "r1", "agent_name": "triage"}}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["offset"], 1);
    let got = alice.recv_event().await;
    assert_eq!(got["type"], "agent_started");
    assert_eq!(got["metadata"]["channel"], "user:alice");
    assert_eq!(got["metadata"]["user_id"], "alice");
    assert_eq!(got["metadata"]["thread_id"], "t1");
    assert_eq!(got["metadata"]["agent_name"], "triage");
    // The internal token works as well as a service token.
    let (status, _) = hub
        .post(
            "/internal/publish",
            &[("x-internal-auth", "s3cret")],
            json!({"channel": "user:alice", "event": "agent_completed", "data": {}}),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(alice.recv_event().await["type"], "agent_completed");
}

#[tokio::test]
async fn the_publish_api_wants_a_service() {
    let hub = TestHub::start().await;
    let body = json!({"channel": "room:1", "event": "x", "data": {}});
    let (status, e) = hub.post("/internal/publish", &[], body.clone()).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (401, Some("AUTH_003"))
    );
    let (status, e) = hub
        .post(
            "/internal/publish",
            &[("authorization", "Bearer alice")],
            body.clone(),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (403, Some("AUTH_006"))
    );
    let (status, e) = hub
        .post(
            "/internal/publish",
            &[("x-internal-auth", "guess")],
            body.clone(),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (401, Some("AUTH_003"))
    );
    let (status, e) = hub
        .post(
            "/internal/publish",
            &[("authorization", "Bearer svc")],
            json!({"channel": "lobby", "event": "x"}),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("REQ_001")),
        "{e}"
    );
    let (status, e) = hub
        .post(
            "/internal/publish",
            &[("authorization", "Bearer svc")],
            json!({"event": "x"}),
        )
        .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("REQ_001"))
    );
}

#[tokio::test]
async fn internal_disconnect_closes_every_connection_of_the_user() {
    let hub = TestHub::start().await;
    let mut a1 = hub.connect("alice").await;
    let mut a2 = hub.connect("alice").await;
    let mut bob = hub.connect("bob").await;
    let (status, _) = hub
        .post(
            "/internal/disconnect",
            &[("authorization", "Bearer svc")],
            json!({"user_id": "alice"}),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(a1.closed().await.0, 1008);
    assert_eq!(a2.closed().await.0, 1008);
    hub.connections(1).await;
    bob.send(json!({"action": "ping"})).await;
    assert_eq!(bob.recv().await["type"], "heartbeat");
}

#[tokio::test]
async fn a_frame_over_the_limit_closes_with_1009() {
    let mut setup = Setup::default();
    setup.settings.max_frame = 1024;
    let hub = TestHub::with(setup).await;
    let mut client = hub.connect("alice").await;
    let big = format!(
        r#"{{"action":"ping","data":{{"x":"{}"}}}}"#,
        "a".repeat(2000)
    );
    client.send_text(&big).await;
    assert_eq!(client.closed().await.0, 1009);
    hub.connections(0).await;
}

#[tokio::test]
async fn an_expired_token_closes_with_4001_unless_refreshed() {
    let hub = TestHub::with(Setup {
        manual_clock: true,
        ..Setup::default()
    })
    .await;
    let base = portico_core::clock::Clock::system_now(&hub.clock);
    // Tokens valid for 60 s and 120 s of the manual clock (which started at about `base`).
    hub.tokens
        .expiring("short", "dave", base + Duration::from_secs(60))
        .expiring("longer", "dave", base + Duration::from_secs(120))
        .expiring("eve-short", "eve", base + Duration::from_secs(60))
        .expiring("mallory", "mallory", base + Duration::from_secs(600));
    let mut dave = hub.connect("short").await;
    let mut eve = hub.connect("eve-short").await;
    // Refreshing with another user's token is refused.
    let e = dave.ask("refresh_token", json!({"token": "mallory"})).await;
    assert_eq!(e["data"]["code"], "AUTH_001");
    let ok = dave.ask("refresh_token", json!({"token": "longer"})).await;
    assert_eq!(ok["type"], "token_refreshed", "{ok}");
    hub.sleeps(4).await;
    // Past the first expiry: eve (not refreshed) is closed, dave stays. Heartbeats at 30 s
    // steps keep both from counting as idle.
    hub.clock.advance(Duration::from_secs(30));
    for client in [&mut dave, &mut eve] {
        client.recv().await;
        client.send(json!({"action": "ping"})).await;
        client.recv().await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    hub.clock.advance(Duration::from_secs(30));
    dave.recv().await;
    dave.send(json!({"action": "ping"})).await;
    dave.recv().await;
    assert_eq!(eve.closed().await, (4001, "AUTH_002".to_owned()));
    hub.clock.advance(Duration::from_secs(30));
    dave.recv().await;
    dave.send(json!({"action": "ping"})).await;
    dave.recv().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    hub.clock.advance(Duration::from_secs(30));
    assert_eq!(dave.closed().await, (4001, "AUTH_002".to_owned()));
}

#[tokio::test]
async fn too_many_frames_per_second_get_backend_003() {
    let mut setup = Setup::default();
    setup.settings.max_messages_per_second = 5;
    setup.manual_clock = true;
    let hub = TestHub::with(setup).await;
    let mut client = hub.connect("alice").await;
    for _ in 0..6 {
        client.send(json!({"action": "ping"})).await;
    }
    let mut codes = Vec::new();
    for _ in 0..6 {
        let v = client.recv().await;
        codes.push(
            v["data"]["code"]
                .as_str()
                .unwrap_or(v["type"].as_str().unwrap())
                .to_owned(),
        );
    }
    assert_eq!(
        codes,
        [
            "heartbeat",
            "heartbeat",
            "heartbeat",
            "heartbeat",
            "heartbeat",
            "BACKEND_003"
        ]
    );
    // A second later the bucket has refilled.
    hub.clock.advance(Duration::from_secs(1));
    client.send(json!({"action": "ping"})).await;
    assert_eq!(client.recv().await["type"], "heartbeat");
}

#[tokio::test]
async fn a_slow_consumer_is_cut_off_while_others_keep_receiving() {
    use futures_util::StreamExt as _;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio_tungstenite::tungstenite::Message;

    const MESSAGES: u64 = 2000;
    let mut setup = Setup::default();
    setup.settings.send_queue = 512;
    let hub = TestHub::with(setup).await;
    let mut fast = hub.connect("alice").await;
    let mut slow = hub.connect("carol").await;
    fast.ask("subscribe", json!({"channel": "room:flood"}))
        .await;
    slow.ask("subscribe", json!({"channel": "room:flood"}))
        .await;
    assert_eq!(fast.recv_event().await["type"], "user-joined");
    // `slow` never reads again. 32 MB of messages fill its socket buffers, so the hub's
    // writes to it block, then its queue overflows.
    let seen = Arc::new(AtomicU64::new(0));
    let reader = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut offsets = Vec::new();
            // Frames without an offset (the slow one's `user-left` may come before the flood
            // ends), parsed.
            let mut others = Vec::new();
            while offsets.len() < MESSAGES as usize {
                let Some(Ok(Message::Text(text))) = fast.ws.next().await else {
                    panic!("the fast reader's connection ended");
                };
                // Read the offset without parsing 16 KiB of JSON.
                let Some(at) = text.find("\"offset\":") else {
                    others.push(serde_json::from_str::<serde_json::Value>(&text).unwrap());
                    continue;
                };
                let digits: String = text[at + 9..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                let offset: u64 = digits.parse().unwrap();
                offsets.push(offset);
                seen.store(offset, Ordering::SeqCst);
            }
            (offsets, others, fast)
        })
    };
    let data = json!({"p": "x".repeat(16 * 1024)});
    for i in 1..=MESSAGES {
        hub.hub
            .publish("room:flood", "blob", &data, &serde_json::Map::new(), None)
            .await
            .unwrap();
        // Keep the fast reader well within its queue.
        if i % 16 == 0 {
            let deadline = tokio::time::Instant::now() + support::WAIT;
            while seen.load(Ordering::SeqCst) < i {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the fast reader stalled at {i}"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    let (offsets, others, mut fast) = reader.await.unwrap();
    assert_eq!(
        offsets,
        (1..=MESSAGES).collect::<Vec<u64>>(),
        "the fast reader lost or reordered messages"
    );
    // The slow one was cut although its socket was full: the hub holds one connection, the
    // fast one, which still works.
    hub.connections(1).await;
    let left = match others.into_iter().next() {
        Some(frame) => frame,
        None => fast.recv().await,
    };
    assert_eq!(
        (left["type"].as_str(), left["data"]["user_id"].as_str()),
        (Some("user-left"), Some("carol"))
    );
    fast.send(json!({"action": "ping"})).await;
    assert_eq!(fast.recv().await["type"], "heartbeat");
    drop(slow);
}

#[tokio::test]
async fn shutdown_tells_clients_to_reconnect_with_1001() {
    let hub = TestHub::start().await;
    let mut client = hub.connect("alice").await;
    hub.shutdown.trigger();
    assert_eq!(
        client.closed().await,
        (1001, "server shutting down".to_owned())
    );
}
