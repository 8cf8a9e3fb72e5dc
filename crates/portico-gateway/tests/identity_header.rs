//! `X-Portico-Identity` over real HTTP: the upstream gets a JWT it can verify with the JWKS
//! the gateway serves, carrying the caller and addressed to that upstream; routes without a
//! caller get none, and a client's own never passes.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use http::StatusCode;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use portico_core::clock::Clock as _;
use portico_gateway::identity::IdentityKey;
use portico_gateway::settings::AuthMode;
use serde_json::Value;
use support::*;

const JWKS: &str = "/.well-known/portico-identity-jwks.json";

fn ok() -> Router {
    Router::new().fallback(|| async { "ok" })
}

/// The gateway's JWKS, fetched over HTTP.
async fn jwks(gw: &TestGateway) -> (JwkSet, Reply) {
    let reply = gw.get(JWKS, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    (serde_json::from_slice(&reply.body).unwrap(), reply)
}

/// Verifies `token` with the JWKS for audience `aud`, at real time (the manual clock starts
/// at the real time).
fn verify(set: &JwkSet, token: &str, aud: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let jwk = set
        .find(header.kid.as_deref().unwrap())
        .expect("kid in the JWKS");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&[aud]);
    validation.set_issuer(&["portico-gateway"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .unwrap()
        .claims
}

#[tokio::test]
async fn the_upstream_gets_a_jwt_that_verifies_with_the_gateways_jwks() {
    let etl = Upstream::start(ok()).await;
    let gw = start_gateway(etl_settings(&etl.url(), default_policy())).await;
    let (set, reply) = jwks(&gw).await;
    assert_eq!(reply.header("cache-control"), Some("public, max-age=300"));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let jwk: Value = serde_json::to_value(&set.keys[0]).unwrap();
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["crv"], "Ed25519");
    assert_eq!(jwk["alg"], "EdDSA");
    assert_eq!(jwk["use"], "sig");

    let reply = gw
        .get(
            "/api/etl/jobs",
            &[
                ("authorization", "Bearer alice-token"),
                ("x-request-id", "req-ident-1"),
            ],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let token = etl.last().header("x-portico-identity").unwrap().to_owned();
    let claims = verify(&set, &token, "etl");
    assert_eq!(claims["iss"], "portico-gateway");
    assert_eq!(claims["aud"], "etl");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["permissions"], serde_json::json!(["etl.access"]));
    assert_eq!(claims["roles"], serde_json::json!(["user"]));
    assert_eq!(claims["token_type"], "user");
    assert!(claims.get("request_id").is_none(), "{claims}");
    let iat = claims["iat"].as_u64().unwrap();
    assert_eq!(claims["exp"].as_u64().unwrap(), iat + 60);
    let now = gw
        .clock
        .system_now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(iat, now);

    // Addressed to one upstream: another's verifier refuses it.
    let key = DecodingKey::from_jwk(&set.keys[0]).unwrap();
    let mut other = Validation::new(Algorithm::EdDSA);
    other.set_audience(&["billing"]);
    assert!(jsonwebtoken::decode::<Value>(&token, &key, &other).is_err());
}

#[tokio::test]
async fn one_token_per_identity_and_upstream_is_reused_for_30_seconds() {
    let etl = Upstream::start(ok()).await;
    let gw = start_gateway(etl_settings(&etl.url(), default_policy())).await;
    let token_for = |who: &'static str| {
        let (gw, etl) = (&gw, &etl);
        async move {
            let bearer = format!("Bearer {who}-token");
            let reply = gw.get("/api/etl/x", &[("authorization", &bearer)]).await;
            assert_eq!(reply.status, StatusCode::OK);
            etl.last().header("x-portico-identity").unwrap().to_owned()
        }
    };
    let iat = |token: &str| {
        jsonwebtoken::dangerous::insecure_decode::<Value>(token)
            .unwrap()
            .claims["iat"]
            .as_u64()
            .unwrap()
    };
    let first = token_for("alice").await;
    gw.clock.advance(Duration::from_secs(29));
    assert_eq!(token_for("alice").await, first, "reused within 30 s");
    let admin = token_for("admin").await;
    assert_ne!(admin, first, "another identity gets its own");
    assert_eq!(
        jsonwebtoken::dangerous::insecure_decode::<Value>(&admin)
            .unwrap()
            .claims["sub"],
        "admin"
    );
    gw.clock.advance(Duration::from_secs(1));
    let renewed = token_for("alice").await;
    assert_ne!(renewed, first, "a new one after 30 s");
    assert_eq!(iat(&renewed), iat(&first) + 30);
}

