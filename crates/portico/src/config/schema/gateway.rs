//! `[upstreams.*]`, `[[routes]]` and `[cors]`: the services behind the gateway, the paths to
//! them, and the browser origins that may call them.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::time::Duration;

use axum::http::{HeaderName, Method, StatusCode};
use portico_gateway::settings::{DEFAULT_CORS_MAX_AGE, DEFAULT_CORS_METHODS};
use portico_resilience::{Preset, UpstreamPolicy};

use super::realtime::known_upstream;
use crate::config::problem::Problems;
use crate::config::reader::{Leaf, Positive, Section, list, mismatch, text};
use crate::config::tree::{Node, Origin, Value};
use crate::config::types::{AuthMode, HttpUrl, RateLimitKey, Secret, Url, UrlPath};

/// The default name of the header carrying an upstream's internal token.
pub const DEFAULT_INTERNAL_TOKEN_HEADER: &str = "X-Internal-Auth";

/// `[upstreams.<name>]`.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// `url` (required): the service's base URL, `http://` or `https://`.
    pub url: Url,
    /// `preset` (optional): `chroma`, `filesystem`, `billing` or `git` (seed 001's table).
    pub preset: Option<Preset>,
    /// `max_retries` (attempts in all), `timeout` (per attempt), `failure_threshold`,
    /// `recovery_timeout`: each from its key, else the preset, else 3 / `15s` / 5 / `60s`.
    pub policy: UpstreamPolicy,
    /// `retry_non_idempotent` (default `false`): also retry POST/PATCH.
    pub retry_non_idempotent: bool,
    /// `internal_token` (optional): sent to the upstream in `internal_token_header`.
    pub internal_token: Option<Secret>,
    /// `internal_token_header` (default `X-Internal-Auth`).
    pub internal_token_header: HeaderName,
    /// `health` (optional): the upstream's health path, probed for `/health`.
    pub health: Option<UrlPath>,
    /// `critical` (default `false`): when unhealthy, `/health` is 503 rather than degraded.
    pub critical: bool,
}

/// `[[routes]]`.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// `prefix` (required, unique): the path prefix this route serves, e.g. `/api/etl`.
    pub prefix: UrlPath,
    /// `upstream` (required): a name from `[upstreams]`.
    pub upstream: String,
    /// `rewrite` (optional): replaces the prefix when forwarding (`/api/etl/x` → `/api/v1/x`).
    pub rewrite: Option<UrlPath>,
    /// `auth` (default `required`): `required`, `optional` or `none`.
    pub auth: AuthMode,
    /// `permissions` (default `[]`): all of them are needed.
    pub permissions: Vec<String>,
    /// `rate_limit = { per, requests, window }` (optional).
    pub rate_limit: Option<RateLimitConfig>,
    /// `fallback = { cache = true }` or `{ status, json }` (optional).
    pub fallback: Option<FallbackConfig>,
    /// `cache = { ttl = "30s" }` (optional): the GET response cache.
    pub cache: Option<CacheConfig>,
    /// `cors = false` or `cors = { … }` (optional): this route's CORS instead of `[cors]`'s.
    pub cors: RouteCorsConfig,
}

/// `cache = { ttl = "30s" }`: good GET answers are answered by the gateway for `ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// `ttl` (required, > 0): how long a kept answer is served without asking the upstream.
    pub ttl: Duration,
}

/// `rate_limit = { per = "user", requests = 100, window = "60s" }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// `per`: what is counted (`user`, `api_key`, `ip`).
    pub per: RateLimitKey,
    /// `requests`: allowed per window.
    pub requests: NonZeroU32,
    /// `window`: the window's length.
    pub window: Duration,
}

/// What a route answers when its upstream fails.
#[derive(Debug, Clone, PartialEq)]
pub enum FallbackConfig {
    /// `{ cache = true }`: the last good cached response.
    Cache,
    /// `{ status = 200, json = {...} }`: a fixed answer.
    Static {
        /// `status` (default 200).
        status: StatusCode,
        /// `json` (default none: an empty body).
        json: Option<serde_json::Value>,
    },
}

