//! Identity at the edge against a real auth in another "process": `RemoteAuthenticator`
//! talking HTTP to a `portico-auth` server on 127.0.0.1, both on one `ManualClock`.
//!
//! Tokens: accepted with their identity, expired (AUTH_002), tampered / foreign / `alg`
//! tricks (AUTH_001, auth never asked), a key rotated on auth (JWKS refetched, at most once
//! per 10 s), a logout seen within the 2 s recheck, service tokens checked locally.
//! API keys: asked once and cached until min(5 min, expiry), deletion seen at the cache's
//! end, refusals kept 1 s. Auth down (seed 000 scenario 3): confirmed tokens and cached keys
//! pass, never-seen credentials get 503 SYS_002 with Retry-After; auth back: they pass.
//! Auth hung, failing or answering too much: 503 within the request timeout.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod identity_support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use identity_support::{
    AuthServer, CapturedLogs, ISSUER, USER_PERMISSION, assert_refused, auth_settings, black_hole,
    fake_auth, ok,
};
use portico_core::error::ErrorCode;
use portico_gateway::identity::{
    Authenticator, CredentialKind, Identity, RemoteAuthSettings, RemoteAuthenticator, credential_id,
};
use serde_json::{Value, json};

const SECOND: Duration = Duration::from_secs(1);
const MILLI: Duration = Duration::from_millis(1);

