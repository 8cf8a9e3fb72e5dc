//! The key set: the one key that signs now, and every key whose tokens may still be alive,
//! published as a JWKS (RFC 7517, with the `OKP` key type of RFC 8037).

use std::time::SystemTime;

use jsonwebtoken::DecodingKey;
use serde_json::{Value, json};

use super::{KeyError, KeyRecord, SigningKey};

/// The signer plus the published verification keys. Immutable: a rotation builds a new set
/// from the updated records ([`KeySet::from_records`]).
#[derive(Clone)]
pub struct KeySet {
    signer: SigningKey,
    /// The signer's public key first, then older keys, newest first. A handful at most, so a
    /// linear search by kid beats hashing.
    published: Vec<PublishedKey>,
}

#[derive(Clone)]
struct PublishedKey {
    kid: String,
    decoding: DecodingKey,
    /// The decoded point, ready for verification without per-token decompression.
    verifying: ed25519_dalek::VerifyingKey,
    /// From when the key is no longer accepted; `None` for the signer.
    expires_at: Option<SystemTime>,
}

impl KeySet {
    /// A set holding only `signer` (first start, tests).
    pub fn new(signer: SigningKey) -> Self {
        let published = vec![PublishedKey::of(
            signer.kid().to_owned(),
            signer.key.verifying_key(),
            None,
        )];
        Self { signer, published }
    }

    /// The set described by stored records at `now`.
    ///
    /// The signer is the newest current (unretired) record; should there be several — two
    /// instances that each generated a key on first start — the others stay published, so
    /// their tokens keep verifying. Records past their `expires_at` are left out.
    pub fn from_records(records: &[KeyRecord], now: SystemTime) -> Result<Self, KeyError> {
        let live: Vec<&KeyRecord> = records.iter().filter(|r| r.is_published(now)).collect();
        let current = live
            .iter()
            .filter(|r| r.is_current())
            .max_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)))
            .ok_or(KeyError::NoCurrentKey)?;
        let mut set = Self::new(SigningKey::from_record(current)?);

        let mut others: Vec<&&KeyRecord> = live.iter().filter(|r| r.kid != current.kid).collect();
        others.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        for record in others {
            let public: [u8; 32] = record.public_key.as_slice().try_into().map_err(|_| {
                KeyError::InvalidPublicKey {
                    kid: record.kid.clone(),
                }
            })?;
            let verifying = ed25519_dalek::VerifyingKey::from_bytes(&public).map_err(|_| {
                KeyError::InvalidPublicKey {
                    kid: record.kid.clone(),
                }
            })?;
            set.published.push(PublishedKey::of(
                record.kid.clone(),
                verifying,
                record.expires_at,
            ));
        }
        Ok(set)
    }

    /// The key that signs new tokens.
    pub fn signer(&self) -> &SigningKey {
        &self.signer
    }

    /// The kid of the key that signs new tokens.
    pub fn current_kid(&self) -> &str {
        self.signer.kid()
    }

    /// The kids of every published key, the signer's first.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.published.iter().map(|k| k.kid.as_str())
    }

    /// The verification key published under `kid`, for `jsonwebtoken` users (a gateway
    /// verifying with this set directly). [`crate::token`] itself does not need it.
    pub fn decoding_key(&self, kid: &str) -> Option<&DecodingKey> {
        self.published
            .iter()
            .find(|k| k.kid == kid)
            .map(|k| &k.decoding)
    }

    /// The verification key published under `kid` that is still accepted at `now`. A
    /// long-lived set thus stops accepting a retired key when its window ends, even before
    /// the set is rebuilt.
    pub(crate) fn verifying_key_at(
        &self,
        kid: &str,
        now: SystemTime,
    ) -> Option<&ed25519_dalek::VerifyingKey> {
        self.published
            .iter()
            .find(|k| k.kid == kid && k.accepted_at(now))
            .map(|k| &k.verifying)
    }

    /// The JWKS served at `/.well-known/jwks.json`:
    /// `{"keys":[{"kty":"OKP","crv":"Ed25519","x":…,"kid":…,"alg":"EdDSA","use":"sig"}, …]}`,
    /// the signer's key first.
    pub fn jwks(&self) -> Value {
        jwks_of(self.published.iter())
    }

    /// [`KeySet::jwks`] without the keys whose window has ended by `now`.
    pub fn jwks_at(&self, now: SystemTime) -> Value {
        jwks_of(self.published.iter().filter(|k| k.accepted_at(now)))
    }
}

fn jwks_of<'a>(keys: impl Iterator<Item = &'a PublishedKey>) -> Value {
    let keys: Vec<Value> = keys
        .map(|k| portico_core::jws::ed25519_jwk(k.verifying.as_bytes(), &k.kid))
        .collect();
    json!({ "keys": keys })
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("current", &self.signer.kid())
            .field("published", &self.kids().collect::<Vec<_>>())
            .finish()
    }
}

impl PublishedKey {
    fn of(
        kid: String,
        verifying: ed25519_dalek::VerifyingKey,
        expires_at: Option<SystemTime>,
    ) -> Self {
        let public = verifying.as_bytes();
        Self {
            kid,
            // The raw 32 bytes are what jsonwebtoken's Ed25519 verifier reads.
            decoding: DecodingKey::from_ed_der(public),
            verifying,
            expires_at,
        }
    }

    fn accepted_at(&self, now: SystemTime) -> bool {
        self.expires_at.is_none_or(|until| now < until)
    }
}
