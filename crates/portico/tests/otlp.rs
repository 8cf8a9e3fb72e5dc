//! Span export over OTLP/HTTP in the real binary: `portico up` with `[telemetry]
//! otlp_endpoint` pointing at a fake collector (a listener that decodes the protobuf it is
//! POSTed), a route to a fake upstream, and the W3C trace context compared on both sides.
//! Each test runs its own process, so each has its own global tracing subscriber.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use support::{DEADLINE, Scratch, Server};

/// What a [`Recorder`] received: the request head (lowercased) and the body.
#[derive(Clone)]
struct Received {
    head: String,
    body: Vec<u8>,
}

/// A tiny HTTP/1.1 server that records every request and answers 200 with `answer`: the
/// fake upstream, and the fake collector.
struct Recorder {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Recorder {
    fn start(content_type: &'static str, answer: &'static [u8]) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let seen = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let seen = seen.clone();
                std::thread::spawn(move || serve(stream, &seen, content_type, answer));
            }
        });
        Recorder { addr, received }
    }

    fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// Serves requests on one (keep-alive) connection until the peer closes it.
fn serve(mut stream: TcpStream, seen: &Mutex<Vec<Received>>, content_type: &str, answer: &[u8]) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&raw[..end]).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0);
        while raw.len() < end + 4 + length {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
        let body = raw[end + 4..end + 4 + length].to_vec();
        raw.drain(..end + 4 + length);
        seen.lock().unwrap().push(Received { head, body });
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            answer.len()
        );
        if stream.write_all(reply.as_bytes()).is_err() || stream.write_all(answer).is_err() {
            return;
        }
    }
}

fn upstream() -> Recorder {
    Recorder::start("application/json", br#"{"ok":true}"#)
}

/// An empty `ExportTraceServiceResponse` is zero bytes of protobuf.
fn collector() -> Recorder {
    Recorder::start("application/x-protobuf", b"")
}

fn config(upstream: SocketAddr, telemetry: &str) -> String {
    format!(
        r#"
[server]
data_dir = "data"

[upstreams.etl]
url = "http://{upstream}"

[[routes]]
prefix = "/api/etl"
upstream = "etl"
rewrite = "/api/v1"
auth = "none"

{telemetry}
"#
    )
}

/// One exported span, flattened.
#[derive(Debug)]
struct Span {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: Vec<(String, String)>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every span the collector received, checking that each POST was OTLP/HTTP protobuf.
fn spans(collector: &Recorder) -> Vec<Span> {
    let mut spans = Vec::new();
    for received in collector.all() {
        assert!(
            received.head.starts_with("post /v1/traces http/1.1"),
            "{}",
            received.head
        );
        assert!(
            received
                .head
                .contains("content-type: application/x-protobuf"),
            "{}",
            received.head
        );
        let export = ExportTraceServiceRequest::decode(received.body.as_slice()).unwrap();
        for resource in export.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    Value::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    let attributes = span
                        .attributes
                        .iter()
                        .map(|kv| {
                            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                                Some(Value::StringValue(s)) => s.clone(),
                                other => format!("{other:?}"),
                            };
                            (kv.key.clone(), value)
                        })
                        .collect();
                    spans.push(Span {
                        service: service.clone(),
                        name: span.name,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        attributes,
                    });
                }
            }
        }
    }
    spans
}

