//! The GET response cache of a route with `cache = { ttl }`: `ETag`, `If-None-Match` → 304.
//!
//! Answers are kept in the fallback's store, copied by the same tee while they stream to the
//! client (see `fallback`): a GET answered 2xx (not 206) with a `Content-Length` of at most
//! 1 MiB, keyed by route, caller (the user on a route with `auth`, so one user's answer never
//! reaches another), upstream path and query, and `Accept-Encoding`.
//!
//! | request | answer |
//! |---|---|
//! | GET/HEAD with a fresh entry (kept less than `ttl` ago) | the entry, without calling the upstream; `X-Portico-Cache: hit`, `Age` |
//! | … and an `If-None-Match` naming its `ETag` (or `*`) | 304 with the `ETag`, no body, no upstream call |
//! | GET/HEAD without one, or with `Cache-Control: no-cache` / `Pragma: no-cache` | the upstream's answer, `X-Portico-Cache: miss`; a GET's is kept (not with request `no-store`) |
//! | a storable GET miss with `If-None-Match` | sent upstream without its conditionals (so there is an answer to keep); 304 if the upstream's `ETag` matches, the body still read into the cache |
//! | POST, PUT, PATCH, DELETE | passed on; afterwards this caller's entries for the same path (any query) are no longer fresh |
//!
//! Every kept answer has a strong `ETag`: the upstream's when it sent a strong one, else the
//! first 128 bits of the body's SHA-256 in hex. `If-None-Match` uses the weak comparison
//! (RFC 9110 §13.1.2). Not answered from the cache (only kept for a cache fallback): answers
//! with `Cache-Control: private`, `no-cache` or `no-store`, with `Set-Cookie`, or with a
//! `Vary` naming anything but `Accept-Encoding`. The upstream's `max-age` is not consulted:
//! the route's `ttl` decides.
//!
//! Invalidation marks entries stale rather than removing them (a cache fallback may still
//! serve them when the upstream fails). Marks older than `ttl` are pruned; past
//! [`MAX_MARKS`] every entry of the route is made stale at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::header::{
    AGE, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_LOCATION, ETAG, EXPIRES, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, PRAGMA, SET_COOKIE, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt as _;
use portico_core::clock::SharedClock;
use portico_core::error::Passthrough;
use sha2::{Digest as _, Sha256};

use super::fallback::{
    Cached, CallInfo, MAX_CACHED_BODY, ResponseCache, Stamp, Store, cache_key, caller,
};
use super::metrics;
use crate::identity::Identity;
use crate::settings::RouteSettings;

/// `X-Portico-Cache`: `hit` or `miss`.
pub(crate) const X_PORTICO_CACHE: HeaderName = HeaderName::from_static("x-portico-cache");

/// The most paths a route remembers as written to; past it, all its entries go stale.
pub const MAX_MARKS: usize = 10_000;

/// The response cache of one route.
pub(crate) struct RouteCache {
    /// The route's prefix (the metric's label).
    route: String,
    store: ResponseCache,
    ttl: Duration,
    clock: SharedClock,
    /// Bumped by every invalidation.
    generation: AtomicU64,
    /// Entries of an older generation are stale (set when the marks overflow).
    floor: AtomicU64,
    /// By caller and path: the generation of the last write, and when it was.
    marks: Mutex<HashMap<String, (u64, Instant)>>,
}

/// What [`RouteCache::begin`] decided.
pub(crate) enum Begin {
    /// Answered from the cache; the upstream is not called.
    Answered(Response),
    /// Call the upstream, then [`RouteCache::finish`].
    Call(Plan),
}

/// What happens around the upstream call.
pub(crate) enum Plan {
    /// A GET or HEAD not answered from the cache.
    Miss {
        /// Where a GET's answer is kept.
        store: Option<Store>,
        /// The client's `If-None-Match`, held back from the upstream.
        if_none_match: Vec<HeaderValue>,
    },
    /// A write: the caller's entries for this path go stale once it is done.
    Invalidate(String),
    /// Anything else.
    Pass,
}

impl Plan {
    /// Where the answer is kept (taken once, for the tee).
    pub(crate) fn take_store(&mut self) -> Option<Store> {
        match self {
            Plan::Miss { store, .. } => store.take(),
            _ => None,
        }
    }
}

