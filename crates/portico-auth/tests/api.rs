//! Black-box tests of the Auth API over real HTTP, written from DESIGN.md's contract: every
//! endpoint's success shape, every error as an envelope with its code and the request's
//! trace id, token expiry on a manual clock, refresh rotation and reuse detection, logout
//! revocation, the JWKS and OpenID configuration, and hostile input.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

#[path = "api_support/mod.rs"]
mod api_support;

use std::time::Duration;

use api_support::{
    ISSUER, PASSWORD, Server, USER_PERMISSION, assert_envelope, assert_error, b64_decode, b64_json,
    decode_jwt, field_names, rfc3339_prefix,
};
use serde_json::{Value, json};

fn access(tokens: &Value) -> &str {
    tokens["access_token"].as_str().unwrap()
}

fn refresh_token(tokens: &Value) -> &str {
    tokens["refresh_token"].as_str().unwrap()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Asserts the register/login/refresh shape for `email`; returns the user object.
#[track_caller]
fn assert_token_response(body: &Value, email: &str) -> Value {
    let user = &body["user"];
    assert!(user["id"].as_str().is_some_and(|s| !s.is_empty()), "{body}");
    assert_eq!(user["email"], email, "{body}");
    assert_eq!(strings(&user["roles"]), vec!["user"], "{body}");
    assert_eq!(
        strings(&user["permissions"]),
        vec![USER_PERMISSION],
        "{body}"
    );
    assert!(user["created_at"].is_string(), "{body}");
    assert!(user.get("name").is_some(), "user.name missing: {body}");
    assert!(user.get("password").is_none() && user.get("password_hash").is_none());
    assert_eq!(body["token_type"], "Bearer", "{body}");
    assert_eq!(body["expires_in"], 900, "{body}");
    let access = body["access_token"].as_str().unwrap();
    let refresh = body["refresh_token"].as_str().unwrap();
    assert!(!refresh.is_empty() && refresh != access, "{body}");
    decode_jwt(access);
    user.clone()
}

#[tokio::test]
async fn register_returns_201_with_tokens_and_user() {
    let server = Server::start().await;
    let response = server
        .register("ada@example.com", PASSWORD, Some("Ada Lovelace"))
        .await;
    assert_eq!(response.status, 201, "{response:?}");
    assert!(
        response
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    );
    let body = &response.json;
    let user = assert_token_response(body, "ada@example.com");
    assert_eq!(user["name"], "Ada Lovelace");
    let created = user["created_at"].as_str().unwrap();

    // The access token carries DESIGN.md's claims.
    let jwt = decode_jwt(access(body));
    let claims = &jwt.claims;
    assert_eq!(claims["sub"], user["id"], "{claims}");
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(strings(&claims["roles"]), vec!["user"]);
    assert_eq!(strings(&claims["permissions"]), vec![USER_PERMISSION]);
    assert_eq!(claims["iss"], ISSUER);
    assert!(!claims["aud"].is_null(), "{claims}");
    assert!(claims["sid"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(claims["jti"].as_str().is_some_and(|s| !s.is_empty()));
    let iat = claims["iat"].as_u64().unwrap();
    let exp = claims["exp"].as_u64().unwrap();
    assert_eq!(exp - iat, 900, "{claims}");
    assert!(
        created.starts_with(&rfc3339_prefix(iat)[..10]),
        "created_at {created} vs iat {iat}"
    );
}

#[tokio::test]
async fn register_twice_is_409_auth_008() {
    let server = Server::start().await;
    server.register_ok("a@x.io").await;
    let again = server.register("a@x.io", PASSWORD, None).await;
    assert_error(&again, 409, "AUTH_008");
    let other_case = server.register("A@x.io", "another password 2", None).await;
    assert_error(&other_case, 409, "AUTH_008");
}

#[tokio::test]
async fn weak_password_is_422_req_001_naming_password() {
    let server = Server::start().await;
    let short = server.register("weak@x.io", "short1", None).await;
    let error = assert_error(&short, 422, "REQ_001");
    assert_eq!(field_names(&error), vec!["password"], "{error}");

    let same = server
        .register("longemail@x.io", "longemail@x.io", None)
        .await;
    let error = assert_error(&same, 422, "REQ_001");
    assert_eq!(field_names(&error), vec!["password"], "{error}");

    // Neither attempt created the account.
    server.register_ok("weak@x.io").await;
}

#[tokio::test]
async fn missing_or_mistyped_field_is_rejected_naming_it() {
    let server = Server::start().await;
    let mistyped = server
        .post("/auth/register", &json!({"email": 5, "password": PASSWORD}))
        .await;
    assert!(matches!(mistyped.status, 400 | 422), "{mistyped:?}");
    let error = assert_error(&mistyped, mistyped.status, "REQ_001");
    assert!(
        field_names(&error).contains(&"email".to_string()),
        "{error}"
    );

    let missing = server
        .post("/auth/login", &json!({"email": "a@x.io"}))
        .await;
    assert!(matches!(missing.status, 400 | 422), "{missing:?}");
    let error = assert_error(&missing, missing.status, "REQ_001");
    assert!(
        field_names(&error).contains(&"password".to_string()),
        "{error}"
    );

    let no_token = server.post("/auth/validate", &json!({})).await;
    assert!(matches!(no_token.status, 400 | 422), "{no_token:?}");
    let error = assert_error(&no_token, no_token.status, "REQ_001");
    assert!(
        field_names(&error).contains(&"token".to_string()),
        "{error}"
    );
}

#[tokio::test]
async fn malformed_json_is_400_req_001() {
    let server = Server::start().await;
    for body in [
        &b"{\"email\": "[..],
        b"not json",
        b"{\"email\":\"a@x.io\",}",
    ] {
        let response = server
            .send("POST", "/auth/register", &[], Some(body.to_vec()))
            .await;
        assert_error(&response, 400, "REQ_001");
    }
}

#[tokio::test]
async fn oversized_body_is_413_req_002() {
    let server = Server::start().await;
    for size in [1024 * 1024 + 1, 65 * 1024] {
        let name = "x".repeat(size);
        let body = json!({"email": "big@x.io", "password": PASSWORD, "name": name});
        let response = server
            .send(
                "POST",
                "/auth/register",
                &[],
                Some(body.to_string().into_bytes()),
            )
            .await;
        assert_error(&response, 413, "REQ_002");
    }
    // Nothing was registered.
    server.register_ok("big@x.io").await;
}

#[tokio::test]
async fn login_ok_and_wrong_password_and_unknown_email_give_the_same_401_auth_005() {
    let server = Server::start().await;
    let registered = server.register_ok("grace@example.com").await;

    let ok = server.login("grace@example.com", PASSWORD).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let user = assert_token_response(&ok.json, "grace@example.com");
    assert_eq!(user["id"], registered["user"]["id"]);
    assert_ne!(refresh_token(&ok.json), refresh_token(&registered));

    let wrong = server.login("grace@example.com", "not the password").await;
    let wrong = assert_error(&wrong, 401, "AUTH_005");
    let unknown = server.login("nobody@example.com", PASSWORD).await;
    let unknown = assert_error(&unknown, 401, "AUTH_005");
    assert_eq!(wrong["message"], unknown["message"]);
    assert_eq!(wrong["details"], unknown["details"]);
}

#[tokio::test]
async fn login_is_throttled_after_five_failures_with_429_backend_003_and_retry_after() {
    let server = Server::start().await;
    server.register_ok("target@example.com").await;
    for attempt in 1..=5 {
        let guess = format!("guess number {attempt}");
        let response = server.login("target@example.com", &guess).await;
        assert_error(&response, 401, "AUTH_005");
    }
    let sixth = server.login("target@example.com", "guess 6").await;
    assert_error(&sixth, 429, "BACKEND_003");
    let retry_after: u64 = sixth
        .header("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After: {sixth:?}"))
        .parse()
        .unwrap();
    assert!(retry_after > 0, "{sixth:?}");

    // Throttled means throttled: the right password is refused too, until Retry-After passes.
    let right = server.login("target@example.com", PASSWORD).await;
    assert_error(&right, 429, "BACKEND_003");
    server.clock.advance(Duration::from_secs(retry_after + 1));
    let later = server.login("target@example.com", PASSWORD).await;
    assert_eq!(later.status, 200, "{later:?}");
}

#[tokio::test]
async fn me_returns_the_user_for_a_bearer_token() {
    let server = Server::start().await;
    let tokens = server.register_ok("me@example.com").await;
    let me = server.get_bearer("/auth/me", access(&tokens)).await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.json, tokens["user"]);
}

#[tokio::test]
async fn me_without_token_is_401_auth_003() {
    let server = Server::start().await;
    let response = server.get("/auth/me").await;
    assert_error(&response, 401, "AUTH_003");
}

#[tokio::test]
async fn me_with_garbage_token_is_401_auth_001() {
    let server = Server::start().await;
    for token in ["garbage", "a.b.c", "eyJhbGciOiJFZERTQSJ9.e30.AAAA"] {
        let response = server.get_bearer("/auth/me", token).await;
        assert_error(&response, 401, "AUTH_001");
    }
}

#[tokio::test]
async fn error_trace_id_is_the_requests_x_request_id() {
    let server = Server::start().await;
    let id = "0af7651916cd43dd8448eb211c80319c";
    let response = server
        .send("GET", "/auth/me", &[("X-Request-ID", id)], None)
        .await;
    let error = assert_error(&response, 401, "AUTH_003");
    assert_eq!(error["trace_id"], id);
    assert_eq!(response.header("x-request-id"), Some(id));
}

#[tokio::test]
async fn unknown_route_is_404_req_003_and_wrong_method_is_405_req_004() {
    let server = Server::start().await;
    assert_error(&server.get("/auth/nothing-here").await, 404, "REQ_003");
    assert_error(&server.get("/auth/register").await, 405, "REQ_004");
}

#[tokio::test]
async fn validate_accepts_access_token() {
    let server = Server::start().await;
    let tokens = server.register_ok("val@example.com").await;
    let response = server.validate(access(&tokens)).await;
    assert_eq!(response.status, 200, "{response:?}");
    let body = &response.json;
    assert_eq!(body["valid"], true, "{body}");
    assert_eq!(body["user_id"], tokens["user"]["id"], "{body}");
    assert_eq!(body["email"], "val@example.com", "{body}");
    assert_eq!(strings(&body["permissions"]), vec![USER_PERMISSION]);
    assert_eq!(strings(&body["roles"]), vec!["user"]);
    assert_eq!(body["token_type"], "user", "{body}");
    let exp = decode_jwt(access(&tokens)).claims["exp"].as_u64().unwrap();
    let expires_at = body["expires_at"].as_str().unwrap();
    assert!(
        expires_at.starts_with(&rfc3339_prefix(exp)),
        "expires_at {expires_at} vs exp {exp}"
    );
}

#[tokio::test]
async fn validate_expired_token_is_401_auth_002() {
    let server = Server::start().await;
    let tokens = server.register_ok("exp@example.com").await;
    server.clock.advance(Duration::from_secs(14 * 60));
    let still = server.validate(access(&tokens)).await;
    assert_eq!(still.status, 200, "{still:?}");
    server.clock.advance(Duration::from_secs(2 * 60));
    let expired = server.validate(access(&tokens)).await;
    assert_error(&expired, 401, "AUTH_002");
    let me = server.get_bearer("/auth/me", access(&tokens)).await;
    assert_error(&me, 401, "AUTH_002");
    // The session itself lives on: the refresh token still works.
    let refreshed = server.refresh(refresh_token(&tokens)).await;
    assert_eq!(refreshed.status, 200, "{refreshed:?}");
}

#[tokio::test]
async fn validate_tampered_token_is_401_auth_001() {
    let server = Server::start().await;
    let tokens = server.register_ok("tamper@example.com").await;
    let jwt = decode_jwt(access(&tokens));
    let [head, payload, signature] = &jwt.parts;

    // Payload changed (escalated permissions), signature kept.
    let mut claims = jwt.claims.clone();
    claims["permissions"] = json!(["*"]);
    claims["roles"] = json!(["admin"]);
    let forged = format!("{head}.{}.{signature}", b64_json(&claims));
    assert_error(&server.validate(&forged).await, 401, "AUTH_001");

    // Signature changed.
    let mut sig = b64_decode(signature);
    sig[0] ^= 0x01;
    let bad_sig = format!(
        "{head}.{payload}.{}",
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &sig)
    );
    assert_error(&server.validate(&bad_sig).await, 401, "AUTH_001");

    // `alg: none`, no signature.
    let mut none = jwt.header.clone();
    none["alg"] = json!("none");
    let unsigned = format!("{}.{payload}.", b64_json(&none));
    assert_error(&server.validate(&unsigned).await, 401, "AUTH_001");

    // Unknown kid.
    let mut unknown = jwt.header.clone();
    unknown["kid"] = json!("no-such-key");
    let unknown_kid = format!("{}.{payload}.{signature}", b64_json(&unknown));
    assert_error(&server.validate(&unknown_kid).await, 401, "AUTH_001");

    // The original still validates.
    assert_eq!(server.validate(access(&tokens)).await.status, 200);
}

