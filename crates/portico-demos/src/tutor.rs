//! Seed 004's AI tutor (CodeMentor): slow, and sometimes failing. `POST /api/tutor/ask
//! {question}` answers `{reply}` after a delay, or 503 `SYS_002` when it fails (see
//! `failure`); Portico's route in front of it opens its circuit and serves the static
//! fallback reply instead.
//!
//! With a `session_id`, the tutor first asks the collaboration service — through Portico, with
//! its own service token (`--client-id`, a client whose audiences name `collab`) — for the
//! session's code and the caller's role there (seed 003's AI service validating project
//! access): no role, no answer (403 `AUTH_006`).

use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use portico_core::error::{ApiError, ErrorCode};
use serde::Deserialize;
use serde_json::{Value, json};

use portico_sdk::ServiceError;

use crate::DemoSettings;
use crate::failure::{self, Shared};

/// The port `portico demo tutor` listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 9004;
/// How long the tutor "thinks" before it answers.
const THINKING: Duration = Duration::from_millis(150);

/// The service's routes; `fail_rate` of its answers fail (0 to 1).
pub fn router(settings: DemoSettings, fail_rate: f64) -> Result<Router, String> {
    failure::router(&settings, fail_rate, "/api/tutor/ask", post(ask))
}

#[derive(Deserialize)]
struct Ask {
    question: String,
    #[serde(default, alias = "sessionId")]
    session_id: Option<String>,
}

async fn ask(
    State((trust, failure, settings)): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let caller = trust.caller(&headers).await?;
    let Ask {
        question,
        session_id,
    } = serde_json::from_slice(&body).map_err(|_| {
        ApiError::bad_request("the body must be {\"question\": \"…\", \"session_id\"?: \"…\"}")
    })?;
    let context = match &session_id {
        Some(id) => Some(session_context(&settings, id, &caller.user_id).await?),
        None => None,
    };
    tokio::time::sleep(THINKING).await;
    if failure.fails() {
        tracing::info!(user = %caller.user_id, "the tutor failed");
        return Err(ApiError::new(
            ErrorCode::Sys002,
            "the tutor model is overloaded",
        ));
    }
    let reply = match &context {
        Some(context) => format!(
            "Good question: {question} In the {} lines of your session, start from the first.",
            context["code"].as_str().unwrap_or_default().lines().count()
        ),
        None => format!("Good question: {question} Start from what the error message says."),
    };
    Ok(Json(json!({
        "reply": reply,
        "source": "tutor",
        "session": context.map(|c| json!({"session_id": c["session_id"], "version": c["version"], "role": c["role"]})),
    })))
}

/// The session's context from the collaboration service, as this service; 403 when the
/// caller holds no role in it.
async fn session_context(
    settings: &DemoSettings,
    session_id: &str,
    user_id: &str,
) -> Result<Value, ApiError> {
    let Some(publisher) = &settings.publisher else {
        return Err(ApiError::new(
            ErrorCode::Sys002,
            "the tutor runs without --client-id/--client-secret: it cannot read sessions",
        ));
    };
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if !plain(session_id) || !plain(user_id) {
        return Err(ApiError::bad_request("session_id is not a session id"));
    }
    let path = format!("/api/sessions/{session_id}/context?user_id={user_id}");
    let context = publisher.service().get(&path).await.map_err(|e| match e {
        ServiceError::Refused { status: 404, .. } => {
            ApiError::new(ErrorCode::Backend002, format!("no session {session_id:?}"))
        }
        other => {
            tracing::warn!(session = %session_id, "session context not read: {other}");
            ApiError::new(ErrorCode::Sys002, "the session service cannot be asked")
        }
    })?;
    if context["role"].is_null() {
        return Err(ApiError::new(
            ErrorCode::Auth006,
            "you have no role in this session",
        ));
    }
    Ok(context)
}
