//! Logs, spans and metrics: the tracing subscriber set up once by the binary (with span export
//! over OTLP when configured), and the Prometheus recorder with its `/metrics` route and
//! per-request HTTP metrics.
//!
//! # Layout
//! - this module: [`LogFormat`], [`init_tracing`], [`init_tracing_with_export`], [`Tracing`],
//!   [`TelemetryError`].
//! - `metrics`: [`Metrics`] (the recorder and `/metrics`), [`http_metrics_layer`].
//! - `otlp`: [`OtlpExport`], the OpenTelemetry layer and exporter, the W3C trace context of
//!   exported request spans ([`current_traceparent`]).

mod metrics;
mod otlp;

use std::fmt;
use std::io::IsTerminal;
use std::str::FromStr;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

pub use self::metrics::{
    HTTP_REQUEST_DURATION_SECONDS, HTTP_REQUESTS_TOTAL, HttpMetricsFuture, HttpMetricsLayer,
    HttpMetricsService, Metrics, RouteLabel, http_metrics_layer,
};
pub(crate) use self::otlp::continue_incoming;
pub use self::otlp::{OtlpExport, TRACES_PATH, current_traceparent};

/// What can go wrong setting up telemetry.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `RUST_LOG` or the default filter is not a valid filter directive.
    #[error("invalid log filter {filter:?}: {reason}")]
    InvalidFilter {
        /// The filter text.
        filter: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A global tracing subscriber was already set.
    #[error("a tracing subscriber is already installed")]
    TracingAlreadyInstalled,
    /// A global `metrics` recorder other than ours was already set.
    #[error("a metrics recorder is already installed")]
    MetricsAlreadyInstalled,
    /// The Prometheus recorder could not be built.
    #[error("cannot build the Prometheus recorder: {0}")]
    Prometheus(String),
    /// The OTLP span exporter could not be built (a bad endpoint, the HTTP client).
    #[error("cannot set up OTLP span export: {0}")]
    Otlp(String),
}

/// The log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A `--log-format` value other than `text` or `json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log format {0:?} (expected \"text\" or \"json\")")]
pub struct UnknownLogFormat(pub String);

impl FromStr for LogFormat {
    type Err = UnknownLogFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(UnknownLogFormat(s.to_owned())),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// Installs the global tracing subscriber, writing to stderr (stdout stays free for command
/// output). `RUST_LOG`, when set and non-empty, overrides `default_filter` (e.g. `"info"` or
/// `"info,portico_gateway=debug"`). In JSON, each line is one object with the event's fields
/// flattened and the current span's fields (so the `request_id`) under `span`.
pub fn init_tracing(format: LogFormat, default_filter: &str) -> Result<(), TelemetryError> {
    init_tracing_with_export(format, default_filter, None).map(|_| ())
}

/// [`init_tracing`], and with `export` also sends the spans that pass the filter to an OTLP
/// collector. Keep the returned [`Tracing`] and call [`Tracing::shutdown`] when the server has
/// stopped, so the spans still queued are sent.
///
/// Without `export` the subscriber is exactly [`init_tracing`]'s: no OpenTelemetry code runs.
pub fn init_tracing_with_export(
    format: LogFormat,
    default_filter: &str,
    export: Option<OtlpExport>,
) -> Result<Tracing, TelemetryError> {
    let filter_text = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| default_filter.to_owned());
    let filter = EnvFilter::try_new(&filter_text).map_err(|e| TelemetryError::InvalidFilter {
        filter: filter_text.clone(),
        reason: e.to_string(),
    })?;
    // Colours only for a person at a terminal, never into files or log collectors.
    let ansi = std::io::stderr().is_terminal();
    let Some(export) = export else {
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(ansi)
            .with_writer(std::io::stderr);
        let installed = match format {
            LogFormat::Text => builder.try_init(),
            LogFormat::Json => builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .try_init(),
        };
        installed.map_err(|_| TelemetryError::TracingAlreadyInstalled)?;
        return Ok(Tracing { provider: None });
    };

    let shown = otlp::shown_url(&export.traces_url())?;
    let (spans, provider) = otlp::layer(&export)?;
    let logs = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Text => logs.boxed(),
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    };
    // The filter is global: only spans at or above the log level are exported.
    tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(spans)
        .try_init()
        .map_err(|_| TelemetryError::TracingAlreadyInstalled)?;
    otlp::mark_exporting();
    tracing::info!(
        "exporting spans over OTLP/HTTP to {shown} as service {:?}",
        export.service_name
    );
    Ok(Tracing {
        provider: Some(provider),
    })
}

/// The installed tracing. With span export, [`Tracing::shutdown`] sends what is still queued.
#[derive(Debug)]
#[must_use = "call shutdown() when the server stops, or queued spans are lost"]
pub struct Tracing {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Tracing {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends the spans still queued and stops the exporter; blocks for at most a few seconds
    /// (the export timeout). Call it from outside the async runtime (after `block_on`), with
    /// the runtime still alive: the last export runs on it.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!("OTLP span export at shutdown failed: {e}");
        }
    }
}