#[tokio::test]
async fn refresh_rotates_and_old_token_reuse_revokes_the_family() {
    let server = Server::start().await;
    let first = server.register_ok("rot@example.com").await;
    let r1 = refresh_token(&first);

    let second = server.refresh(r1).await;
    assert_eq!(second.status, 200, "{second:?}");
    assert_token_response(&second.json, "rot@example.com");
    let r2 = refresh_token(&second.json);
    assert_ne!(r1, r2);
    assert_ne!(access(&first), access(&second.json));
    assert_eq!(second.json["user"]["id"], first["user"]["id"]);
    let a2 = access(&second.json).to_string();
    assert_eq!(server.validate(&a2).await.status, 200);

    // Reusing R1 is theft: the whole family dies.
    assert_error(&server.refresh(r1).await, 401, "AUTH_007");
    assert_error(&server.refresh(r2).await, 401, "AUTH_007");
    assert_error(&server.validate(&a2).await, 401, "AUTH_007");
    assert_error(&server.validate(access(&first)).await, 401, "AUTH_007");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_of_one_token_exactly_one_succeeds() {
    let server = std::sync::Arc::new(Server::start().await);
    let tokens = server.register_ok("race@example.com").await;
    let r1 = refresh_token(&tokens).to_string();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let server = server.clone();
        let r1 = r1.clone();
        tasks.push(tokio::spawn(async move { server.refresh(&r1).await }));
    }
    let mut ok = 0;
    for task in tasks {
        let response = task.await.unwrap();
        if response.status == 200 {
            ok += 1;
        } else {
            assert_error(&response, 401, "AUTH_007");
        }
    }
    assert_eq!(ok, 1, "exactly one refresh may win");
}

