//! The caller of a request as Portico forwards it: [`Verifier`] (how this service checks
//! it), [`Caller`] (who it is, an axum extractor).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::extract::FromRef;
use axum::extract::FromRequestParts;
use http::request::Parts;
use http::{HeaderMap, HeaderName};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use portico_core::error::{ApiError, ErrorCode};
use serde::Deserialize;

/// Where the gateway serves the keys `X-Portico-Identity` is signed with.
pub const JWKS_PATH: &str = "/.well-known/portico-identity-jwks.json";
/// The `iss` of every identity token.
const ISSUER: &str = "portico-gateway";
/// The header carrying the identity token.
const IDENTITY_HEADER: &str = "x-portico-identity";
/// Clock skew allowed on `exp` and `iat`.
const LEEWAY: Duration = Duration::from_secs(5);
/// A token with an unknown `kid` fetches the JWKS again at most this often.
const REFETCH: Duration = Duration::from_secs(10);
/// How long a JWKS request may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a [`Verifier`] could not be made.
#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    /// The Portico URL is not an `http(s)://` URL.
    #[error("invalid Portico URL {url:?}: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The internal token header is not a header name.
    #[error("invalid header name {0:?}")]
    Header(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Checks the identity Portico forwards with a request. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Verifier(Arc<Mode>);

#[derive(Debug)]
enum Mode {
    Jwks(Jwks),
    InternalToken { header: HeaderName, secret: Vec<u8> },
}

#[derive(Debug)]
struct Jwks {
    url: String,
    audience: String,
    client: reqwest::Client,
    keys: RwLock<Keys>,
    /// Held while the JWKS is fetched, so concurrent misses fetch it once.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("kids", &self.by_kid.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The claims of `X-Portico-Identity` this crate reads.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    token_type: Option<String>,
}

impl Verifier {
    /// Verifies `X-Portico-Identity` with the gateway's keys, fetched from
    /// `{portico_url}/.well-known/portico-identity-jwks.json`; `audience` is this service's
    /// upstream name in Portico's config (the token's `aud`).
    pub fn jwks(portico_url: &str, audience: &str) -> Result<Self, VerifierError> {
        let base = portico_url.trim_end_matches('/');
        let parsed: http::Uri = base.parse().map_err(|e| VerifierError::Url {
            url: portico_url.to_owned(),
            reason: format!("{e}"),
        })?;
        if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.host().is_none() {
            return Err(VerifierError::Url {
                url: portico_url.to_owned(),
                reason: "must be http(s)://host[:port]".into(),
            });
        }
        let client = crate::http_client(FETCH_TIMEOUT).map_err(VerifierError::Client)?;
        Ok(Self(Arc::new(Mode::Jwks(Jwks {
            url: format!("{base}{JWKS_PATH}"),
            audience: audience.to_owned(),
            client,
            keys: RwLock::default(),
            fetching: tokio::sync::Mutex::new(()),
        }))))
    }

    /// Trusts `X-User-ID`, `X-User-Email` and `X-User-Permissions` on requests that carry
    /// `header` (e.g. `X-Internal-Auth`) with `secret`, the upstream's `internal_token`.
    pub fn internal_token(header: &str, secret: &str) -> Result<Self, VerifierError> {
        let header = HeaderName::try_from(header.to_ascii_lowercase())
            .map_err(|_| VerifierError::Header(header.to_owned()))?;
        Ok(Self(Arc::new(Mode::InternalToken {
            header,
            secret: secret.as_bytes().to_vec(),
        })))
    }

    /// The caller of a request with these headers.
    pub async fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        match &*self.0 {
            Mode::Jwks(jwks) => {
                let token = headers
                    .get(IDENTITY_HEADER)
                    .ok_or_else(missing)?
                    .to_str()
                    .map_err(|_| invalid("X-Portico-Identity is not text"))?;
                jwks.verify(token).await
            }
            Mode::InternalToken { header, secret } => {
                let presented = headers.get(header).ok_or_else(missing)?;
                if !constant_time_eq(presented.as_bytes(), secret) {
                    return Err(invalid("the internal token does not match"));
                }
                let text = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let user_id = text("x-user-id");
                if user_id.is_empty() {
                    return Err(missing());
                }
                let permissions = text("x-user-permissions")
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect();
                Ok(Caller {
                    user_id,
                    email: text("x-user-email"),
                    permissions,
                    roles: Vec::new(),
                    token_type: None,
                })
            }
        }
    }
}

