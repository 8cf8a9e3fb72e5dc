//! The hub's HTTP surface: `GET /ws` (the WebSocket), and the publish API for upstreams,
//! `POST /internal/publish` and `POST /internal/disconnect`.
//!
//! The connect token is checked before the upgrade completes, but a refusal is still
//! delivered over the WebSocket (close 1008 with the error code as reason), as browsers
//! cannot read an HTTP status of a failed upgrade. A request that is not a WebSocket upgrade
//! at all gets 400 BACKEND_004 in the envelope.
//!
//! `/internal/*` takes a service token (`Authorization: Bearer`, `token_type` `service`) or
//! one of the upstreams' internal tokens in its configured header.

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use portico_core::error::{ApiError, ApiJson, ErrorCode};
use portico_gateway::identity::{self, CredentialKind};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq as _;

use crate::connection;
use crate::hub::{Hub, invalid_field};

/// The hub's routes.
pub(crate) fn router(hub: Hub) -> Router {
    Router::new()
        .route("/ws", get(connect))
        .route("/internal/publish", post(publish))
        .route("/internal/disconnect", post(disconnect))
        .with_state(hub)
}

/// The size of the buffer each connection reads into (allocated for the connection's whole
/// life). Small: client frames are small, idle connections are the common case, and a larger
/// message is read in several steps (tungstenite's default is 128 KiB).
const READ_BUFFER: usize = 2 * 1024;
/// The size of the write buffer each connection has before it flushes.
const WRITE_BUFFER: usize = 4 * 1024;

async fn connect(
    State(hub): State<Hub>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejection) => {
            return ApiError::new(
                ErrorCode::Backend004,
                format!("not a WebSocket upgrade: {}", rejection.body_text()),
            )
            .into_response();
        }
    };
    let inner = hub.inner.clone();
    let verdict = match connect_token(query.as_deref(), &headers) {
        Ok(Some(token)) => inner.authenticator.authenticate(&token).await,
        Ok(None) => Err(ApiError::new(
            ErrorCode::Auth003,
            "connect with ?token=<access token or API key> or Authorization: Bearer",
        )),
        Err(e) => Err(e),
    };
    let max = inner.settings.max_frame;
    upgrade
        .max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            match verdict {
                Ok(identity) => connection::run(inner, socket, identity).await,
                Err(e) => {
                    tracing::info!(
                        code = e.code().as_str(),
                        "websocket refused: {}",
                        e.message()
                    );
                    connection::refuse(socket, &e).await;
                }
            }
        })
}

/// The token of a connect request: `?token=`, else `Authorization: Bearer` / `X-API-Key`.
fn connect_token(query: Option<&str>, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    if let Some(query) = query {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|_| ApiError::new(ErrorCode::Auth001, "the query string is malformed"))?;
        if let Some((_, token)) = pairs.into_iter().find(|(k, _)| k == "token") {
            if token.is_empty() {
                return Err(ApiError::new(ErrorCode::Auth003, "?token= is empty"));
            }
            return Ok(Some(token));
        }
    }
    Ok(identity::credential(headers)?.map(str::to_owned))
}

/// Checks that the caller of `/internal/*` is a service (or holds an internal token).
async fn authorize_internal(hub: &Hub, headers: &HeaderMap) -> Result<(), ApiError> {
    for (name, secret) in &hub.inner.internal_tokens {
        if let Some(given) = headers.get(name)
            && bool::from(given.as_bytes().ct_eq(secret.as_bytes()))
        {
            return Ok(());
        }
    }
    let Some(credential) = identity::credential(headers)? else {
        return Err(ApiError::new(
            ErrorCode::Auth003,
            "a service token (Authorization: Bearer) or an internal token is required",
        ));
    };
    let caller = hub.inner.authenticator.authenticate(credential).await?;
    if caller.kind != CredentialKind::Service {
        return Err(ApiError::new(
            ErrorCode::Auth006,
            "the publish API is for services: use a client-credentials token",
        ));
    }
    Ok(())
}

/// `POST /internal/publish`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    event: String,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    metadata: Map<String, Value>,
    /// A connection not to deliver to (the sender of a routed action, which the upstream
    /// learned from `X-Portico-Connection-ID`).
    #[serde(default)]
    exclude_connection_id: Option<String>,
}

async fn publish(
    State(hub): State<Hub>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PublishBody>,
) -> Result<Response, ApiError> {
    authorize_internal(&hub, &headers).await?;
    let channel = match (&body.channel, &body.user_id) {
        (Some(channel), None) => channel.clone(),
        (None, Some(user)) if !user.is_empty() => crate::channel::ChannelName::personal(user),
        (Some(_), Some(_)) => {
            return Err(invalid_field(
                "channel",
                "give channel or user_id, not both",
            ));
        }
        _ => return Err(invalid_field("channel", "give channel or user_id")),
    };
    if body.event.is_empty() || body.event.len() > 128 {
        return Err(invalid_field("event", "1 to 128 bytes"));
    }
    let position = hub
        .publish(
            &channel,
            &body.event,
            &body.data,
            &body.metadata,
            body.exclude_connection_id.as_deref(),
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "channel": channel, "offset": position.offset, "epoch": position.epoch })),
    )
        .into_response())
}

/// `POST /internal/disconnect`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DisconnectBody {
    user_id: String,
}

async fn disconnect(
    State(hub): State<Hub>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<DisconnectBody>,
) -> Result<Response, ApiError> {
    authorize_internal(&hub, &headers).await?;
    if body.user_id.is_empty() {
        return Err(invalid_field("user_id", "must not be empty"));
    }
    hub.disconnect_user(&body.user_id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "user_id": body.user_id })),
    )
        .into_response())
}