#[tokio::test]
async fn logout_revokes_the_session_at_once() {
    let server = Server::start().await;
    let tokens = server.register_ok("bye@example.com").await;
    assert_eq!(server.validate(access(&tokens)).await.status, 200);
    let out = server
        .post_bearer(
            "/auth/logout",
            access(&tokens),
            Some(&json!({"refresh_token": refresh_token(&tokens)})),
        )
        .await;
    assert_eq!(out.status, 204, "{out:?}");
    assert!(out.body.is_empty(), "{out:?}");
    assert_error(&server.validate(access(&tokens)).await, 401, "AUTH_007");
    assert_error(
        &server.refresh(refresh_token(&tokens)).await,
        401,
        "AUTH_007",
    );
}

#[tokio::test]
async fn logout_with_only_the_bearer_ends_the_session_too() {
    let server = Server::start().await;
    let tokens = server.register_ok("bye2@example.com").await;
    let out = server
        .post_bearer("/auth/logout", access(&tokens), None)
        .await;
    assert_eq!(out.status, 204, "{out:?}");
    assert_error(&server.validate(access(&tokens)).await, 401, "AUTH_007");
    assert_error(
        &server.refresh(refresh_token(&tokens)).await,
        401,
        "AUTH_007",
    );
}

#[tokio::test]
async fn logout_without_token_is_401_auth_003() {
    let server = Server::start().await;
    let out = server.post("/auth/logout", &json!({})).await;
    assert_error(&out, 401, "AUTH_003");
}

