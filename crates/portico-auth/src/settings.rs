//! The auth component's settings in checked form, built by the binary from `[auth]`,
//! `[[auth.clients]]` and `[roles.*]`.

use std::time::Duration;

use crate::oauth::ProviderSettings;
use crate::rbac::Roles;

/// The audience of user access tokens: everything behind this Portico.
pub const USER_AUDIENCE: &str = "portico";

/// How the auth component behaves.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `iss` of every token, and the base of the OpenID configuration's URLs.
    pub issuer: String,
    /// Lifetime of access tokens (default 15 min).
    pub access_token_ttl: Duration,
    /// Lifetime of refresh tokens and so of idle sessions (default 30 days).
    pub refresh_token_ttl: Duration,
    /// Role given to newly registered users.
    pub default_role: String,
    /// Roles and their permissions.
    pub roles: Roles,
    /// Service clients allowed the client-credentials grant.
    pub clients: Vec<ServiceClient>,
    /// Where OAuth logins may send the user back to (see [`crate::oauth::RedirectAllowlist`]).
    pub redirect_allowlist: Vec<String>,
    /// OAuth / OIDC login providers.
    pub providers: Vec<ProviderSettings>,
    /// How long a user has to finish an OAuth login at the provider (default 10 min).
    pub oauth_login_ttl: Duration,
    /// Password hashes computed at once at most (the rest wait; hashing is CPU-bound).
    pub password_hash_concurrency: usize,
    /// How the hashing threads are scheduled (default: only on otherwise idle cores).
    pub password_hash_priority: crate::password::HashPriority,
}

impl AuthSettings {
    /// DESIGN.md's defaults with `issuer`, the built-in `user` and `admin` roles.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            default_role: "user".into(),
            roles: Roles::new([
                ("user".to_string(), Vec::<String>::new()),
                ("admin".to_string(), vec!["*".to_string()]),
            ]),
            clients: Vec::new(),
            redirect_allowlist: Vec::new(),
            providers: Vec::new(),
            oauth_login_ttl: Duration::from_secs(10 * 60),
            // One core is left to token validation, so a burst of logins cannot take its p99.
            password_hash_concurrency: std::thread::available_parallelism()
                .map(|n| n.get().saturating_sub(1).max(1))
                .unwrap_or(1),
            password_hash_priority: crate::password::HashPriority::Idle,
        }
    }
}

/// A service allowed to obtain tokens with `grant_type=client_credentials`.
#[derive(Clone)]
pub struct ServiceClient {
    /// The client id (`etl`).
    pub id: String,
    /// The shared secret.
    pub secret: String,
    /// The services its tokens are for (their `aud`).
    pub audiences: Vec<String>,
}

impl std::fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceClient")
            .field("id", &self.id)
            .field("secret", &"***")
            .field("audiences", &self.audiences)
            .finish()
    }
}
