//! The gateway's `/health` checks: one per upstream with a `health` path
//! ([`Gateway::register_health`](crate::Gateway::register_health)), and [`HttpCheck`] for
//! any other HTTP dependency (the binary's `auth` check of a remote auth component).
//!
//! A probe is one `GET` of the upstream's URL followed by its `health` path, made with the
//! upstream's own pooled client (and its internal token) but not through its circuit breaker
//! or retries: a probe never counts toward opening or closing the circuit, and is not refused
//! by an open one. An open circuit is still reported: while the upstream's breaker is open
//! the check is unhealthy ("circuit open") without calling the upstream at all.
//!
//! A 2xx answer is healthy; anything else is unhealthy with a short, client-safe message:
//! `"answered 500"`, `"unreachable"` (no connection), `"no valid response"` — never an
//! address or OS error text. The registry bounds each probe with its timeout (unhealthy,
//! `"timed out after 2s"`) and measures its latency.

use std::future::Future;
use std::pin::Pin;

use axum::body::Body;
use http::uri::Scheme;
use http::{HeaderName, HeaderValue, Method, Request, Uri, Version};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use portico_core::health::{CheckResult, HealthCheck};
use portico_resilience::breaker::{CircuitBreaker, State};

/// The client a probe is made with (an upstream's, or one of its own).
pub(crate) type ProbeClient = Client<HttpsConnector<HttpConnector>, Body>;

/// Why an [`HttpCheck`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The URL is not an `http://` or `https://` URL without credentials.
    #[error("health check {name:?}: the URL {reason}")]
    InvalidUrl {
        /// The check's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS client for an `https://` URL could not be set up.
    #[error("health check {name:?}: TLS setup: {reason}")]
    Tls {
        /// The check's name.
        name: String,
        /// What went wrong.
        reason: String,
    },
}

/// A `/health` check that `GET`s one URL: healthy on a 2xx answer, unhealthy otherwise.
pub struct HttpCheck {
    name: String,
    critical: bool,
    /// `None` when the configured path could not make a URI (always unhealthy).
    uri: Option<Uri>,
    client: ProbeClient,
    header: Option<(HeaderName, HeaderValue)>,
    /// The upstream's breaker: while it is open the probe is not made.
    breaker: Option<CircuitBreaker>,
}

impl std::fmt::Debug for HttpCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCheck")
            .field("name", &self.name)
            .field("critical", &self.critical)
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

impl HttpCheck {
    /// A check named `name` that `GET`s `url` (`http://` or `https://`, e.g. a remote auth
    /// component's `http://127.0.0.1:8081/health/live`) with a client of its own.
    pub fn new(name: impl Into<String>, critical: bool, url: &str) -> Result<Self, ProbeError> {
        let name = name.into();
        let invalid = |reason: &str| ProbeError::InvalidUrl {
            name: name.clone(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url.parse().map_err(|_| invalid("is not a URL"))?;
        if uri.scheme() != Some(&Scheme::HTTP) && uri.scheme() != Some(&Scheme::HTTPS) {
            return Err(invalid("must start with http:// or https://"));
        }
        match uri.authority() {
            None => return Err(invalid("has no host")),
            Some(authority) if authority.as_str().contains('@') => {
                return Err(invalid("must not carry credentials"));
            }
            Some(_) => {}
        }
        let tls = portico_core::tls::client_config().map_err(|e| ProbeError::Tls {
            name: name.clone(),
            reason: e.to_string(),
        })?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            name,
            critical,
            uri: Some(uri),
            client: Client::builder(TokioExecutor::new()).build(connector),
            header: None,
            breaker: None,
        })
    }

    /// An upstream's probe: its client, its internal token, and its breaker consulted (never
    /// used) so an open circuit is reported without a call.
    pub(crate) fn upstream(
        name: String,
        critical: bool,
        uri: Option<Uri>,
        client: ProbeClient,
        header: Option<(HeaderName, HeaderValue)>,
        breaker: CircuitBreaker,
    ) -> Self {
        Self {
            name,
            critical,
            uri,
            client,
            header,
            breaker: Some(breaker),
        }
    }

    async fn probe(&self) -> CheckResult {
        if let Some(breaker) = &self.breaker
            && matches!(breaker.state(), State::Open | State::ForcedOpen)
        {
            return CheckResult::unhealthy("circuit open");
        }
        let Some(uri) = &self.uri else {
            return CheckResult::unhealthy("the health path cannot be requested");
        };
        let mut request = Request::new(Body::empty());
        *request.method_mut() = Method::GET;
        *request.uri_mut() = uri.clone();
        *request.version_mut() = Version::HTTP_11;
        if let Some((name, value)) = &self.header {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        match self.client.request(request).await {
            // The body is not read: the status is the verdict (the connection is not reused).
            Ok(response) if response.status().is_success() => CheckResult::healthy(),
            Ok(response) => {
                CheckResult::unhealthy(format!("answered {}", response.status().as_u16()))
            }
            Err(error) if error.is_connect() => CheckResult::unhealthy("unreachable"),
            Err(_) => CheckResult::unhealthy("no valid response"),
        }
    }
}

impl HealthCheck for HttpCheck {
    fn name(&self) -> &str {
        &self.name
    }

    fn critical(&self) -> bool {
        self.critical
    }

    fn check(&self) -> Pin<Box<dyn Future<Output = CheckResult> + Send + '_>> {
        Box::pin(self.probe())
    }
}
