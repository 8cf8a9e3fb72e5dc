//! Identity at the edge: who is calling, found from the request's credential by an
//! [`Authenticator`], and what the gateway tells the upstream about it.
//!
//! The credential is `Authorization: Bearer <access token | service token | API key>` or
//! `X-API-Key: <API key>`. Upstreams receive `X-User-ID`, `X-User-Email`,
//! `X-User-Permissions` (comma list) and their internal token; every `X-User-*`,
//! `X-Internal-*` and `X-Portico-*` header the client sent is removed first, so nothing a
//! client writes can pass for identity. With an identity, they also receive
//! `X-Portico-Identity`, a short-lived JWT the gateway signs ([`token`]).

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use http::{HeaderMap, HeaderName, HeaderValue};
use portico_core::error::ApiError;

mod cache;
mod client;
mod jwks;
pub mod remote;
mod shared_cache;
pub mod token;

pub use remote::{IdentityError, RemoteAuthSettings, RemoteAuthenticator};
pub use token::{IdentityKey, IdentityKeyError};

/// What kind of credential proved the identity (`token_type` of `/auth/validate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// A user's access token.
    User,
    /// An API key.
    ApiKey,
    /// A service (client-credentials) token.
    Service,
}

impl CredentialKind {
    /// `user`, `api_key` or `service`.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::User => "user",
            CredentialKind::ApiKey => "api_key",
            CredentialKind::Service => "service",
        }
    }

    /// The kind named by `/auth/validate`'s `token_type`.
    pub fn parse(token_type: &str) -> Option<Self> {
        match token_type {
            "user" => Some(CredentialKind::User),
            "api_key" => Some(CredentialKind::ApiKey),
            "service" => Some(CredentialKind::Service),
            _ => None,
        }
    }
}

/// A caller the gateway has authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user (or service client) id.
    pub user_id: String,
    /// The user's email (empty for services).
    pub email: String,
    /// What the caller may do.
    pub permissions: Vec<String>,
    /// The caller's roles.
    pub roles: Vec<String>,
    /// What kind of credential it presented.
    pub kind: CredentialKind,
    /// A stable, non-secret id of the credential (for per-API-key rate limits): a hash
    /// prefix, never the credential itself.
    pub credential_id: String,
    /// When the credential stops being valid, if it does.
    pub expires_at: Option<SystemTime>,
}

/// The [`Identity::credential_id`] of `credential`: the first 16 hex characters of its
/// SHA-256 — stable, short, and useless to anyone who reads it in a log or a metric.
pub fn credential_id(credential: &str) -> String {
    cache::credential_id(&cache::digest(credential))
}

/// [`credential_id`] from the credential's SHA-256, for a caller that has it already.
pub fn credential_id_of_digest(digest: &[u8; 32]) -> String {
    cache::credential_id(digest)
}

/// A boxed future, as [`Authenticator`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Finds who a credential belongs to.
///
/// Failures are the envelope's: AUTH_001 (invalid), AUTH_002 (expired), AUTH_007 (revoked),
/// or SYS_002 (503) when auth cannot be asked and nothing is cached.
pub trait Authenticator: Send + Sync + 'static {
    /// The identity of `credential` (a token or API key, as presented).
    fn authenticate<'a>(&'a self, credential: &'a str)
    -> BoxFuture<'a, Result<Identity, ApiError>>;

    /// [`Self::authenticate`], shared: what the gateway asks on every proxied request. An
    /// authenticator that can hand out one identity to many requests (without copying its
    /// strings each time) overrides this.
    fn authenticate_shared<'a>(
        &'a self,
        credential: &'a str,
    ) -> BoxFuture<'a, Result<std::sync::Arc<Identity>, ApiError>> {
        Box::pin(async move { self.authenticate(credential).await.map(std::sync::Arc::new) })
    }
}

/// The credential a request presents, if any: `Authorization: Bearer …`, else `X-API-Key`.
/// A malformed `Authorization` header is an error (AUTH_001), not an anonymous request.
pub fn credential(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    use portico_core::error::ErrorCode;
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let invalid = || {
            ApiError::new(
                ErrorCode::Auth001,
                "expected \"Authorization: Bearer <token>\"",
            )
        };
        let value = value.to_str().map_err(|_| invalid())?;
        let (scheme, token) = value.split_once(' ').ok_or_else(invalid)?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(invalid());
        }
        return Ok(Some(token));
    }
    match headers.get("x-api-key") {
        Some(value) => value
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(Some)
            .ok_or_else(|| ApiError::new(ErrorCode::Auth001, "X-API-Key is not a key")),
        None => Ok(None),
    }
}

