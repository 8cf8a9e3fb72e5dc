//! Timeouts and deadlines: give up on a call that takes too long.
//!
//! [`timeout`] races a future against a sleep on the injected [`Clock`](crate::clock::Clock).
//! A [`Deadline`] is the overall budget of a call made of several attempts: each attempt gets
//! the smaller of its own timeout and what is left ([`Deadline::run_attempt`]), and
//! [`RetryPolicy::run_until`](crate::retry::RetryPolicy::run_until) uses it so that a retried
//! call never outlives its deadline. [`TimeoutLayer`] is the tower form; its error is a boxed
//! [`TimeoutElapsed`] that callers find with `downcast_ref` (504 at the gateway).

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::clock::{SharedClock, Sleep};
use crate::error::{BoxError, ConfigError, TimeoutElapsed};

/// Runs `future` for at most `duration` of `clock`'s time; the clock starts now.
///
/// If the future and the timer are both ready at the same poll, the future's output wins.
pub fn timeout<F: IntoFuture>(
    clock: &SharedClock,
    duration: Duration,
    future: F,
) -> Timeout<F::IntoFuture> {
    Timeout {
        future: future.into_future(),
        sleep: clock.sleep(duration),
        duration,
    }
}

pin_project! {
    /// The future returned by [`timeout`] and [`Deadline::run`]: the inner output, or
    /// [`TimeoutElapsed`] carrying the time waited.
    #[must_use = "futures do nothing unless polled"]
    pub struct Timeout<F> {
        #[pin]
        future: F,
        sleep: Sleep,
        duration: Duration,
    }
}

impl<F> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("duration", &self.duration)
            .finish_non_exhaustive()
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, TimeoutElapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        ready!(this.sleep.as_mut().poll(cx));
        Poll::Ready(Err(TimeoutElapsed(*this.duration)))
    }
}

/// A point in time after which a call (all its attempts and waits) is abandoned.
#[derive(Clone)]
pub struct Deadline {
    clock: SharedClock,
    at: Instant,
    budget: Duration,
}

impl fmt::Debug for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deadline")
            .field("budget", &self.budget)
            .field("remaining", &self.remaining())
            .finish()
    }
}

impl Deadline {
    /// A deadline `budget` from now on `clock`; a zero budget is refused (`deadline`).
    pub fn after(clock: &SharedClock, budget: Duration) -> Result<Self, ConfigError> {
        if budget.is_zero() {
            return Err(ConfigError::new("deadline", "must be greater than 0"));
        }
        Ok(Self {
            clock: clock.clone(),
            at: clock.now() + budget,
            budget,
        })
    }

    /// A deadline at `at` on `clock`, for deadlines computed elsewhere (say, from a caller's
    /// header); one already past is allowed and leaves nothing to spend.
    pub fn at(clock: &SharedClock, at: Instant) -> Self {
        Self {
            clock: clock.clone(),
            at,
            budget: at.saturating_duration_since(clock.now()),
        }
    }

    /// The clock this deadline is measured on.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// When the deadline falls.
    pub fn instant(&self) -> Instant {
        self.at
    }

    /// The time left, zero once past.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(self.clock.now())
    }

    /// Whether the deadline has passed.
    pub fn is_expired(&self) -> bool {
        self.remaining().is_zero()
    }

    /// The timeout one attempt gets: `per_attempt`, or what is left if that is less.
    pub fn attempt_timeout(&self, per_attempt: Duration) -> Duration {
        per_attempt.min(self.remaining())
    }

    /// Runs `future` until the deadline; the error carries the deadline's whole budget.
    pub fn run<F: IntoFuture>(&self, future: F) -> Timeout<F::IntoFuture> {
        Timeout {
            future: future.into_future(),
            sleep: self.clock.sleep(self.remaining()),
            duration: self.budget,
        }
    }

    /// Runs one attempt for [`Deadline::attempt_timeout`]`(per_attempt)`; the error carries
    /// that time.
    pub fn run_attempt<F: IntoFuture>(
        &self,
        per_attempt: Duration,
        future: F,
    ) -> Timeout<F::IntoFuture> {
        timeout(&self.clock, self.attempt_timeout(per_attempt), future)
    }
}

/// Cuts off each request to the wrapped service after a fixed time.
#[derive(Debug, Clone)]
pub struct TimeoutLayer {
    duration: Duration,
    clock: SharedClock,
}

impl TimeoutLayer {
    /// Requests are abandoned after `duration` of `clock`'s time; zero is refused (`timeout`).
    pub fn new(duration: Duration, clock: SharedClock) -> Result<Self, ConfigError> {
        if duration.is_zero() {
            return Err(ConfigError::new("timeout", "must be greater than 0"));
        }
        Ok(Self { duration, clock })
    }

    /// The timeout of each request.
    pub fn duration(&self) -> Duration {
        self.duration
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = TimeoutService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TimeoutService {
            inner,
            duration: self.duration,
            clock: self.clock.clone(),
        }
    }
}

/// A service whose requests time out; made by [`TimeoutLayer`].
#[derive(Debug, Clone)]
pub struct TimeoutService<S> {
    inner: S,
    duration: Duration,
    clock: SharedClock,
}

impl<S, Req> Service<Req> for TimeoutService<S>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Waiting for readiness is not timed: that is back-pressure, bounded elsewhere.
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        ResponseFuture {
            inner: timeout(&self.clock, self.duration, self.inner.call(req)),
        }
    }
}

pin_project! {
    /// The response future of [`TimeoutService`].
    #[must_use = "futures do nothing unless polled"]
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Timeout<F>,
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(match ready!(self.project().inner.poll(cx)) {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(error.into()),
            Err(elapsed) => Err(Box::new(elapsed)),
        })
    }
}
