//! OAuth 2.0 / OpenID Connect login with external providers: the provider side of
//! `GET /auth/oauth` and `GET /auth/callback`.
//!
//! A provider is either found by OIDC discovery (`<issuer>/.well-known/openid-configuration`,
//! Google's preset) or given by explicit endpoints (plain OAuth 2.0, GitHub's preset). Every
//! login carries a fresh `state` (stored once-only), a PKCE S256 challenge (RFC 7636) and, for
//! OIDC, a `nonce`. The callback exchanges the code with the PKCE verifier and then trusts
//! only what the provider vouches for:
//! - OIDC: the ID token's signature (the provider's JWKS, refetched on an unknown `kid`), its
//!   `iss`, `aud` (`azp` when several audiences), `exp` and `nonce`; email and
//!   `email_verified` from it, or from the user-info endpoint (same `sub`) when it has none.
//! - Plain OAuth 2.0: the user-info answer over the access token; an email counts as verified
//!   only when the provider says so (`email_verified: true`, or GitHub's `/user/emails` entry
//!   marked `verified`).
//!
//! Discovery documents and JWKS are cached for an hour; a failed fetch is an AUTH_004 502
//! and is retried on the next login.
//!
//! # Layout
//! - this module: provider settings and the calls to one provider.
//! - `http`: the HTTPS client (rustls, bounded answers).
//! - `redirect`: the `redirect_uri` allow-list.

pub mod http;
mod redirect;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use url::Url;

pub use redirect::RedirectAllowlist;

use crate::error::AuthError;
use http::printable;

/// How long a discovery document or a provider's JWKS is trusted.
pub const METADATA_TTL: Duration = Duration::from_secs(3600);

/// The least time between two JWKS fetches caused by an unknown `kid`.
pub const JWKS_REFETCH_GAP: Duration = Duration::from_secs(10);

/// How far the provider's clock may be from ours when checking `exp` and `iat`.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Where a provider's endpoints are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoints {
    /// OpenID Connect discovery from the issuer.
    Discovery {
        /// The provider's issuer (`https://accounts.google.com`).
        issuer: String,
    },
    /// Plain OAuth 2.0 with explicit endpoints (GitHub style).
    Explicit {
        /// The authorization endpoint.
        authorize_url: String,
        /// The token endpoint.
        token_url: String,
        /// The user-info endpoint, read with the access token.
        userinfo_url: String,
    },
}

/// One configured provider.
#[derive(Clone)]
pub struct ProviderSettings {
    /// Its name in `?provider=` (`google`).
    pub name: String,
    /// The client id Portico is registered under.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
    /// Where its endpoints are.
    pub endpoints: Endpoints,
}

impl std::fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("name", &self.name)
            .field("client_id", &self.client_id)
            .field("client_secret", &"***")
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

/// GitHub's user endpoint; its `/emails` companion says which addresses are verified.
const GITHUB_USER: &str = "https://api.github.com/user";

impl ProviderSettings {
    fn scopes(&self) -> &'static str {
        match &self.endpoints {
            Endpoints::Discovery { .. } => "openid email profile",
            Endpoints::Explicit { userinfo_url, .. } if userinfo_url == GITHUB_USER => {
                "read:user user:email"
            }
            Endpoints::Explicit { .. } => "openid email profile",
        }
    }
}

/// A login in flight, as the authorization request sent it.
#[derive(Debug, Clone)]
pub struct LoginRequest<'a> {
    /// Our callback (`<issuer>/auth/callback`), registered at the provider.
    pub callback: &'a str,
    /// The `state` value.
    pub state: &'a str,
    /// The PKCE verifier (its S256 challenge is sent).
    pub pkce_verifier: &'a str,
    /// The OIDC nonce.
    pub nonce: &'a str,
}

/// Who the provider says the user is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderIdentity {
    /// The provider's stable id for the account (`sub`, GitHub's numeric `id`).
    pub subject: String,
    /// The account's email, if the provider gave one.
    pub email: Option<String>,
    /// Whether the provider vouches for the email.
    pub email_verified: bool,
    /// A display name, if given.
    pub name: Option<String>,
}

