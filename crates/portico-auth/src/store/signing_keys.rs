//! Signing keys for access tokens, kept so that every instance (and every restart) signs
//! with the same key and publishes the same JWKS.
//!
//! A key has two horizons: `not_after`, when it stops signing, and `expires_at`, when it may
//! leave the JWKS because every token it signed has expired. Both are `None` while the key is
//! the current signer. What the horizons should be is the `keys` module's business; this one
//! stores them, and applies a whole rotation in one transaction.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sqlx::Any;
use sqlx::Row as _;
use sqlx::any::{AnyArguments, AnyRow};

use super::{Store, StoreError, millis, time};

/// A signing key as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// Key id (`kid` in token headers and the JWKS).
    pub kid: String,
    /// JOSE algorithm name (`"EdDSA"`).
    pub alg: String,
    /// The private key's bytes (PKCS#8 DER for Ed25519).
    pub private_key: Vec<u8>,
    /// The public key's bytes.
    pub public_key: Vec<u8>,
    /// When the key was made.
    pub created_at: SystemTime,
    /// When the key stops signing; `None` while it is current.
    pub not_after: Option<SystemTime>,
    /// When the key may leave the JWKS; `None` while it is current.
    pub expires_at: Option<SystemTime>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private_key", &"***")
            .field("created_at", &self.created_at)
            .field("not_after", &self.not_after)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

const COLUMNS: &str = "kid, alg, private_key, public_key, created_at, not_after, expires_at";

fn key_from_row(row: &AnyRow) -> Result<SigningKeyRecord, StoreError> {
    let read = || -> Result<_, sqlx::Error> {
        Ok((
            SigningKeyRecord {
                kid: row.try_get("kid")?,
                alg: row.try_get("alg")?,
                private_key: Vec::new(),
                public_key: Vec::new(),
                created_at: time(row.try_get("created_at")?),
                not_after: row.try_get::<Option<i64>, _>("not_after")?.map(time),
                expires_at: row.try_get::<Option<i64>, _>("expires_at")?.map(time),
            },
            row.try_get::<String, _>("private_key")?,
            row.try_get::<String, _>("public_key")?,
        ))
    };
    let (mut key, private, public) = read().map_err(StoreError::from_sqlx)?;
    key.private_key = STANDARD
        .decode(private)
        .map_err(|e| StoreError::corrupt("private key", e))?;
    key.public_key = STANDARD
        .decode(public)
        .map_err(|e| StoreError::corrupt("public key", e))?;
    Ok(key)
}

type AnyQuery<'q> = sqlx::query::Query<'q, Any, AnyArguments<'q>>;

/// Binds the columns of `key`, in [`COLUMNS`] order, as `$1..$7`.
fn bind_key<'q>(query: AnyQuery<'q>, key: &'q SigningKeyRecord) -> AnyQuery<'q> {
    query
        .bind(&key.kid)
        .bind(&key.alg)
        .bind(STANDARD.encode(&key.private_key))
        .bind(STANDARD.encode(&key.public_key))
        .bind(millis(key.created_at))
        .bind(key.not_after.map(millis))
        .bind(key.expires_at.map(millis))
}

const INSERT: &str = "INSERT INTO signing_keys (kid, alg, private_key, public_key, created_at, \
                      not_after, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

// === impl Store: signing keys ===

impl Store {
    /// Stores a key. [`StoreError::Conflict`]`("signing key")` when the kid exists.
    pub async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        bind_key(sqlx::query(INSERT), key)
            .execute(self.pool())
            .await
            .map_err(StoreError::conflict_on("signing key"))?;
        Ok(())
    }

    /// Stores `key` only if no key signs at `key.created_at` — for the first start, so two
    /// instances starting together on SQLite agree on one key. `Ok(false)` when one existed.
    ///
    /// On PostgreSQL two exactly simultaneous first starts may both insert; both keys are
    /// then published and [`Store::current_signing_key`] picks the newest, so tokens from
    /// either verify.
    pub async fn insert_first_signing_key(
        &self,
        key: &SigningKeyRecord,
    ) -> Result<bool, StoreError> {
        let query = sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_key, public_key, created_at, \
             not_after, expires_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7 WHERE NOT EXISTS \
             (SELECT 1 FROM signing_keys WHERE not_after IS NULL OR not_after > $5)",
        );
        let done = bind_key(query, key)
            .execute(self.pool())
            .await
            .map_err(StoreError::conflict_on("signing key"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Every stored key, oldest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM signing_keys ORDER BY created_at, kid");
        self.fetch_keys(sqlx::query(&sql)).await
    }

    /// The keys to publish in the JWKS at `now` (whose `expires_at` is unset or later), oldest
    /// first.
    pub async fn published_signing_keys(
        &self,
        now: SystemTime,
    ) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM signing_keys WHERE expires_at IS NULL OR expires_at > $1 \
             ORDER BY created_at, kid"
        );
        self.fetch_keys(sqlx::query(&sql).bind(millis(now))).await
    }

    /// The key to sign with at `now`: the newest one made by then whose `not_after` is unset
    /// or later.
    pub async fn current_signing_key(
        &self,
        now: SystemTime,
    ) -> Result<Option<SigningKeyRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM signing_keys \
             WHERE created_at <= $1 AND (not_after IS NULL OR not_after > $1) \
             ORDER BY created_at DESC, kid DESC LIMIT 1"
        );
        let keys = self.fetch_keys(sqlx::query(&sql).bind(millis(now))).await?;
        Ok(keys.into_iter().next())
    }

    async fn fetch_keys(&self, query: AnyQuery<'_>) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = query
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        rows.iter().map(key_from_row).collect()
    }

    /// Applies a key rotation in one transaction: stores `new_key`, sets `not_after` and
    /// `expires_at` of each key in `retired` (by kid) to the values given there, and deletes
    /// the keys named in `expired`.
    pub async fn apply_key_rotation(
        &self,
        new_key: &SigningKeyRecord,
        retired: &[SigningKeyRecord],
        expired: &[String],
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for key in retired {
            sqlx::query("UPDATE signing_keys SET not_after = $2, expires_at = $3 WHERE kid = $1")
                .bind(&key.kid)
                .bind(key.not_after.map(millis))
                .bind(key.expires_at.map(millis))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
        }
        for kid in expired {
            sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
                .bind(kid)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
        }
        bind_key(sqlx::query(INSERT), new_key)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::conflict_on("signing key"))?;
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(())
    }
}
