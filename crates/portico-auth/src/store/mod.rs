//! The auth database: one schema and one set of migrations for SQLite (the default, a file
//! `portico.db` in the data directory) and PostgreSQL, and typed operations on every record
//! the auth component keeps.
//!
//! [`Store`] is a cheap-to-clone handle on a connection pool. It is built with
//! [`Store::open`], which runs the embedded migrations before returning. All statements go
//! through sqlx's `Any` driver, so each operation is written once, in SQL both databases read
//! the same way: `$1..$n` placeholders, `ON CONFLICT`, `RETURNING`, `TEXT` and `BIGINT` only.
//!
//! # Schema (`migrations/0001_accounts.sql`)
//! | table | key | what it holds |
//! |---|---|---|
//! | `users` | `id` | email as typed, `email_normalized` (UNIQUE: trimmed, lowercased), name |
//! | `user_roles` | `(user_id, role)` | role grants |
//! | `password_credentials` | `user_id` | the argon2id PHC string |
//! | `oauth_identities` | `(provider, subject)` | which user a provider account logs in as |
//! | `sessions` | `id` | a refresh-token family: user, last use, revocation and why |
//! | `refresh_tokens` | `hash` | token digests of a session; `used_at`, `replaced_by` |
//! | `api_keys` | `id`, UNIQUE `prefix` | owner, name, secret digest, permissions (JSON) |
//! | `signing_keys` | `kid` | Ed25519 keys (base64), `not_after` (signs), `expires_at` (JWKS) |
//! | `oauth_states` | `state` | PKCE verifier, nonce, redirect URI of a pending login |
//! | `audit_events` | `id` | what happened (`kind`), to whom, by whom, from where, JSON detail |
//!
//! Ids are 128 random bits in hex; times are Unix milliseconds (the API speaks
//! [`SystemTime`]); lists and details are JSON text. No secret is stored in a form that can be
//! presented: refresh tokens and API keys are stored as digests the caller computes. Private
//! signing keys are stored as they are (base64) — whoever can read the database can sign
//! tokens, so protect the file or the database role accordingly.
//!
//! # Single-use records under concurrency
//! A refresh token and an OAuth state may be used once. Both are consumed by one conditional
//! `UPDATE … SET used_at = now WHERE … AND used_at IS NULL`, and the caller acts only on what
//! that statement reports (rows affected, or the row `RETURNING` gives back):
//! - SQLite runs one writer at a time (write transactions start with `BEGIN IMMEDIATE`), so
//!   the second `UPDATE` of the same row finds `used_at` already set and changes nothing.
//! - PostgreSQL (READ COMMITTED) makes a second `UPDATE` of a row wait for the first
//!   transaction's row lock; once that commits, it re-evaluates its `WHERE` against the new
//!   row version, finds `used_at` set, and skips the row.
//!
//! Either way exactly one of N concurrent rotations sees one affected row; the others see
//! none and are then told why ([`RotateOutcome::Reused`], …). The new token is inserted in
//! the same transaction as the old one is marked, so a failure leaves the old one usable.
//!
//! # Layout
//! - `pool`: opening (SQLite file or PostgreSQL URL), migrations, health check.
//! - `error`: [`StoreError`], and the mapping of database failures onto it.
//! - `users`: users, role grants, password credentials.
//! - `oauth`: linked provider identities and pending login states.
//! - `sessions`: sessions and refresh-token rotation.
//! - `api_keys`, `signing_keys`, `audit`: the records they name.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::AnyPool;

mod api_keys;
mod audit;
mod error;
mod oauth;
mod pool;
mod sessions;
mod signing_keys;
mod users;

pub use api_keys::{ApiKeyInfo, ApiKeyRecord, NewApiKey};
pub use audit::{AuditEvent, AuditQuery, NewAuditEvent, audit_kind};
pub use error::StoreError;
pub use oauth::{OAuthIdentity, OAuthState};
pub use pool::{Backend, SQLITE_FILE};
pub use sessions::{RotateOutcome, Session};
pub use signing_keys::SigningKeyRecord;
pub use users::{NewUser, User, normalize_email};

/// A handle on the auth database. Clones share one connection pool.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: show only which database this is.
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Deletes what can no longer be used at `now`: expired refresh tokens and OAuth states,
    /// and signing keys past their publication window. Returns how many rows went.
    ///
    /// Sessions stay (an access token names its session, and an unknown session reads as
    /// revoked), and so does the audit trail.
    pub async fn purge_expired(&self, now: SystemTime) -> Result<u64, StoreError> {
        let now = millis(now);
        let mut tx = self.begin_write().await?;
        let mut purged = 0;
        for sql in [
            "DELETE FROM refresh_tokens WHERE expires_at <= $1",
            "DELETE FROM oauth_states WHERE expires_at <= $1",
            "DELETE FROM signing_keys WHERE expires_at IS NOT NULL AND expires_at <= $1",
        ] {
            purged += sqlx::query(sql)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?
                .rows_affected();
        }
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(purged)
    }
}

/// A new record id: 128 random bits as 32 lowercase hex characters.
use crate::secret::new_id;

/// `t` as Unix milliseconds, the unit every timestamp column holds.
fn millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// The instant `ms` Unix milliseconds denote.
fn time(ms: i64) -> SystemTime {
    let offset = Duration::from_millis(ms.unsigned_abs());
    let t = if ms >= 0 {
        UNIX_EPOCH.checked_add(offset)
    } else {
        UNIX_EPOCH.checked_sub(offset)
    };
    t.unwrap_or(UNIX_EPOCH)
}

/// `t` as the store will give it back (millisecond precision).
fn truncate(t: SystemTime) -> SystemTime {
    time(millis(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_at_millisecond_precision() {
        let t = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        assert_eq!(millis(t), 1_700_000_000_123);
        assert_eq!(
            time(millis(t)),
            UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
        );
        let before = UNIX_EPOCH - Duration::from_millis(5);
        assert_eq!(millis(before), -5);
        assert_eq!(time(-5), before);
    }

    #[test]
    fn ids_are_32_hex_characters_and_differ() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 32);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }
}
