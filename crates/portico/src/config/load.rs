//! The loading pipeline: file → tree → env overrides → `${NAME}` → checked [`Config`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::env::{self, Env};
use super::problem::{ConfigErrors, Location, Problem, Problems};
use super::schema::Config;
use super::substitution;
use super::tree::{self, Node};

/// The file looked for in the working directory when `--config` is not given.
pub const DEFAULT_FILE: &str = "portico.toml";

/// Where the configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A TOML file.
    File(PathBuf),
    /// No file: the built-in defaults (plus env overrides).
    Defaults,
}

impl ConfigSource {
    /// The file named by `--config`, else `./portico.toml` when it exists, else the defaults.
    pub fn resolve(explicit: Option<&Path>) -> Self {
        match explicit {
            Some(path) => ConfigSource::File(path.to_owned()),
            None if Path::new(DEFAULT_FILE).is_file() => ConfigSource::File(DEFAULT_FILE.into()),
            None => ConfigSource::Defaults,
        }
    }

    /// The file's path as given, or `built-in defaults`.
    pub fn describe(&self) -> String {
        match self {
            ConfigSource::File(path) => path.display().to_string(),
            ConfigSource::Defaults => "built-in defaults".to_owned(),
        }
    }
}

/// Loads and checks the configuration from `source` and `env`.
pub fn load(source: &ConfigSource, env: &Env) -> Result<Config, ConfigErrors> {
    match source {
        ConfigSource::File(path) => {
            let name = path.display().to_string();
            match std::fs::read_to_string(path) {
                Ok(text) => load_str(&name, &text, env),
                Err(e) => {
                    let mut problems = Problems::new(name.as_str().into());
                    problems.push(Problem {
                        location: Location::Whole {
                            file: name.as_str().into(),
                        },
                        key: String::new(),
                        message: format!("cannot read the config file: {e}"),
                    });
                    Err(problems.into_errors())
                }
            }
        }
        ConfigSource::Defaults => run(Arc::from("built-in defaults"), None, env),
    }
}

/// Loads and checks the configuration in `text`, reporting problems against `file_name`.
pub fn load_str(file_name: &str, text: &str, env: &Env) -> Result<Config, ConfigErrors> {
    run(file_name.into(), Some(text), env)
}