#[tokio::test]
async fn jwks_publishes_an_ed25519_key_and_openid_configuration_points_to_it() {
    let server = Server::start().await;
    let jwks = server.get("/.well-known/jwks.json").await;
    assert_eq!(jwks.status, 200, "{jwks:?}");
    let keys = jwks.json["keys"].as_array().unwrap();
    assert!(!keys.is_empty(), "{}", jwks.json);
    for key in keys {
        assert_eq!(key["kty"], "OKP", "{key}");
        assert_eq!(key["crv"], "Ed25519", "{key}");
        assert_eq!(key["alg"], "EdDSA", "{key}");
        assert!(key["kid"].as_str().is_some_and(|k| !k.is_empty()), "{key}");
        assert!(key["x"].is_string(), "{key}");
        assert!(key.get("d").is_none(), "private key published: {key}");
    }

    // An access token verifies with the published key its `kid` names.
    let tokens = server.register_ok("jwks@example.com").await;
    let jwt = decode_jwt(access(&tokens));
    assert_eq!(jwt.header["alg"], "EdDSA", "{}", jwt.header);
    let kid = jwt.header["kid"].as_str().unwrap();
    let key = keys
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or_else(|| panic!("kid {kid} not in {}", jwks.json));
    let x: [u8; 32] = b64_decode(key["x"].as_str().unwrap()).try_into().unwrap();
    let verifying = ed25519_dalek::VerifyingKey::from_bytes(&x).unwrap();
    let sig: [u8; 64] = b64_decode(&jwt.parts[2]).try_into().unwrap();
    let signed = format!("{}.{}", jwt.parts[0], jwt.parts[1]);
    verifying
        .verify_strict(
            signed.as_bytes(),
            &ed25519_dalek::Signature::from_bytes(&sig),
        )
        .expect("the token verifies with the published key");

    let config = server.get("/.well-known/openid-configuration").await;
    assert_eq!(config.status, 200, "{config:?}");
    let config = &config.json;
    assert_eq!(config["issuer"], server.settings.issuer, "{config}");
    assert!(config["token_endpoint"].is_string(), "{config}");
    let jwks_uri = config["jwks_uri"].as_str().unwrap();
    let path = jwks_uri
        .strip_prefix(ISSUER)
        .unwrap_or_else(|| panic!("jwks_uri {jwks_uri} not under the issuer {ISSUER}"));
    let via_config = server.get(path).await;
    assert_eq!(via_config.status, 200, "{via_config:?}");
    assert_eq!(via_config.json, jwks.json);
}

#[tokio::test]
async fn sql_looking_name_is_stored_and_returned_verbatim() {
    let server = Server::start().await;
    let name = "Robert'); DROP TABLE users;--";
    let response = server
        .register("bobby@example.com", PASSWORD, Some(name))
        .await;
    assert_eq!(response.status, 201, "{response:?}");
    assert_eq!(response.json["user"]["name"], name);
    let me = server.get_bearer("/auth/me", access(&response.json)).await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.json["name"], name);

    let injection = server.login("' OR 1=1 --@example.com", "' OR '1'='1").await;
    assert_error(&injection, 401, "AUTH_005");
    assert_envelope(&injection);
}
