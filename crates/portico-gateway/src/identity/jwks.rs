//! Local verification of auth's JWTs with its published JWKS.
//!
//! Only `EdDSA` (Ed25519) is accepted, from the header onwards: `none`, HMAC and any other
//! algorithm are refused before a key is looked up. The JWKS is fetched on the first JWT,
//! then kept; a `kid` it does not name makes it fetched again, at most once per
//! [`REFETCH_INTERVAL`] (once per [`RETRY_INTERVAL`] while fetching fails), so forged kids
//! cannot make the gateway hammer auth. Expiry is judged by the injected clock, never by
//! jsonwebtoken's reading of the system time.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use portico_core::clock::SharedClock;
use portico_core::error::{ApiError, ErrorCode};
use serde::Deserialize;

use super::client::{AuthClient, CallError};

/// Shortest time between two JWKS fetches caused by unknown kids.
pub(super) const REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// Shortest time between two attempts while fetching fails (auth down).
pub(super) const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// Longest token looked at (ours are under 1 KiB).
pub(super) const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The claims the gateway reads from an access or service token. `iss`, `aud` and the
/// signature are checked by jsonwebtoken; `exp` and `nbf` here, against the clock.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Claims {
    /// User id, or client id for service tokens.
    pub sub: String,
    /// The user's email (absent in service tokens).
    #[serde(default)]
    pub email: Option<String>,
    /// Effective permissions.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Role names.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Not before, Unix seconds.
    #[serde(default)]
    pub nbf: Option<u64>,
    /// `user` or `service`.
    pub token_type: String,
}

impl Claims {
    /// `exp` as a time.
    pub(super) fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.exp)
    }
}

/// Why no key was found for a `kid`.
enum KeyMiss {
    /// The JWKS, fetched or recently fetched, does not name it (AUTH_001).
    Unknown,
    /// The JWKS could not be fetched (SYS_002).
    Unavailable,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, Arc<DecodingKey>>,
    /// When the next fetch may be made (`None`: now).
    next_fetch: Option<Instant>,
}

/// Verifies JWTs with auth's JWKS.
pub(super) struct Verifier {
    client: Arc<AuthClient>,
    clock: SharedClock,
    validation: Validation,
    state: RwLock<State>,
    /// Held while fetching, so concurrent misses make one fetch.
    fetching: tokio::sync::Mutex<()>,
}