/// Reads `[upstreams.*]`. Every declared name is returned, with `None` for an upstream that has
/// problems, so references to it are not reported a second time.
pub(crate) fn read_upstreams(
    top: &mut Section<'_>,
    problems: &mut Problems,
) -> BTreeMap<String, Option<UpstreamConfig>> {
    top.named_sections("upstreams", problems)
        .into_iter()
        .map(|(name, s)| (name.to_owned(), UpstreamConfig::read(s, problems)))
        .collect()
}

impl UpstreamConfig {
    fn read(mut s: Section<'_>, problems: &mut Problems) -> Option<Self> {
        let url = s.required::<HttpUrl>("url", problems).map(|u| u.0);
        let preset = s.get::<Preset>("preset", problems);
        let policy = read_policy(&mut s, preset, problems);
        let retry_non_idempotent = s.or("retry_non_idempotent", false, problems);
        let internal_token = s.get::<Secret>("internal_token", problems);
        let internal_token_header = s.or(
            "internal_token_header",
            HeaderName::from_static("x-internal-auth"),
            problems,
        );
        let health = s.get::<UrlPath>("health", problems);
        let critical = s.or("critical", false, problems);
        s.finish(problems);
        Some(Self {
            url: url?,
            preset,
            policy: policy?,
            retry_non_idempotent,
            internal_token,
            internal_token_header,
            health,
            critical,
        })
    }
}

/// The four policy keys over the preset's (or the default) values, checked together by
/// [`UpstreamPolicy::new`]; its complaint is reported at the offending key.
fn read_policy(
    s: &mut Section<'_>,
    preset: Option<Preset>,
    problems: &mut Problems,
) -> Option<UpstreamPolicy> {
    let base = preset.map(Preset::policy).unwrap_or_default();
    let mut origins: BTreeMap<&str, Origin> = BTreeMap::new();
    for key in [
        "max_retries",
        "timeout",
        "failure_threshold",
        "recovery_timeout",
    ] {
        if let Some(node) = s.node(key) {
            origins.insert(key, node.origin.clone());
        }
    }
    let max_attempts = s.or("max_retries", base.max_attempts.get(), problems);
    let timeout = s.or("timeout", base.timeout, problems);
    let failure_threshold = s.or("failure_threshold", base.failure_threshold.get(), problems);
    let recovery_timeout = s.or("recovery_timeout", base.recovery_timeout, problems);
    match UpstreamPolicy::new(max_attempts, timeout, failure_threshold, recovery_timeout) {
        Ok(policy) => Some(policy),
        Err(e) => {
            let origin = origins.get(e.field).unwrap_or(s.origin());
            problems.at(origin, &s.key_path(e.field), e.reason);
            None
        }
    }
}

