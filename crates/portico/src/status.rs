//! `GET /status/services`: the circuit state of every configured upstream, in seed 001's shape.
//!
//! ```json
//! {"services":{"etl":{"service":"etl","state":"closed","failure_count":0,
//!   "last_failure":null,"last_state_change":"2026-01-01T00:00:00.000Z"}},
//!  "timestamp":"2026-01-01T00:00:05.000Z"}
//! ```
//!
//! When the gateway runs, the status shows its breakers — the ones its calls go through
//! ([`ServiceStatus::from_breakers`]); without it (`portico auth`), one closed breaker per
//! configured upstream ([`ServiceStatus::new`]). A config reload swaps in the new gateway's
//! breakers ([`ServiceStatus::replace`]).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use axum::routing::get;
use axum::{Json, Router};
use portico_resilience::SystemClock;
use portico_resilience::breaker::{BreakerConfig, BreakerSnapshot, CircuitBreaker};
use serde_json::{Value, json};

use crate::config::Config;

/// The breakers of the configured upstreams, by upstream name. Cheap to clone; clones share
/// the breakers, and a [`replace`](ServiceStatus::replace) shows in every clone.
#[derive(Debug, Clone)]
pub struct ServiceStatus {
    breakers: Arc<RwLock<Arc<Breakers>>>,
}

type Breakers = BTreeMap<String, CircuitBreaker>;

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
        Self::from_breakers(breakers)
    }

    /// The status of breakers that are in use (the gateway's).
    pub fn from_breakers(breakers: BTreeMap<String, CircuitBreaker>) -> Self {
        Self {
            breakers: Arc::new(RwLock::new(Arc::new(breakers))),
        }
    }

    /// Shows `breakers` from now on (the gateway's after a config reload).
    pub fn replace(&self, breakers: BTreeMap<String, CircuitBreaker>) {
        let mut current = self
            .breakers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *current = Arc::new(breakers);
    }

    /// The breakers shown now, by upstream name.
    pub fn breakers(&self) -> Arc<BTreeMap<String, CircuitBreaker>> {
        // Replacing is one assignment: a poisoned lock still holds a whole map.
        self.breakers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The `/status/services` document at this moment.
    pub fn report(&self) -> Value {
        let services: serde_json::Map<String, Value> = self
            .breakers()
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

/// What the dashboard shows as circuit states: the same document.
impl portico_dashboard::ServiceReport for ServiceStatus {
    fn report(&self) -> Value {
        ServiceStatus::report(self)
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

    #[test]
    fn a_replacement_shows_in_every_clone() {
        let text = "[upstreams.etl]\nurl = \"http://127.0.0.1:1\"\n";
        let config = load_str("portico.toml", text, &Env::default()).unwrap();
        let status = ServiceStatus::new(&config);
        let shown = status.clone();
        let breaker = CircuitBreaker::new("git", BreakerConfig::default(), SystemClock::shared());
        status.replace(BTreeMap::from([("git".to_owned(), breaker)]));
        let report = shown.report();
        let services = report["services"].as_object().unwrap();
        assert_eq!(services.keys().collect::<Vec<_>>(), ["git"]);
    }
}