/// Whether a client-sent header is one only the gateway may set (`X-User-*`,
/// `X-Internal-*`, `X-Portico-*`, or the upstream's own internal-token header).
pub fn is_reserved(name: &HeaderName, internal_token_header: Option<&HeaderName>) -> bool {
    let n = name.as_str();
    n.starts_with("x-user-")
        || n.starts_with("x-internal-")
        || n.starts_with("x-portico-")
        || internal_token_header.is_some_and(|h| h == name)
}

/// Removes every reserved header (see [`is_reserved`]) from `headers`.
pub fn strip_reserved(headers: &mut HeaderMap, internal_token_header: Option<&HeaderName>) {
    let reserved: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_reserved(name, internal_token_header))
        .cloned()
        .collect();
    for name in reserved {
        headers.remove(&name);
    }
}

/// Adds `X-User-ID`, `X-User-Email` and `X-User-Permissions` for `identity`. Values that
/// cannot be header values (control characters) are left out and logged.
pub fn insert_identity(headers: &mut HeaderMap, identity: &Identity) {
    IdentityHeaders::new(identity, None).insert_into(headers);
}

/// The headers that tell an upstream who calls: `X-User-ID`, `X-User-Email`,
/// `X-User-Permissions` (comma list) and, when signed, `X-Portico-Identity`. Made once per
/// caller and upstream by [`token::IdentitySigner::headers`] and inserted by copying
/// reference-counted values.
#[derive(Debug, Clone, Default)]
pub struct IdentityHeaders {
    values: Vec<(HeaderName, HeaderValue)>,
    token: Option<HeaderValue>,
}

impl IdentityHeaders {
    /// The headers for `identity`, with `token` as `X-Portico-Identity`. Values that cannot
    /// be header values (control characters) are left out and logged.
    pub fn new(identity: &Identity, token: Option<HeaderValue>) -> Self {
        let mut values = Vec::with_capacity(3);
        let mut put = |name: HeaderName, value: Vec<u8>| match HeaderValue::from_maybe_shared(
            bytes::Bytes::from(value),
        ) {
            Ok(v) => values.push((name, v)),
            Err(_) => tracing::warn!(
                header = name.as_str(),
                "identity value is not a valid header value; left out"
            ),
        };
        put(X_USER_ID, identity.user_id.as_bytes().to_vec());
        put(X_USER_EMAIL, identity.email.as_bytes().to_vec());
        put(
            X_USER_PERMISSIONS,
            identity.permissions.join(",").into_bytes(),
        );
        Self { values, token }
    }

    /// The `X-Portico-Identity` value, when one was made.
    pub fn token(&self) -> Option<&HeaderValue> {
        self.token.as_ref()
    }

    /// Sets every one of these headers on `headers` (replacing what is there).
    pub fn insert_into(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.values {
            headers.insert(name.clone(), value.clone());
        }
        if let Some(token) = &self.token {
            headers.insert(token::HEADER, token.clone());
        }
    }
}

/// `X-User-ID`.
const X_USER_ID: HeaderName = HeaderName::from_static("x-user-id");
/// `X-User-Email`.
const X_USER_EMAIL: HeaderName = HeaderName::from_static("x-user-email");
/// `X-User-Permissions`.
const X_USER_PERMISSIONS: HeaderName = HeaderName::from_static("x-user-permissions");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_headers_are_stripped_whatever_their_case() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("X-User-ID", "admin"),
            ("x-user-permissions", "*"),
            ("X-Internal-Auth", "guess"),
            ("X-Portico-Identity", "forged"),
            ("X-Internal-Token", "guess"),
            ("X-Custom-Token", "the upstream's configured token header"),
            ("Accept", "application/json"),
            ("X-Request-ID", "abc"),
        ] {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let custom = HeaderName::from_static("x-custom-token");
        strip_reserved(&mut h, Some(&custom));
        let mut left: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        left.sort();
        assert_eq!(left, ["accept", "x-request-id"]);
    }

    #[test]
    fn credential_ids_are_16_hex_and_differ() {
        let a = credential_id("pk_abc_secret");
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, credential_id("pk_abc_secreT"));
        assert!(!a.contains("abc"));
    }

    #[test]
    fn credential_comes_from_bearer_or_api_key_header() {
        let mut h = HeaderMap::new();
        assert_eq!(credential(&h).unwrap(), None);
        h.insert("x-api-key", "pk_abc_def".parse().unwrap());
        assert_eq!(credential(&h).unwrap(), Some("pk_abc_def"));
        h.insert("authorization", "Bearer tok".parse().unwrap());
        assert_eq!(credential(&h).unwrap(), Some("tok"));
        h.insert("authorization", "Basic dXNlcjpwdw==".parse().unwrap());
        assert!(credential(&h).is_err());
        h.insert("authorization", "Bearer ".parse().unwrap());
        assert!(credential(&h).is_err());
    }
}