/// The PKCE S256 challenge of `verifier` (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The endpoints of a provider once resolved.
#[derive(Debug)]
struct Resolved {
    authorize: Url,
    token: Url,
    userinfo: Option<Url>,
    /// For OIDC providers: the issuer and where its keys are.
    oidc: Option<(String, Url)>,
    /// Send the client secret with HTTP Basic (else in the form).
    basic_auth: bool,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: Option<String>,
    jwks_uri: String,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

type Cached<T> = RwLock<Option<(Arc<T>, SystemTime)>>;

/// One provider: its settings and what was fetched from it.
#[derive(Debug)]
pub struct Provider {
    settings: ProviderSettings,
    resolved: Cached<Resolved>,
    jwks: Cached<jsonwebtoken::jwk::JwkSet>,
}

/// The configured providers and the HTTP client that reaches them.
#[derive(Debug)]
pub struct Providers {
    http: reqwest::Client,
    providers: BTreeMap<String, Provider>,
}

impl Providers {
    /// The providers of `settings` (none is fine: OAuth login is then refused).
    pub fn new(settings: &[ProviderSettings]) -> Result<Self, AuthError> {
        Ok(Self {
            http: http::client()?,
            providers: settings
                .iter()
                .map(|s| {
                    let provider = Provider {
                        settings: s.clone(),
                        resolved: RwLock::new(None),
                        jwks: RwLock::new(None),
                    };
                    (s.name.clone(), provider)
                })
                .collect(),
        })
    }

    /// The provider called `name`.
    pub fn get(&self, name: &str) -> Option<&Provider> {
        self.providers.get(name)
    }

    /// The configured provider names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.providers.keys().map(String::as_str).collect()
    }

