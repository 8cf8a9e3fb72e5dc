//! Per-route rate limits over real HTTP on a `ManualClock`: the budget of a user, an API key
//! and an address; 429 `BACKEND_003` with `Retry-After` and the `RateLimit-*` headers, the
//! upstream not reached; identity and permission refusals first; the budget back after the
//! window; the metric.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::{Method, StatusCode};
use portico_core::error::ApiError;
use portico_gateway::identity::{Authenticator, BoxFuture, CredentialKind, Identity};
use portico_gateway::settings::{AuthMode, GatewaySettings, RateLimit, RateLimitKey};
use support::*;

const ALICE: (&str, &str) = ("authorization", "Bearer alice-token");
const BOB: (&str, &str) = ("authorization", "Bearer bob-token");
const MINUTE: Duration = Duration::from_secs(60);

/// `/api/x` → the upstream at `url`, with `auth`, limited to `requests` per minute by `per`.
fn limited(url: &str, auth: AuthMode, per: RateLimitKey, requests: u32) -> GatewaySettings {
    let mut x = route("/api/x", "x", None, auth, &[]);
    x.rate_limit = Some(RateLimit {
        per,
        requests: NonZeroU32::new(requests).unwrap(),
        window: MINUTE,
    });
    settings(vec![upstream("x", url)], vec![x])
}

async fn ok_upstream() -> Upstream {
    Upstream::start(Router::new().fallback(|| async { "ok" })).await
}

fn assert_limit_headers(reply: &Reply, limit: &str, remaining: &str) {
    assert_eq!(reply.header("ratelimit-limit"), Some(limit), "{reply:?}");
    assert_eq!(
        reply.header("ratelimit-remaining"),
        Some(remaining),
        "{reply:?}"
    );
    let reset: u64 = reply.header("ratelimit-reset").unwrap().parse().unwrap();
    assert!(reset <= 60, "{reply:?}");
}

#[tokio::test]
async fn a_user_gets_n_requests_then_429_with_the_headers_and_the_upstream_untouched() {
    let up = ok_upstream().await;
    let gw = start_gateway(limited(
        &up.url(),
        AuthMode::Required,
        RateLimitKey::User,
        3,
    ))
    .await;

    for remaining in ["2", "1", "0"] {
        let reply = gw.get("/api/x/a", &[ALICE]).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.text(), "ok");
        assert_limit_headers(&reply, "3", remaining);
    }
    // 3 per minute: one comes back every 20 s, the whole budget after 60 s.
    let third = gw.get("/api/x/a", &[BOB]).await;
    assert_eq!(third.status, StatusCode::OK, "bob has his own budget");
    assert_eq!(up.hits(), 4);

    let refused = gw.get("/api/x/a", &[ALICE]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.code(), "BACKEND_003");
    assert_eq!(refused.header("retry-after"), Some("20"));
    assert_eq!(refused.json()["error"]["details"]["retry_after"], 20);
    assert_limit_headers(&refused, "3", "0");
    assert_eq!(refused.header("ratelimit-reset"), Some("60"));
    assert_eq!(up.hits(), 4, "a refused request never reaches the upstream");

    // Bob still has two left; his use did not touch alice's refusal.
    for remaining in ["1", "0"] {
        let reply = gw.get("/api/x/a", &[BOB]).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_limit_headers(&reply, "3", remaining);
    }
    assert_eq!(gw.get("/api/x/a", &[BOB]).await.code(), "BACKEND_003");
    assert_eq!(up.hits(), 6);
}

#[tokio::test]
async fn the_window_passing_on_the_clock_restores_the_budget() {
    let up = ok_upstream().await;
    let gw = start_gateway(limited(
        &up.url(),
        AuthMode::Required,
        RateLimitKey::User,
        2,
    ))
    .await;
    for _ in 0..2 {
        assert_eq!(gw.get("/api/x", &[ALICE]).await.status, StatusCode::OK);
    }
    let refused = gw.get("/api/x", &[ALICE]).await;
    assert_eq!(refused.code(), "BACKEND_003");
    assert_eq!(refused.header("retry-after"), Some("30"));

    gw.clock.advance(Duration::from_secs(29));
    let still = gw.get("/api/x", &[ALICE]).await;
    assert_eq!(still.code(), "BACKEND_003");
    assert_eq!(
        still.header("retry-after"),
        Some("1"),
        "at least 1 s, rounded up"
    );

    gw.clock.advance(MINUTE);
    for remaining in ["1", "0"] {
        let reply = gw.get("/api/x", &[ALICE]).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_limit_headers(&reply, "2", remaining);
    }
    assert_eq!(gw.get("/api/x", &[ALICE]).await.code(), "BACKEND_003");
    assert_eq!(up.hits(), 4);
}

#[tokio::test]
async fn identity_and_permission_refusals_come_first_and_cost_nothing() {
    let up = ok_upstream().await;
    let mut settings = limited(&up.url(), AuthMode::Required, RateLimitKey::Ip, 1);
    settings.routes[0].permissions = vec!["etl.access".into()];
    let gw = start_gateway(settings).await;

    for _ in 0..3 {
        assert_eq!(gw.get("/api/x", &[]).await.code(), "AUTH_003");
        assert_eq!(
            gw.get("/api/x", &[("authorization", "Bearer nope")])
                .await
                .code(),
            "AUTH_001"
        );
        let forbidden = gw.get("/api/x", &[BOB]).await;
        assert_eq!(forbidden.code(), "AUTH_006");
        assert_eq!(forbidden.header("ratelimit-limit"), None);
    }
    // The address's single request is still there.
    assert_eq!(gw.get("/api/x", &[ALICE]).await.status, StatusCode::OK);
    assert_eq!(gw.get("/api/x", &[ALICE]).await.code(), "BACKEND_003");
    assert_eq!(up.hits(), 1);
}

