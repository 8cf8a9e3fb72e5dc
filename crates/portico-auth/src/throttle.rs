//! Login throttling: too many failed logins for one account or from one client address
//! within a window, and further attempts are refused (429 `BACKEND_003` with `Retry-After`)
//! until the window has passed.
//!
//! Only failures count, so a user who signs in correctly is never slowed down, and a success
//! clears the account's count. The two keys guard against different attacks: per account
//! against guessing one password, per address against trying many accounts from one place.
//! Counts live in memory (one process); entries older than the window are swept as the map
//! grows, so memory stays bounded by the keys that failed recently.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use portico_core::clock::SharedClock;

/// Failed attempts allowed per key within a window before the key is blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleLimit {
    /// Failures allowed in `window`; the next attempt is refused.
    pub failures: u32,
    /// How long failures are remembered, from the first of them.
    pub window: Duration,
}

/// Per-account and per-address failure counters.
#[derive(Debug)]
pub struct LoginThrottle {
    account: FailureCounter,
    address: FailureCounter,
}

impl LoginThrottle {
    /// Defaults: 5 failures per account and 30 per address, each within 15 minutes.
    pub fn with_defaults(clock: SharedClock) -> Self {
        let window = Duration::from_secs(15 * 60);
        Self::new(
            ThrottleLimit {
                failures: 5,
                window,
            },
            ThrottleLimit {
                failures: 30,
                window,
            },
            clock,
        )
    }

    /// A throttle with explicit limits per account and per address.
    pub fn new(account: ThrottleLimit, address: ThrottleLimit, clock: SharedClock) -> Self {
        Self {
            account: FailureCounter::new(account, clock.clone()),
            address: FailureCounter::new(address, clock),
        }
    }

    /// `Some(wait)` when an attempt for `account` from `address` must be refused now.
    pub fn blocked(&self, account: &str, address: &str) -> Option<Duration> {
        match (self.account.blocked(account), self.address.blocked(address)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Counts a failed attempt.
    pub fn failed(&self, account: &str, address: &str) {
        self.account.record(account);
        self.address.record(address);
    }

    /// Clears the account's failures after a successful login.
    pub fn succeeded(&self, account: &str) {
        self.account.clear(account);
    }
}

#[derive(Debug)]
struct FailureCounter {
    limit: ThrottleLimit,
    clock: SharedClock,
    entries: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    /// Key → (first failure of the current window, failures in it).
    by_key: HashMap<String, (Instant, u32)>,
    sweep_at: usize,
}

/// A map never sweeps below this many keys.
const MIN_SWEEP: usize = 1024;

impl FailureCounter {
    fn new(limit: ThrottleLimit, clock: SharedClock) -> Self {
        Self {
            limit,
            clock,
            entries: Mutex::new(Counts {
                by_key: HashMap::new(),
                sweep_at: MIN_SWEEP,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // Plain counters: a panic while holding the lock cannot leave them inconsistent.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn blocked(&self, key: &str) -> Option<Duration> {
        let now = self.clock.now();
        let counts = self.lock();
        let (first, failures) = *counts.by_key.get(key)?;
        let ends = first + self.limit.window;
        (failures >= self.limit.failures && now < ends).then(|| ends - now)
    }

    fn record(&self, key: &str) {
        let now = self.clock.now();
        let window = self.limit.window;
        let mut counts = self.lock();
        if counts.by_key.len() >= counts.sweep_at {
            counts.by_key.retain(|_, (first, _)| now < *first + window);
            counts.sweep_at = (counts.by_key.len() * 2).max(MIN_SWEEP);
        }
        let entry = counts.by_key.entry(key.to_owned()).or_insert((now, 0));
        if now >= entry.0 + window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }

    fn clear(&self, key: &str) {
        self.lock().by_key.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use portico_core::clock::ManualClock;

    use super::*;

    fn throttle(clock: &ManualClock) -> LoginThrottle {
        let limit = |failures| ThrottleLimit {
            failures,
            window: Duration::from_secs(60),
        };
        LoginThrottle::new(limit(3), limit(5), clock.shared())
    }

    #[test]
    fn account_is_blocked_after_its_failures_until_the_window_ends() {
        let clock = ManualClock::new();
        let t = throttle(&clock);
        for _ in 0..3 {
            assert_eq!(t.blocked("a@x", "1.1.1.1"), None);
            t.failed("a@x", "1.1.1.1");
        }
        clock.advance(Duration::from_secs(20));
        assert_eq!(t.blocked("a@x", "2.2.2.2"), Some(Duration::from_secs(40)));
        assert_eq!(t.blocked("b@x", "2.2.2.2"), None, "other accounts are fine");
        clock.advance(Duration::from_secs(40));
        assert_eq!(t.blocked("a@x", "2.2.2.2"), None);
    }

    #[test]
    fn address_is_blocked_after_failures_on_many_accounts() {
        let clock = ManualClock::new();
        let t = throttle(&clock);
        for i in 0..5 {
            t.failed(&format!("user{i}@x"), "9.9.9.9");
        }
        assert!(t.blocked("fresh@x", "9.9.9.9").is_some());
        assert_eq!(t.blocked("fresh@x", "8.8.8.8"), None);
    }

    #[test]
    fn success_clears_the_account_but_not_the_address() {
        let clock = ManualClock::new();
        let t = throttle(&clock);
        for _ in 0..2 {
            t.failed("a@x", "1.1.1.1");
        }
        t.succeeded("a@x");
        t.failed("a@x", "1.1.1.1");
        t.failed("a@x", "1.1.1.1");
        assert_eq!(
            t.blocked("a@x", "3.3.3.3"),
            None,
            "count restarted at the success"
        );
    }

    #[test]
    fn old_failures_do_not_add_up_across_windows() {
        let clock = ManualClock::new();
        let t = throttle(&clock);
        t.failed("a@x", "1.1.1.1");
        t.failed("a@x", "1.1.1.1");
        clock.advance(Duration::from_secs(61));
        t.failed("a@x", "1.1.1.1");
        assert_eq!(t.blocked("a@x", "1.1.1.1"), None);
    }
}
