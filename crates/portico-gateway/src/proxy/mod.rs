//! The streaming forwarder and the gateway's request handler.
//!
//! [`Gateway::router`] answers every path: a path no route serves gets 404 `REQ_003`; a
//! routed one goes through
//!
//! ```text
//! path check (dot segments → 400) → a CORS preflight answered here (route with `cors`)
//!   → declared body size (→ 413 REQ_002)
//!   → identity (route `auth`: required | optional | none) → permissions (→ 403 AUTH_006)
//!   → the route's rate limit (→ 429 BACKEND_003; `RateLimit-*` headers on every answer)
//!   → headers for the upstream (hop-by-hop out, reserved out, identity, ids, trace, forwarding)
//!   → the route's response cache (a fresh GET/HEAD answered here, 304 on `If-None-Match`)
//!   → the upstream's retry / breaker / timeout loop, bodies streamed both ways
//!   → the response passed through (a good GET's copied for a cache fallback), or on failure
//!     the route's fallback answer, or the envelope
//!   → the route's CORS headers on whatever is answered
//! ```
//!
//! and is counted in the gateway's metrics ([`metrics`]).
//!
//! # Layout
//! - [`error`](GatewayError): what building the gateway can refuse.
//! - `upstream`: one upstream's client, breaker and retry loop.
//! - `body`: the request body, replayable or streamed once.
//! - `headers`: the headers both ways; `trace`: `traceparent`.
//! - `limits`: the per-route rate limits.
//! - `cors`: the per-route CORS preflights and headers.
//! - `fallback`: the static and cached answers for a failing upstream.
//! - `cache`: the GET response cache (`ETag`, 304), in the fallback's store.
//! - `respond`: outcome → answer (the fallback asked first on failure).
//! - `websocket`: the upgrade handshake and the byte tunnel.
//! - `path`: paths refused before routing.
//! - [`metrics`]: the metric names.

mod body;
mod cache;
mod cors;
mod error;
mod fallback;
mod headers;
mod limits;
pub mod metrics;
mod path;
mod respond;
mod trace;
mod upstream;
mod websocket;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_LENGTH, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use portico_core::RequestId;
use portico_core::clock::SharedClock;
use portico_core::error::{ApiError, ErrorCode};
use portico_core::permissions::permits_all;
use portico_resilience::breaker::CircuitBreaker;

pub use error::GatewayError;

use body::{Outgoing, too_large};
use cache::RouteCache;
use cors::RouteCors;
use fallback::{ResponseCache, RouteFallback};
use limits::RouteLimit;
use upstream::{Call, Upstream};

use crate::identity::token::IdentitySigner;
use crate::identity::{Authenticator, Identity, IdentityKey, credential};
use crate::ratelimit::RedisStore;
use crate::routes::{RouteTable, upstream_path};
use crate::settings::{AuthMode, GatewaySettings, RouteSettings};

/// The gateway: routes, upstreams (each with its client and breaker) and the authenticator.
pub struct Gateway {
    routes: RouteTable,
    /// The upstream of each route, in the table's order.
    route_upstreams: Vec<Arc<Upstream>>,
    upstreams: BTreeMap<String, Arc<Upstream>>,
    authenticator: Arc<dyn Authenticator>,
    max_body: usize,
    /// The rate limit of each route, in the table's order.
    limits: Vec<Option<RouteLimit>>,
    /// The fallback of each route, in the table's order.
    fallbacks: Vec<Option<RouteFallback>>,
    /// Each route's request metrics, by route index.
    route_metrics: Vec<metrics::RouteMetrics>,
    /// The response cache of each route, in the table's order.
    caches: Vec<Option<RouteCache>>,
    /// The Redis the rate limits share, when configured.
    redis: Option<Arc<RedisStore>>,
    /// Signs `X-Portico-Identity`.
    signer: IdentitySigner,
    /// The CORS policy of each route, in the table's order.
    cors: Vec<Option<RouteCors>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("routes", &self.routes)
            .field("upstreams", &self.upstreams.keys().collect::<Vec<_>>())
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Builds clients, breakers and the route table. A route naming an unknown upstream, an
    /// upstream URL that is not `http(s)://host[:port][/path]`, or an internal token that
    /// cannot be a header value is a [`GatewayError`]. Breakers and retries run on `clock`.
    pub fn new(
        settings: GatewaySettings,
        authenticator: Arc<dyn Authenticator>,
        clock: SharedClock,
    ) -> Result<Arc<Gateway>, GatewayError> {
        Self::with_breakers(settings, authenticator, clock, BTreeMap::new())
    }