/// A JWT's header and claims, decoded.
fn parts(token: &str) -> (Value, Value, String) {
    let p: Vec<&str> = token.split('.').collect();
    assert_eq!(p.len(), 3);
    let decode = |s: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap();
    (decode(p[0]), decode(p[1]), p[2].to_owned())
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

#[tokio::test]
async fn a_user_token_is_accepted_with_its_identity_and_confirmed_once_per_recheck() {
    let auth = AuthServer::start().await;
    let gateway = auth.authenticator();
    let tokens = auth.register("ada@example.com").await;
    let (_, claims, _) = parts(&tokens.access_token);

    let identity = ok(&gateway, &tokens.access_token).await;
    assert_eq!(
        identity,
        Identity {
            user_id: tokens.user.id.clone(),
            email: "ada@example.com".into(),
            permissions: vec![USER_PERMISSION.into()],
            roles: vec!["user".into()],
            kind: CredentialKind::User,
            credential_id: credential_id(&tokens.access_token),
            expires_at: Some(UNIX_EPOCH + Duration::from_secs(claims["exp"].as_u64().unwrap())),
        }
    );
    assert_eq!(identity.credential_id.len(), 16);
    assert_eq!((auth.jwks_fetches(), auth.validations()), (1, 1));

    // Within the recheck: from memory, auth not asked.
    auth.clock.advance(2 * SECOND - MILLI);
    for _ in 0..5 {
        assert_eq!(ok(&gateway, &tokens.access_token).await, identity);
    }
    assert_eq!((auth.jwks_fetches(), auth.validations()), (1, 1));
    // Then confirmed again, once.
    auth.clock.advance(MILLI);
    ok(&gateway, &tokens.access_token).await;
    ok(&gateway, &tokens.access_token).await;
    assert_eq!((auth.jwks_fetches(), auth.validations()), (1, 2));
    assert!(gateway.auth_reachable());
}

#[tokio::test]
async fn an_expired_token_is_auth_002_whether_seen_before_or_not() {
    let auth = AuthServer::start().await;
    let gateway = auth.authenticator();
    let seen = auth.register("seen@example.com").await.access_token;
    let unseen = auth.register("unseen@example.com").await.access_token;
    ok(&gateway, &seen).await;
    let validations = auth.validations();

    let exp = parts(&seen).1["exp"].as_u64().unwrap();
    let now = {
        use portico_core::clock::Clock as _;
        auth.clock.system_now()
    };
    let to_exp = (UNIX_EPOCH + Duration::from_secs(exp))
        .duration_since(now)
        .unwrap();
    // One millisecond before exp (iat was floored to the second): still good.
    auth.clock.advance(to_exp - MILLI);
    ok(&gateway, &seen).await;
    auth.clock.advance(MILLI);
    let e = assert_refused(gateway.authenticate(&seen).await, ErrorCode::Auth002);
    assert_eq!(e.status(), 401);
    assert_refused(gateway.authenticate(&unseen).await, ErrorCode::Auth002);
    // Expiry is judged here; auth was asked only for the recheck of `seen` before exp.
    assert_eq!(auth.validations(), validations + 1);
}

#[tokio::test]
async fn tampered_forged_and_foreign_tokens_are_auth_001_without_asking_auth() {
    let auth = AuthServer::start().await;
    let gateway = auth.authenticator();
    let token = auth.register("eve@example.com").await.access_token;
    let (header, claims, signature) = parts(&token);
    let p: Vec<&str> = token.split('.').collect();

    // Claims changed, signature kept.
    let mut admin = claims.clone();
    admin["permissions"] = json!(["*"]);
    let escalated = format!("{}.{}.{}", p[0], b64(&admin), signature);
    // Signature changed in the middle.
    let mut sig: Vec<char> = signature.chars().collect();
    sig[20] = if sig[20] == 'A' { 'B' } else { 'A' };
    let bad_signature = format!("{}.{}.{}", p[0], p[1], sig.into_iter().collect::<String>());
    // alg none, and HS256 "signed" with the public key, under the real kid.
    let kid = header["kid"].as_str().unwrap();
    let none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), p[1]);
    let hs256 = format!(
        "{}.{}.{}",
        b64(&json!({"alg": "HS256", "typ": "JWT", "kid": kid})),
        p[1],
        signature
    );
    let no_kid = format!(
        "{}.{}.{}",
        b64(&json!({"alg": "EdDSA", "typ": "JWT"})),
        p[1],
        signature
    );
    for forged in [
        escalated.as_str(),
        &bad_signature,
        &none,
        &hs256,
        &no_kid,
        "a.b.c",
        "..",
        "not-a-token-nor-a-key",
        &format!("{token}x"),
    ] {
        let e = assert_refused(gateway.authenticate(forged).await, ErrorCode::Auth001);
        assert_eq!(e.status(), 401, "{forged}");
    }
    assert_eq!(auth.validations(), 0, "auth is not asked about forgeries");

    // The genuine token, for another issuer or audience.
    let foreign_issuer = auth.authenticator_with(RemoteAuthSettings {
        issuer: "https://someone-else.test".into(),
        ..auth.gateway_settings()
    });
    assert_refused(
        foreign_issuer.authenticate(&token).await,
        ErrorCode::Auth001,
    );
    let other_audience = auth.authenticator_with(RemoteAuthSettings {
        audiences: vec!["billing".into()],
        ..auth.gateway_settings()
    });
    assert_refused(
        other_audience.authenticate(&token).await,
        ErrorCode::Auth001,
    );
    assert_eq!(auth.validations(), 0);
    // And it is fine as it is.
    ok(&gateway, &token).await;
}

#[tokio::test]
async fn a_key_rotated_on_auth_is_fetched_at_most_once_per_10s() {
    let auth = AuthServer::start().await;
    let gateway = auth.authenticator();
    let before = auth.register("before@example.com").await.access_token;
    ok(&gateway, &before).await;
    assert_eq!(auth.jwks_fetches(), 1);

    let new_kid = auth.service().rotate_signing_keys().await.unwrap();
    let after = auth.register("after@example.com").await.access_token;
    assert_eq!(parts(&after).0["kid"], json!(new_kid));
    assert_ne!(parts(&before).0["kid"], json!(new_kid));

    // The JWKS was fetched less than 10 s ago: not again, the new kid is unknown for now.
    assert_refused(gateway.authenticate(&after).await, ErrorCode::Auth001);
    // Nor for a flood of forged kids.
    let (_, claims, signature) = parts(&after);
    for i in 0..20 {
        let forged = format!(
            "{}.{}.{}",
            b64(&json!({"alg": "EdDSA", "typ": "JWT", "kid": format!("forged-{i}")})),
            b64(&claims),
            signature
        );
        assert_refused(gateway.authenticate(&forged).await, ErrorCode::Auth001);
    }
    assert_eq!(auth.jwks_fetches(), 1);

    auth.clock.advance(10 * SECOND);
    let identity = ok(&gateway, &after).await;
    assert_eq!(identity.email, "after@example.com");
    assert_eq!(auth.jwks_fetches(), 2);
    // The old key is still published while its tokens live.
    ok(&gateway, &before).await;
    let a_second_before = auth.register("before2@example.com").await.access_token;
    ok(&gateway, &a_second_before).await;
    assert_eq!(auth.jwks_fetches(), 2);
}

