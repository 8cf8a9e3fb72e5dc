//! The resilient HTTP client for upstream services (feature `http`), seed 001's
//! `ResilientServiceClient` done with this crate's pieces.
//!
//! One [`UpstreamClient`] per upstream: a pooled keep-alive hyper client, the upstream's
//! [`UpstreamPolicy`] (attempts, timeout, breaker threshold, recovery — or a [`Preset`]),
//! its own [`CircuitBreaker`], and optionally a shared [`RetryBudget`] and an internal-token
//! header sent with every request. Each call runs:
//!
//! ```text
//! retry (backoff 1s, 2s, 4s; Retry-After; budget)      ← idempotent methods only, by default
//!   └─ circuit breaker permit, per attempt              ← an open circuit ends the call at once
//!        └─ timeout, per attempt (and overall deadline) ← TimeoutElapsed → ClientError::Timeout
//!             └─ hyper request, response body collected (bounded)
//! ```
//!
//! Connection failures, timeouts and 5xx answers count as failures for the breaker and are
//! retried; any response is returned to the caller — a 503 after the last attempt is still
//! `Ok(response)`, for the caller to pass on or replace with a fallback. Every step is logged
//! with seed 001's lines (see `log`).
//!
//! Bodies are buffered (requests must be replayable for retries). The gateway's streaming
//! proxy composes the same pieces around a streaming body instead.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use portico_resilience::client::UpstreamClient;
//! use portico_resilience::Preset;
//!
//! let chroma = UpstreamClient::builder("Chroma Server", "http://127.0.0.1:6003")
//!     .preset(Preset::Chroma)
//!     .internal_token("X-INTERNAL-TOKEN", "s3cret")
//!     .build()?;
//! let response = chroma.get("/health").await?;
//! println!("{} {:?}", response.status(), response.body());
//! println!("{}", chroma.breaker().snapshot().state.as_str());
//! # Ok(()) }
//! ```

mod error;
pub mod log;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub use error::ClientError;

use crate::breaker::{BreakerConfig, CircuitBreaker, State};
use crate::clock::{SharedClock, SystemClock};
use crate::error::ConfigError;
use crate::policy::{Preset, UpstreamPolicy};
use crate::retry::{Attempt, Backoff, LogObserver, RetryBudget, RetryDecision, RetryPolicy};
use crate::timeout::{Deadline, timeout};

/// Largest response body accepted by default (10 MiB).
pub const DEFAULT_MAX_RESPONSE_BODY: usize = 10 * 1024 * 1024;

/// A resilient client for one upstream. Cloning is cheap; clones share the connection pool,
/// the breaker and the budget.
#[derive(Clone)]
pub struct UpstreamClient {
    inner: Arc<Inner>,
}

struct Inner {
    name: Arc<str>,
    base: Uri,
    policy: UpstreamPolicy,
    retry: RetryPolicy,
    breaker: CircuitBreaker,
    clock: SharedClock,
    http: Client<HttpConnector, Full<Bytes>>,
    internal_token: Option<(HeaderName, HeaderValue)>,
    retry_non_idempotent: bool,
    deadline: Option<Duration>,
    max_response_body: usize,
    retries_log: LogObserver,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("name", &self.inner.name)
            .field("base", &self.inner.base)
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

impl UpstreamClient {
    /// Starts a client for the upstream called `name` (used in logs and status) at `base_url`.
    pub fn builder(
        name: impl Into<Arc<str>>,
        base_url: impl Into<String>,
    ) -> UpstreamClientBuilder {
        UpstreamClientBuilder {
            name: name.into(),
            base_url: base_url.into(),
            policy: UpstreamPolicy::default(),
            backoff: Backoff::default(),
            clock: None,
            budget: None,
            internal_token: None,
            retry_non_idempotent: false,
            deadline: None,
            max_response_body: DEFAULT_MAX_RESPONSE_BODY,
            breaker: None,
        }
    }

    /// The upstream's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The policy in force.
    pub fn policy(&self) -> &UpstreamPolicy {
        &self.inner.policy
    }

    /// The upstream's circuit breaker (snapshot, events, manual control).
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.inner.breaker
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Response<Bytes>, ClientError> {
        self.send(Method::GET, path, HeaderMap::new(), Bytes::new())
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(
        &self,
        path: &str,
        json: impl Into<Bytes>,
    ) -> Result<Response<Bytes>, ClientError> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        self.send(Method::POST, path, headers, json.into()).await
    }

