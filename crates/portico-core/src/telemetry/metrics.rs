//! The Prometheus recorder, the `/metrics` route, and per-request HTTP metrics.
//!
//! The `metrics` crate keeps one recorder per process, global by design: every component
//! records with `metrics::counter!` and friends without being handed anything, and
//! [`Metrics::install`] sets that recorder once. This is the one piece of global state in
//! Portico. Until it is installed, recording is a no-op.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::MatchedPath;
use axum::routing::get;
use http::{HeaderValue, Method, Request, Response, header};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::TelemetryError;
use crate::shutdown::Shutdown;

/// Requests served, by `route`, `method`, `status`.
pub const HTTP_REQUESTS_TOTAL: &str = "portico_http_requests_total";
/// Request latency histogram in seconds, by `route`, `method`, `status`.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "portico_http_request_duration_seconds";

/// Histogram buckets (seconds) for every `*_seconds` metric: 1 ms to 30 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The handle held once the recorder is installed, so a second `install` returns it again.
static INSTALLED: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// The installed Prometheus recorder. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl Metrics {
    /// Installs the global Prometheus recorder, or returns the one this function installed
    /// before (so tests and embedders may call it more than once). Fails if some other
    /// recorder holds the global slot.
    pub fn install() -> Result<Metrics, TelemetryError> {
        let mut slot = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(handle) = slot.as_ref() {
            return Ok(Metrics {
                handle: handle.clone(),
            });
        }
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &LATENCY_BUCKETS)
            .map_err(|e| TelemetryError::Prometheus(e.to_string()))?
            .build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder)
            .map_err(|_| TelemetryError::MetricsAlreadyInstalled)?;
        metrics::describe_counter!(HTTP_REQUESTS_TOTAL, "HTTP requests served");
        metrics::describe_histogram!(
            HTTP_REQUEST_DURATION_SECONDS,
            metrics::Unit::Seconds,
            "HTTP request latency until the response head"
        );
        *slot = Some(handle.clone());
        Ok(Metrics { handle })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Compacts histogram samples recorded since the last scrape. Rendering does this too;
    /// run it periodically ([`Metrics::spawn_upkeep`]) so memory stays bounded when nobody
    /// scrapes.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// Runs [`Metrics::run_upkeep`] every `every` until `shutdown` triggers.
    pub fn spawn_upkeep(&self, every: Duration, shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
        let metrics = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => metrics.run_upkeep(),
                    () = shutdown.wait() => return,
                }
            }
        })
    }

    /// `GET /metrics` → the exposition, `text/plain; version=0.0.4`.
    pub fn routes(&self) -> Router {
        let metrics = self.clone();
        Router::new().route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                        )],
                        metrics.render(),
                    )
                }
            }),
        )
    }
}

// === impl HttpMetricsLayer ===

/// Records [`HTTP_REQUESTS_TOTAL`] and [`HTTP_REQUEST_DURATION_SECONDS`] for every request:
/// `router.layer(http_metrics_layer())`. The `route` label is the [`RouteLabel`] the response
/// carries (a fallback that routes by itself, like the gateway's, names its route there),
/// else the matched route pattern (`/users/{id}`, never the raw path, so cardinality stays
/// bounded), else `unmatched`; methods outside the standard set are recorded as `OTHER`.
///
/// The layer keeps the metric handles it has used, by route, method and status: after the
/// first request of a kind, recording is a map lookup under a read lock, an atomic add and a
/// histogram push, with no label strings built. Install the recorder
/// ([`Metrics::install`]) before the first request goes through the layer.
pub fn http_metrics_layer() -> HttpMetricsLayer {
    HttpMetricsLayer::default()
}

/// The [`Layer`] returned by [`http_metrics_layer`].
#[derive(Debug, Clone, Default)]
pub struct HttpMetricsLayer {
    handles: Arc<Handles>,
}

impl<S> Layer<S> for HttpMetricsLayer {
    type Service = HttpMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpMetricsService {
            inner,
            handles: self.handles.clone(),
        }
    }
}

/// The [`Service`] of [`HttpMetricsLayer`].
#[derive(Debug, Clone)]
pub struct HttpMetricsService<S> {
    inner: S,
    handles: Arc<Handles>,
}

/// The counter and histogram of one route, method and status.
type Pair = (metrics::Counter, metrics::Histogram);

/// The handles of one route, by method and status.
type ByMethodStatus = HashMap<(&'static str, u16), Pair>;

/// Metric handles by route, then by method and status.
#[derive(Debug, Default)]
struct Handles(RwLock<HashMap<Arc<str>, ByMethodStatus>>);

/// The `route` label of requests no route matched.
const UNMATCHED: &str = "unmatched";

/// A response extension naming the route a request was served by, for the `route` label of
/// [`http_metrics_layer`]'s metrics: set by handlers that route by themselves behind one
/// axum fallback (the gateway's proxied routes, by their prefix), which axum's
/// `MatchedPath` cannot name. The name must come from configuration, never from the
/// request, so that the label's values stay bounded.
#[derive(Debug, Clone)]
pub struct RouteLabel(pub Arc<str>);

impl Handles {
    /// Records one request.
    fn record(&self, route: &str, method: &'static str, status: u16, elapsed: f64) {
        let known = self
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(route)
            .and_then(|by| by.get(&(method, status)))
            .cloned();
        let (counter, histogram) = match known {
            Some(pair) => pair,
            None => {
                let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
                map.entry(Arc::from(route))
                    .or_default()
                    .entry((method, status))
                    .or_insert_with(|| {
                        let status = status.to_string();
                        (
                            metrics::counter!(HTTP_REQUESTS_TOTAL, "route" => route.to_owned(), "method" => method, "status" => status.clone()),
                            metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, "route" => route.to_owned(), "method" => method, "status" => status),
                        )
                    })
                    .clone()
            }
        };
        counter.increment(1);
        histogram.record(elapsed);
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for HttpMetricsService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = HttpMetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let route = req.extensions().get::<MatchedPath>().cloned();
        let method = method_label(req.method());
        HttpMetricsFuture {
            inner: self.inner.call(req),
            started: Instant::now(),
            labels: Some((self.handles.clone(), route, method)),
        }
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

pin_project! {
    /// The response future of [`HttpMetricsService`].
    pub struct HttpMetricsFuture<F> {
        #[pin]
        inner: F,
        started: Instant,
        labels: Option<(Arc<Handles>, Option<MatchedPath>, &'static str)>,
    }
}

impl<F, B, E> Future for HttpMetricsFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let Some((handles, route, method)) = this.labels.take() {
            // An error here never reaches the client as a response (axum's are Infallible);
            // count it as a 500.
            let status = match &result {
                Ok(response) => response.status().as_u16(),
                Err(_) => 500,
            };
            let named = result
                .as_ref()
                .ok()
                .and_then(|response| response.extensions().get::<RouteLabel>());
            let route = match (named, &route) {
                (Some(RouteLabel(name)), _) => name,
                (None, Some(matched)) => matched.as_str(),
                (None, None) => UNMATCHED,
            };
            handles.record(route, method, status, this.started.elapsed().as_secs_f64());
        }
        Poll::Ready(result)
    }
}
