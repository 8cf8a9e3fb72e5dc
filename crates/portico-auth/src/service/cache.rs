//! The validation cache: successful validations of access tokens and API keys, so that a
//! token presented again skips the Ed25519 check (≈ 43 µs) and an API key skips its three
//! store queries.
//!
//! - Entries are keyed by the SHA-256 of the presented token, never by the token itself.
//! - Each entry carries the time it stops being trusted (`valid_until`), compared with the
//!   service's clock on every hit; the caches' own size and age limits only drop entries
//!   early (a miss, which re-validates), so they never decide an answer.
//! - Only successes are kept. A failure is cheap to repeat for malformed tokens, and caching
//!   the expensive ones (a bad signature) would let anyone fill the cache with junk and push
//!   the good entries out; the one negative answer worth keeping — a revoked session — is in
//!   the service's revocation map already.
//!
//! Access tokens stay until their `exp` while their signing key is still accepted; their
//! session's revocation is checked on every hit (see `AuthService::is_revoked`). API keys stay
//! for at most [`API_KEY_TTL`] (and never past their expiry); their row is re-read by id when
//! the entry was last checked more than [`super::REVOCATION_RECHECK`] ago or when a key was
//! deleted on this instance since (the deletion counter), so a deletion here is seen at once
//! and one made by another instance within `REVOCATION_RECHECK`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use moka::sync::Cache;
use sha2::{Digest as _, Sha256};

use crate::api::dto::ValidateResponse;
use crate::token::AccessClaims;

/// Most validations of each kind (access tokens, API keys) kept.
pub const CACHE_ENTRIES: u64 = 100_000;

/// Longest an API key's validation is reused before the key, its owner and the owner's
/// roles are read again (a role change reaches API-key answers within this time).
pub const API_KEY_TTL: Duration = Duration::from_secs(5 * 60);

/// Longest token that is hashed for the cache; longer ones are refused by the verifier
/// anyway (its limit is 8 KiB), without hashing them first.
const MAX_CACHED_TOKEN: usize = 8 * 1024;

/// The cache key: SHA-256 of the presented token.
pub(super) type Digest = [u8; 32];

/// SHA-256 of `token`, or `None` when it is too long to be worth caching.
pub(super) fn digest(token: &str) -> Option<Digest> {
    (token.len() <= MAX_CACHED_TOKEN).then(|| Sha256::digest(token.as_bytes()).into())
}

/// A verified access token.
#[derive(Debug)]
pub(super) struct CachedToken {
    /// Its claims, as the verifier returned them.
    pub claims: AccessClaims,
    /// The key id it was signed with: a hit requires that key to be accepted still.
    pub kid: String,
    /// `exp`: the first instant the token is no longer valid.
    pub valid_until: SystemTime,
}

impl CachedToken {
    /// The entry for a token that the verifier accepted at `now` with `claims`. Should the
    /// `kid` be unreadable or `exp` beyond `SystemTime` (neither passes the verifier), the
    /// entry is never a hit.
    pub fn new(token: &str, claims: AccessClaims, now: SystemTime) -> Self {
        let valid_until = SystemTime::UNIX_EPOCH
            .checked_add(Duration::from_secs(claims.exp))
            .unwrap_or(now);
        Self {
            kid: kid_of(token).unwrap_or_default(),
            claims,
            valid_until,
        }
    }
}

/// A validated API key.
#[derive(Debug)]
pub(super) struct CachedKey {
    /// The key's id, to re-read its row.
    pub key_id: String,
    /// The answer `/auth/validate` gave.
    pub answer: ValidateResponse,
    /// min(key expiry, validated + [`API_KEY_TTL`]).
    pub valid_until: SystemTime,
    /// When the key's row was last read.
    pub checked_at: SystemTime,
    /// [`ValidationCache::deletions`] read before that row was read.
    pub deletions: u64,
}

/// The two caches and the count of API-key deletions made through this instance.
pub(super) struct ValidationCache {
    tokens: Cache<Digest, Arc<CachedToken>>,
    api_keys: Cache<Digest, Arc<CachedKey>>,
    deletions: AtomicU64,
}

impl std::fmt::Debug for ValidationCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidationCache")
            .field("tokens", &self.tokens.entry_count())
            .field("api_keys", &self.api_keys.entry_count())
            .finish_non_exhaustive()
    }
}

impl ValidationCache {
    /// Empty caches; access-token entries are dropped (as memory, not as an answer) after
    /// `token_ttl`, the longest an access token lives.
    pub fn new(token_ttl: Duration) -> Self {
        Self {
            tokens: Cache::builder()
                .max_capacity(CACHE_ENTRIES)
                .time_to_live(token_ttl.max(Duration::from_secs(1)))
                .build(),
            api_keys: Cache::builder()
                .max_capacity(CACHE_ENTRIES)
                .time_to_live(API_KEY_TTL)
                .build(),
            deletions: AtomicU64::new(0),
        }
    }

    /// The cached access token with this digest, if it is still before its `exp` at `now`
    /// (an expired entry is dropped).
    pub fn token(&self, digest: &Digest, now: SystemTime) -> Option<Arc<CachedToken>> {
        let entry = self.tokens.get(digest)?;
        if now < entry.valid_until {
            Some(entry)
        } else {
            self.tokens.invalidate(digest);
            None
        }
    }

    /// Keeps a verified access token.
    pub fn put_token(&self, digest: Digest, entry: Arc<CachedToken>) {
        self.tokens.insert(digest, entry);
    }

    /// Forgets an access token (its key is no longer accepted).
    pub fn drop_token(&self, digest: &Digest) {
        self.tokens.invalidate(digest);
    }

    /// The cached API key with this digest, if it is still within its `valid_until` at
    /// `now` (an entry past it is dropped). The caller decides whether it needs a re-check
    /// ([`Self::needs_recheck`]).
    pub fn api_key(&self, digest: &Digest, now: SystemTime) -> Option<Arc<CachedKey>> {
        let entry = self.api_keys.get(digest)?;
        if now < entry.valid_until {
            Some(entry)
        } else {
            self.api_keys.invalidate(digest);
            None
        }
    }

    /// Whether `entry`'s row must be read again before it is trusted at `now`: it was last
    /// read `recheck` ago or more, or a key was deleted through this instance since.
    pub fn needs_recheck(&self, entry: &CachedKey, now: SystemTime, recheck: Duration) -> bool {
        entry.deletions != self.deletions()
            || now.duration_since(entry.checked_at).unwrap_or_default() >= recheck
    }

    /// Keeps a validated API key.
    pub fn put_api_key(&self, digest: Digest, entry: Arc<CachedKey>) {
        self.api_keys.insert(digest, entry);
    }

    /// Forgets an API key (deleted, or gone from the store).
    pub fn drop_api_key(&self, digest: &Digest) {
        self.api_keys.invalidate(digest);
    }

    /// How many API keys were deleted through this instance: read it before reading a key's
    /// row and keep it with the entry.
    pub fn deletions(&self) -> u64 {
        self.deletions.load(Ordering::Acquire)
    }

    /// Records that an API key was deleted (after the store has it): every cached key is
    /// re-read before its next use.
    pub fn api_key_deleted(&self) {
        self.deletions.fetch_add(1, Ordering::AcqRel);
    }
}

/// The `kid` of a compact JWS's header.
fn kid_of(token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Header {
        kid: String,
    }
    let header = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(header).ok()?;
    serde_json::from_slice::<Header>(&bytes).ok().map(|h| h.kid)
}
