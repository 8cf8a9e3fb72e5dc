//! Seed 001's search (Caudex): `GET /v1/api/search?q=…` answers `{query, results, source:
//! "chroma"}` from its chroma-like vector store, or 503 `SYS_002` when the store fails (see
//! `failure`). Portico's route in front of it keeps the last good answer of each GET and
//! serves it (`X-Portico-Fallback: cache`) while the store fails and its circuit is open.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use portico_core::error::{ApiError, ErrorCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::DemoSettings;
use crate::failure::{self, Shared};

/// The port `portico demo search` listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 9001;

/// The documents the store holds.
const DOCUMENTS: [&str; 4] = [
    "Circuit breakers stop calls to a failing service and let it recover.",
    "Retries with backoff ride out short failures of idempotent calls.",
    "A fallback answers from cache when the service behind it is down.",
    "Rate limits keep one caller from taking all of a service's capacity.",
];

/// The service's routes; `fail_rate` of its searches fail (0 to 1).
pub fn router(settings: DemoSettings, fail_rate: f64) -> Result<Router, String> {
    failure::router(&settings, fail_rate, "/v1/api/search", get(search))
}

#[derive(Deserialize)]
struct Search {
    #[serde(default)]
    q: String,
}

async fn search(
    State((trust, failure, _)): State<Shared>,
    Query(Search { q }): Query<Search>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    trust.caller(&headers).await?;
    if q.trim().is_empty() {
        return Err(ApiError::bad_request("q, the query, is required"));
    }
    if failure.fails() {
        tracing::info!(query = %q, "the vector store failed");
        return Err(ApiError::new(
            ErrorCode::Sys002,
            "the vector store (chroma) is not answering",
        ));
    }
    let words: Vec<String> = q.split_whitespace().map(str::to_lowercase).collect();
    let results: Vec<&str> = DOCUMENTS
        .iter()
        .filter(|d| {
            let d = d.to_lowercase();
            words.iter().any(|w| d.contains(w.as_str()))
        })
        .copied()
        .collect();
    Ok(Json(
        json!({"query": q, "results": results, "source": "chroma"}),
    ))
}