impl Verifier {
    /// A verifier for tokens of `issuer` whose `aud` names one of `audiences`.
    pub(super) fn new(
        client: Arc<AuthClient>,
        clock: SharedClock,
        issuer: &str,
        audiences: &[String],
    ) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.set_issuer(&[issuer]);
        validation.set_audience(audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Self {
            client,
            clock,
            validation,
            state: RwLock::new(State::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// The verified claims of `token`: AUTH_001 when it is malformed, not EdDSA, signed by
    /// a key auth does not publish, tampered with, of another issuer or audience, or not yet
    /// valid; AUTH_002 when expired at `now`; SYS_002 when the key cannot be fetched.
    pub(super) async fn verify(&self, token: &str, now: SystemTime) -> Result<Claims, ApiError> {
        let invalid = |why: &str| {
            tracing::debug!(reason = why, "JWT refused");
            ApiError::new(ErrorCode::Auth001, "invalid token")
        };
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid("too long"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed header"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(invalid("algorithm not EdDSA"));
        }
        let kid = header.kid.ok_or_else(|| invalid("no kid"))?;
        if kid.len() > 128 {
            return Err(invalid("kid too long"));
        }
        let key = match self.key(&kid).await {
            Ok(key) => key,
            Err(KeyMiss::Unknown) => return Err(invalid("unknown kid")),
            Err(KeyMiss::Unavailable) => return Err(unavailable()),
        };
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation).map_err(|e| {
            tracing::debug!(error = %e, "JWT refused");
            ApiError::new(ErrorCode::Auth001, "invalid token")
        })?;
        let claims = data.claims;
        // RFC 7519 §4.1.4: valid only while now < exp.
        if now >= claims.expires_at() {
            return Err(ApiError::new(ErrorCode::Auth002, "token expired"));
        }
        if claims
            .nbf
            .is_some_and(|nbf| now < UNIX_EPOCH + Duration::from_secs(nbf))
        {
            return Err(invalid("not yet valid"));
        }
        Ok(claims)
    }

    /// The key published under `kid`, fetching the JWKS when it does not name it (and the
    /// fetch limit allows).
    async fn key(&self, kid: &str) -> Result<Arc<DecodingKey>, KeyMiss> {
        if let Some(key) = self.known(kid) {
            return Ok(key);
        }
        let _fetching = self.fetching.lock().await;
        // Someone else may have fetched while this one waited.
        if let Some(key) = self.known(kid) {
            return Ok(key);
        }
        let now = self.clock.now();
        let (fetched_before, next_fetch) = {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            (!state.keys.is_empty(), state.next_fetch)
        };
        if next_fetch.is_some_and(|next| now < next) {
            return Err(if fetched_before {
                KeyMiss::Unknown
            } else {
                KeyMiss::Unavailable
            });
        }
        match self.client.jwks().await {
            Ok(document) => {
                let keys = parse_jwks(&document);
                tracing::debug!(keys = keys.len(), "fetched auth's JWKS");
                let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
                state.keys = keys;
                state.next_fetch = Some(now + REFETCH_INTERVAL);
                state.keys.get(kid).cloned().ok_or(KeyMiss::Unknown)
            }
            Err(CallError::Unavailable(_) | CallError::Refused(_)) => {
                let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
                state.next_fetch = Some(now + RETRY_INTERVAL);
                Err(KeyMiss::Unavailable)
            }
        }
    }

    fn known(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        state.keys.get(kid).cloned()
    }
}

/// SYS_002 for "auth cannot be asked".
pub(super) fn unavailable() -> ApiError {
    ApiError::new(
        ErrorCode::Sys002,
        "the auth service is unavailable; try again shortly",
    )
    .with_retry_after(super::remote::UNAVAILABLE_RETRY_AFTER)
}

/// The Ed25519 signature keys of a JWKS by kid. Keys of any other type or curve, meant for
/// another algorithm or for encryption, without a kid, or unreadable are skipped.
fn parse_jwks(document: &serde_json::Value) -> HashMap<String, Arc<DecodingKey>> {
    let Some(keys) = document.get("keys").and_then(serde_json::Value::as_array) else {
        tracing::warn!("auth's JWKS has no \"keys\" list");
        return HashMap::new();
    };
    let mut out = HashMap::new();
    for value in keys.iter().take(100) {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value.clone()) else {
            continue;
        };
        let AlgorithmParameters::OctetKeyPair(params) = &jwk.algorithm else {
            continue;
        };
        let usable = params.curve == EllipticCurve::Ed25519
            && jwk
                .common
                .key_algorithm
                .is_none_or(|alg| alg == KeyAlgorithm::EdDSA)
            && jwk
                .common
                .public_key_use
                .as_ref()
                .is_none_or(|u| *u == PublicKeyUse::Signature);
        let Some(kid) = jwk.common.key_id.clone().filter(|_| usable) else {
            continue;
        };
        match DecodingKey::from_jwk(&jwk) {
            Ok(key) if key.try_get_as_bytes().is_ok_and(|b| b.len() == 32) => {
                out.insert(kid, Arc::new(key));
            }
            _ => tracing::warn!(kid = %kid, "auth's JWKS has an unreadable Ed25519 key; skipped"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ed25519_signature_keys_with_a_kid_are_kept() {
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let doc = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "good", "alg": "EdDSA", "use": "sig"},
            {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "bare"},
            {"kty": "OKP", "crv": "Ed25519", "x": x},
            {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "enc", "use": "enc"},
            {"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "kid": "short"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "EC", "crv": "P-256", "x": x, "y": x, "kid": "ec"},
            {"kty": "weird", "kid": "weird"},
        ]});
        let mut kids: Vec<_> = parse_jwks(&doc).into_keys().collect();
        kids.sort();
        assert_eq!(kids, ["bare", "good"]);
        assert!(parse_jwks(&serde_json::json!({"nokeys": []})).is_empty());
    }
}
