//! The gateway as the binary runs it: its settings from `[upstreams.*]` and `[[routes]]`,
//! and the [`Authenticator`] that finds callers — the auth component itself when it runs in
//! the same process (`portico up`), or the one at `[auth] url` (`portico gateway`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use portico_auth::service::{AuthService, TokenHandle};
use portico_core::clock::SystemClock;
use portico_core::error::ApiError;
use portico_gateway::identity::remote::{RemoteAuthSettings, RemoteAuthenticator};
use portico_gateway::identity::{Authenticator, BoxFuture, CredentialKind, Identity, IdentityKey};
use portico_gateway::settings::{
    AuthMode, CorsSettings, Fallback, GatewaySettings, RateLimit, RateLimitKey, ResponseCache,
    RouteSettings, UpstreamSettings,
};
use thread_local::ThreadLocal;

use crate::config::Config;
use crate::config::schema::{FallbackConfig, RouteCorsConfig};
use crate::config::types;

/// The gateway's settings in checked form, from the config.
pub fn settings(config: &Config) -> GatewaySettings {
    let upstreams = config
        .upstreams
        .iter()
        .map(|(name, u)| {
            let settings = UpstreamSettings {
                name: name.clone(),
                url: u.url.as_str().to_owned(),
                policy: u.policy,
                retry_non_idempotent: u.retry_non_idempotent,
                internal_token: u
                    .internal_token
                    .as_ref()
                    .map(|t| (u.internal_token_header.clone(), t.expose().to_owned())),
                health: u.health.as_ref().map(|p| p.as_str().to_owned()),
                critical: u.critical,
            };
            (name.clone(), settings)
        })
        .collect();
    let routes = config
        .routes
        .iter()
        .map(|r| RouteSettings {
            prefix: r.prefix.as_str().to_owned(),
            upstream: r.upstream.clone(),
            rewrite: r.rewrite.as_ref().map(|p| p.as_str().to_owned()),
            auth: match r.auth {
                types::AuthMode::Required => AuthMode::Required,
                types::AuthMode::Optional => AuthMode::Optional,
                types::AuthMode::None => AuthMode::None,
            },
            permissions: r.permissions.clone(),
            rate_limit: r.rate_limit.map(|l| RateLimit {
                per: match l.per {
                    types::RateLimitKey::User => RateLimitKey::User,
                    types::RateLimitKey::ApiKey => RateLimitKey::ApiKey,
                    types::RateLimitKey::Ip => RateLimitKey::Ip,
                },
                requests: l.requests,
                window: l.window,
            }),
            fallback: r.fallback.as_ref().map(|f| match f {
                FallbackConfig::Cache => Fallback::Cache,
                FallbackConfig::Static { status, json } => Fallback::Static {
                    status: *status,
                    json: json.clone(),
                },
            }),
            cache: r.cache.map(|c| ResponseCache { ttl: c.ttl }),
            cors: match &r.cors {
                RouteCorsConfig::Default => config.cors.as_ref(),
                RouteCorsConfig::Off => None,
                RouteCorsConfig::Own(own) => Some(own),
            }
            .map(|c| CorsSettings {
                allow_origins: c.allow_origins.clone(),
                allow_credentials: c.allow_credentials,
                allow_methods: c.allow_methods.clone(),
                allow_headers: c.allow_headers.clone(),
                max_age: c.max_age,
            }),
        })
        .collect();
    GatewaySettings {
        upstreams,
        routes,
        max_body: usize::try_from(config.server.max_body.as_u64()).unwrap_or(usize::MAX),
        redis_url: config.redis.url.as_ref().map(|u| u.as_str().to_owned()),
        identity_key: None,
    }
}

/// The file in `server.data_dir` holding the key `X-Portico-Identity` is signed with.
pub const IDENTITY_KEY_FILE: &str = "gateway-identity.key";

/// The gateway's identity key from `<data_dir>/gateway-identity.key`, created there (0600)
/// on first start, so restarts and instances sharing the directory publish the same key.
pub fn identity_key(data_dir: &Path) -> Result<IdentityKey, String> {
    let path = data_dir.join(IDENTITY_KEY_FILE);
    let (key, created) = IdentityKey::load_or_create(&path).map_err(|e| e.to_string())?;
    if created {
        tracing::info!("gateway identity key created at {}", path.display());
    }
    Ok(key)
}