fn run(file: Arc<str>, text: Option<&str>, env: &Env) -> Result<Config, ConfigErrors> {
    let mut problems = Problems::new(file);
    let mut root = match text {
        Some(text) => match tree::parse_file(text, &mut problems) {
            Some(root) => root,
            // A file that does not parse has nothing more worth checking.
            None => return Err(problems.into_errors()),
        },
        None => Node::empty_table(),
    };
    env::apply_overrides(&mut root, env, &mut problems);
    env::apply_fallbacks(&mut root, env, &mut problems);
    substitution::substitute(
        &mut root,
        "",
        &|name| env.get(name).map(str::to_owned),
        &mut problems,
    );
    match Config::read(&root, &mut problems) {
        Some(config) => problems.finish(config),
        None => Err(problems.into_errors()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use portico_resilience::Preset;

    use super::*;
    use crate::config::schema::{FallbackConfig, ProviderEndpoints};
    use crate::config::types::{AuthMode, RateLimitKey};

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        load_str("portico.toml", text, &Env::from_vars(env.iter().copied()))
    }

    fn problems(text: &str, env: &[(&str, &str)]) -> Vec<String> {
        load(text, env)
            .unwrap_err()
            .problems()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn defaults_are_designs() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.server.data_dir, PathBuf::from("./portico-data"));
        assert_eq!(c.server.max_body.as_u64(), 10 * 1024 * 1024);
        assert_eq!(c.server.drain_timeout, Duration::from_secs(30));
        assert_eq!(c.server.workers, 0, "one serving thread per core");
        assert_eq!(c.database.url, None);
        assert_eq!(c.redis.url, None);
        assert_eq!(c.auth.issuer.as_str(), "http://127.0.0.1:8080");
        assert_eq!(c.auth.access_token_ttl, Duration::from_secs(15 * 60));
        assert_eq!(
            c.auth.refresh_token_ttl,
            Duration::from_secs(30 * 24 * 3600)
        );
        assert_eq!(
            c.auth.redirect_allowlist[0].as_str(),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(c.auth.default_role, "user");
        assert_eq!(
            c.auth.password_hash_priority,
            crate::config::types::PasswordHashPriority::Idle
        );
        assert_eq!(c.roles["admin"].permissions, ["*"]);
        assert!(c.roles["user"].permissions.is_empty());
        assert_eq!(c.realtime.heartbeat_interval, Duration::from_secs(30));
        assert_eq!(c.realtime.max_frame.as_u64(), 64 * 1024);
        assert_eq!(c.realtime.history_size, 100);
        assert_eq!(c.realtime.history_ttl, Duration::from_secs(600));
    }

    #[test]
    fn env_overrides_win_over_the_file_and_shortcuts_work() {
        let text =
            "[auth]\naccess_token_ttl = \"1h\"\n[upstreams.etl]\nurl = \"http://127.0.0.1:1\"\n";
        let c = load(
            text,
            &[
                ("PORTICO_AUTH__ACCESS_TOKEN_TTL", "5m"),
                ("PORTICO_UPSTREAMS__ETL__TIMEOUT", "2s"),
                ("PORTICO_UPSTREAMS__ETL__MAX_RETRIES", "4"),
                ("PORTICO_LISTEN", "0.0.0.0:9000"),
                ("PORTICO_REDIS_URL", "redis://127.0.0.1:6379"),
                ("PORTICO_ROLES__OPS__PERMISSIONS", "[\"ops.read\"]"),
                ("PORTICO_TEST_DATABASE_URL", "not a url"),
                ("PORTICO_LOG_FORMAT", "json"),
            ],
        )
        .unwrap();
        assert_eq!(c.auth.access_token_ttl, Duration::from_secs(300));
        assert_eq!(c.upstreams["etl"].policy.timeout, Duration::from_secs(2));
        assert_eq!(c.upstreams["etl"].policy.max_attempts.get(), 4);
        assert_eq!(c.server.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(c.redis.url.unwrap().scheme(), "redis");
        assert_eq!(c.roles["ops"].permissions, ["ops.read"]);
    }

    #[test]
    fn references_are_substituted_in_file_and_env_values() {
        let text = "[upstreams.etl]\nurl = \"http://${ETL_HOST}:9002\"\n";
        let c = load(
            text,
            &[
                ("ETL_HOST", "10.0.0.7"),
                ("PORTICO_UPSTREAMS__ETL__INTERNAL_TOKEN", "${ETL_KEY}"),
                ("ETL_KEY", "k-123"),
            ],
        )
        .unwrap();
        assert_eq!(c.upstreams["etl"].url.as_str(), "http://10.0.0.7:9002");
        assert_eq!(
            c.upstreams["etl"].internal_token.as_ref().unwrap().expose(),
            "k-123"
        );
    }

    #[test]
    fn fields_override_the_preset() {
        let text = "[upstreams.pay]\nurl = \"https://pay.internal\"\npreset = \"billing\"\ntimeout = \"8s\"\n";
        let c = load(text, &[]).unwrap();
        let pay = &c.upstreams["pay"];
        assert_eq!(pay.preset, Some(Preset::Billing));
        assert_eq!(pay.policy.timeout, Duration::from_secs(8));
        assert_eq!(pay.policy.max_attempts.get(), 2);
        assert_eq!(pay.policy.failure_threshold.get(), 10);
        assert_eq!(pay.internal_token_header.as_str(), "x-internal-auth");
    }

    #[test]
    fn routes_are_read_into_checked_types() {
        let text = r#"
[upstreams.etl]
url = "http://127.0.0.1:9002"
[[routes]]
prefix = "/api/etl"
upstream = "etl"
rate_limit = { per = "api_key", requests = 10, window = "1m" }
fallback = { status = 503, json = { busy = true, n = [1, 2.5] } }
[[routes]]
prefix = "/public"
upstream = "etl"
auth = "none"
fallback = { cache = true }
cache = { ttl = "30s" }
"#;
        let c = load(text, &[]).unwrap();
        let etl = &c.routes[0];
        assert_eq!(etl.auth, AuthMode::Required);
        let limit = etl.rate_limit.unwrap();
        assert_eq!(
            (limit.per, limit.requests.get(), limit.window),
            (RateLimitKey::ApiKey, 10, Duration::from_secs(60))
        );
        let Some(FallbackConfig::Static { status, json }) = &etl.fallback else {
            panic!("{:?}", etl.fallback)
        };
        assert_eq!(status.as_u16(), 503);
        assert_eq!(
            json.as_ref().unwrap(),
            &serde_json::json!({"busy": true, "n": [1, 2.5]})
        );
        assert_eq!(c.routes[1].fallback, Some(FallbackConfig::Cache));
        assert_eq!(etl.cache, None);
        assert_eq!(
            c.routes[1].cache.map(|c| c.ttl),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn a_route_cache_needs_a_positive_ttl() {
        let text = "[upstreams.etl]\nurl = \"http://127.0.0.1:9002\"\n[[routes]]\nprefix = \"/a\"\nupstream = \"etl\"\ncache = { ttl = \"0s\" }\n[[routes]]\nprefix = \"/b\"\nupstream = \"etl\"\ncache = { max_age = \"5s\" }\n[[routes]]\nprefix = \"/c\"\nupstream = \"etl\"\ncache = \"30s\"\n";
        let p = problems(text, &[]);
        assert_eq!(
            p,
            [
                "portico.toml:6: routes[0].cache.ttl: must be greater than 0",
                "portico.toml:10: routes[1].cache.ttl: missing (required)",
                "portico.toml:10: routes[1].cache.max_age: unknown key (expected one of: ttl)",
                "portico.toml:14: routes[2].cache: expected a table, found string",
            ]
        );
    }

    #[test]
    fn providers_resolve_presets_discovery_and_explicit_endpoints() {
        let text = r#"
[auth.providers.google]
client_id = "g"
client_secret = "s"
[auth.providers.github]
client_id = "h"
client_secret = "s"
[auth.providers.gitlab]
client_id = "l"
client_secret = "s"
authorize_url = "https://gitlab.example/oauth/authorize"
token_url = "https://gitlab.example/oauth/token"
userinfo_url = "https://gitlab.example/api/v4/user"
"#;
        let c = load(text, &[]).unwrap();
        let p = &c.auth.providers;
        assert!(
            matches!(&p["google"].endpoints, ProviderEndpoints::Discovery { issuer } if issuer.as_str() == "https://accounts.google.com")
        );
        assert!(matches!(
            &p["github"].endpoints,
            ProviderEndpoints::Explicit { .. }
        ));
        assert!(
            matches!(&p["gitlab"].endpoints, ProviderEndpoints::Explicit { token_url, .. } if token_url.as_str().ends_with("/oauth/token"))
        );
    }

    #[test]
    fn a_provider_without_endpoints_or_with_half_of_them_is_reported() {
        let text = "[auth.providers.okta]\nclient_id = \"o\"\nclient_secret = \"s\"\n\n[auth.providers.acme]\nclient_id = \"a\"\nclient_secret = \"s\"\ntoken_url = \"https://acme/token\"\n";
        let p = problems(text, &[]);
        assert!(
            p.iter()
                .any(|l| l.starts_with("portico.toml:1: auth.providers.okta: needs issuer")),
            "{p:?}"
        );
        assert!(p.iter().any(|l| l == "portico.toml:5: auth.providers.acme.authorize_url: missing (required with explicit endpoints)"), "{p:?}");
    }

    #[test]
    fn password_hash_priority_is_one_of_its_names() {
        let c = load("[auth]\npassword_hash_priority = \"low\"\n", &[]).unwrap();
        assert_eq!(
            c.auth.password_hash_priority,
            crate::config::types::PasswordHashPriority::Low
        );
        let p = problems("[auth]\npassword_hash_priority = \"realtime\"\n", &[]);
        assert_eq!(
            p,
            [
                "portico.toml:2: auth.password_hash_priority: unknown value \"realtime\" (expected one of: idle, low)"
            ]
        );
    }

    #[test]
    fn secrets_do_not_show_in_debug_output_or_problems() {
        let text = "[[auth.clients]]\nid = \"etl\"\nsecret = \"client-s3cret\"\n[upstreams.a]\nurl = \"http://127.0.0.1:1\"\ninternal_token = \"token-s3cret\"\n[database]\nurl = \"postgres://app:db-s3cret@db/portico\"\n";
        let c = load(text, &[]).unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        let bad = problems(
            "[database]\nurl = \"mysql://app:db-s3cret@db/x\"\n[[auth.clients]]\nid = \"x\"\nsecret = 42\n",
            &[],
        );
        assert!(!bad.concat().contains("s3cret"), "{bad:?}");
    }

    #[test]
    fn cross_references_are_checked() {
        let text = r#"
[auth]
default_role = "member"
[realtime.actions]
start_agent = { upstream = "agent", path = "/start" }
[realtime.namespaces.session]
check = { upstream = "collab", path = "check" }
"#;
        let p = problems(text, &[]);
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(
            p[0].starts_with("portico.toml:3: auth.default_role: role \"member\" is not defined"),
            "{p:?}"
        );
        assert!(
            p[1].starts_with(
                "portico.toml:5: realtime.actions.start_agent.upstream: no upstream named \"agent\""
            ),
            "{p:?}"
        );
        assert!(
            p[2].starts_with("portico.toml:7: realtime.namespaces.session.check.upstream"),
            "{p:?}"
        );
        assert!(
            p[3].starts_with(
                "portico.toml:7: realtime.namespaces.session.check.path: \"check\" must start with"
            ),
            "{p:?}"
        );
    }

    #[test]
    fn a_broken_upstream_is_reported_once_not_again_at_its_routes() {
        let text =
            "[upstreams.etl]\ntimeout = \"2s\"\n[[routes]]\nprefix = \"/a\"\nupstream = \"etl\"\n";
        assert_eq!(
            problems(text, &[]),
            ["portico.toml:1: upstreams.etl.url: missing (required)"]
        );
    }

    #[test]
    fn type_mismatches_and_unknown_sections_are_all_reported() {
        let text = "server = 3\n[realtime]\nhistory_size = -1\nmax_frame = true\n[extra]\n";
        let p = problems(text, &[]);
        assert_eq!(
            p,
            [
                "portico.toml:1: server: expected a table, found integer",
                "portico.toml:3: realtime.history_size: -1 is out of range (must be 0 or more)",
                "portico.toml:4: realtime.max_frame: expected a size like \"10MiB\", found boolean",
                "portico.toml:5: extra: unknown key (expected one of: server, aliases, database, redis, auth, roles, realtime, upstreams, routes, cors, telemetry)",
            ]
        );
    }

    #[test]
    fn conflicting_and_misplaced_overrides_name_the_variable() {
        let p = problems(
            "",
            &[
                ("PORTICO_LISTEN", "127.0.0.1:1"),
                ("PORTICO_SERVER__LISTEN", "127.0.0.1:2"),
                ("PORTICO_SERVER__LISTEN__PORT", "3"),
            ],
        );
        assert!(
            p.iter().any(|l| l
                .starts_with("PORTICO_SERVER__LISTEN: server.listen: also set by PORTICO_LISTEN")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|l| l.starts_with("PORTICO_SERVER__LISTEN__PORT: server.listen.port:")),
            "{p:?}"
        );
    }

    #[test]
    fn cors_default_and_per_route_overrides() {
        use crate::config::schema::RouteCorsConfig;
        let text = r#"
[cors]
allow_origins = ["https://app.example.com"]
allow_credentials = true
max_age = "5m"

[upstreams.etl]
url = "http://127.0.0.1:9002"

[[routes]]
prefix = "/a"
upstream = "etl"

[[routes]]
prefix = "/b"
upstream = "etl"
cors = false

[[routes]]
prefix = "/c"
upstream = "etl"
cors = { allow_origins = ["*"], allow_methods = ["get", "POST"], allow_headers = ["Authorization"] }
"#;
        let c = load(text, &[]).unwrap();
        let default = c.cors.as_ref().unwrap();
        assert_eq!(default.allow_origins, ["https://app.example.com"]);
        assert!(default.allow_credentials);
        assert_eq!(default.max_age, Duration::from_secs(300));
        assert_eq!(default.allow_methods.len(), 7);
        assert_eq!(default.allow_headers, None);
        assert_eq!(c.routes[0].cors, RouteCorsConfig::Default);
        assert_eq!(c.routes[1].cors, RouteCorsConfig::Off);
        let RouteCorsConfig::Own(own) = &c.routes[2].cors else {
            panic!("{:?}", c.routes[2].cors)
        };
        assert_eq!(own.allow_origins, ["*"]);
        assert!(!own.allow_credentials);
        assert_eq!(own.max_age, Duration::from_secs(600));
        assert_eq!(
            own.allow_methods
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>(),
            ["GET", "POST"]
        );
        assert_eq!(
            own.allow_headers.as_deref(),
            Some(&["Authorization".to_owned()][..])
        );
        assert_eq!(load("", &[]).unwrap().cors, None);
    }

    #[test]
    fn cors_problems_are_reported_with_their_line() {
        let text = "[cors]\nallow_origins = [\"https://a.example/path\"]\nmax_age = 5\norigins = []\n[upstreams.etl]\nurl = \"http://127.0.0.1:9002\"\n[[routes]]\nprefix = \"/a\"\nupstream = \"etl\"\ncors = true\n[[routes]]\nprefix = \"/b\"\nupstream = \"etl\"\ncors = { allow_origins = [\"*\", \"https://b.example\"], allow_methods = [\"GE T\"] }\n[[routes]]\nprefix = \"/c\"\nupstream = \"etl\"\ncors = { allow_credentials = true }\n";
        let p = problems(text, &[]);
        assert_eq!(
            p,
            [
                "portico.toml:2: cors.allow_origins: item 0: \"https://a.example/path\" is not an origin (expected \"*\" or scheme://host[:port], no path)",
                "portico.toml:3: cors.max_age: expected a duration string like \"15s\", found integer",
                "portico.toml:4: cors.origins: unknown key (expected one of: allow_origins, allow_credentials, allow_methods, allow_headers, max_age)",
                "portico.toml:10: routes[0].cors: expected false or a table { allow_origins = [...] }, found boolean",
                "portico.toml:14: routes[1].cors.allow_origins: \"*\" allows every origin: list it alone",
                "portico.toml:14: routes[1].cors.allow_methods: item 0: \"GE T\" is not an HTTP method",
                "portico.toml:18: routes[2].cors.allow_origins: missing (required)",
            ]
        );
    }
    #[test]
    fn telemetry_export_is_off_unless_an_endpoint_is_given() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.telemetry.otlp_endpoint, None);
        assert_eq!(c.telemetry.service_name, "portico");
        let c = load(
            "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\nservice_name = \"edge\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            c.telemetry.otlp_endpoint.unwrap().as_str(),
            "http://127.0.0.1:4318"
        );
        assert_eq!(c.telemetry.service_name, "edge");
        let c = load(
            "[telemetry]\notlp_endpoint = \"http://file:4318\"\n",
            &[("PORTICO_TELEMETRY__OTLP_ENDPOINT", "https://env:4318")],
        )
        .unwrap();
        assert_eq!(
            c.telemetry.otlp_endpoint.unwrap().as_str(),
            "https://env:4318"
        );
    }

    #[test]
    fn the_standard_otel_endpoint_variable_fills_only_an_empty_endpoint() {
        let otel = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
        let c = load("", &[otel]).unwrap();
        assert_eq!(
            c.telemetry.otlp_endpoint.unwrap().as_str(),
            "http://collector:4318"
        );
        let c = load("[telemetry]\notlp_endpoint = \"\"\n", &[otel]).unwrap();
        assert_eq!(
            c.telemetry.otlp_endpoint.unwrap().as_str(),
            "http://collector:4318"
        );
        let c = load(
            "[telemetry]\notlp_endpoint = \"http://mine:4318\"\n",
            &[otel],
        )
        .unwrap();
        assert_eq!(
            c.telemetry.otlp_endpoint.unwrap().as_str(),
            "http://mine:4318"
        );
        let c = load(
            "",
            &[
                otel,
                ("PORTICO_TELEMETRY__OTLP_ENDPOINT", "http://portico:4318"),
            ],
        )
        .unwrap();
        assert_eq!(
            c.telemetry.otlp_endpoint.unwrap().as_str(),
            "http://portico:4318"
        );
        assert_eq!(
            load("", &[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])
                .unwrap()
                .telemetry
                .otlp_endpoint,
            None
        );
    }

    #[test]
    fn telemetry_problems_name_the_key_and_its_line_or_variable() {
        let p = problems(
            "[telemetry]\notlp_endpoint = \"grpc://127.0.0.1:4317\"\nservice_name = \"\"\nendpoint = 1\n",
            &[],
        );
        assert_eq!(
            p,
            [
                "portico.toml:2: telemetry.otlp_endpoint: unsupported URL scheme \"grpc\" in \"grpc://127.0.0.1:4317\" (expected one of: http, https)",
                "portico.toml:3: telemetry.service_name: must not be empty",
                "portico.toml:4: telemetry.endpoint: unknown key (expected one of: otlp_endpoint, service_name)",
            ]
        );
        let p = problems("", &[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("OTEL_EXPORTER_OTLP_ENDPOINT: telemetry.otlp_endpoint: invalid URL"),
            "{p:?}"
        );
        let p = problems(
            "",
            &[("PORTICO_TELEMETRY__OTLP_ENDPOINT", "http://c:4318/?x=1")],
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("PORTICO_TELEMETRY__OTLP_ENDPOINT: telemetry.otlp_endpoint: http://c:4318/?x=1 must be a base URL"),
            "{p:?}"
        );
    }

    #[test]
    fn server_workers_is_a_count_from_the_file_or_the_environment() {
        let c = load("[server]\nworkers = 3\n", &[]).unwrap();
        assert_eq!(c.server.workers, 3);
        let c = load("", &[("PORTICO_SERVER__WORKERS", "1")]).unwrap();
        assert_eq!(c.server.workers, 1);
        let problems = load("[server]\nworkers = -1\n", &[]).unwrap_err();
        assert!(
            format!("{problems}").contains("server.workers"),
            "{problems}"
        );
    }
}
