//! The auth component's use cases — register, login, refresh, logout, validate, me — on top
//! of the store, the password hasher, the signing keys and the login throttle.
//!
//! HTTP lives in [`crate::api`]; this module speaks in requests and answers of
//! [`crate::api::dto`] and fails with [`AuthError`].
//!
//! Revocation: access tokens carry their session id (`sid`). Validation refuses a token whose
//! session was revoked (logout, refresh-token reuse). A revocation made by this process is
//! seen at once; one made by another instance sharing the database within
//! [`REVOCATION_RECHECK`], the time a "not revoked" answer is cached.
//!
//! Successful validations are cached (module `cache`): an access token until its `exp`, an
//! API key for at most five minutes; revocation is still checked on every use, as above.
//!
//! # Layout
//! - this module: sessions and tokens (register, login, refresh, logout, validate, me).
//! - `api_keys`: API keys and service tokens.
//! - `oauth`: login with an OAuth / OIDC provider.
//! - `admin`: what `portico admin` does (users, roles, keys, signing-key rotation).
//! - `keys`: loading the signing keys from the store.
//! - `cache`: the validation cache of access tokens and API keys.

mod admin;
mod api_keys;
mod cache;
mod keys;
mod oauth;

pub use cache::{API_KEY_TTL, CACHE_ENTRIES};
pub use oauth::CallbackQuery;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use portico_core::clock::SharedClock;

use crate::api::dto::{
    ApiKeyCreated, ApiKeyView, CreateApiKeyRequest, LoginRequest, LogoutRequest,
    MAX_API_KEY_EXPIRES_IN, RefreshRequest, RegisterRequest, ServiceTokenResponse, TokenResponse,
    UserView, ValidateResponse,
};
use crate::error::AuthError;
use crate::keys::{KeyRecord, KeySet, SigningKey};
use crate::password::{PasswordHasher, check_policy};
use crate::rbac;
use crate::secret::{ApiKey, hash_secret, hashes_match, refresh_token, secret_matches};
use crate::settings::{AuthSettings, USER_AUDIENCE};
use crate::store::{
    ApiKeyInfo, NewApiKey, NewAuditEvent, NewUser, RotateOutcome, SigningKeyRecord, Store,
    StoreError, User, audit_kind, normalize_email,
};
use crate::throttle::LoginThrottle;
use crate::token::{AccessClaims, TokenError, TokenIssuer, TokenType, TokenVerifier};

/// How long a "session not revoked" answer from the store is trusted.
pub const REVOCATION_RECHECK: Duration = Duration::from_secs(2);

/// How often the signing keys are re-read from the store, so that a rotation made by
/// `portico admin jwks rotate` or another instance is picked up without a restart.
pub const KEY_RELOAD: Duration = Duration::from_secs(60);

/// What [`AuthService::validate_in_process`] returns.
#[derive(Debug, Clone)]
pub struct InProcessValidation {
    /// When the credential stops being valid, if it does.
    pub expires_at: Option<SystemTime>,
    /// SHA-256 of the credential (`None` for one over 8 KiB, which is never cached).
    pub digest: Option<[u8; 32]>,
    what: Validated,
}

/// What was validated: a verified access token (its cached verification) or an API key's
/// answer.
#[derive(Debug, Clone)]
enum Validated {
    Token(Arc<cache::CachedToken>),
    ApiKey(ValidateResponse),
}

/// One cached verification of an access token: two handles are [`TokenHandle::same`] while
/// the verification they come from is the one in force, so a caller in the same process can
/// keep what it derived from the claims (they never change for a given token) instead of
/// deriving it again per request.
#[derive(Debug, Clone)]
pub struct TokenHandle(Arc<cache::CachedToken>);

