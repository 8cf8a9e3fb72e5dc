//! `portico up`: everything in one process, on the public listener (and `portico auth`,
//! `portico gateway`, `portico realtime`: one component each, for scale-out).
//!
//! Builds the tower stack of `docs/ARCHITECTURE.md` (request id → metrics → envelope → body
//! limit) around the operational endpoints (`/health/live`, `/health`, `/health/ready`,
//! `/metrics`, `/status/services`, `/openapi.json`) with the REQ_003 fallback, binds
//! `server.listen` (or `--listen`), and serves until SIGTERM or Ctrl-C, then drains for
//! `server.drain_timeout`. Meanwhile SIGHUP or an edit of the config file reloads the
//! gateway ([`crate::reload`]).

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use portico_core::clock::SystemClock;
use portico_core::error::{envelope_layer, fallback_not_found};
use portico_core::health::{CheckResult, HealthCheck, HealthRegistry};
use portico_core::request_id::RequestIdLayer;
use portico_core::shutdown::{self, Shutdown};
use portico_core::telemetry::{
    self, LogFormat, Metrics, OtlpExport, TelemetryError, http_metrics_layer,
};
use tower_http::limit::RequestBodyLimitLayer;

use crate::CliError;
use crate::alias::Aliased;
use crate::cli::LogFormatArg;
use crate::config::{Config, ConfigSource};
use crate::front::Front;
use crate::gateway::InProcessAuth;
use crate::reload::{self, GatewayCell, Reloader};
use crate::status::ServiceStatus;
use portico_gateway::identity::Authenticator;

/// How long one health check may take before it counts as unhealthy.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the dashboard publishes the live status while a connection subscribes to it.
const DASHBOARD_LIVE_EVERY: Duration = Duration::from_secs(2);

/// How often histogram samples are compacted when nobody scrapes `/metrics`.
const METRICS_UPKEEP: Duration = Duration::from_secs(10);

/// What `portico up` takes besides the config.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// `--listen`: overrides `server.listen` (and `PORTICO_LISTEN`).
    pub listen: Option<SocketAddr>,
    /// `--log-format`.
    pub log_format: LogFormatArg,
    /// `--log-level`.
    pub log_level: String,
    /// Where the config came from, for the start-up log.
    pub source: ConfigSource,
    /// Which components this process runs.
    pub role: Role,
}

/// Which components a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `portico up`: auth and the gateway in one process.
    Up,
    /// `portico auth`: the auth component alone.
    Auth,
    /// `portico gateway`: the gateway alone, asking the auth component at `[auth] url`.
    Gateway,
    /// `portico realtime`: the WebSocket hub alone, asking the auth component at `[auth] url`.
    Realtime,
}

impl Role {
    /// The command's name, for log lines.
    pub fn command(self) -> &'static str {
        match self {
            Role::Up => "up",
            Role::Auth => "auth",
            Role::Gateway => "gateway",
            Role::Realtime => "realtime",
        }
    }
}

/// Why `portico up` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The listener could not be bound (port in use, address not local, …).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(io::Error),
    /// Logging or the Prometheus recorder could not be set up.
    #[error("cannot set up telemetry: {0}")]
    Telemetry(String),
    /// The server failed while running.
    #[error("server error: {0}")]
    Serve(io::Error),
    /// The auth component (database, signing keys) could not start.
    #[error("{0}")]
    Auth(#[from] crate::auth::AuthStartError),
    /// The gateway could not start.
    #[error("cannot start the gateway: {0}")]
    Gateway(String),
    /// The realtime hub could not start.
    #[error("cannot start the realtime hub: {0}")]
    Realtime(String),
}

