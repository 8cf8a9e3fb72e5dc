//! The auth component as `portico up` runs it: the store named by `[database]`, the
//! settings of `[auth]`, `[[auth.clients]]` and `[roles.*]`, and a `/health` check of the
//! database.

use std::sync::Arc;

use portico_auth::oauth::{Endpoints, ProviderSettings};
use portico_auth::password::HashPriority;
use portico_auth::rbac::Roles;
use portico_auth::service::AuthService;
use portico_auth::settings::{AuthSettings, ServiceClient};
use portico_auth::store::Store;
use portico_core::clock::SharedClock;
use portico_core::health::{CheckResult, HealthRegistry};

use crate::config::Config;
use crate::config::schema::ProviderEndpoints;
use crate::config::types::PasswordHashPriority;

/// Why the auth component could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuthStartError {
    /// The database could not be opened or migrated.
    #[error("cannot open the database: {0}")]
    Store(#[from] portico_auth::store::StoreError),
    /// The signing keys could not be loaded or made.
    #[error("cannot start auth: {0}")]
    Start(#[from] portico_auth::error::AuthError),
}

/// The auth settings in checked form, from the config.
pub fn settings(config: &Config) -> AuthSettings {
    let auth = &config.auth;
    let mut settings = AuthSettings::new(auth.issuer.as_str().trim_end_matches('/'));
    settings.access_token_ttl = auth.access_token_ttl;
    settings.refresh_token_ttl = auth.refresh_token_ttl;
    settings.default_role = auth.default_role.clone();
    settings.password_hash_priority = match auth.password_hash_priority {
        PasswordHashPriority::Idle => HashPriority::Idle,
        PasswordHashPriority::Low => HashPriority::Low,
    };
    settings.roles = Roles::new(
        config
            .roles
            .iter()
            .map(|(name, role)| (name.clone(), role.permissions.clone())),
    );
    settings.clients = auth
        .clients
        .iter()
        .map(|c| ServiceClient {
            id: c.id.clone(),
            secret: c.secret.expose().to_owned(),
            audiences: c.audiences.clone(),
        })
        .collect();
    settings.providers = auth
        .providers
        .iter()
        .map(|(name, p)| ProviderSettings {
            name: name.clone(),
            client_id: p.client_id.clone(),
            client_secret: p.client_secret.expose().to_owned(),
            endpoints: match &p.endpoints {
                ProviderEndpoints::Discovery { issuer } => Endpoints::Discovery {
                    issuer: issuer.as_str().to_owned(),
                },
                ProviderEndpoints::Explicit {
                    authorize_url,
                    token_url,
                    userinfo_url,
                } => Endpoints::Explicit {
                    authorize_url: authorize_url.as_str().to_owned(),
                    token_url: token_url.as_str().to_owned(),
                    userinfo_url: userinfo_url.as_str().to_owned(),
                },
            },
        })
        .collect();
    settings.redirect_allowlist = auth
        .redirect_allowlist
        .iter()
        .map(|u| u.as_str().to_owned())
        .collect();
    settings
}

/// Opens the store, starts the service and registers the `database` health check.
pub async fn start(
    config: &Config,
    clock: SharedClock,
    health: &HealthRegistry,
) -> Result<Arc<AuthService>, AuthStartError> {
    let url = config.database.url.as_ref().map(|u| u.as_str());
    let store = Store::open(url, &config.server.data_dir).await?;
    tracing::info!(backend = ?store.backend(), "database ready");
    let service = AuthService::start(settings(config), store.clone(), clock).await?;
    health.register_fn("database", true, move || {
        let store = store.clone();
        async move {
            match store.ping().await {
                Ok(()) => CheckResult::healthy(),
                Err(e) => CheckResult::unhealthy(e.to_string()),
            }
        }
    });
    Ok(service)
}