impl TokenHandle {
    /// Whether both handles come from the same cached verification.
    pub fn same(&self, other: &TokenHandle) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl InProcessValidation {
    /// The answer `/auth/validate` gives.
    pub fn answer(&self) -> ValidateResponse {
        match &self.what {
            Validated::ApiKey(answer) => answer.clone(),
            Validated::Token(entry) => {
                let claims = &entry.claims;
                ValidateResponse {
                    valid: true,
                    user_id: claims.sub.clone(),
                    email: claims.email.clone().unwrap_or_default(),
                    permissions: claims.permissions.clone(),
                    roles: claims.roles.clone(),
                    token_type: claims.token_type.as_str().to_owned(),
                    expires_at: Some(rfc3339(claims.expires_at())),
                }
            }
        }
    }

    /// For a verified access token, the handle of its cached verification (see
    /// [`TokenHandle`]); `None` for an API key, whose answer can change while it is cached.
    pub fn token_handle(&self) -> Option<TokenHandle> {
        match &self.what {
            Validated::Token(entry) => Some(TokenHandle(entry.clone())),
            Validated::ApiKey(_) => None,
        }
    }
}

/// The auth component, shared by its HTTP handlers.
pub struct AuthService {
    settings: AuthSettings,
    store: Store,
    clock: SharedClock,
    /// The signing keys and when they were read from the store.
    keys: RwLock<(Arc<KeySet>, SystemTime)>,
    issuer: TokenIssuer,
    verifier: TokenVerifier,
    hasher: PasswordHasher,
    throttle: LoginThrottle,
    /// OAuth login providers and the `redirect_uri` allow-list.
    providers: crate::oauth::Providers,
    redirects: crate::oauth::RedirectAllowlist,
    /// Session id → (when the store was asked, revoked?).
    revocations: Mutex<HashMap<String, (SystemTime, bool)>>,
    /// Successful validations of access tokens and API keys.
    validations: cache::ValidationCache,
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService")
            .field("issuer", &self.settings.issuer)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl AuthService {
    /// Loads (or, on first start, makes and stores) the signing key and returns the service.
    pub async fn start(
        settings: AuthSettings,
        store: Store,
        clock: SharedClock,
    ) -> Result<Arc<Self>, AuthError> {
        let keys = keys::load_keys(&store, clock.system_now()).await?;
        let mut audiences = vec![USER_AUDIENCE.to_owned()];
        for client in &settings.clients {
            audiences.extend(client.audiences.iter().cloned());
        }
        Ok(Arc::new(Self {
            issuer: TokenIssuer::new(settings.issuer.clone(), settings.access_token_ttl),
            verifier: TokenVerifier::new(settings.issuer.clone(), audiences),
            hasher: PasswordHasher::with_priority(
                settings.password_hash_concurrency.max(1),
                settings.password_hash_priority,
            ),
            providers: crate::oauth::Providers::new(&settings.providers)?,
            redirects: crate::oauth::RedirectAllowlist::new(&settings.redirect_allowlist),
            throttle: LoginThrottle::with_defaults(clock.clone()),
            keys: RwLock::new((Arc::new(keys), clock.system_now())),
            revocations: Mutex::new(HashMap::new()),
            validations: cache::ValidationCache::new(settings.access_token_ttl),
            settings,
            store,
            clock,
        }))
    }

    /// Whether any user holds the `admin` role (`portico up` says how to make the first).
    pub async fn has_admin(&self) -> Result<bool, AuthError> {
        self.store.role_is_held("admin").await.map_err(store_error)
    }

    /// The settings in force.
    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// The published verification keys as a JWKS document.
    pub async fn jwks(&self) -> serde_json::Value {
        self.key_set().await.jwks_at(self.clock.system_now())
    }

    /// `POST /auth/register`.
    pub async fn register(&self, req: RegisterRequest) -> Result<TokenResponse, AuthError> {
        let role = self.settings.default_role.clone();
        let user = self
            .create_account(&req.email, req.name.as_deref(), &req.password, &role, None)
            .await?;
        self.new_session(&user).await
    }

    /// Checks and creates a password account holding `role`; `actor` (who made it, when
    /// not the user) goes to the audit log.
    async fn create_account(
        &self,
        email: &str,
        name: Option<&str>,
        password: &str,
        role: &str,
        actor: Option<&str>,
    ) -> Result<User, AuthError> {
        let email = email.trim();
        check_email(email)?;
        if name.is_some_and(|n| n.chars().count() > 200) {
            return Err(AuthError::field("name", "must be at most 200 characters"));
        }
        check_policy(password, email).map_err(|e| AuthError::field(e.field(), e.to_string()))?;
        let hash = self.hasher.hash(password).await.map_err(internal)?;
        let now = self.clock.system_now();
        let new = NewUser {
            email,
            name,
            password_hash: Some(&hash),
            email_verified: false,
        };
        let user = self
            .store
            .create_user(&new, now)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => AuthError::AccountExists,
                other => store_error(other),
            })?;
        self.store
            .grant_role(&user.id, role, now)
            .await
            .map_err(store_error)?;
        self.audit(audit_kind::USER_CREATED, Some(&user.id), actor, None)
            .await;
        Ok(user)
    }

