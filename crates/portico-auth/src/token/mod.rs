//! Access tokens: their claims, signing, and verification.
//!
//! An access token is a compact JWS (RFC 7515/7519) signed with Ed25519 (`alg: EdDSA`,
//! RFC 8037) by the [`KeySet`]'s current key, with `kid` and `typ: JWT` in its header:
//!
//! ```text
//! {"typ":"JWT","alg":"EdDSA","kid":"<RFC 7638 thumbprint>"}
//! {"sub":"…","email":"…","permissions":[…],"roles":[…],"sid":"…","jti":"…",
//!  "iss":"…","aud":"portico","exp":…,"iat":…,"token_type":"user"}
//! ```
//!
//! Signing and verification are done here, on `ed25519-dalek` directly, with each key
//! decoded once in the [`KeySet`] (no per-token key parsing); the format is plain RFC 7515
//! compact serialization, and the tests check that `jsonwebtoken` reads our tokens with the
//! published JWK, as a gateway would.
//!
//! Time is always a parameter (`now`, from [`portico_core::clock::Clock::system_now`]), never
//! read here, so expiry is exact in tests.
//!
//! # Layout
//! - this module: [`AccessClaims`], [`TokenType`], [`TokenIssuer`] and [`sign`].
//! - [`verify`](mod@verify): [`TokenVerifier`], [`verify()`], [`TokenError`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::keys::KeySet;

mod audience;
pub mod verify;

pub use verify::{InvalidReason, TokenError, TokenVerifier, verify};

/// Whom a token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    /// A signed-in user (`sub` is the user id).
    User,
    /// A service client from the client-credentials grant (`sub` is the client id).
    Service,
}

impl TokenType {
    /// `"user"` or `"service"`, as in the claim and in `/auth/validate`'s answer.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Service => "service",
        }
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Subject: user id, or client id for service tokens.
    pub sub: String,
    /// The user's email; absent in service tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Effective permissions (roles already expanded).
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Role names.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Session id, so a logout can revoke the session's access tokens at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Unique token id.
    pub jti: String,
    /// Issuer.
    pub iss: String,
    /// Audiences; serialized as a string when there is one, as a list otherwise.
    #[serde(with = "audience")]
    pub aud: Vec<String>,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Not valid before, Unix seconds (not set by [`TokenIssuer`]; honoured when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// `user` or `service`.
    pub token_type: TokenType,
}

impl AccessClaims {
    /// `exp` as a time.
    pub fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.exp)
    }
}

/// Why a token could not be signed (claims that do not serialize; nothing a client can
/// cause).
#[derive(Debug, thiserror::Error)]
#[error("could not sign access token")]
pub struct SignError(#[source] serde_json::Error);

/// Makes claims with this Portico's issuer and token lifetime, and signs them.
#[derive(Debug, Clone)]
pub struct TokenIssuer {
    issuer: String,
    ttl: Duration,
}

impl TokenIssuer {
    /// An issuer stamping `iss = issuer` on tokens that live `ttl`.
    pub fn new(issuer: impl Into<String>, ttl: Duration) -> Self {
        Self {
            issuer: issuer.into(),
            ttl,
        }
    }

    /// The `iss` of every token.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// How long tokens live (`expires_in`).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Claims for `sub`, issued at `now`, expiring `ttl` later, with a fresh `jti`; email,
    /// permissions, roles and session are empty for the caller to fill:
    ///
    /// ```
    /// # use std::time::{Duration, SystemTime};
    /// # use portico_auth::token::{AccessClaims, TokenIssuer, TokenType};
    /// let issuer = TokenIssuer::new("https://auth.example", Duration::from_secs(900));
    /// let claims = AccessClaims {
    ///     email: Some("ada@example.com".into()),
    ///     roles: vec!["user".into()],
    ///     sid: Some("s1".into()),
    ///     ..issuer.claims("u1", TokenType::User, vec!["portico".into()], SystemTime::now())
    /// };
    /// assert_eq!(claims.exp - claims.iat, 900);
    /// ```
    pub fn claims(
        &self,
        sub: impl Into<String>,
        token_type: TokenType,
        aud: Vec<String>,
        now: SystemTime,
    ) -> AccessClaims {
        let iat = unix_seconds(now);
        AccessClaims {
            sub: sub.into(),
            email: None,
            permissions: Vec::new(),
            roles: Vec::new(),
            sid: None,
            jti: crate::secret::new_id(),
            iss: self.issuer.clone(),
            aud,
            exp: iat.saturating_add(self.ttl.as_secs()),
            iat,
            nbf: None,
            token_type,
        }
    }

    /// Signs `claims` with the set's current key ([`sign`]).
    pub fn issue(&self, keys: &KeySet, claims: &AccessClaims) -> Result<String, SignError> {
        sign(keys, claims)
    }
}

/// Signs `claims` with the set's current key: header `{"typ":"JWT","alg":"EdDSA","kid":…}`
/// ([`portico_core::jws::sign_eddsa`]).
pub fn sign(keys: &KeySet, claims: &AccessClaims) -> Result<String, SignError> {
    let signer = keys.signer();
    portico_core::jws::sign_eddsa(signer.kid(), claims, |message| signer.sign(message))
        .map_err(SignError)
}

/// `t` as whole Unix seconds, the JWT NumericDate (0 before the epoch).
pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