#[tokio::test]
async fn a_logout_is_seen_within_the_revocation_recheck() {
    let auth = AuthServer::start().await;
    let gateway = auth.authenticator();
    let token = auth.register("bye@example.com").await.access_token;
    ok(&gateway, &token).await;
    assert_eq!(auth.validations(), 1);

    auth.logout(&token).await;
    // Confirmed less than 2 s ago: still served from memory (the documented window).
    auth.clock.advance(2 * SECOND - MILLI);
    ok(&gateway, &token).await;
    assert_eq!(auth.validations(), 1);

    auth.clock.advance(MILLI);
    let e = assert_refused(gateway.authenticate(&token).await, ErrorCode::Auth007);
    assert_eq!(e.status(), 401);
    assert_eq!(auth.validations(), 2);
    // The refusal is kept for 1 s, then auth is asked again.
    auth.clock.advance(SECOND - MILLI);
    assert_refused(gateway.authenticate(&token).await, ErrorCode::Auth007);
    assert_eq!(auth.validations(), 2);
    auth.clock.advance(MILLI);
    assert_refused(gateway.authenticate(&token).await, ErrorCode::Auth007);
    assert_eq!(auth.validations(), 3);
}

#[tokio::test]
async fn service_tokens_are_verified_locally_for_the_audiences_configured() {
    let mut settings = auth_settings();
    settings.clients = vec![portico_auth::settings::ServiceClient {
        id: "etl".into(),
        secret: "etl-client-secret-for-tests".into(),
        audiences: vec!["etl".into()],
    }];
    let mut auth = AuthServer::start_with(settings).await;
    let token = auth
        .service()
        .service_token("etl", "etl-client-secret-for-tests")
        .await
        .unwrap()
        .access_token;

    // Default audiences: users only.
    let users_only = auth.authenticator();
    assert_refused(users_only.authenticate(&token).await, ErrorCode::Auth001);

    let gateway = auth.authenticator_with(RemoteAuthSettings {
        audiences: vec!["portico".into(), "etl".into()],
        ..auth.gateway_settings()
    });
    let identity = ok(&gateway, &token).await;
    assert_eq!(identity.kind, CredentialKind::Service);
    assert_eq!(identity.user_id, "etl");
    assert_eq!(identity.email, "");
    // No session, nothing to revoke: auth is not asked, even later or when it is down.
    assert_eq!(auth.validations(), 0);
    auth.stop().await;
    auth.clock.advance(60 * SECOND);
    assert_eq!(ok(&gateway, &token).await, identity);
}

#[tokio::test]
async fn an_api_key_is_asked_once_and_cached_for_5_minutes() {
    let auth = AuthServer::start().await;
    let gateway = auth.authenticator();
    let tokens = auth.register("keys@example.com").await;
    let key = auth.api_key(&tokens.access_token, None).await.key;

    let identity = ok(&gateway, &key).await;
    assert_eq!(
        identity,
        Identity {
            user_id: tokens.user.id.clone(),
            email: "keys@example.com".into(),
            permissions: vec![USER_PERMISSION.into()],
            roles: vec!["user".into()],
            kind: CredentialKind::ApiKey,
            credential_id: credential_id(&key),
            expires_at: None,
        }
    );
    assert!(!identity.credential_id.contains(&key[3..13]));
    for _ in 0..20 {
        assert_eq!(ok(&gateway, &key).await, identity);
    }
    assert_eq!(auth.validations(), 1);
    assert_eq!(auth.jwks_fetches(), 0);

    auth.clock.advance(5 * 60 * SECOND - MILLI);
    ok(&gateway, &key).await;
    assert_eq!(auth.validations(), 1);
    auth.clock.advance(MILLI);
    ok(&gateway, &key).await;
    ok(&gateway, &key).await;
    assert_eq!(auth.validations(), 2);
}

