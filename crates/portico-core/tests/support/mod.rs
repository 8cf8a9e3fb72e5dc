//! Test scaffolding shared by the integration tests: a real server on 127.0.0.1:0 and a
//! small HTTP/1.1 client.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use portico_core::shutdown::{Shutdown, serve};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A running server and the means to stop it.
pub struct TestServer {
    pub addr: SocketAddr,
    pub shutdown: Shutdown,
    pub task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    pub async fn start(app: Router) -> Self {
        Self::start_with_drain(app, Duration::from_secs(1)).await
    }

    pub async fn start_with_drain(app: Router, drain: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(serve(listener, app, shutdown.clone(), drain));
        Self {
            addr,
            shutdown,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// A response read to the end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends one request: `headers` as (name, value) pairs.
pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Full::new(body.into())).unwrap();
    let res = client().request(req).await.unwrap();
    let (parts, body) = res.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

pub async fn get(url: &str) -> Reply {
    send(Method::GET, url, &[], Bytes::new()).await
}

pub async fn post_json(url: &str, body: &str) -> Reply {
    send(
        Method::POST,
        url,
        &[("content-type", "application/json")],
        body.to_owned(),
    )
    .await
}

/// Checks the envelope's shape and returns its `error` object.
pub fn assert_envelope(reply: &Reply, code: &str, status: u16) -> serde_json::Value {
    assert_eq!(
        reply.status.as_u16(),
        status,
        "status; body: {}",
        reply.text()
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["status"], status);
    let error = body["error"].clone();
    assert_eq!(error["code"], code, "body: {body}");
    assert!(error["message"].is_string());
    assert!(error["details"].is_object());
    let id = reply
        .header("x-request-id")
        .expect("X-Request-ID on the response");
    assert_eq!(error["trace_id"], id, "trace_id must equal X-Request-ID");
    let ts = error["timestamp"].as_str().unwrap();
    assert!(
        ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[19] == b'.',
        "timestamp {ts} is not RFC 3339 with millis"
    );
    error
}
