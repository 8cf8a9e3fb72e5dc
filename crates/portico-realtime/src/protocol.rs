//! The wire protocol of DESIGN.md's "Realtime" section: client frames
//! (`{"action", "data", "timestamp"?, "client_id"?}`) decoded into [`Request`]s, and the
//! server frames (`{"type", "data", "metadata"}`) as JSON text.
//!
//! Decoding never panics and never keeps more than the frame it was given: a frame that is not
//! JSON, not an object, or lacks a field is a [`ProtocolError`], answered with an `error`
//! frame REQ_001 while the connection stays open.

use std::time::SystemTime;

use portico_core::error::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A decoded client frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// What the client asks for.
    pub action: Action,
    /// The client's correlation id, echoed in the reply's metadata.
    pub client_id: Option<String>,
}

/// The client actions.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `ping` → `heartbeat`.
    Ping,
    /// `subscribe {channel, since?}`.
    Subscribe {
        /// The channel.
        channel: String,
        /// Where the client left off, to recover what it missed.
        since: Option<Position>,
    },
    /// `unsubscribe {channel}`.
    Unsubscribe {
        /// The channel.
        channel: String,
    },
    /// `publish {channel, event, payload, exclude_self?}`.
    Publish {
        /// The channel.
        channel: String,
        /// The event name, the delivered frame's `type`.
        event: String,
        /// The delivered frame's `data`.
        payload: Value,
        /// Not delivered to the publishing connection.
        exclude_self: bool,
    },
    /// `presence {channel}`.
    Presence {
        /// The channel.
        channel: String,
    },
    /// `refresh_token {token}`.
    RefreshToken {
        /// The new access token.
        token: String,
    },
    /// Anything else: routed to an upstream when configured.
    Other {
        /// The action's name.
        name: String,
        /// Its `data`, forwarded as the POST body.
        data: Value,
    },
}

/// A place in a channel's stream: the offset of the last message seen, in an epoch (a
/// channel whose history was lost starts a new epoch, and old offsets mean nothing in it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The offset of the last message seen (0: none).
    pub offset: u64,
    /// The stream's epoch.
    pub epoch: String,
}

/// Why a client frame was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProtocolError {
    /// What was wrong, for the `error` frame.
    pub message: String,
    /// The field at fault, when one is.
    pub field: Option<String>,
    /// The client id, if the frame got far enough to have one.
    pub client_id: Option<String>,
}

impl ProtocolError {
    fn new(message: impl Into<String>, field: Option<&str>, client_id: Option<String>) -> Self {
        Self {
            message: message.into(),
            field: field.map(str::to_owned),
            client_id,
        }
    }

    /// This error as the envelope's REQ_001.
    pub fn to_api_error(&self) -> ApiError {
        let error = ApiError::new(ErrorCode::Req001, self.message.clone());
        match &self.field {
            Some(field) => {
                let mut fields = Map::new();
                fields.insert(field.clone(), Value::String(self.message.clone()));
                error.with_detail("fields", fields)
            }
            None => error,
        }
    }
}

/// The frame's outer shape.
#[derive(Deserialize)]
struct Envelope {
    action: String,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    client_id: Option<Value>,
}

#[derive(Deserialize)]
struct ChannelData {
    channel: String,
}

#[derive(Deserialize)]
struct SubscribeData {
    channel: String,
    #[serde(default)]
    since: Option<Position>,
}

#[derive(Deserialize)]
struct PublishData {
    channel: String,
    event: String,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    exclude_self: bool,
}

#[derive(Deserialize)]
struct RefreshData {
    token: String,
}

/// The longest event name accepted.
const MAX_EVENT_LEN: usize = 128;

