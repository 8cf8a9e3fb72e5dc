//! The circuit breaker as a tower [`Layer`]: [`CircuitBreakerLayer`] wraps a service in a
//! [`CircuitBreakerService`].
//!
//! Errors are boxed ([`BoxError`], tower's convention, so layers stack): a refusal is a boxed
//! [`CircuitOpen`] that callers find with `downcast_ref::<CircuitOpen>()`; the inner
//! service's errors are boxed through `Into<BoxError>`. A [`Classifier`] decides which
//! outcomes count as failures — by default every `Err` ([`ErrorsAreFailures`]); with
//! [`CircuitBreakerLayer::with_classifier`] any `Fn(&Result<Res, E>) -> bool`, so that, say,
//! an HTTP 503 response counts as a failure while still being passed on.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tower::{Layer, Service};

use super::{CircuitBreaker, OwnedPermit};
use crate::error::{BoxError, CircuitOpen};

/// Decides whether a call's outcome counts as a failure for the breaker.
pub trait Classifier<Res, E> {
    /// `true` when `result` should count as a failure.
    fn is_failure(&self, result: &Result<Res, E>) -> bool;
}

/// The default classifier: `Err` is a failure, `Ok` a success.
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorsAreFailures;

impl<Res, E> Classifier<Res, E> for ErrorsAreFailures {
    fn is_failure(&self, result: &Result<Res, E>) -> bool {
        result.is_err()
    }
}

impl<Res, E, F> Classifier<Res, E> for F
where
    F: Fn(&Result<Res, E>) -> bool,
{
    fn is_failure(&self, result: &Result<Res, E>) -> bool {
        self(result)
    }
}

/// Wraps services in a [`CircuitBreakerService`] sharing one breaker.
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer<C = ErrorsAreFailures> {
    breaker: CircuitBreaker,
    classifier: C,
}

impl CircuitBreakerLayer {
    /// A layer where every `Err` counts as a failure.
    pub fn new(breaker: CircuitBreaker) -> Self {
        Self {
            breaker,
            classifier: ErrorsAreFailures,
        }
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// The same layer with another failure classifier.
    pub fn with_classifier<C2>(self, classifier: C2) -> CircuitBreakerLayer<C2> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classifier,
        }
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreakerService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService {
            inner,
            breaker: self.breaker.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

/// A service whose calls go through a circuit breaker.
#[derive(Debug, Clone)]
pub struct CircuitBreakerService<S, C = ErrorsAreFailures> {
    inner: S,
    breaker: CircuitBreaker,
    classifier: C,
}

impl<S, C> CircuitBreakerService<S, C> {
    /// The breaker this service reports to.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }
}

impl<S, C, Req> Service<Req> for CircuitBreakerService<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classifier<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let kind = match self.breaker.try_acquire_owned() {
            Ok(permit) => Kind::Called {
                future: self.inner.call(req),
                permit: Some(permit),
                classifier: self.classifier.clone(),
            },
            Err(open) => Kind::Refused { error: Some(open) },
        };
        ResponseFuture { kind }
    }
}

pin_project_lite::pin_project! {
    /// The future of a [`CircuitBreakerService`] call.
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F, C>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F, C> {
        // The call was admitted and runs; the permit is taken when the outcome is recorded.
        Called {
            #[pin]
            future: F,
            permit: Option<OwnedPermit>,
            classifier: C,
        },
        // The breaker refused the call.
        Refused {
            error: Option<CircuitOpen>,
        },
    }
}

impl<F, C, Res, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<Res, E>>,
    E: Into<BoxError>,
    C: Classifier<Res, E>,
{
    type Output = Result<Res, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Called {
                future,
                permit,
                classifier,
            } => {
                let result = ready!(future.poll(cx));
                if let Some(permit) = permit.take() {
                    permit.record(classifier.is_failure(&result));
                }
                Poll::Ready(result.map_err(Into::into))
            }
            KindProj::Refused { error } => Poll::Ready(Err(match error.take() {
                Some(open) => Box::new(open),
                None => "circuit breaker future polled after completion".into(),
            })),
        }
    }
}
