//! The headers of a proxied exchange: what the upstream is told, and what the client gets back.
//!
//! Both directions lose the hop-by-hop headers of RFC 9110 §7.6.1: `Connection` and every
//! header it names, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`,
//! `Upgrade`, `Proxy-Authorization` and `Proxy-Authenticate` (a WebSocket handshake puts its
//! `Connection: upgrade` and `Upgrade` back on purpose).
//!
//! Towards the upstream, after that: the reserved headers a client may not send
//! (`X-User-*`, `X-Internal-*`, `X-Portico-*`, the upstream's token header) are removed, then
//! the gateway sets the identity headers (with the signed `X-Portico-Identity`), the internal
//! token, `X-Request-ID` and `X-Correlation-ID` (both the request id), `traceparent`,
//! `X-Forwarded-For` (the client's address appended), `X-Forwarded-Proto`, `X-Forwarded-Host`
//! and `Host` (the upstream's).
//!
//! The client's `Authorization` is passed on: upstreams that verify the JWT themselves (or
//! call `/auth/me` with it) keep working behind the gateway, and it proves nothing the
//! identity headers do not already say. `X-Forwarded-Proto` and `X-Forwarded-Host` are
//! overwritten with what the gateway saw, since there is no trusted-proxy list yet to decide
//! whose claims to keep; `X-Forwarded-For` is appended to, as is customary, so upstreams must
//! only trust its last entry.

use std::net::IpAddr;

use http::header::{
    CONNECTION, CONTENT_LENGTH, EXPECT, HOST, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use portico_core::RequestId;

use super::trace;
use crate::identity::{IdentityHeaders, strip_reserved};

/// `X-Correlation-ID`.
const X_CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");
/// `X-Forwarded-For`.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// How many fixed hop-by-hop headers there are.
const HOP_BY_HOP_COUNT: usize = 9;

/// The fixed hop-by-hop headers (`Connection` first). A `static`, not a `const`: a const
/// array of `HeaderName`s (which have a destructor) would be built and dropped at every use.
static HOP_BY_HOP: [HeaderName; HOP_BY_HOP_COUNT] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
    PROXY_AUTHORIZATION,
    PROXY_AUTHENTICATE,
];

/// Removes the hop-by-hop headers: the fixed ones and those `Connection` names. A
/// `Connection` naming `Content-Length` is ignored for it: dropping the length of a body
/// that is still sent would change how the message is framed.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the message's few names notes which fixed ones are present (most
    // messages carry none, or only `Connection`): cheaper than looking each of the nine up.
    let mut present = 0u16;
    for name in headers.keys() {
        if let Some(index) = HOP_BY_HOP.iter().position(|hop| hop == name) {
            present |= 1 << index;
        }
    }
    if present == 0 {
        return;
    }
    // The names `Connection` lists, removed by their text (a lookup that neither allocates
    // nor fails on a token that is no header name). The values are copied first (a reference
    // count each) so the map can change; a message has one `Connection` line, as a rule.
    let mut values = headers.get_all(CONNECTION).iter();
    let first = values.next().cloned();
    let more: Vec<HeaderValue> = values.cloned().collect();
    for value in first.iter().chain(&more) {
        let Ok(text) = value.to_str() else { continue };
        for token in text.split(',').map(str::trim) {
            // `keep-alive`, the usual token, is one of the fixed names removed below.
            if token.is_empty()
                || token.eq_ignore_ascii_case("keep-alive")
                || token.eq_ignore_ascii_case(CONTENT_LENGTH.as_str())
            {
                continue;
            }
            headers.remove(token);
        }
    }
    for (index, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << index) != 0 {
            headers.remove(name);
        }
    }
}

/// How many headers [`for_upstream`] may add: ids (2), `traceparent`, `X-Forwarded-*` (3),
/// `Host`, the internal token, the identity headers and `X-Portico-Identity` (4),
/// `Connection` and `Upgrade` of a WebSocket handshake (2).
const FORWARDING_HEADERS: usize = 14;

