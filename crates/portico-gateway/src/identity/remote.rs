//! [`RemoteAuthenticator`]: identity at the edge when auth runs in another process
//! (`[auth] url = "http://127.0.0.1:8081"`).
//!
//! # JWTs (user access tokens and service tokens)
//! Verified locally with auth's JWKS (`{auth_url}/.well-known/jwks.json`, EdDSA only,
//! `iss` = the configured issuer, `aud` naming one of the configured audiences, `exp` by the
//! injected clock; see `jwks`). A user token can be revoked by a logout, so its verdict is
//! confirmed with `POST {auth_url}/auth/validate` when it has not been confirmed within
//! [`RemoteAuthSettings::revocation_recheck`] (2 s): a logout is seen by the gateway at most
//! that long after auth has it. A service token carries no session and cannot be revoked, so
//! local verification is all there is to it; auth is not asked.
//!
//! # API keys (anything that is not three dot-separated parts)
//! Only auth can tell, so `POST {auth_url}/auth/validate` is asked, and its answer kept for
//! min([`RemoteAuthSettings::cache_ttl`], the key's `expires_at`) by the injected clock: a
//! deleted key is refused at most `cache_ttl` (5 min) after the deletion. Something that has
//! no API key's shape (`pk_…`, URL-safe characters) is refused here (AUTH_001) without
//! asking auth.
//!
//! # Refusals
//! Auth's 401 answers become the same envelope code (AUTH_001, AUTH_002 or AUTH_007). They
//! are remembered for [`REFUSAL_TTL`] (1 s), so a client repeating a dead credential in a
//! loop costs auth one call a second, and a refused credential is never served from an
//! older positive entry.
//!
//! # When auth cannot be asked
//! Connection refused, timeout ([`RemoteAuthSettings::request_timeout`], 2 s), a 5xx or 429
//! answer, or an unreadable one:
//! - a JWT confirmed before keeps passing until its `exp` (degraded: a logout made during
//!   the outage is not seen until auth is back);
//! - an API key within its cache lifetime passes (it would have anyway);
//! - anything else — in particular a JWT that verifies locally but was never confirmed — is
//!   refused with 503 SYS_002 and `Retry-After` (DESIGN, seed 000 scenario 3: "cached
//!   validations still pass and uncached ones get 503"). A credential that is invalid on
//!   its face (bad signature, expired, wrong shape) is still refused with its 401.
//!
//! While auth is unreachable, a confirmed token is asked about again only once per
//! `revocation_recheck`, and no call at all is made for 1 s after a failed one (a hung auth
//! costs one timeout per second, not one per request). The change to "unreachable" and
//! back is logged once each, in plain words.
//!
//! # Shared through Redis
//! With [`RemoteAuthSettings::redis_url`] set (`[redis] url`), every answer from auth is
//! also written to Redis, and a credential missing from this instance's memory (or stale
//! there) is looked up in Redis before auth is asked: an API key validated by one instance
//! is served by all of them without asking auth again, also while auth is down, and a user
//! token confirmed by one is not confirmed again by the others within the recheck. The
//! rules above hold across instances — an entry from Redis keeps the deadlines it was
//! written with (as Redis measures time), a refusal replaces a positive entry there too,
//! and a stale entry is only used when auth cannot be asked. A user token is still
//! verified here first; only auth's confirmation or refusal comes from Redis, never its
//! identity. Redis failing or slower than [`RemoteAuthSettings::redis_timeout`] (50 ms)
//! only means asking auth, as without Redis (see `shared_cache`).
//!
//! Everything cached is keyed by the SHA-256 of the credential, never the credential.
//! [`Identity::credential_id`] is the first 16 hex characters of that digest.

use std::time::{Duration, Instant, SystemTime};

use portico_core::clock::SharedClock;
use portico_core::error::{ApiError, ErrorCode};

use super::cache::{Digest, Entry, ValidationCache, Verdict, credential_id, digest};
use super::client::{AuthClient, CallError, ValidateAnswer, parse_rfc3339};
use super::jwks::{Claims, MAX_TOKEN_BYTES, Verifier, unavailable};
use super::shared_cache::SharedCache;
pub use super::shared_cache::{
    DEFAULT_KEY_PREFIX as DEFAULT_REDIS_KEY_PREFIX, DEFAULT_TIMEOUT as DEFAULT_REDIS_TIMEOUT,
};
use super::{Authenticator, BoxFuture, CredentialKind, Identity};

