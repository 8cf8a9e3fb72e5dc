//! Seed 004's AI tutor (CodeMentor): slow, and sometimes failing. `POST /api/tutor/ask
//! {question}` answers `{reply}` after a delay, or 503 `SYS_002` when it fails (see
//! `failure`); Portico's route in front of it opens its circuit and serves the static
//! fallback reply instead.

use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use portico_core::error::{ApiError, ErrorCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::DemoSettings;
use crate::failure::{self, Failure};
use crate::trust::Trust;

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
}

async fn ask(
    State((trust, failure)): State<(Trust, Failure)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let caller = trust.caller(&headers).await?;
    let Ask { question } = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("the body must be {\"question\": \"…\"}"))?;
    tokio::time::sleep(THINKING).await;
    if failure.fails() {
        tracing::info!(user = %caller.user_id, "the tutor failed");
        return Err(ApiError::new(
            ErrorCode::Sys002,
            "the tutor model is overloaded",
        ));
    }
    Ok(Json(json!({
        "reply": format!("Good question: {question} Start from what the error message says."),
        "source": "tutor",
    })))
}
