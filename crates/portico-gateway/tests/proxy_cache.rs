//! The GET response cache over real HTTP: a miss then hits without calling the upstream,
//! expiry after `ttl` on the manual clock, 304 on `If-None-Match` (computed ETag, the
//! upstream's own, on a hit and on a miss), HEAD from a kept GET, per-user isolation, what is
//! not answered from the cache (`no-store`, `private`, `Set-Cookie`, `Vary: *`, large,
//! client `no-cache`), writes making the path stale, a route without `cache` never caching,
//! and the metric.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode};
use portico_gateway::settings::{AuthMode, Fallback, GatewaySettings, ResponseCache};
use serde_json::json;
use support::*;

const ALICE: (&str, &str) = ("authorization", "Bearer alice-token");
const BOB: (&str, &str) = ("authorization", "Bearer bob-token");
const TTL: Duration = Duration::from_secs(30);

/// An upstream numbering its answers: `{"n", "user", "path"}`; `/etag/*` sends `ETag: "v1"`,
/// `/weak/*` `ETag: W/"w"`, `/no-store`, `/private`, `/cookie`, `/vary-star`, `/big`
/// (2 MiB), `/teapot` (418) send what they say; writes answer `written`.
fn numbering() -> (Router, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let router = Router::new().fallback(move |request: Request| {
        let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
        async move { answer(n, &request) }
    });
    (router, count)
}

fn answer(n: usize, request: &Request) -> Response {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return "written".into_response();
    }
    let path = request.uri().path().to_owned();
    let user = request
        .headers()
        .get("x-user-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = axum::Json(json!({"n": n, "user": user, "path": path}));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        headers.insert(name, header_value(value));
    };
    // The route's prefix is forwarded as it is.
    let tail = path.splitn(4, '/').nth(3).unwrap_or_default();
    match format!("/{tail}").as_str() {
        p if p.starts_with("/etag/") => set("etag", "\"v1\""),
        p if p.starts_with("/weak/") => set("etag", "W/\"w\""),
        "/no-store" => set("cache-control", "no-store"),
        "/private" => set("cache-control", "private, max-age=60"),
        "/cookie" => set("set-cookie", "session=abc"),
        "/vary-star" => set("vary", "*"),
        "/big" => return vec![b'x'; 2 * 1024 * 1024].into_response(),
        "/teapot" => return (StatusCode::IM_A_TEAPOT, format!("teapot {n}")).into_response(),
        _ => {}
    }
    response
}

/// `/api/data` (or `prefix`) → `data`, `cache = { ttl = "30s" }`.
fn cached_route(url: &str, auth: AuthMode, fallback: Option<Fallback>) -> GatewaySettings {
    cached_prefix("/api/data", url, auth, fallback)
}

fn cached_prefix(
    prefix: &str,
    url: &str,
    auth: AuthMode,
    fallback: Option<Fallback>,
) -> GatewaySettings {
    let mut r = route(prefix, "data", None, auth, &[]);
    r.cache = Some(ResponseCache { ttl: TTL });
    r.fallback = fallback;
    settings(vec![upstream("data", url)], vec![r])
}

async fn cached_gateway(auth: AuthMode) -> (Upstream, Arc<AtomicUsize>, TestGateway) {
    let (router, count) = numbering();
    let data = Upstream::start(router).await;
    let gw = start_gateway(cached_route(&data.url(), auth, None)).await;
    (data, count, gw)
}

fn n(reply: &Reply) -> u64 {
    reply.json()["n"].as_u64().unwrap()
}

