//! Sessions and their refresh tokens.
//!
//! A session is one login and the family of refresh tokens rotated out of it: each token is
//! used once, by [`Store::rotate_refresh`], which marks it used and stores its successor in
//! one transaction (see the [module docs](super) for why exactly one concurrent rotation
//! wins). Presenting a used token again is [`RotateOutcome::Reused`] — a sign the token was
//! copied — and the caller revokes the session, which ends the whole family: its tokens stop
//! rotating and [`Store::is_session_revoked`] turns true for the access tokens naming it.

use std::time::SystemTime;

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Store, StoreError, millis, new_id, time, truncate};

/// One login: a refresh-token family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Random id (32 hex characters); access tokens carry it as `sid`.
    pub id: String,
    /// Whose session it is.
    pub user_id: String,
    /// When the user logged in.
    pub created_at: SystemTime,
    /// When a refresh token of the session was last rotated.
    pub last_used_at: SystemTime,
    /// When the session was ended, if it was.
    pub revoked_at: Option<SystemTime>,
    /// Why (`"logout"`, `"refresh token reuse"`, …), as the revoker said.
    pub revoked_reason: Option<String>,
}

/// What presenting a refresh token to [`Store::rotate_refresh`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The token was valid and is now used; the new one is stored. `session.user_id` says
    /// whose it is.
    Rotated {
        /// The session, with `last_used_at` updated.
        session: Session,
    },
    /// The token had already been used: the caller should revoke the session (AUTH_007)
    /// and write the reuse to the audit log.
    Reused {
        /// The session (family) the token belongs to.
        session_id: String,
        /// Whose session it is.
        user_id: String,
        /// When the token was first used.
        used_at: SystemTime,
    },
    /// No such token (never issued, or purged after it expired).
    Unknown,
    /// The token expired unused.
    Expired {
        /// The session it belongs to.
        session_id: String,
    },
    /// The token's session was revoked.
    Revoked {
        /// The session it belongs to.
        session_id: String,
    },
}

const SESSION_COLUMNS: &str = "id, user_id, created_at, last_used_at, revoked_at, revoked_reason";

fn session_from_row(row: &AnyRow) -> Result<Session, sqlx::Error> {
    Ok(Session {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        created_at: time(row.try_get("created_at")?),
        last_used_at: time(row.try_get("last_used_at")?),
        revoked_at: row.try_get::<Option<i64>, _>("revoked_at")?.map(time),
        revoked_reason: row.try_get("revoked_reason")?,
    })
}

// === impl Store: sessions ===