/// Reads `[[routes]]`, checking upstream names and that no prefix is used twice.
pub(crate) fn read_routes(
    top: &mut Section<'_>,
    upstreams: &BTreeSet<&str>,
    problems: &mut Problems,
) -> Option<Vec<RouteConfig>> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut routes = Vec::new();
    let mut complete = true;
    for mut s in top.array_sections("routes", problems) {
        let route_path = s.path().to_owned();
        let prefix = s.required_with("prefix", problems, |n| {
            let prefix = UrlPath::from_node(n)?;
            let normal = prefix.as_str().trim_end_matches('/').to_owned();
            if let Some(first) = seen.get(&normal) {
                return Err(format!(
                    "duplicate route prefix {:?} (also {first}.prefix)",
                    prefix.as_str()
                ));
            }
            seen.insert(normal, route_path.clone());
            Ok(prefix)
        });
        let upstream = s.required_with("upstream", problems, |n| known_upstream(n, upstreams));
        let rewrite = s.get::<UrlPath>("rewrite", problems);
        let auth = s.or("auth", AuthMode::Required, problems);
        let permissions = s.or("permissions", Vec::new(), problems);
        if auth == AuthMode::None
            && !permissions.is_empty()
            && let Some(node) = s.node("permissions")
        {
            problems.at(
                &node.origin,
                &s.key_path("permissions"),
                "permissions cannot be checked with auth = \"none\"",
            );
        }
        let rate_limit = if s.has("rate_limit") {
            let mut r = s.section("rate_limit", problems);
            let limit = read_rate_limit(&mut r, auth, problems);
            r.finish(problems);
            limit
        } else {
            None
        };
        let fallback = if s.has("fallback") {
            let mut f = s.section("fallback", problems);
            let fallback = read_fallback(&mut f, problems);
            f.finish(problems);
            fallback
        } else {
            None
        };
        let cache = if s.has("cache") {
            // Not a table: `section` reports it, and there is no `ttl` to ask for.
            let table = s
                .node("cache")
                .is_some_and(|n| matches!(n.value, Value::Table(_)));
            let mut c = s.section("cache", problems);
            let ttl = table
                .then(|| c.required::<Positive>("ttl", problems))
                .flatten();
            c.finish(problems);
            ttl.map(|ttl| CacheConfig { ttl: ttl.0 })
        } else {
            None
        };
        let cors = read_route_cors(&mut s, problems);
        s.finish(problems);
        match (prefix, upstream) {
            (Some(prefix), Some(upstream)) => routes.push(RouteConfig {
                prefix,
                upstream,
                rewrite,
                auth,
                permissions,
                rate_limit,
                fallback,
                cache,
                cors,
            }),
            _ => complete = false,
        }
    }
    complete.then_some(routes)
}

fn read_rate_limit(
    r: &mut Section<'_>,
    auth: AuthMode,
    problems: &mut Problems,
) -> Option<RateLimitConfig> {
    let per = r.required_with("per", problems, |n| {
        let per = RateLimitKey::from_node(n)?;
        if auth == AuthMode::None && per != RateLimitKey::Ip {
            return Err(format!(
                "per = {:?} needs an identity, but the route has auth = \"none\" (use \"ip\")",
                per.as_str()
            ));
        }
        Ok(per)
    });
    let requests = r.required::<NonZeroU32>("requests", problems);
    let window = r.required::<Positive>("window", problems);
    Some(RateLimitConfig {
        per: per?,
        requests: requests?,
        window: window?.0,
    })
}

fn read_fallback(f: &mut Section<'_>, problems: &mut Problems) -> Option<FallbackConfig> {
    let cache = f.get::<bool>("cache", problems);
    let has_static = f.has("status") || f.has("json");
    let status = f.parse_with("status", problems, |n| {
        let Value::Integer(code) = n.value else {
            return Err(mismatch("an HTTP status code", n));
        };
        u16::try_from(code)
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .filter(|_| (100..=599).contains(&code))
            .ok_or_else(|| format!("{code} is not an HTTP status code"))
    });
    let json = f.parse_with("json", problems, to_json);
    match (cache, has_static) {
        (Some(true), true) => {
            problems.at(
                f.origin(),
                f.path(),
                "choose cache = true or a static status/json answer, not both",
            );
            None
        }
        (Some(true), false) => Some(FallbackConfig::Cache),
        (_, true) => Some(FallbackConfig::Static {
            status: status.unwrap_or(StatusCode::OK),
            json,
        }),
        (Some(false), false) => None,
        (None, false) => {
            problems.at(
                f.origin(),
                f.path(),
                "needs cache = true, or status and/or json for a static answer",
            );
            None
        }
    }
}