#[tokio::test]
async fn per_ip_counts_each_address_whoever_calls() {
    let up = ok_upstream().await;
    let gw = start_gateway(limited(&up.url(), AuthMode::Optional, RateLimitKey::Ip, 2)).await;
    let one = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let two = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let get = |headers: &[(&str, &str)]| gw.request(Method::GET, "/api/x", headers, Body::empty());

    assert_eq!(send_from(one, get(&[ALICE])).await.status, StatusCode::OK);
    assert_eq!(send_from(one, get(&[BOB])).await.status, StatusCode::OK);
    // Another user from the same address shares its budget.
    let refused = send_from(one, get(&[])).await;
    assert_eq!(refused.code(), "BACKEND_003");
    assert_limit_headers(&refused, "2", "0");

    // Another address has its own.
    let other = send_from(two, get(&[ALICE])).await;
    assert_eq!(other.status, StatusCode::OK);
    assert_limit_headers(&other, "2", "1");
    assert_eq!(up.last().header("x-forwarded-for"), Some("127.0.0.2"));
    assert_eq!(up.hits(), 3);
}

#[tokio::test]
async fn per_user_counts_anonymous_callers_by_address() {
    let up = ok_upstream().await;
    let gw = start_gateway(limited(
        &up.url(),
        AuthMode::Optional,
        RateLimitKey::User,
        1,
    ))
    .await;
    let one = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let two = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let get = |headers: &[(&str, &str)]| gw.request(Method::GET, "/api/x", headers, Body::empty());

    assert_eq!(send_from(one, get(&[])).await.status, StatusCode::OK);
    assert_eq!(send_from(one, get(&[])).await.code(), "BACKEND_003");
    assert_eq!(send_from(two, get(&[])).await.status, StatusCode::OK);
    // Alice, from the exhausted address, is counted as alice.
    assert_eq!(send_from(one, get(&[ALICE])).await.status, StatusCode::OK);
    assert_eq!(send_from(two, get(&[ALICE])).await.code(), "BACKEND_003");
    assert_eq!(up.hits(), 3);
}

/// [`FakeAuth`] plus two API keys of alice's (`key-1`, `key-2`).
struct WithApiKeys;

impl Authenticator for WithApiKeys {
    fn authenticate<'a>(
        &'a self,
        credential: &'a str,
    ) -> BoxFuture<'a, Result<Identity, ApiError>> {
        Box::pin(async move {
            match credential {
                "key-1" | "key-2" => Ok(Identity {
                    kind: CredentialKind::ApiKey,
                    credential_id: format!("id-{credential}"),
                    ..identity("alice", &["etl.access"])
                }),
                other => FakeAuth.authenticate(other).await,
            }
        })
    }
}

#[tokio::test]
async fn per_api_key_gives_each_key_its_own_budget_and_tokens_the_users() {
    let up = ok_upstream().await;
    let gw = start_gateway_with_auth(
        limited(&up.url(), AuthMode::Required, RateLimitKey::ApiKey, 1),
        Arc::new(WithApiKeys),
    )
    .await;
    let key1 = ("x-api-key", "key-1");
    let key2 = ("authorization", "Bearer key-2");

    assert_eq!(gw.get("/api/x", &[key1]).await.status, StatusCode::OK);
    assert_eq!(gw.get("/api/x", &[key1]).await.code(), "BACKEND_003");
    assert_eq!(gw.get("/api/x", &[key2]).await.status, StatusCode::OK);
    // Alice's token is counted by user: neither key's budget.
    assert_eq!(gw.get("/api/x", &[ALICE]).await.status, StatusCode::OK);
    assert_eq!(gw.get("/api/x", &[ALICE]).await.code(), "BACKEND_003");
    assert_eq!(up.hits(), 3);
}

#[tokio::test]
async fn refusals_are_counted_per_route() {
    let metrics = portico_core::telemetry::Metrics::install().unwrap();
    let up = ok_upstream().await;
    let mut settings = limited(&up.url(), AuthMode::None, RateLimitKey::Ip, 1);
    settings.routes[0].prefix = "/api/metered-limit".into();
    let gw = start_gateway(settings).await;
    assert_eq!(
        gw.get("/api/metered-limit", &[]).await.status,
        StatusCode::OK
    );
    for _ in 0..2 {
        assert_eq!(
            gw.get("/api/metered-limit", &[]).await.code(),
            "BACKEND_003"
        );
    }
    let text = metrics.render();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("portico_gateway_rate_limited_total")
                && l.contains("route=\"/api/metered-limit\"")
        })
        .unwrap_or_else(|| panic!("no rate_limited_total in\n{text}"));
    assert!(line.ends_with(" 2"), "{line}");
}

#[tokio::test]
async fn routes_without_a_limit_send_no_ratelimit_headers() {
    let up = ok_upstream().await;
    let gw = start_gateway(settings(
        vec![upstream("x", &up.url())],
        vec![route("/api/x", "x", None, AuthMode::None, &[])],
    ))
    .await;
    for _ in 0..5 {
        let reply = gw.get("/api/x", &[]).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header("ratelimit-limit"), None);
    }
}