impl RouteCache {
    /// The response cache of `route`, if it has one, keeping its answers in `store`.
    pub(crate) fn for_route(
        route: &RouteSettings,
        store: &ResponseCache,
        clock: &SharedClock,
    ) -> Option<Self> {
        let settings = route.cache?;
        Some(Self {
            route: route.prefix.clone(),
            store: store.clone(),
            ttl: settings.ttl,
            clock: clock.clone(),
            generation: AtomicU64::new(0),
            floor: AtomicU64::new(0),
            marks: Mutex::new(HashMap::new()),
        })
    }

    /// Before the upstream call of `method target` with the upstream's `headers` (from which
    /// the conditionals of a storable miss are removed): the answer from the cache, or what
    /// to do around the call.
    pub(crate) fn begin(
        &self,
        route: &RouteSettings,
        method: &Method,
        target: &str,
        headers: &mut HeaderMap,
        identity: Option<&Identity>,
    ) -> Begin {
        let now = self.clock.now();
        let generation = self.generation.load(Ordering::SeqCst);
        let path = path_key(route, target, identity);
        let head = *method == Method::HEAD;
        if *method != Method::GET && !head {
            let write = [Method::POST, Method::PUT, Method::PATCH, Method::DELETE];
            return Begin::Call(if write.contains(method) {
                Plan::Invalidate(path)
            } else {
                Plan::Pass
            });
        }
        let request = CallInfo {
            method: &Method::GET,
            target,
            headers,
        };
        let Some(key) = cache_key(route, &request, identity) else {
            // A range request: neither answered nor kept.
            return Begin::Call(miss(None, Vec::new()));
        };
        let asked = directives(headers.get_all(CACHE_CONTROL));
        let no_cache = asked.iter().any(|d| d == "no-cache")
            || headers
                .get_all(PRAGMA)
                .iter()
                .any(|v| v.as_bytes().eq_ignore_ascii_case(b"no-cache"));
        if !no_cache
            && let Some(entry) = self.store.get(&key)
            && let Some(stamp) = entry.stamp
            && self.fresh(stamp, &path, now)
        {
            return Begin::Answered(self.answer(&entry, stamp, now, head, headers));
        }
        if head || asked.iter().any(|d| d == "no-store") {
            return Begin::Call(miss(None, Vec::new()));
        }
        // Ask for the whole answer, so that there is one to keep.
        let if_none_match = headers.get_all(IF_NONE_MATCH).iter().cloned().collect();
        headers.remove(IF_NONE_MATCH);
        headers.remove(IF_MODIFIED_SINCE);
        let store = Store {
            cache: self.store.clone(),
            key,
            stamp: Some(Stamp {
                at: now,
                generation,
            }),
        };
        Begin::Call(miss(Some(store), if_none_match))
    }

    /// After the upstream call: `response` labelled for a miss (304 when the upstream's
    /// `ETag` matches what the client holds), the path made stale after a write.
    pub(crate) fn finish(&self, plan: Plan, response: Response) -> Response {
        let if_none_match = match plan {
            Plan::Pass => return response,
            Plan::Invalidate(path) => {
                self.invalidate(path);
                return response;
            }
            Plan::Miss { if_none_match, .. } => if_none_match,
        };
        let matched = response.status() == StatusCode::OK
            && response
                .headers()
                .get(ETAG)
                .is_some_and(|etag| none_match_fails(&if_none_match, etag));
        let mut response = if matched {
            metrics::cache(&self.route, "not_modified");
            let (mut parts, body) = response.into_parts();
            // Read on into the cache (a body too large to keep is dropped).
            if content_length(&parts.headers).is_some_and(|n| n <= MAX_CACHED_BODY) {
                tokio::spawn(async move {
                    let _ = body.collect().await;
                });
            }
            parts.status = StatusCode::NOT_MODIFIED;
            parts.headers = not_modified_headers(&parts.headers);
            Response::from_parts(parts, Body::empty())
        } else {
            metrics::cache(&self.route, "miss");
            response
        };
        response
            .headers_mut()
            .insert(X_PORTICO_CACHE, HeaderValue::from_static("miss"));
        response
    }

