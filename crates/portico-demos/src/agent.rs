//! Seed 000's agent service (Netra Apex): `POST /api/agent/start {message, thread_id?}`
//! answers 202 `{run_id, thread_id}` and then streams the run to the caller's personal
//! channel `user:<id>` through the hub: `agent_started`, `sub_agent_update`, `tool_call`,
//! `tool_result`, `agent_completed`, each with `metadata` `{run_id, thread_id, agent_name}`.
//! Reached through the gateway, or as the hub's routed action `start_agent`.
//!
//! Seed 000's enterprise clients call `POST /api/optimize {message}` with an API key instead:
//! the same pipeline run to the end before the answer, which is the report (no WebSocket).

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use portico_core::error::ApiError;
use portico_core::request_id::RequestId;
use portico_sdk::Target;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::DemoSettings;
use crate::trust::Trust;

/// The port `portico demo agent` listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 9000;
/// The time between two events of a run.
const STEP: Duration = Duration::from_millis(100);

/// The service's routes.
pub fn router(settings: DemoSettings) -> Result<Router, String> {
    let state = (Trust::new(&settings)?, settings);
    Ok(Router::new()
        .route(
            "/health",
            get(|| async { Json(json!({"status": "healthy"})) }),
        )
        .route("/api/agent/start", post(start))
        .route("/api/optimize", post(optimize))
        .with_state(state))
}

#[derive(Deserialize)]
struct Start {
    message: String,
    #[serde(default)]
    thread_id: Option<String>,
}

async fn start(
    State((trust, settings)): State<(Trust, DemoSettings)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let caller = trust.caller(&headers).await?;
    let Start { message, thread_id } = serde_json::from_slice(&body).map_err(|_| {
        ApiError::bad_request("the body must be {\"message\": \"…\", \"thread_id\"?: \"…\"}")
    })?;
    if message.trim().is_empty() {
        return Err(ApiError::bad_request("message must not be empty"));
    }
    let run_id = RequestId::generate().to_string();
    let thread_id = thread_id.unwrap_or_else(|| RequestId::generate().to_string());
    tracing::info!(%run_id, %thread_id, user = %caller.user_id, "agent run started");
    tokio::spawn(run(
        settings,
        caller.user_id,
        run_id.clone(),
        thread_id.clone(),
        message,
    ));
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"run_id": run_id, "thread_id": thread_id})),
    ))
}

#[derive(Deserialize)]
struct Optimize {
    message: String,
}

/// Seed 000 scenario 2: the pipeline run to the end, its report the answer.
async fn optimize(
    State((trust, _)): State<(Trust, DemoSettings)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let caller = trust.caller(&headers).await?;
    let Optimize { message } = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("the body must be {\"message\": \"…\"}"))?;
    if message.trim().is_empty() {
        return Err(ApiError::bad_request("message must not be empty"));
    }
    let run_id = RequestId::generate().to_string();
    let steps = ["triage", "cost_analysis", "recommendations"];
    for _ in steps {
        tokio::time::sleep(STEP / 4).await;
    }
    tracing::info!(%run_id, user = %caller.user_id, "optimization run completed");
    Ok(Json(json!({
        "run_id": run_id,
        "status": "completed",
        "user_id": caller.user_id,
        "steps": steps,
        "report": {
            "request": message,
            "monthly_cost_usd": 12400,
            "savings_potential_usd": 3100,
            "recommendations": [
                "move batch inference to spot capacity",
                "cache repeated prompts",
            ],
        },
    })))
}

/// Streams a run's events to `user:<user_id>`, [`STEP`] apart.
async fn run(
    settings: DemoSettings,
    user_id: String,
    run_id: String,
    thread_id: String,
    message: String,
) {
    let events = [
        ("agent_started", "supervisor", json!({"message": message})),
        (
            "sub_agent_update",
            "triage",
            json!({"status": "planning", "note": "looking for what was asked"}),
        ),
        (
            "tool_call",
            "triage",
            json!({"tool": "search_docs", "input": {"query": message}}),
        ),
        (
            "tool_result",
            "triage",
            json!({"tool": "search_docs", "output": ["Portico docs: gateway.md, realtime.md"]}),
        ),
        (
            "agent_completed",
            "supervisor",
            json!({"result": format!("Here is what I found about: {message}")}),
        ),
    ];
    for (event, agent, data) in events {
        tokio::time::sleep(STEP).await;
        let Some(publisher) = &settings.publisher else {
            continue;
        };
        let metadata = json!({"run_id": run_id, "thread_id": thread_id, "agent_name": agent});
        if let Err(e) = publisher
            .publish(Target::User(&user_id), event, data, Some(metadata))
            .await
        {
            tracing::warn!(%run_id, "{event} not published: {e}");
        }
    }
    tracing::info!(%run_id, "agent run completed");
}
