//! The hub's calls to upstream services: client actions routed by `[realtime.actions]` and
//! the join checks of namespaces with `check = {upstream, path}`.
//!
//! Each call is an HTTP POST through the upstream's resilient client (its timeout, retries,
//! circuit breaker and internal token) carrying the gateway's identity headers
//! (`X-User-ID`, `X-User-Email`, `X-User-Permissions`, `X-Portico-Identity`), a fresh
//! `X-Request-ID`, and `X-Portico-Connection-ID` so the upstream can address (or exclude) the
//! calling connection when it publishes back.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use portico_core::error::{ApiError, ErrorCode};
use portico_core::request_id::RequestId;
use portico_gateway::identity::token::IdentitySigner;
use portico_gateway::identity::{self, Identity};
use portico_resilience::client::{ClientError, UpstreamClient};
use serde_json::Value;

use crate::settings::Endpoint;

/// The header naming the calling connection.
pub const CONNECTION_HEADER: &str = "x-portico-connection-id";

/// The upstreams the hub may call, by name.
#[derive(Debug, Clone, Default)]
pub struct Upstreams {
    clients: BTreeMap<String, UpstreamClient>,
    signer: Option<IdentitySigner>,
}

/// What a join check said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// 2xx.
    Allowed,
    /// 401, 403 or 404.
    Refused,
}

impl Upstreams {
    /// The hub's upstream clients, and the key that signs `X-Portico-Identity` (none: the
    /// header is not sent).
    pub fn new(clients: BTreeMap<String, UpstreamClient>, signer: Option<IdentitySigner>) -> Self {
        Self { clients, signer }
    }

    /// Whether an upstream of that name is known.
    pub fn contains(&self, name: &str) -> bool {
        self.clients.contains_key(name)
    }

    /// POSTs `body` (JSON) to `endpoint` as `identity` on connection `connection_id`.
    async fn post(
        &self,
        endpoint: &Endpoint,
        identity: &Identity,
        connection_id: &str,
        body: Bytes,
    ) -> Result<http::Response<Bytes>, ApiError> {
        let client = self.clients.get(&endpoint.upstream).ok_or_else(|| {
            // The config check makes this impossible; say so plainly if it happens anyway.
            ApiError::internal_error(format!("no upstream named {:?}", endpoint.upstream))
        })?;
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        match &self.signer {
            Some(signer) => signer
                .headers(identity, &endpoint.upstream)
                .insert_into(&mut headers),
            None => identity::insert_identity(&mut headers, identity),
        }
        if let Ok(v) = HeaderValue::from_str(connection_id) {
            headers.insert(CONNECTION_HEADER, v);
        }
        let request_id = RequestId::generate();
        if let Some(v) = request_id.to_header_value() {
            headers.insert("x-correlation-id", v.clone());
            headers.insert("x-request-id", v);
        }
        client
            .send(Method::POST, &endpoint.path, headers, body)
            .await
            .map_err(|e| {
                tracing::warn!(
                    upstream = %endpoint.upstream,
                    path = %endpoint.path,
                    request_id = request_id.as_str(),
                    "realtime call failed: {e}"
                );
                client_error(e)
            })
    }

    /// Forwards action `name` with `data`; the upstream's JSON answer, or the envelope error
    /// the client gets instead.
    pub(crate) async fn action(
        &self,
        endpoint: &Endpoint,
        identity: &Identity,
        connection_id: &str,
        data: &Value,
    ) -> Result<Value, ApiError> {
        let response = self
            .post(
                endpoint,
                identity,
                connection_id,
                Bytes::from(data.to_string()),
            )
            .await?;
        let status = response.status();
        let body = response.into_body();
        if !status.is_success() {
            return Err(upstream_refusal(status, &body));
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|_| {
            ApiError::new(
                ErrorCode::Backend001,
                format!(
                    "{} answered with something that is not JSON",
                    endpoint.upstream
                ),
            )
        })
    }

    /// Asks `endpoint` whether `identity` may join `channel`.
    pub(crate) async fn check(
        &self,
        endpoint: &Endpoint,
        identity: &Identity,
        connection_id: &str,
        channel: &str,
    ) -> Result<Verdict, ApiError> {
        let body = serde_json::json!({
            "channel": channel,
            "user_id": identity.user_id,
            "connection_id": connection_id,
        });
        let response = self
            .post(
                endpoint,
                identity,
                connection_id,
                Bytes::from(body.to_string()),
            )
            .await?;
        match response.status() {
            s if s.is_success() => Ok(Verdict::Allowed),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
                Ok(Verdict::Refused)
            }
            s => Err(upstream_refusal(s, response.body())),
        }
    }
}

/// The client's error for a failed call.
fn client_error(e: ClientError) -> ApiError {
    match e {
        ClientError::CircuitOpen(open) => ApiError::new(
            ErrorCode::Sys002,
            format!("{} is unavailable (circuit open)", open.name),
        )
        .with_retry_after(open.retry_after),
        ClientError::Connect { upstream, .. } => {
            ApiError::new(ErrorCode::Sys002, format!("{upstream} is unreachable"))
        }
        ClientError::Timeout { upstream, after } => ApiError::new(
            ErrorCode::Sys004,
            format!(
                "{upstream} did not answer within {}",
                humantime::format_duration(after)
            ),
        ),
        ClientError::Protocol { upstream, .. } | ClientError::BodyTooLarge { upstream, .. } => {
            ApiError::new(ErrorCode::Backend001, format!("{upstream} failed"))
        }
        ClientError::InvalidRequest(reason) => ApiError::internal_error(reason),
    }
}

/// The client's error for a non-2xx answer: the upstream's own envelope code when it sent
/// one, else one chosen by the status.
fn upstream_refusal(status: StatusCode, body: &[u8]) -> ApiError {
    let envelope = serde_json::from_slice::<Value>(body).ok();
    let given = envelope.as_ref().and_then(|v| {
        let code = ErrorCode::from_code(v.pointer("/error/code")?.as_str()?)?;
        let message = v
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or(code.description());
        Some(ApiError::new(code, message))
    });
    given.unwrap_or_else(|| {
        let code = match status {
            StatusCode::UNAUTHORIZED => ErrorCode::Auth001,
            StatusCode::FORBIDDEN => ErrorCode::Auth006,
            StatusCode::NOT_FOUND => ErrorCode::Backend002,
            StatusCode::TOO_MANY_REQUESTS => ErrorCode::Backend003,
            s if s.is_server_error() => ErrorCode::Backend001,
            _ => ErrorCode::Req001,
        };
        ApiError::new(code, format!("upstream answered {status}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_keep_the_upstreams_code_or_follow_the_status() {
        let e = upstream_refusal(
            StatusCode::FORBIDDEN,
            br#"{"error":{"code":"AUTH_006","message":"not your session"}}"#,
        );
        assert_eq!(e.code(), ErrorCode::Auth006);
        assert_eq!(e.message(), "not your session");
        assert_eq!(
            upstream_refusal(StatusCode::BAD_GATEWAY, b"oops").code(),
            ErrorCode::Backend001
        );
        assert_eq!(
            upstream_refusal(StatusCode::NOT_FOUND, b"").code(),
            ErrorCode::Backend002
        );
    }
}