/// Runs `portico up` until a shutdown signal; blocks the calling thread.
pub fn run(config: Config, options: UpOptions) -> Result<(), CliError> {
    let format = match options.log_format {
        LogFormatArg::Text => LogFormat::Text,
        LogFormatArg::Json => LogFormat::Json,
    };
    let command = options.role.command();
    let failed = move |source| CliError::Up { command, source };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(UpError::Runtime(e)))?;
    let export = config
        .telemetry
        .otlp_endpoint
        .as_ref()
        .map(|endpoint| OtlpExport {
            endpoint: endpoint.as_str().to_owned(),
            service_name: config.telemetry.service_name.clone(),
            runtime: runtime.handle().clone(),
        });
    let tracing = telemetry::init_tracing_with_export(format, &options.log_level, export).map_err(
        |e| match e {
            TelemetryError::InvalidFilter { .. } => CliError::Usage(format!("--log-level: {e}")),
            other => failed(UpError::Telemetry(other.to_string())),
        },
    )?;
    let served = runtime.block_on(serve(config, options));
    // Spans still queued go out now, on the runtime that is still alive (bounded by the
    // exporter's timeout).
    tracing.shutdown();
    served.map_err(failed)
}

async fn serve(config: Config, options: UpOptions) -> Result<(), UpError> {
    let data_dir = config.server.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|source| UpError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    let addr = options.listen.unwrap_or(config.server.listen);
    let listener = bind(addr).map_err(|source| UpError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| UpError::Bind { addr, source })?;

    let metrics = Metrics::install().map_err(|e| UpError::Telemetry(e.to_string()))?;
    let health = HealthRegistry::new(HEALTH_CHECK_TIMEOUT);
    health.register(std::sync::Arc::new(DataDirCheck {
        path: data_dir.clone(),
    }));
    let role = options.role;
    let shutdown = Shutdown::new();
    let mut components = Router::new();
    // Whether to say how to create the first admin (no user holds the `admin` role yet).
    let mut first_admin = false;
    // The in-process auth service, for the dashboard (`portico up` only).
    let mut auth_service = None;
    let authenticator: Option<Arc<dyn Authenticator>> = match role {
        Role::Up | Role::Auth => {
            let auth = crate::auth::start(&config, SystemClock::shared(), &health).await?;
            first_admin = match auth.has_admin().await {
                Ok(has) => !has,
                Err(e) => {
                    tracing::warn!("cannot tell whether an admin exists: {e}");
                    false
                }
            };
            components = components.merge(portico_auth::api::router(auth.clone()));
            if role == Role::Up {
                auth_service = Some(auth.clone());
            }
            (role == Role::Up).then(|| Arc::new(InProcessAuth::new(auth)) as Arc<dyn Authenticator>)
        }
        Role::Gateway | Role::Realtime => {
            let remote = crate::gateway::remote_auth(&config).map_err(|e| match role {
                Role::Realtime => UpError::Realtime(e),
                _ => UpError::Gateway(e),
            })?;
            // Critical: without auth no credential can be checked that is not cached.
            let live = format!("{}/health/live", remote.settings().auth_url);
            let check = portico_gateway::health::HttpCheck::new("auth", true, &live)
                .map_err(|e| UpError::Gateway(e.to_string()))?;
            health.register(Arc::new(check));
            Some(Arc::new(remote))
        }
    };
    // The key X-Portico-Identity is signed with, read (or made) once for the gateway and the
    // hub's routed actions.
    let identity_key = match &authenticator {
        Some(_) => Some(
            crate::gateway::identity_key(&data_dir).map_err(|e| match role {
                Role::Realtime => UpError::Realtime(e),
                _ => UpError::Gateway(e),
            })?,
        ),
        None => None,
    };
    // The hub runs in `up` and `realtime`, the gateway in `up` and `gateway`.
    let hub_authenticator = authenticator
        .clone()
        .filter(|_| matches!(role, Role::Up | Role::Realtime));
    let authenticator = authenticator.filter(|_| role != Role::Realtime);
    // The gateway's circuit breakers, by upstream: the hub's routed actions use the same
    // ones, so `/status/services` and both components see one circuit per upstream.
    let mut breakers = BTreeMap::new();
    let mut reloader = None;
    let mut front_cell = None;
    let status = match authenticator.zip(identity_key.clone()) {
        Some((authenticator, identity_key)) => {
            let mut settings = crate::gateway::settings(&config);
            settings.identity_key = Some(identity_key.clone());
            let gateway = portico_gateway::Gateway::new(
                settings,
                authenticator.clone(),
                SystemClock::shared(),
            )
            .map_err(|e| UpError::Gateway(e.to_string()))?;
            gateway.register_health(&health);
            tracing::info!(
                "portico {}: gateway serving {} route{} to {} upstream{}",
                role.command(),
                config.routes.len(),
                crate::plural(config.routes.len()),
                config.upstreams.len(),
                crate::plural(config.upstreams.len()),
            );
            // Served through a cell so a config reload can swap the gateway (see reload.rs).
            let cell = GatewayCell::new(&gateway);
            components = components.merge(cell.router());
            front_cell = Some(cell.clone());
            breakers = gateway.breakers();
            let status = ServiceStatus::from_breakers(gateway.breakers());
            let running = reload::Running {
                authenticator,
                identity_key,
                cell,
                health: health.clone(),
                status: status.clone(),
            };
            reloader = Some(Reloader::new(
                options.source.clone(),
                config.clone(),
                running,
            ));
            status
        }
        None => {
            components = components.fallback(fallback_not_found);
            ServiceStatus::new(&config)
        }
    };
    // The dashboard's live status channel exists where the dashboard runs.
    let namespaces = match auth_service {
        Some(_) => vec![portico_dashboard::status::namespace()],
        None => Vec::new(),
    };
    let mut running_hub = None;
    if let Some(authenticator) = hub_authenticator {
        let hub = crate::realtime::hub(
            &config,
            authenticator,
            identity_key,
            &breakers,
            namespaces,
            shutdown.clone(),
        )
        .await
        .map_err(UpError::Realtime)?;
        tracing::info!(
            "portico {}: realtime hub on /ws ({} broker, {} namespace{}, {} routed action{})",
            role.command(),
            hub.broker_kind(),
            config.realtime.namespaces.len(),
            crate::plural(config.realtime.namespaces.len()),
            config.realtime.actions.len(),
            crate::plural(config.realtime.actions.len()),
        );
        health.register(hub.health_check());
        components = components.merge(hub.router());
        running_hub = Some(hub);
    }
    let has_dashboard = auth_service.is_some();
    if let Some(auth) = auth_service {
        let dashboard = portico_dashboard::Dashboard::new(portico_dashboard::DashboardParts {
            auth,
            health: health.clone(),
            services: Arc::new(status.clone()),
            hub: running_hub,
            agent_action: config.realtime.actions.contains_key("start_agent"),
            live_every: DASHBOARD_LIVE_EVERY,
            shutdown: shutdown.clone(),
            clock: SystemClock::shared(),
        });
        dashboard.spawn_live_status();
        components = components.merge(dashboard.router());
        tracing::info!("portico {}: dashboard on /dashboard/", role.command());
    }
    let app = router(&config, role, health, &metrics, status, components);

    // Shown absolute so the operator knows exactly where the store and keys are.
    let shown_dir = std::fs::canonicalize(&data_dir).unwrap_or_else(|_| data_dir.clone());
    let command = role.command();
    tracing::info!(
        "portico {command}: config from {}",
        options.source.describe()
    );
    tracing::info!("portico {command}: data directory {}", shown_dir.display());
    tracing::info!("portico {command}: listening on http://{bound}");
    if has_dashboard {
        tracing::info!("portico {command}: dashboard at http://{bound}/dashboard/");
    }
    if first_admin {
        tracing::info!(
            "portico {command}: no admin yet; create the first (from this directory, with the \
             same --config): echo 'a long password' | portico admin user create \
             --email you@example.com --password-stdin --role admin"
        );
    }

    shutdown.listen_for_signals();
    reload::spawn(reloader, shutdown.clone());
    metrics.spawn_upkeep(METRICS_UPKEEP, shutdown.clone());
    let workers = match config.server.workers {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        n => n,
    };
    tracing::info!(
        "portico {command}: {workers} serving thread{}",
        crate::plural(workers)
    );
    // serve_workers logs the signal, the drain and its deadline.
    let drain = config.server.drain_timeout;
    match front_cell {
        // Proxied paths skip the router (see front.rs).
        Some(cell) => {
            let front = Aliased::new(Front::new(app, cell, max_body(&config)), &config.aliases);
            shutdown::serve_workers(listener, front, shutdown, drain, workers).await
        }
        None => {
            let app = Aliased::new(app, &config.aliases);
            shutdown::serve_workers(listener, app, shutdown, drain, workers).await
        }
    }
    .map_err(UpError::Serve)?;
    tracing::info!("portico {command}: stopped");
    Ok(())
}