    /// `POST /auth/login`; `address` is the client's IP for throttling.
    pub async fn login(
        &self,
        req: LoginRequest,
        address: &str,
    ) -> Result<TokenResponse, AuthError> {
        let account = normalize_email(&req.email);
        if let Some(retry_after) = self.throttle.blocked(&account, address) {
            return Err(AuthError::Throttled { retry_after });
        }
        let user = self
            .store
            .user_by_email(&account)
            .await
            .map_err(store_error)?;
        let stored = match &user {
            Some(user) => self
                .store
                .password_hash(&user.id)
                .await
                .map_err(store_error)?,
            None => None,
        };
        let verified = match (&user, stored) {
            (Some(user), Some(hash)) => self
                .hasher
                .verify(&req.password, &hash)
                .await
                .map_err(internal)?
                .then_some(user),
            _ => {
                // Same work as a wrong password, so the answer's timing says nothing.
                self.hasher.verify_unknown_user(&req.password).await;
                None
            }
        };
        let Some(user) = verified else {
            self.throttle.failed(&account, address);
            let user_id = user.as_ref().map(|u| u.id.as_str());
            self.audit(audit_kind::LOGIN_FAILED, user_id, None, Some(address))
                .await;
            return Err(AuthError::InvalidCredentials);
        };
        self.throttle.succeeded(&account);
        self.audit(
            audit_kind::LOGIN_SUCCEEDED,
            Some(&user.id),
            None,
            Some(address),
        )
        .await;
        self.new_session(user).await
    }

    /// `POST /auth/refresh`: rotates the refresh token; a reused one revokes its session.
    pub async fn refresh(&self, req: RefreshRequest) -> Result<TokenResponse, AuthError> {
        let now = self.clock.system_now();
        let next = refresh_token();
        let outcome = self
            .store
            .rotate_refresh(
                &hash_secret(&req.refresh_token),
                &hash_secret(&next),
                now + self.settings.refresh_token_ttl,
                now,
            )
            .await
            .map_err(store_error)?;
        match outcome {
            RotateOutcome::Rotated { session } => {
                let user = self
                    .store
                    .user_by_id(&session.user_id)
                    .await
                    .map_err(store_error)?
                    .ok_or_else(|| AuthError::Revoked("account no longer exists".into()))?;
                self.tokens(&user, &session.id, next).await
            }
            RotateOutcome::Reused {
                session_id,
                user_id,
                ..
            } => {
                self.revoke(&session_id, "refresh token reused").await?;
                tracing::warn!(session = %session_id, user = %user_id, "refresh token reused: session revoked");
                self.audit(audit_kind::REFRESH_REUSED, Some(&user_id), None, None)
                    .await;
                Err(AuthError::Revoked("refresh token reused".into()))
            }
            RotateOutcome::Revoked { .. } => Err(AuthError::Revoked("session ended".into())),
            RotateOutcome::Expired { .. } => Err(AuthError::Expired),
            RotateOutcome::Unknown => Err(AuthError::InvalidToken("unknown refresh token".into())),
        }
    }

    /// `POST /auth/logout`: ends the bearer's session (and the one of `refresh_token`, when
    /// it is the same user's).
    pub async fn logout(&self, bearer: &str, req: LogoutRequest) -> Result<(), AuthError> {
        let claims = self.verify_access(bearer).await?;
        if let Some(sid) = &claims.sid {
            self.revoke(sid, "logout").await?;
        }
        if let Some(refresh) = &req.refresh_token {
            let session = self
                .store
                .session_by_refresh_hash(&hash_secret(refresh))
                .await
                .map_err(store_error)?;
            if let Some(session) = session.filter(|s| s.user_id == claims.sub) {
                self.revoke(&session.id, "logout").await?;
            }
        }
        self.audit(audit_kind::LOGOUT, Some(&claims.sub), None, None)
            .await;
        Ok(())
    }

    /// `POST /auth/validate`: an access token, service token or API key.
    pub async fn validate(&self, token: &str) -> Result<ValidateResponse, AuthError> {
        Ok(self.validate_in_process(token).await?.answer())
    }