#[tokio::test]
async fn a_deleted_api_key_is_refused_when_its_cache_entry_ends() {
    let auth = AuthServer::start().await;
    let gateway = auth.authenticator();
    let tokens = auth.register("deleter@example.com").await;
    let created = auth.api_key(&tokens.access_token, None).await;
    ok(&gateway, &created.key).await;

    auth.service()
        .delete_api_key(&tokens.access_token, &created.id)
        .await
        .unwrap();
    auth.clock.advance(5 * 60 * SECOND - MILLI);
    ok(&gateway, &created.key).await;
    auth.clock.advance(MILLI);
    let e = assert_refused(gateway.authenticate(&created.key).await, ErrorCode::Auth007);
    assert!(e.message().contains("API key deleted"), "{e:?}");
    assert_eq!(auth.validations(), 2);
    // Refusals are kept 1 s.
    assert_refused(gateway.authenticate(&created.key).await, ErrorCode::Auth007);
    assert_eq!(auth.validations(), 2);
    auth.clock.advance(SECOND);
    assert_refused(gateway.authenticate(&created.key).await, ErrorCode::Auth007);
    assert_eq!(auth.validations(), 3);
}

#[tokio::test]
async fn an_api_key_is_never_cached_past_its_expiry() {
    let auth = AuthServer::start().await;
    let gateway = auth.authenticator();
    let tokens = auth.register("shortkey@example.com").await;
    let key = auth.api_key(&tokens.access_token, Some(60)).await.key;
    let identity = ok(&gateway, &key).await;
    let expires_at = identity.expires_at.unwrap();
    let now = {
        use portico_core::clock::Clock as _;
        auth.clock.system_now()
    };
    let left = expires_at.duration_since(now).unwrap();
    assert!(left > 59 * SECOND && left <= 60 * SECOND, "{left:?}");

    auth.clock.advance(left - MILLI);
    ok(&gateway, &key).await;
    assert_eq!(auth.validations(), 1);
    auth.clock.advance(MILLI);
    assert_refused(gateway.authenticate(&key).await, ErrorCode::Auth002);
    assert_eq!(auth.validations(), 2);
}

#[tokio::test]
async fn unknown_and_malformed_api_keys() {
    let auth = AuthServer::start().await;
    let gateway = auth.authenticator();
    // No API key's shape: refused here.
    for junk in ["hello", "pk_", "pk_abcdefghij_has spaces in it", "Bearer x"] {
        assert_refused(gateway.authenticate(junk).await, ErrorCode::Auth001);
    }
    assert_eq!(auth.validations(), 0);
    // The right shape, unknown to auth.
    let unknown = format!("pk_abcdefghij_{}", "A".repeat(43));
    assert_refused(gateway.authenticate(&unknown).await, ErrorCode::Auth001);
    assert_refused(gateway.authenticate(&unknown).await, ErrorCode::Auth001);
    assert_eq!(auth.validations(), 1);
}

