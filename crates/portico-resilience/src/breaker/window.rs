//! The sliding windows of the rate mode: call outcomes over the last N calls or the last T.
//!
//! Both windows keep running totals, so recording an outcome and reading the rates are O(1)
//! (the time window clears at most one bucket per elapsed bucket, bounded by its length).

use std::fmt;

use super::config::SlidingWindow;

/// One call's result as the window sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Outcome {
    /// The call failed (by the caller's classification).
    pub(crate) failed: bool,
    /// The call took at least the slow-call duration.
    pub(crate) slow: bool,
}

/// Counts of calls, failures and slow calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Totals {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

impl Totals {
    pub(crate) fn add(&mut self, outcome: Outcome) {
        self.calls += 1;
        self.failures += u64::from(outcome.failed);
        self.slow += u64::from(outcome.slow);
    }

    fn remove(&mut self, other: Totals) {
        self.calls = self.calls.saturating_sub(other.calls);
        self.failures = self.failures.saturating_sub(other.failures);
        self.slow = self.slow.saturating_sub(other.slow);
    }
}

/// A rate that reached its threshold: `part` of `calls` is at least `threshold` percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Failed (or slow) calls.
    pub part: u64,
    /// All calls considered.
    pub calls: u64,
    /// The threshold, in percent.
    pub threshold: u8,
}

impl Rate {
    /// `Some` when `part / calls >= threshold %`.
    pub(crate) fn reached(part: u64, calls: u64, threshold: Option<u8>) -> Option<Rate> {
        let threshold = threshold?;
        (calls > 0 && part.saturating_mul(100) >= u64::from(threshold).saturating_mul(calls))
            .then_some(Rate {
                part,
                calls,
                threshold,
            })
    }

    /// The rate in percent.
    pub fn percent(&self) -> f64 {
        if self.calls == 0 {
            return 0.0;
        }
        self.part as f64 * 100.0 / self.calls as f64
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1}% >= {}%", self.percent(), self.threshold)
    }
}

/// A count-based or time-based window.
#[derive(Debug)]
pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    pub(crate) fn new(kind: SlidingWindow) -> Self {
        match kind {
            SlidingWindow::Count(n) => Window::Count(CountWindow::new(n.get() as usize)),
            SlidingWindow::Time(d) => {
                let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
                let buckets = d.as_secs().clamp(1, 3600);
                Window::Time(TimeWindow::new(buckets as usize, (nanos / buckets).max(1)))
            }
        }
    }

    /// Records an outcome at `now` (nanoseconds on the breaker's time line).
    pub(crate) fn record(&mut self, now: u64, outcome: Outcome) {
        match self {
            Window::Count(w) => w.record(outcome),
            Window::Time(w) => w.record(now, outcome),
        }
    }

    /// The totals of the window as of `now`.
    pub(crate) fn totals(&mut self, now: u64) -> Totals {
        match self {
            Window::Count(w) => w.totals,
            Window::Time(w) => {
                w.advance(now);
                w.totals
            }
        }
    }

    /// Forgets every outcome.
    pub(crate) fn clear(&mut self) {
        match self {
            Window::Count(w) => *w = CountWindow::new(w.ring.len()),
            Window::Time(w) => *w = TimeWindow::new(w.buckets.len(), w.width),
        }
    }
}

/// The last `ring.len()` outcomes in a ring buffer.
#[derive(Debug)]
pub(crate) struct CountWindow {
    ring: Box<[Outcome]>,
    next: usize,
    filled: usize,
    totals: Totals,
}

impl CountWindow {
    fn new(size: usize) -> Self {
        Self {
            ring: vec![Outcome::default(); size.max(1)].into_boxed_slice(),
            next: 0,
            filled: 0,
            totals: Totals::default(),
        }
    }

    fn record(&mut self, outcome: Outcome) {
        if self.filled == self.ring.len() {
            let evicted = self.ring[self.next];
            let mut old = Totals::default();
            old.add(evicted);
            self.totals.remove(old);
        } else {
            self.filled += 1;
        }
        self.ring[self.next] = outcome;
        self.next = (self.next + 1) % self.ring.len();
        self.totals.add(outcome);
    }
}

/// Outcomes in fixed-width time buckets; the window is the last `buckets.len()` buckets.
#[derive(Debug)]
pub(crate) struct TimeWindow {
    buckets: Box<[Totals]>,
    width: u64,
    /// Absolute index (time / width) of the newest bucket.
    head: u64,
    totals: Totals,
}

impl TimeWindow {
    fn new(buckets: usize, width: u64) -> Self {
        Self {
            buckets: vec![Totals::default(); buckets.max(1)].into_boxed_slice(),
            width,
            head: 0,
            totals: Totals::default(),
        }
    }

    /// Moves the head to the bucket of `now`, clearing the buckets that fell out.
    fn advance(&mut self, now: u64) {
        let index = now / self.width;
        if index <= self.head {
            return;
        }
        let len = self.buckets.len() as u64;
        let stale = (index - self.head).min(len);
        for step in 1..=stale {
            let slot = ((self.head + step) % len) as usize;
            let old = std::mem::take(&mut self.buckets[slot]);
            self.totals.remove(old);
        }
        self.head = index;
    }

    fn record(&mut self, now: u64, outcome: Outcome) {
        self.advance(now);
        let slot = (self.head % self.buckets.len() as u64) as usize;
        self.buckets[slot].add(outcome);
        self.totals.add(outcome);
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;
    use std::time::Duration;

    use super::*;

    const FAIL: Outcome = Outcome {
        failed: true,
        slow: false,
    };
    const OK: Outcome = Outcome {
        failed: false,
        slow: false,
    };
    const SEC: u64 = 1_000_000_000;

    #[test]
    fn count_window_keeps_only_the_last_n() {
        let mut w = Window::new(SlidingWindow::Count(NonZeroU32::new(3).unwrap()));
        for o in [FAIL, FAIL, OK, OK] {
            w.record(0, o);
        }
        let t = w.totals(0);
        assert_eq!((t.calls, t.failures), (3, 1));
        w.record(0, OK);
        assert_eq!(w.totals(0).failures, 0);
        w.clear();
        assert_eq!(w.totals(0), Totals::default());
    }

    #[test]
    fn time_window_forgets_old_buckets() {
        let mut w = Window::new(SlidingWindow::Time(Duration::from_secs(3)));
        w.record(0, FAIL);
        w.record(SEC, FAIL);
        w.record(2 * SEC, OK);
        assert_eq!(w.totals(2 * SEC).failures, 2);
        // At t = 3 s the bucket of t = 0 falls out.
        assert_eq!(w.totals(3 * SEC).failures, 1);
        assert_eq!(w.totals(3 * SEC).calls, 2);
        // A long gap clears everything.
        assert_eq!(w.totals(100 * SEC), Totals::default());
        w.record(100 * SEC, OK);
        assert_eq!(w.totals(100 * SEC).calls, 1);
    }

    #[test]
    fn rate_reached_at_threshold() {
        assert!(Rate::reached(1, 2, Some(50)).is_some());
        assert!(Rate::reached(4, 10, Some(50)).is_none());
        assert!(Rate::reached(4, 10, None).is_none());
        assert!(Rate::reached(0, 0, Some(1)).is_none());
        let rate = Rate::reached(3, 5, Some(50)).unwrap();
        assert_eq!(rate.to_string(), "60.0% >= 50%");
    }
}