    /// Like [`Gateway::new`], but an upstream named in `breakers` keeps that breaker — its
    /// state and counts — when the breaker's settings are the upstream policy's (a config
    /// reload that left the upstream alone); any other upstream gets a new, closed one.
    pub fn with_breakers(
        settings: GatewaySettings,
        authenticator: Arc<dyn Authenticator>,
        clock: SharedClock,
        mut breakers: BTreeMap<String, CircuitBreaker>,
    ) -> Result<Arc<Gateway>, GatewayError> {
        metrics::describe();
        let tls = tls_config()?;
        let mut upstreams = BTreeMap::new();
        for (name, upstream) in &settings.upstreams {
            let kept = breakers.remove(name);
            let built = Upstream::new(name, upstream, &tls, clock.clone(), kept)?;
            upstreams.insert(name.clone(), Arc::new(built));
        }
        let routes = RouteTable::new(settings.routes);
        let route_upstreams = routes
            .routes()
            .iter()
            .map(|route| {
                upstreams.get(&route.upstream).cloned().ok_or_else(|| {
                    GatewayError::UnknownUpstream {
                        route: route.prefix.clone(),
                        upstream: route.upstream.clone(),
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (limits, redis) =
            limits::for_routes(routes.routes(), &clock, settings.redis_url.as_deref())?;
        let cache = ResponseCache::new();
        let key = match settings.identity_key {
            Some(key) => key,
            None => IdentityKey::generate()?,
        };
        let signer = IdentitySigner::new(key, clock.clone());
        let cors = routes
            .routes()
            .iter()
            .map(|route| RouteCors::for_route(route.cors.as_ref()))
            .collect();
        let fallbacks = routes
            .routes()
            .iter()
            .map(|route| RouteFallback::for_route(route, &cache))
            .collect();
        let caches = routes
            .routes()
            .iter()
            .map(|route| RouteCache::for_route(route, &cache, &clock))
            .collect();
        let route_metrics = routes
            .routes()
            .iter()
            .map(|route| metrics::RouteMetrics::new(&route.prefix, &route.upstream))
            .collect();
        Ok(Arc::new(Gateway {
            route_metrics,
            routes,
            route_upstreams,
            upstreams,
            authenticator,
            max_body: settings.max_body,
            limits,
            fallbacks,
            caches,
            redis,
            signer,
            cors,
        }))
    }

    /// An axum Router whose fallback handles every path with [`Gateway::handle`]. Merge it
    /// last into the public router, whose fallback it becomes; serve with
    /// `into_make_service_with_connect_info::<SocketAddr>()` for `X-Forwarded-For`.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new().fallback(handle).with_state(self.clone())
    }

    /// Answers one request: the gateway's JWKS at
    /// [`JWKS_PATH`](crate::identity::token::JWKS_PATH) (which no route can shadow), routed
    /// paths proxied, the rest 404 `REQ_003` (envelope).
    pub async fn handle(&self, request: Request) -> Response {
        if request.uri().path() == crate::identity::token::JWKS_PATH {
            return match *request.method() {
                Method::GET | Method::HEAD => self.identity_jwks(),
                // As axum's router answers: the envelope layer words it.
                _ => (
                    StatusCode::METHOD_NOT_ALLOWED,
                    [(http::header::ALLOW, "GET,HEAD")],
                )
                    .into_response(),
            };
        }
        self.serve(request).await
    }

    /// Whether a route serves `path` (the binary's front door asks for `/`, which the
    /// dashboard answers unless a route claims it).
    pub fn serves(&self, path: &str) -> bool {
        self.routes.find(path).is_some()
    }

    /// The circuit breakers, by upstream name (clones sharing the live state).
    pub fn breakers(&self) -> BTreeMap<String, CircuitBreaker> {
        self.upstreams
            .iter()
            .map(|(name, upstream)| (name.clone(), upstream.breaker.clone()))
            .collect()
    }

    /// Registers a `/health` check for each upstream with a `health` path, named after the
    /// upstream and critical as its settings say (see [`crate::health`]), and, when the rate
    /// limits share a Redis, the non-critical `redis` check (degraded while they fall back
    /// to per-instance limits).
    pub fn register_health(self: &Arc<Self>, registry: &portico_core::health::HealthRegistry) {
        for upstream in self.upstreams.values() {
            if let Some(check) = upstream.health_check() {
                registry.register(Arc::new(check));
            }
        }
        if let Some(redis) = &self.redis {
            registry.register(Arc::new(redis.health_check()));
        }
    }

    /// The Redis the rate limits share, when `redis_url` was set.
    pub fn redis(&self) -> Option<&Arc<RedisStore>> {
        self.redis.as_ref()
    }

    /// `GET /.well-known/portico-identity-jwks.json`: the key `X-Portico-Identity` is signed
    /// with.
    fn identity_jwks(&self) -> Response {
        (
            [
                (http::header::CONTENT_TYPE, "application/json"),
                (http::header::CACHE_CONTROL, "public, max-age=300"),
            ],
            self.signer.jwks(),
        )
            .into_response()
    }

    /// Serves one request (the router's fallback).
    async fn serve(&self, request: Request) -> Response {
        let started = Instant::now();
        let path = request.uri().path();
        if path::has_dot_segments(path) {
            return ApiError::bad_request("the path must not contain dot segments").into_response();
        }
        let Some(matched) = self.routes.find(path) else {
            return ApiError::new(
                ErrorCode::Req003,
                format!("no route for {} {path}", request.method()),
            )
            .into_response();
        };
        let route = matched.route;
        let Some(upstream) = self.route_upstreams.get(matched.index) else {
            // Built with one upstream per route; cannot happen.
            return ApiError::internal_error("route without upstream").into_response();
        };
        let limit = self.limits.get(matched.index).and_then(Option::as_ref);
        let fallback = self.fallbacks.get(matched.index).and_then(Option::as_ref);
        let cache = self.caches.get(matched.index).and_then(Option::as_ref);
        let cors = self.cors.get(matched.index).and_then(Option::as_ref);
        let origin = request.headers().get(http::header::ORIGIN).cloned();
        let preflight = cors.and_then(|cors| cors.preflight(request.method(), request.headers()));
        let mut response = match preflight {
            Some(answer) => answer,
            None => {
                let mut response = self
                    .proxy(route, upstream, (limit, fallback, cache), request)
                    .await
                    .unwrap_or_else(IntoResponse::into_response);
                if let Some(cors) = cors {
                    cors.annotate(origin.as_ref(), &mut response);
                }
                response
            }
        };
        if let Some(metrics) = self.route_metrics.get(matched.index) {
            metrics.request(response.status(), started.elapsed());
            metrics.label(&mut response);
        }
        response
    }

    /// Checks the caller (identity, permissions, rate limit) and proxies `request` to
    /// `upstream`; the answer carries the `RateLimit-*` headers of a limited route.
    async fn proxy(
        &self,
        route: &RouteSettings,
        upstream: &Upstream,
        (limit, fallback, cache): (
            Option<&RouteLimit>,
            Option<&RouteFallback>,
            Option<&RouteCache>,
        ),
        request: Request,
    ) -> Result<Response, ApiError> {
        if declared_length(request.headers()).is_some_and(|length| length > self.max_body) {
            return Err(too_large());
        }
        let identity = self.identify(route, request.headers()).await?;
        authorize(route, identity.as_deref())?;
        let decision = match limit {
            Some(limit) => {
                limit
                    .check(
                        &route.prefix,
                        identity.as_deref(),
                        client_ip(request.extensions()),
                    )
                    .await?
            }
            None => None,
        };
        let mut response = self
            .forward(route, upstream, (fallback, cache), identity, request)
            .await
            .unwrap_or_else(IntoResponse::into_response);
        if let Some(decision) = &decision {
            limits::annotate(&mut response, decision);
        }
        Ok(response)
    }

    /// Proxies `request`, from a caller already checked, to `upstream`.
    async fn forward(
        &self,
        route: &RouteSettings,
        upstream: &Upstream,
        (fallback, cache): (Option<&RouteFallback>, Option<&RouteCache>),
        identity: Option<Arc<Identity>>,
        mut request: Request,
    ) -> Result<Response, ApiError> {
        let upgrade = websocket::requested(&request);
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
        let (parts, body) = request.into_parts();
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .or_else(RequestId::current)
            .unwrap_or_else(RequestId::generate);
        let client_ip = client_ip(&parts.extensions);
        let target = upstream_path(route, parts.uri.path(), parts.uri.query());
        let uri = upstream
            .uri(&target)
            .map_err(|_| ApiError::bad_request("the path cannot be forwarded"))?;
        let identity_headers = identity
            .as_ref()
            .map(|identity| self.signer.headers(identity, &upstream.name));
        let mut headers = headers::for_upstream(
            parts.headers,
            &headers::Forwarding {
                identity: identity_headers.as_deref(),
                internal_token: upstream.internal_token.as_ref(),
                upstream_host: &upstream.host,
                request_id: &request_id,
                client_ip,
                proto: parts.uri.scheme_str().unwrap_or("http"),
                uri_authority: parts
                    .uri
                    .authority()
                    .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
                upgrade: upgrade.as_ref(),
            },
        );
        let body =
            Outgoing::prepare(body, upstream.may_retry(&parts.method), self.max_body).await?;
        let log_path = target.split('?').next().unwrap_or_default();
        // Neither a fallback nor the cache stands in for a WebSocket handshake.
        let mut plan = None;
        if let Some(cache) = cache.filter(|_| upgrade.is_none()) {
            let begin = cache.begin(
                route,
                &parts.method,
                &target,
                &mut headers,
                identity.as_deref(),
            );
            match begin {
                cache::Begin::Answered(response) => return Ok(response),
                cache::Begin::Call(call) => plan = Some((cache, call)),
            }
        }
        let store = plan.as_mut().and_then(|(_, plan)| plan.take_store());
        let call = fallback::CallInfo {
            method: &parts.method,
            target: &target,
            headers: &headers,
        };
        let fallback = fallback.filter(|_| upgrade.is_none());
        let fallback = fallback::for_call(fallback, route, call, identity.as_deref(), store);
        let outcome = upstream
            .send(Call {
                method: parts.method,
                uri,
                log_path,
                headers,
                body,
            })
            .await;
        Ok(match (outcome, client_upgrade) {
            (Ok(response), Some(client))
                if response.status() == StatusCode::SWITCHING_PROTOCOLS =>
            {
                websocket::tunnel(response, client, &upstream.name)
            }
            (outcome, _) => {
                let response = respond::respond(upstream, outcome, fallback.as_ref());
                match plan {
                    Some((cache, plan)) => cache.finish(plan, response),
                    None => response,
                }
            }
        })
    }

    /// The caller's identity as `route` asks for it.
    async fn identify(
        &self,
        route: &RouteSettings,
        headers: &HeaderMap,
    ) -> Result<Option<Arc<Identity>>, ApiError> {
        let presented = match route.auth {
            AuthMode::None => return Ok(None),
            AuthMode::Required => Some(credential(headers)?.ok_or_else(missing_token)?),
            AuthMode::Optional => credential(headers)?,
        };
        match presented {
            Some(credential) => Ok(Some(
                self.authenticator.authenticate_shared(credential).await?,
            )),
            None => Ok(None),
        }
    }
}

async fn handle(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    gateway.handle(request).await
}

/// The client's address as the listener saw it (`None` when served without connect info).
fn client_ip(extensions: &http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// Every permission of `route` must be held; an anonymous caller holds none (401).
fn authorize(route: &RouteSettings, identity: Option<&Identity>) -> Result<(), ApiError> {
    if route.permissions.is_empty() {
        return Ok(());
    }
    match identity {
        None => Err(missing_token()),
        Some(identity) if permits_all(&identity.permissions, &route.permissions) => Ok(()),
        Some(_) => Err(
            ApiError::new(ErrorCode::Auth006, "insufficient permissions")
                .with_detail("required", route.permissions.clone()),
        ),
    }
}

/// 401 `AUTH_003` with `WWW-Authenticate: Bearer`.
fn missing_token() -> ApiError {
    ApiError::new(ErrorCode::Auth003, "missing token")
        .with_header(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
}

/// The `Content-Length` the client declared, if it did (an unparsable one is left to hyper,
/// which refuses it before the request gets here).
fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// The TLS client settings for `https://` upstreams: rustls on ring, the Mozilla roots.
fn tls_config() -> Result<rustls::ClientConfig, GatewayError> {
    portico_core::tls::client_config().map_err(|e| GatewayError::Tls(e.to_string()))
}
