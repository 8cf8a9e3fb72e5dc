//! The floor for the gateway benchmark: the smallest HTTP/1.1 reverse proxy hyper makes, with
//! none of the gateway's work (no routing, identity, metrics, request id, header rewriting or
//! resilience). bench/gateway-vs-nginx.sh can run it beside nginx and Portico to show how much
//! of the gap to nginx is hyper + tokio and how much is the gateway.
//!
//! ```sh
//! cargo run --release -p portico-gateway --example bare_proxy -- 127.0.0.1:18284 http://127.0.0.1:18281 [multi|per-core]
//! ```
//!
//! `multi` (the default) serves on one multi-threaded tokio runtime; `per-core` runs one
//! single-threaded runtime per core, each with its own listener (`SO_REUSEPORT`) and its own
//! upstream connection pool, as nginx's workers and `portico up` do; `axum` is `per-core`
//! served through `axum::serve` and a `Router` fallback (HTTP/1 and HTTP/2 detection, as
//! Portico serves), to tell the framework's share from the gateway's own work.
#![allow(clippy::print_stderr)]

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::{Context as _, bail};
use axum::body::Body;
use hyper::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpSocket;

type HttpClient = Client<HttpConnector, Incoming>;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args
        .next()
        .context("usage: bare_proxy LISTEN UPSTREAM [multi|per-core]")?
        .parse()?;
    let upstream: hyper::Uri = args
        .next()
        .context("the upstream URL is missing")?
        .parse()?;
    let mode = args.next().unwrap_or_else(|| "multi".into());
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    match mode.as_str() {
        "multi" => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(serve(listen, upstream)),
        "per-core" | "axum" => {
            let axum = mode == "axum";
            let threads: Vec<_> = (0..cores)
                .map(|_| {
                    let upstream = upstream.clone();
                    std::thread::spawn(move || -> anyhow::Result<()> {
                        tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()?
                            .block_on(async move {
                                if axum {
                                    serve_axum(listen, upstream).await
                                } else {
                                    serve(listen, upstream).await
                                }
                            })
                    })
                })
                .collect();
            for thread in threads {
                thread
                    .join()
                    .map_err(|_| anyhow::anyhow!("a worker panicked"))??;
            }
            Ok(())
        }
        other => bail!("unknown mode {other:?}: multi, per-core or axum"),
    }
}

/// A listener on `listen` shared with the other threads (`SO_REUSEPORT`).
fn listener(listen: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseport(true)?;
    socket.set_reuseaddr(true)?;
    socket.bind(listen)?;
    Ok(socket.listen(1024)?)
}

/// A pooled HTTP/1.1 client with `TCP_NODELAY`.
fn client<B>() -> Client<HttpConnector, B>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
{
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// `request` sent to `upstream` with its path and query, without `Host`.
fn upstream_request<B>(request: Request<B>, upstream: &hyper::Uri) -> Option<Request<B>> {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("{upstream}{}", path.trim_start_matches('/'))
        .parse()
        .ok()?;
    parts.headers.remove(hyper::header::HOST);
    Some(Request::from_parts(parts, body))
}

async fn serve_axum(listen: SocketAddr, upstream: hyper::Uri) -> anyhow::Result<()> {
    let listener = listener(listen)?;
    let client: Client<HttpConnector, Body> = client();
    let app = axum::Router::new().fallback(move |request: Request<Body>| {
        let (client, upstream) = (client.clone(), upstream.clone());
        async move {
            let Some(request) = upstream_request(request, &upstream) else {
                return bad_gateway();
            };
            match client.request(request).await {
                Ok(response) => response.map(Body::new),
                Err(_) => bad_gateway(),
            }
        }
    });
    axum::serve(listener, app).await?;
    Ok(())
}

async fn serve(listen: SocketAddr, upstream: hyper::Uri) -> anyhow::Result<()> {
    let listener = listener(listen)?;
    let client: HttpClient = client();
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let client = client.clone();
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let client = client.clone();
                let upstream = upstream.clone();
                async move {
                    let Some(request) = upstream_request(request, &upstream) else {
                        return Ok::<_, Infallible>(bad_gateway());
                    };
                    match client.request(request).await {
                        Ok(response) => Ok(response.map(Body::new)),
                        Err(_) => Ok(bad_gateway()),
                    }
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn bad_gateway() -> hyper::Response<Body> {
    let mut response = hyper::Response::new(Body::empty());
    *response.status_mut() = hyper::StatusCode::BAD_GATEWAY;
    response
}
