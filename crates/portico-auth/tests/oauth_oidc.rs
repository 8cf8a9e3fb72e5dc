//! OIDC login against a local provider written for these tests, which signs ID tokens the
//! way a test tells it to: the checks on the ID token (signature and key, `iss`, `aud`,
//! `azp`, `exp`, `nonce`, algorithm), key rotation at the provider, and discovery for the
//! wrong issuer. The happy path against a real OpenID provider is in `oauth_oidc_provider.rs`.
#![allow(clippy::unwrap_used)]

mod api_support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use api_support::{Server, settings};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portico_auth::keys::SigningKey;
use portico_auth::oauth::{Endpoints, ProviderSettings};
use serde_json::{Value, json};

const APP: &str = "http://127.0.0.1:3000/";

struct Fake {
    base: String,
    key: SigningKey,
    /// The discovery document claims this issuer (normally `base`).
    claimed_issuer: Option<String>,
    /// The nonce of the login in flight, as the authorization request carried it.
    nonce: String,
    /// Changes to the ID token's claims (`null` removes a claim).
    tweak: Value,
    /// Replaces the ID token's header.
    header: Option<Value>,
    jwks_fetches: usize,
}

type Shared = Arc<Mutex<Fake>>;

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = URL_SAFE_NO_PAD.encode(key.sign(signed.as_bytes()));
    format!("{signed}.{signature}")
}

async fn fake_oidc() -> Shared {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let fake = Arc::new(Mutex::new(Fake {
        base: base.clone(),
        key: SigningKey::generate().unwrap(),
        claimed_issuer: None,
        nonce: String::new(),
        tweak: json!({}),
        header: None,
        jwks_fetches: 0,
    }));
    async fn discovery(State(fake): State<Shared>) -> Json<Value> {
        let fake = fake.lock().unwrap();
        let base = &fake.base;
        Json(json!({
            "issuer": fake.claimed_issuer.clone().unwrap_or_else(|| base.clone()),
            "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"),
            "jwks_uri": format!("{base}/jwks"),
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        }))
    }
    async fn jwks(State(fake): State<Shared>) -> Json<Value> {
        let mut fake = fake.lock().unwrap();
        fake.jwks_fetches += 1;
        Json(json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
            "kid": fake.key.kid(),
            "x": URL_SAFE_NO_PAD.encode(fake.key.public_key()),
        }]}))
    }
    async fn token(
        State(fake): State<Shared>,
        headers: axum::http::HeaderMap,
        body: axum::body::Bytes,
    ) -> Json<Value> {
        let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap();
        assert_eq!(form["grant_type"], "authorization_code");
        assert!(form.contains_key("code_verifier"));
        assert!(!form.contains_key("client_secret"), "secret goes in Basic");
        assert!(
            headers["authorization"]
                .to_str()
                .unwrap()
                .starts_with("Basic ")
        );
        let fake = fake.lock().unwrap();
        let mut claims = json!({
            "iss": fake.base, "sub": "subject-1", "aud": "portico",
            "exp": now_secs() + 300, "iat": now_secs(), "nonce": fake.nonce,
            "email": "oidc@example.test", "email_verified": true, "name": "Oidc User",
        });
        for (k, v) in fake.tweak.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        let header = fake
            .header
            .clone()
            .unwrap_or_else(|| json!({"alg": "EdDSA", "typ": "JWT", "kid": fake.key.kid()}));
        Json(json!({
            "access_token": "at", "token_type": "Bearer",
            "id_token": sign(&fake.key, &header, &claims),
        }))
    }
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/token", post(token))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    fake
}

async fn server_for(fake: &Shared) -> Server {
    let mut settings = settings();
    settings.redirect_allowlist = vec![APP.into()];
    settings.providers = vec![ProviderSettings {
        name: "oidc".into(),
        client_id: "portico".into(),
        client_secret: "s3cret".into(),
        endpoints: Endpoints::Discovery {
            issuer: fake.lock().unwrap().base.clone(),
        },
    }];
    Server::start_with(settings).await
}

/// One whole login; the callback's answer.
async fn login(server: &Server, fake: &Shared) -> api_support::Response {
    let res = server
        .get(&format!("/auth/oauth?provider=oidc&redirect_uri={APP}"))
        .await;
    assert_eq!(res.status, 302, "{:?}", res.json);
    let url = url::Url::parse(res.header("location").unwrap()).unwrap();
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["scope"], "openid email profile");
    fake.lock().unwrap().nonce = q["nonce"].clone();
    server
        .get(&format!("/auth/callback?code=c&state={}", q["state"]))
        .await
}

