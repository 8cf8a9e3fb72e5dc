//! One upstream as the proxy calls it: a pooled keep-alive client (HTTP/1.1, TLS for
//! `https://`), its circuit breaker, and the retry loop around each call.
//!
//! ```text
//! retry (backoff 1s, 2s, 4s on the injected clock; Retry-After up to 10s) ← replayable,
//!   │                                                    idempotent (or allowed) requests only
//!   └─ circuit breaker permit, per attempt       ← an open circuit ends the call at once
//!        └─ timeout on the response head, per attempt
//!             └─ hyper request; the response body streams on, untimed
//! ```
//!
//! Connection failures, timeouts, broken responses and 5xx answers are breaker failures and
//! are retried; a failure of the client's own request body is neither. The attempt and retry
//! lines are seed 001's, from the resilience crate's client log helpers and `LogObserver`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::header::RETRY_AFTER;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use portico_resilience::breaker::{BreakerConfig, CircuitBreaker, State};
use portico_resilience::client::{ClientError, describe_io, log};
use portico_resilience::retry::{
    Attempt, Backoff, GiveUp, LogObserver, RetryDecision, RetryObserver, RetryPolicy,
};
use portico_resilience::timeout::timeout;
use portico_resilience::{SharedClock, TimeoutElapsed};
use thread_local::ThreadLocal;

use super::GatewayError;
use super::body::{Outgoing, is_too_large};
use super::metrics;
use crate::health::HttpCheck;
use crate::settings::UpstreamSettings;

/// The longest `Retry-After` of a 5xx answer the gateway waits for before retrying; a longer
/// one ends the retries and the answer goes to the client.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

type HttpClient = Client<HttpsConnector<HttpConnector>, Body>;

/// Why an attempt (and, after the last, the call) produced no usable response.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The upstream failed or was not called: open circuit, connect failure, timeout,
    /// broken response.
    Upstream(ClientError),
    /// The client's request body failed while it was being sent (over `max_body` when
    /// `too_large`, else cut short).
    RequestBody {
        /// Whether the body went over the limit.
        too_large: bool,
    },
}

/// One call: what stays the same over its attempts.
pub(crate) struct Call<'a> {
    pub method: Method,
    pub uri: Uri,
    /// The upstream path, without the query, for the log lines.
    pub log_path: &'a str,
    pub headers: HeaderMap,
    pub body: Outgoing,
}

/// An upstream with its client, breaker and policies.
pub(crate) struct Upstream {
    pub(crate) name: Arc<str>,
    scheme: Scheme,
    authority: Authority,
    /// The URL's path without its trailing `/` (empty for none).
    base_path: String,
    pub(crate) host: HeaderValue,
    pub(crate) internal_token: Option<(HeaderName, HeaderValue)>,
    pub(crate) breaker: CircuitBreaker,
    /// The breaker's state as a gauge.
    circuit: metrics::CircuitGauge,
    /// How connections to the upstream are made (TLS for `https://`).
    connector: HttpsConnector<HttpConnector>,
    /// One pooled client per thread that calls the upstream. Served by one single-threaded
    /// runtime per core (`portico_core::shutdown::serve_workers`), a request then uses
    /// connections whose tasks run on its own thread: a pool shared by the threads would
    /// hand a request a connection driven by another thread, and wake that thread for
    /// every request.
    clients: ThreadLocal<HttpClient>,
    clock: SharedClock,
    timeout: Duration,
    retry: RetryPolicy,
    once: RetryPolicy,
    retry_non_idempotent: bool,
    log: LogObserver,
    /// The `health` path probed for `/health`, and whether the probe is critical.
    health: Option<(String, bool)>,
}

