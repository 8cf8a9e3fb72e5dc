//! OAuth login through the HTTP API against a local plain-OAuth2 (GitHub-style) provider
//! written for these tests: the parameters Portico sends, PKCE checked by the provider, the
//! redirect allow-list, forged and replayed states, unverified emails, provider errors and
//! an unreachable provider. The same flow against a real OpenID provider is in
//! `oauth_oidc_provider.rs`.
#![allow(clippy::unwrap_used)]

mod api_support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use api_support::{PASSWORD, Server, settings};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portico_auth::oauth::{Endpoints, ProviderSettings};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const APP: &str = "http://127.0.0.1:3000/";

/// What the fake provider knows: the challenge of the login in flight and who signs in.
#[derive(Default)]
struct Fake {
    challenge: Option<String>,
    user: Value,
    token_calls: usize,
}

type Shared = Arc<Mutex<Fake>>;

/// A GitHub-style provider on 127.0.0.1:0: `/token` checks the code and the PKCE verifier
/// against the challenge of the authorization request, `/user` answers with `user`.
async fn fake_provider() -> (String, Shared) {
    let fake: Shared = Arc::default();
    async fn token(State(fake): State<Shared>, body: axum::body::Bytes) -> Json<Value> {
        let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap();
        let mut fake = fake.lock().unwrap();
        fake.token_calls += 1;
        let verifier = form.get("code_verifier").cloned().unwrap_or_default();
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let ok = form.get("grant_type").map(String::as_str) == Some("authorization_code")
            && form.get("code").map(String::as_str) == Some("good-code")
            && form.get("client_id").map(String::as_str) == Some("portico")
            && form.get("client_secret").map(String::as_str) == Some("s3cret")
            && fake.challenge.as_deref() == Some(challenge.as_str());
        // GitHub answers 200 with an error body.
        Json(if ok {
            json!({"access_token": "provider-access", "token_type": "bearer"})
        } else {
            json!({"error": "bad_verification_code"})
        })
    }
    async fn user(State(fake): State<Shared>, headers: axum::http::HeaderMap) -> Json<Value> {
        assert_eq!(headers["authorization"], "Bearer provider-access");
        Json(fake.lock().unwrap().user.clone())
    }
    let app = Router::new()
        .route("/token", post(token))
        .route("/user", get(user))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, fake)
}

fn provider(name: &str, base: &str) -> ProviderSettings {
    ProviderSettings {
        name: name.into(),
        client_id: "portico".into(),
        client_secret: "s3cret".into(),
        endpoints: Endpoints::Explicit {
            authorize_url: format!("{base}/authorize"),
            token_url: format!("{base}/token"),
            userinfo_url: format!("{base}/user"),
        },
    }
}

async fn server_with(base: &str) -> Server {
    let mut settings = settings();
    settings.redirect_allowlist = vec![APP.into(), "https://app.example/cb".into()];
    settings.providers = vec![provider("acme", base)];
    Server::start_with(settings).await
}

fn query_of(url: &str) -> HashMap<String, String> {
    let url = url::Url::parse(url).unwrap();
    url.query_pairs().into_owned().collect()
}

fn fragment_of(url: &str) -> HashMap<String, String> {
    let url = url::Url::parse(url).unwrap();
    url::form_urlencoded::parse(url.fragment().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Starts a login and returns the `state` the provider was sent (and tells the fake
/// provider the PKCE challenge).
async fn start(server: &Server, fake: &Shared, redirect: &str) -> String {
    let res = server
        .get(&format!(
            "/auth/oauth?provider=acme&redirect_uri={}",
            encode(redirect)
        ))
        .await;
    assert_eq!(res.status, 302, "{:?}", res.json);
    let location = res.header("location").unwrap().to_owned();
    let q = query_of(&location);
    fake.lock().unwrap().challenge = q.get("code_challenge").cloned();
    q["state"].clone()
}

async fn callback(server: &Server, code: &str, state: &str) -> api_support::Response {
    server
        .get(&format!(
            "/auth/callback?code={}&state={}",
            encode(code),
            encode(state)
        ))
        .await
}

#[tokio::test]
async fn authorization_request_carries_state_pkce_s256_and_our_callback() {
    let (base, _fake) = fake_provider().await;
    let server = server_with(&base).await;
    let res = server
        .get(&format!(
            "/auth/oauth?provider=acme&redirect_uri={}",
            encode(APP)
        ))
        .await;
    assert_eq!(res.status, 302);
    let location = res.header("location").unwrap();
    assert!(
        location.starts_with(&format!("{base}/authorize?")),
        "{location}"
    );
    let q = query_of(location);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "portico");
    assert_eq!(q["redirect_uri"], "https://auth.portico.test/auth/callback");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43, "base64url of a SHA-256");
    assert!(q["state"].len() >= 40, "state has 256 bits: {}", q["state"]);
    assert!(!q.contains_key("nonce"), "plain OAuth2 sends no nonce");
    // Two logins never share a state or a challenge.
    let again = server
        .get(&format!(
            "/auth/oauth?provider=acme&redirect_uri={}",
            encode(APP)
        ))
        .await;
    let q2 = query_of(again.header("location").unwrap());
    assert_ne!(q["state"], q2["state"]);
    assert_ne!(q["code_challenge"], q2["code_challenge"]);
}

#[tokio::test]
async fn a_verified_email_creates_the_user_and_the_tokens_come_back_in_the_fragment() {
    let (base, fake) = fake_provider().await;
    fake.lock().unwrap().user =
        json!({"id": 4242, "email": "octo@example.test", "email_verified": true, "name": "Octo"});
    let server = server_with(&base).await;
    let state = start(&server, &fake, "http://127.0.0.1:3000/after-login?x=1").await;
    let res = callback(&server, "good-code", &state).await;
    assert_eq!(res.status, 302, "{:?}", res.json);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let location = res.header("location").unwrap();
    assert!(
        location.starts_with("http://127.0.0.1:3000/after-login?x=1#"),
        "{location}"
    );
    let tokens = fragment_of(location);
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], "900");
    assert!(tokens["refresh_token"].len() > 20);
    let me = server.get_bearer("/auth/me", &tokens["access_token"]).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json["email"], "octo@example.test");
    assert_eq!(me.json["name"], "Octo");
    assert_eq!(me.json["roles"], json!(["user"]));
    // The refresh token works like a password login's.
    assert_eq!(server.refresh(&tokens["refresh_token"]).await.status, 200);

    // Signing in again with the same provider account is the same user.
    let state = start(&server, &fake, APP).await;
    let res = callback(&server, "good-code", &state).await;
    let again = fragment_of(res.header("location").unwrap());
    let me2 = server.get_bearer("/auth/me", &again["access_token"]).await;
    assert_eq!(me2.json["id"], me.json["id"]);
}

