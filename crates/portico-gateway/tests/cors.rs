//! CORS per route over real HTTP: preflights answered by the gateway (allowed and refused
//! origins), the headers on actual answers — the upstream's and the gateway's own envelopes —
//! and routes without CORS left alone.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use std::time::Duration;

use axum::Router;
use http::{Method, StatusCode};
use portico_gateway::settings::{AuthMode, CorsSettings, GatewaySettings};
use support::*;

const APP: &str = "https://app.example.com";

/// An upstream that sets its own, too generous, CORS header.
fn upstream_with_own_cors() -> Router {
    Router::new().fallback(|| async { ([("access-control-allow-origin", "*")], "ok") })
}

fn cors(origins: &[&str], credentials: bool) -> CorsSettings {
    CorsSettings {
        allow_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
        allow_credentials: credentials,
        ..CorsSettings::default()
    }
}

/// `/api` (auth required, CORS for `APP`) and `/plain` (no CORS), both to `svc`.
fn two_routes(url: &str, api_cors: CorsSettings) -> GatewaySettings {
    let mut api = route("/api", "svc", None, AuthMode::Required, &[]);
    api.cors = Some(api_cors);
    settings(
        vec![upstream("svc", url)],
        vec![api, route("/plain", "svc", None, AuthMode::None, &[])],
    )
}

fn cors_headers(reply: &Reply) -> Vec<String> {
    let mut names: Vec<String> = reply
        .headers
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("access-control-"))
        .collect();
    names.sort();
    names
}