impl Upstream {
    /// Builds the upstream called `name` from its settings, with `breaker` when it has the
    /// policy's breaker settings, else a new one.
    pub(crate) fn new(
        name: &str,
        settings: &UpstreamSettings,
        tls: &rustls::ClientConfig,
        clock: SharedClock,
        breaker: Option<CircuitBreaker>,
    ) -> Result<Self, GatewayError> {
        let invalid = |reason: String| GatewayError::InvalidUrl {
            upstream: name.to_owned(),
            reason,
        };
        let url: Uri = settings
            .url
            .parse()
            .map_err(|e| invalid(format!("{:?} is not a URL: {e}", settings.url)))?;
        let scheme = match url.scheme_str() {
            Some("http") => Scheme::HTTP,
            Some("https") => Scheme::HTTPS,
            _ => return Err(invalid("must start with http:// or https://".into())),
        };
        let authority = url
            .authority()
            .cloned()
            .ok_or_else(|| invalid("has no host".into()))?;
        if authority.as_str().contains('@') {
            return Err(invalid("must not carry credentials".into()));
        }
        if url.query().is_some() {
            return Err(invalid("must not carry a query".into()));
        }
        let base_path = url.path().trim_end_matches('/').to_owned();
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|_| invalid("host is not a valid header value".into()))?;
        let internal_token = match &settings.internal_token {
            Some((header, value)) => {
                let mut value = HeaderValue::from_str(value).map_err(|_| {
                    GatewayError::InvalidInternalToken {
                        upstream: name.to_owned(),
                    }
                })?;
                value.set_sensitive(true);
                Some((header.clone(), value))
            }
            None => None,
        };
        let policy_error = |source| GatewayError::Policy {
            upstream: name.to_owned(),
            source,
        };
        let policy = settings.policy;
        let retry = RetryPolicy::builder()
            .max_attempts(policy.max_attempts.get())
            .backoff(Backoff::default())
            .max_retry_after(MAX_RETRY_AFTER)
            .build()
            .map_err(policy_error)?;
        let once = RetryPolicy::builder()
            .max_attempts(1)
            .build()
            .map_err(policy_error)?;

        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(policy.timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);