/// How long auth's refusal of a credential is remembered.
pub const REFUSAL_TTL: Duration = Duration::from_secs(1);
/// The `Retry-After` of the 503 answered when auth cannot be asked.
pub const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Default of [`RemoteAuthSettings::cache_ttl`].
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5 * 60);
/// Default of [`RemoteAuthSettings::revocation_recheck`].
pub const DEFAULT_REVOCATION_RECHECK: Duration = Duration::from_secs(2);
/// Default of [`RemoteAuthSettings::request_timeout`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Default of [`RemoteAuthSettings::max_entries`].
pub const DEFAULT_MAX_ENTRIES: u64 = 100_000;
/// The audience of user access tokens.
pub const USER_AUDIENCE: &str = "portico";

/// Where auth is and how far to trust what it said.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteAuthSettings {
    /// Auth's base URL (`http://127.0.0.1:8081`); `/auth/validate` and
    /// `/.well-known/jwks.json` are found under it.
    pub auth_url: String,
    /// The `iss` of auth's tokens (its `[auth] issuer`).
    pub issuer: String,
    /// Tokens are accepted when their `aud` names one of these (default `["portico"]`, the
    /// user audience; add a service audience to accept that service's tokens).
    pub audiences: Vec<String>,
    /// How long an API key's validation is used without asking auth again (never past the
    /// key's expiry). Default 5 min.
    pub cache_ttl: Duration,
    /// How long a user token's confirmation by auth is used before auth is asked again, so
    /// the longest a logout goes unseen. Default 2 s.
    pub revocation_recheck: Duration,
    /// How many verdicts the memory cache holds at most. Default 100 000.
    pub max_entries: u64,
    /// How long one call to auth may take, connecting included. Default 2 s.
    pub request_timeout: Duration,
    /// `[redis] url`: when set, auth's answers are shared with every instance using the
    /// same Redis (the second cache level); `None` (default): kept in this instance only.
    pub redis_url: Option<String>,
    /// How long one call to Redis may take before it counts as a miss. Default 50 ms.
    pub redis_timeout: Duration,
    /// The prefix of the shared entries' keys (default `portico:gw:validation:`), to keep
    /// deployments sharing one Redis apart.
    pub redis_key_prefix: String,
}

impl std::fmt::Debug for RemoteAuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteAuthSettings")
            .field("auth_url", &self.auth_url)
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("cache_ttl", &self.cache_ttl)
            .field("revocation_recheck", &self.revocation_recheck)
            .field("max_entries", &self.max_entries)
            .field("request_timeout", &self.request_timeout)
            // The URL may hold a password.
            .field("redis_url", &self.redis_url.as_ref().map(|_| "***"))
            .field("redis_timeout", &self.redis_timeout)
            .field("redis_key_prefix", &self.redis_key_prefix)
            .finish()
    }
}

impl RemoteAuthSettings {
    /// Settings for auth at `auth_url` issuing tokens as `issuer`, defaults otherwise.
    pub fn new(auth_url: impl Into<String>, issuer: impl Into<String>) -> Self {
        Self {
            auth_url: auth_url.into(),
            issuer: issuer.into(),
            audiences: vec![USER_AUDIENCE.to_owned()],
            cache_ttl: DEFAULT_CACHE_TTL,
            revocation_recheck: DEFAULT_REVOCATION_RECHECK,
            max_entries: DEFAULT_MAX_ENTRIES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            redis_url: None,
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
            redis_key_prefix: DEFAULT_REDIS_KEY_PREFIX.to_owned(),
        }
    }
}

impl Default for RemoteAuthSettings {
    /// Auth at the default listen address with the default issuer
    /// (`http://127.0.0.1:8080`), as the built-in config has them.
    fn default() -> Self {
        Self::new("http://127.0.0.1:8080", "http://127.0.0.1:8080")
    }
}

/// Why a [`RemoteAuthenticator`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// `auth_url` is not an `http`/`https` base URL.
    #[error("auth url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Another setting is unusable.
    #[error("{0}")]
    InvalidSetting(String),
    /// The HTTP client could not be set up.
    #[error("{0}")]
    Client(String),
}

/// An [`Authenticator`] asking an auth component in another process (see the module docs
/// for the rules).
pub struct RemoteAuthenticator {
    settings: RemoteAuthSettings,
    client: std::sync::Arc<AuthClient>,
    verifier: Verifier,
    cache: ValidationCache,
    clock: SharedClock,
}

