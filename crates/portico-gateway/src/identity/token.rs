//! `X-Portico-Identity`: a short-lived JWT the gateway signs for each proxied request with
//! an identity, for upstreams that want more than a shared secret.
//!
//! ```text
//! {"typ":"JWT","alg":"EdDSA","kid":"<RFC 7638 thumbprint>"}
//! {"iss":"portico-gateway","aud":"<upstream name>","sub":"<user id>","email":…,
//!  "permissions":[…],"roles":[…],"token_type":"user|api_key|service",
//!  "iat":…,"exp":iat+60}
//! ```
//!
//! A token is made once per identity and upstream and reused for [`REUSE`] (half its
//! lifetime, so a token handed on always has at least 30 s left): signing costs about as much
//! as the rest of a proxied request, and every request of a signed-in user would otherwise
//! pay it. The request is named by `X-Request-ID`, not by the token.
//!
//! Upstreams verify it with the gateway's JWKS, served at [`JWKS_PATH`]. The key is an
//! [`IdentityKey`]: the binary keeps it in `<data_dir>/gateway-identity.key`
//! ([`IdentityKey::load_or_create`]) so restarts keep verifiers working and instances sharing
//! the data directory share it. The compact form, `kid` and JWK are
//! [`portico_core::jws`]'s, the same as auth's access tokens.

use std::fmt;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use ed25519_dalek::Signer as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use http::HeaderValue;
use portico_core::clock::SharedClock;
use rand::TryRngCore as _;
use serde::Serialize;
use serde_json::{Value, json};

use super::Identity;

/// Where the gateway serves its JWKS.
pub const JWKS_PATH: &str = "/.well-known/portico-identity-jwks.json";
/// The `iss` of every identity token.
pub const ISSUER: &str = "portico-gateway";
/// How long an identity token is valid (`exp - iat`).
pub const LIFETIME: Duration = Duration::from_secs(60);
/// How long a token is handed out again for the same identity and upstream.
pub const REUSE: Duration = Duration::from_secs(30);
/// How many identity/upstream pairs keep a token at most.
const REUSE_CAPACITY: u64 = 10_000;
/// The header carrying the token.
pub const HEADER: http::HeaderName = http::HeaderName::from_static("x-portico-identity");

/// Why the identity key could not be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum IdentityKeyError {
    /// The operating system's random source failed.
    #[error("operating system random source failed")]
    Random,
    /// The file holds neither a 32-byte Ed25519 seed nor Ed25519 PKCS#8 DER.
    #[error("{path} is not an Ed25519 key (expected PKCS#8 DER or a 32-byte seed)")]
    Invalid {
        /// The file.
        path: String,
    },
    /// The key could not be encoded as PKCS#8.
    #[error("could not encode the gateway identity key")]
    Encode,
    /// Reading or writing the file failed.
    #[error("gateway identity key {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// The gateway's Ed25519 identity key, with its RFC 7638 `kid`.
#[derive(Clone)]
pub struct IdentityKey {
    key: ed25519_dalek::SigningKey,
    public: [u8; 32],
    kid: String,
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl IdentityKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<Self, IdentityKeyError> {
        let mut seed = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut seed)
            .map_err(|_| IdentityKeyError::Random)?;
        Ok(Self::from_seed(&seed))
    }

    /// The key whose RFC 8032 secret is `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self::from_dalek(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// A key from a file's bytes: Ed25519 PKCS#8 DER, or the raw 32-byte seed.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if let Ok(seed) = <&[u8; 32]>::try_from(bytes) {
            return Some(Self::from_seed(seed));
        }
        ed25519_dalek::SigningKey::from_pkcs8_der(bytes)
            .ok()
            .map(Self::from_dalek)
    }

    fn from_dalek(key: ed25519_dalek::SigningKey) -> Self {
        let public = key.verifying_key().to_bytes();
        Self {
            kid: portico_core::jws::ed25519_thumbprint(&public),
            public,
            key,
        }
    }

    /// The key in `path`; when there is none, a new one written there as PKCS#8 DER with
    /// 0600 permissions (`true` says it was created). Two processes starting together end
    /// up with the same key: the file appears whole (written aside, then linked) and only
    /// if it does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), IdentityKeyError> {
        let io = |source| IdentityKeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                return Self::from_bytes(&bytes)
                    .map(|key| (key, false))
                    .ok_or_else(|| IdentityKeyError::Invalid {
                        path: path.display().to_string(),
                    });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let key = Self::generate()?;
        let der = key
            .key
            .to_pkcs8_der()
            .map_err(|_| IdentityKeyError::Encode)?;
        let aside = path.with_extension(format!("key.{}.tmp", std::process::id()));
        let written = write_private(&aside, der.as_bytes()).map_err(io);
        let linked = written.and_then(|()| match std::fs::hard_link(&aside, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io(e)),
        });
        let _ = std::fs::remove_file(&aside);
        if linked? {
            Ok((key, true))
        } else {
            // Another instance created it first: use theirs.
            Self::load_or_create(path)
        }
    }

    /// The key id: the RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWKS listing this key: `{"keys":[{"kty":"OKP","crv":"Ed25519",…}]}`.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [portico_core::jws::ed25519_jwk(&self.public, &self.kid)] })
    }
}

/// Writes `bytes` to a new file only its owner may read.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The claims of an identity token.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'static str,
    aud: &'a str,
    sub: &'a str,
    email: &'a str,
    permissions: &'a [String],
    roles: &'a [String],
    token_type: &'static str,
    iat: u64,
    exp: u64,
}

