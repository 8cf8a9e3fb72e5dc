//! W3C Trace Context (`traceparent`): the gateway is one hop of the trace.
//!
//! A valid incoming `traceparent` is passed on with the same trace-id and a new parent-id
//! (the gateway's own span); an absent or invalid one is replaced by a new trace whose
//! trace-id comes from the request id ([`portico_core::trace_context`] has the rules), so
//! logs keyed by request id and traces line up. `tracestate` is left as the client sent it.
//! When spans are exported over OTLP, the request's exported span already follows these
//! rules and its ids are sent instead (`portico_core::telemetry::current_traceparent`).

use http::HeaderValue;
use portico_core::RequestId;
use portico_core::trace_context::{SAMPLED, TraceParent, trace_id_for};
use rand::Rng;

pub(crate) use portico_core::trace_context::TRACEPARENT;

/// The `traceparent` to send upstream, given the client's (if any) and the request id.
pub(crate) fn outgoing(incoming: Option<&HeaderValue>, request_id: &RequestId) -> HeaderValue {
    // With span export on, the parent is the gateway's exported span (same trace-id rules).
    if let Some(exported) = portico_core::telemetry::current_traceparent() {
        return exported;
    }
    let (trace_id, flags) = match incoming.and_then(TraceParent::parse) {
        Some(parent) => (parent.trace_id, parent.flags & SAMPLED),
        None => (trace_id_for(request_id), SAMPLED),
    };
    TraceParent {
        trace_id,
        parent_id: span_id(),
        flags,
    }
    .header()
}

/// A new non-zero parent-id.
fn span_id() -> u64 {
    let mut rng = rand::rng();
    loop {
        let id: u64 = rng.random();
        if id != 0 {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(value: &HeaderValue) -> Vec<String> {
        value
            .to_str()
            .unwrap()
            .split('-')
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn a_valid_parent_keeps_its_trace_id_and_gets_a_new_span() {
        let incoming =
            HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        let id = RequestId::parse("req-1").unwrap();
        let out = fields(&outgoing(Some(&incoming), &id));
        assert_eq!(out[0], "00");
        assert_eq!(out[1], "0af7651916cd43dd8448eb211c80319c");
        assert_ne!(out[2], "b7ad6b7169203331");
        assert_eq!(out[2].len(), 16);
        assert_ne!(out[2], "0".repeat(16));
        assert_eq!(out[3], "01");
    }

    #[test]
    fn later_versions_are_read_and_sent_on_as_version_00() {
        let incoming = HeaderValue::from_static(
            "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-what-the-future-holds",
        );
        let out = fields(&outgoing(Some(&incoming), &RequestId::generate()));
        assert_eq!(out.len(), 4);
        assert_eq!(out[0], "00");
        assert_eq!(out[1], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(out[3], "00");
    }

    #[test]
    fn invalid_parents_are_replaced_by_a_trace_from_the_request_id() {
        let id = RequestId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        for bad in [
            "",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
        ] {
            let incoming = HeaderValue::from_str(bad).unwrap();
            let out = fields(&outgoing(Some(&incoming), &id));
            assert_eq!(out[1], "4bf92f3577b34da6a3ce929d0e0e4736", "{bad:?}");
            assert_eq!(out[3], "01");
        }
    }
}
