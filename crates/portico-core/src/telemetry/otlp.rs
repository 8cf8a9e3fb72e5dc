//! Span export over OTLP/HTTP: the tracing spans of every request, as OpenTelemetry spans, in
//! protobuf batches to `<endpoint>/v1/traces` of a collector (OpenTelemetry Collector, Jaeger,
//! Tempo…).
//!
//! The exported server span of a request is one hop of the request's W3C trace:
//! - with a valid `traceparent` from the client, its trace-id and, as parent, its parent-id;
//! - without one, a new trace whose trace-id comes from the request id (the id itself when it
//!   is 32 hex digits, as generated ids are, else the first 16 bytes of its SHA-256), so the
//!   error envelope's `trace_id` (the request id) finds the trace.
//!
//! What the gateway sends upstream is then taken from that span ([`current_traceparent`]):
//! the same trace-id and the exported span's id as parent-id, so the upstream's spans hang
//! under the gateway's in the collector.
//!
//! Nothing here runs unless export is configured: [`continue_incoming`] and
//! [`current_traceparent`] return at once on one atomic load otherwise, and the OpenTelemetry
//! layer is not installed at all.
//!
//! Spans are batched by the SDK's `BatchSpanProcessor` on its own thread; each batch is one
//! HTTP POST through the workspace's reqwest client, run on the server's tokio runtime. A
//! failing collector costs a warning (once, until it answers again) and the dropped batch —
//! never a request.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
};
use tracing::Subscriber;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};
use tracing_subscriber::registry::LookupSpan;

use super::TelemetryError;
use crate::RequestId;
use crate::trace_context::TraceParent;

/// The path of the traces signal under a collector's base URL (OTLP/HTTP specification).
pub const TRACES_PATH: &str = "/v1/traces";

/// How long one export (connection, request and answer) may take; also bounds the flush at
/// shutdown.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest collector answer read (an `ExportTraceServiceResponse` is a few bytes).
const MAX_ANSWER: usize = 64 * 1024;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Whether the OpenTelemetry layer is installed. It is process-global because the tracing
/// subscriber it mirrors is: set once by `init_tracing_with_export`, never cleared.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Where and as what spans are exported.
#[derive(Debug, Clone)]
pub struct OtlpExport {
    /// The collector's OTLP/HTTP base URL (`http://127.0.0.1:4318`); spans are POSTed to
    /// `<endpoint>/v1/traces`.
    pub endpoint: String,
    /// The `service.name` resource attribute of every span.
    pub service_name: String,
    /// The runtime the HTTP requests to the collector run on (the server's).
    pub runtime: tokio::runtime::Handle,
}

impl OtlpExport {
    /// The URL spans are POSTed to: the endpoint without trailing `/`, plus `/v1/traces`.
    pub fn traces_url(&self) -> String {
        format!("{}{TRACES_PATH}", self.endpoint.trim_end_matches('/'))
    }
}

/// Builds the exporter, the tracer provider and the layer that turns tracing spans into
/// OpenTelemetry spans. Nothing is installed yet.
pub(super) fn layer<S>(
    export: &OtlpExport,
) -> Result<(OpenTelemetryLayer<S, SdkTracer>, SdkTracerProvider), TelemetryError>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    let url = export.traces_url();
    let shown = shown_url(&url)?;
    let tls = crate::tls::client_config().map_err(|e| TelemetryError::Otlp(e.to_string()))?;
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(EXPORT_TIMEOUT)
        .timeout(EXPORT_TIMEOUT)
        .user_agent(concat!("portico/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| TelemetryError::Otlp(format!("HTTP client setup: {e}")))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(OnRuntime {
            client,
            runtime: export.runtime.clone(),
        })
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| TelemetryError::Otlp(e.to_string()))?;
    let resource = Resource::builder()
        .with_service_name(export.service_name.clone())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(Reported::new(exporter, shown))
        .with_id_generator(RequestTraceIds::default())
        .with_resource(resource)
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("portico"))
        // The span's own fields are what matters; the source line of `info_span!` is noise.
        .with_location(false)
        .with_threads(false);
    Ok((layer, provider))
}

/// Marks export as on: from now on requests continue their callers' traces.
pub(super) fn mark_exporting() {
    EXPORTING.store(true, Ordering::Relaxed);
}

/// The endpoint for log lines: scheme, host, port and path, never credentials.
pub(super) fn shown_url(url: &str) -> Result<String, TelemetryError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| TelemetryError::Otlp(format!("invalid endpoint: {e}")))?;
    let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
        return Err(TelemetryError::Otlp(
            "invalid endpoint: expected http(s)://host[:port]".to_owned(),
        ));
    };
    let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    Ok(format!("{scheme}://{host}{port}{}", uri.path()))
}

/// Makes `span` (a request's server span, not yet entered) a child of the caller's
/// `traceparent`, when spans are exported and the header is valid.
pub(crate) fn continue_incoming(span: &tracing::Span, headers: &HeaderMap) {
    if !EXPORTING.load(Ordering::Relaxed) {
        return;
    }
    let Some(parent) = headers.get(TRACEPARENT).and_then(parse_traceparent) else {
        return;
    };
    let state = headers
        .get(TRACESTATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| TraceState::from_str(s).ok())
        .unwrap_or_default();
    let remote = SpanContext::new(parent.trace_id, parent.span_id, parent.flags, true, state);
    // Fails only for a span that is disabled (below the log level): then nothing is exported.
    let _ = span.set_parent(Context::new().with_remote_span_context(remote));
}

