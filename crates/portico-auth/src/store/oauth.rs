//! OAuth/OIDC: which provider account logs in as which user, and the state of logins in
//! flight.
//!
//! A login state is written when the user is sent to the provider and consumed when the
//! provider sends them back. Consuming is one `UPDATE … WHERE used_at IS NULL AND
//! expires_at > now RETURNING …`, so a state works once, before it expires, however many
//! callbacks race with it; a forged, replayed or late state gives `None` (AUTH_004).

use std::time::SystemTime;

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Store, StoreError, millis, time};

/// A provider account linked to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthIdentity {
    /// Provider name from the config (`"google"`, `"github"`, …).
    pub provider: String,
    /// The provider's stable id for the account (`sub`).
    pub subject: String,
    /// The user it logs in as.
    pub user_id: String,
    /// The email the provider gave when the link was made.
    pub email: Option<String>,
    /// When the link was made.
    pub created_at: SystemTime,
}

/// A login in flight: what the callback needs to finish it.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthState {
    /// The `state` parameter sent to the provider (random, single use).
    pub state: String,
    /// Which provider the user was sent to.
    pub provider: String,
    /// The PKCE code verifier whose S256 challenge was sent.
    pub pkce_verifier: String,
    /// The OIDC `nonce` the ID token must carry.
    pub nonce: String,
    /// Where to send the user with their tokens (already checked against the allow-list).
    pub redirect_uri: String,
    /// When the login started.
    pub created_at: SystemTime,
    /// When the state stops being accepted.
    pub expires_at: SystemTime,
}

impl std::fmt::Debug for OAuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthState")
            .field("provider", &self.provider)
            .field("state", &"***")
            .field("pkce_verifier", &"***")
            .field("redirect_uri", &self.redirect_uri)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

const IDENTITY_COLUMNS: &str = "provider, subject, user_id, email, created_at";

fn identity_from_row(row: &AnyRow) -> Result<OAuthIdentity, sqlx::Error> {
    Ok(OAuthIdentity {
        provider: row.try_get("provider")?,
        subject: row.try_get("subject")?,
        user_id: row.try_get("user_id")?,
        email: row.try_get("email")?,
        created_at: time(row.try_get("created_at")?),
    })
}

fn state_from_row(row: &AnyRow) -> Result<OAuthState, sqlx::Error> {
    Ok(OAuthState {
        state: row.try_get("state")?,
        provider: row.try_get("provider")?,
        pkce_verifier: row.try_get("pkce_verifier")?,
        nonce: row.try_get("nonce")?,
        redirect_uri: row.try_get("redirect_uri")?,
        created_at: time(row.try_get("created_at")?),
        expires_at: time(row.try_get("expires_at")?),
    })
}

// === impl Store: OAuth ===

impl Store {
    /// Links the provider account to the user at `now`, and returns the link. Linking the
    /// same account to the same user again returns the existing link.
    ///
    /// [`StoreError::Conflict`]`("identity")` when the account is linked to another user;
    /// [`StoreError::NotFound`] for an unknown user.
    pub async fn link_identity(
        &self,
        provider: &str,
        subject: &str,
        user_id: &str,
        email: Option<&str>,
        now: SystemTime,
    ) -> Result<OAuthIdentity, StoreError> {
        sqlx::query(
            "INSERT INTO oauth_identities (provider, subject, user_id, email, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (provider, subject) DO NOTHING",
        )
        .bind(provider)
        .bind(subject)
        .bind(user_id)
        .bind(email)
        .bind(millis(now))
        .execute(self.pool())
        .await
        .map_err(StoreError::conflict_or_missing("identity"))?;
        match self.identity(provider, subject).await? {
            Some(identity) if identity.user_id == user_id => Ok(identity),
            Some(_) => Err(StoreError::Conflict("identity")),
            // Unlinked between the two statements (the user was deleted).
            None => Err(StoreError::NotFound),
        }
    }

    /// The link of this provider account, if there is one.
    pub async fn identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<OAuthIdentity>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {IDENTITY_COLUMNS} FROM oauth_identities WHERE provider = $1 AND subject = $2"
        ))
        .bind(provider)
        .bind(subject)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        row.as_ref()
            .map(identity_from_row)
            .transpose()
            .map_err(StoreError::from_sqlx)
    }

    /// The provider accounts linked to the user, oldest first.
    pub async fn identities_of_user(
        &self,
        user_id: &str,
    ) -> Result<Vec<OAuthIdentity>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {IDENTITY_COLUMNS} FROM oauth_identities WHERE user_id = $1 \
             ORDER BY created_at, provider, subject"
        ))
        .bind(user_id)
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        rows.iter()
            .map(identity_from_row)
            .collect::<Result<_, _>>()
            .map_err(StoreError::from_sqlx)
    }

    /// Stores a login in flight. [`StoreError::Conflict`]`("oauth state")` if the state
    /// value is taken (draw another).
    pub async fn create_oauth_state(&self, state: &OAuthState) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oauth_states (state, provider, pkce_verifier, nonce, redirect_uri, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&state.state)
        .bind(&state.provider)
        .bind(&state.pkce_verifier)
        .bind(&state.nonce)
        .bind(&state.redirect_uri)
        .bind(millis(state.created_at))
        .bind(millis(state.expires_at))
        .execute(self.pool())
        .await
        .map_err(StoreError::conflict_on("oauth state"))?;
        Ok(())
    }

    /// Takes the login in flight with this `state` at `now`: `Some` once, for an unexpired
    /// state; `None` for an unknown, used or expired one.
    pub async fn consume_oauth_state(
        &self,
        state: &str,
        now: SystemTime,
    ) -> Result<Option<OAuthState>, StoreError> {
        let row = sqlx::query(
            "UPDATE oauth_states SET used_at = $2 \
             WHERE state = $1 AND used_at IS NULL AND expires_at > $2 \
             RETURNING state, provider, pkce_verifier, nonce, redirect_uri, created_at, \
             expires_at",
        )
        .bind(state)
        .bind(millis(now))
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        row.as_ref()
            .map(state_from_row)
            .transpose()
            .map_err(StoreError::from_sqlx)
    }
}
