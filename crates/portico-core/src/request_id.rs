//! Request ids: one per request, kept from the client's `X-Request-ID` when it is sane,
//! echoed on the response, visible to every log line and every error envelope of the request.
//!
//! [`RequestIdLayer`] does the work. Inside a request, [`RequestId::current`] returns the id
//! (a tokio task-local), the request's extensions hold it (so it is an extractor too), and a
//! tracing span `request{request_id=…, method=…, path=…}` wraps the handler, so every event
//! logged while serving it carries the id.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::FromRequestParts;
use http::request::Parts;
use http::{HeaderName, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use rand::Rng;
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};
use tracing::Instrument;
use tracing::instrument::Instrumented;

/// The `X-Request-ID` header.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest incoming id kept as is.
const MAX_LEN: usize = 128;

tokio::task_local! {
    static CURRENT: RequestId;
}

/// A request's id: 1 to 128 characters of `[A-Za-z0-9._:-]`. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of the request being served on this task, if any.
    pub fn current() -> Option<RequestId> {
        CURRENT.try_with(RequestId::clone).ok()
    }

    /// A fresh random id: 32 lowercase hex characters (128 bits).
    pub fn generate() -> RequestId {
        let bits: u128 = rand::rng().random();
        let mut digits = [0u8; 32];
        crate::hex::write_lower(bits, &mut digits);
        // Hex digits are ASCII; written straight into the id's one allocation.
        RequestId(Arc::from(std::str::from_utf8(&digits).unwrap_or_default()))
    }

    /// Accepts an incoming id: 1 to 128 characters of `[A-Za-z0-9._:-]`; `None` otherwise.
    pub fn parse(s: &str) -> Option<RequestId> {
        let valid = (1..=MAX_LEN).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        valid.then(|| RequestId(s.into()))
    }

    /// Runs `fut` with this id as [`RequestId::current`] (for work outside
    /// [`RequestIdLayer`], such as a WebSocket message loop or a background job).
    pub fn scope<F: Future>(self, fut: F) -> TaskLocalFuture<RequestId, F> {
        CURRENT.scope(self, fut)
    }

    /// The id as a header value.
    pub fn to_header_value(&self) -> Option<HeaderValue> {
        // Always succeeds: the id is checked ASCII.
        HeaderValue::from_str(&self.0).ok()
    }

    fn from_headers(headers: &http::HeaderMap) -> RequestId {
        headers
            .get(&X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .and_then(RequestId::parse)
            .unwrap_or_else(RequestId::generate)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Infallible;

    /// The id [`RequestIdLayer`] stored; without the layer, the current or a fresh one.
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .or_else(RequestId::current)
            .unwrap_or_else(RequestId::generate))
    }
}

// === impl RequestIdLayer ===

/// The tower layer giving every request its id: `router.layer(RequestIdLayer::new())`.
///
/// Put it outermost (added last) so everything inside — the envelope layer, metrics, handlers —
/// runs in the request's scope and span.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIdLayer;

impl RequestIdLayer {
    /// The layer.
    pub fn new() -> Self {
        RequestIdLayer
    }
}

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

/// The [`Service`] of [`RequestIdLayer`].
#[derive(Debug, Clone)]
pub struct RequestIdService<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequestIdService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = RequestIdFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let id = RequestId::from_headers(req.headers());
        let span = tracing::info_span!(
            "request",
            request_id = %id,
            method = %req.method(),
            path = %req.uri().path(),
        );
        // With span export on, the span continues the caller's `traceparent` (else a no-op).
        crate::telemetry::continue_incoming(&span, req.headers());
        req.extensions_mut().insert(id.clone());
        let header = id.to_header_value();
        // The inner `call` may already do work (and log), so it runs in the scope and span too.
        let inner = CURRENT.sync_scope(id.clone(), || span.in_scope(|| self.inner.call(req)));
        RequestIdFuture {
            inner: CURRENT.scope(id, inner.instrument(span)),
            header,
        }
    }
}

pin_project! {
    /// The response future of [`RequestIdService`]: runs the inner future in the request's
    /// scope and span, then sets `X-Request-ID` on the response.
    pub struct RequestIdFuture<F> {
        #[pin]
        inner: TaskLocalFuture<RequestId, Instrumented<F>>,
        header: Option<HeaderValue>,
    }
}

impl<F, B, E> Future for RequestIdFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.inner.poll(cx))?;
        if let Some(value) = this.header.take() {
            response.headers_mut().insert(X_REQUEST_ID, value);
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_the_allowed_alphabet_up_to_128_chars() {
        assert!(RequestId::parse("abc-DEF_123.x:y").is_some());
        assert!(RequestId::parse(&"a".repeat(128)).is_some());
        assert!(RequestId::parse(&"a".repeat(129)).is_none());
        assert!(RequestId::parse("").is_none());
        assert!(RequestId::parse("has space").is_none());
        assert!(RequestId::parse("semi;colon").is_none());
        assert!(RequestId::parse("ünïcode").is_none());
    }

    #[test]
    fn generated_ids_are_32_lowercase_hex_and_distinct() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_eq!(a.as_str().len(), 32);
        assert!(
            a.as_str()
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn current_is_set_only_inside_a_scope() {
        assert!(RequestId::current().is_none());
        let id = RequestId::generate();
        let seen = id.clone().scope(async { RequestId::current() }).await;
        assert_eq!(seen, Some(id));
    }
}
