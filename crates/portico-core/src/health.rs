//! Health checks: a registry of named checks, their aggregation, and the `/health` routes.
//!
//! Each component registers what it depends on (the database, Redis, each upstream) as a
//! [`HealthCheck`], marked critical or not. A report runs every check concurrently, each
//! bounded by the registry's timeout (a check that does not answer in time is unhealthy), and
//! aggregates: any critical check unhealthy → unhealthy (HTTP 503); otherwise any check
//! unhealthy or degraded → degraded (still 200); otherwise healthy.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;
use serde::{Serialize, Serializer};
use tokio::task::JoinSet;

use crate::clock::{SharedClock, SystemClock};

/// A check's (or the whole report's) verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Working.
    Healthy,
    /// Working with reduced service (a non-critical dependency is down).
    Degraded,
    /// Not working.
    Unhealthy,
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// The verdict.
    pub status: HealthStatus,
    /// How long the check took by its own measure; zero lets the registry measure it.
    pub latency: Duration,
    /// A short, client-safe note (shown on the public `/health`; never a secret or URL
    /// with credentials).
    pub message: Option<String>,
}

impl CheckResult {
    /// Healthy, no message.
    pub fn healthy() -> Self {
        Self {
            status: HealthStatus::Healthy,
            latency: Duration::ZERO,
            message: None,
        }
    }

    /// Degraded, with a note.
    pub fn degraded(message: impl Into<String>) -> Self {
        Self {
            status: HealthStatus::Degraded,
            latency: Duration::ZERO,
            message: Some(message.into()),
        }
    }

    /// Unhealthy, with a note.
    pub fn unhealthy(message: impl Into<String>) -> Self {
        Self {
            status: HealthStatus::Unhealthy,
            latency: Duration::ZERO,
            message: Some(message.into()),
        }
    }

    /// Sets the measured latency.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }
}

/// A named probe of one dependency.
pub trait HealthCheck: Send + Sync + 'static {
    /// The key in the report's `checks` object (`"auth"`, `"redis"`, `"etl"`).
    fn name(&self) -> &str;
    /// Whether this check failing makes the whole service unhealthy (503) rather than degraded.
    fn critical(&self) -> bool;
    /// Runs the probe. The registry bounds it with its timeout, so it need not.
    fn check(&self) -> Pin<Box<dyn Future<Output = CheckResult> + Send + '_>>;
}

/// One check's line in a [`HealthReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// The verdict.
    pub status: HealthStatus,
    /// Latency in whole milliseconds.
    pub latency_ms: u64,
    /// The check's note, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Whether the check is critical.
    pub critical: bool,
}

/// The aggregated report: `{"status": ..., "checks": {...}, "timestamp": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    /// The aggregate verdict.
    pub status: HealthStatus,
    /// Every check by name.
    pub checks: BTreeMap<String, CheckReport>,
    /// When the report was made (RFC 3339 UTC with milliseconds on the wire).
    #[serde(serialize_with = "rfc3339_millis")]
    pub timestamp: SystemTime,
}

fn rfc3339_millis<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}

impl HealthReport {
    /// 200 unless unhealthy, then 503.
    pub fn http_status(&self) -> StatusCode {
        match self.status {
            HealthStatus::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::OK,
        }
    }
}

impl IntoResponse for HealthReport {
    fn into_response(self) -> Response {
        (self.http_status(), Json(self)).into_response()
    }
}

/// The aggregation rule over `(status, critical)` pairs.
pub fn aggregate(results: impl IntoIterator<Item = (HealthStatus, bool)>) -> HealthStatus {
    let mut overall = HealthStatus::Healthy;
    for (status, critical) in results {
        let effect = match (status, critical) {
            (HealthStatus::Unhealthy, true) => return HealthStatus::Unhealthy,
            (HealthStatus::Healthy, _) => HealthStatus::Healthy,
            _ => HealthStatus::Degraded,
        };
        overall = overall.max(effect);
    }
    overall
}

// === impl HealthRegistry ===

/// The set of checks behind `/health`. Cheap to clone; clones share the checks.
#[derive(Clone)]
pub struct HealthRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    timeout: Duration,
    clock: SharedClock,
    checks: Mutex<Vec<Arc<dyn HealthCheck>>>,
}

impl std::fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.checks().iter().map(|c| c.name().to_owned()).collect();
        f.debug_struct("HealthRegistry")
            .field("timeout", &self.inner.timeout)
            .field("checks", &names)
            .finish()
    }
}

