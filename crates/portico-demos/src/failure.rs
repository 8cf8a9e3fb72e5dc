//! Failing on purpose: a share of calls (`--fail-rate`, spread evenly), and every call while
//! told to (`POST /control/failing {"failing": true}`, with the internal token).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use portico_core::error::ApiError;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::DemoSettings;
use crate::trust::Trust;

/// The routes of a demo that fails on purpose: `route` at `path`, `/health` and
/// `POST /control/failing`; `fail_rate` of its calls fail (0 to 1).
pub(crate) fn router(
    settings: &DemoSettings,
    fail_rate: f64,
    path: &str,
    route: MethodRouter<Shared>,
) -> Result<Router, String> {
    let state = (
        Trust::new(settings)?,
        Failure::new(fail_rate)?,
        settings.clone(),
    );
    Ok(Router::new()
        .route(
            "/health",
            get(|| async { Json(json!({"status": "healthy"})) }),
        )
        .route(path, route)
        .route("/control/failing", post(control))
        .with_state(state))
}

/// What a failing demo's handlers are given: the internal-token check, the failure switch
/// and the demo's settings.
pub(crate) type Shared = (Trust, Failure, DemoSettings);

/// When a demo fails.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    failing: Arc<AtomicBool>,
    rate: f64,
    calls: Arc<AtomicU64>,
}

impl Failure {
    /// Failing `rate` of the calls (0 to 1).
    pub(crate) fn new(rate: f64) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&rate) {
            return Err(format!("--fail-rate must be between 0 and 1, not {rate}"));
        }
        Ok(Self {
            failing: Arc::default(),
            rate,
            calls: Arc::default(),
        })
    }

    /// Whether this call fails: always while told to, else with the rate, spread evenly (a
    /// rate of 0.25 fails every fourth call).
    pub(crate) fn fails(&self) -> bool {
        if self.failing.load(Ordering::SeqCst) {
            return true;
        }
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        // Calls 1..=n should have failed floor(n * rate) times: fail when that count grows.
        ((n as f64) * self.rate).floor() > (((n - 1) as f64) * self.rate).floor()
    }
}

#[derive(Deserialize)]
struct Failing {
    failing: bool,
}

/// `POST /control/failing {"failing": bool}`.
async fn control(
    State((trust, failure, _)): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    trust.caller(&headers).await?;
    let Failing { failing } = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("the body must be {\"failing\": true|false}"))?;
    failure.failing.store(failing, Ordering::SeqCst);
    tracing::info!(failing, "the demo is told how to behave");
    Ok(Json(json!({"failing": failing})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_spreads_failures_evenly_and_failing_overrides_it() {
        let quarter = Failure::new(0.25).unwrap();
        let fails: Vec<bool> = (0..8).map(|_| quarter.fails()).collect();
        assert_eq!(
            fails,
            [false, false, false, true, false, false, false, true]
        );
        let never = Failure::new(0.0).unwrap();
        assert!((0..100).all(|_| !never.fails()));
        never.failing.store(true, Ordering::SeqCst);
        assert!(never.fails());
        assert!(Failure::new(1.5).is_err());
        assert!(Failure::new(1.0).is_ok());
    }
}