    /// Whether an entry stamped `stamp` may still be answered for `path` at `now`.
    fn fresh(&self, stamp: Stamp, path: &str, now: Instant) -> bool {
        if now.saturating_duration_since(stamp.at) >= self.ttl
            || stamp.generation < self.floor.load(Ordering::SeqCst)
        {
            return false;
        }
        let marks = self.marks.lock().unwrap_or_else(PoisonError::into_inner);
        marks
            .get(path)
            .is_none_or(|(written, _)| stamp.generation >= *written)
    }

    /// Makes every entry for `path` kept by a request that began before now stale.
    fn invalidate(&self, path: String) {
        let mut marks = self.marks.lock().unwrap_or_else(PoisonError::into_inner);
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let now = self.clock.now();
        if marks.len() >= MAX_MARKS && !marks.contains_key(&path) {
            // An entry older than a mark past `ttl` is stale by age anyway.
            marks.retain(|_, (_, at)| now.saturating_duration_since(*at) < self.ttl);
            if marks.len() >= MAX_MARKS {
                marks.clear();
                self.floor.store(generation, Ordering::SeqCst);
                return;
            }
        }
        marks.insert(path, (generation, now));
    }

    /// The answer from a fresh `entry`: 304 when the client's `If-None-Match` matches.
    fn answer(
        &self,
        entry: &Cached,
        stamp: Stamp,
        now: Instant,
        head: bool,
        request: &HeaderMap,
    ) -> Response {
        let if_none_match: Vec<HeaderValue> =
            request.get_all(IF_NONE_MATCH).iter().cloned().collect();
        let not_modified = entry
            .headers
            .get(ETAG)
            .is_some_and(|etag| none_match_fails(&if_none_match, etag));
        let mut response = if not_modified {
            metrics::cache(&self.route, "not_modified");
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            *response.headers_mut() = not_modified_headers(&entry.headers);
            response
        } else {
            metrics::cache(&self.route, "hit");
            let body = if head {
                Body::empty()
            } else {
                Body::from(entry.body.clone())
            };
            let mut response = Response::new(body);
            *response.status_mut() = entry.status;
            *response.headers_mut() = entry.headers.clone();
            response
        };
        let age = now.saturating_duration_since(stamp.at).as_secs();
        let headers = response.headers_mut();
        headers.insert(X_PORTICO_CACHE, HeaderValue::from_static("hit"));
        headers.insert(AGE, HeaderValue::from(age));
        Passthrough::mark(&mut response);
        response
    }
}

fn miss(store: Option<Store>, if_none_match: Vec<HeaderValue>) -> Plan {
    Plan::Miss {
        store,
        if_none_match,
    }
}

/// The caller's key for the upstream path of `target` (query left out).
fn path_key(route: &RouteSettings, target: &str, identity: Option<&Identity>) -> String {
    let path = target.split('?').next().unwrap_or_default();
    format!("{}\n{path}", caller(route, identity))
}

/// Whether an upstream answer with these headers may be answered again from the cache.
pub(crate) fn reusable(headers: &HeaderMap) -> bool {
    let refused = directives(headers.get_all(CACHE_CONTROL))
        .iter()
        .any(|d| matches!(d.as_str(), "private" | "no-cache" | "no-store"));
    let varies = headers
        .get_all(VARY)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("*").split(','))
        .map(str::trim)
        .any(|name| !name.is_empty() && !name.eq_ignore_ascii_case("accept-encoding"));
    !refused && !varies && !headers.contains_key(SET_COOKIE)
}

/// The `Cache-Control` directive names, lowercased (`private="x"` is `private`).
fn directives<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> Vec<String> {
    values
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| {
            d.split('=')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|d| !d.is_empty())
        .collect()
}

/// Gives a kept answer its `ETag`: the upstream's when strong, else from the body's SHA-256.
pub(crate) fn set_etag(headers: &mut HeaderMap, body: &Bytes) {
    if headers
        .get(ETAG)
        .is_some_and(|etag| etag.as_bytes().first() == Some(&b'"'))
    {
        return;
    }
    let digest = Sha256::digest(body);
    let mut tag = String::with_capacity(34);
    tag.push('"');
    portico_core::hex::push_bytes(&mut tag, &digest[..16]);
    tag.push('"');
    if let Ok(value) = HeaderValue::from_str(&tag) {
        headers.insert(ETAG, value);
    }
}

