//! Graceful shutdown over real connections: in-flight requests finish, new connections are
//! refused, and the drain deadline bounds the wait. Durations here are real but small.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use portico_core::shutdown::Shutdown;
use support::{TestServer, get as http_get};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// A route that signals `started` when a request arrives, then waits for `release`.
fn gated_app(started: Arc<Notify>, release: Arc<Notify>) -> Router {
    Router::new().route(
        "/slow",
        get(move || {
            let (started, release) = (started.clone(), release.clone());
            async move {
                started.notify_one();
                release.notified().await;
                "done"
            }
        }),
    )
}

/// Polls until connecting to `addr` fails, for at most a second.
async fn until_refused(addr: SocketAddr) -> bool {
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        if TcpStream::connect(addr).await.is_err() {
            return true;
        }
        tokio::task::yield_now().await;
    }
    false
}

#[tokio::test]
async fn wait_returns_at_once_when_already_triggered_and_clones_share_the_signal() {
    let shutdown = Shutdown::new();
    let clone = shutdown.clone();
    assert!(!clone.is_triggered());
    let waiter = tokio::spawn(clone.wait());
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());
    shutdown.trigger();
    waiter.await.unwrap();
    assert!(clone.is_triggered());
    // Already triggered: completes on first poll.
    tokio::time::timeout(Duration::ZERO, clone.wait())
        .await
        .unwrap();
    shutdown.trigger(); // idempotent
}

#[tokio::test]
async fn in_flight_request_completes_and_new_connections_are_refused() {
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let server = TestServer::start_with_drain(
        gated_app(started.clone(), release.clone()),
        Duration::from_millis(300),
    )
    .await;
    let url = server.url("/slow");
    let in_flight = tokio::spawn(async move { http_get(&url).await });
    started.notified().await;

    server.shutdown.trigger();
    assert!(
        until_refused(server.addr).await,
        "the listener must close on shutdown"
    );
    assert!(
        !server.task.is_finished(),
        "still draining the in-flight request"
    );

    release.notify_one();
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "done");
    tokio::time::timeout(Duration::from_millis(300), server.task)
        .await
        .expect("serve returns once drained")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn drain_deadline_is_honoured() {
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let drain = Duration::from_millis(150);
    let server = TestServer::start_with_drain(gated_app(started.clone(), release), drain).await;
    let url = server.url("/slow");
    let stuck = tokio::spawn(async move { http_get(&url).await });
    started.notified().await;

    let t0 = Instant::now();
    server.shutdown.trigger();
    tokio::time::timeout(Duration::from_millis(600), server.task)
        .await
        .expect("serve gives up at the drain deadline")
        .unwrap()
        .unwrap();
    let waited = t0.elapsed();
    assert!(waited >= drain, "returned before the deadline: {waited:?}");
    assert!(waited < drain * 3, "overshot the deadline: {waited:?}");
    stuck.abort();
}

#[tokio::test]
async fn idle_server_stops_at_once_and_handlers_see_the_peer_address() {
    let app = Router::new().route(
        "/peer",
        get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
    );
    let server = TestServer::start_with_drain(app, Duration::from_secs(5)).await;
    assert_eq!(http_get(&server.url("/peer")).await.text(), "127.0.0.1");

    let t0 = Instant::now();
    server.shutdown.trigger();
    server.task.await.unwrap().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
}

#[tokio::test]
async fn workers_serve_on_their_own_threads_and_drain_like_serve() {
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let app = gated_app(started.clone(), release.clone()).route(
        "/thread",
        get(|| async { std::thread::current().name().unwrap_or("?").to_owned() }),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(portico_core::shutdown::serve_workers(
        listener,
        app,
        shutdown.clone(),
        // Far beyond the test's own waits: the drain must end because the request did.
        Duration::from_secs(10),
        2,
    ));

    // Requests are answered on the workers' threads, not on the caller's runtime.
    for _ in 0..8 {
        let name = http_get(&format!("http://{addr}/thread")).await.text();
        assert!(name.starts_with("portico-serve-"), "served on {name:?}");
    }

    let in_flight = tokio::spawn(async move { http_get(&format!("http://{addr}/slow")).await });
    started.notified().await;
    shutdown.trigger();
    assert!(
        until_refused(addr).await,
        "every worker must stop accepting on shutdown"
    );
    assert!(!task.is_finished(), "still draining the in-flight request");
    release.notify_one();
    assert_eq!(in_flight.await.unwrap().text(), "done");
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("serve_workers returns once every worker has drained")
        .unwrap()
        .unwrap();
}
