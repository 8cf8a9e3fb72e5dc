//! The bulkhead: a bound on the calls in flight to one upstream, with a bounded queue.
//!
//! A slow upstream should not be able to take every task and connection of the process with
//! it. A [`Bulkhead`] admits `max_concurrent` calls at once; up to `max_queue` more wait (in
//! arrival order, optionally for at most `max_wait` of the clock's time) and the rest are
//! refused at once with [`BulkheadFull`] — which is what lets the caller answer 503 quickly
//! instead of piling up. It is built on `tokio::sync::Semaphore`; a slot is an RAII
//! [`BulkheadPermit`]. [`BulkheadLayer`] is the tower form.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use crate::clock::SharedClock;
use crate::error::{BoxError, BulkheadFull, ConfigError};
use crate::timeout::timeout;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Bounded concurrency with a bounded queue; clones share the same slots.
#[derive(Debug, Clone)]
pub struct Bulkhead {
    semaphore: Arc<Semaphore>,
    queued: Arc<AtomicUsize>,
    max_concurrent: usize,
    max_queue: usize,
    max_wait: Option<(SharedClock, Duration)>,
}

/// One of the bulkhead's slots; the slot is freed when the permit is dropped.
#[derive(Debug)]
#[must_use = "the slot is freed as soon as the permit is dropped"]
pub struct BulkheadPermit {
    _permit: OwnedSemaphorePermit,
}

/// Counts a caller as queued until it gets a slot, gives up, or is dropped.
struct QueueSpot<'a>(&'a AtomicUsize);

impl Drop for QueueSpot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Bulkhead {
    /// `max_concurrent` calls at once (at least 1: `max_concurrent`) and up to `max_queue`
    /// waiting; waiters wait as long as it takes until [`Bulkhead::with_max_wait`].
    pub fn new(max_concurrent: usize, max_queue: usize) -> Result<Self, ConfigError> {
        if max_concurrent == 0 {
            return Err(ConfigError::new("max_concurrent", "must be at least 1"));
        }
        if max_concurrent > Semaphore::MAX_PERMITS {
            return Err(ConfigError::new(
                "max_concurrent",
                format!("must be at most {}", Semaphore::MAX_PERMITS),
            ));
        }
        Ok(Self {
            semaphore: Arc::new(Semaphore::new(max_concurrent)),
            queued: Arc::new(AtomicUsize::new(0)),
            max_concurrent,
            max_queue,
            max_wait: None,
        })
    }

    /// Queued callers give up with [`BulkheadFull`] after waiting `max_wait` of `clock`'s
    /// time; zero is refused (`max_wait`).
    pub fn with_max_wait(
        mut self,
        clock: SharedClock,
        max_wait: Duration,
    ) -> Result<Self, ConfigError> {
        if max_wait.is_zero() {
            return Err(ConfigError::new("max_wait", "must be greater than 0"));
        }
        self.max_wait = Some((clock, max_wait));
        Ok(self)
    }

    /// Calls allowed at once.
    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent
    }

    /// Calls allowed to wait.
    pub fn max_queue(&self) -> usize {
        self.max_queue
    }

    /// Free slots right now.
    pub fn available(&self) -> usize {
        self.semaphore.available_permits()
    }

    /// Callers waiting for a slot right now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// A free slot, without waiting; [`BulkheadFull`] if there is none.
    pub fn try_acquire(&self) -> Result<BulkheadPermit, BulkheadFull> {
        self.semaphore
            .clone()
            .try_acquire_owned()
            .map(|permit| BulkheadPermit { _permit: permit })
            .map_err(|_| self.full())
    }

    /// A slot, waiting in the queue if every slot is taken; refused at once with
    /// [`BulkheadFull`] if the queue is full too, or after `max_wait` in the queue.
    ///
    /// Dropping the future leaves the queue.
    pub async fn acquire(&self) -> Result<BulkheadPermit, BulkheadFull> {
        if let Ok(permit) = self.try_acquire() {
            return Ok(permit);
        }
        let _spot = self.join_queue().ok_or_else(|| self.full())?;
        let wait = self.semaphore.clone().acquire_owned();
        let permit = match &self.max_wait {
            Some((clock, max_wait)) => timeout(clock, *max_wait, wait)
                .await
                .map_err(|_| self.full())?,
            None => wait.await,
        };
        // The semaphore is never closed, so an error cannot happen; refusing is the safe answer.
        permit
            .map(|permit| BulkheadPermit { _permit: permit })
            .map_err(|_| self.full())
    }

    /// Runs `future` in a slot (see [`Bulkhead::acquire`]); the slot is freed when it ends.
    pub async fn run<F: IntoFuture>(&self, future: F) -> Result<F::Output, BulkheadFull> {
        let _permit = self.acquire().await?;
        Ok(future.await)
    }

    fn join_queue(&self) -> Option<QueueSpot<'_>> {
        self.queued
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |q| {
                (q < self.max_queue).then_some(q + 1)
            })
            .ok()
            .map(|_| QueueSpot(&self.queued))
    }

    fn full(&self) -> BulkheadFull {
        BulkheadFull {
            max_concurrent: self.max_concurrent,
            max_queue: self.max_queue,
        }
    }
}

/// Puts a [`Bulkhead`] in front of the wrapped service.
#[derive(Debug, Clone)]
pub struct BulkheadLayer {
    bulkhead: Bulkhead,
}

impl BulkheadLayer {
    /// Requests take a slot of `bulkhead` (shared with its clones) for as long as they run.
    pub fn new(bulkhead: Bulkhead) -> Self {
        Self { bulkhead }
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = BulkheadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BulkheadService {
            inner,
            bulkhead: self.bulkhead.clone(),
        }
    }
}

/// A service whose requests go through a bulkhead; made by [`BulkheadLayer`].
#[derive(Debug, Clone)]
pub struct BulkheadService<S> {
    inner: S,
    bulkhead: Bulkhead,
}

impl<S, Req> Service<Req> for BulkheadService<S>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    Req: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // No slot is taken here: a caller may poll_ready and never call, and that must not
        // hold a slot. The slot is taken inside the response future.
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let fresh = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, fresh);
        let bulkhead = self.bulkhead.clone();
        Box::pin(async move {
            let _permit = bulkhead.acquire().await?;
            ready.call(req).await.map_err(Into::into)
        })
    }
}