/// Converts a TOML value to JSON (for static fallback bodies).
fn to_json(node: &Node) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match &node.value {
        Value::String(s) | Value::Datetime(s) => J::String(s.clone()),
        Value::Integer(n) => J::from(*n),
        Value::Float(x) => serde_json::Number::from_f64(*x)
            .map(J::Number)
            .ok_or_else(|| format!("{x} cannot be represented in JSON"))?,
        Value::Boolean(b) => J::Bool(*b),
        Value::Array(items) => J::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Value::Table(map) => J::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// `[cors]`, or a route's `cors = { … }`: which browser origins may call the gateway's
/// routes (preflights answered by the gateway, `Access-Control-*` on the answers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsConfig {
    /// `allow_origins` (required, non-empty): `scheme://host[:port]` origins, or `["*"]`.
    pub allow_origins: Vec<String>,
    /// `allow_credentials` (default `false`): cookies and `Authorization` from the browser;
    /// with `["*"]` the caller's origin is echoed instead of `*`.
    pub allow_credentials: bool,
    /// `allow_methods` (default GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS).
    pub allow_methods: Vec<Method>,
    /// `allow_headers` (default: whatever the preflight asks for).
    pub allow_headers: Option<Vec<String>>,
    /// `max_age` (default `10m`): how long browsers may keep a preflight's answer.
    pub max_age: Duration,
}

/// A route's `cors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteCorsConfig {
    /// Absent: `[cors]`, if there is one.
    Default,
    /// `cors = false`: none, whatever `[cors]` says.
    Off,
    /// `cors = { … }`: the route's own (keys not given take the defaults, not `[cors]`'s).
    Own(CorsConfig),
}

/// Reads a CORS table (`[cors]` or a route's `cors = { … }`).
pub(crate) fn read_cors(c: &mut Section<'_>, problems: &mut Problems) -> Option<CorsConfig> {
    let allow_origins = c.required_with("allow_origins", problems, |n| {
        let origins = list(n, |item| {
            let origin = text(item)?;
            if origin == "*" || is_origin(origin) {
                Ok(origin.to_owned())
            } else {
                Err(format!(
                    "{origin:?} is not an origin (expected \"*\" or scheme://host[:port], no path)"
                ))
            }
        })?;
        if origins.is_empty() {
            return Err("needs at least one origin (or [\"*\"])".to_owned());
        }
        if origins.len() > 1 && origins.iter().any(|o| o == "*") {
            return Err("\"*\" allows every origin: list it alone".to_owned());
        }
        Ok(origins)
    });
    let allow_credentials = c.or("allow_credentials", false, problems);
    let allow_methods = c.parse_with("allow_methods", problems, |n| {
        list(n, |item| {
            let method = text(item)?;
            Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                .map_err(|_| format!("{method:?} is not an HTTP method"))
        })
    });
    let allow_headers = c.parse_with("allow_headers", problems, |n| {
        list(n, |item| {
            let name = text(item)?;
            HeaderName::from_bytes(name.as_bytes())
                .map(|_| name.to_owned())
                .map_err(|_| format!("{name:?} is not a header name"))
        })
    });
    let max_age = c.or("max_age", DEFAULT_CORS_MAX_AGE, problems);
    Some(CorsConfig {
        allow_origins: allow_origins?,
        allow_credentials,
        allow_methods: allow_methods.unwrap_or_else(|| DEFAULT_CORS_METHODS.to_vec()),
        allow_headers,
        max_age,
    })
}

/// `scheme://host[:port]`: http or https, a host, no path, query or whitespace.
fn is_origin(origin: &str) -> bool {
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    rest.is_some_and(|host| {
        !host.is_empty()
            && !host
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, '/' | '?' | '#' | '@'))
    })
}

/// Reads a route's `cors`: `false`, or a table.
fn read_route_cors(s: &mut Section<'_>, problems: &mut Problems) -> RouteCorsConfig {
    match s.node("cors").map(|n| (&n.value, n)) {
        None => RouteCorsConfig::Default,
        Some((Value::Boolean(false), _)) => RouteCorsConfig::Off,
        Some((Value::Table(_), _)) => {
            let mut c = s.section("cors", problems);
            let cors = read_cors(&mut c, problems);
            c.finish(problems);
            cors.map_or(RouteCorsConfig::Default, RouteCorsConfig::Own)
        }
        Some((_, node)) => {
            problems.at(
                &node.origin,
                &s.key_path("cors"),
                format!(
                    "expected false or a table {{ allow_origins = [...] }}, found {}",
                    node.value.type_name()
                ),
            );
            RouteCorsConfig::Default
        }
    }
}