/// The `traceparent` of the current span when spans are exported: `00-<trace-id>-<span-id>-
/// <flags>` of the exported span, for the next hop. `None` when export is off or the current
/// span is not exported (below the log level, or outside any span).
pub fn current_traceparent() -> Option<HeaderValue> {
    if !EXPORTING.load(Ordering::Relaxed) {
        return None;
    }
    let span = tracing::Span::current();
    if span.is_disabled() {
        return None;
    }
    let context = span.context();
    let otel = context.span();
    let ids = otel.span_context();
    if !ids.is_valid() {
        return None;
    }
    let parent = TraceParent {
        trace_id: u128::from_be_bytes(ids.trace_id().to_bytes()),
        parent_id: u64::from_be_bytes(ids.span_id().to_bytes()),
        flags: ids.trace_flags().to_u8(),
    };
    Some(parent.header())
}

// === traceparent ===

/// What is kept of a valid `traceparent` (see [`crate::trace_context`]): both ids, and of the
/// flags only the sampled one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parent {
    trace_id: TraceId,
    span_id: SpanId,
    flags: TraceFlags,
}

/// A valid `traceparent`'s ids and sampled flag, read exactly as the gateway reads them.
fn parse_traceparent(value: &HeaderValue) -> Option<Parent> {
    let parent = TraceParent::parse(value)?;
    Some(Parent {
        trace_id: TraceId::from(parent.trace_id),
        span_id: SpanId::from(parent.parent_id),
        flags: TraceFlags::new(parent.flags) & TraceFlags::SAMPLED,
    })
}

/// The trace-id of a request that came without a `traceparent`, as the gateway makes it.
fn trace_id_for(id: &RequestId) -> TraceId {
    TraceId::from(crate::trace_context::trace_id_for(id))
}

// === impl RequestTraceIds ===

/// Span ids at random; the trace-id of a root span started while serving a request (the
/// request's server span, entered inside the request id's scope) from the request id.
#[derive(Debug, Default)]
struct RequestTraceIds {
    random: RandomIdGenerator,
}

impl IdGenerator for RequestTraceIds {
    fn new_trace_id(&self) -> TraceId {
        match RequestId::current() {
            Some(id) => trace_id_for(&id),
            None => self.random.new_trace_id(),
        }
    }

    fn new_span_id(&self) -> SpanId {
        self.random.new_span_id()
    }
}

// === impl OnRuntime ===

/// The exporter's HTTP client: reqwest, each request run on the server's runtime. The batch
/// processor calls from its own thread, outside any runtime, and waits for the answer.
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let call = self.runtime.spawn(send(self.client.clone(), request));
        call.await?
    }
}

async fn send(
    client: reqwest::Client,
    request: Request<Bytes>,
) -> Result<Response<Bytes>, HttpError> {
    let mut answer = client.execute(reqwest::Request::try_from(request)?).await?;
    let mut body = Vec::new();
    while let Some(chunk) = answer.chunk().await? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(format!("the collector's answer is larger than {MAX_ANSWER} bytes").into());
        }
        body.extend_from_slice(&chunk);
    }
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = answer.status();
    *response.headers_mut() = std::mem::take(answer.headers_mut());
    Ok(response)
}

// === impl Reported ===

/// An exporter whose failures are logged: one warning when exports start failing (collector
/// down, refusing, too slow), one info line when they work again, debug lines in between.
#[derive(Debug)]
struct Reported<E> {
    inner: E,
    endpoint: String,
    failing: AtomicBool,
}

impl<E> Reported<E> {
    fn new(inner: E, endpoint: String) -> Self {
        Self {
            inner,
            endpoint,
            failing: AtomicBool::new(false),
        }
    }
}

impl<E: SpanExporter> SpanExporter for Reported<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("OTLP span export to {} works again", self.endpoint);
                }
            }
            Err(e) => {
                if self.failing.swap(true, Ordering::Relaxed) {
                    tracing::debug!("OTLP span export to {} failed: {e}", self.endpoint);
                } else {
                    tracing::warn!(
                        "OTLP span export to {} failed: {e}; {spans} span{} dropped, and further \
                         batches until the collector answers",
                        self.endpoint,
                        if spans == 1 { "" } else { "s" },
                    );
                }
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Option<Parent> {
        parse_traceparent(&HeaderValue::from_str(s).unwrap())
    }

    #[test]
    fn a_valid_traceparent_gives_its_ids_and_the_sampled_flag_only() {
        let p = parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03").unwrap();
        assert_eq!(p.trace_id.to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(p.span_id.to_string(), "b7ad6b7169203331");
        assert_eq!(p.flags, TraceFlags::SAMPLED);
        let later = parse("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-x").unwrap();
        assert_eq!(later.flags, TraceFlags::NOT_SAMPLED);
    }

    #[test]
    fn a_request_without_traceparent_gets_its_trace_id_from_the_request_id() {
        let hex = RequestId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        assert_eq!(
            trace_id_for(&hex).to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let other = RequestId::parse("client-chosen-id").unwrap();
        assert_eq!(trace_id_for(&other), trace_id_for(&other));
        assert_ne!(trace_id_for(&other), TraceId::INVALID);
        let zero = RequestId::parse(&"0".repeat(32)).unwrap();
        assert_ne!(trace_id_for(&zero), TraceId::INVALID);
    }

    #[test]
    fn the_traces_url_is_the_base_plus_v1_traces() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let export = |endpoint: &str| OtlpExport {
            endpoint: endpoint.to_owned(),
            service_name: "portico".to_owned(),
            runtime: runtime.handle().clone(),
        };
        assert_eq!(
            export("http://127.0.0.1:4318").traces_url(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            export("https://otel.example/prefix/").traces_url(),
            "https://otel.example/prefix/v1/traces"
        );
        assert_eq!(
            shown_url("https://user:pw@otel.example:4318/v1/traces").unwrap(),
            "https://otel.example:4318/v1/traces"
        );
    }
}
