//! The checked configuration: every section of `portico.toml` as typed values.
//!
//! Each section type has a `read` function that takes its section of the value tree and
//! returns the checked value, recording every problem on the way; defaults live there, next
//! to the field they belong to (and in `docs/configuration.md`, which a test keeps honest).
//! Cross-references (a route's upstream, the default role) are checked while reading, against
//! the names read before.
//!
//! # Layout
//! - this module: [`Config`], `[server]`, `[[aliases]]`, `[database]`, `[redis]`.
//! - [`telemetry`]: `[telemetry]` (span export over OTLP).
//! - [`auth`]: `[auth]`, `[auth.providers.*]`, `[[auth.clients]]`, `[roles.*]`.
//! - [`realtime`]: `[realtime]`, `[realtime.actions]`, `[realtime.namespaces.*]`.
//! - [`gateway`]: `[upstreams.*]`, `[[routes]]`, `[cors]`.

pub mod auth;
pub mod gateway;
pub mod realtime;
pub mod telemetry;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use portico_core::config::ByteSize;

use super::problem::Problems;
use super::reader::Leaf;
use super::reader::{Positive, Section};
use super::tree::Node;
use super::types::{Schemes, Url, UrlPath, optional_url};

pub use auth::{AuthConfig, ClientConfig, ProviderConfig, ProviderEndpoints, RoleConfig};
pub use gateway::{
    CorsConfig, FallbackConfig, RateLimitConfig, RouteConfig, RouteCorsConfig, UpstreamConfig,
};
pub use realtime::{ActionConfig, NamespaceConfig, RealtimeConfig, UpstreamCheck};
pub use telemetry::TelemetryConfig;

/// The whole configuration, checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[server]`: the public listener and the data directory.
    pub server: ServerConfig,
    /// `[[aliases]]`: other paths for Portico's own endpoints (`/api/auth` → `/auth`).
    pub aliases: Vec<AliasConfig>,
    /// `[database]`: where accounts and sessions are stored.
    pub database: DatabaseConfig,
    /// `[redis]`: the shared cache and pub/sub, when scaled out.
    pub redis: RedisConfig,
    /// `[auth]`: tokens, providers and service clients.
    pub auth: AuthConfig,
    /// `[roles.<name>]`: role → permissions. Always holds `user` and `admin` unless redefined.
    pub roles: BTreeMap<String, RoleConfig>,
    /// `[realtime]`: the WebSocket hub.
    pub realtime: RealtimeConfig,
    /// `[upstreams.<name>]`: the services behind the gateway, by name.
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// `[[routes]]`: the gateway's routes, in file order.
    pub routes: Vec<RouteConfig>,
    /// `[cors]`: the CORS of every route that does not say otherwise; none when absent.
    pub cors: Option<CorsConfig>,
    /// `[telemetry]`: span export over OTLP.
    pub telemetry: TelemetryConfig,
}

impl Config {
    /// Reads the whole tree. Sections that others refer to are read first.
    pub(crate) fn read(root: &Node, problems: &mut Problems) -> Option<Config> {
        let mut top = Section::root(root, problems);
        top.declare(&[
            "server",
            "aliases",
            "database",
            "redis",
            "auth",
            "roles",
            "realtime",
            "upstreams",
            "routes",
            "cors",
            "telemetry",
        ]);

        // Every declared upstream counts for references, even one with problems of its own,
        // so a bad upstream is reported once, not again at each route that names it.
        let declared = gateway::read_upstreams(&mut top, problems);
        let upstream_names: BTreeSet<&str> = declared.keys().map(String::as_str).collect();
        let roles = auth::read_roles(&mut top, problems);
        let role_names: BTreeSet<&str> = roles.keys().map(String::as_str).collect();

        let server = ServerConfig::read(top.section("server", problems), problems);
        let aliases = read_aliases(&mut top, problems);
        let database = DatabaseConfig::read(top.section("database", problems), problems);
        let redis = RedisConfig::read(top.section("redis", problems), problems);
        let auth = AuthConfig::read(top.section("auth", problems), &role_names, problems);
        let realtime =
            RealtimeConfig::read(top.section("realtime", problems), &upstream_names, problems);
        let routes = gateway::read_routes(&mut top, &upstream_names, problems);
        let cors = if top.has("cors") {
            let mut c = top.section("cors", problems);
            let cors = gateway::read_cors(&mut c, problems);
            c.finish(problems);
            cors
        } else {
            None
        };
        let telemetry = TelemetryConfig::read(top.section("telemetry", problems), problems);
        top.finish(problems);

        let mut upstreams = BTreeMap::new();
        for (name, upstream) in declared {
            upstreams.insert(name, upstream?);
        }
        Some(Config {
            server,
            aliases,
            database,
            redis,
            auth: auth?,
            roles,
            realtime: realtime?,
            upstreams,
            routes: routes?,
            cors,
            telemetry,
        })
    }
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// `listen` (default `127.0.0.1:8080`): the public listener.
    pub listen: SocketAddr,
    /// `data_dir` (default `./portico-data`): the SQLite file and generated keys.
    pub data_dir: PathBuf,
    /// `max_body` (default `10MiB`): the largest request body accepted (413 REQ_002 beyond).
    pub max_body: ByteSize,
    /// `drain_timeout` (default `30s`): how long a graceful shutdown waits for requests.
    pub drain_timeout: Duration,
    /// `workers` (default `0`: one per core): how many threads accept and serve the public
    /// listener's connections, each with a single-threaded runtime.
    pub workers: usize,
}

