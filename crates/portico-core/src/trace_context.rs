//! W3C Trace Context: the `traceparent` header as every Portico component reads and writes
//! it, and the trace-id a request gets when it came without one.
//!
//! Reading follows the specification: version `00` with exactly four fields, or a later
//! version's first four; lowercase hex of the exact lengths; version `ff` and all-zero ids
//! are invalid. A request without a valid `traceparent` starts a trace whose trace-id comes
//! from its request id — the id itself when it is 32 hex digits (as generated ones are),
//! else the first 16 bytes of its SHA-256 — so logs keyed by request id and traces line up.

use http::HeaderValue;
use sha2::{Digest as _, Sha256};

use crate::RequestId;

/// The `traceparent` header name.
pub const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// The sampled flag of `trace-flags`.
pub const SAMPLED: u8 = 0x01;

/// The fields of a valid `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace-id (never 0).
    pub trace_id: u128,
    /// The parent-id: the span of the caller (never 0).
    pub parent_id: u64,
    /// The trace-flags.
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent`; `None` when it is not valid.
    pub fn parse(value: &HeaderValue) -> Option<TraceParent> {
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
            && is_lower_hex(parent_id, 16)
            && is_lower_hex(flags, 2);
        if !valid {
            return None;
        }
        let parsed = TraceParent {
            trace_id: u128::from_str_radix(trace_id, 16).ok()?,
            parent_id: u64::from_str_radix(parent_id, 16).ok()?,
            flags: u8::from_str_radix(flags, 16).ok()?,
        };
        (parsed.trace_id != 0 && parsed.parent_id != 0).then_some(parsed)
    }

    /// The header value, version `00`.
    pub fn header(&self) -> HeaderValue {
        // `00-<32 hex>-<16 hex>-<2 hex>`
        let mut value = *b"00-00000000000000000000000000000000-0000000000000000-00";
        crate::hex::write_lower(self.trace_id, &mut value[3..35]);
        crate::hex::write_lower(u128::from(self.parent_id), &mut value[36..52]);
        crate::hex::write_lower(u128::from(self.flags), &mut value[53..55]);
        // Lowercase hex and dashes only: always a valid header value.
        HeaderValue::from_bytes(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The trace-id of a request that came without a valid `traceparent` (never 0).
pub fn trace_id_for(request_id: &RequestId) -> u128 {
    let text = request_id.as_str();
    if let Some(bits) = crate::hex::parse_u128(text)
        && bits != 0
    {
        return bits;
    }
    let digest = Sha256::digest(text.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // A SHA-256 prefix of all zeros is not going to happen; 1 keeps the promise regardless.
    u128::from_be_bytes(bytes).max(1)
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_headers_parse_and_print_back() {
        let value =
            HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        let parent = TraceParent::parse(&value).unwrap();
        assert_eq!(parent.trace_id, 0x0af7651916cd43dd8448eb211c80319c);
        assert_eq!(parent.parent_id, 0xb7ad6b7169203331);
        assert_eq!(parent.flags, SAMPLED);
        assert_eq!(parent.header(), value);
        let later = HeaderValue::from_static(
            "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-what-the-future-holds",
        );
        assert_eq!(TraceParent::parse(&later).unwrap().flags, 0);
    }

    #[test]
    fn invalid_headers_are_refused() {
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-+af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            let value = HeaderValue::from_str(bad).unwrap();
            assert_eq!(TraceParent::parse(&value), None, "{bad:?}");
        }
    }

    #[test]
    fn request_ids_become_trace_ids() {
        let hex = RequestId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        assert_eq!(trace_id_for(&hex), 0x4bf92f3577b34da6a3ce929d0e0e4736);
        let chosen = RequestId::parse("client-chosen-id").unwrap();
        assert_eq!(trace_id_for(&chosen), trace_id_for(&chosen));
        assert_ne!(trace_id_for(&chosen), 0);
        let zero = RequestId::parse(&"0".repeat(32)).unwrap();
        assert_ne!(trace_id_for(&zero), 0);
    }
}
