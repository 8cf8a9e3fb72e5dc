//! Route fallbacks: what the client gets instead of an upstream failure.
//!
//! A call *fails* when the upstream gave no usable response (open circuit, connect failure,
//! timeout, broken response) or answered 5xx after its retries. Then, with
//!
//! - `fallback = { status, json }`: the fixed answer, with `X-Portico-Fallback: static`
//!   (any method);
//! - `fallback = { cache = true }`: the last good answer to the same GET, with
//!   `X-Portico-Fallback: cache`; with nothing kept, the normal error.
//!
//! # The cache of good answers
//!
//! A GET answered 2xx (not 206) with a `Content-Length` of at most [`MAX_CACHED_BODY`] and
//! no `Cache-Control: no-store` is kept, keyed by route, caller, upstream path and query, and
//! the client's `Accept-Encoding` (an encoded body is only replayed to a client that asked for
//! that encoding). On a route with `auth` other than `none` the caller is the user id
//! (anonymous callers share one entry), so one user's data never goes to another. The body
//! is copied while it streams to the client — caching never holds the answer back — and the
//! copy is stored only when the body ends complete; a body that fails or is abandoned is not.
//! `Set-Cookie` is never kept. All routes share one cache bounded to [`MAX_CACHE_BYTES`]
//! (least recently used out first).
//!
//! The GET response cache (`cache = { ttl }`, see `cache`) keeps its answers in the same
//! store, through the same copy: an entry it keeps is stamped ([`Stamp`]) and carries an
//! `ETag`, and the fallback of a route with both serves those entries too.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::body::Body;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RANGE, SET_COOKIE,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use portico_core::error::Passthrough;

use super::metrics;
use crate::identity::Identity;
use crate::settings::{AuthMode, Fallback as FallbackSetting, RouteSettings};

/// `X-Portico-Fallback`.
pub(crate) const X_PORTICO_FALLBACK: HeaderName = HeaderName::from_static("x-portico-fallback");

/// The largest body kept for the cache fallback (1 MiB); larger ones stream through uncached.
pub const MAX_CACHED_BODY: usize = 1024 * 1024;

/// What the fallback cache holds at most, over all routes (64 MiB of bodies and headers).
pub const MAX_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// A route's fallback, built once.
pub(crate) enum RouteFallback {
    /// The fixed answer.
    Static(StaticReply),
    /// The last good answer, from the shared cache.
    Cache(ResponseCache),
}

impl RouteFallback {
    /// The fallback of `route`, if it has one; cache fallbacks share `cache`.
    pub(crate) fn for_route(route: &RouteSettings, cache: &ResponseCache) -> Option<Self> {
        match route.fallback.as_ref()? {
            FallbackSetting::Cache => Some(RouteFallback::Cache(cache.clone())),
            FallbackSetting::Static { status, json } => Some(RouteFallback::Static(
                StaticReply::new(*status, json.as_ref()),
            )),
        }
    }
}

/// The fallback of one call on `route` (whose fallback is `fallback`), and what of its answer
/// is kept: `store` when the response cache keeps it, else the cache fallback's own copy.
/// `None` when there is neither a fallback nor anything to keep.
pub(crate) fn for_call<'a>(
    fallback: Option<&'a RouteFallback>,
    route: &'a RouteSettings,
    request: CallInfo<'_>,
    identity: Option<&Identity>,
    store: Option<Store>,
) -> Option<Fallback<'a>> {
    let kind = match fallback {
        Some(RouteFallback::Static(reply)) => Kind::Static(reply),
        Some(RouteFallback::Cache(cache)) => Kind::Cache {
            cache,
            key: cache_key(route, &request, identity),
        },
        None if store.is_some() => Kind::None,
        None => return None,
    };
    let store = store.or_else(|| match &kind {
        Kind::Cache {
            cache,
            key: Some(key),
        } => Some(Store {
            cache: (*cache).clone(),
            key: key.clone(),
            stamp: None,
        }),
        _ => None,
    });
    Some(Fallback {
        route: &route.prefix,
        method: request.method.clone(),
        path: request
            .target
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned(),
        kind,
        store,
    })
}

