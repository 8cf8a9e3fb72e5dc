//! W3C Trace Context (`traceparent`): the gateway is one hop of the trace.
//!
//! A valid incoming `traceparent` is passed on with the same trace-id and a new parent-id
//! (the gateway's own span); an absent or invalid one is replaced by a new trace whose
//! trace-id comes from the request id — the id itself when it is 32 hex digits (as generated
//! ones are), else the first 16 bytes of its SHA-256 — so logs keyed by request id and traces
//! line up. `tracestate` is left as the client sent it. When spans are exported over OTLP,
//! the request's exported span already follows these rules and its ids are sent instead
//! (`portico_core::telemetry::current_traceparent`).

use http::HeaderValue;
use portico_core::RequestId;
use rand::Rng;
use sha2::{Digest, Sha256};

/// The `traceparent` header name.
pub(crate) const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// The sampled flag, set on traces the gateway starts so downstream tracers record them.
const SAMPLED: u8 = 0x01;

/// The `traceparent` to send upstream, given the client's (if any) and the request id.
pub(crate) fn outgoing(incoming: Option<&HeaderValue>, request_id: &RequestId) -> HeaderValue {
    // With span export on, the parent is the gateway's exported span (same trace-id rules).
    if let Some(exported) = portico_core::telemetry::current_traceparent() {
        return exported;
    }
    let (trace_id, flags) = match incoming.and_then(parse) {
        Some(parent) => (parent.trace_id, parent.flags & SAMPLED),
        None => (trace_id_for(request_id), SAMPLED),
    };
    let value = format!("00-{trace_id}-{:016x}-{flags:02x}", span_id());
    // Lowercase hex and dashes only: always a valid header value.
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// What the gateway keeps of a client's `traceparent`.
#[derive(Debug, PartialEq, Eq)]
struct Parent {
    trace_id: String,
    flags: u8,
}

/// Parses a `traceparent` (version 00, or a later version's first four fields, as the
/// specification asks); `None` when invalid.
fn parse(value: &HeaderValue) -> Option<Parent> {
    let text = value.to_str().ok()?.trim();
    let mut fields = text.split('-');
    let version = fields.next()?;
    let trace_id = fields.next()?;
    let parent_id = fields.next()?;
    let flags = fields.next()?;
    let more = fields.next().is_some();
    let valid = is_lower_hex(version, 2)
        && version != "ff"
        && !(version == "00" && more)
        && is_lower_hex(trace_id, 32)
        && !is_zero(trace_id)
        && is_lower_hex(parent_id, 16)
        && !is_zero(parent_id)
        && is_lower_hex(flags, 2);
    if !valid {
        return None;
    }
    Some(Parent {
        trace_id: trace_id.to_owned(),
        flags: u8::from_str_radix(flags, 16).ok()?,
    })
}

/// A trace-id for a request that came without one.
fn trace_id_for(request_id: &RequestId) -> String {
    let id = request_id.as_str();
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) && !is_zero(id) {
        return id.to_ascii_lowercase();
    }
    let digest = Sha256::digest(id.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
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

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_zero(s: &str) -> bool {
    s.bytes().all(|b| b == b'0')
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
        assert!(is_lower_hex(&out[2], 16) && !is_zero(&out[2]));
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
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            let incoming = HeaderValue::from_str(bad).unwrap();
            let out = fields(&outgoing(Some(&incoming), &id));
            assert_eq!(out[1], "4bf92f3577b34da6a3ce929d0e0e4736", "{bad:?}");
            assert_eq!(out[3], "01");
        }
    }

    #[test]
    fn a_request_id_that_is_not_hex_is_hashed_into_a_trace_id() {
        let a = trace_id_for(&RequestId::parse("client-chosen-id").unwrap());
        let b = trace_id_for(&RequestId::parse("client-chosen-id").unwrap());
        assert_eq!(a, b);
        assert!(is_lower_hex(&a, 32) && !is_zero(&a));
        let zero = trace_id_for(&RequestId::parse(&"0".repeat(32)).unwrap());
        assert!(!is_zero(&zero));
    }
}
