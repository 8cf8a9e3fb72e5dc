//! OAuth login end to end against a real OpenID provider that nobody here wrote: the npm
//! package `oidc-provider` (tests/oidc-provider), started once and shared by these tests; the user's browser is
//! played by `oidc_support::sign_in`. Discovery, PKCE S256, nonce, RS256 ID tokens, the
//! callback's extra `iss` parameter, linking by verified email and replayed callbacks all go
//! through the real thing. Needs `PORTICO_TEST_OIDC_PROVIDER` (set by scripts/test), hence
//! `#[ignore]`; every test has `oidc_provider` in its name so the script can skip them.
#![allow(clippy::unwrap_used)]

mod api_support;
mod oidc_support;

use std::collections::HashMap;

use api_support::{ISSUER, PASSWORD, Server, settings};
use oidc_support::OidcProvider;
use portico_auth::oauth::{Endpoints, ProviderSettings};

const APP: &str = "http://127.0.0.1:3000/welcome";

async fn setup() -> (&'static OidcProvider, Server) {
    let provider = oidc_support::shared(&format!("{ISSUER}/auth/callback"));
    let mut settings = settings();
    settings.redirect_allowlist = vec![APP.into()];
    settings.providers = vec![ProviderSettings {
        name: "local".into(),
        client_id: provider.client_id.clone(),
        client_secret: provider.client_secret.clone(),
        endpoints: Endpoints::Discovery {
            issuer: provider.issuer.clone(),
        },
    }];
    (provider, Server::start_with(settings).await)
}

/// Signs `login` in at the provider; returns the path and query of our callback the
/// provider sends the browser to.
async fn through_provider(server: &Server, provider: &OidcProvider, login: &str) -> String {
    let res = server
        .get(&format!("/auth/oauth?provider=local&redirect_uri={APP}"))
        .await;
    assert_eq!(res.status, 302, "{:?}", res.json);
    let authorize = res.header("location").unwrap();
    assert!(authorize.starts_with(&provider.issuer), "{authorize}");
    let back = oidc_support::sign_in(authorize, login).await;
    let back = url::Url::parse(&back).unwrap();
    assert_eq!(back.path(), "/auth/callback", "{back}\n{}", provider.log());
    format!("{}?{}", back.path(), back.query().unwrap())
}

/// The tokens in the fragment of a successful callback's redirect.
fn fragment_tokens(res: &api_support::Response) -> HashMap<String, String> {
    assert_eq!(res.status, 302, "{:?}", res.json);
    let location = url::Url::parse(res.header("location").unwrap()).unwrap();
    assert_eq!(
        &location.as_str()[..location.as_str().find('#').unwrap()],
        APP
    );
    url::form_urlencoded::parse(location.fragment().unwrap().as_bytes())
        .into_owned()
        .collect()
}

#[tokio::test]
#[ignore = "needs the oidc-provider npm package (PORTICO_TEST_OIDC_PROVIDER, set by scripts/test)"]
async fn oidc_provider_login_creates_the_user_and_a_replayed_callback_is_auth_004() {
    let (provider, server) = setup().await;
    let callback = through_provider(&server, provider, "alice@example.test").await;
    let res = server.get(&callback).await;
    let tokens = fragment_tokens(&res);
    assert_eq!(tokens["token_type"], "Bearer");
    let me = server.get_bearer("/auth/me", &tokens["access_token"]).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json["email"], "alice@example.test");
    assert_eq!(me.json["name"], "alice");
    let validated = server.validate(&tokens["access_token"]).await;
    assert_eq!(validated.json["token_type"], "user");
    assert_eq!(server.refresh(&tokens["refresh_token"]).await.status, 200);

    // The same callback again: the state is used up.
    let replay = server.get(&callback).await;
    assert_eq!(replay.status, 400);
    assert_eq!(replay.json["error"]["code"], "AUTH_004");

    // Signing in again is the same user.
    let callback = through_provider(&server, provider, "alice@example.test").await;
    let again = fragment_tokens(&server.get(&callback).await);
    let me2 = server.get_bearer("/auth/me", &again["access_token"]).await;
    assert_eq!(me2.json["id"], me.json["id"]);
}

#[tokio::test]
#[ignore = "needs the oidc-provider npm package (PORTICO_TEST_OIDC_PROVIDER, set by scripts/test)"]
async fn oidc_provider_verified_email_links_the_password_account() {
    let (provider, server) = setup().await;
    let registered = server.register_ok("bob@example.test").await;
    let callback = through_provider(&server, provider, "bob@example.test").await;
    let tokens = fragment_tokens(&server.get(&callback).await);
    let me = server.get_bearer("/auth/me", &tokens["access_token"]).await;
    assert_eq!(me.json["id"], registered["user"]["id"]);
    // The password set before anyone proved the address is gone.
    assert_eq!(server.login("bob@example.test", PASSWORD).await.status, 401);
}

#[tokio::test]
#[ignore = "needs the oidc-provider npm package (PORTICO_TEST_OIDC_PROVIDER, set by scripts/test)"]
async fn oidc_provider_unverified_email_is_refused() {
    let (provider, server) = setup().await;
    let callback = through_provider(&server, provider, "unverified@example.test").await;
    let res = server.get(&callback).await;
    assert_eq!(res.status, 400, "{:?}", res.json);
    assert_eq!(res.json["error"]["code"], "AUTH_004");
}

#[tokio::test]
#[ignore = "needs the oidc-provider npm package (PORTICO_TEST_OIDC_PROVIDER, set by scripts/test)"]
async fn oidc_provider_forged_state_is_auth_004() {
    let (provider, server) = setup().await;
    let callback = through_provider(&server, provider, "carol@example.test").await;
    let forged = callback.replace("state=", "state=x");
    let res = server.get(&forged).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.json["error"]["code"], "AUTH_004");
    // The genuine one still works: the forgery consumed nothing.
    assert_eq!(server.get(&callback).await.status, 302);
}
