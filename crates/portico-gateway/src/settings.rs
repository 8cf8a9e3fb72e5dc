//! The gateway's settings in checked form, built by the binary from `[upstreams.*]` and
//! `[[routes]]` (the config loader has already reported every problem with its line).

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

use http::{HeaderName, StatusCode};
use portico_resilience::UpstreamPolicy;

use crate::identity::IdentityKey;

/// The default largest request body the gateway forwards (`[server] max_body`, 10 MiB).
pub const DEFAULT_MAX_BODY: usize = 10 * 1024 * 1024;

/// Everything the gateway serves.
#[derive(Clone)]
pub struct GatewaySettings {
    /// The services behind the gateway, by name.
    pub upstreams: BTreeMap<String, UpstreamSettings>,
    /// The routes; matched by longest prefix, whatever their order here.
    pub routes: Vec<RouteSettings>,
    /// The largest request body forwarded: a declared `Content-Length` above it is refused
    /// with 413 `REQ_002`, a streamed body is cut off there (default [`DEFAULT_MAX_BODY`]).
    pub max_body: usize,
    /// `[redis] url`: when set, rate limits are shared by every instance through this Redis
    /// (falling back to per-instance limits while it cannot be reached); when `None`, they
    /// are per instance.
    pub redis_url: Option<String>,
    /// The key `X-Portico-Identity` tokens are signed with (the binary keeps it in
    /// `<data_dir>/gateway-identity.key`); `None`: a new key for this gateway's lifetime.
    pub identity_key: Option<IdentityKey>,
}

impl Default for GatewaySettings {
    /// No upstreams, no routes, the default body limit, no Redis, a fresh identity key.
    fn default() -> Self {
        Self {
            upstreams: BTreeMap::new(),
            routes: Vec::new(),
            max_body: DEFAULT_MAX_BODY,
            redis_url: None,
            identity_key: None,
        }
    }
}

impl std::fmt::Debug for GatewaySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewaySettings")
            .field("upstreams", &self.upstreams)
            .field("routes", &self.routes)
            .field("max_body", &self.max_body)
            // The URL may hold a password.
            .field("redis_url", &self.redis_url.as_ref().map(|_| "***"))
            .finish()
    }
}

/// `[upstreams.<name>]`.
#[derive(Clone)]
pub struct UpstreamSettings {
    /// The name (`etl`), used in logs, metrics and `/status/services`.
    pub name: String,
    /// The base URL, `http://host:port` or `https://…`, maybe with a path prefix.
    pub url: String,
    /// Attempts, per-attempt timeout, breaker threshold and recovery.
    pub policy: UpstreamPolicy,
    /// Retry non-idempotent methods (POST, PATCH) too.
    pub retry_non_idempotent: bool,
    /// Header name and value of the internal token sent with every request.
    pub internal_token: Option<(HeaderName, String)>,
    /// The upstream's health path, probed for `/health`.
    pub health: Option<String>,
    /// Whether an unhealthy upstream makes `/health` 503 (else degraded).
    pub critical: bool,
}

impl std::fmt::Debug for UpstreamSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamSettings")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("policy", &self.policy)
            .field("retry_non_idempotent", &self.retry_non_idempotent)
            .field(
                "internal_token",
                &self.internal_token.as_ref().map(|(h, _)| (h, "***")),
            )
            .field("health", &self.health)
            .field("critical", &self.critical)
            .finish()
    }
}

/// `[[routes]]`.
#[derive(Debug, Clone)]
pub struct RouteSettings {
    /// The path prefix (`/api/etl`); matches itself and paths under it (`/api/etl/…`).
    pub prefix: String,
    /// The upstream's name.
    pub upstream: String,
    /// Replaces the prefix when forwarding (`/api/etl/x` → `/api/v1/x`).
    pub rewrite: Option<String>,
    /// What the route asks of the caller's identity.
    pub auth: AuthMode,
    /// Permissions the caller must all hold (403 AUTH_006 otherwise).
    pub permissions: Vec<String>,
    /// The route's rate limit.
    pub rate_limit: Option<RateLimit>,
    /// What to answer when the upstream fails.
    pub fallback: Option<Fallback>,
    /// The GET response cache (`ETag`, `If-None-Match` → 304), when the route enables it.
    pub cache: Option<ResponseCache>,
    /// CORS for browsers on other origins, when the route enables it (see [`CorsSettings`]).
    pub cors: Option<CorsSettings>,
}

/// `cache = { ttl }`: good GET answers are kept and answered by the gateway for `ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseCache {
    /// How long a kept answer is served without asking the upstream.
    pub ttl: Duration,
}

/// What a route asks of the caller's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// A valid token or API key (401 otherwise).
    Required,
    /// Checked and forwarded when present; a bad one is still refused.
    Optional,
    /// No identity check; nothing forwarded.
    None,
}

/// What a rate limit counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitKey {
    /// The authenticated user (falls back to the client IP when anonymous).
    User,
    /// The API key used (falls back to the user, then the IP).
    ApiKey,
    /// The client's IP address.
    Ip,
}

/// `rate_limit = { per, requests, window }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// What is counted.
    pub per: RateLimitKey,
    /// Requests allowed per window.
    pub requests: NonZeroU32,
    /// The window.
    pub window: Duration,
}

/// What a route answers when its upstream fails.
#[derive(Debug, Clone, PartialEq)]
pub enum Fallback {
    /// The last good response to the same GET (`X-Portico-Fallback: cache`).
    Cache,
    /// A fixed answer (`X-Portico-Fallback: static`).
    Static {
        /// Its status.
        status: StatusCode,
        /// Its JSON body, if any.
        json: Option<serde_json::Value>,
    },
}

/// `[cors]` or a route's `cors = { … }`: which browser origins may call the route.
///
/// A preflight is answered by the gateway (204, never proxied); other answers to an allowed
/// origin get `Access-Control-Allow-Origin` and the rest. The behaviour in full is in the
/// gateway's `proxy::cors` module docs and `docs/gateway.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsSettings {
    /// Allowed origins (`https://app.example.com`), or `["*"]` for any.
    pub allow_origins: Vec<String>,
    /// Whether the browser may send cookies and `Authorization` (`Allow-Credentials: true`);
    /// with `["*"]` the caller's origin is echoed instead of `*`.
    pub allow_credentials: bool,
    /// Methods a preflight allows.
    pub allow_methods: Vec<http::Method>,
    /// Request headers a preflight allows; `None`: whatever the preflight asks for.
    pub allow_headers: Option<Vec<String>>,
    /// How long a browser may cache a preflight's answer (`Access-Control-Max-Age`).
    pub max_age: Duration,
}

/// The default `allow_methods`.
pub const DEFAULT_CORS_METHODS: [http::Method; 7] = [
    http::Method::GET,
    http::Method::HEAD,
    http::Method::POST,
    http::Method::PUT,
    http::Method::PATCH,
    http::Method::DELETE,
    http::Method::OPTIONS,
];

/// The default `max_age` (10 minutes).
pub const DEFAULT_CORS_MAX_AGE: Duration = Duration::from_secs(600);

impl Default for CorsSettings {
    /// No origin, no credentials, [`DEFAULT_CORS_METHODS`], the requested headers,
    /// [`DEFAULT_CORS_MAX_AGE`].
    fn default() -> Self {
        Self {
            allow_origins: Vec::new(),
            allow_credentials: false,
            allow_methods: DEFAULT_CORS_METHODS.to_vec(),
            allow_headers: None,
            max_age: DEFAULT_CORS_MAX_AGE,
        }
    }
}