/// What a fallback needs to know of the request.
pub(crate) struct CallInfo<'a> {
    /// The method.
    pub method: &'a Method,
    /// The upstream path and query.
    pub target: &'a str,
    /// The request headers (as sent upstream: `Accept-Encoding` and `Range` as the client
    /// sent them).
    pub headers: &'a HeaderMap,
}

/// The key of a cacheable request: `None` unless a GET without `Range`.
pub(crate) fn cache_key(
    route: &RouteSettings,
    request: &CallInfo<'_>,
    identity: Option<&Identity>,
) -> Option<String> {
    if request.method != Method::GET || request.headers.contains_key(RANGE) {
        return None;
    }
    let caller = caller(route, identity);
    let encoding = request
        .headers
        .get(ACCEPT_ENCODING)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    // Newlines cannot occur in any part (a header value, a path, a user id from a token).
    Some(format!(
        "{}\n{caller}\n{}\n{}",
        route.prefix,
        request.target,
        String::from_utf8_lossy(encoding)
    ))
}

/// Whose entries these are: `-` on a route without auth (shared), else the user id
/// (anonymous callers share `anonymous`).
pub(crate) fn caller(route: &RouteSettings, identity: Option<&Identity>) -> String {
    match (route.auth, identity) {
        (AuthMode::None, _) => "-".to_owned(),
        (_, Some(identity)) => format!("u:{}", identity.user_id),
        (_, None) => "anonymous".to_owned(),
    }
}

/// A static fallback answer.
pub(crate) struct StaticReply {
    status: StatusCode,
    body: Option<Bytes>,
}

impl StaticReply {
    fn new(status: StatusCode, json: Option<&serde_json::Value>) -> Self {
        Self {
            status,
            body: json.map(|json| Bytes::from(json.to_string())),
        }
    }

    fn response(&self) -> Response {
        let mut response = match &self.body {
            Some(body) => {
                let mut response = Response::new(Body::from(body.clone()));
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                response
            }
            None => Response::new(Body::empty()),
        };
        *response.status_mut() = self.status;
        response
    }
}

/// A kept answer.
pub(crate) struct Cached {
    /// Its status.
    pub(crate) status: StatusCode,
    /// Its headers (without `Set-Cookie`; with its `ETag` when stamped).
    pub(crate) headers: HeaderMap,
    /// Its body.
    pub(crate) body: Bytes,
    /// Set when the response cache may answer it (see `cache`).
    pub(crate) stamp: Option<Stamp>,
}

/// What the response cache knows of a kept answer: when its request began, on the
/// gateway's clock, and the invalidation generation it saw then.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp {
    /// The clock's `now` when the request began.
    pub(crate) at: Instant,
    /// The route's invalidation generation when the request began.
    pub(crate) generation: u64,
}

/// Where the answer of one call is kept, if it is a good one.
pub(crate) struct Store {
    /// The shared store.
    pub(crate) cache: ResponseCache,
    /// The entry's key ([`cache_key`]).
    pub(crate) key: String,
    /// Set by the response cache; its entries also get an `ETag`.
    pub(crate) stamp: Option<Stamp>,
}

/// Good GET answers, shared by every route with the cache fallback.
#[derive(Clone)]
pub(crate) struct ResponseCache {
    entries: moka::sync::Cache<String, Arc<Cached>>,
}

impl ResponseCache {
    /// An empty cache bounded to [`MAX_CACHE_BYTES`].
    pub(crate) fn new() -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(MAX_CACHE_BYTES)
                .weigher(|key: &String, value: &Arc<Cached>| {
                    let headers: usize = value
                        .headers
                        .iter()
                        .map(|(name, value)| name.as_str().len() + value.len() + 32)
                        .sum();
                    let weight = key.len() + headers + value.body.len() + 64;
                    u32::try_from(weight).unwrap_or(u32::MAX)
                })
                .build(),
        }
    }

    /// The entry under `key`, if any.
    pub(crate) fn get(&self, key: &str) -> Option<Arc<Cached>> {
        self.entries.get(key)
    }
}

/// The fallback of one call.
pub(crate) struct Fallback<'a> {
    route: &'a str,
    method: Method,
    /// The upstream path, for the log line.
    path: String,
    kind: Kind<'a>,
    /// Where a good answer is kept.
    store: Option<Store>,
}