    /// Sends `method path` with `headers` and `body`, with retries, breaker and timeouts.
    ///
    /// `path` is joined to the base URL and may carry a query. Returns the upstream's
    /// response, whatever its status, or why there is none.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response<Bytes>, ClientError> {
        let inner = &*self.inner;
        let uri = inner.uri_for(path)?;
        let retryable_method = inner.retry_non_idempotent || is_idempotent(&method);
        let classify = |outcome: &Result<Response<Bytes>, ClientError>| {
            // Nothing to gain from waiting for another attempt the open circuit will refuse.
            if !retryable_method || matches!(inner.breaker.state(), State::Open | State::ForcedOpen)
            {
                return RetryDecision::DontRetry;
            }
            classify(outcome)
        };
        let max = inner.retry.max_attempts().get();
        let attempts = AtomicU32::new(0);
        let call = CallInfo {
            method: &method,
            path,
            uri: &uri,
            headers: &headers,
            body: &body,
        };
        let next = || Attempt {
            number: attempts.fetch_add(1, Ordering::Relaxed) + 1,
            max,
        };
        let log = &inner.retries_log;
        match inner.deadline {
            Some(overall) => {
                // `overall` was checked to be non-zero when the client was built.
                let deadline = Deadline::at(&inner.clock, inner.clock.now() + overall);
                let attempt = || {
                    let limit = deadline.attempt_timeout(inner.policy.timeout);
                    inner.attempt(&call, next(), limit)
                };
                inner
                    .retry
                    .run_within(&deadline, classify, log, attempt)
                    .await
            }
            None => {
                let attempt = || inner.attempt(&call, next(), inner.policy.timeout);
                inner.retry.run(&inner.clock, classify, log, attempt).await
            }
        }
    }
}

/// What stays the same across the attempts of one call.
struct CallInfo<'a> {
    method: &'a Method,
    path: &'a str,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    body: &'a Bytes,
}

// === impl Inner ===

impl Inner {
    fn uri_for(&self, path: &str) -> Result<Uri, ClientError> {
        let base = self.base.to_string();
        let joined = format!(
            "{}/{}",
            base.trim_end_matches('/'),
            path.trim_start_matches('/')
        );
        joined
            .parse()
            .map_err(|e| ClientError::InvalidRequest(format!("path {path:?}: {e}")))
    }

    /// One attempt: breaker permit, request bounded by `limit`, body collected, outcome
    /// logged and recorded on the permit (timeouts count as failures).
    async fn attempt(
        &self,
        call: &CallInfo<'_>,
        attempt: Attempt,
        limit: Duration,
    ) -> Result<Response<Bytes>, ClientError> {
        let permit = self.breaker.try_acquire()?;
        log::started(&self.name, call.method, call.path, attempt);
        let mut request = Request::builder()
            .method(call.method.clone())
            .uri(call.uri.clone())
            .body(Full::new(call.body.clone()))
            .map_err(|e| ClientError::InvalidRequest(e.to_string()))?;
        *request.headers_mut() = call.headers.clone();
        if let Some((name, value)) = &self.internal_token {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| self.transport_error(&e))?;
            let (parts, body) = response.into_parts();
            let bytes = Limited::new(body, self.max_response_body)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        ClientError::BodyTooLarge {
                            upstream: self.name.to_string(),
                            limit: self.max_response_body,
                        }
                    } else {
                        ClientError::Protocol {
                            upstream: self.name.to_string(),
                            reason: e.to_string(),
                        }
                    }
                })?
                .to_bytes();
            Ok(Response::from_parts(parts, bytes))
        };
        let outcome = match timeout(&self.clock, limit, exchange).await {
            Ok(outcome) => outcome,
            Err(elapsed) => Err(ClientError::timeout(&self.name, elapsed)),
        };
        let failed = match &outcome {
            Ok(response) => response.status().is_server_error(),
            Err(ClientError::BodyTooLarge { .. } | ClientError::InvalidRequest(_)) => false,
            Err(_) => true,
        };
        log::finished(
            &self.name,
            call.method,
            call.path,
            attempt,
            outcome.as_ref(),
        );
        permit.record(failed);
        outcome
    }

    fn transport_error(&self, error: &hyper_util::client::legacy::Error) -> ClientError {
        let upstream = self.name.to_string();
        if error.is_connect() {
            ClientError::Connect {
                upstream,
                reason: describe_io(error),
            }
        } else {
            ClientError::Protocol {
                upstream,
                reason: describe_io(error),
            }
        }
    }
}

/// The cause of a transport error in words, from the innermost I/O error when there is one
/// (`Connection refused`, as seed 001 prints it). For logs: it may name addresses.
pub fn describe_io(error: &(dyn std::error::Error + 'static)) -> String {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            let kind = io.kind().to_string();
            let mut chars = kind.chars();
            return match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => io.to_string(),
            };
        }
        source = e.source();
    }
    error.to_string()
}