impl Jwks {
    async fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| invalid("X-Portico-Identity is not a JWT"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(invalid("X-Portico-Identity is not signed with EdDSA"));
        }
        let kid = header
            .kid
            .ok_or_else(|| invalid("X-Portico-Identity has no kid"))?;
        let key = match self.key(&kid) {
            Some(key) => key,
            None => {
                self.refresh().await?;
                self.key(&kid)
                    .ok_or_else(|| invalid("X-Portico-Identity is signed with an unknown key"))?
            }
        };
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[&self.audience]);
        validation.leeway = LEEWAY.as_secs();
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| match e
            .kind()
        {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => ApiError::new(
                ErrorCode::Auth002,
                "the X-Portico-Identity token has expired",
            ),
            _ => invalid("X-Portico-Identity does not verify"),
        })?;
        let c = data.claims;
        Ok(Caller {
            user_id: c.sub,
            email: c.email,
            permissions: c.permissions,
            roles: c.roles,
            token_type: c.token_type,
        })
    }

    fn key(&self, kid: &str) -> Option<DecodingKey> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        keys.by_kid.get(kid).cloned()
    }

    /// Fetches the JWKS, unless it was fetched within [`REFETCH`].
    async fn refresh(&self) -> Result<(), ApiError> {
        let _one = self.fetching.lock().await;
        let recent = {
            let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
            keys.fetched_at.is_some_and(|at| at.elapsed() < REFETCH)
        };
        if recent {
            return Ok(());
        }
        let fetched = self.fetch().await;
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        keys.fetched_at = Some(Instant::now());
        match fetched {
            Ok(by_kid) => {
                keys.by_kid = by_kid;
                Ok(())
            }
            Err(reason) => {
                tracing::warn!(url = %self.url, "cannot fetch Portico's identity keys: {reason}");
                Err(ApiError::new(
                    ErrorCode::Sys002,
                    "Portico's identity keys cannot be fetched",
                ))
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, String> {
        let response = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        let mut by_kid = HashMap::new();
        for jwk in &set.keys {
            let (Some(kid), Ok(key)) = (jwk.common.key_id.clone(), DecodingKey::from_jwk(jwk))
            else {
                continue;
            };
            by_kid.insert(kid, key);
        }
        Ok(by_kid)
    }
}

/// Who is calling, as Portico vouches for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user (or service client) id.
    pub user_id: String,
    /// The user's email (empty for services).
    pub email: String,
    /// What the caller may do.
    pub permissions: Vec<String>,
    /// The caller's roles (empty in internal-token mode: the headers do not carry them).
    pub roles: Vec<String>,
    /// `user`, `api_key` or `service` (`None` in internal-token mode).
    pub token_type: Option<String>,
}

impl Caller {
    /// `Ok` when the caller holds `permission` (a `*` or `prefix.*` grant counts), else 403
    /// `AUTH_006` in the envelope.
    pub fn require(&self, permission: &str) -> Result<(), ApiError> {
        if portico_core::permissions::permits(&self.permissions, permission) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::Auth006,
                format!("the {permission} permission is required"),
            ))
        }
    }
}

impl<S> FromRequestParts<S> for Caller
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Verifier::from_ref(state).caller(&parts.headers).await
    }
}

fn missing() -> ApiError {
    ApiError::new(
        ErrorCode::Auth003,
        "no identity from Portico on this request",
    )
}

fn invalid(message: &str) -> ApiError {
    ApiError::new(ErrorCode::Auth001, message)
}

/// Compares without stopping at the first difference (the length is not secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
