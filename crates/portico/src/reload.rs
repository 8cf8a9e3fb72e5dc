//! Config reload: on SIGHUP, and when the config file changes, the gateway's routes and
//! upstreams are read again and swapped in without dropping a connection.
//!
//! ```text
//! SIGHUP ─┐
//!         ├→ load the config (file + PORTICO_* env) → build a whole new Gateway
//! file  ──┘     │ a problem anywhere: every problem logged
//! changed       │ ("config reload refused: portico.toml:12: routes[0].upstream: …"),
//! (polled 2 s)  │ the running gateway kept
//!               └→ swap it into the cell; /status/services and /health follow it
//! ```
//!
//! The public router's fallback is one handler reading the current gateway from a
//! [`GatewayCell`] per request: a request keeps the gateway it started with until it is
//! answered (streamed bodies and WebSocket tunnels included), the next one — on the same
//! keep-alive connection too — gets the new gateway.
//!
//! What reloads: `[upstreams.*]`, `[[routes]]` and `[cors]` — routes, upstreams and their
//! policies, rate limits, fallbacks, response caches, CORS. What does not (a change is logged
//! as "needs a restart" and left unapplied): `[server]` (listen, data_dir, max_body,
//! drain_timeout), `[[aliases]]`, `[database]`, `[redis]`, `[auth]`, `[roles]`, `[realtime]`, `[telemetry]`.
//!
//! An upstream whose URL and breaker settings did not change keeps its circuit breaker (an
//! open circuit stays open); the others get new, closed ones. The reloaded gateway starts
//! with empty response caches and fresh in-memory rate-limit windows (Redis-shared windows
//! live on in Redis).
//!
//! The file is watched by polling its modification time and size every
//! [`POLL_INTERVAL`] (no inotify dependency; works on every file system, including bind
//! mounts and ConfigMaps). Only a config read from a file is watched; SIGHUP works either
//! way. A refused change is not retried until the file changes again (or SIGHUP).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use portico_core::clock::SystemClock;
use portico_core::health::HealthRegistry;
use portico_core::shutdown::Shutdown;
use portico_gateway::Gateway;
use portico_gateway::identity::{Authenticator, IdentityKey};
use portico_resilience::breaker::{BreakerConfig, CircuitBreaker};

use crate::config::{self, Config, ConfigSource, Env};
use crate::status::ServiceStatus;

/// How often the config file's modification time and size are looked at.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The gateway currently serving, swappable while requests run. Cheap to read: one atomic
/// load and an `Arc` clone per request, with no lock for readers to queue on.
#[derive(Debug)]
pub struct GatewayCell {
    current: ArcSwap<Gateway>,
}

impl GatewayCell {
    /// A cell serving `gateway`.
    pub fn new(gateway: &Arc<Gateway>) -> Arc<Self> {
        Arc::new(Self {
            current: ArcSwap::new(gateway.clone()),
        })
    }

    /// Serves `gateway` from the next request on; requests already running finish on the
    /// gateway they started with.
    pub fn swap(&self, gateway: &Arc<Gateway>) {
        self.current.store(gateway.clone());
    }

    /// The gateway serving now (for one request: keep it until the request is answered).
    pub fn current(&self) -> Arc<Gateway> {
        self.current.load_full()
    }

    /// A router whose fallback hands every request to the current gateway's
    /// [`Gateway::handle`] (which proxies routed paths, serves its JWKS and answers REQ_003
    /// for the rest). Merge it last into the public router, like [`Gateway::router`].
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new().fallback(dispatch).with_state(self.clone())
    }
}

async fn dispatch(State(cell): State<Arc<GatewayCell>>, request: Request) -> Response {
    let gateway = cell.current.load_full();
    gateway.handle(request).await
}

/// What a reload needs besides the new config: what the running gateway was built with.
pub struct Reloader {
    /// Where the config comes from.
    source: ConfigSource,
    /// The config the process started with: the sections that need a restart are compared
    /// against it, and `max_body` and the Redis URL stay as they are.
    started: Config,
    /// The config the running gateway was built from.
    applied: Config,
    /// The gateway's parts that do not change on reload.
    authenticator: Arc<dyn Authenticator>,
    identity_key: IdentityKey,
    cell: Arc<GatewayCell>,
    health: HealthRegistry,
    status: ServiceStatus,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// The parts of a running gateway a [`Reloader`] keeps.
pub struct Running {
    /// The authenticator the gateway asks.
    pub authenticator: Arc<dyn Authenticator>,
    /// The key `X-Portico-Identity` is signed with.
    pub identity_key: IdentityKey,
    /// The cell the public router reads the gateway from.
    pub cell: Arc<GatewayCell>,
    /// `/health`'s registry, where the gateway registered its checks.
    pub health: HealthRegistry,
    /// `/status/services`, showing the gateway's breakers.
    pub status: ServiceStatus,
}

impl Reloader {
    /// A reloader for the gateway built from `config` (read from `source`).
    pub fn new(source: ConfigSource, config: Config, running: Running) -> Self {
        Self {
            source,
            applied: config.clone(),
            started: config,
            authenticator: running.authenticator,
            identity_key: running.identity_key,
            cell: running.cell,
            health: running.health,
            status: running.status,
        }
    }

