//! The gateway's memory of auth's verdicts, keyed by the SHA-256 of the credential (never
//! the credential itself): an in-process first level, bounded in entries, and — with Redis
//! configured — a second level shared by every instance ([`SharedCache`]).
//!
//! Each entry says until when it may be used without asking auth (`fresh_until`) and until
//! when it may still be used when auth cannot be asked (`usable_until`). Both are judged by
//! the injected clock on every read; moka's own (real-time) expiry is set to the same
//! lifetime, only so that dead entries leave memory.
//!
//! # Two levels
//! - [`ValidationCache::get`] and [`ValidationCache::put`] are the memory level alone: a
//!   hit there never costs a round trip, and what the gateway concludes by itself (a
//!   service token verified locally, a confirmation kept while auth is down) stays there.
//! - [`ValidationCache::get_shared`] reads the second level, after a miss (or a stale
//!   entry) here and before asking auth. What it returns carries the deadlines Redis gave
//!   it, turned into instants of this clock at the moment of reading (never past the
//!   credential's expiry by this clock either); the caller keeps it in memory with
//!   [`ValidationCache::put`]. A stale shared entry is used like a stale memory entry: only
//!   when auth cannot be asked.
//! - [`ValidationCache::put_answer`] is for every answer from auth, valid or refused: it
//!   replaces the entry in both levels, so a refusal (a deleted key, a logged-out token)
//!   overwrites a positive verdict in Redis as it does in memory, and no instance serves
//!   the credential from an older positive entry afterwards.
//!
//! Without Redis, or while Redis cannot be asked, the second level is a miss and a no-op:
//! the gateway behaves as with one level (see `shared_cache` for the keys, the values and
//! the handling of Redis failures).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use portico_core::error::ApiError;
use sha2::{Digest as _, Sha256};

use super::Identity;
use super::shared_cache::{SharedCache, until_expiry};

/// SHA-256 of a credential.
pub(super) type Digest = [u8; 32];

/// The SHA-256 of `credential`.
pub(super) fn digest(credential: &str) -> Digest {
    Sha256::digest(credential.as_bytes()).into()
}

/// The first 16 hex characters of a digest: a credential's stable, non-secret id.
pub(super) fn credential_id(digest: &Digest) -> String {
    let mut id = String::with_capacity(16);
    portico_core::hex::push_bytes(&mut id, &digest[..8]);
    id
}

/// What auth said about a credential.
#[derive(Debug, Clone)]
pub(super) enum Verdict {
    /// Valid, for this identity.
    Valid(Identity),
    /// Refused with this (AUTH_001/002/007) error.
    Refused(ApiError),
}

/// One remembered verdict.
#[derive(Debug)]
pub(super) struct Entry {
    /// The verdict.
    pub verdict: Verdict,
    /// Until when it is used without asking auth.
    pub fresh_until: Instant,
    /// Until when it is used when auth cannot be asked (≥ `fresh_until`).
    pub usable_until: Instant,
    /// `usable_until` minus the time of insertion, for moka.
    lifetime: Duration,
}

impl Entry {
    /// An entry made at `now`.
    pub(super) fn new(
        verdict: Verdict,
        now: Instant,
        fresh_until: Instant,
        usable_until: Instant,
    ) -> Self {
        let usable_until = usable_until.max(fresh_until);
        Self {
            verdict,
            fresh_until,
            usable_until,
            lifetime: usable_until.saturating_duration_since(now),
        }
    }

    /// Whether it may be used without asking auth at `now`.
    pub(super) fn is_fresh(&self, now: Instant) -> bool {
        now < self.fresh_until
    }
}

struct Lifetime;

impl moka::Expiry<Digest, Arc<Entry>> for Lifetime {
    fn expire_after_create(
        &self,
        _key: &Digest,
        value: &Arc<Entry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.lifetime)
    }

    fn expire_after_update(
        &self,
        _key: &Digest,
        value: &Arc<Entry>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.lifetime)
    }
}

/// Verdicts by credential digest, in memory and, when configured, in Redis.
pub(super) struct ValidationCache {
    entries: moka::sync::Cache<Digest, Arc<Entry>>,
    shared: Option<SharedCache>,
}

impl ValidationCache {
    /// A cache of at most `max_entries` verdicts in memory, over `shared` if given.
    pub(super) fn new(max_entries: u64, shared: Option<SharedCache>) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(max_entries)
                .expire_after(Lifetime)
                .build(),
            shared,
        }
    }

    /// Whether a second level is configured.
    pub(super) fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// The memory entry for `digest` if it is still usable at `now` (a dead one is
    /// dropped).
    pub(super) fn get(&self, digest: &Digest, now: Instant) -> Option<Arc<Entry>> {
        let entry = self.entries.get(digest)?;
        if now < entry.usable_until {
            Some(entry)
        } else {
            self.entries.invalidate(digest);
            None
        }
    }

    /// The second level's entry for `digest`, as an entry of this clock made at `now`
    /// (`system_now` being the same moment on the wall clock, for the credential's
    /// expiry); `None` without a second level, on a miss, or when Redis cannot be asked.
    /// Not kept in memory: the caller decides what to keep.
    pub(super) async fn get_shared(
        &self,
        digest: &Digest,
        now: Instant,
        system_now: SystemTime,
    ) -> Option<Entry> {
        let found = self.shared.as_ref()?.get(digest).await?;
        let mut usable_for = found.usable_for;
        if let Verdict::Valid(Identity {
            expires_at: Some(at),
            ..
        }) = &found.verdict
        {
            usable_for = usable_for.min(until_expiry(*at, system_now));
        }
        if usable_for.is_zero() {
            return None;
        }
        let fresh_for = found.fresh_for.min(usable_for);
        Some(Entry::new(
            found.verdict,
            now,
            now + fresh_for,
            now + usable_for,
        ))
    }

    /// Remembers `entry` for `digest` in memory only (replacing any other); an entry
    /// already dead is not stored.
    pub(super) fn put(&self, digest: Digest, entry: Entry) {
        if entry.lifetime.is_zero() {
            self.entries.invalidate(&digest);
        } else {
            self.entries.insert(digest, Arc::new(entry));
        }
    }

    /// Remembers auth's answer `entry` for `digest` in both levels, replacing what either
    /// held (a dead entry removes it). `now` is the present on this clock: the second
    /// level gets the lifetimes left from it.
    pub(super) async fn put_answer(&self, digest: Digest, entry: Entry, now: Instant) {
        let fresh_for = entry.fresh_until.saturating_duration_since(now);
        let usable_for = entry.usable_until.saturating_duration_since(now);
        let entry = Arc::new(entry);
        if entry.lifetime.is_zero() {
            self.entries.invalidate(&digest);
        } else {
            self.entries.insert(digest, entry.clone());
        }
        if let Some(shared) = &self.shared {
            shared
                .put(&digest, &entry.verdict, fresh_for, usable_for)
                .await;
        }
    }
}
