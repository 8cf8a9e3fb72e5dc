//! API keys (create, shown once, list, delete, scoped permissions, expiry) and service
//! tokens (`POST /auth/token`, client credentials), over real HTTP.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

#[path = "api_support/mod.rs"]
mod api_support;

use std::time::Duration;

use api_support::{Server, USER_PERMISSION, assert_error, settings};
use portico_auth::settings::ServiceClient;
use serde_json::json;

/// `DELETE /auth/api-keys/{id}` as the holder of `access`.
async fn delete_key(server: &Server, access: &str, id: &str) -> api_support::Response {
    let auth = format!("Bearer {access}");
    server
        .send(
            "DELETE",
            &format!("/auth/api-keys/{id}"),
            &[("Authorization", &auth)],
            None,
        )
        .await
}

#[tokio::test]
async fn api_key_is_shown_once_validates_as_api_key_and_dies_when_deleted() {
    let server = Server::start().await;
    let tokens = server.register_ok("keys@example.com").await;
    let access = tokens["access_token"].as_str().unwrap();

    let created = server
        .post_bearer(
            "/auth/api-keys",
            access,
            Some(&json!({"name": "ci", "permissions": [USER_PERMISSION]})),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let key = created.json["key"].as_str().unwrap().to_owned();
    let id = created.json["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("pk_"), "{key}");
    assert_eq!(created.json["permissions"], json!([USER_PERMISSION]));

    let validated = server.validate(&key).await;
    assert_eq!(validated.status, 200, "{validated:?}");
    assert_eq!(validated.json["token_type"], "api_key");
    assert_eq!(validated.json["email"], "keys@example.com");
    assert_eq!(validated.json["permissions"], json!([USER_PERMISSION]));

    let listed = server.get_bearer("/auth/api-keys", access).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json[0]["id"], json!(id));
    assert!(listed.json[0].get("key").is_none(), "no secret in listings");
    assert!(!String::from_utf8_lossy(&listed.body).contains(&key));

    let deleted = delete_key(&server, access, &id).await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    assert_error(&server.validate(&key).await, 401, "AUTH_007");
    let again = delete_key(&server, access, &id).await;
    assert_error(&again, 404, "BACKEND_002");
}

#[tokio::test]
async fn api_key_cannot_carry_a_permission_its_owner_lacks() {
    let server = Server::start().await;
    let tokens = server.register_ok("scoped@example.com").await;
    let access = tokens["access_token"].as_str().unwrap();
    let refused = server
        .post_bearer(
            "/auth/api-keys",
            access,
            Some(&json!({"name": "root", "permissions": ["admin.everything"]})),
        )
        .await;
    assert_error(&refused, 403, "AUTH_006");
    let unnamed = server
        .post_bearer("/auth/api-keys", access, Some(&json!({"name": " "})))
        .await;
    assert_error(&unnamed, 422, "REQ_001");
}

#[tokio::test]
async fn api_key_without_permissions_carries_the_owners_and_expires() {
    let server = Server::start().await;
    let tokens = server.register_ok("expiring@example.com").await;
    let access = tokens["access_token"].as_str().unwrap();
    let created = server
        .post_bearer(
            "/auth/api-keys",
            access,
            Some(&json!({"name": "short", "expires_in": 60})),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let key = created.json["key"].as_str().unwrap();
    let validated = server.validate(key).await;
    assert_eq!(validated.json["permissions"], json!([USER_PERMISSION]));
    server.clock.advance(Duration::from_secs(61));
    assert_error(&server.validate(key).await, 401, "AUTH_002");
    let forged = format!("{}x", &key[..key.len() - 1]);
    assert_error(&server.validate(&forged).await, 401, "AUTH_001");
}

#[tokio::test]
async fn api_keys_need_a_user_token() {
    let server = Server::start().await;
    let missing = server.send("GET", "/auth/api-keys", &[], None).await;
    assert_error(&missing, 401, "AUTH_003");
}

fn with_client() -> portico_auth::settings::AuthSettings {
    let mut settings = settings();
    settings.clients = vec![ServiceClient {
        id: "etl".into(),
        secret: "etl-secret".into(),
        audiences: vec!["realtime".into(), "backend".into()],
    }];
    settings
}

async fn token_form(
    server: &Server,
    form: &str,
    headers: &[(&str, &str)],
) -> api_support::Response {
    let mut all = vec![("Content-Type", "application/x-www-form-urlencoded")];
    all.extend_from_slice(headers);
    server
        .send("POST", "/auth/token", &all, Some(form.as_bytes().to_vec()))
        .await
}

#[tokio::test]
async fn client_credentials_give_a_service_token_that_validates_as_service() {
    let server = Server::start_with(with_client()).await;
    let issued = token_form(
        &server,
        "grant_type=client_credentials&client_id=etl&client_secret=etl-secret",
        &[],
    )
    .await;
    assert_eq!(issued.status, 200, "{issued:?}");
    assert_eq!(issued.json["token_type"], "Bearer");
    assert_eq!(issued.json["expires_in"], 900);
    let token = issued.json["access_token"].as_str().unwrap();
    let validated = server.validate(token).await;
    assert_eq!(validated.status, 200, "{validated:?}");
    assert_eq!(validated.json["token_type"], "service");
    assert_eq!(validated.json["user_id"], "etl");
    let claims = api_support::decode_jwt(token).claims;
    assert_eq!(claims["aud"], json!(["realtime", "backend"]));

    // HTTP Basic works too: base64("etl:etl-secret").
    let basic = token_form(
        &server,
        "grant_type=client_credentials",
        &[("Authorization", "Basic ZXRsOmV0bC1zZWNyZXQ=")],
    )
    .await;
    assert_eq!(basic.status, 200, "{basic:?}");
}

#[tokio::test]
async fn wrong_client_secret_and_other_grants_are_refused() {
    let server = Server::start_with(with_client()).await;
    let wrong = token_form(
        &server,
        "grant_type=client_credentials&client_id=etl&client_secret=nope",
        &[],
    )
    .await;
    assert_error(&wrong, 401, "AUTH_005");
    let unknown = token_form(
        &server,
        "grant_type=client_credentials&client_id=ghost&client_secret=etl-secret",
        &[],
    )
    .await;
    assert_error(&unknown, 401, "AUTH_005");
    let password_grant =
        token_form(&server, "grant_type=password&username=a&password=b", &[]).await;
    assert_error(&password_grant, 422, "REQ_001");
}
