//! The rate limiter as a tower [`Layer`]: [`RateLimitLayer`] wraps a service in a
//! [`RateLimitService`] that checks each request's key before calling the inner service.
//!
//! A refusal is a boxed [`RateLimited`](crate::error::RateLimited) (find it with
//! `downcast_ref::<RateLimited>()`); the inner service's errors are boxed through
//! `Into<BoxError>`. When the limiter's backend fails, the request is allowed and the failure
//! logged (fail open), unless the layer was built with
//! [`fail_closed`](RateLimitLayer::fail_closed), in which case the boxed
//! [`LimiterError`](super::LimiterError) is returned.
//!
//! The check is asynchronous, so the inner service is moved into the response future: it
//! must be `Clone` (tower's usual requirement for such layers; wrap it in a `Buffer` if not).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use super::RateLimiter;
use crate::error::BoxError;

/// Wraps services in a [`RateLimitService`] sharing one limiter and key function.
pub struct RateLimitLayer<K> {
    limiter: Arc<dyn RateLimiter>,
    key: Arc<K>,
    fail_open: bool,
}

impl<K> RateLimitLayer<K> {
    /// A layer counting each request against `key(&request)` in `limiter`.
    pub fn new(limiter: Arc<dyn RateLimiter>, key: K) -> Self {
        Self {
            limiter,
            key: Arc::new(key),
            fail_open: true,
        }
    }

    /// Refuses requests when the limiter's backend fails, instead of allowing them.
    pub fn fail_closed(mut self) -> Self {
        self.fail_open = false;
        self
    }
}

impl<K> Clone for RateLimitLayer<K> {
    fn clone(&self) -> Self {
        Self {
            limiter: self.limiter.clone(),
            key: self.key.clone(),
            fail_open: self.fail_open,
        }
    }
}

impl<K> fmt::Debug for RateLimitLayer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("fail_open", &self.fail_open)
            .finish_non_exhaustive()
    }
}

impl<S, K> Layer<S> for RateLimitLayer<K> {
    type Service = RateLimitService<S, K>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            limiter: self.limiter.clone(),
            key: self.key.clone(),
            fail_open: self.fail_open,
        }
    }
}

/// A service whose requests are counted against a rate limiter first.
pub struct RateLimitService<S, K> {
    inner: S,
    limiter: Arc<dyn RateLimiter>,
    key: Arc<K>,
    fail_open: bool,
}

impl<S: Clone, K> Clone for RateLimitService<S, K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
            key: self.key.clone(),
            fail_open: self.fail_open,
        }
    }
}

impl<S: fmt::Debug, K> fmt::Debug for RateLimitService<S, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitService")
            .field("inner", &self.inner)
            .field("fail_open", &self.fail_open)
            .finish_non_exhaustive()
    }
}

/// The future of a [`RateLimitService`] call.
pub type ResponseFuture<T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>>;

impl<S, K, Req> Service<Req> for RateLimitService<S, K>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    K: Fn(&Req) -> String,
    Req: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let key = (self.key)(&req);
        let limiter = self.limiter.clone();
        let fail_open = self.fail_open;
        // Take the service that was polled ready; leave a fresh clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            match limiter.check(&key).await {
                Ok(decision) => {
                    if let Some(refusal) = decision.refusal() {
                        return Err(Box::new(refusal) as BoxError);
                    }
                }
                Err(error) if fail_open => {
                    tracing::warn!(error = %error, "rate limiter unavailable; allowing request");
                }
                Err(error) => return Err(Box::new(error) as BoxError),
            }
            inner.call(req).await.map_err(Into::into)
        })
    }
}
