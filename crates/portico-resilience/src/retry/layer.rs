//! The tower form of retry: [`RetryLayer`] wraps a service so each request is retried under
//! a [`RetryPolicy`].
//!
//! The request is cloned for every attempt, so it must be `Clone` (for HTTP, buffer the body
//! first). The service is cloned the tower way: `call` takes the instance `poll_ready` made
//! ready and leaves a clone in its place; later attempts wait for readiness of their own clone.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service, ServiceExt as _};

use super::{RetryDecision, RetryObserver, RetryPolicy, on_error};
use crate::clock::SharedClock;
use crate::error::BoxError;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Classifies an outcome for the tower layer. Implemented by every
/// `Fn(&Result<T, E>) -> RetryDecision` and by [`RetryOnError`].
pub trait Classify<T, E> {
    /// The decision for `outcome`.
    fn classify(&self, outcome: &Result<T, E>) -> RetryDecision;
}

impl<T, E, F> Classify<T, E> for F
where
    F: Fn(&Result<T, E>) -> RetryDecision,
{
    fn classify(&self, outcome: &Result<T, E>) -> RetryDecision {
        self(outcome)
    }
}

/// The default classification ([`on_error`]): retry errors, return responses.
#[derive(Debug, Clone, Copy, Default)]
pub struct RetryOnError;

impl<T, E> Classify<T, E> for RetryOnError {
    fn classify(&self, outcome: &Result<T, E>) -> RetryDecision {
        on_error(outcome)
    }
}

/// Retries requests to the wrapped service under a [`RetryPolicy`].
#[derive(Debug)]
pub struct RetryLayer<C = RetryOnError, O = ()> {
    policy: Arc<RetryPolicy>,
    clock: SharedClock,
    classify: Arc<C>,
    observer: Arc<O>,
}

impl<C, O> Clone for RetryLayer<C, O> {
    fn clone(&self) -> Self {
        Self {
            policy: self.policy.clone(),
            clock: self.clock.clone(),
            classify: self.classify.clone(),
            observer: self.observer.clone(),
        }
    }
}

impl RetryLayer {
    /// Retries every error under `policy`, sleeping on `clock`, observed by nobody.
    pub fn new(policy: RetryPolicy, clock: SharedClock) -> Self {
        Self {
            policy: Arc::new(policy),
            clock,
            classify: Arc::new(RetryOnError),
            observer: Arc::new(()),
        }
    }
}

impl<C, O> RetryLayer<C, O> {
    /// The same layer deciding with `classify` over `Result<Response, BoxError>`.
    pub fn classify<C2>(self, classify: C2) -> RetryLayer<C2, O> {
        RetryLayer {
            policy: self.policy,
            clock: self.clock,
            classify: Arc::new(classify),
            observer: self.observer,
        }
    }

    /// The same layer reporting to `observer`.
    pub fn observer<O2>(self, observer: O2) -> RetryLayer<C, O2> {
        RetryLayer {
            policy: self.policy,
            clock: self.clock,
            classify: self.classify,
            observer: Arc::new(observer),
        }
    }
}

impl<S, C, O> Layer<S> for RetryLayer<C, O> {
    type Service = Retry<S, C, O>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry {
            inner,
            layer: self.clone(),
        }
    }
}

/// A service whose requests are retried; made by [`RetryLayer`].
#[derive(Debug)]
pub struct Retry<S, C = RetryOnError, O = ()> {
    inner: S,
    layer: RetryLayer<C, O>,
}

impl<S: Clone, C, O> Clone for Retry<S, C, O> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S, C, O, Req> Service<Req> for Retry<S, C, O>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    Req: Clone + Send + 'static,
    C: Classify<S::Response, BoxError> + Send + Sync + 'static,
    O: RetryObserver<S::Response, BoxError> + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let fresh = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, fresh);
        let layer = self.layer.clone();
        Box::pin(async move {
            let template = ready.clone();
            let mut first = Some(ready);
            let attempt = move || {
                let svc = first.take().unwrap_or_else(|| template.clone());
                let req = req.clone();
                async move {
                    // A ready service stays ready, so the first attempt passes straight through.
                    let response = svc.oneshot(req).await;
                    response.map_err(Into::into)
                }
            };
            let classify =
                |outcome: &Result<S::Response, BoxError>| layer.classify.classify(outcome);
            layer
                .policy
                .run(&layer.clock, classify, &*layer.observer, attempt)
                .await
        })
    }
}