/// What the gateway knows about a request when it writes the upstream's headers.
pub(crate) struct Forwarding<'a> {
    /// The caller's identity headers (with the signed `X-Portico-Identity`), when
    /// authenticated.
    pub identity: Option<&'a IdentityHeaders>,
    /// The upstream's internal token header and value.
    pub internal_token: Option<&'a (HeaderName, HeaderValue)>,
    /// The upstream's `Host`.
    pub upstream_host: &'a HeaderValue,
    /// The request's id.
    pub request_id: &'a RequestId,
    /// The client's address, when the listener knows it.
    pub client_ip: Option<IpAddr>,
    /// The scheme the client used (`http`, or what an absolute request URI says).
    pub proto: &'a str,
    /// The authority of the request URI (HTTP/2 clients send it instead of `Host`).
    pub uri_authority: Option<HeaderValue>,
    /// The `Upgrade` protocol of a WebSocket handshake being proxied.
    pub upgrade: Option<&'a HeaderValue>,
}

/// Turns the client's request headers into the upstream's.
pub(crate) fn for_upstream(mut headers: HeaderMap, forwarding: &Forwarding<'_>) -> HeaderMap {
    // Room for what is added below, so the map grows (and rehashes) once at most. Over the
    // map's size limit the inserts grow it as they would have anyway.
    let _ = headers.try_reserve(FORWARDING_HEADERS);
    let client_host = headers
        .get(HOST)
        .cloned()
        .or_else(|| forwarding.uri_authority.clone());
    remove_hop_by_hop(&mut headers);
    strip_reserved(
        &mut headers,
        forwarding.internal_token.map(|(name, _)| name),
    );
    // The upstream's connection is not the client's: no 100-continue dance on it.
    headers.remove(EXPECT);
    headers.remove(HOST);

    if let Some(identity) = forwarding.identity {
        identity.insert_into(&mut headers);
    }
    if let Some((name, value)) = forwarding.internal_token {
        headers.insert(name.clone(), value.clone());
    }
    if let Some(id) = forwarding.request_id.to_header_value() {
        headers.insert(portico_core::request_id::X_REQUEST_ID, id.clone());
        headers.insert(X_CORRELATION_ID, id);
    }
    let traceparent = trace::outgoing(headers.get(trace::TRACEPARENT), forwarding.request_id);
    headers.insert(trace::TRACEPARENT, traceparent);

    if let Some(ip) = forwarding.client_ip {
        append_forwarded_for(&mut headers, ip);
    }
    if let Ok(proto) = HeaderValue::from_str(forwarding.proto) {
        headers.insert(X_FORWARDED_PROTO, proto);
    }
    match client_host {
        Some(host) => {
            headers.insert(X_FORWARDED_HOST, host);
        }
        None => {
            headers.remove(X_FORWARDED_HOST);
        }
    }
    headers.insert(HOST, forwarding.upstream_host.clone());

    if let Some(protocol) = forwarding.upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, protocol.clone());
    }
    headers
}

/// `X-Forwarded-For: <what came>, <client ip>` (every incoming line folded into one).
fn append_forwarded_for(headers: &mut HeaderMap, ip: IpAddr) {
    if !headers.contains_key(&X_FORWARDED_FOR) {
        // The usual case: the gateway is the first proxy.
        headers.insert(X_FORWARDED_FOR, ip_header_value(ip));
        return;
    }
    let mut chain: Vec<String> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|hop| !hop.is_empty())
        .map(str::to_owned)
        .collect();
    chain.push(ip.to_string());
    match HeaderValue::from_str(&chain.join(", ")) {
        Ok(value) => {
            headers.insert(X_FORWARDED_FOR, value);
        }
        Err(_) => {
            headers.insert(X_FORWARDED_FOR, ip_header_value(ip));
        }
    }
}

/// An address as a header value (see [`push_ip`]).
fn ip_header_value(ip: IpAddr) -> HeaderValue {
    let mut text = Vec::with_capacity(15);
    push_ip(&mut text, ip);
    HeaderValue::from_maybe_shared(bytes::Bytes::from(text))
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Appends `ip` as `Display` writes it. IPv4 (the common case) is written digit by digit,
/// several times cheaper than through `Display`; IPv6 goes through `Display`.
pub(crate) fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    let IpAddr::V4(v4) = ip else {
        out.extend_from_slice(ip.to_string().as_bytes());
        return;
    };
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        if octet >= 100 {
            out.push(b'0' + octet / 100);
        }
        if octet >= 10 {
            out.push(b'0' + octet / 10 % 10);
        }
        out.push(b'0' + octet % 10);
    }
}