fn set(fake: &Shared, tweak: Value) {
    fake.lock().unwrap().tweak = tweak;
}

#[tokio::test]
async fn a_valid_id_token_signs_the_user_in() {
    let fake = fake_oidc().await;
    let server = server_for(&fake).await;
    let res = login(&server, &fake).await;
    assert_eq!(res.status, 302, "{:?}", res.json);
    let url = url::Url::parse(res.header("location").unwrap()).unwrap();
    let tokens: HashMap<String, String> =
        url::form_urlencoded::parse(url.fragment().unwrap().as_bytes())
            .into_owned()
            .collect();
    let me = server.get_bearer("/auth/me", &tokens["access_token"]).await;
    assert_eq!(me.json["email"], "oidc@example.test");
    // Several audiences are fine when `azp` names this client.
    set(
        &fake,
        json!({"aud": ["portico", "other"], "azp": "portico"}),
    );
    assert_eq!(login(&server, &fake).await.status, 302);
}

#[tokio::test]
async fn id_tokens_that_fail_a_check_are_refused_with_auth_004() {
    let fake = fake_oidc().await;
    let server = server_for(&fake).await;
    let other_base = "http://127.0.0.1:9".to_owned();
    for (what, tweak, status) in [
        ("wrong issuer", json!({"iss": other_base}), 502),
        ("wrong audience", json!({"aud": "someone-else"}), 502),
        (
            "several audiences, no azp",
            json!({"aud": ["portico", "other"]}),
            502,
        ),
        ("expired", json!({"exp": now_secs() - 3600}), 502),
        (
            "issued in the future",
            json!({"iat": now_secs() + 3600}),
            502,
        ),
        ("no sub", json!({"sub": null}), 502),
        ("another login's nonce", json!({"nonce": "replayed"}), 400),
        ("no nonce", json!({"nonce": null}), 400),
    ] {
        set(&fake, tweak);
        let res = login(&server, &fake).await;
        assert_eq!(res.status, status, "{what}: {:?}", res.json);
        assert_eq!(res.json["error"]["code"], "AUTH_004", "{what}");
    }
    set(&fake, json!({}));
    let kid = fake.lock().unwrap().key.kid().to_owned();
    for (what, header) in [
        ("alg none", json!({"alg": "none", "kid": kid})),
        ("HS256", json!({"alg": "HS256", "kid": kid})),
        ("unknown kid", json!({"alg": "EdDSA", "kid": "nope"})),
    ] {
        fake.lock().unwrap().header = Some(header);
        let res = login(&server, &fake).await;
        assert_eq!(res.status, 502, "{what}: {:?}", res.json);
        assert_eq!(res.json["error"]["code"], "AUTH_004", "{what}");
    }
    // No account was made by any of them.
    assert_eq!(
        server
            .login("oidc@example.test", "whatever-password")
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn a_key_rotated_at_the_provider_is_fetched_again() {
    let fake = fake_oidc().await;
    let server = server_for(&fake).await;
    assert_eq!(login(&server, &fake).await.status, 302);
    assert_eq!(fake.lock().unwrap().jwks_fetches, 1);
    assert_eq!(login(&server, &fake).await.status, 302);
    assert_eq!(fake.lock().unwrap().jwks_fetches, 1, "cached");
    fake.lock().unwrap().key = SigningKey::generate().unwrap();
    server.clock.advance(portico_auth::oauth::JWKS_REFETCH_GAP);
    let res = login(&server, &fake).await;
    assert_eq!(res.status, 302, "{:?}", res.json);
    assert_eq!(fake.lock().unwrap().jwks_fetches, 2);
}

#[tokio::test]
async fn a_discovery_document_for_another_issuer_is_refused() {
    let fake = fake_oidc().await;
    fake.lock().unwrap().claimed_issuer = Some("https://evil.example".into());
    let server = server_for(&fake).await;
    let res = server
        .get(&format!("/auth/oauth?provider=oidc&redirect_uri={APP}"))
        .await;
    assert_eq!(res.status, 502);
    assert_eq!(res.json["error"]["code"], "AUTH_004");
}
