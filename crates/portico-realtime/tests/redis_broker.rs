//! Several hubs on one Redis form one hub: publications, join/leave events and disconnects
//! cross nodes, presence lists every node's members, and a client recovers on another node
//! what it missed. Real listeners, real WebSocket clients, a real Redis
//! (`PORTICO_TEST_REDIS_URL`); every test has a key prefix of its own.

#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use portico_core::shutdown::Shutdown;
use portico_realtime::settings::Namespace;
use portico_realtime::upstream::Upstreams;
use portico_realtime::{Hub, HubParts, RealtimeSettings};
use serde_json::{Map, Value, json};

mod support;

mod nodes {
    use super::*;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinHandle;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

    pub const WAIT: Duration = Duration::from_secs(10);

    /// The Redis to test against, or `None` (the test then says it is skipped).
    pub fn redis_url(test: &str) -> Option<String> {
        match std::env::var("PORTICO_TEST_REDIS_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ => {
                eprintln!("skipping {test}: PORTICO_TEST_REDIS_URL is not set");
                None
            }
        }
    }

    /// A key prefix no other test (or run) uses.
    pub fn prefix(test: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!("portico:test:{test}:{}:{nanos}:", std::process::id())
    }

    /// `tok-<user>` is `<user>`'s access token, for every user these tests connect as.
    fn tokens() -> crate::support::Tokens {
        let tokens = crate::support::Tokens::default();
        for user in ["alice", "bob", "carol", "dave", "erin", "mallory", "trent"] {
            tokens.user(&format!("tok-{user}"), user, &[]);
        }
        tokens
    }

    pub fn parts(shutdown: &Shutdown) -> HubParts {
        let mut settings = RealtimeSettings::default();
        settings.namespaces.insert(
            "room".into(),
            Namespace {
                permission: None,
                check: None,
                presence: true,
                history_size: 100,
                history_ttl: Duration::from_secs(600),
                allow_client_publish: true,
            },
        );
        HubParts {
            settings,
            authenticator: Arc::new(tokens()),
            upstreams: Upstreams::default(),
            internal_tokens: Vec::new(),
            clock: portico_core::clock::SystemClock::shared(),
            shutdown: shutdown.clone(),
        }
    }

    /// One hub process: a Redis hub served on its own listener.
    pub struct Node {
        pub hub: Hub,
        pub addr: std::net::SocketAddr,
        shutdown: Shutdown,
    }

    impl Drop for Node {
        fn drop(&mut self) {
            self.shutdown.trigger();
        }
    }

    pub async fn node(url: &str, prefix: &str) -> Node {
        node_on(url, prefix, portico_core::clock::SystemClock::shared()).await
    }

    /// A node whose time (heartbeats, upkeep) is `clock`'s.
    pub async fn node_on(url: &str, prefix: &str, clock: portico_core::clock::SharedClock) -> Node {
        let shutdown = Shutdown::new();
        let mut parts = parts(&shutdown);
        parts.clock = clock;
        let hub = Hub::with_redis_prefix(parts, url, prefix)
            .await
            .expect("redis hub");
        assert_eq!(hub.broker_kind(), "redis");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Served as the binary serves (TCP_NODELAY, graceful drain).
        tokio::spawn(portico_core::shutdown::serve(
            listener,
            hub.router(),
            shutdown.clone(),
            Duration::from_secs(1),
        ));
        Node {
            hub,
            addr,
            shutdown,
        }
    }

    pub struct Client {
        ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
        pub connection_id: String,
    }

    impl Client {
        pub async fn connect(node: &Node, user: &str) -> Client {
            let url = format!("ws://{}/ws?token=tok-{user}", node.addr);
            let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            let mut client = Client {
                ws,
                connection_id: String::new(),
            };
            let hello = client.next_of("connection_established").await;
            client.connection_id = hello["data"]["connection_id"].as_str().unwrap().to_owned();
            client
        }

        pub async fn send(&mut self, action: &str, data: Value) {
            let frame = json!({ "action": action, "data": data }).to_string();
            self.ws.send(Message::text(frame)).await.unwrap();
        }

        /// The next JSON frame (heartbeats skipped); `None` once the server closed.
        pub async fn next(&mut self) -> Result<Value, Option<u16>> {
            loop {
                let message = tokio::time::timeout(WAIT, self.ws.next())
                    .await
                    .expect("a frame within the deadline");
                match message {
                    Some(Ok(Message::Text(text))) => {
                        let v: Value = serde_json::from_str(&text).unwrap();
                        if v["type"] != "heartbeat" {
                            return Ok(v);
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return Err(frame.map(|f| u16::from(f.code)));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return Err(None),
                }
            }
        }

        /// The next frame, which must be of type `kind`.
        pub async fn next_of(&mut self, kind: &str) -> Value {
            let v = self.next().await.expect("an open connection");
            assert_eq!(v["type"], kind, "{v}");
            v
        }

        pub async fn subscribe(&mut self, channel: &str, since: Option<Value>) -> Value {
            let mut data = json!({ "channel": channel });
            if let Some(since) = since {
                data["since"] = since;
            }
            self.send("subscribe", data).await;
            self.next_of("subscribed").await
        }

        pub async fn close(mut self) {
            let _ = self.ws.close(None).await;
            while let Ok(Some(_)) = tokio::time::timeout(WAIT, self.ws.next()).await {}
        }
    }

    /// A TCP forwarder to Redis that can be cut and restored on the same port.
    pub struct Proxy {
        pub port: u16,
        target: String,
        tasks: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
    }

    impl Proxy {
        pub async fn start(target: String) -> Proxy {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let proxy = Proxy {
                port,
                target,
                tasks: Arc::default(),
            };
            proxy.serve(listener);
            proxy
        }

        fn serve(&self, listener: TcpListener) {
            let target = self.target.clone();
            let tasks = self.tasks.clone();
            let accept = tokio::spawn({
                let tasks = tasks.clone();
                async move {
                    while let Ok((mut inbound, _)) = listener.accept().await {
                        let target = target.clone();
                        let t = tokio::spawn(async move {
                            if let Ok(mut outbound) = TcpStream::connect(target).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound)
                                    .await;
                            }
                        });
                        tasks.lock().unwrap().push(t);
                    }
                }
            });
            tasks.lock().unwrap().push(accept);
        }

        /// Closes the listener and every forwarded connection.
        pub fn cut(&self) {
            for t in self.tasks.lock().unwrap().drain(..) {
                t.abort();
            }
        }

        /// Listens on the same port again.
        pub async fn restore(&self) {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.set_reuseaddr(true).unwrap();
            socket.bind(([127, 0, 0, 1], self.port).into()).unwrap();
            self.serve(socket.listen(64).unwrap());
        }
    }
}

