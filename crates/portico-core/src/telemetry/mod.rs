//! Logs and metrics: the tracing subscriber set up once by the binary, and the Prometheus
//! recorder with its `/metrics` route and per-request HTTP metrics.
//!
//! # Layout
//! - this module: [`LogFormat`], [`init_tracing`], [`TelemetryError`].
//! - `metrics`: [`Metrics`] (the recorder and `/metrics`), [`http_metrics_layer`].

mod metrics;

use std::fmt;
use std::io::IsTerminal;
use std::str::FromStr;

use tracing_subscriber::EnvFilter;

pub use self::metrics::{
    HTTP_REQUEST_DURATION_SECONDS, HTTP_REQUESTS_TOTAL, HttpMetricsFuture, HttpMetricsLayer,
    HttpMetricsService, Metrics, http_metrics_layer,
};

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
    let filter_text = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| default_filter.to_owned());
    let filter = EnvFilter::try_new(&filter_text).map_err(|e| TelemetryError::InvalidFilter {
        filter: filter_text.clone(),
        reason: e.to_string(),
    })?;
    // Colours only for a person at a terminal, never into files or log collectors.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
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
    installed.map_err(|_| TelemetryError::TracingAlreadyInstalled)
}
