//! API keys: stored as a clear lookup prefix (UNIQUE, so a presented key is found with one
//! indexed lookup) and a digest of the whole key, never the key itself.
//!
//! Deleting a key revokes it rather than removing the row, so a deleted key presented later
//! is told apart from one that never existed (AUTH_007 rather than AUTH_001).

use std::time::SystemTime;

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::users::found;
use super::{Store, StoreError, millis, new_id, time, truncate};

/// What [`Store::create_api_key`] stores.
#[derive(Debug, Clone, Copy)]
pub struct NewApiKey<'a> {
    /// The owner.
    pub user_id: &'a str,
    /// The owner's label for the key.
    pub name: &'a str,
    /// The key's lookup prefix (unique).
    pub prefix: &'a str,
    /// Digest of the whole key.
    pub secret_hash: &'a str,
    /// Permissions the key carries.
    pub permissions: &'a [String],
    /// When the key stops working, if ever.
    pub expires_at: Option<SystemTime>,
}

/// An API key as its owner may see it: everything but the secret's digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    /// Random id (32 hex characters), used in `DELETE /auth/api-keys/{id}`.
    pub id: String,
    /// The owner.
    pub user_id: String,
    /// The owner's label.
    pub name: String,
    /// The lookup prefix.
    pub prefix: String,
    /// Permissions the key carries.
    pub permissions: Vec<String>,
    /// When the key stops working, if ever.
    pub expires_at: Option<SystemTime>,
    /// When the key was made.
    pub created_at: SystemTime,
    /// When the key was last accepted (see [`Store::touch_api_key`]).
    pub last_used_at: Option<SystemTime>,
    /// When the key was deleted, if it was.
    pub revoked_at: Option<SystemTime>,
}

/// An API key with the digest a presented key is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The key.
    pub info: ApiKeyInfo,
    /// Digest of the whole key.
    pub secret_hash: String,
}

const INFO_COLUMNS: &str =
    "id, user_id, name, prefix, permissions, expires_at, created_at, last_used_at, revoked_at";

fn info_from_row(row: &AnyRow) -> Result<ApiKeyInfo, StoreError> {
    let read = || -> Result<_, sqlx::Error> {
        Ok(ApiKeyInfo {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            name: row.try_get("name")?,
            prefix: row.try_get("prefix")?,
            permissions: Vec::new(),
            expires_at: row.try_get::<Option<i64>, _>("expires_at")?.map(time),
            created_at: time(row.try_get("created_at")?),
            last_used_at: row.try_get::<Option<i64>, _>("last_used_at")?.map(time),
            revoked_at: row.try_get::<Option<i64>, _>("revoked_at")?.map(time),
        })
    };
    let mut info = read().map_err(StoreError::from_sqlx)?;
    let permissions: String = row.try_get("permissions").map_err(StoreError::from_sqlx)?;
    info.permissions = serde_json::from_str(&permissions)
        .map_err(|e| StoreError::corrupt("api key permissions", e))?;
    Ok(info)
}

// === impl Store: API keys ===

impl Store {
    /// Stores a new key for its owner at `now`.
    ///
    /// [`StoreError::Conflict`]`("api key prefix")` when the prefix is taken (draw another);
    /// [`StoreError::NotFound`] for an unknown owner.
    pub async fn create_api_key(
        &self,
        new: &NewApiKey<'_>,
        now: SystemTime,
    ) -> Result<ApiKeyInfo, StoreError> {
        let info = ApiKeyInfo {
            id: new_id(),
            user_id: new.user_id.to_owned(),
            name: new.name.to_owned(),
            prefix: new.prefix.to_owned(),
            permissions: new.permissions.to_vec(),
            expires_at: new.expires_at.map(truncate),
            created_at: truncate(now),
            last_used_at: None,
            revoked_at: None,
        };
        let permissions =
            serde_json::to_string(new.permissions).map_err(|e| StoreError::Other(Box::new(e)))?;
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, name, prefix, secret_hash, permissions, \
             expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&info.id)
        .bind(new.user_id)
        .bind(new.name)
        .bind(new.prefix)
        .bind(new.secret_hash)
        .bind(permissions)
        .bind(new.expires_at.map(millis))
        .bind(millis(now))
        .execute(self.pool())
        .await
        .map_err(StoreError::conflict_or_missing("api key prefix"))?;
        Ok(info)
    }

    /// The user's keys that are not deleted, newest first, without digests.
    pub async fn api_keys_of_user(&self, user_id: &str) -> Result<Vec<ApiKeyInfo>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {INFO_COLUMNS} FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL \
             ORDER BY created_at DESC, id DESC"
        ))
        .bind(user_id)
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        rows.iter().map(info_from_row).collect()
    }

    /// The key with this id, deleted or not.
    pub async fn api_key(&self, id: &str) -> Result<Option<ApiKeyInfo>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {INFO_COLUMNS} FROM api_keys WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        row.as_ref().map(info_from_row).transpose()
    }

    /// The key with this lookup prefix, with its digest — including deleted and expired
    /// keys, which the caller refuses (AUTH_007, AUTH_002) after checking the digest.
    pub async fn api_key_by_prefix(
        &self,
        prefix: &str,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {INFO_COLUMNS}, secret_hash FROM api_keys WHERE prefix = $1"
        ))
        .bind(prefix)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(ApiKeyRecord {
            info: info_from_row(&row)?,
            secret_hash: row.try_get("secret_hash").map_err(StoreError::from_sqlx)?,
        }))
    }

    /// Deletes (revokes) the user's key at `now`. [`StoreError::NotFound`] when the user has
    /// no such key, or it is already deleted.
    pub async fn revoke_api_key(
        &self,
        user_id: &str,
        id: &str,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $3 \
             WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(user_id)
        .bind(millis(now))
        .execute(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        found(done.rows_affected())
    }

    /// Records that the key was accepted at `now` (never moves `last_used_at` back).
    ///
    /// A write per call: callers on a hot path should do this at most every so often per
    /// key, not on every request.
    pub async fn touch_api_key(&self, id: &str, now: SystemTime) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE api_keys SET last_used_at = $2 \
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
        )
        .bind(id)
        .bind(millis(now))
        .execute(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        Ok(())
    }
}