/// Seed 000, scenario 3: auth goes down; cached validations still pass and uncached ones
/// get 503; auth comes back and they pass again.
#[tokio::test]
async fn auth_down_cached_validations_pass_and_uncached_ones_get_503() {
    let mut auth = AuthServer::start().await;
    let gateway = auth.authenticator();
    let alice = auth.register("alice@example.com").await;
    let confirmed = alice.access_token.clone();
    let key = auth.api_key(&alice.access_token, None).await.key;
    let unseen_key = auth.api_key(&alice.access_token, None).await.key;
    let unseen = auth.register("bob@example.com").await.access_token;
    let alice_identity = ok(&gateway, &confirmed).await;
    let key_identity = ok(&gateway, &key).await;
    assert!(gateway.auth_reachable());

    auth.stop().await;
    // Past the revocation recheck, so the token's confirmation is stale.
    auth.clock.advance(3 * SECOND);
    let validations = auth.validations();

    assert_eq!(ok(&gateway, &confirmed).await, alice_identity);
    assert!(!gateway.auth_reachable());
    assert_eq!(ok(&gateway, &key).await, key_identity);

    for never_seen in [&unseen, &unseen_key] {
        let e = assert_refused(gateway.authenticate(never_seen).await, ErrorCode::Sys002);
        assert_eq!(e.status(), 503);
        assert_eq!(e.retry_after(), Some(5 * SECOND));
    }
    // What is invalid on its face is still 401, not 503.
    assert_refused(gateway.authenticate("a.b.c").await, ErrorCode::Auth001);
    assert_refused(gateway.authenticate("hello").await, ErrorCode::Auth001);
    assert_eq!(auth.validations(), validations, "auth was down");

    auth.restart().await;
    // For 1 s after a failed call auth is not tried again; then it is found back.
    assert_refused(gateway.authenticate(&unseen).await, ErrorCode::Sys002);
    auth.clock.advance(SECOND);
    let bob = ok(&gateway, &unseen).await;
    assert_eq!(bob.email, "bob@example.com");
    assert!(gateway.auth_reachable());
    ok(&gateway, &unseen_key).await;
    ok(&gateway, &confirmed).await;
}

#[tokio::test]
async fn auth_going_down_and_coming_back_is_logged_once_each() {
    let logs = CapturedLogs::global();
    let mut auth = AuthServer::start().await;
    let gateway = auth.authenticator();
    let url = auth.url();
    let dave = auth.register("dave@example.com").await;
    let keys = [
        auth.api_key(&dave.access_token, None).await.key,
        auth.api_key(&dave.access_token, None).await.key,
    ];
    auth.stop().await;
    for _ in 0..5 {
        assert_refused(gateway.authenticate(&keys[0]).await, ErrorCode::Sys002);
        assert_refused(
            gateway.authenticate(&dave.access_token).await,
            ErrorCode::Sys002,
        );
        // Past the probe interval: each round makes real calls, and fails.
        auth.clock.advance(SECOND);
    }
    let down = logs.lines_with(&["auth is unreachable", &url]);
    assert_eq!(down.len(), 1, "{down:?}");
    assert!(down[0].contains("WARN"), "{down:?}");
    assert!(
        !down.iter().any(|l| l.contains("pk_")),
        "no key in logs: {down:?}"
    );

    auth.restart().await;
    auth.clock.advance(SECOND);
    for key in &keys {
        ok(&gateway, key).await;
    }
    ok(&gateway, &dave.access_token).await;
    let back = logs.lines_with(&["auth is reachable again", &url]);
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!(
        logs.lines_with(&["auth is unreachable", &url]).len(),
        1,
        "not logged again"
    );
}

#[tokio::test]
async fn while_auth_is_down_cached_entries_still_end_on_time() {
    let mut auth = AuthServer::start().await;
    let gateway = auth.authenticator();
    let alice = auth.register("carol@example.com").await;
    let key = auth.api_key(&alice.access_token, None).await.key;
    ok(&gateway, &alice.access_token).await;
    ok(&gateway, &key).await;
    auth.stop().await;

    // The key's 5 minutes end: nothing cached, auth down.
    auth.clock.advance(5 * 60 * SECOND);
    ok(&gateway, &alice.access_token).await;
    assert_refused(gateway.authenticate(&key).await, ErrorCode::Sys002);
    // The token's exp (15 min): expired, told by the token itself.
    auth.clock.advance(10 * 60 * SECOND);
    assert_refused(
        gateway.authenticate(&alice.access_token).await,
        ErrorCode::Auth002,
    );
}

#[tokio::test]
async fn a_jwt_with_no_jwks_yet_and_auth_down_is_503() {
    let mut auth = AuthServer::start().await;
    let gateway = auth.authenticator();
    let token = auth.register("early@example.com").await.access_token;
    auth.stop().await;
    assert_refused(gateway.authenticate(&token).await, ErrorCode::Sys002);
    // Fetch retries are spaced 1 s apart.
    auth.restart().await;
    assert_refused(gateway.authenticate(&token).await, ErrorCode::Sys002);
    auth.clock.advance(SECOND);
    ok(&gateway, &token).await;
    assert_eq!(auth.jwks_fetches(), 1);
}

