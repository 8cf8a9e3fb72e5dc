//! Ed25519 signing keys for access tokens: one key signs, every key whose tokens may still
//! be alive is published in the JWKS, and rotation moves between the two.
//!
//! A key's `kid` is its RFC 7638 JWK thumbprint (SHA-256 over the canonical public JWK,
//! base64url), so anyone holding the JWKS can recompute it and no two keys share one.
//! Private keys are kept as PKCS#8 DER (RFC 8410) in a [`KeyRecord`], the plain data the
//! store persists (field for field the store's `SigningKeyRecord`, with `alg` always
//! `EdDSA`).
//!
//! # Layout
//! - this module: [`SigningKey`] (generate, load, kid) and [`KeyRecord`].
//! - [`set`]: [`KeySet`] — the signer plus the published verification keys, and the JWKS.
//! - [`rotation`]: [`rotate`] — pure functions that retire the signer and add a new one.

use std::fmt;
use std::time::SystemTime;

use ed25519_dalek::Signer as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use rand::TryRngCore as _;

pub mod rotation;
pub mod set;

pub use rotation::{PUBLISH_GRACE, Rotation, rotate, rotate_to};
pub use set::KeySet;

/// Why a key could not be made, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The operating system's random source failed.
    #[error("operating system random source failed")]
    Random(#[source] rand::rand_core::OsError),
    /// A private key is not valid Ed25519 PKCS#8 DER.
    #[error("signing key {kid} is not a valid Ed25519 PKCS#8 key")]
    InvalidPrivateKey {
        /// The record's kid (empty when loading raw bytes).
        kid: String,
    },
    /// A public key is not a valid Ed25519 point.
    #[error("public key {kid} is not a valid Ed25519 key")]
    InvalidPublicKey {
        /// The record's kid.
        kid: String,
    },
    /// A record's private key, public key and kid do not belong together.
    #[error("signing key {kid}: private key, public key and kid do not match")]
    Mismatch {
        /// The record's kid.
        kid: String,
    },
    /// No record is a current (unretired) key: one must be generated first.
    #[error("no current signing key")]
    NoCurrentKey,
}

/// One signing key as the store keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Key id, the RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// PKCS#8 DER of the private key.
    pub private_key: Vec<u8>,
    /// The 32-byte Ed25519 public key.
    pub public_key: Vec<u8>,
    /// When the key was made.
    pub created_at: SystemTime,
    /// When the key stopped signing; `None` while it is the current key.
    pub not_after: Option<SystemTime>,
    /// When the key leaves the JWKS (every token it signed has expired by then); `None`
    /// while it is the current key.
    pub expires_at: Option<SystemTime>,
}

impl KeyRecord {
    /// Whether the key still signs new tokens.
    pub fn is_current(&self) -> bool {
        self.not_after.is_none()
    }

    /// Whether tokens signed by this key may still verify at `now`.
    pub fn is_published(&self, now: SystemTime) -> bool {
        self.expires_at.is_none_or(|until| now < until)
    }
}

impl fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRecord")
            .field("kid", &self.kid)
            .field("private_key", &"***")
            .field("created_at", &self.created_at)
            .field("not_after", &self.not_after)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// An Ed25519 private key ready to sign tokens, with its kid.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    public: [u8; 32],
    pkcs8: Vec<u8>,
    /// Expanded once here rather than per token (zeroized on drop by ed25519-dalek).
    key: ed25519_dalek::SigningKey,
}

impl SigningKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut seed)
            .map_err(KeyError::Random)?;
        Self::from_seed(&seed)
    }

    /// The key whose 32-byte Ed25519 secret (RFC 8032 seed) is `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self, KeyError> {
        Self::from_dalek(&ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// Loads a key from PKCS#8 DER, as in [`KeyRecord::private_key`].
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let key = ed25519_dalek::SigningKey::from_pkcs8_der(der)
            .map_err(|_| KeyError::InvalidPrivateKey { kid: String::new() })?;
        Self::from_dalek(&key)
    }

    /// Loads the key of a record, checking that its kid and public key belong to it.
    pub fn from_record(record: &KeyRecord) -> Result<Self, KeyError> {
        let key =
            Self::from_pkcs8_der(&record.private_key).map_err(|_| KeyError::InvalidPrivateKey {
                kid: record.kid.clone(),
            })?;
        if key.kid != record.kid || key.public[..] != record.public_key[..] {
            return Err(KeyError::Mismatch {
                kid: record.kid.clone(),
            });
        }
        Ok(key)
    }

    fn from_dalek(key: &ed25519_dalek::SigningKey) -> Result<Self, KeyError> {
        let pkcs8 = key
            .to_pkcs8_der()
            .map_err(|_| KeyError::InvalidPrivateKey { kid: String::new() })?
            .as_bytes()
            .to_vec();
        let public = key.verifying_key().to_bytes();
        Ok(Self {
            kid: thumbprint(&public),
            public,
            pkcs8,
            key: key.clone(),
        })
    }

    /// The key id put in the header of every token this key signs.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public
    }

    /// The private key as PKCS#8 DER.
    pub fn private_key_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The Ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// The record to store for this key as the current signer, made at `now`.
    pub fn to_record(&self, now: SystemTime) -> KeyRecord {
        KeyRecord {
            kid: self.kid.clone(),
            private_key: self.pkcs8.clone(),
            public_key: self.public.to_vec(),
            created_at: now,
            not_after: None,
            expires_at: None,
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The RFC 7638 thumbprint of an Ed25519 public key: SHA-256 of the JWK's required members
/// in lexicographic order, base64url ([`portico_core::jws::ed25519_thumbprint`]).
pub fn thumbprint(public_key: &[u8; 32]) -> String {
    portico_core::jws::ed25519_thumbprint(public_key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn b64(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s).unwrap()
    }

    #[test]
    fn kid_is_the_rfc_8037_thumbprint() {
        // RFC 8037 appendix A.1 (key) and A.3 (thumbprint).
        let seed: [u8; 32] = b64("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
            .try_into()
            .unwrap();
        let key = SigningKey::from_seed(&seed).unwrap();
        assert_eq!(
            key.public_key().to_vec(),
            b64("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
        );
        assert_eq!(key.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn key_round_trips_through_its_record() {
        let key = SigningKey::generate().unwrap();
        let record = key.to_record(SystemTime::now());
        let loaded = SigningKey::from_record(&record).unwrap();
        assert_eq!(loaded.kid(), key.kid());
        assert_eq!(loaded.public_key(), key.public_key());
        assert_eq!(
            SigningKey::from_pkcs8_der(key.private_key_der())
                .unwrap()
                .kid(),
            key.kid()
        );
        assert!(!format!("{record:?}").contains(&format!("{:?}", record.private_key)));
    }

    #[test]
    fn record_with_foreign_public_key_is_refused() {
        let mut record = SigningKey::generate().unwrap().to_record(SystemTime::now());
        record.public_key = SigningKey::generate().unwrap().public_key().to_vec();
        assert!(matches!(
            SigningKey::from_record(&record),
            Err(KeyError::Mismatch { .. })
        ));
        record.private_key = vec![1, 2, 3];
        assert!(matches!(
            SigningKey::from_record(&record),
            Err(KeyError::InvalidPrivateKey { .. })
        ));
    }

    #[test]
    fn generated_keys_differ() {
        let a = SigningKey::generate().unwrap();
        let b = SigningKey::generate().unwrap();
        assert_ne!(a.kid(), b.kid());
    }
}