/// Methods that may be repeated without changing the outcome (RFC 9110 §9.2.2).
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Retry transient transport failures and 5xx, 429 and 503 honouring `Retry-After`.
fn classify(outcome: &Result<Response<Bytes>, ClientError>) -> RetryDecision {
    match outcome {
        Ok(response) => {
            let status = response.status();
            if !(status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS) {
                return RetryDecision::DontRetry;
            }
            match retry_after(response.headers()) {
                Some(after) => RetryDecision::RetryAfter(after),
                None if status == StatusCode::TOO_MANY_REQUESTS => RetryDecision::DontRetry,
                None => RetryDecision::Retry,
            }
        }
        Err(e) if e.is_retryable() => RetryDecision::Retry,
        Err(_) => RetryDecision::DontRetry,
    }
}

/// `Retry-After` as delay-seconds (the HTTP-date form is not used between services and is
/// treated as absent).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Builds an [`UpstreamClient`]; every setting is checked in [`build`](Self::build).
#[derive(Debug)]
pub struct UpstreamClientBuilder {
    name: Arc<str>,
    base_url: String,
    policy: UpstreamPolicy,
    backoff: Backoff,
    clock: Option<SharedClock>,
    budget: Option<Arc<RetryBudget>>,
    internal_token: Option<(String, String)>,
    retry_non_idempotent: bool,
    deadline: Option<Duration>,
    max_response_body: usize,
    breaker: Option<CircuitBreaker>,
}

impl UpstreamClientBuilder {
    /// Attempts, timeout, threshold and recovery (default: DESIGN.md's 3/15s/5/60s).
    pub fn policy(mut self, policy: UpstreamPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// One of seed 001's presets.
    pub fn preset(self, preset: Preset) -> Self {
        self.policy(preset.policy())
    }

    /// The backoff between attempts (default 1s, 2s, 4s … capped at 30s).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// A retry budget, usually shared by all clients of one process.
    pub fn retry_budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// A header sent with every request, e.g. `X-Internal-Auth` or `X-INTERNAL-TOKEN`.
    pub fn internal_token(mut self, header: impl Into<String>, value: impl Into<String>) -> Self {
        self.internal_token = Some((header.into(), value.into()));
        self
    }

    /// Also retry POST and PATCH (off by default: they may not be safe to repeat).
    pub fn retry_non_idempotent(mut self, yes: bool) -> Self {
        self.retry_non_idempotent = yes;
        self
    }

    /// An overall deadline for a call, all attempts and waits included.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The largest response body accepted (default [`DEFAULT_MAX_RESPONSE_BODY`]).
    pub fn max_response_body(mut self, bytes: usize) -> Self {
        self.max_response_body = bytes;
        self
    }

    /// Uses `breaker` instead of a new one: clients of one upstream that share it (the
    /// gateway's and the realtime hub's in one process) see one circuit, opened by either's
    /// failures. Its threshold and recovery are then the ones it was made with.
    pub fn breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// Checks the settings and builds the client.
    pub fn build(self) -> Result<UpstreamClient, ConfigError> {
        let base: Uri = self
            .base_url
            .parse()
            .map_err(|e| ConfigError::new("url", format!("{:?}: {e}", self.base_url)))?;
        match base.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(ConfigError::new(
                    "url",
                    format!("scheme {other:?} is not supported (use http://)"),
                ));
            }
            None => return Err(ConfigError::new("url", "must start with http://")),
        }
        if base.host().is_none() {
            return Err(ConfigError::new("url", "has no host"));
        }
        if self.deadline.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::new("deadline", "must be greater than 0"));
        }
        let clock = self.clock.unwrap_or_else(SystemClock::shared);
        let breaker_config = BreakerConfig::builder()
            .failure_threshold(self.policy.failure_threshold.get())
            .recovery_timeout(self.policy.recovery_timeout)
            .build()?;
        let breaker = match self.breaker {
            Some(shared) => shared,
            None => CircuitBreaker::new(self.name.clone(), breaker_config, clock.clone()),
        };
        let mut retry = RetryPolicy::builder()
            .max_attempts(self.policy.max_attempts.get())
            .backoff(self.backoff);
        if let Some(budget) = self.budget {
            retry = retry.budget(budget);
        }
        let retry = retry.build()?;
        let internal_token = match self.internal_token {
            Some((header, value)) => {
                let name = HeaderName::try_from(header.as_str()).map_err(|_| {
                    ConfigError::new(
                        "internal_token_header",
                        format!("{header:?} is not a header name"),
                    )
                })?;
                let mut value = HeaderValue::try_from(value.as_str()).map_err(|_| {
                    ConfigError::new(
                        "internal_token",
                        "contains characters not allowed in a header",
                    )
                })?;
                value.set_sensitive(true);
                Some((name, value))
            }
            None => None,
        };
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(self.policy.timeout));
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(UpstreamClient {
            inner: Arc::new(Inner {
                retries_log: LogObserver::new(self.name.clone()),
                name: self.name,
                base,
                policy: self.policy,
                retry,
                breaker,
                clock,
                http,
                internal_token,
                retry_non_idempotent: self.retry_non_idempotent,
                deadline: self.deadline,
                max_response_body: self.max_response_body,
            }),
        })
    }
}
