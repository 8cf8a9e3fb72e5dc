//! The resilient HTTP client against a real local HTTP upstream that fails, hangs, vanishes
//! and recovers: retries, breaker transitions and seed 001's log lines, in order.
#![cfg(feature = "http")]
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderMap, Method, StatusCode};
use portico_resilience::breaker::State;
use portico_resilience::client::{ClientError, UpstreamClient};
use portico_resilience::{ManualClock, Preset, UpstreamPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod support;
use support::{advance_when_sleeping, capture_logs, take_messages, until};

// === the upstream ===

/// What the upstream does with the next request.
#[derive(Debug, Clone)]
enum Reply {
    Status(u16, &'static str),
    StatusWithHeader(u16, &'static str, &'static str),
    /// Accept and read, never answer.
    Hang,
}

/// A local HTTP/1.1 server that answers from a script (the last entry repeats) and keeps
/// the head of every request it saw.
#[derive(Clone)]
struct Upstream {
    addr: SocketAddr,
    script: Arc<Mutex<VecDeque<Reply>>>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    async fn start(script: Vec<Reply>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, script)
    }

    fn serve(listener: TcpListener, script: Vec<Reply>) -> Upstream {
        let upstream = Upstream {
            addr: listener.local_addr().unwrap(),
            script: Arc::new(Mutex::new(script.into())),
            seen: Arc::default(),
        };
        let server = upstream.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(server.clone().handle(stream));
            }
        });
        upstream
    }

    fn next_reply(&self) -> Reply {
        let mut script = self.script.lock().unwrap();
        if script.len() > 1 {
            script.pop_front().unwrap()
        } else {
            script.front().cloned().unwrap()
        }
    }

    async fn handle(self, mut stream: TcpStream) {
        loop {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match stream.read(&mut byte).await {
                    Ok(1) => head.push(byte[0]),
                    _ => return,
                }
            }
            let head = String::from_utf8_lossy(&head).to_string();
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            let mut body = vec![0u8; length];
            if stream.read_exact(&mut body).await.is_err() {
                return;
            }
            self.seen.lock().unwrap().push(head);
            let (status, body, header) = match self.next_reply() {
                Reply::Hang => {
                    std::future::pending::<()>().await;
                    return;
                }
                Reply::Status(status, body) => (status, body, String::new()),
                Reply::StatusWithHeader(status, body, header) => {
                    (status, body, format!("{header}\r\n"))
                }
            };
            let response = format!(
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n{header}\r\n{body}",
                body.len()
            );
            if stream.write_all(response.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

fn chroma(url: &str, clock: &ManualClock) -> UpstreamClient {
    UpstreamClient::builder("Chroma Server", url)
        .preset(Preset::Chroma)
        .retry_non_idempotent(true)
        .clock(clock.shared())
        .build()
        .unwrap()
}

fn post_query(
    client: &UpstreamClient,
) -> tokio::task::JoinHandle<Result<http::Response<bytes::Bytes>, ClientError>> {
    let client = client.clone();
    tokio::spawn(async move { client.post_json("/query", r#"{"q":"hello"}"#).await })
}

// === tests ===

#[tokio::test]
async fn transient_connection_failure_is_retried_after_1s_as_seed_001_logs() {
    capture_logs();
    let clock = ManualClock::new();
    // A port with nothing listening: the first attempt is refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = chroma(&format!("http://{addr}"), &clock);

    let call = post_query(&client);
    advance_when_sleeping(&clock, Duration::from_secs(1)).await;
    // The upstream comes up during the backoff.
    let upstream = Upstream::serve(
        TcpListener::bind(addr).await.unwrap(),
        vec![Reply::Status(200, "{}")],
    );
    let response = call.await.unwrap().unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(upstream.requests(), 1);
    assert_eq!(
        take_messages(tracing::Level::INFO),
        [
            "[Chroma Server] POST /query (attempt 1/3)",
            "[Chroma Server] Connection failed on attempt 1/3: Connection refused",
            "[Chroma Server] Retrying in 1s...",
            "[Chroma Server] POST /query (attempt 2/3)",
            "[Chroma Server] ✓ POST /query succeeded",
        ]
    );
    let snapshot = client.breaker().snapshot();
    assert_eq!(snapshot.failure_count, 0, "the success reset the count");
    assert!(snapshot.last_failure.is_some());
}

#[tokio::test]
async fn cascading_failure_opens_the_circuit_then_rejects_then_recovers() {
    capture_logs();
    let clock = ManualClock::new();
    let upstream = Upstream::start(vec![Reply::Status(500, "boom")]).await;
    let client = chroma(&upstream.url(), &clock);

    // Call 1: three 500s with 1s and 2s between them — 3 of the 5 failures.
    let call = post_query(&client);
    advance_when_sleeping(&clock, Duration::from_secs(1)).await;
    advance_when_sleeping(&clock, Duration::from_secs(2)).await;
    let response = call.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        take_messages(tracing::Level::INFO),
        [
            "[Chroma Server] POST /query (attempt 1/3)",
            "[Chroma Server] Server error 500 on attempt 1/3",
            "[Chroma Server] Retrying in 1s...",
            "[Chroma Server] POST /query (attempt 2/3)",
            "[Chroma Server] Server error 500 on attempt 2/3",
            "[Chroma Server] Retrying in 2s...",
            "[Chroma Server] POST /query (attempt 3/3)",
            "[Chroma Server] Server error 500 on attempt 3/3",
            "[Chroma Server] ✗ All 3 retry attempts failed",
        ]
    );
    assert_eq!(client.breaker().snapshot().failure_count, 3);

    // Call 2: the fifth failure opens the circuit; no third attempt is waited for.
    let call = post_query(&client);
    advance_when_sleeping(&clock, Duration::from_secs(1)).await;
    let response = call.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        take_messages(tracing::Level::INFO),
        [
            "[Chroma Server] POST /query (attempt 1/3)",
            "[Chroma Server] Server error 500 on attempt 1/3",
            "[Chroma Server] Retrying in 1s...",
            "[Chroma Server] POST /query (attempt 2/3)",
            "[Chroma Server] Server error 500 on attempt 2/3",
            "[Chroma Server] Circuit breaker OPEN (threshold reached: 5/5)",
        ]
    );
    let snapshot = client.breaker().snapshot();
    assert_eq!(snapshot.state, State::Open);
    assert_eq!(snapshot.failure_count, 5);
    assert!(snapshot.last_failure.is_some());
    assert_eq!(upstream.requests(), 5);

    // Call 3: refused without touching the upstream, saying when to come back.
    let err = client.get("/health").await.unwrap_err();
    assert!(matches!(err, ClientError::CircuitOpen(_)), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(60)));
    assert_eq!(upstream.requests(), 5);
    // Logged at DEBUG so that an open circuit under load does not flood the log.
    assert_eq!(
        take_messages(tracing::Level::DEBUG)
            .into_iter()
            .filter(|l| l.contains("Circuit breaker"))
            .collect::<Vec<_>>(),
        ["[Chroma Server] Circuit breaker OPEN - rejecting request"]
    );

    // 60 s later the upstream is back: one trial call closes the circuit.
    *upstream.script.lock().unwrap() = vec![Reply::Status(200, "ok")].into();
    clock.advance(Duration::from_secs(60));
    let response = client.get("/health").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        take_messages(tracing::Level::INFO),
        [
            "[Chroma Server] Circuit breaker entering HALF_OPEN state",
            "[Chroma Server] GET /health (attempt 1/3)",
            "[Chroma Server] ✓ GET /health succeeded",
            "[Chroma Server] Circuit breaker CLOSED (service recovered)",
        ]
    );
    assert_eq!(client.breaker().snapshot().state, State::Closed);
    assert_eq!(client.breaker().snapshot().failure_count, 0);
}

#[tokio::test]
async fn hung_attempt_times_out_counts_as_failure_and_is_retried() {
    capture_logs();
    let clock = ManualClock::new();
    let upstream = Upstream::start(vec![Reply::Hang, Reply::Status(200, "ok")]).await;
    let client = chroma(&upstream.url(), &clock);

    let call = {
        let client = client.clone();
        tokio::spawn(async move { client.get("/slow").await })
    };
    // The attempt's 15 s timer starts before the connection is made: let the request reach
    // the upstream before time runs out on it.
    until("the first request", || upstream.requests() == 1).await;
    advance_when_sleeping(&clock, Duration::from_secs(15)).await;
    advance_when_sleeping(&clock, Duration::from_secs(1)).await;
    let response = call.await.unwrap().unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        take_messages(tracing::Level::INFO),
        [
            "[Chroma Server] GET /slow (attempt 1/3)",
            "[Chroma Server] Timeout on attempt 1/3 after 15s",
            "[Chroma Server] Retrying in 1s...",
            "[Chroma Server] GET /slow (attempt 2/3)",
            "[Chroma Server] ✓ GET /slow succeeded",
        ]
    );
    assert_eq!(
        client.breaker().snapshot().failure_count,
        0,
        "success resets the count"
    );
    assert!(client.breaker().snapshot().last_failure.is_some());
}

