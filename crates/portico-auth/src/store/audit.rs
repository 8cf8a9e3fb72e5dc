//! The audit trail: security-relevant events (logins, refresh-token reuse, keys and roles
//! changing hands), appended and never edited.
//!
//! An event has no foreign key to its user, so the trail outlives the account. Kinds are
//! free text; [`audit_kind`] names the ones the auth component writes.

use std::time::SystemTime;

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Store, StoreError, millis, new_id, time, truncate};

/// The event kinds the auth component writes.
pub mod audit_kind {
    /// A password login succeeded.
    pub const LOGIN_SUCCEEDED: &str = "login.succeeded";
    /// A password login failed (unknown email or wrong password).
    pub const LOGIN_FAILED: &str = "login.failed";
    /// An OAuth login succeeded.
    pub const OAUTH_LOGIN: &str = "oauth.login";
    /// A provider account was linked to an existing user by its verified email.
    pub const OAUTH_LINKED: &str = "oauth.linked";
    /// Linking proved the email of an account that had never been verified: its earlier
    /// password, sessions and API keys were ended (they may have been set by someone else).
    pub const OAUTH_TAKEOVER_GUARD: &str = "oauth.unverified_credentials_ended";
    /// A user account was created.
    pub const USER_CREATED: &str = "user.created";
    /// A used refresh token was presented again; its session was revoked.
    pub const REFRESH_REUSED: &str = "refresh.reused";
    /// A session was ended by logout.
    pub const LOGOUT: &str = "session.logout";
    /// An API key was created.
    pub const API_KEY_CREATED: &str = "api_key.created";
    /// An API key was deleted.
    pub const API_KEY_DELETED: &str = "api_key.deleted";
    /// A role was granted.
    pub const ROLE_GRANTED: &str = "role.granted";
    /// A role was revoked.
    pub const ROLE_REVOKED: &str = "role.revoked";
    /// The signing keys were rotated.
    pub const SIGNING_KEY_ROTATED: &str = "signing_key.rotated";
}

/// What [`Store::append_audit`] records.
#[derive(Debug, Clone)]
pub struct NewAuditEvent<'a> {
    /// What happened (see [`audit_kind`]).
    pub kind: &'a str,
    /// The user it happened to, if any.
    pub user_id: Option<&'a str>,
    /// Who did it, when not the user (`"admin-cli"`, an admin's user id, a service).
    pub actor: Option<&'a str>,
    /// The client address.
    pub ip: Option<&'a str>,
    /// Anything else worth keeping (a JSON object by convention; no secrets).
    pub detail: serde_json::Value,
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// Random id (32 hex characters).
    pub id: String,
    /// When it happened.
    pub at: SystemTime,
    /// What happened.
    pub kind: String,
    /// The user it happened to.
    pub user_id: Option<String>,
    /// Who did it.
    pub actor: Option<String>,
    /// The client address.
    pub ip: Option<String>,
    /// Anything else recorded.
    pub detail: serde_json::Value,
}

/// Which events [`Store::recent_audit`] returns.
#[derive(Debug, Clone, Copy)]
pub struct AuditQuery<'a> {
    /// Only events about this user.
    pub user_id: Option<&'a str>,
    /// Only events of this kind.
    pub kind: Option<&'a str>,
    /// At most this many, newest first.
    pub limit: u32,
}

fn event_from_row(row: &AnyRow) -> Result<AuditEvent, StoreError> {
    let read = || -> Result<_, sqlx::Error> {
        Ok((
            AuditEvent {
                id: row.try_get("id")?,
                at: time(row.try_get("at")?),
                kind: row.try_get("kind")?,
                user_id: row.try_get("user_id")?,
                actor: row.try_get("actor")?,
                ip: row.try_get("ip")?,
                detail: serde_json::Value::Null,
            },
            row.try_get::<String, _>("detail")?,
        ))
    };
    let (mut event, detail) = read().map_err(StoreError::from_sqlx)?;
    event.detail =
        serde_json::from_str(&detail).map_err(|e| StoreError::corrupt("audit detail", e))?;
    Ok(event)
}

// === impl Store: audit ===

impl Store {
    /// Appends an event that happened at `now`.
    pub async fn append_audit(
        &self,
        event: &NewAuditEvent<'_>,
        now: SystemTime,
    ) -> Result<AuditEvent, StoreError> {
        let recorded = AuditEvent {
            id: new_id(),
            at: truncate(now),
            kind: event.kind.to_owned(),
            user_id: event.user_id.map(str::to_owned),
            actor: event.actor.map(str::to_owned),
            ip: event.ip.map(str::to_owned),
            detail: event.detail.clone(),
        };
        sqlx::query(
            "INSERT INTO audit_events (id, at, kind, user_id, actor, ip, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&recorded.id)
        .bind(millis(now))
        .bind(event.kind)
        .bind(event.user_id)
        .bind(event.actor)
        .bind(event.ip)
        .bind(event.detail.to_string())
        .execute(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        Ok(recorded)
    }

    /// The newest events matching `query`, newest first.
    pub async fn recent_audit(
        &self,
        query: &AuditQuery<'_>,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        const SELECT: &str = "SELECT id, at, kind, user_id, actor, ip, detail FROM audit_events";
        const ORDER: &str = "ORDER BY at DESC, id DESC LIMIT $1";
        // One statement per filter, so each can use its index.
        let sql = match (query.user_id, query.kind) {
            (None, None) => format!("{SELECT} {ORDER}"),
            (Some(_), None) => format!("{SELECT} WHERE user_id = $2 {ORDER}"),
            (None, Some(_)) => format!("{SELECT} WHERE kind = $2 {ORDER}"),
            (Some(_), Some(_)) => format!("{SELECT} WHERE user_id = $2 AND kind = $3 {ORDER}"),
        };
        let mut statement = sqlx::query(&sql).bind(i64::from(query.limit));
        for value in [query.user_id, query.kind].into_iter().flatten() {
            statement = statement.bind(value);
        }
        let rows = statement
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        rows.iter().map(event_from_row).collect()
    }
}
