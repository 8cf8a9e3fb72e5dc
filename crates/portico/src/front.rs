//! The public listener's front door: proxied paths go straight to the gateway, everything
//! else to the axum [`Router`].
//!
//! ```text
//! request ─► path under one of Portico's own prefixes (/health, /metrics, /status, /auth,
//!            │   /.well-known, /ws, /internal, /openapi.json, /dashboard), or `/` itself while
//!            │   no gateway route claims it?
//!            ├─ yes ─► the public Router (its routes, its tower stack; the gateway is its
//!            │         fallback, so a catch-all route still sees what the router does not answer)
//!            └─ no ──► request id ─► http metrics ─► envelope ─► body limit ─► Gateway::handle
//! ```
//!
//! Why: through the router a proxied request paid for axum's path lookup, the router's
//! fallback, and the per-request clone of every boxed route and layer (`Router::layer` boxes
//! the stack around each route); the gateway does its own routing anyway. Here the same
//! layers (`RequestIdLayer`, `http_metrics_layer`, `envelope_layer`) wrap the gateway as
//! plain types, with one boxed future per request, so a proxied request gets the same request
//! id, span, metrics (labelled with the route's prefix through `RouteLabel`) and envelopes as
//! before. docs/BENCHMARKS.md has the instruction counts.
//!
//! Requests for a path the router owns keep the router's precedence: every route of the router
//! lies under [`ROUTER_PREFIXES`] (the `front_keeps_portico_endpoints_before_a_catch_all_route`
//! test in `tests/gateway.rs` checks each with a gateway route on `/`). A path outside them
//! that no gateway route serves is answered by the gateway (404 `REQ_003`), as the router's
//! fallback would have.
//!
//! The gateway is read from the [`GatewayCell`] per request, so a config reload applies to
//! the next request as before; in-flight counting and the drain wrap this service as they
//! wrapped the router (`portico_core::shutdown::serve_workers`).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::future::RouteFuture;
use http::header::CONTENT_LENGTH;
use pin_project_lite::pin_project;
use portico_core::error::{ApiError, EnvelopeFuture, EnvelopeService, ErrorCode, envelope_layer};
use portico_core::request_id::{RequestIdFuture, RequestIdLayer, RequestIdService};
use portico_core::telemetry::{HttpMetricsFuture, HttpMetricsService, http_metrics_layer};
use tower::{Layer, Service};

use crate::reload::GatewayCell;

/// The path prefixes (whole segments) the public router answers itself: operational
/// endpoints, the Auth API, the JWKS documents, the hub's endpoints and `/openapi.json`.
/// A request under one of them goes through the router even when a gateway route matches it.
pub const ROUTER_PREFIXES: &[&str] = &[
    "/health",
    "/metrics",
    "/status",
    "/auth",
    "/.well-known",
    "/ws",
    "/internal",
    "/dashboard",
    crate::openapi::PATH,
];

/// Whether `path` is one of [`ROUTER_PREFIXES`] or below it.
pub(crate) fn router_owns(path: &str) -> bool {
    ROUTER_PREFIXES.iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// The service the listener serves: see the module docs.
#[derive(Clone)]
pub struct Front {
    router: Router,
    gateway: GatewayStack,
    /// The gateway cell, to ask whether a route claims `/`.
    cell: Arc<GatewayCell>,
}

impl std::fmt::Debug for Front {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Front").finish_non_exhaustive()
    }
}

/// The gateway inside the public router's layers, as plain (unboxed) types.
type GatewayStack = RequestIdService<HttpMetricsService<EnvelopeService<Proxy>>>;

impl Front {
    /// `router` (the public router, the gateway its fallback) behind a front door that hands
    /// every other path to the current gateway of `cell`, refusing declared bodies over
    /// `max_body` bytes (413 `REQ_002`) as the router's body limit does.
    pub fn new(router: Router, cell: Arc<GatewayCell>, max_body: usize) -> Self {
        let proxy = Proxy {
            cell: cell.clone(),
            max_body,
        };
        // Outermost first, as in the router: request id → metrics → envelope → the gateway.
        let gateway =
            RequestIdLayer::new().layer(http_metrics_layer().layer(envelope_layer().layer(proxy)));
        Self {
            router,
            gateway,
            cell,
        }
    }
}

impl Front {
    /// Whether the current gateway has a route serving `/`.
    fn gateway_serves_root(&self) -> bool {
        self.cell.current().serves("/")
    }
}

impl Service<Request> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = FrontFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Both sides are always ready (the router is, and the stack's layers pass `Proxy`'s).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let path = request.uri().path();
        // `/` is the dashboard's (a redirect to `/dashboard/`) unless a gateway route claims it.
        if router_owns(path) || (path == "/" && !self.gateway_serves_root()) {
            FrontFuture::Router {
                inner: self.router.call(request),
            }
        } else {
            FrontFuture::Gateway {
                inner: self.gateway.call(request),
            }
        }
    }
}

/// The answer of [`Proxy`]: the gateway's, boxed once.
type ProxyFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

pin_project! {
    /// The response future of [`Front`]: the router's or the gateway stack's.
    // pin-project-lite takes no doc comments on variant fields.
    #[allow(missing_docs)]
    #[project = FrontProj]
    pub enum FrontFuture {
        /// A path the router owns.
        Router {
            #[pin]
            inner: RouteFuture<Infallible>,
        },
        /// Any other path.
        Gateway {
            #[pin]
            inner: RequestIdFuture<HttpMetricsFuture<EnvelopeFuture<ProxyFuture>>>,
        },
    }
}

impl Future for FrontFuture {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            FrontProj::Router { inner } => inner.poll(cx),
            FrontProj::Gateway { inner } => inner.poll(cx),
        }
    }
}

/// The innermost service of the gateway's stack: the body limit, then the current gateway.
#[derive(Clone)]
struct Proxy {
    cell: Arc<GatewayCell>,
    max_body: usize,
}

impl Service<Request> for Proxy {
    type Response = Response;
    type Error = Infallible;
    type Future = ProxyFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // As tower-http's `RequestBodyLimitLayer` in the router: a declared length over the
        // limit is refused before anything else; a body without one is cut off at the limit
        // by the gateway itself, which reads every body through its own `max_body` limit.
        if declared_length(request.headers()).is_some_and(|length| length > self.max_body) {
            let refused = ApiError::new(ErrorCode::Req002, "request body too large");
            return Box::pin(std::future::ready(Ok(refused.into_response())));
        }
        let gateway = self.cell.current();
        Box::pin(async move { Ok(gateway.handle(request).await) })
    }
}

/// The `Content-Length` the client declared, if it did and it is a number.
fn declared_length(headers: &http::HeaderMap) -> Option<usize> {
    let length = headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(usize::try_from(length).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_router_owns_its_prefixes_on_whole_segments() {
        for path in [
            "/health",
            "/health/live",
            "/metrics",
            "/status/services",
            "/auth/login",
            "/.well-known/jwks.json",
            "/.well-known/portico-identity-jwks.json",
            "/ws",
            "/dashboard",
            "/dashboard/keys",
        ] {
            assert!(router_owns(path), "{path}");
        }
        for path in [
            "/",
            "/api/etl",
            "/healthz",
            "/authors",
            "/metricsx/a",
            "/wsx",
            "/dashboardx",
        ] {
            assert!(!router_owns(path), "{path}");
        }
    }
}