/// Decodes one client text frame.
pub fn decode(text: &str) -> Result<Request, ProtocolError> {
    let envelope: Envelope = serde_json::from_str(text).map_err(|e| {
        ProtocolError::new(
            format!("expected {{\"action\": …, \"data\": {{…}}}}: {}", brief(&e)),
            None,
            None,
        )
    })?;
    let client_id = match envelope.client_id {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => {
            return Err(ProtocolError::new(
                "client_id must be a string",
                Some("client_id"),
                None,
            ));
        }
    };
    let data = envelope.data;
    let fail = |e: serde_json::Error, client_id: &Option<String>| {
        ProtocolError::new(
            format!("invalid data for {:?}: {}", envelope.action, brief(&e)),
            Some("data"),
            client_id.clone(),
        )
    };
    let action = match envelope.action.as_str() {
        "ping" => Action::Ping,
        "subscribe" => {
            let d: SubscribeData = serde_json::from_value(data).map_err(|e| fail(e, &client_id))?;
            Action::Subscribe {
                channel: d.channel,
                since: d.since,
            }
        }
        "unsubscribe" => {
            let d: ChannelData = serde_json::from_value(data).map_err(|e| fail(e, &client_id))?;
            Action::Unsubscribe { channel: d.channel }
        }
        "presence" => {
            let d: ChannelData = serde_json::from_value(data).map_err(|e| fail(e, &client_id))?;
            Action::Presence { channel: d.channel }
        }
        "publish" => {
            let d: PublishData = serde_json::from_value(data).map_err(|e| fail(e, &client_id))?;
            if d.event.is_empty() || d.event.len() > MAX_EVENT_LEN {
                return Err(ProtocolError::new(
                    format!("event must have 1 to {MAX_EVENT_LEN} bytes"),
                    Some("data.event"),
                    client_id,
                ));
            }
            Action::Publish {
                channel: d.channel,
                event: d.event,
                payload: d.payload,
                exclude_self: d.exclude_self,
            }
        }
        "refresh_token" => {
            let d: RefreshData = serde_json::from_value(data).map_err(|e| fail(e, &client_id))?;
            Action::RefreshToken { token: d.token }
        }
        "" => {
            return Err(ProtocolError::new(
                "action must not be empty",
                Some("action"),
                client_id,
            ));
        }
        _ => Action::Other {
            name: envelope.action,
            data,
        },
    };
    Ok(Request { action, client_id })
}

/// serde's message without the input echoed back (it can be long).
fn brief(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

// === Server frames ===

/// RFC 3339 with milliseconds, as every timestamp of the protocol.
pub fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// `{"type": kind, "data": data, "metadata": metadata}` as text.
pub fn frame(kind: &str, data: &Value, metadata: &Map<String, Value>) -> String {
    #[derive(Serialize)]
    struct Frame<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        data: &'a Value,
        metadata: &'a Map<String, Value>,
    }
    // Serializing a `Value` tree cannot fail (its keys are strings).
    serde_json::to_string(&Frame {
        kind,
        data,
        metadata,
    })
    .unwrap_or_default()
}

/// Metadata with just `timestamp` (and `client_id` when the client gave one).
pub fn reply_metadata(at: SystemTime, client_id: Option<&str>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("timestamp".into(), Value::String(timestamp(at)));
    if let Some(id) = client_id {
        m.insert("client_id".into(), Value::String(id.to_owned()));
    }
    m
}

/// An `error` frame with the envelope's code: `{"type":"error","data":{"code","message",
/// "details"},"metadata":{timestamp, client_id?}}`.
pub fn error_frame(error: &ApiError, at: SystemTime, client_id: Option<&str>) -> String {
    let data = serde_json::json!({
        "code": error.code().as_str(),
        "message": error.message(),
        "details": error.details(),
    });
    frame("error", &data, &reply_metadata(at, client_id))
}

/// A publication's frame, split around its offset so the offset can be put in where it is
/// assigned (by the memory broker, or inside Redis's publish script):
/// `head + offset + tail` is
/// `{"type": event, "data": data, "metadata": {"channel", "offset", "timestamp", …}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameParts {
    /// Up to and including `"offset":`.
    pub head: String,
    /// After the offset, to the end.
    pub tail: String,
}