/// Polls until `done` holds for what the collector has, or the deadline passes.
fn wait_for_spans(collector: &Recorder, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let spans = spans(collector);
        if done(&spans) || Instant::now() > deadline {
            return spans;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `traceparent` the upstream received in `head`, as its four fields.
fn forwarded_traceparent(head: &str) -> Vec<String> {
    let value = head
        .lines()
        .find_map(|l| l.strip_prefix("traceparent:"))
        .unwrap_or_else(|| panic!("no traceparent upstream: {head}"));
    value.trim().split('-').map(str::to_owned).collect()
}

const CALLER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";

#[test]
fn request_spans_reach_the_collector_in_the_trace_the_upstream_is_sent() {
    let upstream = upstream();
    let collector = collector();
    let scratch = Scratch::new();
    let telemetry = format!(
        "[telemetry]\notlp_endpoint = \"http://{}\"\nservice_name = \"edge-test\"",
        collector.addr
    );
    scratch.write("portico.toml", &config(upstream.addr, &telemetry));
    let mut server = Server::start(scratch.path(), &[], &[]);
    assert!(
        server
            .wait_for_line(|l| l.contains(&format!(
                "exporting spans over OTLP/HTTP to http://{}/v1/traces",
                collector.addr
            )))
            .is_some(),
        "{:?}",
        server.output()
    );

    // A caller in a trace: the gateway's span continues it.
    let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let res = server.get("/api/etl/jobs", &[("traceparent", &traceparent)]);
    assert_eq!(res.status, 200, "{}", res.body);
    let continued = forwarded_traceparent(&upstream.all()[0].head);
    assert_eq!(continued[1], CALLER_TRACE);
    assert_ne!(continued[2], CALLER_SPAN);

    // A caller without one: a trace named by the request id.
    let res = server.get("/api/etl/jobs", &[]);
    assert_eq!(res.status, 200, "{}", res.body);
    let request_id = res.header("x-request-id").unwrap().to_owned();
    let started = forwarded_traceparent(&upstream.all()[1].head);
    assert_eq!(started[1], request_id);
    assert_eq!(started[3], "01");

    // The batch is sent at the latest when the server stops.
    server.terminate();
    assert!(server.wait_exit().unwrap().success());
    let spans = wait_for_spans(&collector, |spans| {
        spans.iter().any(|s| s.trace_id == CALLER_TRACE)
            && spans.iter().any(|s| s.trace_id == request_id)
    });

    let caller = spans
        .iter()
        .find(|s| s.trace_id == CALLER_TRACE && s.name == "request")
        .unwrap_or_else(|| panic!("no request span in the caller's trace: {spans:#?}"));
    assert_eq!(caller.parent_span_id, CALLER_SPAN, "{caller:#?}");
    assert_eq!(
        caller.span_id, continued[2],
        "the upstream's parent is not the exported span"
    );
    assert_eq!(caller.service, "edge-test");
    assert!(
        caller
            .attributes
            .contains(&("path".to_owned(), "/api/etl/jobs".to_owned())),
        "{caller:#?}"
    );

    let own = spans
        .iter()
        .find(|s| s.trace_id == request_id && s.name == "request")
        .unwrap_or_else(|| panic!("no request span in trace {request_id}: {spans:#?}"));
    assert_eq!(own.parent_span_id, "", "{own:#?}");
    assert_eq!(
        own.span_id, started[2],
        "the upstream's parent is not the exported span"
    );
}

#[test]
fn without_an_endpoint_no_span_is_sent_anywhere() {
    let upstream = upstream();
    let collector = collector();
    let scratch = Scratch::new();
    scratch.write(
        "portico.toml",
        &config(upstream.addr, "[telemetry]\notlp_endpoint = \"\""),
    );
    // A variable Portico does not read (only OTEL_EXPORTER_OTLP_ENDPOINT is).
    let signal_var = format!("http://{}/v1/traces", collector.addr);
    let mut server = Server::start(
        scratch.path(),
        &[],
        &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &signal_var)],
    );
    let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let res = server.get("/api/etl/jobs", &[("traceparent", &traceparent)]);
    assert_eq!(res.status, 200, "{}", res.body);
    // The gateway's own traceparent, as without export.
    let forwarded = forwarded_traceparent(&upstream.all()[0].head);
    assert_eq!(forwarded[1], CALLER_TRACE);
    server.terminate();
    assert!(server.wait_exit().unwrap().success());
    assert_eq!(collector.all().len(), 0);
    assert!(
        !server
            .output()
            .iter()
            .any(|l| l.contains("exporting spans")),
        "{:?}",
        server.output()
    );
}

#[test]
fn the_otel_variable_turns_export_on_and_a_collector_that_is_down_fails_no_request() {
    let upstream = upstream();
    // A port nobody listens on any more.
    let down = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let scratch = Scratch::new();
    scratch.write("portico.toml", &config(upstream.addr, ""));
    let endpoint = format!("http://{down}");
    let mut server = Server::start(
        scratch.path(),
        &[],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)],
    );
    assert!(
        server
            .wait_for_line(|l| l.contains(&format!("exporting spans over OTLP/HTTP to {endpoint}")))
            .is_some(),
        "{:?}",
        server.output()
    );
    for _ in 0..3 {
        let res = server.get("/api/etl/jobs", &[]);
        assert_eq!(res.status, 200, "{}", res.body);
    }
    server.terminate();
    assert!(server.wait_exit().unwrap().success());
    let warning = server.wait_for_line(|l| l.contains("WARN") && l.contains("OTLP span export"));
    assert!(warning.is_some(), "{:?}", server.output());
}
