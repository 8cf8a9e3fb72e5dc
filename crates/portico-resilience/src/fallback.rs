//! Fallback: answer with something else when a call fails.
//!
//! [`fallback`] replaces an error with the result of a second future (a cached answer, a
//! static reply, a degraded computation); [`fallback_when`] replaces any outcome a predicate
//! rejects, successful or not (an HTTP 5xx that arrived as a response). [`FallbackLayer`] is
//! the tower form: its closure gets the boxed error — a refusal such as `CircuitOpen` or
//! `TimeoutElapsed` can be told apart with `downcast_ref` — and may also take over responses
//! a predicate rejects, in which case it is handed a [`RejectedResponse`].

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use crate::error::BoxError;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Awaits `future`; on `Err(e)`, returns what `f(e)` resolves to instead.
pub async fn fallback<Fut, T, E, F, FFut, E2>(future: Fut, f: F) -> Result<T, E2>
where
    Fut: IntoFuture<Output = Result<T, E>>,
    F: FnOnce(E) -> FFut,
    FFut: Future<Output = Result<T, E2>>,
{
    match future.await {
        Ok(value) => Ok(value),
        Err(error) => f(error).await,
    }
}

/// Awaits `future`; when `rejects` returns `true` for the outcome, returns what `f(outcome)`
/// resolves to instead.
pub async fn fallback_when<Fut, T, E, P, F, FFut>(future: Fut, rejects: P, f: F) -> Result<T, E>
where
    Fut: IntoFuture<Output = Result<T, E>>,
    P: FnOnce(&Result<T, E>) -> bool,
    F: FnOnce(Result<T, E>) -> FFut,
    FFut: Future<Output = Result<T, E>>,
{
    let outcome = future.await;
    if rejects(&outcome) {
        f(outcome).await
    } else {
        outcome
    }
}

/// The error a [`FallbackLayer`]'s closure receives for a response its predicate rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("response rejected by the fallback predicate")]
pub struct RejectedResponse;

/// Decides which successful responses a [`FallbackLayer`] replaces. Implemented by every
/// `Fn(&Res) -> bool` and by [`KeepResponses`].
pub trait RejectResponse<Res> {
    /// Whether `response` should be replaced by the fallback.
    fn rejects(&self, response: &Res) -> bool;
}

impl<Res, F: Fn(&Res) -> bool> RejectResponse<Res> for F {
    fn rejects(&self, response: &Res) -> bool {
        self(response)
    }
}

/// The default: every successful response is kept; only errors fall back.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeepResponses;

impl<Res> RejectResponse<Res> for KeepResponses {
    fn rejects(&self, _response: &Res) -> bool {
        false
    }
}

/// Replaces the wrapped service's errors (and optionally some responses) with a fallback.
#[derive(Debug)]
pub struct FallbackLayer<F, P = KeepResponses> {
    fallback: Arc<F>,
    reject: Arc<P>,
}

impl<F, P> Clone for FallbackLayer<F, P> {
    fn clone(&self) -> Self {
        Self {
            fallback: self.fallback.clone(),
            reject: self.reject.clone(),
        }
    }
}

impl<F> FallbackLayer<F> {
    /// Errors are replaced by `fallback(error)`, a closure
    /// `Fn(BoxError) -> impl Future<Output = Result<Response, BoxError>>`.
    pub fn new(fallback: F) -> Self {
        Self {
            fallback: Arc::new(fallback),
            reject: Arc::new(KeepResponses),
        }
    }
}

impl<F, P> FallbackLayer<F, P> {
    /// Responses for which `reject` returns `true` are replaced too; the fallback then gets
    /// a boxed [`RejectedResponse`].
    pub fn on_response<P2>(self, reject: P2) -> FallbackLayer<F, P2> {
        FallbackLayer {
            fallback: self.fallback,
            reject: Arc::new(reject),
        }
    }
}

impl<S, F, P> Layer<S> for FallbackLayer<F, P> {
    type Service = Fallback<S, F, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Fallback {
            inner,
            layer: self.clone(),
        }
    }
}

/// A service with a fallback; made by [`FallbackLayer`].
#[derive(Debug)]
pub struct Fallback<S, F, P = KeepResponses> {
    inner: S,
    layer: FallbackLayer<F, P>,
}

impl<S: Clone, F, P> Clone for Fallback<S, F, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S, F, P, FFut, Req> Service<Req> for Fallback<S, F, P>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    F: Fn(BoxError) -> FFut + Send + Sync + 'static,
    FFut: Future<Output = Result<S::Response, BoxError>> + Send + 'static,
    P: RejectResponse<S::Response> + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // A service that cannot become ready is not covered: readiness errors are the
        // caller's back-pressure, not a failed call.
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let response = self.inner.call(req);
        let layer = self.layer.clone();
        Box::pin(async move {
            let outcome: Result<S::Response, BoxError> = response.await.map_err(Into::into);
            match outcome {
                Ok(response) if !layer.reject.rejects(&response) => Ok(response),
                Ok(_) => (layer.fallback)(Box::new(RejectedResponse)).await,
                Err(error) => (layer.fallback)(error).await,
            }
        })
    }
}