    /// Where to send the user's browser to start `login` with `provider`.
    pub async fn authorize_url(
        &self,
        provider: &Provider,
        login: &LoginRequest<'_>,
        now: SystemTime,
    ) -> Result<Url, AuthError> {
        let resolved = self.resolve(provider, now).await?;
        let mut url = resolved.authorize.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &provider.settings.client_id)
                .append_pair("redirect_uri", login.callback)
                .append_pair("scope", provider.settings.scopes())
                .append_pair("state", login.state)
                .append_pair("code_challenge", &pkce_challenge(login.pkce_verifier))
                .append_pair("code_challenge_method", "S256");
            if resolved.oidc.is_some() {
                query.append_pair("nonce", login.nonce);
            }
        }
        Ok(url)
    }

    /// Exchanges the authorization `code` and returns who the provider says the user is.
    pub async fn identity(
        &self,
        provider: &Provider,
        code: &str,
        login: &LoginRequest<'_>,
        now: SystemTime,
    ) -> Result<ProviderIdentity, AuthError> {
        let resolved = self.resolve(provider, now).await?;
        let tokens = self.exchange(provider, &resolved, code, login).await?;
        match &resolved.oidc {
            Some((issuer, jwks_uri)) => {
                let id_token = tokens.id_token.as_deref().ok_or_else(|| {
                    AuthError::OAuthProvider("token endpoint: no id_token in the answer".into())
                })?;
                let claims = self
                    .verify_id_token(provider, issuer, jwks_uri, id_token, login.nonce, now)
                    .await?;
                let mut identity = ProviderIdentity {
                    subject: claims.sub.clone(),
                    email: claims.email.clone(),
                    email_verified: claims.email_verified.as_ref().is_some_and(is_true),
                    name: claims.name.clone(),
                };
                if identity.email.is_none()
                    && let Some(userinfo) = &resolved.userinfo
                {
                    let info = self.userinfo(userinfo, &tokens.access_token).await?;
                    if info.subject != identity.subject {
                        return Err(AuthError::OAuthProvider(
                            "user info is about another subject than the ID token".into(),
                        ));
                    }
                    identity.email = info.email;
                    identity.email_verified = info.email_verified;
                    identity.name = identity.name.or(info.name);
                }
                Ok(identity)
            }
            None => {
                let userinfo = resolved.userinfo.as_ref().ok_or_else(|| {
                    AuthError::Internal("explicit provider without user-info URL".into())
                })?;
                let mut identity = self.userinfo(userinfo, &tokens.access_token).await?;
                if userinfo.as_str() == GITHUB_USER && !identity.email_verified {
                    let emails = Url::parse(&format!("{GITHUB_USER}/emails"))
                        .map_err(|e| AuthError::Internal(e.to_string()))?;
                    if let Some(email) = self.github_email(&emails, &tokens.access_token).await? {
                        identity.email = Some(email);
                        identity.email_verified = true;
                    }
                }
                Ok(identity)
            }
        }
    }

    async fn resolve(
        &self,
        provider: &Provider,
        now: SystemTime,
    ) -> Result<Arc<Resolved>, AuthError> {
        if let Some(resolved) = fresh(&provider.resolved, now) {
            return Ok(resolved);
        }
        let resolved = Arc::new(match &provider.settings.endpoints {
            Endpoints::Explicit {
                authorize_url,
                token_url,
                userinfo_url,
            } => Resolved {
                authorize: parse_url(authorize_url, "authorize_url")?,
                token: parse_url(token_url, "token_url")?,
                userinfo: Some(parse_url(userinfo_url, "userinfo_url")?),
                oidc: None,
                basic_auth: false,
            },
            Endpoints::Discovery { issuer } => self.discover(issuer).await?,
        });
        store(&provider.resolved, resolved.clone(), now);
        Ok(resolved)
    }

    async fn discover(&self, issuer: &str) -> Result<Resolved, AuthError> {
        let what = "discovery";
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let answer = http::send(self.http.get(&url), what).await?;
        if !answer.status.is_success() {
            return Err(AuthError::OAuthProvider(format!(
                "{what}: provider answered {}",
                answer.status
            )));
        }
        let doc: Discovery = answer.json(what)?;
        // OIDC Discovery §4.3: the document must be about the issuer it was fetched for.
        if doc.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
            return Err(AuthError::OAuthProvider(format!(
                "{what}: document is for issuer {:?}, not {issuer:?}",
                printable(&doc.issuer)
            )));
        }
        // The spec's default when the provider does not say is client_secret_basic.
        let basic_auth = doc
            .token_endpoint_auth_methods_supported
            .as_ref()
            .is_none_or(|m| m.iter().any(|m| m == "client_secret_basic"));
        Ok(Resolved {
            authorize: parse_url(&doc.authorization_endpoint, "authorization_endpoint")?,
            token: parse_url(&doc.token_endpoint, "token_endpoint")?,
            userinfo: doc
                .userinfo_endpoint
                .as_deref()
                .map(|u| parse_url(u, "userinfo_endpoint"))
                .transpose()?,
            oidc: Some((doc.issuer, parse_url(&doc.jwks_uri, "jwks_uri")?)),
            basic_auth,
        })
    }

    async fn exchange(
        &self,
        provider: &Provider,
        resolved: &Resolved,
        code: &str,
        login: &LoginRequest<'_>,
    ) -> Result<TokenAnswer, AuthError> {
        let what = "token endpoint";
        let settings = &provider.settings;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", login.callback),
            ("code_verifier", login.pkce_verifier),
        ];
        let mut request = self
            .http
            .post(resolved.token.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if resolved.basic_auth {
            // RFC 6749 §2.3.1: both parts form-encoded before the Basic encoding.
            let credentials = format!(
                "{}:{}",
                form_encode(&settings.client_id),
                form_encode(&settings.client_secret)
            );
            request = request.header(
                reqwest::header::AUTHORIZATION,
                format!("Basic {}", STANDARD.encode(credentials)),
            );
        } else {
            form.push(("client_id", &settings.client_id));
            form.push(("client_secret", &settings.client_secret));
        }
        let answer = http::send(request.form(&form), what).await?;
        if answer.status.is_client_error() {
            let error = answer
                .oauth_error()
                .unwrap_or_else(|| answer.status.to_string());
            return Err(AuthError::OAuth(format!(
                "the provider refused the code: {error}"
            )));
        }
        if !answer.status.is_success() {
            return Err(AuthError::OAuthProvider(format!(
                "{what}: provider answered {}",
                answer.status
            )));
        }
        // GitHub answers 200 with an error body.
        if let Some(error) = answer.oauth_error() {
            return Err(AuthError::OAuth(format!(
                "the provider refused the code: {error}"
            )));
        }
        answer.json(what)
    }

    async fn verify_id_token(
        &self,
        provider: &Provider,
        issuer: &str,
        jwks_uri: &Url,
        id_token: &str,
        nonce: &str,
        now: SystemTime,
    ) -> Result<IdClaims, AuthError> {
        use jsonwebtoken::Algorithm as A;
        let invalid = |why: &str| AuthError::OAuthProvider(format!("ID token {why}"));
        let header = jsonwebtoken::decode_header(id_token).map_err(|_| invalid("malformed"))?;
        if !matches!(
            header.alg,
            A::RS256
                | A::RS384
                | A::RS512
                | A::PS256
                | A::PS384
                | A::PS512
                | A::ES256
                | A::ES384
                | A::EdDSA
        ) {
            return Err(invalid("signed with an algorithm that is not allowed"));
        }
        let kid = header.kid.as_deref();
        let mut jwks = self.jwks(provider, jwks_uri, now, false).await?;
        if find_key(&jwks, kid).is_none() {
            jwks = self.jwks(provider, jwks_uri, now, true).await?;
        }
        let jwk = find_key(&jwks, kid).ok_or_else(|| invalid("signed with an unknown key"))?;
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk)
            .map_err(|_| invalid("key in the provider's JWKS is unusable"))?;
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        // Time is checked below against the service's clock.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[&provider.settings.client_id]);
        let claims = jsonwebtoken::decode::<IdClaims>(id_token, &key, &validation)
            .map_err(|e| invalid(&format!("rejected: {:?}", e.kind())))?
            .claims;
        let now_s = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        if now_s >= claims.exp.saturating_add(CLOCK_SKEW.as_secs()) {
            return Err(invalid("expired"));
        }
        if claims
            .iat
            .is_some_and(|iat| iat > now_s + CLOCK_SKEW.as_secs())
        {
            return Err(invalid("issued in the future"));
        }
        if claims.aud.len() > 1 && claims.azp.as_deref() != Some(&provider.settings.client_id) {
            return Err(invalid("authorized party is not this client"));
        }
        if claims.nonce.as_deref() != Some(nonce) {
            return Err(AuthError::OAuth(
                "ID token nonce does not match the login".into(),
            ));
        }
        Ok(claims)
    }

    async fn jwks(
        &self,
        provider: &Provider,
        jwks_uri: &Url,
        now: SystemTime,
        refetch: bool,
    ) -> Result<Arc<jsonwebtoken::jwk::JwkSet>, AuthError> {
        let cached = provider
            .jwks
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some((jwks, at)) = cached {
            let age = now.duration_since(at).unwrap_or_default();
            if (!refetch && age < METADATA_TTL) || (refetch && age < JWKS_REFETCH_GAP) {
                return Ok(jwks);
            }
        }
        let what = "JWKS";
        let answer = http::send(self.http.get(jwks_uri.clone()), what).await?;
        if !answer.status.is_success() {
            return Err(AuthError::OAuthProvider(format!(
                "{what}: provider answered {}",
                answer.status
            )));
        }
        let jwks: Arc<jsonwebtoken::jwk::JwkSet> = Arc::new(answer.json(what)?);
        store(&provider.jwks, jwks.clone(), now);
        Ok(jwks)
    }

    /// `GET url` as the signed-in user (the provider's access token), asking for JSON.
    async fn get_with_token(
        &self,
        url: &Url,
        access_token: &str,
        what: &str,
    ) -> Result<http::Answer, AuthError> {
        let request = self
            .http
            .get(url.clone())
            .bearer_auth(access_token)
            .header(reqwest::header::ACCEPT, "application/json");
        http::send(request, what).await
    }

    async fn userinfo(&self, url: &Url, access_token: &str) -> Result<ProviderIdentity, AuthError> {
        let what = "user info";
        let answer = self.get_with_token(url, access_token, what).await?;
        if !answer.status.is_success() {
            return Err(AuthError::OAuthProvider(format!(
                "{what}: provider answered {}",
                answer.status
            )));
        }
        let info: UserInfo = answer.json(what)?;
        let subject = match (info.sub, info.id) {
            (Some(sub), _) => sub,
            (None, Some(serde_json::Value::Number(n))) => n.to_string(),
            (None, Some(serde_json::Value::String(s))) => s,
            _ => return Err(AuthError::OAuthProvider(format!("{what}: no subject"))),
        };
        Ok(ProviderIdentity {
            subject,
            email: info.email,
            email_verified: info.email_verified.as_ref().is_some_and(is_true),
            name: info.name,
        })
    }

    async fn github_email(
        &self,
        url: &Url,
        access_token: &str,
    ) -> Result<Option<String>, AuthError> {
        #[derive(Deserialize)]
        struct Email {
            email: String,
            #[serde(default)]
            primary: bool,
            #[serde(default)]
            verified: bool,
        }
        let what = "user emails";
        let answer = self.get_with_token(url, access_token, what).await?;
        if !answer.status.is_success() {
            return Ok(None);
        }
        let emails: Vec<Email> = answer.json(what)?;
        Ok(emails
            .into_iter()
            .filter(|e| e.verified)
            .max_by_key(|e| e.primary)
            .map(|e| e.email))
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    id_token: Option<String>,
}

