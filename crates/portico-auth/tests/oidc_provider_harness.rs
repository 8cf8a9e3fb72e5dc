//! Proves the real OpenID provider harness (tests/oidc_support) on its own, without any
//! Portico OAuth code: discovery, an authorization request built by hand (state, nonce, PKCE
//! S256), the browser's sign-in through the provider's dev pages, the code exchange with both
//! client authentication methods, and the id_token and userinfo claims the login tests rely on.
//! Needs `PORTICO_TEST_OIDC_PROVIDER` (set by scripts/test), hence `#[ignore]`.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod oidc_support;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oidc_support::OidcProvider;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use url::Url;

const REDIRECT_URI: &str = "http://127.0.0.1:9/cb";

fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn http() -> reqwest::Client {
    oidc_support::http_client()
}

async fn json(response: reqwest::Response, what: &str) -> Value {
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, reqwest::StatusCode::OK, "{what}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"))
}

/// One authorization request, as a relying party would make it.
struct Request {
    url: String,
    state: String,
    nonce: String,
    verifier: String,
}

fn authorization_request(discovery: &Value, client_id: &str, pkce: bool) -> Request {
    let (state, nonce, verifier) = (random_token(), random_token(), random_token());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let mut url = Url::parse(discovery["authorization_endpoint"].as_str().unwrap()).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("scope", "openid email profile")
        .append_pair("state", &state)
        .append_pair("nonce", &nonce);
    if pkce {
        url.query_pairs_mut()
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
    }
    Request {
        url: url.into(),
        state,
        nonce,
        verifier,
    }
}

/// The query parameters of the URL the browser was sent back to, after checking that it is
/// the redirect URI.
fn callback_params(location: &str) -> Vec<(String, String)> {
    let url = Url::parse(location).unwrap();
    assert_eq!(
        &location[..REDIRECT_URI.len()],
        REDIRECT_URI,
        "sent back elsewhere: {location}"
    );
    assert_eq!(url.fragment(), None, "{location}");
    url.query_pairs().into_owned().collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn jwt_part(jwt: &str, index: usize) -> Value {
    let part = jwt.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Signs `login` in, exchanges the code (client_secret_basic when `basic`, else
/// client_secret_post) and returns the request, the token response and the exchange's form.
async fn sign_in_and_exchange(
    provider: &OidcProvider,
    discovery: &Value,
    login: &str,
    basic: bool,
) -> (Request, Value, Vec<(String, String)>) {
    let request = authorization_request(discovery, &provider.client_id, true);
    let location = oidc_support::sign_in(&request.url, login).await;
    let params = callback_params(&location);
    assert_eq!(
        param(&params, "state"),
        Some(request.state.as_str()),
        "{location}"
    );
    assert_eq!(
        param(&params, "iss"),
        Some(provider.issuer.as_str()),
        "{location}"
    );
    assert_eq!(param(&params, "error"), None, "{location}");
    let code = param(&params, "code").unwrap_or_else(|| panic!("no code: {location}"));

    let token_endpoint = discovery["token_endpoint"].as_str().unwrap();
    let mut form: Vec<(String, String)> = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", &request.verifier),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .into();
    let exchange = if basic {
        http()
            .post(token_endpoint)
            .basic_auth(&provider.client_id, Some(&provider.client_secret))
    } else {
        form.push(("client_id".to_owned(), provider.client_id.clone()));
        form.push(("client_secret".to_owned(), provider.client_secret.clone()));
        http().post(token_endpoint)
    };
    let response = exchange.form(&form).send().await.unwrap();
    let tokens = json(response, "token exchange").await;
    assert_eq!(tokens["token_type"], "Bearer", "{tokens}");

    (request, tokens, form)
}

#[tokio::test]
#[ignore = "needs the oidc-provider npm package: run scripts/test, which installs it and sets PORTICO_TEST_OIDC_PROVIDER"]
async fn oidc_provider_signs_in_and_issues_an_id_token() {
    let provider = oidc_support::shared(REDIRECT_URI);
    assert!(
        provider.issuer.starts_with("http://127.0.0.1:"),
        "{}",
        provider.issuer
    );
    let discovery = json(
        http()
            .get(format!(
                "{}/.well-known/openid-configuration",
                provider.issuer
            ))
            .send()
            .await
            .unwrap(),
        "discovery",
    )
    .await;
    assert_eq!(discovery["issuer"], provider.issuer.as_str());
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );

    // A verified account, code exchanged with client_secret_basic.
    let (request, tokens, exchange) =
        sign_in_and_exchange(provider, &discovery, "alice@example.test", true).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    assert_eq!(jwt_part(id_token, 0)["alg"], "RS256");
    let claims = jwt_part(id_token, 1);
    assert_eq!(claims["iss"], provider.issuer.as_str(), "{claims}");
    assert_eq!(claims["aud"], provider.client_id.as_str(), "{claims}");
    assert_eq!(claims["nonce"], request.nonce.as_str(), "{claims}");
    assert_eq!(claims["sub"], "acct-alice@example.test", "{claims}");
    assert_eq!(claims["email"], "alice@example.test", "{claims}");
    assert_eq!(claims["email_verified"], true, "{claims}");
    assert_eq!(claims["name"], "alice", "{claims}");

    // The same claims from userinfo, with the access token.
    let userinfo = json(
        http()
            .get(discovery["userinfo_endpoint"].as_str().unwrap())
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap(),
        "userinfo",
    )
    .await;
    assert_eq!(userinfo["sub"], "acct-alice@example.test", "{userinfo}");
    assert_eq!(userinfo["email"], "alice@example.test", "{userinfo}");
    assert_eq!(userinfo["email_verified"], true, "{userinfo}");

    // A code is good for one exchange only; replaying it also revokes what it gave.
    let token_endpoint = discovery["token_endpoint"].as_str().unwrap();
    let replay = http()
        .post(token_endpoint)
        .basic_auth(&provider.client_id, Some(&provider.client_secret))
        .form(&exchange)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), reqwest::StatusCode::BAD_REQUEST);
    let revoked = http()
        .get(discovery["userinfo_endpoint"].as_str().unwrap())
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), reqwest::StatusCode::UNAUTHORIZED);

    // An unverified account, code exchanged with client_secret_post.
    let (request, tokens, _) =
        sign_in_and_exchange(provider, &discovery, "unverified@example.test", false).await;
    let claims = jwt_part(tokens["id_token"].as_str().unwrap(), 1);
    assert_eq!(claims["nonce"], request.nonce.as_str(), "{claims}");
    assert_eq!(claims["sub"], "acct-unverified@example.test", "{claims}");
    assert_eq!(claims["email"], "unverified@example.test", "{claims}");
    assert_eq!(claims["email_verified"], false, "{claims}");

    // PKCE is required: a request without a code challenge is sent back with an error.
    let request = authorization_request(&discovery, &provider.client_id, false);
    let location = oidc_support::sign_in(&request.url, "alice@example.test").await;
    let params = callback_params(&location);
    assert_eq!(
        param(&params, "error"),
        Some("invalid_request"),
        "{location}"
    );
    assert_eq!(param(&params, "code"), None, "{location}");
    assert_eq!(
        param(&params, "state"),
        Some(request.state.as_str()),
        "{location}"
    );
}