use nodes::{Client, Proxy, WAIT, node, node_on, prefix, redis_url};

fn offset(v: &Value) -> u64 {
    v["metadata"]["offset"].as_u64().expect("an offset")
}

#[tokio::test]
#[ignore = "needs Redis (PORTICO_TEST_REDIS_URL)"]
async fn redis_publications_reach_subscribers_on_every_node_in_order_once() {
    let Some(url) = redis_url("redis_publications_reach_subscribers_on_every_node_in_order_once")
    else {
        return;
    };
    let prefix = prefix("publish");
    let a = node(&url, &prefix).await;
    let b = node(&url, &prefix).await;
    let mut on_b = Client::connect(&b, "bob").await;
    on_b.subscribe("room:1", None).await;
    let mut on_a = Client::connect(&a, "alice").await;
    on_a.subscribe("room:1", None).await;
    // alice's join reaches bob on the other node.
    let joined = on_b.next_of("user-joined").await;
    assert_eq!(joined["data"]["user_id"], "alice");

    // Clients publish on A (the publisher excluded for half of them)...
    for i in 1..=4 {
        on_a.send(
            "publish",
            json!({ "channel": "room:1", "event": "chat", "payload": { "i": i }, "exclude_self": i % 2 == 0 }),
        )
        .await;
    }
    // The publisher gets its acknowledgements and the messages not excluded, in order.
    let mut published = Vec::new();
    let mut seen = Vec::new();
    let mut collect = async |on_a: &mut Client, until: &dyn Fn(&[u64], &[u64]) -> bool| {
        while !until(&published, &seen) {
            let v = on_a.next().await.unwrap();
            match v["type"].as_str() {
                Some("published") => published.push(v["data"]["offset"].as_u64().unwrap()),
                Some("chat") => seen.push(offset(&v)),
                other => panic!("unexpected {other:?}: {v}"),
            }
        }
    };
    collect(&mut on_a, &|p, s| p.len() == 4 && s.last() == Some(&3)).await;
    // ...and so does an upstream, through A's hub.
    for i in 5..=8 {
        a.hub
            .publish("room:1", "chat", &json!({ "i": i }), &Map::new(), None)
            .await
            .unwrap();
    }
    collect(&mut on_a, &|_, s| s.last() == Some(&8)).await;
    assert_eq!(published, vec![1, 2, 3, 4]);
    assert_eq!(seen, vec![1, 3, 5, 6, 7, 8]);
    for i in 1..=8u64 {
        let v = on_b.next_of("chat").await;
        assert_eq!(offset(&v), i, "{v}");
        assert_eq!(v["data"]["i"], i);
        assert_eq!(v["metadata"]["channel"], "room:1");
    }
    // Once: the next frame bob gets is the next publication, from B this time.
    b.hub
        .publish("room:1", "chat", &json!({ "i": 9 }), &Map::new(), None)
        .await
        .unwrap();
    assert_eq!(offset(&on_b.next_of("chat").await), 9);
    assert_eq!(offset(&on_a.next_of("chat").await), 9);
}

