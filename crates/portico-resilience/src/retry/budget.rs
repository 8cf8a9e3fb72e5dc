//! The retry budget: retries as a share of recent requests, shared by many calls.
//!
//! Per-call attempt limits do not stop a retry storm: when an upstream fails for everyone,
//! three attempts per call triple its load just when it can least take it. A budget caps
//! retries across all calls instead (the idea of Finagle's, linkerd's and tower's budgets):
//! every original request *deposits*, every retry *withdraws*, and a retry is allowed only
//! while withdrawals stay within `ratio` of the deposits made over the last `ttl`, plus a
//! small floor of `min_per_second` retries per second so that a quiet service can still retry.
//!
//! The window slides in ten buckets of `ttl / 10`, read from the injected
//! [`Clock`](crate::clock::Clock), so it covers between 90 % and 100 % of `ttl`. Accounting
//! is in integer thousandths of a retry, which keeps `ratio = 0.2` exact.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::clock::SharedClock;
use crate::error::ConfigError;

/// Buckets in the sliding window.
const BUCKETS: usize = 10;
/// Units per retry in the integer accounting: ratios are honoured to 1/1000.
const UNIT: u64 = 1000;

/// A retry budget shared (through an `Arc`) by every call to one upstream.
///
/// Thread-safe; each operation takes one short, uncontended-in-practice lock over ten counters.
#[derive(Debug)]
pub struct RetryBudget {
    clock: SharedClock,
    start: Instant,
    ttl: Duration,
    bucket_nanos: u128,
    /// Units added by each deposit (`ratio × UNIT`).
    deposit_units: u64,
    /// Units always available (`min_per_second × ttl × UNIT`).
    reserve_units: u64,
    min_per_second: u32,
    ratio: f64,
    buckets: Mutex<[Bucket; BUCKETS]>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    epoch: u64,
    deposits: u64,
    withdrawals: u64,
}

impl RetryBudget {
    /// The recommended budget: 20 % of the requests of the last 10 s, plus one retry per second.
    pub fn with_defaults(clock: &SharedClock) -> Self {
        Self::build(clock, Duration::from_secs(10), 1, 0.2)
    }

    /// A budget allowing `ratio` retries per request over the last `ttl`, plus
    /// `min_per_second` retries per second whatever the traffic.
    ///
    /// Refuses a `ttl` under 1 ms or over 1 h (`ttl`) and a `ratio` that is negative, above
    /// 1000 or not finite (`ratio`).
    pub fn new(
        clock: &SharedClock,
        ttl: Duration,
        min_per_second: u32,
        ratio: f64,
    ) -> Result<Self, ConfigError> {
        if ttl < Duration::from_millis(1) || ttl > Duration::from_secs(3600) {
            return Err(ConfigError::new(
                "ttl",
                format!("must be between 1ms and 1h, got {ttl:?}"),
            ));
        }
        if !ratio.is_finite() || !(0.0..=1000.0).contains(&ratio) {
            return Err(ConfigError::new(
                "ratio",
                format!("must be between 0 and 1000, got {ratio}"),
            ));
        }
        Ok(Self::build(clock, ttl, min_per_second, ratio))
    }

    fn build(clock: &SharedClock, ttl: Duration, min_per_second: u32, ratio: f64) -> Self {
        let ttl_millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        Self {
            clock: clock.clone(),
            start: clock.now(),
            ttl,
            bucket_nanos: (ttl.as_nanos() / BUCKETS as u128).max(1),
            // `ratio` is checked to lie in 0..=1000, so this fits easily.
            deposit_units: (ratio * UNIT as f64).round() as u64,
            // min_per_second × ttl_secs × UNIT == min_per_second × ttl_millis.
            reserve_units: u64::from(min_per_second).saturating_mul(ttl_millis),
            min_per_second,
            ratio,
            buckets: Mutex::new([Bucket::default(); BUCKETS]),
        }
    }

    /// The window over which deposits and withdrawals count.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Retries allowed per request.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// Retries per second allowed whatever the traffic.
    pub fn min_per_second(&self) -> u32 {
        self.min_per_second
    }

    /// Records an original request (not a retry).
    pub fn deposit(&self) {
        self.with_current(|bucket, _| bucket.deposits += 1);
    }

    /// Takes one retry from the budget; `false` (and nothing taken) when it is empty.
    pub fn try_withdraw(&self) -> bool {
        self.with_current(|bucket, balance| {
            if balance >= UNIT {
                bucket.withdrawals += 1;
                true
            } else {
                false
            }
        })
    }

    /// Whole retries currently available.
    pub fn available(&self) -> u64 {
        self.with_current(|_, balance| balance / UNIT)
    }

    /// Runs `f` on the current bucket with the balance (in units) of the whole window.
    fn with_current<R>(&self, f: impl FnOnce(&mut Bucket, u64) -> R) -> R {
        let elapsed = self.clock.now().saturating_duration_since(self.start);
        let epoch = u64::try_from(elapsed.as_nanos() / self.bucket_nanos).unwrap_or(u64::MAX);
        // A poisoned lock only means a panic elsewhere mid-update of plain counters; the
        // counts are still meaningful, so carry on with them.
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (mut deposits, mut withdrawals) = (0u64, 0u64);
        for bucket in buckets.iter() {
            if epoch.saturating_sub(bucket.epoch) < BUCKETS as u64 {
                deposits += bucket.deposits;
                withdrawals += bucket.withdrawals;
            }
        }
        let current = &mut buckets[(epoch % BUCKETS as u64) as usize];
        if current.epoch != epoch {
            // The slot last held a bucket from a full window ago, which is already outside
            // the sums above (or is the empty initial bucket).
            *current = Bucket {
                epoch,
                ..Bucket::default()
            };
        }
        let balance = self
            .reserve_units
            .saturating_add(deposits.saturating_mul(self.deposit_units))
            .saturating_sub(withdrawals.saturating_mul(UNIT));
        f(current, balance)
    }
}
