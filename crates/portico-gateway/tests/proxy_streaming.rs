//! Bodies stream through the gateway both ways (nothing waits for a whole body), WebSocket
//! handshakes become byte tunnels, and HTTP/2 clients (h2c, prior knowledge) are served and
//! forwarded over HTTP/1.1.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{Method, StatusCode, Version};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioIo};
use portico_gateway::settings::AuthMode;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Fails the test if `fut` takes more than 5 s of real time.
async fn within<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

async fn open_gateway(router: Router) -> (Upstream, TestGateway) {
    let up = Upstream::start(router).await;
    let gw = start_gateway(settings(
        vec![upstream("svc", &up.url())],
        vec![route("/svc", "svc", None, AuthMode::Optional, &[])],
    ))
    .await;
    (up, gw)
}

#[tokio::test]
async fn the_client_gets_the_first_chunk_before_the_upstream_has_finished() {
    let (tx, body) = channel_body();
    let slot = Arc::new(Mutex::new(Some(body)));
    let (_up, gw) = open_gateway(Router::new().fallback(move || {
        let body = slot.lock().unwrap().take().unwrap();
        async move { Response::new(body) }
    }))
    .await;

    tx.send(Bytes::from_static(b"first chunk")).await.unwrap();
    let response = within(
        "the response head",
        client().request(gw.request(Method::GET, "/svc/stream", &[], Body::empty())),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let frame = within("the first chunk", body.frame())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(frame.into_data().unwrap(), "first chunk");

    // The upstream is still holding the rest back: nothing more has come.
    let early = tokio::time::timeout(Duration::from_millis(50), body.frame()).await;
    assert!(early.is_err(), "more arrived before the upstream sent it");

    tx.send(Bytes::from_static(b" and the rest")).await.unwrap();
    drop(tx);
    let rest = within("the rest", body.collect()).await.unwrap().to_bytes();
    assert_eq!(rest, " and the rest");
}

#[tokio::test]
async fn the_upstream_gets_the_first_chunk_before_the_client_has_finished() {
    let (seen_tx, mut seen_rx) = mpsc::channel::<Bytes>(4);
    let (_up, gw) = open_gateway(Router::new().fallback(move |request: Request| {
        let seen_tx = seen_tx.clone();
        async move {
            let mut body = request.into_body();
            let mut total = Vec::new();
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.unwrap().into_data() {
                    total.extend_from_slice(&data);
                    seen_tx.send(data).await.unwrap();
                }
            }
            format!("got {} bytes", total.len()).into_response()
        }
    }))
    .await;

    // PUT is idempotent, but a body of unknown length is streamed, not buffered for retries.
    for method in [Method::POST, Method::PUT] {
        let (tx, body) = channel_body();
        let call = tokio::spawn(send(gw.request(method.clone(), "/svc/upload", &[], body)));
        tx.send(Bytes::from_static(b"part one")).await.unwrap();
        let first = within("the first part upstream", seen_rx.recv())
            .await
            .unwrap();
        assert_eq!(first, "part one", "{method}");
        assert!(!call.is_finished());
        tx.send(Bytes::from_static(b"part two")).await.unwrap();
        drop(tx);
        let reply = within("the answer", call).await.unwrap();
        assert_eq!(reply.text(), "got 16 bytes", "{method}");
        while seen_rx.try_recv().is_ok() {}
    }
}

/// An upstream accepting WebSocket handshakes on every path; after the switch it echoes
/// every read in upper case.
fn shouting_websocket() -> Router {
    Router::new().fallback(|mut request: Request| async move {
        if request.headers().get("upgrade").is_none() {
            return (StatusCode::BAD_REQUEST, "not a handshake").into_response();
        }
        let on_upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            let mut io = TokioIo::new(on_upgrade.await.unwrap());
            let mut buf = [0u8; 1024];
            loop {
                let n = io.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                io.write_all(&buf[..n].to_ascii_uppercase()).await.unwrap();
            }
        });
        http::Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            .body(Body::empty())
            .unwrap()
    })
}

fn handshake(gw: &TestGateway, path: &str, token: &str) -> http::Request<Body> {
    gw.request(
        Method::GET,
        path,
        &[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
            ("authorization", token),
        ],
        Body::empty(),
    )
}

#[tokio::test]
async fn a_websocket_handshake_becomes_a_tunnel_to_the_upstream() {
    let up = Upstream::start(shouting_websocket()).await;
    let gw = start_gateway(settings(
        vec![upstream("svc", &up.url())],
        vec![route(
            "/ws/jobs",
            "svc",
            Some("/events"),
            AuthMode::Required,
            &["etl.access"],
        )],
    ))
    .await;

    let response = within(
        "the handshake",
        client().request(handshake(&gw, "/ws/jobs/42", "Bearer alice-token")),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(response.headers()["upgrade"], "websocket");
    assert_eq!(
        response.headers()["sec-websocket-accept"],
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    let seen = up.last();
    assert_eq!(seen.uri, "/events/42");
    assert_eq!(seen.header("upgrade"), Some("websocket"));
    assert_eq!(seen.header("connection"), Some("upgrade"));
    assert_eq!(
        seen.header("sec-websocket-key"),
        Some("dGhlIHNhbXBsZSBub25jZQ==")
    );
    assert_eq!(seen.header("x-user-id"), Some("alice"));
    assert_eq!(seen.header("x-internal-auth"), Some(INTERNAL_TOKEN));

    let mut io = TokioIo::new(
        within("the switch", hyper::upgrade::on(response))
            .await
            .unwrap(),
    );
    for message in ["hello", "second message"] {
        io.write_all(message.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; message.len()];
        within("the echo", io.read_exact(&mut buf)).await.unwrap();
        assert_eq!(buf, message.to_ascii_uppercase().as_bytes());
    }

    // The handshake is checked like any request.
    let reply = send(handshake(&gw, "/ws/jobs/42", "Bearer bob-token")).await;
    assert_eq!(reply.code(), "AUTH_006");
}

#[tokio::test]
async fn a_handshake_the_upstream_refuses_is_answered_as_the_upstream_answered() {
    let (_up, gw) = open_gateway(
        Router::new().fallback(|| async { (StatusCode::FORBIDDEN, "no sockets here") }),
    )
    .await;
    let reply = send(handshake(&gw, "/svc/ws", "Bearer alice-token")).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.text(), "no sockets here");
    assert_eq!(reply.header("upgrade"), None);
}

#[tokio::test]
async fn http2_clients_are_forwarded_over_http_1_1() {
    let (up, gw) = open_gateway(Router::new().fallback(|| async { "over h1" })).await;
    let h2: HyperClient<_, Body> = HyperClient::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let response = within(
        "the h2 answer",
        h2.request(gw.request(
            Method::GET,
            "/svc/x",
            &[("authorization", "Bearer alice-token")],
            Body::empty(),
        )),
    )
    .await
    .unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("x-request-id"));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "over h1");
    let seen = up.last();
    assert_eq!(seen.version, Version::HTTP_11);
    assert_eq!(seen.header("host"), Some(up.addr.to_string().as_str()));
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some(gw.addr.to_string().as_str())
    );
    assert_eq!(seen.header("x-user-id"), Some("alice"));
}
