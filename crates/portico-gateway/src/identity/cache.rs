//! The gateway's memory of auth's verdicts, keyed by the SHA-256 of the credential (never
//! the credential itself), bounded in entries.
//!
//! Each entry says until when it may be used without asking auth (`fresh_until`) and until
//! when it may still be used when auth cannot be asked (`usable_until`). Both are judged by
//! the injected clock on every read; moka's own (real-time) expiry is set to the same
//! lifetime, only so that dead entries leave memory.
//!
//! Second level: with Redis configured, a shared level would sit between this cache and
//! auth — read on a miss here, written with every answer from auth, under the same digest
//! and deadlines. It is not built yet; [`ValidationCache::get`] and
//! [`ValidationCache::put`] are the two places it would plug in.

use std::sync::Arc;
use std::time::{Duration, Instant};

use portico_core::error::ApiError;
use sha2::{Digest as _, Sha256};

use super::Identity;

/// SHA-256 of a credential.
pub(super) type Digest = [u8; 32];

/// The SHA-256 of `credential`.
pub(super) fn digest(credential: &str) -> Digest {
    Sha256::digest(credential.as_bytes()).into()
}

/// The first 16 hex characters of a digest: a credential's stable, non-secret id.
pub(super) fn credential_id(digest: &Digest) -> String {
    use std::fmt::Write as _;
    digest[..8]
        .iter()
        .fold(String::with_capacity(16), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
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

/// Verdicts by credential digest.
pub(super) struct ValidationCache {
    entries: moka::sync::Cache<Digest, Arc<Entry>>,
}

impl ValidationCache {
    /// A cache of at most `max_entries` verdicts.
    pub(super) fn new(max_entries: u64) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(max_entries)
                .expire_after(Lifetime)
                .build(),
        }
    }

    /// The entry for `digest` if it is still usable at `now` (a dead one is dropped).
    pub(super) fn get(&self, digest: &Digest, now: Instant) -> Option<Arc<Entry>> {
        let entry = self.entries.get(digest)?;
        if now < entry.usable_until {
            Some(entry)
        } else {
            self.entries.invalidate(digest);
            None
        }
    }

    /// Remembers `entry` for `digest` (replacing any other); an entry already dead is not
    /// stored.
    pub(super) fn put(&self, digest: Digest, entry: Entry) {
        if entry.lifetime.is_zero() {
            self.entries.invalidate(&digest);
        } else {
            self.entries.insert(digest, Arc::new(entry));
        }
    }
}
