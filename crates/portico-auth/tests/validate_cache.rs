//! The validation cache seen from outside: a cached access token or API key is still
//! refused at once after a logout or a deletion on this instance, within
//! `REVOCATION_RECHECK` after one made by another instance sharing the store, and exactly at
//! its expiry; an API key's owner and roles are read again after `API_KEY_TTL`.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

#[path = "api_support/mod.rs"]
mod api_support;

use std::time::{Duration, SystemTime};

use api_support::{Server, USER_PERMISSION, assert_error, decode_jwt, settings};
use portico_auth::service::{API_KEY_TTL, AuthService, REVOCATION_RECHECK};
use portico_auth::store::Store;
use serde_json::{Value, json};

const MILLI: Duration = Duration::from_millis(1);

fn access(tokens: &Value) -> &str {
    tokens["access_token"].as_str().unwrap()
}

/// Creates an API key as the holder of `access` with `body`; returns (key, id).
async fn create_key(server: &Server, access: &str, body: Value) -> (String, String) {
    let created = server
        .post_bearer("/auth/api-keys", access, Some(&body))
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    (
        created.json["key"].as_str().unwrap().to_owned(),
        created.json["id"].as_str().unwrap().to_owned(),
    )
}

/// Validates `token` twice, asserting 200 both times (the second answer comes from the cache).
async fn validate_twice(server: &Server, token: &str) -> Value {
    let first = server.validate(token).await;
    assert_eq!(first.status, 200, "{first:?}");
    let second = server.validate(token).await;
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(
        first.json, second.json,
        "a cached answer is the same answer"
    );
    second.json
}

/// A second store on the server's SQLite file: "another instance".
async fn other_instance(server: &Server) -> Store {
    Store::open(None, server.data_dir()).await.unwrap()
}

/// The clock's current time as the service sees it.
fn now(server: &Server) -> SystemTime {
    use portico_core::clock::Clock as _;
    server.clock.system_now()
}