fn vary(reply: &Reply) -> Vec<String> {
    reply
        .headers
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

async fn preflight(gw: &TestGateway, path: &str, origin: &str, extra: &[(&str, &str)]) -> Reply {
    let mut headers = vec![
        ("origin", origin),
        ("access-control-request-method", "POST"),
    ];
    headers.extend_from_slice(extra);
    gw.call(Method::OPTIONS, path, &headers, axum::body::Body::empty())
        .await
}

#[tokio::test]
async fn an_allowed_preflight_is_answered_by_the_gateway_without_credentials() {
    let svc = Upstream::start(upstream_with_own_cors()).await;
    let gw = start_gateway(two_routes(&svc.url(), cors(&[APP], false))).await;

    let reply = preflight(
        &gw,
        "/api/jobs",
        APP,
        &[(
            "access-control-request-headers",
            "authorization, content-type",
        )],
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        reply.header("access-control-allow-methods"),
        Some("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
    );
    assert_eq!(
        reply.header("access-control-allow-headers"),
        Some("authorization, content-type")
    );
    assert_eq!(reply.header("access-control-max-age"), Some("600"));
    assert_eq!(reply.header("access-control-allow-credentials"), None);
    assert!(
        vary(&reply).contains(&"Origin".to_owned()),
        "{:?}",
        vary(&reply)
    );
    assert_eq!(svc.hits(), 0, "a preflight is never proxied");

    // Origins compare without case.
    let reply = preflight(&gw, "/api/jobs", "HTTPS://APP.example.com", &[]).await;
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("HTTPS://APP.example.com")
    );
}

#[tokio::test]
async fn a_refused_origins_preflight_gets_204_without_cors_headers() {
    let svc = Upstream::start(upstream_with_own_cors()).await;
    let gw = start_gateway(two_routes(&svc.url(), cors(&[APP], false))).await;

    for origin in [
        "https://evil.example",
        "https://app.example.com.evil",
        "null",
    ] {
        let reply = preflight(&gw, "/api/jobs", origin, &[]).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{origin}");
        assert!(
            cors_headers(&reply).is_empty(),
            "{origin}: {:?}",
            reply.headers
        );
        assert_eq!(vary(&reply), ["Origin"]);
    }
    assert_eq!(svc.hits(), 0);
}

#[tokio::test]
async fn actual_answers_carry_the_headers_including_the_gateways_envelopes() {
    let svc = Upstream::start(upstream_with_own_cors()).await;
    let gw = start_gateway(two_routes(&svc.url(), cors(&[APP], true))).await;
    let expose = "X-Request-ID, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, \
                  Retry-After, X-Portico-Fallback";

    let ok = gw
        .get(
            "/api/jobs",
            &[("origin", APP), ("authorization", "Bearer alice-token")],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some(APP),
        "not the upstream's *"
    );
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(ok.header("access-control-expose-headers"), Some(expose));
    assert!(vary(&ok).contains(&"Origin".to_owned()));

    let unauthorized = gw.get("/api/jobs", &[("origin", APP)]).await;
    assert_eq!(unauthorized.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unauthorized.code(), "AUTH_003");
    assert_eq!(
        unauthorized.header("access-control-allow-origin"),
        Some(APP)
    );
    assert_eq!(
        unauthorized.header("access-control-expose-headers"),
        Some(expose)
    );

    let unavailable = gw
        .get(
            "/api/jobs",
            &[("origin", APP), ("authorization", "Bearer auth-down")],
        )
        .await;
    assert_eq!(unavailable.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(unavailable.code(), "SYS_002");
    assert_eq!(unavailable.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        unavailable.header("access-control-allow-credentials"),
        Some("true")
    );

    // Another origin: the answer, without any CORS header (not even the upstream's).
    let other = gw
        .get(
            "/api/jobs",
            &[
                ("origin", "https://evil.example"),
                ("authorization", "Bearer alice-token"),
            ],
        )
        .await;
    assert_eq!(other.status, StatusCode::OK);
    assert!(cors_headers(&other).is_empty(), "{:?}", other.headers);
}

#[tokio::test]
async fn a_route_without_cors_proxies_preflights_and_passes_headers_through() {
    let svc = Upstream::start(upstream_with_own_cors()).await;
    let gw = start_gateway(two_routes(&svc.url(), cors(&[APP], false))).await;

    let reply = preflight(&gw, "/plain/x", APP, &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(svc.hits(), 1, "proxied");
    assert_eq!(svc.last().method, Method::OPTIONS);
    assert_eq!(cors_headers(&reply), ["access-control-allow-origin"]);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("*"),
        "the upstream's"
    );

    let reply = gw.get("/plain/x", &[("origin", APP)]).await;
    assert_eq!(cors_headers(&reply), ["access-control-allow-origin"]);
    assert!(vary(&reply).is_empty());
}

#[tokio::test]
async fn wildcards_configured_headers_and_max_age() {
    let svc = Upstream::start(upstream_with_own_cors()).await;
    let mut any = cors(&["*"], false);
    any.allow_headers = Some(vec!["Authorization".into(), "X-Trace".into()]);
    any.allow_methods = vec![Method::GET, Method::POST];
    any.max_age = Duration::from_secs(90);
    let mut settings = two_routes(&svc.url(), any);
    let mut credentialed = route("/creds", "svc", None, AuthMode::None, &[]);
    credentialed.cors = Some(cors(&["*"], true));
    settings.routes.push(credentialed);
    let gw = start_gateway(settings).await;

    let reply = preflight(
        &gw,
        "/api/x",
        "https://anyone.example",
        &[("access-control-request-headers", "x-other")],
    )
    .await;
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        reply.header("access-control-allow-methods"),
        Some("GET, POST")
    );
    assert_eq!(
        reply.header("access-control-allow-headers"),
        Some("Authorization, X-Trace")
    );
    assert_eq!(reply.header("access-control-max-age"), Some("90"));
    assert!(
        vary(&reply).is_empty(),
        "* does not vary: {:?}",
        vary(&reply)
    );

    // With credentials, `*` is not allowed by browsers: the origin is echoed.
    let reply = gw
        .get("/creds/x", &[("origin", "https://anyone.example")])
        .await;
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://anyone.example")
    );
    assert_eq!(
        reply.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(vary(&reply), ["Origin"]);
}
