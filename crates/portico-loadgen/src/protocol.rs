//! The two wire protocols the load generator speaks, as frames: Portico's realtime protocol
//! (JSON objects, DESIGN.md "Realtime") and Socket.IO v5 over Engine.IO v4 (text packets such
//! as `0{…}`, `40{…}`, `42[…]`, `2`/`3`), both over a plain WebSocket.
//!
//! Everything here is pure: what to send for a subscribe or a publish, and what a received
//! text frame means. Deliveries are recognised by a scan for the bench payload's two numbers
//! rather than a full JSON parse, so that the generator, which shares the machine's cores with
//! the server it measures, spends as little as it can per received message.

use std::fmt::Write as _;

/// The event name every benchmark publish carries.
pub const EVENT: &str = "tick";

/// Which server, and so which protocol, a run drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// Portico's hub at `/ws`.
    Portico,
    /// A Socket.IO v4 server (Engine.IO v4, Socket.IO protocol v5), websocket transport only.
    Socketio,
}

/// One benchmark message as a subscriber received it: the publisher's sequence number and
/// its send time (microseconds since the Unix epoch, same host clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The publish's sequence number.
    pub seq: u64,
    /// When the publisher sent it, µs since the Unix epoch.
    pub sent_us: u64,
}

/// What a received text frame is, as far as the benchmark cares.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound<'a> {
    /// A benchmark message.
    Delivery(Delivery),
    /// A frame that must be answered with this text (Engine.IO's ping `2` → pong `3`).
    Reply(&'static str),
    /// The server accepted the connection (Portico `connection_established`, Socket.IO `40`).
    Connected,
    /// The server confirmed a subscription (`subscribed`).
    Subscribed,
    /// The server refused something; the frame, for the error message.
    Refused(&'a str),
    /// Anything else (heartbeats, the Engine.IO open packet, acknowledgements).
    Other,
}

impl Target {
    /// The URL to dial: Portico takes the token in the query (`?token=`), Socket.IO in its
    /// connect packet, so its URL is used as given.
    pub fn connect_url(self, url: &str, token: &str) -> String {
        match self {
            Target::Portico => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}token={}", percent_encode(token))
            }
            Target::Socketio => url.to_owned(),
        }
    }

    /// The frame to send once the WebSocket is open, before anything is accepted: Socket.IO's
    /// namespace connect with the token as auth payload; none for Portico, which authenticates
    /// during the upgrade.
    pub fn connect_frame(self, token: &str) -> Option<String> {
        match self {
            Target::Portico => None,
            Target::Socketio => Some(format!("40{}", serde_json::json!({ "token": token }))),
        }
    }

    /// The frame that subscribes to `channel`.
    pub fn subscribe_frame(self, channel: &str) -> String {
        match self {
            Target::Portico => serde_json::json!({
                "action": "subscribe",
                "data": { "channel": channel }
            })
            .to_string(),
            Target::Socketio => format!(
                "42{}",
                serde_json::json!(["subscribe", { "channel": channel }])
            ),
        }
    }

    /// The frame a client sends to publish `payload` to `channel` over its WebSocket.
    pub fn publish_frame(self, channel: &str, payload: &str) -> String {
        let channel = serde_json::Value::from(channel);
        match self {
            Target::Portico => format!(
                r#"{{"action":"publish","data":{{"channel":{channel},"event":"{EVENT}","payload":{payload}}}}}"#
            ),
            Target::Socketio => format!(
                r#"42["publish",{{"channel":{channel},"event":"{EVENT}","data":{payload}}}]"#
            ),
        }
    }

    /// Classifies a received text frame.
    pub fn inbound(self, text: &str) -> Inbound<'_> {
        match self {
            Target::Portico => portico_inbound(text),
            Target::Socketio => socketio_inbound(text),
        }
    }
}

/// The benchmark payload: `{"seq":N,"t":µs}`.
pub fn payload(seq: u64, sent_us: u64) -> String {
    format!(r#"{{"seq":{seq},"t":{sent_us}}}"#)
}

/// The body of an HTTP publish (Portico's `POST /internal/publish`, the peer's `POST /publish`).
pub fn http_publish_body(channel: &str, payload: &str) -> String {
    let channel = serde_json::Value::from(channel);
    format!(r#"{{"channel":{channel},"event":"{EVENT}","data":{payload}}}"#)
}

fn portico_inbound(text: &str) -> Inbound<'_> {
    // Deliveries are by far the most frequent frame: test for them first and cheaply.
    if text.contains(r#""type":"tick""#) {
        return match scan_payload(text) {
            Some(d) => Inbound::Delivery(d),
            None => Inbound::Other,
        };
    }
    if text.contains(r#""type":"connection_established""#) {
        Inbound::Connected
    } else if text.contains(r#""type":"subscribed""#) {
        Inbound::Subscribed
    } else if text.contains(r#""type":"error""#) {
        Inbound::Refused(text)
    } else {
        Inbound::Other
    }
}

fn socketio_inbound(text: &str) -> Inbound<'_> {
    if let Some(rest) = text.strip_prefix("42") {
        if rest.starts_with(r#"["tick","#) {
            return match scan_payload(rest) {
                Some(d) => Inbound::Delivery(d),
                None => Inbound::Other,
            };
        }
        if rest.starts_with(r#"["subscribed""#) {
            return Inbound::Subscribed;
        }
        if rest.starts_with(r#"["error""#) {
            return Inbound::Refused(text);
        }
        return Inbound::Other;
    }
    match text.as_bytes() {
        // Engine.IO ping from the server: answer at once or be dropped after pingTimeout.
        [b'2'] => Inbound::Reply("3"),
        // Socket.IO CONNECT acknowledgement (`40{"sid":…}`) or CONNECT_ERROR (`44{…}`).
        [b'4', b'0', ..] => Inbound::Connected,
        [b'4', b'4', ..] => Inbound::Refused(text),
        // Engine.IO close.
        [b'1', ..] => Inbound::Refused(text),
        _ => Inbound::Other,
    }
}

