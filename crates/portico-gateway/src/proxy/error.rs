//! Why a [`Gateway`](super::Gateway) could not be built from its settings.

use portico_resilience::ConfigError;

/// A setting the gateway cannot serve with. The binary's config check reports most problems
/// first; these are the ones only building the gateway finds.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A route names an upstream that is not configured.
    #[error("route {route:?}: unknown upstream {upstream:?}")]
    UnknownUpstream {
        /// The route's prefix.
        route: String,
        /// The upstream it names.
        upstream: String,
    },
    /// An upstream's `url` is not an `http://` or `https://` URL the gateway can call.
    #[error("upstreams.{upstream}.url: {reason}")]
    InvalidUrl {
        /// The upstream's name.
        upstream: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An upstream's internal token cannot be sent as a header value.
    #[error("upstreams.{upstream}.internal_token: contains characters not allowed in a header")]
    InvalidInternalToken {
        /// The upstream's name.
        upstream: String,
    },
    /// An upstream's resilience settings were refused.
    #[error("upstreams.{upstream}.{}: {}", .source.field, .source.reason)]
    Policy {
        /// The upstream's name.
        upstream: String,
        /// The refused setting.
        #[source]
        source: ConfigError,
    },
    /// A route's `rate_limit` was refused.
    #[error("route {route:?}: rate_limit.{}: {}", .source.field, .source.reason)]
    RateLimit {
        /// The route's prefix.
        route: String,
        /// The refused setting.
        #[source]
        source: ConfigError,
    },
    /// `[redis] url` cannot be used for the shared rate limits.
    #[error(transparent)]
    Redis(#[from] crate::ratelimit::RedisSetupError),
    /// No identity key was given and none could be generated.
    #[error(transparent)]
    IdentityKey(#[from] crate::identity::IdentityKeyError),
    /// The TLS client for `https://` upstreams could not be set up.
    #[error("TLS setup: {0}")]
    Tls(String),
}
