//! Seed 004's AI tutor (CodeMentor): slow, and sometimes failing. `POST /api/tutor/ask
//! {question}` answers `{reply}` after a delay, or 503 when the tutor is failing; Portico's
//! route in front of it opens its circuit and serves the static fallback reply instead.
//!
//! It fails each call with the probability `--fail-rate` (0 by default), and always while
//! told to: `POST /control/failing {"failing": true}` (with the internal token, as every
//! call but `/health`), so a demo or a test can make it fail on cue.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use portico_core::error::{ApiError, ErrorCode};
use portico_sdk::{Caller, Verifier};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::DemoSettings;

/// The port `portico demo tutor` listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 9004;
/// How long the tutor "thinks" before it answers.
const THINKING: Duration = Duration::from_millis(150);

/// How the tutor misbehaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct TutorSettings {
    /// The share of calls that fail (0.0–1.0).
    pub fail_rate: f64,
}

#[derive(Clone)]
struct Tutor {
    verifier: Option<Verifier>,
    failing: Arc<AtomicBool>,
    fail_rate: f64,
    calls: Arc<AtomicU64>,
}

/// The service's routes.
pub fn router(settings: DemoSettings, tutor: TutorSettings) -> Result<Router, String> {
    if !(0.0..=1.0).contains(&tutor.fail_rate) {
        return Err(format!(
            "--fail-rate must be between 0 and 1, not {}",
            tutor.fail_rate
        ));
    }
    let verifier = match &settings.internal_token {
        Some(token) => {
            Some(Verifier::internal_token("X-Internal-Auth", token).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    let state = Tutor {
        verifier,
        failing: Arc::default(),
        fail_rate: tutor.fail_rate,
        calls: Arc::default(),
    };
    Ok(Router::new()
        .route(
            "/health",
            get(|| async { Json(json!({"status": "healthy"})) }),
        )
        .route("/api/tutor/ask", post(ask))
        .route("/control/failing", post(control))
        .with_state(state))
}

impl Tutor {
    async fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        match &self.verifier {
            Some(verifier) => verifier.caller(headers).await,
            None => Err(ApiError::new(
                ErrorCode::Sys001,
                "the demo runs without --internal-token: set the tutor upstream's internal_token",
            )),
        }
    }

    /// Whether this call fails: always while told to, else with the fail rate (spread
    /// evenly over the calls, so a rate of 0.25 fails every fourth).
    fn fails(&self) -> bool {
        if self.failing.load(Ordering::SeqCst) {
            return true;
        }
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let rate = self.fail_rate;
        // Calls 1..=n should have failed floor(n * rate) times: fail when that count grows.
        ((n as f64) * rate).floor() > (((n - 1) as f64) * rate).floor()
    }
}

#[derive(Deserialize)]
struct Ask {
    question: String,
}

async fn ask(
    State(tutor): State<Tutor>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let caller = tutor.caller(&headers).await?;
    let Ask { question } = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("the body must be {\"question\": \"…\"}"))?;
    tokio::time::sleep(THINKING).await;
    if tutor.fails() {
        tracing::info!(user = %caller.user_id, "the tutor failed (as asked)");
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

#[derive(Deserialize)]
struct Failing {
    failing: bool,
}

async fn control(
    State(tutor): State<Tutor>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    tutor.caller(&headers).await?;
    let Failing { failing } = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("the body must be {\"failing\": true|false}"))?;
    tutor.failing.store(failing, Ordering::SeqCst);
    tracing::info!(failing, "the tutor is told how to behave");
    Ok(Json(json!({"failing": failing})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tutor(fail_rate: f64) -> Tutor {
        Tutor {
            verifier: None,
            failing: Arc::default(),
            fail_rate,
            calls: Arc::default(),
        }
    }

    #[test]
    fn the_fail_rate_spreads_failures_evenly_and_failing_overrides_it() {
        let quarter = tutor(0.25);
        let fails: Vec<bool> = (0..8).map(|_| quarter.fails()).collect();
        assert_eq!(
            fails,
            [false, false, false, true, false, false, false, true]
        );
        let never = tutor(0.0);
        assert!((0..100).all(|_| !never.fails()));
        never.failing.store(true, Ordering::SeqCst);
        assert!(never.fails());
        let settings = DemoSettings {
            portico: String::new(),
            publisher: None,
            internal_token: None,
        };
        assert!(router(settings.clone(), TutorSettings { fail_rate: 1.5 }).is_err());
        assert!(router(settings, TutorSettings { fail_rate: 1.0 }).is_ok());
    }
}
