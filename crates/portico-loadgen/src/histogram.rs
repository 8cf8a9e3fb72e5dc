//! A lock-free latency histogram shared by every subscriber task: log-linear buckets (64 per
//! power of two, so any recorded value is reported within 1.6 %), exact below 128 µs.
//!
//! Atomic counters rather than per-task histograms merged at the end, because a subscriber
//! task lives as long as its connection and the scenarios read percentiles while they run.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Sub-bucket bits: 2^(BITS-1) buckets per power of two above 2^BITS.
const BITS: u32 = 7;
const HALF: u64 = 1 << (BITS - 1);
const BUCKETS: usize = ((64 - BITS + 2) as usize) << (BITS - 1);

/// Counts of values (microseconds) in log-linear buckets, plus count, sum and max.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }
}

fn index(v: u64) -> usize {
    if v < (1 << BITS) {
        return v as usize;
    }
    let group = u64::from(63 - v.leading_zeros() - BITS + 1);
    (group * HALF + (v >> group)) as usize
}

/// The middle of the bucket at `i`.
fn value_of(i: usize) -> u64 {
    let i = i as u64;
    if i < (1 << BITS) {
        return i;
    }
    let group = i / HALF - 1;
    let sub = i - group * HALF;
    (sub << group) + (1 << group) / 2
}

impl Histogram {
    /// Records one value.
    pub fn record(&self, v: u64) {
        self.buckets[index(v)].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.sum.fetch_add(v, Relaxed);
        self.max.fetch_max(v, Relaxed);
    }

    /// Forgets everything recorded so far (after a warm-up). Values recorded concurrently
    /// may land on either side.
    pub fn reset(&self) {
        for b in self.buckets.iter() {
            b.store(0, Relaxed);
        }
        self.count.store(0, Relaxed);
        self.sum.store(0, Relaxed);
        self.max.store(0, Relaxed);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// The largest value recorded (exact).
    pub fn max(&self) -> u64 {
        self.max.load(Relaxed)
    }

    /// The mean of the values recorded, 0 when none were.
    pub fn mean(&self) -> f64 {
        let n = self.count();
        if n == 0 {
            0.0
        } else {
            self.sum.load(Relaxed) as f64 / n as f64
        }
    }

    /// The value at quantile `q` (0..=1): the smallest bucket holding at least `q` of the
    /// values, capped by the exact maximum; 0 when nothing was recorded.
    pub fn quantile(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return value_of(i).min(self.max());
            }
        }
        self.max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_within_1_6_percent() {
        let mut last = 0;
        for v in 0..1_000_000u64 {
            let i = index(v);
            assert!(i >= last && i <= last + 1, "gap at {v}");
            last = i;
        }
        for v in (0..1_000_000u64).chain([u64::MAX / 3, u64::MAX]) {
            let i = index(v);
            assert!(i < BUCKETS);
            let mid = value_of(i);
            assert!(
                mid.abs_diff(v) as f64 <= v as f64 * 0.016 + 0.5,
                "{v} → {mid}"
            );
        }
    }

    #[test]
    fn quantiles_of_a_uniform_spread() {
        let h = Histogram::default();
        for v in 1..=10_000 {
            h.record(v);
        }
        assert_eq!(h.count(), 10_000);
        assert_eq!(h.max(), 10_000);
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 - 5000.0).abs() < 5000.0 * 0.02, "{p50}");
        assert!((p99 - 9900.0).abs() < 9900.0 * 0.02, "{p99}");
        assert_eq!(h.quantile(1.0), 10_000);
        assert!((h.mean() - 5000.5).abs() < 1e-9);
        h.reset();
        assert_eq!(h.quantile(0.5), 0);
        assert_eq!(h.count(), 0);
    }
}
