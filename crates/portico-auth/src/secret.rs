//! Opaque secrets: refresh tokens, API keys, random ids, and the hashes they are stored as.
//!
//! Every secret is drawn from [`rand::rng`], a CSPRNG (ChaCha12) seeded from the operating
//! system and reseeded periodically, and encoded base64url without padding so it travels
//! unchanged in JSON, headers and URL fragments.
//!
//! Secrets are stored only as [`hash_secret`] digests (SHA-256, hex). A fast hash is right
//! here — unlike passwords, these secrets carry 256 bits of entropy, so there is nothing to
//! guess and nothing a slow hash would protect. Stored digests are compared with
//! [`hashes_match`], in constant time.
//!
//! An API key reads `pk_<prefix>_<secret>`: the prefix (10 lowercase letters and digits) is
//! stored in clear and indexed, so a presented key is found with one lookup and then checked
//! against its stored hash; the secret part is 32 random bytes.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Random bytes in a refresh token.
pub const REFRESH_TOKEN_BYTES: usize = 32;
/// Random bytes in the secret part of an API key.
pub const API_KEY_SECRET_BYTES: usize = 32;
/// Characters in a generated API key's lookup prefix.
pub const API_KEY_PREFIX_LEN: usize = 10;
/// What every API key starts with.
pub const API_KEY_MARKER: &str = "pk_";

/// Shortest and longest lookup prefix [`ApiKey::parse`] accepts.
const PREFIX_RANGE: std::ops::RangeInclusive<usize> = 8..=12;
/// Characters of an unpadded base64url encoding of [`API_KEY_SECRET_BYTES`].
const API_KEY_SECRET_CHARS: usize = (API_KEY_SECRET_BYTES * 4).div_ceil(3);
const PREFIX_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// `bytes` random bytes, base64url without padding.
///
/// For any other one-time value that must not be guessed (OAuth `state`, PKCE verifier,
/// `nonce`): 32 bytes give 43 characters.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(&buf)
}

/// A new refresh token: 32 random bytes, base64url (43 characters).
pub fn refresh_token() -> String {
    random_token(REFRESH_TOKEN_BYTES)
}

/// A new random id: 128 bits as 32 lowercase hex characters.
pub fn new_id() -> String {
    portico_core::hex::u128_string(rand::rng().random())
}

/// The digest a secret is stored as: SHA-256, 64 lowercase hex characters.
pub fn hash_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(2 * digest.len());
    portico_core::hex::push_bytes(&mut out, &digest);
    out
}

/// Whether two stored digests are equal, in time that does not depend on where they differ.
///
/// Digests of different lengths are unequal (the length of a digest is no secret).
pub fn hashes_match(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Whether `secret` hashes to `stored` (a [`hash_secret`] digest), in constant time.
pub fn secret_matches(secret: &str, stored: &str) -> bool {
    hashes_match(&hash_secret(secret), stored)
}

/// A newly generated API key. Shown to its owner once; only [`ApiKey::hash`] is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    prefix: String,
    full: String,
}

impl ApiKey {
    /// A fresh key `pk_<10-char prefix>_<43-char secret>`.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let prefix: String = (0..API_KEY_PREFIX_LEN)
            .map(|_| char::from(PREFIX_ALPHABET[rng.random_range(0..PREFIX_ALPHABET.len())]))
            .collect();
        let secret = random_token(API_KEY_SECRET_BYTES);
        let full = format!("{API_KEY_MARKER}{prefix}_{secret}");
        Self { prefix, full }
    }

    /// The lookup prefix, stored in clear (e.g. `k3x9q0abcd`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The whole key as given to its owner.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The digest to store ([`hash_secret`] of the whole key).
    pub fn hash(&self) -> String {
        hash_secret(&self.full)
    }

    /// Splits a presented key into `(prefix, full key)` when it has an API key's shape:
    /// `pk_`, 8–12 lowercase letters or digits, `_`, then a base64url secret of at least 32
    /// bytes. Anything else — a JWT, a truncated key, stray characters — is `None`.
    ///
    /// Shape only: whether the key exists is for the store to say, by the prefix and then
    /// [`secret_matches`] on the full key.
    pub fn parse(presented: &str) -> Option<(&str, &str)> {
        let rest = presented.strip_prefix(API_KEY_MARKER)?;
        let (prefix, secret) = rest.split_once('_')?;
        let prefix_ok = PREFIX_RANGE.contains(&prefix.len())
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let secret_ok = secret.len() >= API_KEY_SECRET_CHARS
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        (prefix_ok && secret_ok).then_some((prefix, presented))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("prefix", &self.prefix)
            .field("secret", &"***")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_are_43_url_safe_chars_and_differ() {
        let a = refresh_token();
        let b = refresh_token();
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(a, b);
    }

    #[test]
    fn ids_are_32_hex_chars_and_differ() {
        let a = new_id();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, new_id());
    }

    #[test]
    fn hash_is_sha256_hex() {
        // SHA-256("abc"), FIPS 180-2 test vector.
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hashes_match_only_when_equal() {
        let h = hash_secret("secret");
        assert!(hashes_match(&h, &hash_secret("secret")));
        assert!(!hashes_match(&h, &hash_secret("secreT")));
        assert!(!hashes_match(&h, &h[..63]));
        assert!(secret_matches("secret", &h));
        assert!(!secret_matches("other", &h));
    }

    #[test]
    fn generated_api_key_parses_to_its_prefix() {
        let key = ApiKey::generate();
        assert!(key.as_str().starts_with("pk_"));
        assert_eq!(key.prefix().len(), API_KEY_PREFIX_LEN);
        assert_eq!(
            ApiKey::parse(key.as_str()),
            Some((key.prefix(), key.as_str()))
        );
        assert_eq!(key.hash(), hash_secret(key.as_str()));
        assert!(!format!("{key:?}").contains(&key.as_str()[14..]));
    }

    #[test]
    fn api_key_parse_refuses_other_shapes() {
        let secret = "a".repeat(43);
        assert!(ApiKey::parse(&format!("pk_abcdefgh_{secret}")).is_some());
        assert!(ApiKey::parse(&format!("pk_abcdefghijkl_{secret}")).is_some());
        // Secrets may contain '_' and '-': the prefix ends at the first '_'.
        assert!(ApiKey::parse(&format!("pk_abcdefgh_{}_-x", "b".repeat(43))).is_some());
        for bad in [
            String::new(),
            "eyJhbGciOiJFZERTQSJ9.e30.sig".to_string(),
            format!("sk_abcdefgh_{secret}"),
            format!("pk_abcdefg_{secret}"),
            format!("pk_abcdefghijklm_{secret}"),
            format!("pk_ABCDEFGH_{secret}"),
            format!("pk_abcdefgh_{}", &secret[..42]),
            format!("pk_abcdefgh_{secret}="),
            format!("pk_abcdefgh{secret}"),
        ] {
            assert_eq!(ApiKey::parse(&bad), None, "{bad}");
        }
    }
}
