//! Verification of access tokens: only EdDSA, only published keys, exact time checks.
//!
//! The header is read first and decides everything that must be settled before a key is
//! chosen: `alg` must be exactly `EdDSA` (so `none`, HMAC with the public key as secret,
//! RSA and ECDSA are refused before any cryptography), `kid` must be present and name a key
//! of the [`KeySet`] that is still published, `typ` if present must be `JWT`, and `crit`
//! must be absent (we understand no header extensions). Then the Ed25519 signature is
//! checked with that one key (`verify_strict`: no malleable or small-order signatures), and
//! only then are the claims parsed; the issuer, audience and times are checked against the
//! `now` given, with a leeway of zero unless configured. Base64url is decoded strictly (no
//! padding, no stray bits), so each token has exactly one spelling.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portico_core::ErrorCode;
use serde::Deserialize;

use super::{AccessClaims, unix_seconds};
use crate::keys::KeySet;

/// Longest token looked at; ours are well under 1 KiB. Bounds the work an attacker can ask.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Longest `kid` looked up (ours are 43 characters).
const MAX_KID_BYTES: usize = 128;
/// Characters of a base64url Ed25519 signature (64 bytes).
const SIGNATURE_CHARS: usize = 86;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Valid but past `exp` (AUTH_002).
    #[error("token expired")]
    Expired,
    /// Signed under a `kid` that is not (or no longer) published (AUTH_001). A gateway
    /// holding a cached JWKS should refetch it once and retry.
    #[error("token signed by an unknown key")]
    UnknownKid(String),
    /// Anything else wrong with it (AUTH_001).
    #[error("invalid token: {0}")]
    Invalid(InvalidReason),
}

impl TokenError {
    /// The envelope code for this error: AUTH_002 when expired, AUTH_001 otherwise.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Expired => ErrorCode::Auth002,
            Self::UnknownKid(_) | Self::Invalid(_) => ErrorCode::Auth001,
        }
    }
}

/// What exactly was wrong with an invalid token (for logs; clients see AUTH_001).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidReason {
    /// Not three base64url parts, or a header that is not JSON.
    #[error("malformed")]
    Malformed,
    /// `alg` is anything but `EdDSA`.
    #[error("algorithm not accepted")]
    Algorithm,
    /// No `kid` in the header.
    #[error("missing kid")]
    MissingKid,
    /// `typ` is present and not `JWT`.
    #[error("wrong typ")]
    Type,
    /// A `crit` header, naming extensions we do not implement.
    #[error("critical header extension")]
    CriticalHeader,
    /// The signature does not match the header and claims.
    #[error("bad signature")]
    BadSignature,
    /// Claims missing, of the wrong type, or not JSON.
    #[error("malformed claims")]
    Claims,
    /// `iss` is not the expected issuer.
    #[error("wrong issuer")]
    Issuer,
    /// `aud` names none of the expected audiences.
    #[error("wrong audience")]
    Audience,
    /// `nbf` or `iat` lies in the future.
    #[error("not yet valid")]
    NotYetValid,
}

impl From<InvalidReason> for TokenError {
    fn from(reason: InvalidReason) -> Self {
        Self::Invalid(reason)
    }
}

/// Verifies tokens for one issuer and a set of accepted audiences. Build once, share.
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    issuer: String,
    audiences: Vec<String>,
    leeway: u64,
}

impl TokenVerifier {
    /// Accepts tokens with `iss == issuer` whose `aud` contains one of `audiences`, with
    /// zero leeway on `exp`, `nbf` and `iat`.
    pub fn new(
        issuer: impl Into<String>,
        audiences: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            audiences: audiences.into_iter().map(Into::into).collect(),
            leeway: 0,
        }
    }

    /// Allows clocks to disagree by `leeway` (whole seconds) on `exp`, `nbf` and `iat`.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway.as_secs();
        self
    }

    /// The claims of `token` if it is valid at `now`.
    pub fn verify(
        &self,
        keys: &KeySet,
        token: &str,
        now: SystemTime,
    ) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(InvalidReason::Malformed.into());
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(InvalidReason::Malformed.into());
        };

        let kid = check_header(header)?;
        let Some(key) = keys.verifying_key_at(&kid, now) else {
            return Err(TokenError::UnknownKid(kid));
        };

        let mut sig = [0u8; 64];
        if signature.len() != SIGNATURE_CHARS
            || URL_SAFE_NO_PAD.decode_slice(signature, &mut sig) != Ok(64)
        {
            return Err(InvalidReason::BadSignature.into());
        }
        let signed = &token[..header.len() + 1 + payload.len()];
        key.verify_strict(
            signed.as_bytes(),
            &ed25519_dalek::Signature::from_bytes(&sig),
        )
        .map_err(|_| InvalidReason::BadSignature)?;

        // Authentic from here on; still parsed defensively.
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| InvalidReason::Claims)?;
        let claims: AccessClaims =
            serde_json::from_slice(&payload).map_err(|_| InvalidReason::Claims)?;
        self.check_claims(&claims, unix_seconds(now))?;
        Ok(claims)
    }

    fn check_claims(&self, claims: &AccessClaims, now: u64) -> Result<(), TokenError> {
        if claims.iss != self.issuer {
            return Err(InvalidReason::Issuer.into());
        }
        if !claims.aud.iter().any(|a| self.audiences.contains(a)) {
            return Err(InvalidReason::Audience.into());
        }
        // RFC 7519 §4.1.4: valid only while now < exp.
        if now >= claims.exp.saturating_add(self.leeway) {
            return Err(TokenError::Expired);
        }
        let latest_start = now.saturating_add(self.leeway);
        if claims.iat > latest_start || claims.nbf.is_some_and(|nbf| nbf > latest_start) {
            return Err(InvalidReason::NotYetValid.into());
        }
        Ok(())
    }
}

/// Verifies `token` for `expected_iss` and `expected_aud` at `now` with zero leeway.
/// (Build a [`TokenVerifier`] once instead on hot paths.)
pub fn verify(
    keys: &KeySet,
    token: &str,
    expected_iss: &str,
    expected_aud: &str,
    now: SystemTime,
) -> Result<AccessClaims, TokenError> {
    TokenVerifier::new(expected_iss, [expected_aud]).verify(keys, token, now)
}

/// The header fields that decide whether a token is even considered.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<serde::de::IgnoredAny>,
}

/// Checks the (base64url) header and returns its `kid`.
fn check_header(header: &str) -> Result<String, TokenError> {
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| InvalidReason::Malformed)?;
    let header: RawHeader =
        serde_json::from_slice(&header).map_err(|_| InvalidReason::Malformed)?;
    if header.alg != "EdDSA" {
        return Err(InvalidReason::Algorithm.into());
    }
    if header.crit.is_some() {
        return Err(InvalidReason::CriticalHeader.into());
    }
    if header
        .typ
        .as_deref()
        .is_some_and(|typ| !typ.eq_ignore_ascii_case("JWT"))
    {
        return Err(InvalidReason::Type.into());
    }
    match header.kid {
        None => Err(InvalidReason::MissingKid.into()),
        Some(kid) if kid.len() > MAX_KID_BYTES => Err(InvalidReason::Malformed.into()),
        Some(kid) => Ok(kid),
    }
}