#[tokio::test]
async fn a_miss_then_hits_without_calling_the_upstream_until_the_ttl_has_passed() {
    let metrics = portico_core::telemetry::Metrics::install().unwrap();
    let (router, count) = numbering();
    let data = Upstream::start(router).await;
    // A prefix of its own: the metric is counted over the whole test binary.
    let gw = start_gateway(cached_prefix(
        "/api/metered",
        &data.url(),
        AuthMode::None,
        None,
    ))
    .await;

    let first = gw.get("/api/metered/items?page=1", &[]).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("x-portico-cache"), Some("miss"));
    assert_eq!(n(&first), 1);

    gw.clock.advance(Duration::from_secs(7));
    let hit = gw.get("/api/metered/items?page=1", &[]).await;
    assert_eq!(hit.status, StatusCode::OK);
    assert_eq!(hit.header("x-portico-cache"), Some("hit"));
    assert_eq!(hit.header("age"), Some("7"));
    assert_eq!(hit.header("content-type"), Some("application/json"));
    assert_eq!(hit.body, first.body);
    let etag = hit.header("etag").unwrap().to_owned();
    assert!(
        etag.len() == 34 && etag.starts_with('"') && etag.ends_with('"'),
        "{etag}"
    );
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "a hit does not call the upstream"
    );

    // Another query is another entry.
    let other = gw.get("/api/metered/items?page=2", &[]).await;
    assert_eq!(other.header("x-portico-cache"), Some("miss"));
    assert_eq!(n(&other), 2);

    // Just before the ttl still a hit; at the ttl the upstream again, kept anew.
    gw.clock
        .advance(TTL - Duration::from_secs(7) - Duration::from_millis(1));
    let last_hit = gw.get("/api/metered/items?page=1", &[]).await;
    assert_eq!(last_hit.header("x-portico-cache"), Some("hit"));
    assert_eq!(n(&last_hit), 1);
    gw.clock.advance(Duration::from_millis(1));
    let expired = gw.get("/api/metered/items?page=1", &[]).await;
    assert_eq!(expired.header("x-portico-cache"), Some("miss"));
    assert_eq!(n(&expired), 3);
    let again = gw.get("/api/metered/items?page=1", &[]).await;
    assert_eq!(again.header("x-portico-cache"), Some("hit"));
    assert_eq!(again.header("age"), Some("0"));
    assert_eq!(n(&again), 3);
    assert_ne!(
        again.header("etag"),
        Some(etag.as_str()),
        "the body changed"
    );

    // 304 on the kept answer's ETag, without calling the upstream.
    let tag = again.header("etag").unwrap().to_owned();
    let not_modified = gw
        .get("/api/metered/items?page=1", &[("if-none-match", &tag)])
        .await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    assert_eq!(not_modified.header("etag"), Some(tag.as_str()));
    assert_eq!(not_modified.header("x-portico-cache"), Some("hit"));
    assert!(not_modified.body.is_empty());
    assert_eq!(count.load(Ordering::SeqCst), 3);

    let text = metrics.render();
    let value = |result: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("portico_gateway_cache_total")
                    && l.contains("route=\"/api/metered\"")
                    && l.contains(&format!("result=\"{result}\""))
            })
            .unwrap_or_else(|| panic!("no cache_total {result} in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(value("miss"), "3");
    assert_eq!(value("hit"), "3");
    assert_eq!(value("not_modified"), "1");
}

#[tokio::test]
async fn if_none_match_gets_304_with_the_upstreams_own_etag_on_a_hit_and_on_a_miss() {
    let (data, count, gw) = cached_gateway(AuthMode::None).await;

    // A miss with a matching If-None-Match: the upstream is asked without it (so there is an
    // answer to keep), the client gets 304 with the upstream's ETag.
    let first = gw
        .get(
            "/api/data/etag/a",
            &[("if-none-match", "\"old\", W/\"v1\"")],
        )
        .await;
    assert_eq!(first.status, StatusCode::NOT_MODIFIED);
    assert_eq!(first.header("etag"), Some("\"v1\""));
    assert_eq!(first.header("x-portico-cache"), Some("miss"));
    assert!(first.body.is_empty());
    assert_eq!(data.last().header("if-none-match"), None);

    // The body was still read into the cache (by a task of its own): a hit, the upstream's
    // ETag kept, the upstream asked once.
    let mut hit = gw.get("/api/data/etag/a", &[]).await;
    for _ in 0..100 {
        if hit.header("x-portico-cache") == Some("hit") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        hit = gw.get("/api/data/etag/a", &[]).await;
    }
    assert_eq!(hit.header("x-portico-cache"), Some("hit"));
    assert_eq!(hit.header("etag"), Some("\"v1\""));
    assert_eq!(n(&hit), 1);
    let calls = count.load(Ordering::SeqCst);

    for inm in ["\"v1\"", "W/\"v1\"", "*", "\"x\",\"v1\""] {
        let reply = gw.get("/api/data/etag/a", &[("if-none-match", inm)]).await;
        assert_eq!(reply.status, StatusCode::NOT_MODIFIED, "{inm}");
        assert_eq!(reply.header("etag"), Some("\"v1\""));
        assert_eq!(reply.header("x-portico-cache"), Some("hit"));
    }
    let changed = gw
        .get("/api/data/etag/a", &[("if-none-match", "\"v0\"")])
        .await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(n(&changed), 1);
    assert_eq!(count.load(Ordering::SeqCst), calls, "no upstream call");

    // A weak upstream ETag is replaced by a strong one computed from the body.
    let weak = gw.get("/api/data/weak/b", &[]).await;
    assert_eq!(
        weak.header("etag"),
        Some("W/\"w\""),
        "a miss passes it through"
    );
    let hit = gw.get("/api/data/weak/b", &[]).await;
    let strong = hit.header("etag").unwrap();
    assert!(strong.starts_with('"') && strong.len() == 34, "{strong}");

    // HEAD is answered from the kept GET: headers, no body.
    let head = gw
        .call(
            Method::HEAD,
            "/api/data/etag/a",
            &[],
            axum::body::Body::empty(),
        )
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("x-portico-cache"), Some("hit"));
    assert_eq!(head.header("etag"), Some("\"v1\""));
    assert_eq!(
        head.header("content-length"),
        Some(hit.body.len().to_string().as_str())
    );
    assert!(head.body.is_empty());
}

