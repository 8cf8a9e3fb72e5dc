//! Users, their role grants and their password credentials.
//!
//! An email is unique regardless of case: the `email_normalized` column ([`normalize_email`])
//! carries the UNIQUE index and every lookup goes through it, while `email` keeps what the
//! user typed for display.

use std::time::SystemTime;

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Store, StoreError, millis, new_id, time, truncate};

/// An account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Random id (32 hex characters).
    pub id: String,
    /// The email as given at registration.
    pub email: String,
    /// Display name.
    pub name: Option<String>,
    /// When the email was verified (by an OAuth provider), if it was.
    pub email_verified_at: Option<SystemTime>,
    /// When the account was made.
    pub created_at: SystemTime,
    /// When the email, name or verification last changed.
    pub updated_at: SystemTime,
}

/// What [`Store::create_user`] needs.
#[derive(Clone, Copy)]
pub struct NewUser<'a> {
    /// Email, already checked for shape by the caller.
    pub email: &'a str,
    /// Display name.
    pub name: Option<&'a str>,
    /// The password's PHC string, stored with the user in one transaction.
    pub password_hash: Option<&'a str>,
    /// Whether the email is known to be verified (an OAuth provider said so).
    pub email_verified: bool,
}

impl std::fmt::Debug for NewUser<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("email", &self.email)
            .field("name", &self.name)
            .field("password_hash", &self.password_hash.map(|_| "***"))
            .field("email_verified", &self.email_verified)
            .finish()
    }
}

/// The form of an email the store compares: surrounding whitespace removed, lowercased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

const USER_COLUMNS: &str = "id, email, name, email_verified_at, created_at, updated_at";

fn user_from_row(row: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        email_verified_at: row
            .try_get::<Option<i64>, _>("email_verified_at")?
            .map(time),
        created_at: time(row.try_get("created_at")?),
        updated_at: time(row.try_get("updated_at")?),
    })
}

// === impl Store: users ===

impl Store {
    /// Creates a user (and its password credential, if given) at `now`.
    ///
    /// [`StoreError::Conflict`]`("email")` when an account has this email in any case.
    pub async fn create_user(
        &self,
        new: &NewUser<'_>,
        now: SystemTime,
    ) -> Result<User, StoreError> {
        let user = User {
            id: new_id(),
            email: new.email.to_owned(),
            name: new.name.map(str::to_owned),
            email_verified_at: new.email_verified.then(|| truncate(now)),
            created_at: truncate(now),
            updated_at: truncate(now),
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO users (id, email, email_normalized, name, email_verified_at, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(&user.id)
        .bind(&user.email)
        .bind(normalize_email(new.email))
        .bind(user.name.as_deref())
        .bind(user.email_verified_at.map(millis))
        .bind(millis(now))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::conflict_on("email"))?;
        if let Some(hash) = new.password_hash {
            sqlx::query(
                "INSERT INTO password_credentials (user_id, hash, updated_at) VALUES ($1, $2, $3)",
            )
            .bind(&user.id)
            .bind(hash)
            .bind(millis(now))
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
        }
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(user)
    }

    /// The user with this id.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        self.fetch_user(&sql, id).await
    }

    /// The user with this email, compared case-insensitively.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email_normalized = $1");
        self.fetch_user(&sql, &normalize_email(email)).await
    }

    async fn fetch_user(&self, sql: &str, key: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(sql)
            .bind(key)
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        row.as_ref()
            .map(user_from_row)
            .transpose()
            .map_err(StoreError::from_sqlx)
    }

    /// Sets (or clears) a user's display name. [`StoreError::NotFound`] for an unknown id.
    pub async fn set_user_name(
        &self,
        id: &str,
        name: Option<&str>,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE users SET name = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(name)
            .bind(millis(now))
            .execute(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        found(done.rows_affected())
    }

    /// Records that the user's email is verified (keeps the first time it was).
    /// [`StoreError::NotFound`] for an unknown id.
    pub async fn mark_email_verified(&self, id: &str, now: SystemTime) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $2), \
             updated_at = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(millis(now))
        .execute(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        found(done.rows_affected())
    }

    // === credentials ===

    /// Sets the user's password hash (a PHC string), replacing any previous one.
    /// [`StoreError::NotFound`] for an unknown user.
    pub async fn set_password_hash(
        &self,
        user_id: &str,
        hash: &str,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO password_credentials (user_id, hash, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET hash = excluded.hash, \
             updated_at = excluded.updated_at",
        )
        .bind(user_id)
        .bind(hash)
        .bind(millis(now))
        .execute(self.pool())
        .await
        .map_err(StoreError::conflict_or_missing("password"))?;
        Ok(())
    }

    /// Removes the user's password (they then sign in through a provider only); `Ok(false)`
    /// when there was none.
    pub async fn remove_password(&self, user_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM password_credentials WHERE user_id = $1")
            .bind(user_id)
            .execute(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok(done.rows_affected() > 0)
    }

    /// The user's password hash; `None` when the user has none (OAuth-only) or is unknown.
    pub async fn password_hash(&self, user_id: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT hash FROM password_credentials WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::from_sqlx)
    }

    // === roles ===

    /// Grants `role` to the user. `Ok(false)` when the user already had it;
    /// [`StoreError::NotFound`] for an unknown user.
    pub async fn grant_role(
        &self,
        user_id: &str,
        role: &str,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO user_roles (user_id, role, granted_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, role) DO NOTHING",
        )
        .bind(user_id)
        .bind(role)
        .bind(millis(now))
        .execute(self.pool())
        .await
        .map_err(StoreError::conflict_or_missing("role"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes `role` away from the user. `Ok(false)` when the user did not have it.
    pub async fn revoke_role(&self, user_id: &str, role: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM user_roles WHERE user_id = $1 AND role = $2")
            .bind(user_id)
            .bind(role)
            .execute(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether any user holds `role`.
    pub async fn role_is_held(&self, role: &str) -> Result<bool, StoreError> {
        let holder: Option<String> =
            sqlx::query_scalar("SELECT user_id FROM user_roles WHERE role = $1 LIMIT 1")
                .bind(role)
                .fetch_optional(self.pool())
                .await
                .map_err(StoreError::from_sqlx)?;
        Ok(holder.is_some())
    }

    /// The user's roles, sorted by name (bytewise, the same on every backend).
    pub async fn roles_of(&self, user_id: &str) -> Result<Vec<String>, StoreError> {
        let mut roles: Vec<String> =
            sqlx::query_scalar("SELECT role FROM user_roles WHERE user_id = $1")
                .bind(user_id)
                .fetch_all(self.pool())
                .await
                .map_err(StoreError::from_sqlx)?;
        roles.sort_unstable();
        Ok(roles)
    }
}

/// `Ok` when a statement changed a row, [`StoreError::NotFound`] when it matched none.
pub(super) fn found(rows_affected: u64) -> Result<(), StoreError> {
    if rows_affected == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}