    /// Loads the config again and swaps in a gateway built from it; on any problem logs
    /// every one and keeps the running gateway. `trigger` names the cause in the log.
    pub async fn reload(&mut self, trigger: &str) -> Result<(), ReloadRefused> {
        let source = self.source.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            config::load(&source, &Env::from_process()).map_err(|errors| {
                errors
                    .problems()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            })
        })
        .await
        .unwrap_or_else(|_| Err(vec!["the config could not be read".to_owned()]));
        let result = loaded.and_then(|config| {
            let (gateway, kept) = self.build(&config).map_err(|e| vec![e])?;
            Ok((config, gateway, kept))
        });
        let (config, gateway, kept) = match result {
            Ok(built) => built,
            Err(problems) => {
                for problem in &problems {
                    tracing::error!("config reload refused: {problem}");
                }
                tracing::error!(
                    "config reload ({trigger}) refused with {} problem{}; still serving the previous config",
                    problems.len(),
                    crate::plural(problems.len()),
                );
                return Err(ReloadRefused { problems });
            }
        };
        for section in needs_restart(&self.started, &config) {
            tracing::warn!("config reload: {section} changed; that needs a restart, not applied");
        }
        gateway.register_health(&self.health);
        let checked = health_checked(&config);
        for gone in health_checked(&self.applied)
            .iter()
            .filter(|name| !checked.contains(name))
        {
            self.health.unregister(gone);
        }
        self.status.replace(gateway.breakers());
        self.cell.swap(&gateway);
        tracing::info!(
            "config reloaded ({trigger}): {} route{}, {} upstream{}; circuit state kept for {kept} unchanged upstream{}",
            config.routes.len(),
            crate::plural(config.routes.len()),
            config.upstreams.len(),
            crate::plural(config.upstreams.len()),
            crate::plural(kept),
        );
        self.applied = config;
        Ok(())
    }

    /// The gateway of `config`, with the parts that do not reload as they started, and how
    /// many upstreams kept their circuit breaker.
    fn build(&self, config: &Config) -> Result<(Arc<Gateway>, usize), String> {
        let started = crate::gateway::settings(&self.started);
        let mut settings = crate::gateway::settings(config);
        settings.max_body = started.max_body;
        settings.redis_url = started.redis_url;
        settings.identity_key = Some(self.identity_key.clone());
        let kept = kept_breakers(&self.applied, config, &self.status.breakers());
        let count = kept.len();
        let gateway = Gateway::with_breakers(
            settings,
            self.authenticator.clone(),
            SystemClock::shared(),
            kept,
        )
        .map_err(|e| e.to_string())?;
        Ok((gateway, count))
    }
}

/// A reload that was refused; the running config stays.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config reload refused: {}", problems.join("; "))]
pub struct ReloadRefused {
    /// Every problem, one line each (`portico.toml:12: routes[0].upstream: …`).
    pub problems: Vec<String>,
}

/// The running breakers that `new` keeps: those of upstreams declared before with the same
/// URL, whose breaker settings fit the new policy.
fn kept_breakers(
    applied: &Config,
    new: &Config,
    running: &BTreeMap<String, CircuitBreaker>,
) -> BTreeMap<String, CircuitBreaker> {
    new.upstreams
        .iter()
        .filter(|(name, upstream)| {
            applied
                .upstreams
                .get(*name)
                .is_some_and(|before| before.url == upstream.url)
        })
        .filter_map(|(name, upstream)| {
            let breaker = running.get(name)?;
            (*breaker.config() == BreakerConfig::from(upstream.policy))
                .then(|| (name.clone(), breaker.clone()))
        })
        .collect()
}

/// The upstreams whose `/health` check the gateway of `config` registers.
fn health_checked(config: &Config) -> Vec<String> {
    config
        .upstreams
        .iter()
        .filter(|(_, upstream)| upstream.health.is_some())
        .map(|(name, _)| name.clone())
        .collect()
}

