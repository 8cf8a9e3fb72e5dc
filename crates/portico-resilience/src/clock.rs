//! Time as a dependency.
//!
//! Every piece of this crate that looks at the time or waits (breaker recovery, sliding
//! windows, retry backoff, rate limits, budgets) asks a [`Clock`] instead of the operating
//! system. Production code uses [`SystemClock`]; tests use [`ManualClock`], whose time only
//! moves when the test says so, which makes timing tests exact and instant.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

/// A boxed sleep future returned by [`Clock::sleep`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of monotonic time, wall-clock time, and sleeps.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Monotonic "now", used for every interval computation.
    fn now(&self) -> Instant;
    /// Wall-clock "now", used only for reporting (timestamps in snapshots and logs).
    fn system_now(&self) -> SystemTime;
    /// A future that completes once `duration` has passed on this clock.
    fn sleep(&self, duration: Duration) -> Sleep;
}

/// A clock shared between components.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock: `std::time` for reading, `tokio::time` for sleeping.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    /// A [`SharedClock`] backed by the system clock.
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn system_now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that moves only when [`ManualClock::advance`] is called.
///
/// Sleeps started on it complete as soon as the clock has been advanced past their deadline,
/// so a test can drive a retry loop or a breaker's recovery timeout without waiting.
/// [`ManualClock::pending_sleeps`] tells a test when the code under test has parked in a
/// sleep, so it knows when to advance.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    start: Instant,
    start_system: SystemTime,
    elapsed: Mutex<Duration>,
    tx: watch::Sender<Duration>,
    pending: AtomicUsize,
    /// Requested length of each waiting sleep, by sleep id.
    waiting: Mutex<Vec<(u64, Duration)>>,
    next_id: AtomicU64,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A manual clock starting at the current real time.
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(Duration::ZERO);
        Self {
            inner: Arc::new(ManualInner {
                start: Instant::now(),
                start_system: SystemTime::now(),
                elapsed: Mutex::new(Duration::ZERO),
                tx,
                pending: AtomicUsize::new(0),
                waiting: Mutex::new(Vec::new()),
                next_id: AtomicU64::new(0),
            }),
        }
    }

    /// This clock as a [`SharedClock`].
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }

    /// Moves time forward by `by`, waking every sleep whose deadline has passed.
    pub fn advance(&self, by: Duration) {
        let now = {
            let mut elapsed = self.inner.elapsed.lock().unwrap_or_else(|e| e.into_inner());
            *elapsed += by;
            *elapsed
        };
        self.inner.tx.send_replace(now);
    }

    /// How far this clock has been advanced since it was made.
    pub fn elapsed(&self) -> Duration {
        *self.inner.elapsed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many sleeps on this clock are currently waiting.
    pub fn pending_sleeps(&self) -> usize {
        self.inner.pending.load(Ordering::SeqCst)
    }

    /// The requested lengths of the sleeps currently waiting, oldest first.
    ///
    /// Lets a test tell a retry backoff (`1s`) from a per-attempt timeout (`15s`) that is
    /// pending at the same time, and advance by exactly the wait the code asked for.
    pub fn pending_sleep_durations(&self) -> Vec<Duration> {
        let waiting = self.inner.waiting.lock().unwrap_or_else(|e| e.into_inner());
        waiting.iter().map(|(_, d)| *d).collect()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.inner.start + self.elapsed()
    }

    fn system_now(&self) -> SystemTime {
        self.inner.start_system + self.elapsed()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        let deadline = self.elapsed() + duration;
        let mut rx = self.inner.tx.subscribe();
        let guard = PendingGuard::new(self.inner.clone(), duration);
        Box::pin(async move {
            let _guard = guard;
            loop {
                if *rx.borrow_and_update() >= deadline {
                    return;
                }
                if rx.changed().await.is_err() {
                    // The clock was dropped: time will never move again, so never wake.
                    std::future::pending::<()>().await;
                }
            }
        })
    }
}

/// Counts a sleep as pending from its creation until it completes or is dropped.
struct PendingGuard {
    inner: Arc<ManualInner>,
    id: u64,
}

impl PendingGuard {
    fn new(inner: Arc<ManualInner>, duration: Duration) -> Self {
        let id = inner.next_id.fetch_add(1, Ordering::SeqCst);
        inner
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, duration));
        inner.pending.fetch_add(1, Ordering::SeqCst);
        Self { inner, id }
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.inner
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(id, _)| *id != self.id);
        self.inner.pending.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_sleep_completes_only_after_advance() {
        let clock = ManualClock::new();
        let sleep = clock.sleep(Duration::from_secs(5));
        let handle = tokio::spawn(sleep);
        while clock.pending_sleeps() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            clock.pending_sleep_durations(),
            vec![Duration::from_secs(5)]
        );
        clock.advance(Duration::from_secs(4));
        tokio::task::yield_now().await;
        assert!(!handle.is_finished());
        clock.advance(Duration::from_secs(1));
        handle.await.expect("sleep task");
        assert_eq!(clock.pending_sleeps(), 0);
        assert!(clock.pending_sleep_durations().is_empty());
    }

    #[test]
    fn manual_now_moves_with_advance() {
        let clock = ManualClock::new();
        let t0 = clock.now();
        clock.advance(Duration::from_millis(250));
        assert_eq!(clock.now() - t0, Duration::from_millis(250));
    }
}