impl HealthRegistry {
    /// An empty registry whose checks each get `check_timeout`, on the system clock.
    pub fn new(check_timeout: Duration) -> Self {
        Self::with_clock(check_timeout, SystemClock::shared())
    }

    /// An empty registry timing checks on `clock`.
    pub fn with_clock(check_timeout: Duration, clock: SharedClock) -> Self {
        Self {
            inner: Arc::new(Inner {
                timeout: check_timeout,
                clock,
                checks: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Adds a check. A check with the same name already registered is replaced.
    pub fn register(&self, check: Arc<dyn HealthCheck>) {
        let mut checks = self.lock();
        checks.retain(|c| c.name() != check.name());
        checks.push(check);
    }

    /// Removes the check called `name` (an upstream gone after a config reload); whether
    /// there was one.
    pub fn unregister(&self, name: &str) -> bool {
        let mut checks = self.lock();
        let before = checks.len();
        checks.retain(|c| c.name() != name);
        checks.len() != before
    }

    /// Adds a check from a closure returning a future.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use portico_core::health::{CheckResult, HealthRegistry};
    /// let registry = HealthRegistry::new(Duration::from_secs(2));
    /// registry.register_fn("cache", false, || async { CheckResult::healthy() });
    /// ```
    pub fn register_fn<F, Fut>(&self, name: impl Into<String>, critical: bool, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = CheckResult> + Send + 'static,
    {
        self.register(Arc::new(FnCheck {
            name: name.into(),
            critical,
            check,
        }));
    }

    /// Runs every check concurrently (each bounded by the timeout) and aggregates.
    pub async fn report(&self) -> HealthReport {
        let mut tasks = JoinSet::new();
        let mut names = BTreeMap::new();
        for check in self.checks() {
            let (clock, timeout) = (self.inner.clock.clone(), self.inner.timeout);
            let name = check.name().to_owned();
            let critical = check.critical();
            let handle = tasks.spawn(run_one(check, clock, timeout));
            names.insert(handle.id(), (name, critical));
        }

        let mut checks = BTreeMap::new();
        while let Some(joined) = tasks.join_next_with_id().await {
            let (id, result) = match joined {
                Ok((id, result)) => (id, result),
                Err(e) => (e.id(), CheckResult::unhealthy("check failed")),
            };
            let Some((name, critical)) = names.remove(&id) else {
                continue;
            };
            let latency_ms = u64::try_from(result.latency.as_millis()).unwrap_or(u64::MAX);
            checks.insert(
                name,
                CheckReport {
                    status: result.status,
                    latency_ms,
                    message: result.message,
                    critical,
                },
            );
        }

        HealthReport {
            status: aggregate(checks.values().map(|c| (c.status, c.critical))),
            checks,
            timestamp: self.inner.clock.system_now(),
        }
    }

    fn checks(&self) -> Vec<Arc<dyn HealthCheck>> {
        // `register` keeps one check per name.
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<dyn HealthCheck>>> {
        // A panic while holding this lock cannot leave the Vec half-updated; keep going.
        self.inner
            .checks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn run_one(
    check: Arc<dyn HealthCheck>,
    clock: SharedClock,
    timeout: Duration,
) -> CheckResult {
    let started = clock.now();
    let result = tokio::select! {
        result = check.check() => result,
        () = clock.sleep(timeout) => {
            CheckResult::unhealthy(format!("timed out after {}", humantime::format_duration(timeout)))
        }
    };
    if result.latency.is_zero() {
        let elapsed = clock.now().saturating_duration_since(started);
        result.with_latency(elapsed)
    } else {
        result
    }
}

struct FnCheck<F> {
    name: String,
    critical: bool,
    check: F,
}

impl<F, Fut> HealthCheck for FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = CheckResult> + Send + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn critical(&self) -> bool {
        self.critical
    }

    fn check(&self) -> Pin<Box<dyn Future<Output = CheckResult> + Send + '_>> {
        Box::pin((self.check)())
    }
}

// === routes ===

/// `GET /health/live` → 200 `{"status":"alive"}`; `GET /health` and `GET /health/ready` →
/// the report, 200 unless unhealthy (503).
pub fn routes(registry: HealthRegistry) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health", get(ready))
        .route("/health/ready", get(ready))
        .with_state(registry)
}

async fn live() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "alive" }))
}

async fn ready(State(registry): State<HealthRegistry>) -> HealthReport {
    registry.report().await
}