    /// [`Self::validate`] for a caller in the same process (the gateway of `portico up`):
    /// the answer, with the expiry as a time and the SHA-256 of `token` that the validation
    /// cache was keyed by, so that the caller need not hash the token again nor parse the
    /// expiry back from text.
    pub async fn validate_in_process(&self, token: &str) -> Result<InProcessValidation, AuthError> {
        let digest = cache::digest(token);
        if let Some((prefix, full)) = ApiKey::parse(token) {
            let answer = self.validate_api_key(prefix, full, digest).await?;
            let expires_at = answer
                .expires_at
                .as_deref()
                .and_then(|t| humantime::parse_rfc3339(t).ok());
            return Ok(InProcessValidation {
                expires_at,
                digest,
                what: Validated::ApiKey(answer),
            });
        }
        let verified = self.verify_access_cached(token, digest).await?;
        Ok(InProcessValidation {
            expires_at: Some(verified.claims.expires_at()),
            digest,
            what: Validated::Token(verified),
        })
    }

    /// `GET /auth/me`.
    pub async fn me(&self, bearer: &str) -> Result<UserView, AuthError> {
        let claims = self.verify_user(bearer).await?;
        let user = self
            .store
            .user_by_id(&claims.sub)
            .await
            .map_err(store_error)?
            .ok_or(AuthError::NotFound)?;
        self.user_view(&user).await
    }

    // === tokens and sessions ===

    async fn new_session(&self, user: &User) -> Result<TokenResponse, AuthError> {
        let now = self.clock.system_now();
        let refresh = refresh_token();
        let session = self
            .store
            .create_session(
                &user.id,
                &hash_secret(&refresh),
                now + self.settings.refresh_token_ttl,
                now,
            )
            .await
            .map_err(store_error)?;
        self.tokens(user, &session.id, refresh).await
    }

    async fn tokens(
        &self,
        user: &User,
        session_id: &str,
        refresh: String,
    ) -> Result<TokenResponse, AuthError> {
        let view = self.user_view(user).await?;
        let claims = AccessClaims {
            email: Some(user.email.clone()),
            permissions: view.permissions.clone(),
            roles: view.roles.clone(),
            sid: Some(session_id.to_owned()),
            ..self.issuer.claims(
                &user.id,
                TokenType::User,
                vec![USER_AUDIENCE.to_owned()],
                self.clock.system_now(),
            )
        };
        let access_token = self
            .issuer
            .issue(&*self.key_set().await, &claims)
            .map_err(internal)?;
        Ok(TokenResponse {
            user: view,
            access_token,
            refresh_token: refresh,
            token_type: "Bearer".into(),
            expires_in: self.settings.access_token_ttl.as_secs(),
        })
    }

    async fn user_view(&self, user: &User) -> Result<UserView, AuthError> {
        let roles = self.store.roles_of(&user.id).await.map_err(store_error)?;
        let permissions = self
            .settings
            .roles
            .permissions_for(roles.iter().map(String::as_str));
        Ok(UserView {
            id: user.id.clone(),
            email: user.email.clone(),
            name: user.name.clone(),
            roles,
            permissions,
            created_at: rfc3339(user.created_at),
        })
    }

    /// Like [`Self::verify_access`], for endpoints that act for a user (not a service).
    async fn verify_user(&self, token: &str) -> Result<AccessClaims, AuthError> {
        let claims = self.verify_access(token).await?;
        if claims.token_type != TokenType::User {
            return Err(AuthError::Forbidden("not a user token".into()));
        }
        Ok(claims)
    }

    /// Verifies an access token and refuses it if its session was revoked.
    async fn verify_access(&self, token: &str) -> Result<AccessClaims, AuthError> {
        Ok(self
            .verify_access_cached(token, cache::digest(token))
            .await?
            .claims
            .clone())
    }

