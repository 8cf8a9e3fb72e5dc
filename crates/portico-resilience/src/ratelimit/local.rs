//! The in-process rate limiter: one GCRA arrival time per key, in sharded maps.
//!
//! Keys are spread over [`SHARDS`] independently locked maps (each on its own cache line), so
//! callers with different keys rarely wait on each other. A lock is held only for one map
//! lookup and a few arithmetic operations.
//!
//! Memory stays bounded by the number of *live* keys: a key whose arrival time has passed is
//! equivalent to a fresh key and can be dropped. Each shard sweeps such keys when it grows to
//! twice the size it had after its last sweep (at least [`MIN_SWEEP`] entries), so the cost of
//! a sweep is paid for by the inserts that preceded it.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};
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
struct Shard(Mutex<ShardMap>);

#[derive(Debug)]
struct ShardMap {
    /// Theoretical arrival time per key, in nanoseconds since `base`.
    tats: HashMap<Box<str>, u64>,
    /// Sweep when `tats` reaches this size.
    sweep_at: usize,
}

impl Default for ShardMap {
    fn default() -> Self {
        Self {
            tats: HashMap::new(),
            sweep_at: MIN_SWEEP,
        }
    }
}

impl ShardMap {
    /// Drops every key whose arrival time is not after `now`.
    fn sweep(&mut self, now: u64) {
        self.tats.retain(|_, tat| *tat > now);
        self.sweep_at = (self.tats.len() * 2).max(MIN_SWEEP);
        self.tats.shrink_to(self.sweep_at);
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
        let mut shard = self.shard(key);
        if let Some(tat) = shard.tats.get_mut(key) {
            let (next, decision) = self.gcra.check(Some(*tat), now);
            if let Some(next) = next {
                *tat = next;
            }
            return decision;
        }
        let (next, decision) = self.gcra.check(None, now);
        if let Some(next) = next {
            if shard.tats.len() >= shard.sweep_at {
                shard.sweep(now);
            }
            shard.tats.insert(key.into(), next);
        }
        decision
    }

    /// Keys currently tracked (including expired ones not yet swept).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).tats.len()).sum()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every expired key now (the limiter also does this on its own as it grows).
    pub fn sweep(&self) {
        let now = self.now();
        for shard in self.shards.iter() {
            lock(shard).sweep(now);
        }
    }

    fn now(&self) -> u64 {
        let since = self.clock.now().saturating_duration_since(self.base);
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, ShardMap> {
        // The top bits choose the shard; the map hashes with its own, independent keys.
        let index = (self.router.hash_one(key) >> (64 - SHARDS.trailing_zeros())) as usize;
        lock(&self.shards[index])
    }
}

fn lock(shard: &Shard) -> MutexGuard<'_, ShardMap> {
    // A shard holds plain numbers, each written in one statement: a panic while holding
    // the lock cannot leave it inconsistent, so poisoning is ignored.
    shard.0.lock().unwrap_or_else(|e| e.into_inner())
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