/// Cleans the upstream's response headers for the client; a `101 Switching Protocols`
/// keeps its `Connection: upgrade` and `Upgrade`.
pub(crate) fn for_client(headers: &mut HeaderMap, switching_protocols: bool) {
    let upgrade = switching_protocols
        .then(|| headers.get(UPGRADE).cloned())
        .flatten();
    remove_hop_by_hop(headers);
    if let Some(protocol) = upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, protocol);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_print_as_display_does() {
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.0.1",
            "192.168.100.9",
            "127.0.0.1",
            "8.80.108.250",
            "::1",
            "2001:db8::8a2e:370:7334",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_header_value(ip), ip.to_string().as_str());
        }
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut h = map(&[
            ("Connection", "keep-alive, X-Secret"),
            ("Connection", "x-other , content-length"),
            ("X-Secret", "1"),
            ("X-Other", "2"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Trailer", "Expires"),
            ("Transfer-Encoding", "chunked"),
            ("Upgrade", "h2c"),
            ("Proxy-Authorization", "Basic x"),
            ("Proxy-Authenticate", "Basic"),
            ("Content-Length", "3"),
            ("Accept", "*/*"),
        ]);
        remove_hop_by_hop(&mut h);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        left.sort();
        assert_eq!(left, ["accept", "content-length"]);
    }

    #[test]
    fn upstream_headers_carry_identity_ids_and_forwarding() {
        let id = RequestId::parse("req-42").unwrap();
        let token = (
            HeaderName::from_static("x-internal-auth"),
            HeaderValue::from_static("s3cret"),
        );
        let host = HeaderValue::from_static("127.0.0.1:9002");
        let identity = crate::identity::Identity {
            user_id: "u1".into(),
            email: "a@example.com".into(),
            permissions: vec!["etl.access".into(), "x".into()],
            roles: vec![],
            kind: crate::identity::CredentialKind::User,
            credential_id: "c".into(),
            expires_at: None,
        };
        let incoming = map(&[
            ("Host", "api.example.com"),
            ("X-Forwarded-For", "10.0.0.1, 10.0.0.2"),
            ("X-Forwarded-For", "10.0.0.3"),
            ("X-Forwarded-Host", "evil.example"),
            ("X-User-ID", "admin"),
            ("X-Internal-Auth", "guess"),
            ("X-Correlation-ID", "theirs"),
            ("Authorization", "Bearer t"),
            ("Expect", "100-continue"),
        ]);
        let out = for_upstream(
            incoming,
            &Forwarding {
                identity: Some(&IdentityHeaders::new(
                    &identity,
                    Some(HeaderValue::from_static("a.b.c")),
                )),
                internal_token: Some(&token),
                upstream_host: &host,
                request_id: &id,
                client_ip: Some("127.0.0.9".parse().unwrap()),
                proto: "http",
                uri_authority: None,
                upgrade: None,
            },
        );
        let get = |k: &str| out.get(k).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(get("x-user-id").as_deref(), Some("u1"));
        assert_eq!(get("x-user-permissions").as_deref(), Some("etl.access,x"));
        assert_eq!(get("x-portico-identity").as_deref(), Some("a.b.c"));
        assert_eq!(get("x-internal-auth").as_deref(), Some("s3cret"));
        assert_eq!(get("x-request-id").as_deref(), Some("req-42"));
        assert_eq!(get("x-correlation-id").as_deref(), Some("req-42"));
        assert_eq!(
            get("x-forwarded-for").as_deref(),
            Some("10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.9")
        );
        assert_eq!(get("x-forwarded-host").as_deref(), Some("api.example.com"));
        assert_eq!(get("x-forwarded-proto").as_deref(), Some("http"));
        assert_eq!(get("host").as_deref(), Some("127.0.0.1:9002"));
        assert_eq!(get("authorization").as_deref(), Some("Bearer t"));
        assert_eq!(get("expect"), None);
        assert!(get("traceparent").unwrap().starts_with("00-"));
    }

    #[test]
    fn a_switching_protocols_answer_keeps_its_upgrade() {
        let mut h = map(&[
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Accept", "abc"),
        ]);
        for_client(&mut h, true);
        assert_eq!(h.get("connection").unwrap(), "upgrade");
        assert_eq!(h.get("upgrade").unwrap(), "websocket");
        let mut h = map(&[("Connection", "close"), ("Upgrade", "websocket")]);
        for_client(&mut h, false);
        assert!(h.is_empty());
    }
}
