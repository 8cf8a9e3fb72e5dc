//! Key rotation as pure functions over stored records.
//!
//! Rotating at `now` makes a new current key and retires the old one: it stops signing at
//! once but stays published until `now + access_token_ttl + PUBLISH_GRACE`, so every token
//! it signed (at the latest just before `now`, valid for at most `access_token_ttl`) verifies
//! until it expires. Keys whose window has ended are dropped. The caller persists the
//! [`Rotation`] and rebuilds its [`KeySet`](super::KeySet) from the result.

use std::time::{Duration, SystemTime};

use super::{KeyError, KeyRecord, SigningKey};

/// Extra time a retired key stays published beyond the access-token lifetime: covers the
/// verification leeway and clocks that disagree by a little.
pub const PUBLISH_GRACE: Duration = Duration::from_secs(60);

/// What a rotation changes in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The new current key, to insert.
    pub new_key: KeyRecord,
    /// The previously current key(s), now with `not_after` and `expires_at` set, to update.
    pub retired: Vec<KeyRecord>,
    /// Kids of keys whose publication window has ended, to delete.
    pub expired: Vec<String>,
}

impl Rotation {
    /// The records after this rotation, given the records it was computed from.
    pub fn apply(&self, records: &[KeyRecord]) -> Vec<KeyRecord> {
        let mut out: Vec<KeyRecord> = records
            .iter()
            .filter(|r| !self.expired.contains(&r.kid))
            .map(|r| {
                self.retired
                    .iter()
                    .find(|retired| retired.kid == r.kid)
                    .unwrap_or(r)
                    .clone()
            })
            .collect();
        out.push(self.new_key.clone());
        out
    }
}

/// Rotates the keys in `records` at `now`: a freshly generated key becomes current; see the
/// module docs for what happens to the others.
pub fn rotate(
    records: &[KeyRecord],
    now: SystemTime,
    access_token_ttl: Duration,
) -> Result<Rotation, KeyError> {
    Ok(rotate_to(
        SigningKey::generate()?,
        records,
        now,
        access_token_ttl,
    ))
}

/// [`rotate`] with a given new key.
pub fn rotate_to(
    new_key: SigningKey,
    records: &[KeyRecord],
    now: SystemTime,
    access_token_ttl: Duration,
) -> Rotation {
    let window = access_token_ttl.saturating_add(PUBLISH_GRACE);
    let retired = records
        .iter()
        .filter(|r| r.is_current())
        .map(|r| KeyRecord {
            not_after: Some(now),
            expires_at: Some(now.checked_add(window).unwrap_or(now)),
            ..r.clone()
        })
        .collect();
    let expired = records
        .iter()
        .filter(|r| !r.is_published(now))
        .map(|r| r.kid.clone())
        .collect();
    Rotation {
        new_key: new_key.to_record(now),
        retired,
        expired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(15 * 60);

    #[test]
    fn rotation_retires_the_current_key_for_ttl_plus_grace() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let first = SigningKey::generate().unwrap().to_record(t0);
        let records = vec![first.clone()];

        let t1 = t0 + Duration::from_secs(3600);
        let rotation = rotate(&records, t1, TTL).unwrap();
        assert!(rotation.new_key.is_current());
        assert_ne!(rotation.new_key.kid, first.kid);
        assert_eq!(rotation.retired.len(), 1);
        let retired = &rotation.retired[0];
        assert_eq!(retired.kid, first.kid);
        assert_eq!(retired.not_after, Some(t1));
        assert_eq!(retired.expires_at, Some(t1 + TTL + PUBLISH_GRACE));
        assert!(rotation.expired.is_empty());

        let after = rotation.apply(&records);
        assert_eq!(after.len(), 2);
        assert_eq!(after.iter().filter(|r| r.is_current()).count(), 1);
    }

    #[test]
    fn rotation_drops_keys_whose_window_ended() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let records = vec![SigningKey::generate().unwrap().to_record(t0)];
        let t1 = t0 + Duration::from_secs(60);
        let records = rotate(&records, t1, TTL).unwrap().apply(&records);
        let old_kid = records[0].kid.clone();

        // A second rotation long after the first key's window ended deletes it.
        let t2 = t1 + TTL + PUBLISH_GRACE;
        let rotation = rotate(&records, t2, TTL).unwrap();
        assert_eq!(rotation.expired, vec![old_kid.clone()]);
        let after = rotation.apply(&records);
        assert_eq!(after.len(), 2);
        assert!(after.iter().all(|r| r.kid != old_kid));
    }
}