        let name: Arc<str> = Arc::from(name);
        let wanted = BreakerConfig::from(policy);
        let breaker = match breaker {
            Some(kept) if *kept.config() == wanted => kept,
            _ => CircuitBreaker::new(name.clone(), wanted, clock.clone()),
        };
        let circuit = metrics::CircuitGauge::new(&name);
        circuit.set(breaker.state());
        Ok(Self {
            log: LogObserver::new(name.clone()),
            name,
            scheme,
            authority,
            base_path,
            host,
            internal_token,
            breaker,
            circuit,
            connector,
            clients: ThreadLocal::new(),
            clock,
            timeout: policy.timeout,
            retry,
            once,
            retry_non_idempotent: settings.retry_non_idempotent,
            health: settings
                .health
                .clone()
                .map(|path| (path, settings.critical)),
        })
    }

    /// This thread's pooled client for the upstream.
    fn client(&self) -> &HttpClient {
        self.clients.get_or(|| {
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(POOL_IDLE_TIMEOUT)
                .pool_timer(TokioTimer::new())
                .build(self.connector.clone())
        })
    }

    /// The upstream URI for `path_and_query` (which starts with `/`).
    pub(crate) fn uri(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        let mut full = String::with_capacity(self.base_path.len() + path_and_query.len());
        full.push_str(&self.base_path);
        full.push_str(path_and_query);
        // From parts: `Uri::builder` carries a `Result` through each step, per request.
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(PathAndQuery::try_from(full)?);
        Ok(Uri::from_parts(parts)?)
    }

    /// The `/health` check probing this upstream's `health` path with its own client (not
    /// through the breaker or retries); `None` without a `health` path.
    pub(crate) fn health_check(&self) -> Option<HttpCheck> {
        let (path, critical) = self.health.as_ref()?;
        Some(HttpCheck::upstream(
            self.name.to_string(),
            *critical,
            self.uri(path).ok(),
            self.client().clone(),
            self.internal_token.clone(),
            self.breaker.clone(),
        ))
    }

    /// Whether a request with `method` may get more than one attempt (its body permitting).
    pub(crate) fn may_retry(&self, method: &Method) -> bool {
        self.retry.max_attempts().get() > 1 && (self.retry_non_idempotent || is_idempotent(method))
    }

    /// How long until an open circuit lets a trial call through; `None` unless open.
    pub(crate) fn open_for(&self) -> Option<Duration> {
        let snapshot = self.breaker.snapshot();
        if !matches!(snapshot.state, State::Open | State::ForcedOpen) {
            return None;
        }
        let since = self
            .clock
            .system_now()
            .duration_since(snapshot.last_state_change)
            .unwrap_or_default();
        Some(
            self.breaker
                .config()
                .recovery_timeout()
                .saturating_sub(since),
        )
    }

    /// Makes `call`, with retries when its method and body allow them. Returns the last
    /// attempt's response (whatever its status) or failure.
    pub(crate) async fn send(&self, call: Call<'_>) -> Result<Response<Incoming>, Failure> {
        let Call {
            method,
            uri,
            log_path,
            headers,
            mut body,
        } = call;
        let retrying = body.is_replayable() && self.may_retry(&method);
        let policy = if retrying { &self.retry } else { &self.once };
        let max = policy.max_attempts().get();
        let observer = Observer { upstream: self };
        let classify = |outcome: &Result<Response<Incoming>, Failure>| {
            if retrying {
                self.classify(outcome)
            } else {
                RetryDecision::DontRetry
            }
        };
        let method = &method;
        // The last attempt takes the URI and headers; the ones before it send copies (so a
        // call that cannot be retried copies nothing).
        let mut parts = Some((uri, headers));
        let mut number = 0;
        policy
            .run(&self.clock, classify, &observer, move || {
                number += 1;
                let (uri, headers) = if number >= max {
                    parts.take().unwrap_or_default()
                } else {
                    parts.clone().unwrap_or_default()
                };
                let mut request = Request::new(body.for_attempt());
                *request.method_mut() = method.clone();
                *request.uri_mut() = uri;
                *request.version_mut() = Version::HTTP_11;
                *request.headers_mut() = headers;
                self.attempt(request, Attempt { number, max }, method, log_path)
            })
            .await
    }

    /// One attempt: breaker permit, request with a timeout on the response head, outcome
    /// logged and recorded.
    async fn attempt(
        &self,
        request: Request<Body>,
        attempt: Attempt,
        method: &Method,
        log_path: &str,
    ) -> Result<Response<Incoming>, Failure> {
        let permit = match self.breaker.try_acquire() {
            Ok(permit) => permit,
            Err(open) => {
                self.circuit.set(self.breaker.state());
                return Err(Failure::Upstream(ClientError::CircuitOpen(open)));
            }
        };
        log::started(&self.name, method, log_path, attempt);
        let outcome = match timeout(&self.clock, self.timeout, self.client().request(request)).await
        {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(self.transport_error(&error)),
            Err(TimeoutElapsed(after)) => Err(Failure::Upstream(ClientError::Timeout {
                upstream: self.name.to_string(),
                after,
            })),
        };
        match &outcome {
            Ok(response) => {
                log::finished(&self.name, method, log_path, attempt, Ok(response));
                permit.record(response.status().is_server_error());
            }
            Err(Failure::Upstream(error)) => {
                log::finished::<Incoming>(&self.name, method, log_path, attempt, Err(error));
                permit.failure();
            }
            Err(Failure::RequestBody { .. }) => {
                tracing::info!(
                    upstream = %self.name,
                    "[{}] {method} {log_path}: the client's request body failed on attempt {attempt}",
                    self.name
                );
                // Says nothing about the upstream: the permit is released uncounted.
                drop(permit);
            }
        }
        self.circuit.set(self.breaker.state());
        outcome
    }

    fn transport_error(&self, error: &hyper_util::client::legacy::Error) -> Failure {
        let upstream = self.name.to_string();
        if error.is_connect() {
            return Failure::Upstream(ClientError::Connect {
                upstream,
                reason: describe_io(error),
            });
        }
        if is_too_large(error) {
            return Failure::RequestBody { too_large: true };
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(e) = source {
            if let Some(hyper_error) = e.downcast_ref::<hyper::Error>()
                && hyper_error.is_user()
            {
                return Failure::RequestBody { too_large: false };
            }
            source = e.source();
        }
        Failure::Upstream(ClientError::Protocol {
            upstream,
            reason: describe_io(error),
        })
    }

    /// Retry transport failures and 5xx (after the server's `Retry-After` when it gives
    /// one); never into an open circuit.
    fn classify(&self, outcome: &Result<Response<Incoming>, Failure>) -> RetryDecision {
        if matches!(self.breaker.state(), State::Open | State::ForcedOpen) {
            return RetryDecision::DontRetry;
        }
        match outcome {
            Ok(response) if response.status().is_server_error() => {
                match retry_after(response.headers()) {
                    Some(after) => RetryDecision::RetryAfter(after),
                    None => RetryDecision::Retry,
                }
            }
            Ok(_) => RetryDecision::DontRetry,
            Err(Failure::Upstream(error)) if error.is_retryable() => RetryDecision::Retry,
            Err(_) => RetryDecision::DontRetry,
        }
    }
}

/// Logs retries with seed 001's lines and counts them.
struct Observer<'a> {
    upstream: &'a Upstream,
}

impl<T, E> RetryObserver<T, E> for Observer<'_> {
    fn on_retry(&self, attempt: Attempt, delay: Duration) {
        metrics::retry(&self.upstream.name);
        RetryObserver::<T, E>::on_retry(&self.upstream.log, attempt, delay);
    }

    fn on_give_up(&self, attempt: Attempt, reason: GiveUp) {
        RetryObserver::<T, E>::on_give_up(&self.upstream.log, attempt, reason);
    }
}

/// Methods that may be repeated without changing the outcome (RFC 9110 §9.2.2).
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    )
}

/// `Retry-After` as delay-seconds (an HTTP-date is treated as absent).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}
