//! The in-process rate limiter: one GCRA arrival time per key, in sharded maps.
//!
//! Keys are spread over [`SHARDS`] independently locked maps (each on its own cache line), so
//! callers with different keys rarely wait on each other. A known key's arrival time is an
//! atomic updated with compare-and-swap under the shard's *read* lock, so callers hammering the
//! same key never park on a lock (a mutex made two threads on one key ~4× slower than one);
//! the write lock is taken only to add a key or sweep.
//!
//! Memory stays bounded by the number of *live* keys: a key whose arrival time has passed is
//! equivalent to a fresh key and can be dropped. Each shard sweeps such keys when it grows to
//! twice the size it had after its last sweep (at least [`MIN_SWEEP`] entries), so the cost of
//! a sweep is paid for by the inserts that preceded it.

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use super::Decision;
use super::quota::{Gcra, Quota};
use crate::clock::SharedClock;

/// Number of independently locked maps (a power of two).
pub const SHARDS: usize = 32;
/// A shard never sweeps below this many entries.
pub const MIN_SWEEP: usize = 64;

/// A keyed GCRA rate limiter living in this process.
#[derive(Debug)]
pub struct LocalRateLimiter {
    quota: Quota,
    gcra: Gcra,
    clock: SharedClock,
    base: Instant,
    router: RandomState,
    shards: Box<[Shard]>,
}

/// One shard, aligned so neighbouring shards' locks do not share a cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(RwLock<ShardMap>);

#[derive(Debug)]
struct ShardMap {
    /// The keys of this shard. A `HashTable` rather than a `HashMap` so that the one hash that
    /// chose the shard also finds the key: hashing twice was a fifth of a check's cost.
    tats: HashTable<Entry>,
    /// Sweep when `tats` reaches this size.
    sweep_at: usize,
}

/// One key and its theoretical arrival time, in nanoseconds since `base` (0: as good as new).
#[derive(Debug)]
struct Entry {
    key: Box<str>,
    hash: u64,
    tat: AtomicU64,
}

impl Default for ShardMap {
    fn default() -> Self {
        Self {
            tats: HashTable::new(),
            sweep_at: MIN_SWEEP,
        }
    }
}

impl ShardMap {
    /// Drops every key whose arrival time is not after `now`.
    fn sweep(&mut self, now: u64) {
        self.tats.retain(|e| e.tat.load(Ordering::Relaxed) > now);
        self.sweep_at = (self.tats.len() * 2).max(MIN_SWEEP);
        self.tats.shrink_to(self.sweep_at, |e| e.hash);
    }
}

impl LocalRateLimiter {
    /// A limiter applying `quota` to each key separately, reading time from `clock`.
    pub fn new(quota: Quota, clock: SharedClock) -> Self {
        Self {
            gcra: quota.gcra(),
            quota,
            base: clock.now(),
            clock,
            router: RandomState::new(),
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }

    /// The quota applied to each key.
    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// Counts one request for `key` now and says whether it is allowed.
    pub fn check(&self, key: &str) -> Decision {
        let now = self.now();
        let hash = self.router.hash_one(key);
        let shard = self.shard(hash);
        let same = |e: &Entry| *e.key == *key;
        if let Some(entry) = read(shard).tats.find(hash, same) {
            return self.update(&entry.tat, now);
        }
        let mut map = write(shard);
        if map.tats.find(hash, same).is_none() && map.tats.len() >= map.sweep_at {
            map.sweep(now);
        }
        let entry = map
            .tats
            .entry(hash, same, |e| e.hash)
            .or_insert_with(|| Entry {
                key: key.into(),
                hash,
                tat: AtomicU64::new(0),
            });
        self.update(&entry.get().tat, now)
    }

    /// Applies GCRA to one key's arrival time, retrying if another caller changed it first.
    fn update(&self, tat: &AtomicU64, now: u64) -> Decision {
        let mut current = tat.load(Ordering::Acquire);
        loop {
            let (next, decision) = self.gcra.check(Some(current), now);
            let Some(next) = next else {
                return decision;
            };
            match tat.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return decision,
                Err(actual) => current = actual,
            }
        }
    }

    /// Keys currently tracked (including expired ones not yet swept).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| read(s).tats.len()).sum()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every expired key now (the limiter also does this on its own as it grows).
    pub fn sweep(&self) {
        let now = self.now();
        for shard in self.shards.iter() {
            write(shard).sweep(now);
        }
    }

    fn now(&self) -> u64 {
        let since = self.clock.now().saturating_duration_since(self.base);
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
    }

    fn shard(&self, hash: u64) -> &Shard {
        // The top bits choose the shard; the table uses the low bits (and 7 more) within it.
        let index = (hash >> (64 - SHARDS.trailing_zeros())) as usize;
        &self.shards[index]
    }
}

// A shard holds plain numbers, each written in one statement: a panic while holding the lock
// cannot leave it inconsistent, so poisoning is ignored.

fn read(shard: &Shard) -> RwLockReadGuard<'_, ShardMap> {
    shard.0.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(shard: &Shard) -> RwLockWriteGuard<'_, ShardMap> {
    shard.0.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn sweep_forgets_only_expired_keys() {
        let clock = ManualClock::new();
        let quota = Quota::new(1, Duration::from_secs(1)).unwrap();
        let limiter = LocalRateLimiter::new(quota, clock.shared());
        limiter.check("a");
        clock.advance(Duration::from_millis(500));
        limiter.check("b");
        clock.advance(Duration::from_millis(500));
        limiter.sweep();
        assert_eq!(limiter.len(), 1, "a expired at 1s, b lives until 1.5s");
        assert!(!limiter.check("b").allowed);
    }
}
