//! Turning the bare error responses axum and tower produce on their own (the router's 404,
//! method routing's 405, body-limit 413s, extractor rejections) into envelopes.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{Method, Request, StatusCode, Uri, header};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::{ApiError, ErrorCode, Passthrough};

/// The router fallback: `REQ_003` "no route for `<METHOD> <path>`".
///
/// ```
/// # use axum::Router;
/// let app: Router = Router::new().fallback(portico_core::error::fallback_not_found);
/// ```
pub async fn fallback_not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::Req003,
        format!("no route for {method} {}", uri.path()),
    )
}

/// The envelope middleware: `router.layer(envelope_layer())`.
///
/// Responses marked [`Passthrough`] (every [`ApiError`] is) pass untouched. Unmarked responses
/// whose body is empty or plain text — the ones axum and tower-http write themselves — are
/// rewritten by status: 404 → `REQ_003`, 405 → `REQ_004` (the `Allow` header is kept),
/// 413 → `REQ_002`, 400/415/422 → `REQ_001` (keeping the status and the rejection's text),
/// 500 → `SYS_003`, 503 → `SYS_002`, 504 → `SYS_004`. A JSON or HTML body is left alone.
///
/// Put it inside [`RequestIdLayer`](crate::request_id::RequestIdLayer) so the envelope gets
/// the request's id.
pub fn envelope_layer() -> EnvelopeLayer {
    EnvelopeLayer
}

/// The [`Layer`] returned by [`envelope_layer`].
#[derive(Debug, Clone, Copy, Default)]
pub struct EnvelopeLayer;

impl<S> Layer<S> for EnvelopeLayer {
    type Service = EnvelopeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EnvelopeService { inner }
    }
}

/// The [`Service`] of [`EnvelopeLayer`].
#[derive(Debug, Clone)]
pub struct EnvelopeService<S> {
    inner: S,
}

/// The longest rejection text carried into a `REQ_001` message.
const MAX_REJECTION_TEXT: usize = 512;

impl<S> Service<Request<Body>> for EnvelopeService<S>
where
    S: Service<Request<Body>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = EnvelopeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let method = req.method().clone();
        // A `Uri` clone shares its bytes; the path is only needed for a message.
        let uri = req.uri().clone();
        EnvelopeFuture::Inner {
            inner: self.inner.call(req),
            request: Some((method, uri)),
        }
    }
}

pin_project! {
    /// The response future of [`EnvelopeService`]: the inner service's answer as it is, or,
    /// for a bare error response, the envelope made of it (the only case that allocates).
    // pin-project-lite takes no doc comments on variant fields.
    #[allow(missing_docs)]
    #[project = EnvelopeProj]
    pub enum EnvelopeFuture<F> {
        /// Waiting for the inner service.
        Inner {
            #[pin]
            inner: F,
            request: Option<(Method, Uri)>,
        },
        /// Rewriting a bare error response (which may read its body).
        Rewrite {
            rewrite: Pin<Box<dyn Future<Output = Response> + Send>>,
        },
    }
}

impl<F, E> Future for EnvelopeFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                EnvelopeProj::Inner { inner, request } => {
                    let response = std::task::ready!(inner.poll(cx))?;
                    let Some((method, uri)) = request.take().filter(|_| needs_rewrite(&response))
                    else {
                        return Poll::Ready(Ok(response));
                    };
                    let rewrite =
                        Box::pin(async move { rewrite(response, &method, uri.path()).await });
                    self.set(EnvelopeFuture::Rewrite { rewrite });
                }
                EnvelopeProj::Rewrite { rewrite } => return rewrite.as_mut().poll(cx).map(Ok),
            }
        }
    }
}

/// Whether `response` is a bare error [`rewrite`] turns into an envelope.
fn needs_rewrite(response: &Response) -> bool {
    error_code(response.status()).is_some() && is_bare(response)
}

/// The envelope code of a bare error response with `status`; `None` for statuses passed as
/// they are.
fn error_code(status: StatusCode) -> Option<ErrorCode> {
    Some(match status {
        StatusCode::NOT_FOUND => ErrorCode::Req003,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::Req004,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::Req002,
        StatusCode::BAD_REQUEST
        | StatusCode::UNSUPPORTED_MEDIA_TYPE
        | StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::Req001,
        StatusCode::INTERNAL_SERVER_ERROR => ErrorCode::Sys003,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Sys002,
        StatusCode::GATEWAY_TIMEOUT => ErrorCode::Sys004,
        _ => return None,
    })
}

fn is_bare(response: &Response) -> bool {
    if Passthrough::is_marked(response) {
        return false;
    }
    match response.headers().get(header::CONTENT_TYPE) {
        None => true,
        Some(ct) => ct.to_str().is_ok_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/plain")
        }),
    }
}

async fn rewrite(response: Response, method: &Method, path: &str) -> Response {
    let status = response.status();
    let Some(code) = error_code(status) else {
        return response;
    };
    if !is_bare(&response) {
        return response;
    }

    let (parts, body) = response.into_parts();
    let message = match code {
        ErrorCode::Req003 => format!("no route for {method} {path}"),
        ErrorCode::Req004 => format!("method {method} not allowed for {path}"),
        ErrorCode::Req002 => "request body too large".to_owned(),
        // Extractor rejections explain themselves ("Failed to deserialize query string: ...");
        // they describe the client's own input, so they are safe to return.
        ErrorCode::Req001 => rejection_text(body)
            .await
            .unwrap_or_else(|| "invalid request".to_owned()),
        other => other.description().to_owned(),
    };

    let mut error = ApiError::new(code, message).with_status(status);
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        error = error.with_header(header::ALLOW, allow.clone());
    }
    if let Some(retry_after) = parts.headers.get(header::RETRY_AFTER) {
        error = error.with_header(header::RETRY_AFTER, retry_after.clone());
    }
    error.into_response()
}

async fn rejection_text(body: Body) -> Option<String> {
    let bytes = axum::body::to_bytes(body, MAX_REJECTION_TEXT).await.ok()?;
    let text = std::str::from_utf8(&bytes).ok()?.trim();
    (!text.is_empty()).then(|| text.to_owned())
}