#[tokio::test]
async fn one_users_answer_is_never_given_to_another() {
    let (_data, count, gw) = cached_gateway(AuthMode::Required).await;

    let alice = gw.get("/api/data/me", &[ALICE]).await;
    assert_eq!(alice.json()["user"], "alice");
    let bob = gw.get("/api/data/me", &[BOB]).await;
    assert_eq!(bob.header("x-portico-cache"), Some("miss"));
    assert_eq!(bob.json()["user"], "bob");
    let alice_again = gw.get("/api/data/me", &[ALICE]).await;
    assert_eq!(alice_again.header("x-portico-cache"), Some("hit"));
    assert_eq!(alice_again.json()["user"], "alice");
    let bob_again = gw.get("/api/data/me", &[BOB]).await;
    assert_eq!(bob_again.header("x-portico-cache"), Some("hit"));
    assert_eq!(bob_again.json()["user"], "bob");
    assert_eq!(count.load(Ordering::SeqCst), 2);

    // Bob holding Alice's ETag learns nothing: his entry has another body, so another tag.
    let tag = alice_again.header("etag").unwrap();
    let bob_304 = gw.get("/api/data/me", &[BOB, ("if-none-match", tag)]).await;
    assert_eq!(bob_304.status, StatusCode::OK);
    assert_eq!(bob_304.json()["user"], "bob");

    // No credentials: still 401 before any cache.
    let anonymous = gw.get("/api/data/me", &[]).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn answers_the_upstream_or_the_client_keeps_private_are_not_answered_from_the_cache() {
    let (_data, count, gw) = cached_gateway(AuthMode::None).await;

    for path in [
        "/api/data/no-store",
        "/api/data/private",
        "/api/data/cookie",
        "/api/data/vary-star",
        "/api/data/big",
        "/api/data/teapot",
    ] {
        let before = count.load(Ordering::SeqCst);
        let first = gw.get(path, &[]).await;
        let second = gw.get(path, &[]).await;
        assert_eq!(first.header("x-portico-cache"), Some("miss"), "{path}");
        assert_eq!(second.header("x-portico-cache"), Some("miss"), "{path}");
        assert_eq!(count.load(Ordering::SeqCst), before + 2, "{path}");
    }
    let cookie = gw.get("/api/data/cookie", &[]).await;
    assert_eq!(cookie.header("set-cookie"), Some("session=abc"));

    // The client's no-cache goes to the upstream, and its answer is kept for the next.
    let kept = gw.get("/api/data/plain", &[]).await;
    let revalidated = gw
        .get("/api/data/plain", &[("cache-control", "no-cache")])
        .await;
    assert_eq!(revalidated.header("x-portico-cache"), Some("miss"));
    assert_eq!(n(&revalidated), n(&kept) + 1);
    let hit = gw.get("/api/data/plain", &[]).await;
    assert_eq!(hit.header("x-portico-cache"), Some("hit"));
    assert_eq!(n(&hit), n(&revalidated));
    let pragma = gw.get("/api/data/plain", &[("pragma", "no-cache")]).await;
    assert_eq!(pragma.header("x-portico-cache"), Some("miss"));

    // A range request is neither answered nor kept.
    let range = gw.get("/api/data/plain", &[("range", "bytes=0-3")]).await;
    assert_eq!(range.header("x-portico-cache"), Some("miss"));
}

#[tokio::test]
async fn a_write_to_the_path_makes_that_users_entries_stale() {
    let (_data, count, gw) = cached_gateway(AuthMode::Required).await;

    let page = gw.get("/api/data/doc?v=1", &[ALICE]).await;
    let plain = gw.get("/api/data/doc", &[ALICE]).await;
    let bobs = gw.get("/api/data/doc", &[BOB]).await;
    let elsewhere = gw.get("/api/data/other", &[ALICE]).await;
    assert_eq!(count.load(Ordering::SeqCst), 4);
    for (path, who) in [
        ("/api/data/doc?v=1", ALICE),
        ("/api/data/doc", ALICE),
        ("/api/data/doc", BOB),
    ] {
        let hit = gw.get(path, &[who]).await;
        assert_eq!(hit.header("x-portico-cache"), Some("hit"), "{path}");
    }

    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let before = count.load(Ordering::SeqCst);
        let write = gw
            .call(method.clone(), "/api/data/doc", &[ALICE], "{}")
            .await;
        assert_eq!(write.text(), "written");
        assert_eq!(write.header("x-portico-cache"), None);
        let after = gw.get("/api/data/doc?v=1", &[ALICE]).await;
        assert_eq!(after.header("x-portico-cache"), Some("miss"), "{method}");
        assert!(n(&after) > n(&page));
        let plain_after = gw.get("/api/data/doc", &[ALICE]).await;
        assert_eq!(plain_after.header("x-portico-cache"), Some("miss"));
        assert!(n(&plain_after) > n(&plain));
        // Kept anew after the write.
        let hit = gw.get("/api/data/doc", &[ALICE]).await;
        assert_eq!(hit.header("x-portico-cache"), Some("hit"));
        assert_eq!(count.load(Ordering::SeqCst), before + 3);
    }

    // Bob's entry and Alice's other path are untouched.
    let bob_hit = gw.get("/api/data/doc", &[BOB]).await;
    assert_eq!(bob_hit.header("x-portico-cache"), Some("hit"));
    assert_eq!(n(&bob_hit), n(&bobs));
    let other_hit = gw.get("/api/data/other", &[ALICE]).await;
    assert_eq!(other_hit.header("x-portico-cache"), Some("hit"));
    assert_eq!(n(&other_hit), n(&elsewhere));
}