/// `server.listen`'s default.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    8080,
));

impl ServerConfig {
    fn read(mut s: Section<'_>, problems: &mut Problems) -> Self {
        let listen = s.or("listen", DEFAULT_LISTEN, problems);
        let data_dir = s.or("data_dir", PathBuf::from("./portico-data"), problems);
        let max_body = s.or("max_body", ByteSize(10 * 1024 * 1024), problems);
        let drain_timeout = s
            .or("drain_timeout", Positive(Duration::from_secs(30)), problems)
            .0;
        let workers = s.or("workers", 0, problems);
        s.finish(problems);
        Self {
            listen,
            data_dir,
            max_body,
            drain_timeout,
            workers,
        }
    }
}

/// One `[[aliases]]` entry: requests under `prefix` are served as if they were under `to`,
/// one of Portico's own paths (seed 004's `/api/auth/login` is `/auth/login`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasConfig {
    /// `prefix` (required): the path prefix clients use, matched on whole segments.
    pub prefix: UrlPath,
    /// `to` (required): the Portico path it stands for, under one of Portico's own prefixes
    /// (`crate::front::ROUTER_PREFIXES`: `/auth`, `/health`, `/status`, `/metrics`,
    /// `/.well-known`, `/ws`, `/internal`, `/dashboard`, `/openapi.json`).
    pub to: UrlPath,
}

/// `[[aliases]]`, each checked: a `to` that is not Portico's own path, or a `prefix` that is
/// (it would hide that endpoint), or seen twice, is a problem.
fn read_aliases(top: &mut Section<'_>, problems: &mut Problems) -> Vec<AliasConfig> {
    let mut seen = BTreeSet::new();
    let mut aliases = Vec::new();
    for mut s in top.array_sections("aliases", problems) {
        let prefix = s.required_with("prefix", problems, |n| {
            let prefix = UrlPath::from_node(n)?;
            let normal = prefix.as_str().trim_end_matches('/').to_owned();
            if crate::front::router_owns(&normal) {
                return Err(format!(
                    "{:?} is one of Portico's own paths: an alias cannot hide it",
                    prefix.as_str()
                ));
            }
            if !seen.insert(normal) {
                return Err(format!("duplicate alias prefix {:?}", prefix.as_str()));
            }
            Ok(prefix)
        });
        let to = s.required_with("to", problems, |n| {
            let to = UrlPath::from_node(n)?;
            if crate::front::router_owns(to.as_str().trim_end_matches('/')) {
                Ok(to)
            } else {
                Err(format!(
                    "{:?} is not under one of Portico's own paths ({})",
                    to.as_str(),
                    crate::front::ROUTER_PREFIXES.join(", ")
                ))
            }
        });
        s.finish(problems);
        if let Some((prefix, to)) = prefix.zip(to) {
            aliases.push(AliasConfig { prefix, to });
        }
    }
    aliases
}

/// `[database]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// `url` (default empty → SQLite in `server.data_dir`): `postgres://…` or `sqlite:…`.
    pub url: Option<Url>,
}

impl DatabaseConfig {
    fn read(mut s: Section<'_>, problems: &mut Problems) -> Self {
        let url = s
            .parse_with("url", problems, |n| optional_url(n, Schemes::Database))
            .flatten();
        s.finish(problems);
        Self { url }
    }
}

/// `[redis]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `url` (default empty → in-process cache and pub/sub): `redis://…` or `rediss://…`.
    pub url: Option<Url>,
}

impl RedisConfig {
    fn read(mut s: Section<'_>, problems: &mut Problems) -> Self {
        let url = s
            .parse_with("url", problems, |n| optional_url(n, Schemes::Redis))
            .flatten();
        s.finish(problems);
        Self { url }
    }
}
