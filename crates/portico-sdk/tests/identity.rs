//! The `Caller` extractor in a real axum service on port 0, against a real JWKS server:
//! tokens from the gateway's own signer, and hand-made ones that must be refused.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use ed25519_dalek::{Signer as _, SigningKey};
use portico_core::clock::SystemClock;
use portico_core::error::ApiError;
use portico_gateway::identity::token::IdentitySigner;
use portico_gateway::identity::{CredentialKind, Identity, IdentityKey};
use portico_sdk::{Caller, Verifier};
use serde_json::{Value, json};

/// A JWKS endpoint whose document can be changed, counting its fetches.
struct Keys {
    url: String,
    jwks: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

async fn jwks_server(jwks: Value) -> Keys {
    let jwks = Arc::new(Mutex::new(jwks));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (doc, count) = (jwks.clone(), fetches.clone());
    let app = Router::new().route(
        "/.well-known/portico-identity-jwks.json",
        get(move || {
            let (doc, count) = (doc.clone(), count.clone());
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                axum::Json(doc.lock().unwrap().clone())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Keys { url, jwks, fetches }
}

/// The service under test: `/whoami` for anyone Portico vouches for, `/etl` for
/// `etl.access` holders.
async fn service(verifier: Verifier) -> String {
    async fn whoami(caller: Caller) -> axum::Json<Value> {
        axum::Json(json!({"user_id": caller.user_id, "email": caller.email,
                          "permissions": caller.permissions, "token_type": caller.token_type}))
    }
    async fn etl(caller: Caller) -> Result<&'static str, ApiError> {
        caller.require("etl.access")?;
        Ok("started")
    }
    let app = Router::new()
        .route("/whoami", get(whoami))
        .route("/etl", get(etl))
        .with_state(verifier);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn get_with(url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let tls = portico_core::tls::client_config().unwrap();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .unwrap();
    let mut req = client.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let body = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

fn ada(permissions: &[&str]) -> Identity {
    Identity {
        user_id: "u-ada".into(),
        email: "ada@example.com".into(),
        permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
        roles: vec!["user".into()],
        kind: CredentialKind::User,
        credential_id: "c1".into(),
        expires_at: None,
    }
}

/// A key of our own, to sign any claims (expired, other audience, other issuer).
struct HandKey {
    key: SigningKey,
    kid: String,
}

impl HandKey {
    fn new(seed: u8) -> Self {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let kid = portico_core::jws::ed25519_thumbprint(key.verifying_key().as_bytes());
        Self { key, kid }
    }

    fn jwk(&self) -> Value {
        portico_core::jws::ed25519_jwk(self.key.verifying_key().as_bytes(), &self.kid)
    }

    fn sign(&self, claims: &Value) -> String {
        portico_core::jws::sign_eddsa(&self.kid, claims, |m| self.key.sign(m).to_bytes()).unwrap()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(aud: &str, iss: &str, exp: u64) -> Value {
    json!({"iss": iss, "aud": aud, "sub": "u-bob", "email": "bob@example.com",
           "permissions": ["etl.access"], "roles": [], "token_type": "user",
           "iat": now(), "exp": exp})
}

#[tokio::test]
async fn tokens_of_the_gateways_signer_identify_the_caller() {
    let gateway_key = IdentityKey::from_seed(&[9; 32]);
    let keys = jwks_server(gateway_key.jwks()).await;
    let signer = IdentitySigner::new(gateway_key, SystemClock::shared());
    let url = service(Verifier::jwks(&keys.url, "etl").unwrap()).await;

    let token = signer.token(&ada(&["etl.access"]), "etl").unwrap();
    let token = token.to_str().unwrap();
    for _ in 0..3 {
        let (status, body) =
            get_with(&format!("{url}/whoami"), &[("X-Portico-Identity", token)]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["user_id"], "u-ada");
        assert_eq!(body["email"], "ada@example.com");
        assert_eq!(body["permissions"], json!(["etl.access"]));
        assert_eq!(body["token_type"], "user");
    }
    assert_eq!(keys.fetches.load(Ordering::SeqCst), 1, "the keys are kept");
    let (status, body) = get_with(&format!("{url}/etl"), &[("X-Portico-Identity", token)]).await;
    assert_eq!((status, body), (200, Value::String("started".into())));

    // The same caller without the permission: 403 AUTH_006 in the envelope.
    let token = signer.token(&ada(&["reports.read"]), "etl").unwrap();
    let (status, body) = get_with(
        &format!("{url}/etl"),
        &[("X-Portico-Identity", token.to_str().unwrap())],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "AUTH_006");

    // A token the gateway made for another upstream is not for this one.
    let other = signer.token(&ada(&["etl.access"]), "search").unwrap();
    let (status, body) = get_with(
        &format!("{url}/whoami"),
        &[("X-Portico-Identity", other.to_str().unwrap())],
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "AUTH_001");
}

#[tokio::test]
async fn missing_forged_expired_and_foreign_tokens_are_refused_in_the_envelope() {
    let good = HandKey::new(1);
    let keys = jwks_server(json!({"keys": [good.jwk()]})).await;
    let url = service(Verifier::jwks(&keys.url, "etl").unwrap()).await;
    let whoami = format!("{url}/whoami");

    let (status, body) = get_with(&whoami, &[]).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (401, json!("AUTH_003"))
    );
    // A client's own X-User-ID is not an identity.
    let (status, body) = get_with(&whoami, &[("X-User-ID", "admin")]).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (401, json!("AUTH_003"))
    );

    let valid = good.sign(&claims("etl", "portico-gateway", now() + 60));
    let (status, body) = get_with(&whoami, &[("X-Portico-Identity", &valid)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], "u-bob");

    let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
    let forged_claims = claims("etl", "portico-gateway", now() + 60);
    let mut forged_claims = forged_claims.clone();
    forged_claims["sub"] = json!("u-admin");
    parts[1] = base64_url(&serde_json::to_vec(&forged_claims).unwrap());
    let tampered = parts.join(".");
    let refused = [
        (tampered, "AUTH_001"),
        (
            good.sign(&claims("etl", "portico-gateway", now() - 60)),
            "AUTH_002",
        ),
        (
            good.sign(&claims("search", "portico-gateway", now() + 60)),
            "AUTH_001",
        ),
        (
            good.sign(&claims("etl", "someone-else", now() + 60)),
            "AUTH_001",
        ),
        (
            HandKey::new(2).sign(&claims("etl", "portico-gateway", now() + 60)),
            "AUTH_001",
        ),
        ("not.a.token".to_owned(), "AUTH_001"),
    ];
    for (token, code) in refused {
        let (status, body) = get_with(&whoami, &[("X-Portico-Identity", &token)]).await;
        assert_eq!(status, 401, "{token}: {body}");
        assert_eq!(body["error"]["code"], code, "{token}: {body}");
    }
    // Unknown keys within 10 s of the last fetch do not fetch again: junk kids cost one
    // fetch per 10 s at most.
    let stranger = HandKey::new(3).sign(&claims("etl", "portico-gateway", now() + 60));
    let _ = get_with(&whoami, &[("X-Portico-Identity", &stranger)]).await;
    assert_eq!(keys.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_rotated_gateway_key_is_fetched_when_first_seen() {
    let (old, new) = (HandKey::new(4), HandKey::new(5));
    let keys = jwks_server(json!({"keys": [old.jwk(), new.jwk()]})).await;
    let url = service(Verifier::jwks(&keys.url, "etl").unwrap()).await;
    let whoami = format!("{url}/whoami");
    // No key is known before the first request: its kid makes the verifier fetch them.
    let token = new.sign(&claims("etl", "portico-gateway", now() + 60));
    let (status, body) = get_with(&whoami, &[("X-Portico-Identity", &token)]).await;
    assert_eq!(status, 200, "{body}");
    *keys.jwks.lock().unwrap() = json!({"keys": []});
    // Keys in hand keep working while the JWKS is being changed.
    let token = old.sign(&claims("etl", "portico-gateway", now() + 60));
    let (status, body) = get_with(&whoami, &[("X-Portico-Identity", &token)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(keys.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unreachable_jwks_is_sys_002() {
    let unused = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}", unused.local_addr().unwrap());
    drop(unused);
    let url = service(Verifier::jwks(&dead, "etl").unwrap()).await;
    let token = HandKey::new(6).sign(&claims("etl", "portico-gateway", now() + 60));
    let (status, body) =
        get_with(&format!("{url}/whoami"), &[("X-Portico-Identity", &token)]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "SYS_002");
}

#[tokio::test]
async fn internal_token_mode_trusts_the_user_headers_only_with_the_secret() {
    let verifier = Verifier::internal_token("X-Internal-Auth", "etl-internal-secret").unwrap();
    let url = service(verifier).await;
    let caller = [
        ("X-User-ID", "u-eve"),
        ("X-User-Email", "eve@example.com"),
        ("X-User-Permissions", "reports.read, etl.access"),
    ];
    let mut with_secret = caller.to_vec();
    with_secret.push(("X-Internal-Auth", "etl-internal-secret"));
    let (status, body) = get_with(&format!("{url}/whoami"), &with_secret).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], "u-eve");
    assert_eq!(body["permissions"], json!(["reports.read", "etl.access"]));
    let (status, _) = get_with(&format!("{url}/etl"), &with_secret).await;
    assert_eq!(status, 200);

    let (status, body) = get_with(&format!("{url}/whoami"), &caller).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (401, json!("AUTH_003"))
    );
    let mut wrong = caller.to_vec();
    wrong.push(("X-Internal-Auth", "etl-internal-secreT"));
    let (status, body) = get_with(&format!("{url}/whoami"), &wrong).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (401, json!("AUTH_001"))
    );
    assert!(Verifier::internal_token("bad header", "s").is_err());
    assert!(Verifier::jwks("ftp://portico", "etl").is_err());
}

fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}