#[tokio::test]
async fn iat_follows_the_injected_clock() {
    let etl = Upstream::start(ok()).await;
    let gw = start_gateway(etl_settings(&etl.url(), default_policy())).await;
    let before = gw.clock.system_now();
    gw.clock.advance(Duration::from_secs(3600));
    gw.get("/api/etl/x", &[("authorization", "Bearer alice-token")])
        .await;
    let token = etl.last().header("x-portico-identity").unwrap().to_owned();
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(&token)
        .unwrap()
        .claims;
    let before = before.duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(claims["iat"].as_u64().unwrap(), before + 3600);
}

#[tokio::test]
async fn none_on_open_routes_or_for_anonymous_callers_and_a_clients_own_never_passes() {
    let svc = Upstream::start(ok()).await;
    let gw = start_gateway(settings(
        vec![upstream("svc", &svc.url())],
        vec![
            route("/open", "svc", None, AuthMode::None, &[]),
            route("/maybe", "svc", None, AuthMode::Optional, &[]),
        ],
    ))
    .await;
    let (set, _) = jwks(&gw).await;
    let forged = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhZG1pbiJ9.c2ln";

    for (path, auth) in [
        ("/open/x", None),
        ("/open/x", Some("Bearer alice-token")),
        ("/maybe/x", None),
    ] {
        let mut headers = vec![("x-portico-identity", forged)];
        if let Some(auth) = auth {
            headers.push(("authorization", auth));
        }
        let reply = gw.get(path, &headers).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(
            svc.last().header("x-portico-identity"),
            None,
            "{path} {auth:?}"
        );
    }

    gw.get(
        "/maybe/x",
        &[
            ("authorization", "Bearer bob-token"),
            ("x-portico-identity", forged),
        ],
    )
    .await;
    let seen = svc.last();
    let all: Vec<_> = seen.headers.get_all("x-portico-identity").iter().collect();
    assert_eq!(all.len(), 1, "the client's one is replaced, not added to");
    let claims = verify(&set, all[0].to_str().unwrap(), "svc");
    assert_eq!(claims["sub"], "bob");
}

#[tokio::test]
async fn the_configured_key_signs_and_is_the_one_published() {
    let key = IdentityKey::from_seed(&[9u8; 32]);
    let etl = Upstream::start(ok()).await;
    let mut settings = etl_settings(&etl.url(), default_policy());
    settings.identity_key = Some(key.clone());
    let gw = start_gateway(settings).await;
    let (set, _) = jwks(&gw).await;
    assert_eq!(set.keys.len(), 1);
    assert_eq!(set.keys[0].common.key_id.as_deref(), Some(key.kid()));

    gw.get("/api/etl/x", &[("authorization", "Bearer alice-token")])
        .await;
    let token = etl.last().header("x-portico-identity").unwrap().to_owned();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.kid.as_deref(), Some(key.kid()));
    verify(&set, &token, "etl");
}

#[tokio::test]
async fn a_route_cannot_shadow_the_jwks() {
    let svc = Upstream::start(ok()).await;
    let gw = start_gateway(settings(
        vec![upstream("svc", &svc.url())],
        vec![route("/.well-known", "svc", None, AuthMode::None, &[])],
    ))
    .await;
    let (set, _) = jwks(&gw).await;
    assert_eq!(set.keys.len(), 1);
    assert_eq!(svc.hits(), 0);
    // Other paths under the prefix are still proxied.
    assert_eq!(
        gw.get("/.well-known/other", &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(svc.hits(), 1);
}
