//! CORS for the routes that enable it (`[cors]`, or a route's own `cors = { … }`).
//!
//! Hand-written rather than tower-http's `CorsLayer`: routing happens inside the gateway's
//! one handler, so a per-route layer would mean building and calling a service stack per
//! route, and `CorsLayer` answers a refused preflight exactly like an allowed one minus the
//! headers, leaves upstreams' own `Access-Control-*` headers in place, and cannot decorate
//! the envelopes the gateway answers itself in one place. Here:
//!
//! - A **preflight** (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) on a CORS
//!   route is answered by the gateway, never proxied and before any identity check: `204`
//!   with `Access-Control-Allow-Origin` (the origin echoed, or `*` when `allow_origins =
//!   ["*"]` without credentials), `-Allow-Methods`, `-Allow-Headers` (the configured list, or
//!   the requested ones), `-Max-Age`, `-Allow-Credentials` when set, and `Vary: Origin`. An
//!   origin not allowed gets `204` without any `Access-Control-*` header, which the browser
//!   reports as a CORS failure (no envelope: it is not an error of the request).
//! - Every other answer on a CORS route to an allowed `Origin` — the upstream's, a fallback,
//!   or an envelope the gateway wrote (401, 429, 503, …) — gets `Access-Control-Allow-Origin`,
//!   `-Allow-Credentials` when set and `-Expose-Headers: X-Request-ID, RateLimit-Limit,
//!   RateLimit-Remaining, RateLimit-Reset, Retry-After, X-Portico-Fallback`. The upstream's
//!   own `Access-Control-*` headers are replaced: the gateway owns CORS on these routes.
//! - `Vary: Origin` is added to every answer of a CORS route whose answer depends on the
//!   origin (anything but a credential-less `*`).
//!
//! Routes without CORS are left alone: preflights are proxied, headers pass through.

use axum::body::Body;
use axum::response::Response;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::settings::CorsSettings;

/// What every CORS answer lets the browser's script read besides the safelisted headers.
const EXPOSE: &str = "X-Request-ID, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, \
                      Retry-After, X-Portico-Fallback";

/// One route's CORS policy, with its header values built once.
#[derive(Debug)]
pub(crate) struct RouteCors {
    /// Allowed origins, ASCII-lowercased; empty when any origin is allowed.
    origins: Vec<String>,
    /// `allow_origins = ["*"]`.
    any_origin: bool,
    credentials: bool,
    methods: HeaderValue,
    /// `None`: the requested headers are echoed.
    headers: Option<HeaderValue>,
    max_age: HeaderValue,
}

impl RouteCors {
    /// The policy of a route with `cors`, or `None` without.
    pub(crate) fn for_route(cors: Option<&CorsSettings>) -> Option<Self> {
        let cors = cors?;
        let any_origin = cors.allow_origins.iter().any(|o| o == "*");
        let join = |items: &[String]| HeaderValue::from_str(&items.join(", ")).ok();
        Some(Self {
            origins: cors
                .allow_origins
                .iter()
                .filter(|o| *o != "*")
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            any_origin,
            credentials: cors.allow_credentials,
            methods: join(
                &cors
                    .allow_methods
                    .iter()
                    .map(|m| m.as_str().to_owned())
                    .collect::<Vec<_>>(),
            )
            .unwrap_or_else(|| HeaderValue::from_static("GET")),
            headers: cors.allow_headers.as_deref().and_then(join),
            max_age: HeaderValue::from(cors.max_age.as_secs()),
        })
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if allowed.
    fn allow_origin(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        if self.any_origin && !self.credentials {
            return Some(HeaderValue::from_static("*"));
        }
        let text = origin.to_str().ok()?;
        (self.any_origin || self.origins.iter().any(|o| o.eq_ignore_ascii_case(text)))
            .then(|| origin.clone())
    }

    /// Whether answers depend on the request's `Origin`.
    fn varies(&self) -> bool {
        !self.any_origin || self.credentials
    }

    /// The gateway's own answer when `method` and `headers` make a preflight, else `None`.
    pub(crate) fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<Response> {
        if method != Method::OPTIONS || !headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD) {
            return None;
        }
        let origin = headers.get(ORIGIN)?;
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let out = response.headers_mut();
        if self.varies() {
            out.append(VARY, HeaderValue::from_static("Origin"));
        }
        let Some(allow) = self.allow_origin(origin) else {
            return Some(response);
        };
        out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow);
        out.insert(ACCESS_CONTROL_ALLOW_METHODS, self.methods.clone());
        let requested = headers.get(ACCESS_CONTROL_REQUEST_HEADERS);
        if let Some(allowed) = self.headers.as_ref().or(requested) {
            out.insert(ACCESS_CONTROL_ALLOW_HEADERS, allowed.clone());
        }
        if requested.is_some() && self.headers.is_none() {
            out.append(
                VARY,
                HeaderValue::from_static("Access-Control-Request-Headers"),
            );
        }
        out.insert(ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        if self.credentials {
            out.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        Some(response)
    }

    /// Adds the CORS headers for a request from `origin` to `response` (any answer but a
    /// preflight's), replacing the upstream's own.
    pub(crate) fn annotate(&self, origin: Option<&HeaderValue>, response: &mut Response) {
        let out = response.headers_mut();
        let theirs: Vec<_> = out
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in theirs {
            out.remove(name);
        }
        if self.varies() {
            out.append(VARY, HeaderValue::from_static("Origin"));
        }
        let Some(allow) = origin.and_then(|origin| self.allow_origin(origin)) else {
            return;
        };
        out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow);
        out.insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE),
        );
        if self.credentials {
            out.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}