/// The sections that changed between `started` and `new` and are applied only at start.
fn needs_restart(started: &Config, new: &Config) -> Vec<&'static str> {
    // `[auth]`, `[roles]` and `[realtime]` have no `PartialEq`; their `Debug` shows every
    // value but secrets, so a changed client secret alone goes unnoticed here (and is not
    // applied either).
    let debug_differs =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    let mut changed = Vec::new();
    if started.server != new.server {
        changed.push("[server]");
    }
    if started.aliases != new.aliases {
        changed.push("[[aliases]]");
    }
    if started.database != new.database {
        changed.push("[database]");
    }
    if started.redis != new.redis {
        changed.push("[redis]");
    }
    if debug_differs(&started.auth, &new.auth) {
        changed.push("[auth]");
    }
    if debug_differs(&started.roles, &new.roles) {
        changed.push("[roles]");
    }
    if debug_differs(&started.realtime, &new.realtime) {
        changed.push("[realtime]");
    }
    if started.telemetry != new.telemetry {
        changed.push("[telemetry]");
    }
    changed
}

/// The file's modification time and size: a change in either is a change of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

async fn stamp(path: &Path) -> Option<Stamp> {
    let meta = tokio::fs::metadata(path).await.ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

/// Reloads on SIGHUP and, for a config file, when the file changes, until `shutdown`.
/// `reloader` is `None` when this process runs no gateway: SIGHUP is then logged and
/// ignored (rather than ending the process, its default).
pub fn spawn(reloader: Option<Reloader>, shutdown: Shutdown) {
    tokio::spawn(watch(reloader, shutdown));
}

async fn watch(mut reloader: Option<Reloader>, shutdown: Shutdown) {
    let mut hangup = hangups();
    let file = match &reloader {
        Some(Reloader {
            source: ConfigSource::File(path),
            ..
        }) => Some(path.clone()),
        _ => None,
    };
    let mut last = match &file {
        Some(path) => stamp(path).await,
        None => None,
    };
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let trigger = tokio::select! {
            () = &mut stop => return,
            () = hangup.next() => "SIGHUP",
            () = tokio::time::sleep(POLL_INTERVAL), if file.is_some() => {
                let Some(path) = &file else { continue };
                let now = stamp(path).await;
                if now == last {
                    continue;
                }
                "file changed"
            }
        };
        let Some(reloader) = reloader.as_mut() else {
            tracing::warn!(
                "received {trigger}: this process runs no gateway, nothing reloads; restart it to apply config changes"
            );
            continue;
        };
        // Stamped before reading, so a write during the reload is seen at the next poll.
        if let Some(path) = &file {
            last = stamp(path).await;
        }
        // Refusals are logged by `reload`.
        let _ = reloader.reload(trigger).await;
    }
}

/// SIGHUP, as a stream of wake-ups; never wakes where there is no SIGHUP (or it cannot be
/// listened for).
struct Hangups {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

fn hangups() -> Hangups {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let signal = match signal(SignalKind::hangup()) {
            Ok(signal) => Some(signal),
            Err(e) => {
                tracing::warn!("cannot listen for SIGHUP ({e}); reload by editing the file");
                None
            }
        };
        Hangups { signal }
    }
    #[cfg(not(unix))]
    Hangups {}
}

impl Hangups {
    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = &mut self.signal
            && signal.recv().await.is_some()
        {
            return;
        }
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    fn load(text: &str) -> Config {
        load_str("portico.toml", text, &Env::default()).unwrap()
    }

    #[test]
    fn only_the_sections_applied_at_start_need_a_restart() {
        let started = load("[upstreams.a]\nurl = \"http://127.0.0.1:1\"\n");
        let routes_changed = load(
            "[upstreams.b]\nurl = \"http://127.0.0.1:2\"\n[[routes]]\nprefix = \"/b\"\nupstream = \"b\"\n",
        );
        assert!(needs_restart(&started, &routes_changed).is_empty());
        let server_changed = load(
            "[server]\nlisten = \"127.0.0.1:9999\"\n[auth]\naccess_token_ttl = \"1h\"\n[upstreams.a]\nurl = \"http://127.0.0.1:1\"\n",
        );
        assert_eq!(
            needs_restart(&started, &server_changed),
            ["[server]", "[auth]"]
        );
    }

    #[test]
    fn health_checked_upstreams_are_those_with_a_health_path() {
        let config = load(
            "[upstreams.a]\nurl = \"http://127.0.0.1:1\"\nhealth = \"/health\"\n[upstreams.b]\nurl = \"http://127.0.0.1:2\"\n",
        );
        assert_eq!(health_checked(&config), ["a"]);
    }
}
