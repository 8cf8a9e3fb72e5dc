//! Signing-key rotation seen by a running server: a rotation made elsewhere on the same
//! store (the admin CLI, another instance) is picked up within `KEY_RELOAD`, new tokens use
//! the new key, and tokens signed by the old key keep working until they expire.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

#[path = "api_support/mod.rs"]
mod api_support;

use std::time::Duration;

use api_support::{Server, decode_jwt, settings};
use portico_auth::service::{AuthService, KEY_RELOAD};
use portico_auth::store::Store;
use portico_core::clock::SystemClock;

#[tokio::test]
async fn rotation_by_another_process_is_picked_up_and_old_tokens_still_verify() {
    let server = Server::start().await;
    let before = server.register_ok("rot@example.com").await;
    let old_token = before["access_token"].as_str().unwrap().to_owned();
    let old_kid = decode_jwt(&old_token).header["kid"].clone();

    // "portico admin jwks rotate" on the same database.
    let store = Store::open(None, server.data_dir()).await.unwrap();
    let admin = AuthService::start(settings(), store, SystemClock::shared())
        .await
        .unwrap();
    let new_kid = admin.rotate_signing_keys().await.unwrap();
    assert_ne!(serde_json::json!(new_kid), old_kid);

    server.clock.advance(KEY_RELOAD + Duration::from_secs(1));
    let refreshed = server
        .refresh(before["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(refreshed.status, 200, "{refreshed:?}");
    let new_token = refreshed.json["access_token"].as_str().unwrap();
    assert_eq!(
        decode_jwt(new_token).header["kid"],
        serde_json::json!(new_kid)
    );

    let jwks = server.get("/.well-known/jwks.json").await.json;
    let kids: Vec<_> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(
        kids,
        [serde_json::json!(new_kid), old_kid],
        "new key first, old still published"
    );
    assert_eq!(server.validate(&old_token).await.status, 200);
    assert_eq!(server.validate(new_token).await.status, 200);
}