    /// [`Self::verify_access`] through the validation cache: a token verified before is
    /// taken from the cache while `now` is before its `exp` and its signing key is still
    /// accepted; its session's revocation is checked every time.
    /// `digest` is `cache::digest(token)`, computed by the caller (who may need it too).
    async fn verify_access_cached(
        &self,
        token: &str,
        digest: Option<cache::Digest>,
    ) -> Result<Arc<cache::CachedToken>, AuthError> {
        let now = self.clock.system_now();
        let keys = self.key_set().await;
        let cached = digest.as_ref().and_then(|d| {
            let entry = self.validations.token(d, now)?;
            if keys.verifying_key_at(&entry.kid, now).is_some() {
                Some(entry)
            } else {
                self.validations.drop_token(d);
                None
            }
        });
        let entry = match cached {
            Some(entry) => entry,
            None => {
                let claims = match self.verifier.verify(&keys, token, now) {
                    Err(TokenError::UnknownKid(_)) => {
                        // A key rotated by another instance or the admin CLI: reload once.
                        let keys = self.reload_keys(now).await?;
                        self.verifier.verify(&keys, token, now)
                    }
                    other => other,
                }
                .map_err(|e| match e {
                    TokenError::Expired => AuthError::Expired,
                    // The reason alone: AuthError's message already says "invalid token".
                    TokenError::Invalid(reason) => AuthError::InvalidToken(reason.to_string()),
                    other => AuthError::InvalidToken(other.to_string()),
                })?;
                let entry = Arc::new(cache::CachedToken::new(token, claims, now));
                if let Some(digest) = digest {
                    self.validations.put_token(digest, entry.clone());
                }
                entry
            }
        };
        if let Some(sid) = &entry.claims.sid
            && self.is_revoked(sid).await?
        {
            return Err(AuthError::Revoked("session ended".into()));
        }
        Ok(entry)
    }

    async fn is_revoked(&self, sid: &str) -> Result<bool, AuthError> {
        let now = self.clock.system_now();
        if let Some((checked, revoked)) = self.revocations().get(sid).copied()
            && (revoked || now.duration_since(checked).unwrap_or_default() < REVOCATION_RECHECK)
        {
            return Ok(revoked);
        }
        let revoked = self
            .store
            .is_session_revoked(sid)
            .await
            .map_err(store_error)?;
        let mut cache = self.revocations();
        if cache.len() > 100_000 {
            // Bounded: forget the oldest answers (revoked sessions are in the store anyway).
            cache.retain(|_, (checked, _)| {
                now.duration_since(*checked).unwrap_or_default() < self.settings.access_token_ttl
            });
        }
        cache.insert(sid.to_owned(), (now, revoked));
        Ok(revoked)
    }

    async fn revoke(&self, sid: &str, reason: &str) -> Result<(), AuthError> {
        let now = self.clock.system_now();
        self.store
            .revoke_session(sid, reason, now)
            .await
            .map_err(store_error)?;
        self.revocations().insert(sid.to_owned(), (now, true));
        Ok(())
    }

    fn revocations(&self) -> std::sync::MutexGuard<'_, HashMap<String, (SystemTime, bool)>> {
        self.revocations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The signing keys, re-read from the store when older than [`KEY_RELOAD`] (a failed
    /// re-read keeps the keys in hand and is logged).
    async fn key_set(&self) -> Arc<KeySet> {
        let now = self.clock.system_now();
        let (keys, loaded) = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if now.duration_since(loaded).unwrap_or_default() < KEY_RELOAD {
            return keys;
        }
        match self.reload_keys(now).await {
            Ok(fresh) => fresh,
            Err(e) => {
                tracing::warn!(error = %e, "could not re-read the signing keys; keeping the loaded ones");
                keys
            }
        }
    }

    async fn reload_keys(&self, now: SystemTime) -> Result<Arc<KeySet>, AuthError> {
        let fresh = Arc::new(keys::load_keys(&self.store, now).await?);
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = (fresh.clone(), now);
        Ok(fresh)
    }

    /// Appends an audit event; a failure is logged, never fatal to the request.
    async fn audit(
        &self,
        kind: &str,
        user_id: Option<&str>,
        actor: Option<&str>,
        ip: Option<&str>,
    ) {
        let event = NewAuditEvent {
            kind,
            user_id,
            actor,
            ip,
            detail: serde_json::Value::Object(Default::default()),
        };
        if let Err(e) = self
            .store
            .append_audit(&event, self.clock.system_now())
            .await
        {
            tracing::warn!(error = %e, kind, "could not write audit event");
        }
    }
}

fn check_email(email: &str) -> Result<(), AuthError> {
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(char::is_whitespace);
    if valid {
        Ok(())
    } else {
        Err(AuthError::field("email", "must be an email address"))
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn store_error(e: StoreError) -> AuthError {
    match e {
        StoreError::NotFound => AuthError::NotFound,
        StoreError::Unavailable(_) => AuthError::StoreUnavailable,
        StoreError::Conflict(what) => AuthError::Internal(format!("unexpected conflict on {what}")),
        other => AuthError::Internal(format!("{other}: {:?}", std::error::Error::source(&other))),
    }
}

fn internal(e: impl std::fmt::Display) -> AuthError {
    AuthError::Internal(e.to_string())
}
