//! `[telemetry]`: span export over OTLP/HTTP.

use crate::config::problem::Problems;
use crate::config::reader::{Section, text};
use crate::config::tree::Node;
use crate::config::types::{Schemes, Url};

/// The standard OpenTelemetry variable read when `otlp_endpoint` is empty (see
/// [`crate::config::env::FALLBACKS`]).
pub const OTEL_ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// `[telemetry]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// `otlp_endpoint` (default empty → no export; else `OTEL_EXPORTER_OTLP_ENDPOINT` when set):
    /// a collector's OTLP/HTTP base URL (`http://127.0.0.1:4318`); spans are POSTed as protobuf
    /// to `<otlp_endpoint>/v1/traces`.
    pub otlp_endpoint: Option<Url>,
    /// `service_name` (default `portico`): the `service.name` of the exported spans.
    pub service_name: String,
}

impl TelemetryConfig {
    pub(crate) fn read(mut s: Section<'_>, problems: &mut Problems) -> Self {
        let otlp_endpoint = s.parse_with("otlp_endpoint", problems, endpoint).flatten();
        let service_name = s
            .parse_with("service_name", problems, |n| match text(n)?.trim() {
                "" => Err("must not be empty".to_owned()),
                name => Ok(name.to_owned()),
            })
            .unwrap_or_else(|| "portico".to_owned());
        s.finish(problems);
        Self {
            otlp_endpoint,
            service_name,
        }
    }
}

/// An optional http(s) base URL without query or fragment (the signal path is appended).
fn endpoint(node: &Node) -> Result<Option<Url>, String> {
    let raw = text(node)?.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let url = Url::parse(raw, Schemes::Http)?;
    if raw.contains(['?', '#']) {
        return Err(format!(
            "{url} must be a base URL without query or fragment (spans go to <endpoint>/v1/traces)"
        ));
    }
    Ok(Some(url))
}