enum Kind<'a> {
    /// No fallback (only the response cache keeps answers).
    None,
    Static(&'a StaticReply),
    Cache {
        cache: &'a ResponseCache,
        key: Option<String>,
    },
}

impl Fallback<'_> {
    /// The fallback answer for a call that failed (`why`, for the log), if there is one.
    pub(crate) fn serve(&self, upstream: &str, why: &str) -> Option<Response> {
        let (kind, mut response) = match &self.kind {
            Kind::None => return None,
            Kind::Static(reply) => ("static", reply.response()),
            Kind::Cache { cache, key } => {
                let cached = cache.entries.get(key.as_ref()?)?;
                let mut response = Response::new(Body::from(cached.body.clone()));
                *response.status_mut() = cached.status;
                *response.headers_mut() = cached.headers.clone();
                ("cache", response)
            }
        };
        response
            .headers_mut()
            .insert(X_PORTICO_FALLBACK, HeaderValue::from_static(kind));
        Passthrough::mark(&mut response);
        metrics::fallback(self.route, kind);
        tracing::warn!(
            route = self.route,
            upstream,
            fallback = kind,
            "[{upstream}] {} {}: {why}; serving the {kind} fallback",
            self.method,
            self.path
        );
        Some(response)
    }

    /// `response` (already made ready for the client), its body copied into the cache on
    /// the way when it is a good answer to a cacheable GET.
    pub(crate) fn keep(&self, response: Response<Incoming>) -> Response<Body> {
        let Some(store) = &self.store else {
            return response.map(Body::new);
        };
        let (parts, body) = response.into_parts();
        let Some(length) = cacheable_length(parts.status, &parts.headers) else {
            return Response::from_parts(parts, Body::new(body));
        };
        // The response cache answers only what any client of this key may be given again.
        let stamp = store
            .stamp
            .filter(|_| super::cache::reusable(&parts.headers));
        let mut headers = parts.headers.clone();
        headers.remove(SET_COOKIE);
        let copy = Copy {
            cache: store.cache.clone(),
            key: store.key.clone(),
            status: parts.status,
            headers,
            buf: BytesMut::with_capacity(length),
            stamp,
        };
        let tee = Tee {
            inner: body,
            copy: Some(copy),
        };
        if tee.inner.is_end_stream() {
            // An empty body: no frame will come to store it on.
            let mut tee = tee;
            tee.finish();
            return Response::from_parts(parts, Body::empty());
        }
        Response::from_parts(parts, Body::new(tee))
    }
}

/// The declared length of a response worth keeping, if it is one.
fn cacheable_length(status: StatusCode, headers: &HeaderMap) -> Option<usize> {
    if !status.is_success() || status == StatusCode::PARTIAL_CONTENT {
        return None;
    }
    let no_store = headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|directive| directive.trim().eq_ignore_ascii_case("no-store"));
    if no_store {
        return None;
    }
    let length: usize = headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (length <= MAX_CACHED_BODY).then_some(length)
}

/// What is being copied of one answer.
struct Copy {
    cache: ResponseCache,
    key: String,
    status: StatusCode,
    headers: HeaderMap,
    buf: BytesMut,
    stamp: Option<Stamp>,
}

/// The upstream's body, passed on frame by frame while a copy is kept.
struct Tee {
    inner: Incoming,
    copy: Option<Copy>,
}

impl Tee {
    /// Stores the copy (once).
    fn finish(&mut self) {
        if let Some(copy) = self.copy.take() {
            let body = copy.buf.freeze();
            let mut headers = copy.headers;
            if copy.stamp.is_some() {
                super::cache::set_etag(&mut headers, &body);
            }
            let cached = Cached {
                status: copy.status,
                headers,
                body,
                stamp: copy.stamp,
            };
            copy.cache.entries.insert(copy.key, Arc::new(cached));
        }
    }
}

impl http_body::Body for Tee {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let (Some(copy), Some(data)) = (this.copy.as_mut(), frame.data_ref()) {
                    if copy.buf.len() + data.len() > MAX_CACHED_BODY {
                        this.copy = None;
                    } else {
                        copy.buf.extend_from_slice(data);
                    }
                }
                // The server stops polling once the body says it has ended.
                if this.inner.is_end_stream() {
                    this.finish();
                }
            }
            Some(Err(_)) => this.copy = None,
            None => this.finish(),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
