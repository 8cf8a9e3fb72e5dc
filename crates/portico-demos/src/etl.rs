//! Seed 002's ETL service (Pulse): `POST /api/v1/jobs/start {job}` starts a `jira_sync` or
//! `github_sync` job (anything else: 400 `REQ_001`) and answers 202 `{job_id}`;
//! `GET /api/v1/jobs/{id}` is its state. Progress goes to the realtime channel `job:<id>`
//! (`job_progress` … `job_completed`) instead of being polled every 5 s. Every call but
//! `/health` must carry the internal token in `X-Internal-Auth` (else 403 `AUTH_006`) and
//! the caller Portico forwards (else 401). `POST /control/delay {"delay_ms": N}` (with the
//! internal token) makes every job call answer N ms late, for seed 002's timeout → 504.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use portico_core::error::{ApiError, ErrorCode};
use portico_sdk::{Caller, Target};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::DemoSettings;
use crate::trust::Trust;

/// The port `portico demo etl` listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 9002;
/// The jobs it knows.
const JOBS: [&str; 2] = ["jira_sync", "github_sync"];
/// How often a running job reports progress (25 % each time).
const STEP: Duration = Duration::from_millis(200);

#[derive(Clone)]
struct Etl {
    settings: DemoSettings,
    trust: Trust,
    jobs: Arc<Mutex<HashMap<String, Value>>>,
    /// How late every job call answers, in ms (`/control/delay`).
    delay_ms: Arc<AtomicU64>,
}

/// The service's routes.
pub fn router(settings: DemoSettings) -> Result<Router, String> {
    let etl = Etl {
        trust: Trust::new(&settings)?,
        settings,
        jobs: Arc::default(),
        delay_ms: Arc::default(),
    };
    Ok(Router::new()
        .route(
            "/health",
            get(|| async { Json(json!({"status": "healthy"})) }),
        )
        .route("/api/v1/jobs/start", post(start))
        .route("/api/v1/jobs/{id}", get(job))
        .route("/control/delay", post(delay))
        .with_state(etl))
}

#[derive(Deserialize)]
struct Start {
    job: String,
}

impl Etl {
    /// The caller, when the call comes from the gateway with the internal token (seed 002
    /// refuses a call without it with 403, not 401).
    async fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        if !headers.contains_key("x-internal-auth") {
            return Err(ApiError::new(
                ErrorCode::Auth006,
                "X-Internal-Auth is required: call through Portico",
            ));
        }
        self.trust.caller(headers).await.map_err(|e| {
            if e.code() == ErrorCode::Auth001 {
                ApiError::new(ErrorCode::Auth006, "X-Internal-Auth does not match")
            } else {
                e
            }
        })
    }

    /// Waits as long as `/control/delay` says.
    async fn lag(&self) {
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
    }
}

#[derive(Deserialize)]
struct Delay {
    delay_ms: u64,
}

/// `POST /control/delay {"delay_ms": N}`: every job call answers N ms late (0: on time).
async fn delay(
    State(etl): State<Etl>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    etl.caller(&headers).await?;
    let Delay { delay_ms } = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("the body must be {\"delay_ms\": <ms>}"))?;
    etl.delay_ms.store(delay_ms, Ordering::SeqCst);
    tracing::info!(delay_ms, "job calls are answered late");
    Ok(Json(json!({"delay_ms": delay_ms})))
}

async fn start(
    State(etl): State<Etl>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let caller = etl.caller(&headers).await?;
    etl.lag().await;
    let Start { job } = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("the body must be {\"job\": \"<name>\"}"))?;
    if !JOBS.contains(&job.as_str()) {
        return Err(ApiError::bad_request(format!(
            "unknown job {job:?}: one of {}",
            JOBS.join(", ")
        )));
    }
    let id = portico_core::request_id::RequestId::generate().to_string();
    let state = json!({"job_id": id, "job": job, "status": "running", "progress": 0,
                       "user_id": caller.user_id});
    etl.jobs
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id.clone(), state);
    tracing::info!(job_id = %id, %job, user = %caller.user_id, "job started");
    tokio::spawn(run(etl.clone(), id.clone(), job.clone()));
    Ok((
        StatusCode::ACCEPTED,
        Json(
            json!({"job_id": id, "job": job, "status": "running", "channel": format!("job:{id}")}),
        ),
    ))
}

async fn job(
    State(etl): State<Etl>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    etl.caller(&headers).await?;
    etl.lag().await;
    let jobs = etl.jobs.lock().unwrap_or_else(PoisonError::into_inner);
    jobs.get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(ApiError::not_found)
}

/// Runs a job: progress every [`STEP`], each step published to `job:<id>`.
async fn run(etl: Etl, id: String, job: String) {
    let channel = format!("job:{id}");
    for progress in [25, 50, 75, 100] {
        tokio::time::sleep(STEP).await;
        let done = progress == 100;
        if let Some(state) = etl
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&id)
        {
            state["progress"] = json!(progress);
            if done {
                state["status"] = json!("completed");
            }
        }
        let Some(publisher) = &etl.settings.publisher else {
            continue;
        };
        let event = if done {
            "job_completed"
        } else {
            "job_progress"
        };
        let data = json!({"job_id": id, "job": job, "progress": progress});
        if let Err(e) = publisher
            .publish(
                Target::Channel(&channel),
                event,
                data,
                Some(json!({"job_id": id})),
            )
            .await
        {
            tracing::warn!(job_id = %id, "progress not published: {e}");
        }
    }
    tracing::info!(job_id = %id, "job completed");
}