#[tokio::test]
async fn a_forged_or_replayed_state_is_auth_004_and_the_code_is_never_exchanged() {
    let (base, fake) = fake_provider().await;
    fake.lock().unwrap().user = json!({"id": 1, "email": "a@example.test", "email_verified": true});
    let server = server_with(&base).await;
    for forged in ["forged", "", &"x".repeat(500)] {
        let res = callback(&server, "good-code", forged).await;
        assert_eq!(res.status, 400, "{forged:?}");
        assert_eq!(res.json["error"]["code"], "AUTH_004");
    }
    let res = server.get("/auth/callback?code=good-code").await;
    assert_eq!(res.json["error"]["code"], "AUTH_004");
    assert_eq!(fake.lock().unwrap().token_calls, 0);

    let state = start(&server, &fake, APP).await;
    assert_eq!(callback(&server, "good-code", &state).await.status, 302);
    let replay = callback(&server, "good-code", &state).await;
    assert_eq!(replay.status, 400);
    assert_eq!(replay.json["error"]["code"], "AUTH_004");
    assert_eq!(
        fake.lock().unwrap().token_calls,
        1,
        "a replayed state goes no further"
    );
}

#[tokio::test]
async fn a_state_older_than_the_login_ttl_is_refused() {
    let (base, fake) = fake_provider().await;
    fake.lock().unwrap().user = json!({"id": 1, "email": "a@example.test", "email_verified": true});
    let server = server_with(&base).await;
    let state = start(&server, &fake, APP).await;
    server.clock.advance(server.settings.oauth_login_ttl);
    let res = callback(&server, "good-code", &state).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.json["error"]["code"], "AUTH_004");
}

#[tokio::test]
async fn a_wrong_pkce_verifier_or_code_is_refused_by_the_provider_as_auth_004() {
    let (base, fake) = fake_provider().await;
    fake.lock().unwrap().user = json!({"id": 1, "email": "a@example.test", "email_verified": true});
    let server = server_with(&base).await;
    let state = start(&server, &fake, APP).await;
    // Another login's challenge: the verifier Portico sends no longer matches.
    fake.lock().unwrap().challenge = Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGEqJN6cYc".into());
    let res = callback(&server, "good-code", &state).await;
    assert_eq!(res.status, 400, "{:?}", res.json);
    assert_eq!(res.json["error"]["code"], "AUTH_004");
    assert!(
        res.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("bad_verification_code")
    );

    let state = start(&server, &fake, APP).await;
    let res = callback(&server, "stolen-code", &state).await;
    assert_eq!(res.json["error"]["code"], "AUTH_004");
}

#[tokio::test]
async fn the_provider_saying_no_is_auth_004() {
    let (base, fake) = fake_provider().await;
    let server = server_with(&base).await;
    let state = start(&server, &fake, APP).await;
    let res = server
        .get(&format!("/auth/callback?error=access_denied&state={state}"))
        .await;
    assert_eq!(res.status, 400);
    assert_eq!(res.json["error"]["code"], "AUTH_004");
    assert!(
        res.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("access_denied")
    );
    // The state was used up by that answer.
    assert_eq!(callback(&server, "good-code", &state).await.status, 400);
}

