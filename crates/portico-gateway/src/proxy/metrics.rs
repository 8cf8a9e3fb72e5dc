//! The gateway's Prometheus metrics (recorded through the `metrics` facade; a no-op until the
//! binary installs the recorder).

use std::sync::{Arc, Once, OnceLock};
use std::time::Duration;

use metrics::{Counter, Histogram};

use http::StatusCode;
use portico_core::telemetry::RouteLabel;
use portico_resilience::breaker::State;

/// Proxied requests, by `route` (the route's prefix), `upstream` and `status`.
pub const REQUESTS_TOTAL: &str = "portico_gateway_requests_total";
/// Time until the response head (or the gateway's own answer), by `route` and `upstream`.
pub const REQUEST_DURATION_SECONDS: &str = "portico_gateway_request_duration_seconds";
/// Retries made, by `upstream`.
pub const RETRIES_TOTAL: &str = "portico_gateway_retries_total";
/// The circuit state of each `upstream`: 0 closed, 1 half-open, 2 open.
pub const CIRCUIT_STATE: &str = "portico_gateway_circuit_state";
/// Requests refused by a route's rate limit, by `route`.
pub const RATE_LIMITED_TOTAL: &str = "portico_gateway_rate_limited_total";
/// Fallback answers served, by `route` and `kind` (`cache` or `static`).
pub const FALLBACKS_TOTAL: &str = "portico_gateway_fallbacks_total";
/// GET/HEAD requests on routes with the response cache, by `route` and `result` (`hit`,
/// `miss`, or `not_modified` for a 304 the gateway answered).
pub const CACHE_TOTAL: &str = "portico_gateway_cache_total";

/// Describes the metrics to the installed recorder (once per process).
pub(crate) fn describe() {
    static DESCRIBED: Once = Once::new();
    DESCRIBED.call_once(|| {
        metrics::describe_counter!(REQUESTS_TOTAL, "Requests proxied by the gateway");
        metrics::describe_histogram!(
            REQUEST_DURATION_SECONDS,
            metrics::Unit::Seconds,
            "Gateway request latency until the response head"
        );
        metrics::describe_counter!(RETRIES_TOTAL, "Retries of upstream calls");
        metrics::describe_gauge!(
            CIRCUIT_STATE,
            "Circuit breaker state per upstream (0 closed, 1 half-open, 2 open)"
        );
        metrics::describe_counter!(RATE_LIMITED_TOTAL, "Requests refused by a rate limit");
        metrics::describe_counter!(FALLBACKS_TOTAL, "Fallback answers served");
        metrics::describe_counter!(CACHE_TOTAL, "Response cache lookups by result");
    });
}

/// The per-request metrics of one route, with their handles looked up once: recording a
/// request is then an atomic add and a histogram push, with no label strings built and no
/// registry lookup on the request path. The handles come from the recorder installed when
/// the route is built (the binary installs it before building the gateway).
pub(crate) struct RouteMetrics {
    route: String,
    /// The `route` label the core HTTP metrics give this route's requests.
    label: RouteLabel,
    upstream: String,
    duration: Histogram,
    /// [`REQUESTS_TOTAL`] by status code (100–599), made on first use.
    by_status: Box<[OnceLock<Counter>]>,
}

impl RouteMetrics {
    pub(crate) fn new(route: &str, upstream: &str) -> Self {
        Self {
            route: route.to_owned(),
            label: RouteLabel(Arc::from(route)),
            upstream: upstream.to_owned(),
            duration: metrics::histogram!(
                REQUEST_DURATION_SECONDS,
                "route" => route.to_owned(),
                "upstream" => upstream.to_owned(),
            ),
            by_status: (100..600).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Names the route on `response`, so `portico_http_requests_total` counts it under the
    /// route's prefix rather than as `unmatched`.
    pub(crate) fn label<B>(&self, response: &mut http::Response<B>) {
        response.extensions_mut().insert(self.label.clone());
    }

    /// One request answered with `status` after `elapsed`.
    pub(crate) fn request(&self, status: StatusCode, elapsed: Duration) {
        let code = status.as_u16();
        let counter = usize::from(code)
            .checked_sub(100)
            .and_then(|i| self.by_status.get(i))
            .map(|slot| {
                slot.get_or_init(|| {
                    metrics::counter!(
                        REQUESTS_TOTAL,
                        "route" => self.route.clone(),
                        "upstream" => self.upstream.clone(),
                        "status" => code.to_string(),
                    )
                })
            });
        match counter {
            Some(counter) => counter.increment(1),
            // hyper's StatusCode is 100..=999; codes past 599 are not worth a slot.
            None => metrics::counter!(
                REQUESTS_TOTAL,
                "route" => self.route.clone(),
                "upstream" => self.upstream.clone(),
                "status" => code.to_string(),
            )
            .increment(1),
        }
        self.duration.record(elapsed.as_secs_f64());
    }
}

/// One retry of a call to `upstream`.
pub(crate) fn retry(upstream: &str) {
    metrics::counter!(RETRIES_TOTAL, "upstream" => upstream.to_owned()).increment(1);
}

/// The [`CIRCUIT_STATE`] gauge of one upstream, its handle looked up once (the state is
/// set after every call).
pub(crate) struct CircuitGauge(metrics::Gauge);

impl CircuitGauge {
    pub(crate) fn new(upstream: &str) -> Self {
        Self(metrics::gauge!(CIRCUIT_STATE, "upstream" => upstream.to_owned()))
    }

    /// The circuit is in `state`.
    pub(crate) fn set(&self, state: State) {
        let value = match state {
            State::Closed | State::ForcedClosed => 0.0,
            State::HalfOpen => 1.0,
            State::Open | State::ForcedOpen => 2.0,
        };
        self.0.set(value);
    }
}

/// One request to `route` refused by its rate limit.
pub(crate) fn rate_limited(route: &str) {
    metrics::counter!(RATE_LIMITED_TOTAL, "route" => route.to_owned()).increment(1);
}

/// One fallback answer of `kind` (`cache` or `static`) served for `route`.
pub(crate) fn fallback(route: &str, kind: &'static str) {
    metrics::counter!(FALLBACKS_TOTAL, "route" => route.to_owned(), "kind" => kind).increment(1);
}

/// One GET/HEAD on `route`'s response cache with `result` (`hit`, `miss`, `not_modified`).
pub(crate) fn cache(route: &str, result: &'static str) {
    metrics::counter!(CACHE_TOTAL, "route" => route.to_owned(), "result" => result).increment(1);
}