impl Claims<'_> {
    /// Every claim but the times (and the fixed issuer), each length-prefixed, lists after
    /// their length: two different sets of claims never share a key. Built per proxied
    /// request of an identified caller, so it is plain byte pushing, not JSON.
    fn reuse_key(&self) -> Vec<u8> {
        let texts = [self.aud, self.sub, self.email, self.token_type];
        let lists = [self.permissions, self.roles];
        let size = texts.iter().map(|t| t.len() + 4).sum::<usize>()
            + lists
                .iter()
                .flat_map(|list| list.iter())
                .map(|t| t.len() + 4)
                .sum::<usize>()
            + 8;
        let mut key = Vec::with_capacity(size);
        let mut put = |bytes: &[u8]| {
            let length = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
            key.extend_from_slice(&length.to_le_bytes());
            key.extend_from_slice(bytes);
        };
        for text in texts {
            put(text.as_bytes());
        }
        for list in lists {
            let count = u32::try_from(list.len()).unwrap_or(u32::MAX);
            put(&count.to_le_bytes());
            for item in list {
                put(item.as_bytes());
            }
        }
        key
    }
}

/// Signs identity tokens with the gateway's key at the injected clock's time.
#[derive(Debug, Clone)]
pub struct IdentitySigner {
    key: IdentityKey,
    clock: SharedClock,
    /// The JWKS document, serialized once.
    jwks: bytes::Bytes,
    /// Tokens made, with their `iat`, by the claims they carry but the times
    /// ([`Claims::reuse_key`]).
    made: moka::sync::Cache<Vec<u8>, (HeaderValue, u64)>,
}

impl IdentitySigner {
    /// A signer with `key`, reading the time from `clock`.
    pub fn new(key: IdentityKey, clock: SharedClock) -> Self {
        let jwks = bytes::Bytes::from(key.jwks().to_string());
        let made = moka::sync::Cache::builder()
            .max_capacity(REUSE_CAPACITY)
            .time_to_live(REUSE)
            .build();
        Self {
            key,
            clock,
            jwks,
            made,
        }
    }

    /// The JWKS document.
    pub fn jwks(&self) -> bytes::Bytes {
        self.jwks.clone()
    }

    /// The `X-Portico-Identity` value for `identity` calling `audience` (an upstream's name):
    /// the one made for them in the last [`REUSE`] (by the injected clock), else a new one;
    /// `None` (logged) if it cannot be a header value.
    pub fn token(&self, identity: &Identity, audience: &str) -> Option<HeaderValue> {
        let now = self
            .clock
            .system_now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut claims = Claims {
            iss: ISSUER,
            aud: audience,
            sub: &identity.user_id,
            email: &identity.email,
            permissions: &identity.permissions,
            roles: &identity.roles,
            token_type: identity.kind.as_str(),
            iat: 0,
            exp: 0,
        };
        // Every claim but the times: equal keys mean equal tokens.
        let key = claims.reuse_key();
        if let Some((value, iat)) = self.made.get(&key)
            && now >= iat
            && now - iat < REUSE.as_secs()
        {
            return Some(value);
        }
        claims.iat = now;
        claims.exp = now.saturating_add(LIFETIME.as_secs());
        let token = portico_core::jws::sign_eddsa(&self.key.kid, &claims, |message| {
            self.key.key.sign(message).to_bytes()
        });
        match token.map(HeaderValue::try_from) {
            Ok(Ok(value)) => {
                self.made.insert(key, (value.clone(), now));
                Some(value)
            }
            _ => {
                tracing::warn!("identity token could not be made; X-Portico-Identity left out");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuse_keys_tell_every_set_of_claims_apart() {
        let (one, two) = (vec!["a,b".to_owned()], vec!["a".to_owned(), "b".to_owned()]);
        let claims = |sub, email, permissions, roles: &'static [String]| Claims {
            iss: ISSUER,
            aud: "etl",
            sub,
            email,
            permissions,
            roles,
            token_type: "user",
            iat: 0,
            exp: 0,
        };
        let keys = [
            claims("a", "bc", &one, &[]).reuse_key(),
            claims("ab", "c", &one, &[]).reuse_key(),
            claims("a", "bc", &two, &[]).reuse_key(),
            claims("a", "bc", &[], &[]).reuse_key(),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        let mut later = claims("a", "bc", &one, &[]);
        later.iat = 99;
        later.exp = 199;
        assert_eq!(
            later.reuse_key(),
            keys[0],
            "the times are not part of the key"
        );
    }

    #[test]
    fn a_seed_and_its_pkcs8_form_are_the_same_key() {
        let key = IdentityKey::from_seed(&[3u8; 32]);
        let der = key.key.to_pkcs8_der().unwrap();
        let again = IdentityKey::from_bytes(der.as_bytes()).unwrap();
        assert_eq!(again.kid(), key.kid());
        assert_eq!(
            IdentityKey::from_bytes(&[3u8; 32]).unwrap().kid(),
            key.kid()
        );
        assert!(IdentityKey::from_bytes(b"not a key").is_none());
        assert!(!format!("{key:?}").contains("key:"));
    }

    #[test]
    fn the_key_file_is_created_once_private_and_then_read() {
        let dir = std::env::temp_dir().join(format!("portico-idkey-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gateway-identity.key");
        let _ = std::fs::remove_file(&path);
        let (first, created) = IdentityKey::load_or_create(&path).unwrap();
        assert!(created);
        let (second, created) = IdentityKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(first.kid(), second.kid());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no file left aside"
        );
        std::fs::write(&path, b"garbage").unwrap();
        assert!(matches!(
            IdentityKey::load_or_create(&path),
            Err(IdentityKeyError::Invalid { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