#[tokio::test]
async fn an_email_the_provider_does_not_vouch_for_neither_creates_nor_links() {
    let (base, fake) = fake_provider().await;
    let server = server_with(&base).await;
    let victim = server.register_ok("victim@example.test").await;
    for user in [
        json!({"id": 7, "email": "victim@example.test"}),
        json!({"id": 7, "email": "victim@example.test", "email_verified": false}),
        json!({"id": 7, "email": null}),
        json!({"id": 7, "email": "new@example.test", "email_verified": "no"}),
    ] {
        fake.lock().unwrap().user = user.clone();
        let state = start(&server, &fake, APP).await;
        let res = callback(&server, "good-code", &state).await;
        assert_eq!(res.status, 400, "{user}");
        assert_eq!(res.json["error"]["code"], "AUTH_004");
    }
    // The account it named is untouched.
    assert_eq!(
        server.login("victim@example.test", PASSWORD).await.status,
        200
    );
    let me = server
        .get_bearer("/auth/me", victim["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(server.login("new@example.test", PASSWORD).await.status, 401);
}

#[tokio::test]
async fn a_verified_email_links_to_the_existing_account_and_ends_its_unproven_credentials() {
    let (base, fake) = fake_provider().await;
    let server = server_with(&base).await;
    // Someone registered the address with a password; nobody proved they own it.
    let squatter = server.register_ok("owner@example.test").await;
    let old_access = squatter["access_token"].as_str().unwrap().to_owned();
    let old_refresh = squatter["refresh_token"].as_str().unwrap().to_owned();
    let key = server
        .post_bearer("/auth/api-keys", &old_access, Some(&json!({"name": "k"})))
        .await;
    assert_eq!(key.status, 201);
    let key = key.json["key"].as_str().unwrap().to_owned();

    fake.lock().unwrap().user =
        json!({"id": 99, "email": "Owner@Example.test", "email_verified": true});
    let state = start(&server, &fake, APP).await;
    let res = callback(&server, "good-code", &state).await;
    assert_eq!(res.status, 302, "{:?}", res.json);
    let tokens = fragment_of(res.header("location").unwrap());
    let me = server.get_bearer("/auth/me", &tokens["access_token"]).await;
    assert_eq!(
        me.json["id"], squatter["user"]["id"],
        "linked, not a second account"
    );

    // What was set up before the proof no longer works.
    assert_eq!(
        server.login("owner@example.test", PASSWORD).await.status,
        401
    );
    assert_eq!(
        server.validate(&old_access).await.json["error"]["code"],
        "AUTH_007"
    );
    assert_eq!(server.refresh(&old_refresh).await.status, 401);
    server
        .clock
        .advance(portico_auth::service::REVOCATION_RECHECK);
    assert_eq!(server.validate(&key).await.status, 401);
    // The provider login keeps working.
    assert_eq!(server.validate(&tokens["access_token"]).await.status, 200);
}

#[tokio::test]
async fn start_refuses_unknown_providers_and_redirects_outside_the_allow_list() {
    let (base, _fake) = fake_provider().await;
    let server = server_with(&base).await;
    let res = server
        .get(&format!(
            "/auth/oauth?provider=nope&redirect_uri={}",
            encode(APP)
        ))
        .await;
    assert_eq!(res.json["error"]["code"], "REQ_001");
    assert!(
        res.json["error"]["details"]["fields"]["provider"]
            .as_str()
            .unwrap()
            .contains("acme")
    );
    let res = server.get("/auth/oauth?provider=acme").await;
    assert!(res.json["error"]["details"]["fields"]["redirect_uri"].is_string());
    for evil in [
        "https://evil.example/",
        "http://127.0.0.1:3000.evil.example/",
        "http://attacker@127.0.0.1:3000/",
        "https://app.example/cb/../../evil",
        "https://app.example/cbevil",
        "http://127.0.0.1:3000/#access_token=x",
        "javascript:alert(1)",
    ] {
        let res = server
            .get(&format!(
                "/auth/oauth?provider=acme&redirect_uri={}",
                encode(evil)
            ))
            .await;
        assert_eq!(res.status, 422, "{evil}");
        assert_eq!(res.json["error"]["code"], "REQ_001", "{evil}");
        assert!(res.header("location").is_none());
    }
}

#[tokio::test]
async fn an_unreachable_provider_is_auth_004_502() {
    let (base, _fake) = fake_provider().await;
    let mut settings = settings();
    settings.redirect_allowlist = vec![APP.into()];
    settings.providers = vec![
        provider("acme", &base),
        ProviderSettings {
            endpoints: Endpoints::Discovery {
                issuer: "http://127.0.0.1:1".into(),
            },
            ..provider("oidc", &base)
        },
    ];
    let server = Server::start_with(settings).await;
    let res = server
        .get(&format!(
            "/auth/oauth?provider=oidc&redirect_uri={}",
            encode(APP)
        ))
        .await;
    assert_eq!(res.status, 502, "{:?}", res.json);
    assert_eq!(res.json["error"]["code"], "AUTH_004");
    assert!(
        !res.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1"),
        "no internals in the message"
    );
}