impl FrameParts {
    /// The parts of a publication of `event` with `data` on `channel`. `metadata` is the
    /// publisher's (`thread_id`, `run_id`, `agent_name`, `user_id`, …); its `channel`,
    /// `offset` and `timestamp` keys are the hub's and are replaced.
    pub fn new(
        channel: &str,
        event: &str,
        data: &Value,
        metadata: &Map<String, Value>,
        at: SystemTime,
    ) -> Self {
        let text = |v: &str| Value::String(v.to_owned()).to_string();
        let mut head = String::with_capacity(64 + channel.len() + event.len());
        head.push_str("{\"type\":");
        head.push_str(&text(event));
        head.push_str(",\"data\":");
        head.push_str(&data.to_string());
        head.push_str(",\"metadata\":{\"channel\":");
        head.push_str(&text(channel));
        head.push_str(",\"offset\":");
        let mut tail = String::with_capacity(48);
        tail.push_str(",\"timestamp\":");
        tail.push_str(&text(&timestamp(at)));
        for (key, value) in metadata {
            if matches!(key.as_str(), "channel" | "offset" | "timestamp") {
                continue;
            }
            tail.push(',');
            tail.push_str(&text(key));
            tail.push(':');
            tail.push_str(&value.to_string());
        }
        tail.push_str("}}");
        Self { head, tail }
    }

    /// The frame with `offset` put in.
    pub fn with_offset(&self, offset: u64) -> String {
        let mut s = String::with_capacity(self.head.len() + 20 + self.tail.len());
        s.push_str(&self.head);
        s.push_str(&offset.to_string());
        s.push_str(&self.tail);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn actions_decode() {
        let r = decode(r#"{"action":"subscribe","data":{"channel":"session:1","since":{"offset":3,"epoch":"e"}},"client_id":"c1"}"#).unwrap();
        assert_eq!(r.client_id.as_deref(), Some("c1"));
        assert_eq!(
            r.action,
            Action::Subscribe {
                channel: "session:1".into(),
                since: Some(Position {
                    offset: 3,
                    epoch: "e".into()
                })
            }
        );
        assert_eq!(decode(r#"{"action":"ping"}"#).unwrap().action, Action::Ping);
        let r = decode(r#"{"action":"code-change","data":{"x":1}}"#).unwrap();
        assert_eq!(
            r.action,
            Action::Other {
                name: "code-change".into(),
                data: json!({"x":1})
            }
        );
    }

    #[test]
    fn bad_frames_are_errors_with_the_field() {
        assert!(decode("not json").is_err());
        assert!(decode("[1,2]").is_err());
        assert!(decode(r#"{"data":{}}"#).is_err());
        let e = decode(r#"{"action":"subscribe","data":{},"client_id":"c"}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("data"));
        assert_eq!(e.client_id.as_deref(), Some("c"));
        let e = decode(r#"{"action":"publish","data":{"channel":"a:b","event":""}}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("data.event"));
        assert_eq!(e.to_api_error().code(), ErrorCode::Req001);
    }

    #[test]
    fn publication_frame_is_json_with_the_offset_in_place() {
        let mut meta = Map::new();
        meta.insert("run_id".into(), json!("r1"));
        meta.insert("offset".into(), json!("forged"));
        let parts = FrameParts::new(
            "job:\"7\"",
            "progress",
            &json!({"pct": 50}),
            &meta,
            SystemTime::UNIX_EPOCH,
        );
        let v: Value = serde_json::from_str(&parts.with_offset(12)).unwrap();
        assert_eq!(v["type"], "progress");
        assert_eq!(v["data"]["pct"], 50);
        assert_eq!(v["metadata"]["channel"], "job:\"7\"");
        assert_eq!(v["metadata"]["offset"], 12);
        assert_eq!(v["metadata"]["run_id"], "r1");
        assert_eq!(v["metadata"]["timestamp"], "1970-01-01T00:00:00.000Z");
    }

    proptest::proptest! {
        #[test]
        fn decoding_any_input_never_panics(input in ".{0,512}") {
            let _ = decode(&input);
        }

        #[test]
        fn decoding_json_shaped_input_never_panics(
            action in "[a-z_-]{0,12}",
            channel in ".{0,40}",
            offset in proptest::num::u64::ANY,
            junk in ".{0,64}",
        ) {
            let text = format!(
                r#"{{"action":{},"data":{{"channel":{},"since":{{"offset":{offset},"epoch":{}}},"event":{},"payload":{}}},"client_id":{}}}"#,
                Value::String(action.clone()),
                Value::String(channel.clone()),
                Value::String(junk.clone()),
                Value::String(action),
                Value::String(junk.clone()),
                Value::String(channel),
            );
            let _ = decode(&text);
            let _ = decode(&junk);
        }
    }
}
