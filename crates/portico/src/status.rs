//! `GET /status/services`: the circuit state of every configured upstream, in seed 001's shape.
//!
//! ```json
//! {"services":{"etl":{"service":"etl","state":"closed","failure_count":0,
//!   "last_failure":null,"last_state_change":"2026-01-01T00:00:00.000Z"}},
//!  "timestamp":"2026-01-01T00:00:05.000Z"}
//! ```
//!
//! Each upstream gets one [`CircuitBreaker`] built from its checked policy. Until the gateway
//! (issue #5) calls upstreams through them they stay closed; the gateway is meant to take
//! these breakers from [`ServiceStatus::breakers`] so the status shows the breakers in use.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::routing::get;
use axum::{Json, Router};
use portico_resilience::SystemClock;
use portico_resilience::breaker::{BreakerConfig, BreakerSnapshot, CircuitBreaker};
use serde_json::{Value, json};

use crate::config::Config;

/// The breakers of the configured upstreams, by upstream name. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ServiceStatus {
    breakers: Arc<BTreeMap<String, CircuitBreaker>>,
}

impl ServiceStatus {
    /// One closed breaker per `[upstreams.<name>]`, with its threshold and recovery timeout.
    pub fn new(config: &Config) -> Self {
        let breakers = config
            .upstreams
            .iter()
            .map(|(name, upstream)| {
                let breaker = CircuitBreaker::new(
                    name.as_str(),
                    BreakerConfig::from(upstream.policy),
                    SystemClock::shared(),
                );
                (name.clone(), breaker)
            })
            .collect();
        Self {
            breakers: Arc::new(breakers),
        }
    }

    /// The breakers, by upstream name.
    pub fn breakers(&self) -> &BTreeMap<String, CircuitBreaker> {
        &self.breakers
    }

    /// The `/status/services` document at this moment.
    pub fn report(&self) -> Value {
        let services: serde_json::Map<String, Value> = self
            .breakers
            .iter()
            .map(|(name, breaker)| (name.clone(), entry(name, &breaker.snapshot())))
            .collect();
        json!({ "services": services, "timestamp": timestamp(SystemTime::now()) })
    }

    /// `GET /status/services`.
    pub fn routes(&self) -> Router {
        let status = self.clone();
        Router::new().route(
            "/status/services",
            get(move || {
                let status = status.clone();
                async move { Json(status.report()) }
            }),
        )
    }
}

fn entry(name: &str, snapshot: &BreakerSnapshot) -> Value {
    json!({
        "service": name,
        "state": snapshot.state.as_str(),
        "failure_count": snapshot.failure_count,
        "last_failure": snapshot.last_failure.map(timestamp),
        "last_state_change": timestamp(snapshot.last_state_change),
    })
}

/// RFC 3339 UTC with milliseconds, like the error envelope's timestamps.
fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Env, load_str};

    #[test]
    fn every_upstream_has_a_closed_entry() {
        let text = "[upstreams.etl]\nurl = \"http://127.0.0.1:1\"\n[upstreams.git]\nurl = \"http://127.0.0.1:2\"\npreset = \"git\"\n";
        let config = load_str("portico.toml", text, &Env::default()).unwrap();
        let status = ServiceStatus::new(&config);
        assert_eq!(
            status.breakers()["git"].config().recovery_timeout(),
            std::time::Duration::from_secs(90)
        );
        let report = status.report();
        let etl = &report["services"]["etl"];
        assert_eq!(etl["service"], "etl");
        assert_eq!(etl["state"], "closed");
        assert_eq!(etl["failure_count"], 0);
        assert!(etl["last_failure"].is_null());
        assert!(report["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(report["services"].as_object().unwrap().len(), 2);
    }
}