#[tokio::test]
async fn clients_sharing_a_breaker_open_and_see_one_circuit() {
    let clock = ManualClock::new();
    let upstream = Upstream::start(vec![Reply::Status(503, "down")]).await;
    let billing = |breaker: Option<portico_resilience::breaker::CircuitBreaker>| {
        let mut b = UpstreamClient::builder("billing", upstream.url())
            .preset(Preset::Billing)
            .clock(clock.shared());
        if let Some(breaker) = breaker {
            b = b.breaker(breaker);
        }
        b.build().unwrap()
    };
    let first = billing(None);
    let second = billing(Some(first.breaker().clone()));
    let separate = billing(None);
    let threshold = Preset::Billing.policy().failure_threshold.get();
    for _ in 0..threshold {
        let response = second.post_json("/charge", "{}").await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(first.breaker().state(), State::Open);
    assert!(matches!(
        first.post_json("/charge", "{}").await,
        Err(ClientError::CircuitOpen { .. })
    ));
    assert_eq!(upstream.requests() as u32, threshold);
    assert_eq!(separate.breaker().state(), State::Closed);
}

#[tokio::test]
async fn post_is_not_retried_unless_allowed() {
    let clock = ManualClock::new();
    let upstream = Upstream::start(vec![Reply::Status(503, "down")]).await;
    let client = UpstreamClient::builder("billing", upstream.url())
        .preset(Preset::Billing)
        .clock(clock.shared())
        .build()
        .unwrap();
    let response = client.post_json("/charge", "{}").await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(upstream.requests(), 1);
    assert_eq!(client.breaker().snapshot().failure_count, 1);
}

#[tokio::test]
async fn retry_after_from_the_upstream_sets_the_wait() {
    let clock = ManualClock::new();
    let upstream = Upstream::start(vec![
        Reply::StatusWithHeader(503, "busy", "retry-after: 7"),
        Reply::Status(200, "ok"),
    ])
    .await;
    let client = chroma(&upstream.url(), &clock);
    let call = {
        let client = client.clone();
        tokio::spawn(async move { client.get("/x").await })
    };
    advance_when_sleeping(&clock, Duration::from_secs(7)).await;
    assert_eq!(call.await.unwrap().unwrap().status(), StatusCode::OK);
    assert_eq!(upstream.requests(), 2);
}

#[tokio::test]
async fn internal_token_header_is_sent_and_headers_pass_through() {
    let upstream = Upstream::start(vec![Reply::Status(200, "ok")]).await;
    let client = UpstreamClient::builder("etl", upstream.url())
        .internal_token("X-Internal-Auth", "s3cret")
        .build()
        .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("x-request-id", "abc123".parse().unwrap());
    let response = client
        .send(
            Method::GET,
            "/api/v1/jobs?limit=2",
            headers,
            bytes::Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(response.body().as_ref(), b"ok");
    let seen = upstream.seen.lock().unwrap()[0].to_ascii_lowercase();
    assert!(
        seen.starts_with("get /api/v1/jobs?limit=2 http/1.1"),
        "{seen}"
    );
    assert!(seen.contains("x-internal-auth: s3cret"), "{seen}");
    assert!(seen.contains("x-request-id: abc123"), "{seen}");
}

#[tokio::test]
async fn oversized_response_body_is_refused_without_counting_against_the_upstream() {
    let upstream = Upstream::start(vec![Reply::Status(200, "0123456789")]).await;
    let client = UpstreamClient::builder("files", upstream.url())
        .max_response_body(4)
        .build()
        .unwrap();
    let err = client.get("/big").await.unwrap_err();
    assert!(
        matches!(err, ClientError::BodyTooLarge { limit: 4, .. }),
        "{err:?}"
    );
    assert_eq!(client.breaker().snapshot().failure_count, 0);
}

#[tokio::test]
async fn overall_deadline_stops_waiting_for_more_attempts() {
    let clock = ManualClock::new();
    let upstream = Upstream::start(vec![Reply::Status(502, "bad")]).await;
    let client = UpstreamClient::builder("git", upstream.url())
        .preset(Preset::Git)
        .deadline(Duration::from_millis(1500))
        .clock(clock.shared())
        .build()
        .unwrap();
    let call = {
        let client = client.clone();
        tokio::spawn(async move { client.get("/repo").await })
    };
    // First retry waits 1s (within 1.5s); the second would wait 2s, past the deadline.
    advance_when_sleeping(&clock, Duration::from_secs(1)).await;
    let response = call.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(upstream.requests(), 2);
}

#[test]
fn bad_settings_are_refused_naming_the_field() {
    let err = UpstreamClient::builder("x", "ftp://host")
        .build()
        .unwrap_err();
    assert_eq!(err.field, "url");
    let err = UpstreamClient::builder("x", "not a url")
        .build()
        .unwrap_err();
    assert_eq!(err.field, "url");
    let err = UpstreamClient::builder("x", "http://h")
        .internal_token("bad header", "v")
        .build()
        .unwrap_err();
    assert_eq!(err.field, "internal_token_header");
    let err =
        UpstreamPolicy::new(0, Duration::from_secs(1), 5, Duration::from_secs(1)).unwrap_err();
    assert_eq!(err.field, "max_retries");
}