#[derive(Deserialize)]
struct IdClaims {
    sub: String,
    exp: u64,
    iat: Option<u64>,
    #[serde(default, deserialize_with = "one_or_many")]
    aud: Vec<String>,
    azp: Option<String>,
    nonce: Option<String>,
    email: Option<String>,
    email_verified: Option<serde_json::Value>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct UserInfo {
    sub: Option<String>,
    id: Option<serde_json::Value>,
    email: Option<String>,
    email_verified: Option<serde_json::Value>,
    name: Option<String>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

/// `true`, or the string `"true"` some providers send.
fn is_true(value: &serde_json::Value) -> bool {
    value.as_bool() == Some(true) || value.as_str() == Some("true")
}

fn find_key<'a>(
    jwks: &'a jsonwebtoken::jwk::JwkSet,
    kid: Option<&str>,
) -> Option<&'a jsonwebtoken::jwk::Jwk> {
    match kid {
        Some(kid) => jwks.find(kid),
        // Without a kid, only an unambiguous set will do.
        None if jwks.keys.len() == 1 => jwks.keys.first(),
        None => None,
    }
}

fn parse_url(url: &str, what: &str) -> Result<Url, AuthError> {
    Url::parse(url).map_err(|_| AuthError::OAuthProvider(format!("{what} is not a URL")))
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn fresh<T>(cell: &Cached<T>, now: SystemTime) -> Option<Arc<T>> {
    let guard = cell
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (value, at) = guard.as_ref()?;
    (now.duration_since(*at).unwrap_or_default() < METADATA_TTL).then(|| value.clone())
}

fn store<T>(cell: &Cached<T>, value: Arc<T>, now: SystemTime) {
    *cell
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((value, now));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_matches_rfc7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn email_verified_is_true_only_when_said_so() {
        assert!(is_true(&serde_json::json!(true)));
        assert!(is_true(&serde_json::json!("true")));
        assert!(!is_true(&serde_json::json!(false)));
        assert!(!is_true(&serde_json::json!("yes")));
        assert!(!is_true(&serde_json::json!(1)));
    }
}