#[tokio::test]
async fn a_hung_auth_costs_one_request_timeout_then_503() {
    let (addr, _hole) = black_hole().await;
    let clock = portico_core::clock::ManualClock::new();
    let gateway = RemoteAuthenticator::new(
        RemoteAuthSettings {
            request_timeout: Duration::from_millis(300),
            ..RemoteAuthSettings::new(format!("http://{addr}"), ISSUER)
        },
        clock.shared(),
    )
    .unwrap();
    let key = format!("pk_abcdefghij_{}", "A".repeat(43));
    let started = Instant::now();
    assert_refused(gateway.authenticate(&key).await, ErrorCode::Sys002);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert!(!gateway.auth_reachable());
    // Not tried again for 1 s: the next ones fail at once instead of waiting.
    let started = Instant::now();
    for _ in 0..10 {
        assert_refused(gateway.authenticate(&key).await, ErrorCode::Sys002);
    }
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    // Then one probe, which waits the timeout again.
    clock.advance(SECOND);
    let started = Instant::now();
    assert_refused(gateway.authenticate(&key).await, ErrorCode::Sys002);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn auth_failing_or_answering_too_much_is_503() {
    use axum::routing::post;
    let key = format!("pk_abcdefghij_{}", "A".repeat(43));
    let clock = portico_core::clock::ManualClock::new();
    let gateway_for = |url: String| {
        RemoteAuthenticator::new(RemoteAuthSettings::new(url, ISSUER), clock.shared()).unwrap()
    };

    let failing = axum::Router::new().route(
        "/auth/validate",
        post(|| async { (http::StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
    );
    let (url, _task) = fake_auth(failing).await;
    assert_refused(gateway_for(url).authenticate(&key).await, ErrorCode::Sys002);

    let huge = axum::Router::new().route(
        "/auth/validate",
        post(|| async {
            let padding = "x".repeat(2 * 1024 * 1024);
            axum::Json(json!({
                "valid": true, "user_id": "u", "email": "", "permissions": [], "roles": [],
                "token_type": "api_key", "expires_at": null, "padding": padding,
            }))
        }),
    );
    let (url, _task) = fake_auth(huge).await;
    assert_refused(gateway_for(url).authenticate(&key).await, ErrorCode::Sys002);

    // A sane answer from the same kind of fake is accepted, so the two above failed for
    // what they are.
    let fine = axum::Router::new().route(
        "/auth/validate",
        post(|| async {
            axum::Json(json!({
                "valid": true, "user_id": "u1", "email": "", "permissions": ["a"],
                "roles": [], "token_type": "api_key", "expires_at": "2999-01-01T00:00:00.000Z",
            }))
        }),
    );
    let (url, _task) = fake_auth(fine).await;
    let identity = ok(&gateway_for(url), &key).await;
    assert_eq!(identity.user_id, "u1");
    assert_eq!(identity.kind, CredentialKind::ApiKey);
    assert_eq!(
        identity.expires_at,
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(32_472_144_000))
    );
}

#[tokio::test]
async fn an_answer_with_an_unreadable_expiry_is_accepted_but_not_cached() {
    use axum::routing::post;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().route(
        "/auth/validate",
        post(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                axum::Json(json!({
                    "valid": true, "user_id": "u2", "email": "", "permissions": [],
                    "roles": [], "token_type": "api_key", "expires_at": "next tuesday",
                }))
            }
        }),
    );
    let (url, _task) = fake_auth(app).await;
    let clock = portico_core::clock::ManualClock::new();
    let gateway =
        RemoteAuthenticator::new(RemoteAuthSettings::new(url, ISSUER), clock.shared()).unwrap();
    let key = format!("pk_abcdefghij_{}", "A".repeat(43));
    for _ in 0..3 {
        let identity = ok(&gateway, &key).await;
        assert_eq!(
            (identity.user_id.as_str(), identity.expires_at),
            ("u2", None)
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}
