//! The signing keys as the service holds them: loaded from the store, made on first start.

use super::*;

/// The published keys; on first start a new key is made and stored (once, even when several
/// instances start together).
pub(super) async fn load_keys(store: &Store, now: SystemTime) -> Result<KeySet, AuthError> {
    let mut records = store
        .published_signing_keys(now)
        .await
        .map_err(store_error)?;
    if !records.iter().any(|r| r.not_after.is_none_or(|t| t > now)) {
        let key = SigningKey::generate().map_err(internal)?;
        store
            .insert_first_signing_key(&to_store(key.to_record(now)))
            .await
            .map_err(store_error)?;
        tracing::info!(kid = key.kid(), "generated the first signing key");
        records = store
            .published_signing_keys(now)
            .await
            .map_err(store_error)?;
    }
    let records: Vec<KeyRecord> = records.into_iter().map(from_store).collect();
    KeySet::from_records(&records, now).map_err(internal)
}

pub(super) fn to_store(r: KeyRecord) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: r.kid,
        alg: "EdDSA".into(),
        private_key: r.private_key,
        public_key: r.public_key,
        created_at: r.created_at,
        not_after: r.not_after,
        expires_at: r.expires_at,
    }
}

pub(super) fn from_store(r: SigningKeyRecord) -> KeyRecord {
    KeyRecord {
        kid: r.kid,
        private_key: r.private_key,
        public_key: r.public_key,
        created_at: r.created_at,
        not_after: r.not_after,
        expires_at: r.expires_at,
    }
}