#[tokio::test]
async fn in_process_validation_is_the_same_answer_with_the_expiry_as_a_time_and_the_hash() {
    use sha2::{Digest as _, Sha256};
    let server = Server::start().await;
    let tokens = server.register_ok("in-process@example.com").await;
    let token = access(&tokens);
    // Uncached, then cached after the HTTP answer: the same each time.
    let first = server.service.validate_in_process(token).await.unwrap();
    let http = server.validate(token).await;
    assert_eq!(http.status, 200, "{http:?}");
    let again = server.service.validate_in_process(token).await.unwrap();
    for v in [first, again] {
        assert_eq!(serde_json::to_value(v.answer()).unwrap(), http.json);
        let exp = humantime::parse_rfc3339(http.json["expires_at"].as_str().unwrap()).unwrap();
        assert_eq!(v.expires_at, Some(exp));
        assert_eq!(v.digest, Some(Sha256::digest(token.as_bytes()).into()));
    }

    let (key, _) = create_key(&server, token, json!({"name": "in-process"})).await;
    let v = server.service.validate_in_process(&key).await.unwrap();
    let http = server.validate(&key).await;
    assert_eq!(serde_json::to_value(v.answer()).unwrap(), http.json);
    assert_eq!(v.expires_at, None, "a key without expiry");
    assert_eq!(v.digest, Some(Sha256::digest(key.as_bytes()).into()));
    assert_error(&server.validate("not-a-token").await, 401, "AUTH_001");
    assert!(
        server
            .service
            .validate_in_process("not-a-token")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn cached_access_token_is_refused_right_after_logout() {
    let server = Server::start().await;
    let tokens = server.register_ok("logout-cached@example.com").await;
    validate_twice(&server, access(&tokens)).await;
    let me = server.get_bearer("/auth/me", access(&tokens)).await;
    assert_eq!(me.status, 200, "{me:?}");

    let out = server
        .post_bearer("/auth/logout", access(&tokens), None)
        .await;
    assert_eq!(out.status, 204, "{out:?}");
    assert_error(&server.validate(access(&tokens)).await, 401, "AUTH_007");
    let me = server.get_bearer("/auth/me", access(&tokens)).await;
    assert_error(&me, 401, "AUTH_007");
}

#[tokio::test]
async fn cached_access_token_is_refused_after_refresh_token_reuse() {
    let server = Server::start().await;
    let tokens = server.register_ok("reuse-cached@example.com").await;
    validate_twice(&server, access(&tokens)).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(server.refresh(refresh).await.status, 200);
    assert_error(&server.refresh(refresh).await, 401, "AUTH_007");
    assert_error(&server.validate(access(&tokens)).await, 401, "AUTH_007");
}

#[tokio::test]
async fn cached_access_token_expires_exactly_at_exp() {
    let server = Server::start().await;
    let tokens = server.register_ok("exp-cached@example.com").await;
    validate_twice(&server, access(&tokens)).await;
    let exp = decode_jwt(access(&tokens)).claims["exp"].as_u64().unwrap();
    let exp = SystemTime::UNIX_EPOCH + Duration::from_secs(exp);
    server
        .clock
        .advance(exp.duration_since(now(&server)).unwrap() - MILLI);
    assert_eq!(server.validate(access(&tokens)).await.status, 200);
    server.clock.advance(MILLI);
    assert_error(&server.validate(access(&tokens)).await, 401, "AUTH_002");
}

#[tokio::test]
async fn session_revoked_by_another_instance_is_refused_within_the_recheck() {
    let server = Server::start().await;
    let tokens = server.register_ok("foreign-logout@example.com").await;
    validate_twice(&server, access(&tokens)).await;
    let sid = decode_jwt(access(&tokens)).claims["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = other_instance(&server).await;
    assert!(
        other
            .revoke_session(&sid, "logout", now(&server))
            .await
            .unwrap()
    );
    server.clock.advance(REVOCATION_RECHECK);
    assert_error(&server.validate(access(&tokens)).await, 401, "AUTH_007");
}

#[tokio::test]
async fn cached_api_key_is_refused_at_once_when_deleted_here() {
    let server = Server::start().await;
    let tokens = server.register_ok("delete-cached@example.com").await;
    let (key, id) = create_key(&server, access(&tokens), json!({"name": "ci"})).await;
    let (other_key, _) = create_key(&server, access(&tokens), json!({"name": "cd"})).await;
    validate_twice(&server, &key).await;
    validate_twice(&server, &other_key).await;

    let auth = format!("Bearer {}", access(&tokens));
    let deleted = server
        .send(
            "DELETE",
            &format!("/auth/api-keys/{id}"),
            &[("Authorization", &auth)],
            None,
        )
        .await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    assert_error(&server.validate(&key).await, 401, "AUTH_007");
    // The owner's other key is untouched (re-read once, then cached again).
    validate_twice(&server, &other_key).await;
    assert_error(&server.validate(&key).await, 401, "AUTH_007");
}

#[tokio::test]
async fn cached_api_key_deleted_by_another_instance_is_refused_after_the_recheck() {
    let server = Server::start().await;
    let tokens = server.register_ok("foreign-delete@example.com").await;
    let user_id = tokens["user"]["id"].as_str().unwrap().to_owned();
    let (key, id) = create_key(&server, access(&tokens), json!({"name": "ci"})).await;
    validate_twice(&server, &key).await;

    let other = other_instance(&server).await;
    other
        .revoke_api_key(&user_id, &id, now(&server))
        .await
        .unwrap();
    // Within the recheck window this instance may still answer from its cache…
    server.clock.advance(REVOCATION_RECHECK - MILLI);
    assert_eq!(server.validate(&key).await.status, 200, "cached");
    // …but no longer once the window has passed.
    server.clock.advance(MILLI);
    assert_error(&server.validate(&key).await, 401, "AUTH_007");
}

#[tokio::test]
async fn cached_api_key_expires_exactly_at_its_expiry() {
    let server = Server::start().await;
    let tokens = server.register_ok("expiry-cached@example.com").await;
    let (key, _) = create_key(
        &server,
        access(&tokens),
        json!({"name": "short", "expires_in": 1}),
    )
    .await;
    validate_twice(&server, &key).await;
    // The store keeps milliseconds, so the key ends at most 1 ms before now + 1 s.
    server.clock.advance(Duration::from_secs(1) - 2 * MILLI);
    assert_eq!(server.validate(&key).await.status, 200, "cached, unexpired");
    server.clock.advance(2 * MILLI);
    assert_error(&server.validate(&key).await, 401, "AUTH_002");

    // A longer-lived key across re-checks: valid until the last millisecond, then refused.
    let (key, _) = create_key(
        &server,
        access(&tokens),
        json!({"name": "minute", "expires_in": 60}),
    )
    .await;
    validate_twice(&server, &key).await;
    server.clock.advance(Duration::from_secs(60) - 2 * MILLI);
    assert_eq!(server.validate(&key).await.status, 200);
    server.clock.advance(2 * MILLI);
    assert_error(&server.validate(&key).await, 401, "AUTH_002");
}

#[tokio::test]
async fn api_key_answer_follows_a_role_change_after_the_cache_ttl() {
    let server = Server::start().await;
    let tokens = server.register_ok("promoted@example.com").await;
    let (key, _) = create_key(&server, access(&tokens), json!({"name": "all"})).await;
    let before = validate_twice(&server, &key).await;
    assert_eq!(before["roles"], json!(["user"]));
    assert_eq!(before["permissions"], json!([USER_PERMISSION]));

    // `portico admin user grant` run elsewhere on the same store.
    let admin = AuthService::start(
        settings(),
        other_instance(&server).await,
        server.clock.shared(),
    )
    .await
    .unwrap();
    assert!(
        admin
            .admin_grant("promoted@example.com", "admin")
            .await
            .unwrap()
    );
    server.clock.advance(API_KEY_TTL - MILLI);
    let cached = server.validate(&key).await;
    assert_eq!(cached.json["roles"], json!(["user"]), "{cached:?}");
    server.clock.advance(MILLI);
    let after = server.validate(&key).await;
    assert_eq!(after.status, 200, "{after:?}");
    let roles = after.json["roles"].as_array().unwrap();
    assert!(roles.contains(&json!("admin")), "{after:?}");
}
