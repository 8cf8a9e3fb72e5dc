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
//! pay it. The `X-User-*` values are made with it ([`IdentityHeaders`]), so a request of a
//! caller seen before copies four prepared header values. The reuse is per serving thread
//! (no lock or shared counter on the request path; a thread signs its own token). The request
//! is named by `X-Request-ID`, not by the token.
//!
//! Upstreams verify it with the gateway's JWKS, served at [`JWKS_PATH`]. The key is an
//! [`IdentityKey`]: the binary keeps it in `<data_dir>/gateway-identity.key`
//! ([`IdentityKey::load_or_create`]) so restarts keep verifiers working and instances sharing
//! the data directory share it. The compact form, `kid` and JWK are
//! [`portico_core::jws`]'s, the same as auth's access tokens.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher as _, RandomState};
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use ed25519_dalek::Signer as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use http::HeaderValue;
use portico_core::clock::SharedClock;
use rand::TryRngCore as _;
use serde::Serialize;
use serde_json::{Value, json};

use thread_local::ThreadLocal;

use super::{Identity, IdentityHeaders};

/// Where the gateway serves its JWKS.
pub const JWKS_PATH: &str = "/.well-known/portico-identity-jwks.json";
/// The `iss` of every identity token.
pub const ISSUER: &str = "portico-gateway";
/// How long an identity token is valid (`exp - iat`).
pub const LIFETIME: Duration = Duration::from_secs(60);
/// How long a token is handed out again for the same identity and upstream.
pub const REUSE: Duration = Duration::from_secs(30);
/// How many identity/upstream pairs each serving thread keeps a token for at most.
const REUSE_CAPACITY: usize = 10_000;
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

/// Signs identity tokens with the gateway's key at the injected clock's time.
#[derive(Debug, Clone)]
pub struct IdentitySigner {
    key: IdentityKey,
    clock: SharedClock,
    /// The JWKS document, serialized once.
    jwks: bytes::Bytes,
    /// Each serving thread's headers made in the last [`REUSE`].
    made: Arc<ThreadLocal<RefCell<Made>>>,
}

/// One thread's identity headers, by caller and upstream.
#[derive(Debug, Default)]
struct Made {
    hasher: RandomState,
    /// By the hash of the credential id and the audience; a hit must also carry the same
    /// claims (an API key's permissions can change while its id does not).
    entries: HashMap<u64, MadeFor>,
}

/// Headers made for one caller and upstream.
#[derive(Debug)]
struct MadeFor {
    audience: Box<str>,
    identity: Identity,
    /// The token's `iat`.
    iat: u64,
    headers: Arc<IdentityHeaders>,
}

impl MadeFor {
    /// Whether these headers say what `identity` calling `audience` at `now` needs.
    fn serves(&self, identity: &Identity, audience: &str, now: u64) -> bool {
        now >= self.iat
            && now - self.iat < REUSE.as_secs()
            && *self.audience == *audience
            && self.identity.user_id == identity.user_id
            && self.identity.email == identity.email
            && self.identity.kind == identity.kind
            && self.identity.permissions == identity.permissions
            && self.identity.roles == identity.roles
    }
}

impl IdentitySigner {
    /// A signer with `key`, reading the time from `clock`.
    pub fn new(key: IdentityKey, clock: SharedClock) -> Self {
        let jwks = bytes::Bytes::from(key.jwks().to_string());
        Self {
            key,
            clock,
            jwks,
            made: Arc::new(ThreadLocal::new()),
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
        self.headers(identity, audience).token().cloned()
    }

    /// Every identity header for `identity` calling `audience`: the `X-User-*` values and
    /// [`Self::token`], made once per caller and upstream in [`REUSE`] on each thread.
    pub fn headers(&self, identity: &Identity, audience: &str) -> Arc<IdentityHeaders> {
        let now = self
            .clock
            .system_now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let cell = self.made.get_or_default();
        // Nothing below calls back into the signer, so the cell is never borrowed twice;
        // should it be, the headers are made without the memo.
        let Ok(mut made) = cell.try_borrow_mut() else {
            return Arc::new(self.make(identity, audience, now));
        };
        let key = made
            .hasher
            .hash_one((identity.credential_id.as_str(), audience));
        if let Some(entry) = made.entries.get(&key)
            && entry.serves(identity, audience, now)
        {
            return entry.headers.clone();
        }
        let headers = Arc::new(self.make(identity, audience, now));
        if made.entries.len() >= REUSE_CAPACITY && !made.entries.contains_key(&key) {
            made.entries
                .retain(|_, e| now >= e.iat && now - e.iat < REUSE.as_secs());
            if made.entries.len() >= REUSE_CAPACITY {
                made.entries.clear();
            }
        }
        made.entries.insert(
            key,
            MadeFor {
                audience: audience.into(),
                identity: identity.clone(),
                iat: now,
                headers: headers.clone(),
            },
        );
        headers
    }

    /// The headers for `identity` calling `audience`, with a token issued at `now`.
    fn make(&self, identity: &Identity, audience: &str, now: u64) -> IdentityHeaders {
        let claims = Claims {
            iss: ISSUER,
            aud: audience,
            sub: &identity.user_id,
            email: &identity.email,
            permissions: &identity.permissions,
            roles: &identity.roles,
            token_type: identity.kind.as_str(),
            iat: now,
            exp: now.saturating_add(LIFETIME.as_secs()),
        };
        let token = portico_core::jws::sign_eddsa(&self.key.kid, &claims, |message| {
            self.key.key.sign(message).to_bytes()
        });
        let token = match token.map(HeaderValue::try_from) {
            Ok(Ok(value)) => Some(value),
            _ => {
                tracing::warn!("identity token could not be made; X-Portico-Identity left out");
                None
            }
        };
        IdentityHeaders::new(identity, token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(sub: &str, email: &str, permissions: &[&str]) -> Identity {
        Identity {
            user_id: sub.into(),
            email: email.into(),
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
            roles: vec![],
            kind: super::super::CredentialKind::User,
            credential_id: "same-credential".into(),
            expires_at: None,
        }
    }

    #[test]
    fn headers_are_reused_only_for_the_same_claims_and_audience_within_reuse() {
        let clock = portico_core::clock::ManualClock::new();
        let signer = IdentitySigner::new(IdentityKey::from_seed(&[7u8; 32]), clock.shared());
        let first = signer.headers(&identity("a", "bc", &["a,b"]), "etl");
        assert!(Arc::ptr_eq(
            &first,
            &signer.headers(&identity("a", "bc", &["a,b"]), "etl")
        ));
        // One credential id for all: only the claims tell them apart.
        for (other, audience) in [
            (identity("ab", "c", &["a,b"]), "etl"),
            (identity("a", "bc", &["a", "b"]), "etl"),
            (identity("a", "bc", &[]), "etl"),
            (identity("a", "bc", &["a,b"]), "search"),
        ] {
            let made = signer.headers(&other, audience);
            assert_ne!(made.token(), first.token(), "{other:?} {audience}");
        }
        let again = signer.headers(&identity("a", "bc", &["a,b"]), "etl");
        let mut values = http::HeaderMap::new();
        again.insert_into(&mut values);
        assert_eq!(values["x-user-id"], "a");
        assert_eq!(values["x-user-email"], "bc");
        assert_eq!(values["x-user-permissions"], "a,b");
        assert_eq!(values.get(HEADER), again.token());
        clock.advance(REUSE);
        let later = signer.headers(&identity("a", "bc", &["a,b"]), "etl");
        assert_ne!(later.token(), first.token(), "a new token after REUSE");
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