/// The auth component of this process as the gateway's [`Authenticator`]: every check is
/// `AuthService::validate` (with its validation cache and session revocation).
///
/// What a verified access token's claims make (the [`Identity`]) is kept per serving thread
/// next to the handle of auth's cached verification, and handed out again while auth answers
/// with that same verification: auth still decides every request (expiry, revocation,
/// accepted keys), only the copying of the claims into a new identity is saved. API keys,
/// whose answer can change while auth caches it, get a new identity each time.
#[derive(Debug, Clone)]
pub struct InProcessAuth {
    service: Arc<AuthService>,
    made: Arc<ThreadLocal<RefCell<Made>>>,
}

/// One thread's identities of verified tokens, by the token's SHA-256, with the handle of
/// the verification each was made from.
type Made = HashMap<[u8; 32], (TokenHandle, Arc<Identity>)>;

/// How many token identities each serving thread keeps at most (then it starts over).
const MADE_CAPACITY: usize = 10_000;

impl InProcessAuth {
    /// Authenticates through `service`.
    pub fn new(service: Arc<AuthService>) -> Self {
        Self {
            service,
            made: Arc::new(ThreadLocal::new()),
        }
    }

    async fn identify(&self, credential: &str) -> Result<Arc<Identity>, ApiError> {
        // The credential is hashed once, by auth's validation cache, and its expiry comes as
        // a time: nothing here repeats that work per request.
        let validated = self
            .service
            .validate_in_process(credential)
            .await
            .map_err(ApiError::from)?;
        let handle = validated.token_handle();
        let made = self.made.get_or_default();
        if let (Some(handle), Some(digest)) = (&handle, &validated.digest)
            && let Ok(made) = made.try_borrow()
            && let Some((seen, identity)) = made.get(digest)
            && seen.same(handle)
        {
            return Ok(identity.clone());
        }
        let v = validated.answer();
        let identity = Arc::new(Identity {
            kind: CredentialKind::parse(&v.token_type).unwrap_or(CredentialKind::User),
            credential_id: match &validated.digest {
                Some(digest) => portico_gateway::identity::credential_id_of_digest(digest),
                None => portico_gateway::identity::credential_id(credential),
            },
            expires_at: validated.expires_at,
            user_id: v.user_id,
            email: v.email,
            permissions: v.permissions,
            roles: v.roles,
        });
        if let (Some(handle), Some(digest)) = (handle, validated.digest)
            && let Ok(mut made) = made.try_borrow_mut()
        {
            if made.len() >= MADE_CAPACITY {
                made.clear();
            }
            made.insert(digest, (handle, identity.clone()));
        }
        Ok(identity)
    }
}

impl Authenticator for InProcessAuth {
    fn authenticate<'a>(
        &'a self,
        credential: &'a str,
    ) -> BoxFuture<'a, Result<Identity, ApiError>> {
        Box::pin(async move { Ok(Identity::clone(&*self.identify(credential).await?)) })
    }

    fn authenticate_shared<'a>(
        &'a self,
        credential: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Identity>, ApiError>> {
        Box::pin(self.identify(credential))
    }
}

/// The authenticator of `portico gateway`: the auth component at `[auth] url`, trusted for
/// tokens of `[auth] issuer`; its validations are shared through `[redis] url` when set.
pub fn remote_auth(config: &Config) -> Result<RemoteAuthenticator, String> {
    let Some(url) = &config.auth.url else {
        return Err(
            "set [auth] url (or PORTICO_AUTH__URL) to where auth runs, e.g. \"http://127.0.0.1:8081\""
                .into(),
        );
    };
    let mut settings = RemoteAuthSettings::new(
        url.as_str().trim_end_matches('/'),
        config.auth.issuer.as_str().trim_end_matches('/'),
    );
    settings.redis_url = config.redis.url.as_ref().map(|u| u.as_str().to_owned());
    RemoteAuthenticator::new(settings, SystemClock::shared()).map_err(|e| e.to_string())
}