#[tokio::test]
#[ignore = "needs Redis (PORTICO_TEST_REDIS_URL)"]
async fn redis_presence_and_join_leave_events_span_nodes() {
    let Some(url) = redis_url("redis_presence_and_join_leave_events_span_nodes") else {
        return;
    };
    let prefix = prefix("presence");
    let a = node(&url, &prefix).await;
    let b = node(&url, &prefix).await;
    let mut alice = Client::connect(&a, "alice").await;
    alice.subscribe("room:p", None).await;
    let mut bob = Client::connect(&b, "bob").await;
    bob.subscribe("room:p", None).await;
    let joined = alice.next_of("user-joined").await;
    assert_eq!(joined["data"]["user_id"], "bob");
    assert_eq!(joined["data"]["connection_id"], bob.connection_id.as_str());

    for client in [&mut alice, &mut bob] {
        client
            .send("presence", json!({ "channel": "room:p" }))
            .await;
        let v = client.next_of("presence").await;
        let mut members: Vec<(String, String)> = v["data"]["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["user_id"].as_str().unwrap().to_owned(),
                    m["connection_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        members.sort();
        assert_eq!(members.len(), 2, "{v}");
        assert_eq!(members[0].0, "alice");
        assert_eq!(members[1].0, "bob");
    }

    bob.send("unsubscribe", json!({ "channel": "room:p" }))
        .await;
    bob.next_of("unsubscribed").await;
    let left = alice.next_of("user-left").await;
    assert_eq!(left["data"]["user_id"], "bob");
    alice.send("presence", json!({ "channel": "room:p" })).await;
    let v = alice.next_of("presence").await;
    let members = v["data"]["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{v}");
    assert_eq!(members[0]["user_id"], "alice");

    // A connection that goes away leaves at once too.
    let mut carol = Client::connect(&b, "carol").await;
    carol.subscribe("room:p", None).await;
    assert_eq!(
        alice.next_of("user-joined").await["data"]["user_id"],
        "carol"
    );
    carol.close().await;
    assert_eq!(alice.next_of("user-left").await["data"]["user_id"], "carol");
}

#[tokio::test]
#[ignore = "needs Redis (PORTICO_TEST_REDIS_URL)"]
async fn redis_a_client_recovers_what_it_missed_on_another_node() {
    let Some(url) = redis_url("redis_a_client_recovers_what_it_missed_on_another_node") else {
        return;
    };
    let prefix = prefix("recover");
    let a = node(&url, &prefix).await;
    let b = node(&url, &prefix).await;
    let publish = |i: u64| {
        let hub = a.hub.clone();
        async move {
            hub.publish("room:r", "tick", &json!({ "i": i }), &Map::new(), None)
                .await
                .unwrap()
        }
    };
    let mut c = Client::connect(&a, "carol").await;
    let subscribed = c.subscribe("room:r", None).await;
    assert_eq!(subscribed["data"]["offset"], 0);
    assert_eq!(subscribed["data"]["recovered"], false);
    let epoch = subscribed["data"]["epoch"].as_str().unwrap().to_owned();
    for i in 1..=2 {
        assert_eq!(publish(i).await.epoch, epoch);
    }
    assert_eq!(offset(&c.next_of("tick").await), 1);
    let last = offset(&c.next_of("tick").await);
    assert_eq!(last, 2);
    c.close().await;

    for i in 3..=5 {
        publish(i).await;
    }
    let mut c = Client::connect(&b, "carol").await;
    let v = c
        .subscribe(
            "room:r",
            Some(json!({ "offset": last, "epoch": epoch.clone() })),
        )
        .await;
    assert_eq!(v["data"]["recovered"], true, "{v}");
    assert_eq!(v["data"]["offset"], 5);
    assert_eq!(v["data"]["epoch"], epoch.as_str());
    let missed = v["data"]["missed"].as_array().unwrap();
    let offsets: Vec<u64> = missed.iter().map(offset).collect();
    assert_eq!(offsets, vec![3, 4, 5]);
    let payloads: Vec<u64> = missed
        .iter()
        .map(|m| m["data"]["i"].as_u64().unwrap())
        .collect();
    assert_eq!(payloads, vec![3, 4, 5]);
    // Live again from there, once.
    publish(6).await;
    assert_eq!(offset(&c.next_of("tick").await), 6);

    // A position in another epoch (the channel's history was lost) is not recovered.
    let mut d = Client::connect(&b, "dave").await;
    let v = d
        .subscribe(
            "room:r",
            Some(json!({ "offset": 2, "epoch": "0000000000000000" })),
        )
        .await;
    assert_eq!(v["data"]["recovered"], false, "{v}");
    assert_eq!(v["data"]["missed"], json!([]));
    assert_eq!(v["data"]["offset"], 6);
    // Nor is one past the end.
    let mut e = Client::connect(&a, "erin").await;
    let v = e
        .subscribe("room:r", Some(json!({ "offset": 60, "epoch": epoch })))
        .await;
    assert_eq!(v["data"]["recovered"], false, "{v}");
}

#[tokio::test]
#[ignore = "needs Redis (PORTICO_TEST_REDIS_URL)"]
async fn redis_disconnect_user_closes_connections_on_every_node() {
    let Some(url) = redis_url("redis_disconnect_user_closes_connections_on_every_node") else {
        return;
    };
    let prefix = prefix("disconnect");
    let a = node(&url, &prefix).await;
    let b = node(&url, &prefix).await;
    let mut mallory_b = Client::connect(&b, "mallory").await;
    let mut mallory_a = Client::connect(&a, "mallory").await;
    let mut bystander = Client::connect(&b, "trent").await;
    a.hub.disconnect_user("mallory").await.unwrap();
    assert_eq!(mallory_b.next().await.unwrap_err(), Some(1008));
    assert_eq!(mallory_a.next().await.unwrap_err(), Some(1008));
    bystander.send("ping", json!({})).await;
    // The personal channel is where publications for trent go; he is still connected.
    b.hub
        .publish("user:trent", "note", &json!({}), &Map::new(), None)
        .await
        .unwrap();
    assert_eq!(
        bystander.next_of("note").await["metadata"]["channel"],
        "user:trent"
    );
}

#[tokio::test]
#[ignore = "needs Redis (PORTICO_TEST_REDIS_URL)"]
async fn redis_unreachable_fails_start_and_publishes_answer_sys_002_until_it_is_back() {
    let test = "redis_unreachable_fails_start_and_publishes_answer_sys_002_until_it_is_back";
    // Nothing listens on port 1: the hub does not start, and says why.
    let shutdown = Shutdown::new();
    let started = tokio::time::Instant::now();
    let err = Hub::with_redis_prefix(nodes::parts(&shutdown), "redis://127.0.0.1:1/", "x:")
        .await
        .err()
        .expect("no hub without redis");
    assert!(err.to_string().contains("redis"), "{err}");
    assert!(started.elapsed() < WAIT, "took {:?}", started.elapsed());
    let err = Hub::with_redis(nodes::parts(&shutdown), "not a url")
        .await
        .err()
        .expect("no hub with a bad url");
    assert!(err.to_string().contains("invalid redis url"), "{err}");

    let Some(url) = redis_url(test) else {
        return;
    };
    // Node A reaches Redis through a proxy that the test cuts and restores.
    let target = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .rsplit('@')
        .next()
        .unwrap()
        .to_owned();
    let proxy = Proxy::start(target).await;
    let via_proxy = url.replacen(
        &url.trim_start_matches("redis://")
            .split('/')
            .next()
            .unwrap()
            .rsplit('@')
            .next()
            .unwrap()
            .to_owned(),
        &format!("127.0.0.1:{}", proxy.port),
        1,
    );
    let prefix = prefix("unreachable");
    let a = node(&via_proxy, &prefix).await;
    let b = node(&url, &prefix).await;
    let mut on_a = Client::connect(&a, "alice").await;
    on_a.subscribe("room:u", None).await;

    proxy.cut();
    on_a.send(
        "publish",
        json!({ "channel": "room:u", "event": "chat", "payload": {} }),
    )
    .await;
    let v = on_a.next_of("error").await;
    assert_eq!(v["data"]["code"], "SYS_002", "{v}");
    // /health says so: the hub's check fails while its Redis is cut.
    let check = a.hub.health_check();
    assert!(check.critical());
    let verdict = check.check().await;
    assert_eq!(
        verdict.status,
        portico_core::health::HealthStatus::Unhealthy,
        "{verdict:?}"
    );
    // Still connected, still answering.
    on_a.send("ping", json!({})).await;

    // Published on B while A's bus is down: A's subscriber gets them once it is back, in
    // order, from history.
    // The second is not for A's client (exclude_connection_id).
    let mut expected = Vec::new();
    for i in 1..=3 {
        let exclude = (i == 2).then_some(on_a.connection_id.as_str());
        let p = b
            .hub
            .publish("room:u", "missed", &json!({ "i": i }), &Map::new(), exclude)
            .await
            .unwrap();
        if exclude.is_none() {
            expected.push(p.offset);
        }
    }
    assert_eq!(expected.len(), 2);
    proxy.restore().await;
    for want in expected {
        let v = on_a.next_of("missed").await;
        assert_eq!(offset(&v), want, "{v}");
    }
    // Publishing from A works again, and reaches A's subscriber once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let position = loop {
        match a
            .hub
            .publish("room:u", "chat", &json!({}), &Map::new(), None)
            .await
        {
            Ok(p) => break p,
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "redis never came back: {e:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let v = on_a.next_of("chat").await;
    assert_eq!(offset(&v), position.offset);
    assert_eq!(
        a.hub.health_check().check().await.status,
        portico_core::health::HealthStatus::Healthy
    );
    b.hub
        .publish("room:u", "chat", &json!({}), &Map::new(), None)
        .await
        .unwrap();
    assert_eq!(offset(&on_a.next_of("chat").await), position.offset + 1);
}

#[tokio::test]
#[ignore = "needs Redis (PORTICO_TEST_REDIS_URL)"]
async fn redis_presence_of_a_dead_node_expires_and_live_members_are_renewed() {
    let Some(url) = redis_url("redis_presence_of_a_dead_node_expires_and_live_members_are_renewed")
    else {
        return;
    };
    let prefix = prefix("presence_expiry");
    let clock = portico_core::clock::ManualClock::new();
    let a = node_on(&url, &prefix, clock.shared()).await;
    a.hub.spawn_upkeep();
    let mut alice = Client::connect(&a, "alice").await;
    alice.subscribe("room:x", None).await;

    // What nodes that died left behind: one entry past its expiry, one not yet.
    let key = format!("{prefix}presence:room:x");
    let mut redis = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let now_ms = |redis_time: (u64, u64)| redis_time.0 * 1000 + redis_time.1 / 1000;
    let t: (u64, u64) = redis::cmd("TIME").query_async(&mut redis).await.unwrap();
    let member = |user: &str, conn: &str| json!({ "user_id": user, "connection_id": conn, "joined_at": "2026-01-01T00:00:00.000Z" });
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("dead-conn")
        .arg(format!(
            "{} {}",
            now_ms(t) - 1,
            member("ghost", "dead-conn")
        ))
        .arg("fresh-conn")
        .arg(format!(
            "{} {}",
            now_ms(t) + 60_000,
            member("zed", "fresh-conn")
        ))
        .query_async(&mut redis)
        .await
        .unwrap();
    alice.send("presence", json!({ "channel": "room:x" })).await;
    let v = alice.next_of("presence").await;
    let mut users: Vec<&str> = v["data"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap())
        .collect();
    users.sort_unstable();
    assert_eq!(users, vec!["alice", "zed"], "{v}");
    let gone: bool = redis::cmd("HEXISTS")
        .arg(&key)
        .arg("dead-conn")
        .query_async::<bool>(&mut redis)
        .await
        .map(|exists| !exists)
        .unwrap();
    assert!(gone, "the reader deletes expired members");

    // The node renews its own members every upkeep.
    let expiry = async |redis: &mut redis::aio::MultiplexedConnection| -> u64 {
        let raw: String = redis::cmd("HGET")
            .arg(&key)
            .arg(&alice.connection_id)
            .query_async(redis)
            .await
            .unwrap();
        raw.split(' ').next().unwrap().parse().unwrap()
    };
    let before = expiry(&mut redis).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while expiry(&mut redis).await <= before {
        assert!(tokio::time::Instant::now() < deadline, "never renewed");
        clock.advance(Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Figures, not a pass/fail bound: `cargo test --release -p portico-realtime --test
/// redis_broker -- --ignored --nocapture redis_publish_round_trip_figures`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Redis (PORTICO_TEST_REDIS_URL)"]
async fn redis_publish_round_trip_figures() {
    let Some(url) = redis_url("redis_publish_round_trip_figures") else {
        return;
    };
    let prefix = prefix("figures");
    let a = node(&url, &prefix).await;
    let b = node(&url, &prefix).await;
    let mut on_b = Client::connect(&b, "bob").await;
    on_b.subscribe("room:f", None).await;
    let payload = json!({ "text": "x".repeat(100) });

    // Sequential: Hub::publish on A until the frame is read by a WebSocket client of B.
    const N: u64 = 1000;
    let mut rtt = Vec::with_capacity(N as usize);
    for i in 1..=N {
        let t = std::time::Instant::now();
        a.hub
            .publish("room:f", "m", &payload, &Map::new(), None)
            .await
            .unwrap();
        assert_eq!(offset(&on_b.next_of("m").await), i);
        rtt.push(t.elapsed());
    }
    rtt.sort_unstable();
    let pct = |p: usize| rtt[(rtt.len() * p / 100).min(rtt.len() - 1)];
    println!(
        "sequential A→B publish round trip over {N}: p50 {:?} p90 {:?} p99 {:?} max {:?}",
        pct(50),
        pct(90),
        pct(99),
        rtt[rtt.len() - 1]
    );

    // Burst: 16 publishers on A, 1000 publications, until B's client has read them all.
    const BURST: u64 = 1000;
    let t = std::time::Instant::now();
    let mut publishers = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let hub = a.hub.clone();
        let payload = payload.clone();
        publishers.spawn(async move {
            for _ in 0..BURST / 16 {
                hub.publish("room:f", "m", &payload, &Map::new(), None)
                    .await
                    .unwrap();
            }
        });
    }
    let total = BURST / 16 * 16;
    for i in 1..=total {
        assert_eq!(offset(&on_b.next_of("m").await), N + i);
    }
    let elapsed = t.elapsed();
    println!(
        "burst of {total} publications from 16 tasks on A, all read on B: {elapsed:?} ({:.0}/s)",
        total as f64 / elapsed.as_secs_f64()
    );
}