impl std::fmt::Debug for RemoteAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteAuthenticator")
            .field("settings", &self.settings)
            .field("auth_reachable", &self.auth_reachable())
            .field("shared_cache", &self.cache.is_shared())
            .finish_non_exhaustive()
    }
}

impl RemoteAuthenticator {
    /// An authenticator for auth as `settings` describe, reading time from `clock`. Nothing
    /// is fetched yet (the JWKS comes with the first JWT).
    pub fn new(settings: RemoteAuthSettings, clock: SharedClock) -> Result<Self, IdentityError> {
        if settings.issuer.is_empty() {
            return Err(IdentityError::InvalidSetting("issuer is empty".into()));
        }
        if settings.audiences.is_empty() || settings.audiences.iter().any(String::is_empty) {
            return Err(IdentityError::InvalidSetting(
                "audiences must name at least one audience, none empty".into(),
            ));
        }
        if settings.request_timeout.is_zero() || settings.redis_timeout.is_zero() {
            return Err(IdentityError::InvalidSetting(
                "request_timeout and redis_timeout must be more than zero".into(),
            ));
        }
        let shared = match settings.redis_url.as_deref() {
            Some(url) => Some(
                SharedCache::new(
                    url,
                    settings.redis_key_prefix.clone(),
                    settings.redis_timeout,
                    clock.clone(),
                )
                .map_err(IdentityError::InvalidSetting)?,
            ),
            None => None,
        };
        let client = std::sync::Arc::new(AuthClient::new(
            &settings.auth_url,
            settings.request_timeout,
            clock.clone(),
        )?);
        let verifier = Verifier::new(
            client.clone(),
            clock.clone(),
            &settings.issuer,
            &settings.audiences,
        );
        Ok(Self {
            cache: ValidationCache::new(settings.max_entries, shared),
            settings,
            client,
            verifier,
            clock,
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &RemoteAuthSettings {
        &self.settings
    }

    /// Whether the last call to auth reached it (`true` before the first); for health.
    pub fn auth_reachable(&self) -> bool {
        self.client.is_reachable()
    }

    async fn identify(&self, credential: &str) -> Result<Identity, ApiError> {
        if credential.is_empty() || credential.len() > MAX_TOKEN_BYTES {
            return Err(ApiError::new(ErrorCode::Auth001, "invalid token"));
        }
        let digest = digest(credential);
        let now = self.clock.now();
        let cached = self.cache.get(&digest, now);
        if let Some(entry) = &cached
            && entry.is_fresh(now)
        {
            return match &entry.verdict {
                Verdict::Valid(identity) => Ok(identity.clone()),
                Verdict::Refused(error) => Err(error.clone()),
            };
        }
        // A stale positive entry: what to fall back on when auth cannot be asked.
        let stale = cached.and_then(|entry| match &entry.verdict {
            Verdict::Valid(identity) => Some(identity.clone()),
            Verdict::Refused(_) => None,
        });
        if is_jwt(credential) {
            self.jwt(credential, digest, stale, now).await
        } else {
            self.api_key(credential, digest, stale, now).await
        }
    }

    async fn jwt(
        &self,
        token: &str,
        digest: Digest,
        stale: Option<Identity>,
        now: Instant,
    ) -> Result<Identity, ApiError> {
        let system_now = self.clock.system_now();
        let mut confirmed_before = stale.is_some();
        let identity = match stale {
            // Same bytes as a token verified before, and still before its exp.
            Some(identity) => identity,
            None => {
                let claims = self.verifier.verify(token, system_now).await?;
                identity_of_claims(claims, &digest)?
            }
        };
        let end = identity
            .expires_at
            .map_or(now, |exp| deadline(now, system_now, exp));
        if identity.kind == CredentialKind::Service {
            self.cache.put(
                digest,
                Entry::new(Verdict::Valid(identity.clone()), now, end, end),
            );
            return Ok(identity);
        }
        // Another instance may have asked auth about this token lately. Its verdict and
        // deadlines are taken; the identity stays the one verified here.
        if let Some(shared) = self.cache.get_shared(&digest, now, system_now).await {
            let fresh = shared.is_fresh(now);
            match shared.verdict {
                Verdict::Refused(error) if fresh => {
                    let until = shared.usable_until;
                    self.cache.put(
                        digest,
                        Entry::new(Verdict::Refused(error.clone()), now, until, until),
                    );
                    return Err(error);
                }
                Verdict::Refused(_) => {}
                Verdict::Valid(_) => {
                    let entry = Entry::new(
                        Verdict::Valid(identity.clone()),
                        now,
                        shared.fresh_until.min(end),
                        shared.usable_until.min(end),
                    );
                    if fresh {
                        self.cache.put(digest, entry);
                        return Ok(identity);
                    }
                    confirmed_before = true;
                }
            }
        }
        match self.client.validate(token).await {
            Ok(_) => {
                let fresh = (now + self.settings.revocation_recheck).min(end);
                let entry = Entry::new(Verdict::Valid(identity.clone()), now, fresh, end);
                self.cache.put_answer(digest, entry, self.clock.now()).await;
                Ok(identity)
            }
            Err(CallError::Refused(error)) => Err(self.refused(digest, error, now).await),
            Err(CallError::Unavailable(reason)) => {
                if confirmed_before {
                    tracing::debug!(%reason, credential = %identity.credential_id,
                        "auth unavailable; token confirmed before passes from the cache");
                    // Asked again after another recheck period, not on every request.
                    // Kept in memory only: auth said nothing new.
                    let fresh = (now + self.settings.revocation_recheck).min(end);
                    self.cache.put(
                        digest,
                        Entry::new(Verdict::Valid(identity.clone()), now, fresh, end),
                    );
                    Ok(identity)
                } else {
                    Err(unavailable())
                }
            }
        }
    }

    async fn api_key(
        &self,
        key: &str,
        digest: Digest,
        mut stale: Option<Identity>,
        now: Instant,
    ) -> Result<Identity, ApiError> {
        if !looks_like_api_key(key) {
            return Err(ApiError::new(ErrorCode::Auth001, "invalid token"));
        }
        // Another instance may have asked auth about this key.
        if let Some(shared) = self
            .cache
            .get_shared(&digest, now, self.clock.system_now())
            .await
        {
            if shared.is_fresh(now) {
                let verdict = match &shared.verdict {
                    Verdict::Valid(identity) => Ok(identity.clone()),
                    Verdict::Refused(error) => Err(error.clone()),
                };
                self.cache.put(digest, shared);
                return verdict;
            }
            if let Verdict::Valid(identity) = &shared.verdict {
                stale = Some(identity.clone());
            }
        }
        let answer = match self.client.validate(key).await {
            Ok(answer) => answer,
            Err(CallError::Refused(error)) => return Err(self.refused(digest, error, now).await),
            // A key validated before (by any instance) within its cache lifetime passes.
            Err(CallError::Unavailable(_)) => return stale.ok_or_else(unavailable),
        };
        let Some(kind) = CredentialKind::parse(&answer.token_type) else {
            tracing::warn!(token_type = %answer.token_type, "auth's validation answer names an unknown token_type");
            return Err(unavailable());
        };
        // An expiry that cannot be read: accepted this once (auth said valid), not cached.
        let (expires_at, cacheable) = match answer.expires_at.as_deref() {
            None => (None, true),
            Some(text) => match parse_rfc3339(text) {
                Some(at) => (Some(at), true),
                None => {
                    tracing::warn!(expires_at = %text, "auth's validation answer has an unreadable expires_at; not cached");
                    (None, false)
                }
            },
        };
        let identity = identity_of_answer(answer, kind, expires_at, &digest);
        if cacheable {
            let mut until = now + self.settings.cache_ttl;
            if let Some(exp) = expires_at {
                until = until.min(deadline(now, self.clock.system_now(), exp));
            }
            let entry = Entry::new(Verdict::Valid(identity.clone()), now, until, until);
            self.cache.put_answer(digest, entry, self.clock.now()).await;
        }
        Ok(identity)
    }

    /// Remembers auth's refusal for [`REFUSAL_TTL`] — in both levels, replacing any
    /// positive entry — and returns it.
    async fn refused(&self, digest: Digest, error: ApiError, now: Instant) -> ApiError {
        let until = now + REFUSAL_TTL;
        let entry = Entry::new(Verdict::Refused(error.clone()), now, until, until);
        self.cache.put_answer(digest, entry, self.clock.now()).await;
        error
    }
}

impl Authenticator for RemoteAuthenticator {
    fn authenticate<'a>(
        &'a self,
        credential: &'a str,
    ) -> BoxFuture<'a, Result<Identity, ApiError>> {
        Box::pin(self.identify(credential))
    }
}

/// Whether `credential` has a compact JWT's shape (three dot-separated parts).
fn is_jwt(credential: &str) -> bool {
    credential.bytes().filter(|&b| b == b'.').count() == 2
}

/// Whether `key` could be an API key (`pk_…`, URL-safe characters, sane length); auth judges
/// the rest.
fn looks_like_api_key(key: &str) -> bool {
    key.starts_with("pk_")
        && (16..=256).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The [`Instant`] (on the clock's monotonic scale) of the wall-clock time `at`, given that
/// `now` and `system_now` are the same moment.
fn deadline(now: Instant, system_now: SystemTime, at: SystemTime) -> Instant {
    now + at.duration_since(system_now).unwrap_or(Duration::ZERO)
}

fn identity_of_claims(claims: Claims, digest: &Digest) -> Result<Identity, ApiError> {
    let kind = match CredentialKind::parse(&claims.token_type) {
        Some(kind @ (CredentialKind::User | CredentialKind::Service)) => kind,
        _ => {
            tracing::debug!(token_type = %claims.token_type, "JWT refused: token_type");
            return Err(ApiError::new(ErrorCode::Auth001, "invalid token"));
        }
    };
    let expires_at = Some(claims.expires_at());
    Ok(Identity {
        user_id: claims.sub,
        email: claims.email.unwrap_or_default(),
        permissions: claims.permissions,
        roles: claims.roles,
        kind,
        credential_id: credential_id(digest),
        expires_at,
    })
}

fn identity_of_answer(
    answer: ValidateAnswer,
    kind: CredentialKind,
    expires_at: Option<SystemTime>,
    digest: &Digest,
) -> Identity {
    Identity {
        user_id: answer.user_id,
        email: answer.email,
        permissions: answer.permissions,
        roles: answer.roles,
        kind,
        credential_id: credential_id(digest),
        expires_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert!(is_jwt("a.b.c"));
        assert!(!is_jwt("a.b"));
        assert!(!is_jwt("a.b.c.d"));
        assert!(!is_jwt("pk_abcdefghij_0123456789abcdefghij"));
        assert!(looks_like_api_key("pk_abcdefghij_0123456789-_ABCDEF"));
        assert!(!looks_like_api_key("pk_short"));
        assert!(!looks_like_api_key("sk_abcdefghij_0123456789abcdefghij"));
        assert!(!looks_like_api_key("pk_abcdefghij_0123456789 abcdefghij"));
    }

    #[test]
    fn settings_are_checked() {
        let clock = portico_core::clock::ManualClock::new().shared();
        let ok = RemoteAuthSettings::new("http://127.0.0.1:8081/", "http://issuer");
        assert!(RemoteAuthenticator::new(ok.clone(), clock.clone()).is_ok());
        let with_redis = RemoteAuthSettings {
            redis_url: Some("redis://:secret@127.0.0.1:6379".into()),
            ..ok.clone()
        };
        let built = RemoteAuthenticator::new(with_redis, clock.clone()).unwrap();
        assert!(!format!("{built:?}").contains("secret"), "{built:?}");
        for bad in [
            RemoteAuthSettings {
                auth_url: "127.0.0.1:8081".into(),
                ..ok.clone()
            },
            RemoteAuthSettings {
                auth_url: "ftp://127.0.0.1".into(),
                ..ok.clone()
            },
            RemoteAuthSettings {
                auth_url: "http://127.0.0.1:8081/?x=1".into(),
                ..ok.clone()
            },
            RemoteAuthSettings {
                issuer: String::new(),
                ..ok.clone()
            },
            RemoteAuthSettings {
                audiences: vec![],
                ..ok.clone()
            },
            RemoteAuthSettings {
                request_timeout: Duration::ZERO,
                ..ok.clone()
            },
            RemoteAuthSettings {
                redis_url: Some("http://127.0.0.1:6379".into()),
                ..ok.clone()
            },
            RemoteAuthSettings {
                redis_url: Some("redis://127.0.0.1:6379".into()),
                redis_timeout: Duration::ZERO,
                ..ok.clone()
            },
        ] {
            assert!(
                RemoteAuthenticator::new(bad.clone(), clock.clone()).is_err(),
                "{bad:?}"
            );
        }
    }
}