/// Whether `If-None-Match` (its values) names `etag` or is `*`: the condition is false and
/// the answer is 304. Weak comparison (RFC 9110 §13.1.2): `W/"x"` and `"x"` match.
fn none_match_fails(if_none_match: &[HeaderValue], etag: &HeaderValue) -> bool {
    let Some(ours) = opaque(etag.as_bytes()) else {
        return false;
    };
    if_none_match.iter().any(|value| {
        let value = value.as_bytes();
        if value.trim_ascii() == b"*" {
            return true;
        }
        entity_tags(value).any(|tag| tag == ours)
    })
}

/// The opaque tag (quotes included) of an entity tag, without its `W/`.
fn opaque(tag: &[u8]) -> Option<&[u8]> {
    let tag = tag.trim_ascii();
    let tag = tag.strip_prefix(b"W/").unwrap_or(tag);
    (tag.len() >= 2 && tag.first() == Some(&b'"') && tag.last() == Some(&b'"')).then_some(tag)
}

/// The opaque tags of an `If-None-Match` list (`W/"a", "b,c"`); stops at anything malformed.
fn entity_tags(mut list: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let start = list
            .iter()
            .position(|b| !matches!(b, b' ' | b'\t' | b','))?;
        let rest = &list[start..];
        let rest = rest.strip_prefix(b"W/").unwrap_or(rest);
        if rest.first() != Some(&b'"') {
            list = &[];
            return None;
        }
        let Some(end) = rest[1..].iter().position(|b| *b == b'"') else {
            list = &[];
            return None;
        };
        let (tag, tail) = rest.split_at(end + 2);
        list = tail;
        Some(tag)
    })
}

/// The headers a 304 carries (RFC 9110 §15.4.5): those of the answer it stands for that
/// are not about its content.
fn not_modified_headers(headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::new();
    for name in [CACHE_CONTROL, CONTENT_LOCATION, ETAG, EXPIRES, VARY] {
        for value in headers.get_all(&name) {
            kept.append(name.clone(), value.clone());
        }
    }
    kept
}

/// The declared `Content-Length`.
fn content_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(list: &[&'static str]) -> Vec<HeaderValue> {
        list.iter().map(|v| HeaderValue::from_static(v)).collect()
    }

    #[test]
    fn if_none_match_uses_the_weak_comparison() {
        let etag = HeaderValue::from_static("\"v1\"");
        assert!(none_match_fails(&values(&["\"v1\""]), &etag));
        assert!(none_match_fails(&values(&["W/\"v1\""]), &etag));
        assert!(none_match_fails(&values(&["\"a\", W/\"v1\""]), &etag));
        assert!(none_match_fails(&values(&["\"a\"", "\"v1\""]), &etag));
        assert!(none_match_fails(&values(&[" * "]), &etag));
        assert!(!none_match_fails(&values(&["\"v2\""]), &etag));
        assert!(!none_match_fails(&values(&["v1"]), &etag));
        assert!(!none_match_fails(&[], &etag));
        let weak = HeaderValue::from_static("W/\"a,b\"");
        assert!(none_match_fails(&values(&["\"x\",\"a,b\""]), &weak));
    }

    #[test]
    fn a_computed_etag_is_strong_and_a_weak_one_is_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(ETAG, HeaderValue::from_static("W/\"w\""));
        set_etag(&mut headers, &Bytes::from_static(b"abc"));
        // SHA-256("abc") begins ba7816bf8f01cfea414140de5dae2223.
        assert_eq!(headers[ETAG], "\"ba7816bf8f01cfea414140de5dae2223\"");
        headers.insert(ETAG, HeaderValue::from_static("\"strong\""));
        set_etag(&mut headers, &Bytes::from_static(b"abc"));
        assert_eq!(headers[ETAG], "\"strong\"");
    }

    #[test]
    fn private_no_cache_cookies_and_vary_are_not_reused() {
        let with = |name: HeaderName, value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_static(value));
            reusable(&headers)
        };
        assert!(reusable(&HeaderMap::new()));
        assert!(with(CACHE_CONTROL, "public, max-age=60"));
        assert!(with(VARY, "Accept-Encoding"));
        assert!(!with(CACHE_CONTROL, "private=\"x\""));
        assert!(!with(CACHE_CONTROL, "max-age=5, No-Cache"));
        assert!(!with(VARY, "*"));
        assert!(!with(VARY, "accept-encoding, Accept-Language"));
        assert!(!with(SET_COOKIE, "a=b"));
    }
}