impl Store {
    /// Starts a session for the user at `now`, with its first refresh token (stored as
    /// `refresh_hash`, valid until `refresh_expires_at`).
    ///
    /// [`StoreError::NotFound`] for an unknown user.
    pub async fn create_session(
        &self,
        user_id: &str,
        refresh_hash: &str,
        refresh_expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<Session, StoreError> {
        let session = Session {
            id: new_id(),
            user_id: user_id.to_owned(),
            created_at: truncate(now),
            last_used_at: truncate(now),
            revoked_at: None,
            revoked_reason: None,
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, last_used_at) VALUES ($1, $2, $3, $3)",
        )
        .bind(&session.id)
        .bind(user_id)
        .bind(millis(now))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::conflict_or_missing("session"))?;
        sqlx::query(
            "INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(refresh_hash)
        .bind(&session.id)
        .bind(millis(now))
        .bind(millis(refresh_expires_at))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::conflict_on("refresh token"))?;
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(session)
    }

    /// Uses the refresh token stored as `old_hash` at `now`: if it is unused, unexpired and
    /// its session live, it is marked used and `new_hash` (valid until `new_expires_at`)
    /// joins the session in its place — atomically, so of concurrent calls with the same
    /// `old_hash` exactly one returns [`RotateOutcome::Rotated`].
    pub async fn rotate_refresh(
        &self,
        old_hash: &str,
        new_hash: &str,
        new_expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<RotateOutcome, StoreError> {
        let now_ms = millis(now);
        let mut tx = self.begin_write().await?;
        // The whole single-use guarantee is this statement's WHERE clause.
        let session_id: Option<String> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET used_at = $2, replaced_by = $3 \
             WHERE hash = $1 AND used_at IS NULL AND expires_at > $2 \
             AND EXISTS (SELECT 1 FROM sessions s \
                         WHERE s.id = refresh_tokens.session_id AND s.revoked_at IS NULL) \
             RETURNING session_id",
        )
        .bind(old_hash)
        .bind(now_ms)
        .bind(new_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        let Some(session_id) = session_id else {
            // Nothing changed; end the transaction before finding out why.
            tx.rollback().await.map_err(StoreError::from_sqlx)?;
            return self.why_not_rotated(old_hash, now_ms).await;
        };
        sqlx::query(
            "INSERT INTO refresh_tokens (hash, session_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(new_hash)
        .bind(&session_id)
        .bind(now_ms)
        .bind(millis(new_expires_at))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::conflict_on("refresh token"))?;
        let row = sqlx::query(&format!(
            "UPDATE sessions SET last_used_at = $2 WHERE id = $1 RETURNING {SESSION_COLUMNS}"
        ))
        .bind(&session_id)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        let session = session_from_row(&row).map_err(StoreError::from_sqlx)?;
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(RotateOutcome::Rotated { session })
    }

    /// Why the rotation `UPDATE` matched nothing. The states it tests only ever move one
    /// way (unused → used, live → revoked, valid → expired), so what is read here is what
    /// stopped the rotation, or a later state of it.
    async fn why_not_rotated(&self, hash: &str, now_ms: i64) -> Result<RotateOutcome, StoreError> {
        let row = sqlx::query(
            "SELECT t.session_id, t.expires_at, t.used_at, s.user_id, s.revoked_at \
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.hash = $1",
        )
        .bind(hash)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        let Some(row) = row else {
            return Ok(RotateOutcome::Unknown);
        };
        let read = || -> Result<_, sqlx::Error> {
            Ok((
                row.try_get::<String, _>("session_id")?,
                row.try_get::<i64, _>("expires_at")?,
                row.try_get::<Option<i64>, _>("used_at")?,
                row.try_get::<String, _>("user_id")?,
                row.try_get::<Option<i64>, _>("revoked_at")?,
            ))
        };
        let (session_id, expires_at, used_at, user_id, revoked_at) =
            read().map_err(StoreError::from_sqlx)?;
        Ok(match (revoked_at, used_at) {
            (Some(_), _) => RotateOutcome::Revoked { session_id },
            (None, Some(used_at)) => RotateOutcome::Reused {
                session_id,
                user_id,
                used_at: time(used_at),
            },
            (None, None) if expires_at <= now_ms => RotateOutcome::Expired { session_id },
            // Unused, unexpired, live, yet not rotated: a clock that went backwards between
            // the two statements. Refuse rather than guess.
            (None, None) => RotateOutcome::Unknown,
        })
    }

    /// The session with this id.
    pub async fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        row.as_ref()
            .map(session_from_row)
            .transpose()
            .map_err(StoreError::from_sqlx)
    }

    /// The session a refresh token (by its hash) belongs to, used or not — for logout with
    /// a refresh token. The caller checks the session is the bearer's.
    pub async fn session_by_refresh_hash(&self, hash: &str) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions \
             WHERE id = (SELECT session_id FROM refresh_tokens WHERE hash = $1)"
        ))
        .bind(hash)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        row.as_ref()
            .map(session_from_row)
            .transpose()
            .map_err(StoreError::from_sqlx)
    }

    /// The user's sessions, live and revoked, newest first.
    pub async fn sessions_of_user(&self, user_id: &str) -> Result<Vec<Session>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 \
             ORDER BY created_at DESC, id DESC"
        ))
        .bind(user_id)
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        rows.iter()
            .map(session_from_row)
            .collect::<Result<_, _>>()
            .map_err(StoreError::from_sqlx)
    }

    /// Whether access tokens naming this session must be refused: it was revoked, or it is
    /// unknown (fail closed). One primary-key lookup.
    pub async fn is_session_revoked(&self, id: &str) -> Result<bool, StoreError> {
        let revoked_at: Option<Option<i64>> =
            sqlx::query_scalar("SELECT revoked_at FROM sessions WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await
                .map_err(StoreError::from_sqlx)?;
        Ok(!matches!(revoked_at, Some(None)))
    }

    /// Ends the session (the whole refresh-token family) at `now`, for `reason`.
    /// `Ok(true)` when this call ended it; `Ok(false)` when it was already ended or unknown
    /// (the first reason stays).
    pub async fn revoke_session(
        &self,
        id: &str,
        reason: &str,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 \
             WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(millis(now))
        .bind(reason)
        .execute(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends every live session of the user; returns how many.
    pub async fn revoke_all_sessions_of_user(
        &self,
        user_id: &str,
        reason: &str,
        now: SystemTime,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 \
             WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user_id)
        .bind(millis(now))
        .bind(reason)
        .execute(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        Ok(done.rows_affected())
    }
}