/// The public listener on `addr`, with the backlog tokio's own `bind` uses (1024; std's
/// `TcpListener::bind` asks for 128, too few for a burst of connecting clients).
fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As tokio's and std's `bind` do on Unix: a restart may bind while old connections linger.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)?.into_std()
}

/// The public router: the operational endpoints, `/openapi.json` (the part `role` serves)
/// and the `components`' routes (auth, the gateway — whose fallback proxies every routed
/// path and answers REQ_003 for the rest — or, without the gateway, REQ_003's fallback),
/// inside the whole tower stack.
pub fn router(
    config: &Config,
    role: Role,
    health: HealthRegistry,
    metrics: &Metrics,
    status: ServiceStatus,
    components: Router,
) -> Router {
    let max_body = max_body(config);
    portico_core::health::routes(health)
        .merge(metrics.routes())
        .merge(status.routes())
        .merge(crate::openapi::routes(role))
        .merge(components)
        // Outermost first: request id → metrics → envelope → body limit → handler. One
        // `layer` call with the whole stack: axum boxes each route once per `layer` call and
        // clones the boxes on every request, so five calls cost five boxes per request.
        .layer(
            tower::ServiceBuilder::new()
                .layer(RequestIdLayer::new())
                .layer(http_metrics_layer())
                .layer(envelope_layer())
                // The limit's body type, made axum's again (as `Router::layer` does).
                .map_response(axum::response::IntoResponse::into_response)
                .layer(RequestBodyLimitLayer::new(max_body))
                .layer(DefaultBodyLimit::max(max_body)),
        )
}

/// `server.max_body` as a length.
fn max_body(config: &Config) -> usize {
    usize::try_from(config.server.max_body.as_u64()).unwrap_or(usize::MAX)
}

/// `/health`'s check that the data directory accepts writes; critical, since the store and
/// the signing keys live there.
struct DataDirCheck {
    path: PathBuf,
}

impl HealthCheck for DataDirCheck {
    fn name(&self) -> &str {
        "data_dir"
    }

    fn critical(&self) -> bool {
        true
    }

    fn check(&self) -> Pin<Box<dyn Future<Output = CheckResult> + Send + '_>> {
        let path = self.path.clone();
        Box::pin(async move {
            // File system calls block: keep them off the async workers.
            match tokio::task::spawn_blocking(move || probe_writable(&path)).await {
                Ok(Ok(())) => CheckResult::healthy(),
                Ok(Err(e)) => CheckResult::unhealthy(format!("not writable: {}", e.kind())),
                Err(_) => CheckResult::unhealthy("the check did not finish"),
            }
        })
    }
}

fn probe_writable(dir: &Path) -> io::Result<()> {
    let probe = dir.join(".portico-health-probe");
    std::fs::write(&probe, b"ok")?;
    std::fs::remove_file(&probe)
}