#[tokio::test]
async fn a_route_without_cache_never_answers_from_one_even_with_a_cache_fallback() {
    let (router, count) = numbering();
    let data = Upstream::start(router).await;
    let mut settings = cached_route(&data.url(), AuthMode::None, Some(Fallback::Cache));
    settings.routes[0].cache = None;
    let gw = start_gateway(settings).await;

    let first = gw.get("/api/data/etag/a", &[]).await;
    let second = gw
        .get("/api/data/etag/a", &[("if-none-match", "\"v1\"")])
        .await;
    assert_eq!(second.status, StatusCode::OK, "the upstream ignores it");
    assert_eq!(n(&second), 2);
    for reply in [&first, &second] {
        assert_eq!(reply.header("x-portico-cache"), None);
        assert_eq!(reply.header("age"), None);
    }
    assert_eq!(data.last().header("if-none-match"), Some("\"v1\""));
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_cache_fallback_serves_the_response_caches_entries_after_the_ttl() {
    let (router, healthy) = {
        let (router, _count) = numbering();
        let healthy = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = healthy.clone();
        let guarded = Router::new().fallback(move |request: Request| {
            let router = router.clone();
            let up = flag.load(Ordering::SeqCst);
            async move {
                if up {
                    use tower::ServiceExt as _;
                    router.oneshot(request).await.unwrap()
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "down").into_response()
                }
            }
        });
        (guarded, healthy)
    };
    let data = Upstream::start(router).await;
    let mut settings = cached_route(&data.url(), AuthMode::None, Some(Fallback::Cache));
    settings.upstreams.get_mut("data").unwrap().policy = policy(1, 5 * SECOND, 5, 60 * SECOND);
    let gw = start_gateway(settings).await;

    let first = gw.get("/api/data/x", &[]).await;
    assert_eq!(first.header("x-portico-cache"), Some("miss"));
    gw.clock.advance(TTL);
    healthy.store(false, Ordering::SeqCst);
    let stale = gw.get("/api/data/x", &[]).await;
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(stale.header("x-portico-fallback"), Some("cache"));
    assert_eq!(stale.header("x-portico-cache"), Some("miss"));
    assert_eq!(stale.body, first.body);
}