/// Finds `"seq":N` and `"t":N` in a frame holding the bench payload.
fn scan_payload(text: &str) -> Option<Delivery> {
    Some(Delivery {
        seq: number_after(text, r#""seq":"#)?,
        sent_us: number_after(text, r#""t":"#)?,
    })
}

fn number_after(text: &str, key: &str) -> Option<u64> {
    let start = text.find(key)? + key.len();
    let digits = text[start..].bytes().take_while(u8::is_ascii_digit).count();
    text[start..start + digits].parse().ok()
}

/// Percent-encodes everything outside RFC 3986's unreserved set (tokens are usually URL-safe
/// already, API keys need not be).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portico_delivery_is_found_whatever_the_key_order() {
        let frame = r#"{"type":"tick","data":{"seq":7,"t":1700000000000123},"metadata":{"channel":"bench:room","offset":3,"timestamp":"2026-01-01T00:00:00Z"}}"#;
        assert_eq!(
            Target::Portico.inbound(frame),
            Inbound::Delivery(Delivery {
                seq: 7,
                sent_us: 1_700_000_000_000_123
            })
        );
        let reordered =
            r#"{"metadata":{"timestamp":"x","offset":1},"data":{"t":5,"seq":9},"type":"tick"}"#;
        assert_eq!(
            Target::Portico.inbound(reordered),
            Inbound::Delivery(Delivery { seq: 9, sent_us: 5 })
        );
    }

    #[test]
    fn portico_control_frames_are_classified() {
        let t = Target::Portico;
        assert_eq!(
            t.inbound(r#"{"type":"connection_established","data":{}}"#),
            Inbound::Connected
        );
        assert_eq!(
            t.inbound(r#"{"type":"subscribed","data":{"channel":"bench:room"}}"#),
            Inbound::Subscribed
        );
        assert_eq!(t.inbound(r#"{"type":"heartbeat"}"#), Inbound::Other);
        assert!(matches!(
            t.inbound(r#"{"type":"error","data":{"code":"AUTH_006"}}"#),
            Inbound::Refused(_)
        ));
    }

    #[test]
    fn socketio_packets_are_classified() {
        let t = Target::Socketio;
        assert_eq!(
            t.inbound(r#"42["tick",{"seq":1,"t":2}]"#),
            Inbound::Delivery(Delivery { seq: 1, sent_us: 2 })
        );
        assert_eq!(t.inbound("2"), Inbound::Reply("3"));
        assert_eq!(t.inbound(r#"40{"sid":"abc"}"#), Inbound::Connected);
        assert_eq!(
            t.inbound(r#"42["subscribed",{"channel":"bench:room"}]"#),
            Inbound::Subscribed
        );
        assert!(matches!(
            t.inbound(r#"44{"message":"bad token"}"#),
            Inbound::Refused(_)
        ));
        assert_eq!(
            t.inbound(r#"0{"sid":"x","pingInterval":25000}"#),
            Inbound::Other
        );
    }

    #[test]
    fn frames_sent_are_valid_json_of_the_documented_shape() {
        let p = payload(3, 4);
        let v: serde_json::Value =
            serde_json::from_str(&Target::Portico.publish_frame("bench:room", &p)).unwrap();
        assert_eq!(v["action"], "publish");
        assert_eq!(v["data"]["channel"], "bench:room");
        assert_eq!(v["data"]["event"], "tick");
        assert_eq!(v["data"]["payload"]["seq"], 3);
        let s = Target::Socketio.publish_frame("bench:room", &p);
        let v: serde_json::Value = serde_json::from_str(s.strip_prefix("42").unwrap()).unwrap();
        assert_eq!(v[0], "publish");
        assert_eq!(v[1]["data"]["t"], 4);
        let v: serde_json::Value =
            serde_json::from_str(&http_publish_body("bench:room", &p)).unwrap();
        assert_eq!(v["data"]["seq"], 3);
        let v: serde_json::Value =
            serde_json::from_str(&Target::Portico.subscribe_frame("bench:room")).unwrap();
        assert_eq!(v["action"], "subscribe");
        assert_eq!(
            Target::Socketio.connect_frame("a\"b").unwrap(),
            r#"40{"token":"a\"b"}"#
        );
    }

    #[test]
    fn portico_token_goes_in_the_query_encoded() {
        assert_eq!(
            Target::Portico.connect_url("ws://h/ws", "a.b_c+/="),
            "ws://h/ws?token=a.b_c%2B%2F%3D"
        );
        assert_eq!(
            Target::Portico.connect_url("ws://h/ws?x=1", "t"),
            "ws://h/ws?x=1&token=t"
        );
        assert_eq!(
            Target::Socketio.connect_url("ws://h/s/?EIO=4", "t"),
            "ws://h/s/?EIO=4"
        );
    }
}
