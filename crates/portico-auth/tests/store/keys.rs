//! API keys and signing keys.

use crate::*;

// === API keys ===

pub(crate) async fn api_key_lifecycle(ctx: Ctx) {
    let store = &ctx.store;
    let owner = new_user(store, "keys@example.com").await;
    let stranger = new_user(store, "stranger@example.com").await;
    let permissions = ["etl.read".to_owned(), "runs.*".to_owned()];
    let new = NewApiKey {
        user_id: &owner.id,
        name: "ci'; --",
        prefix: "k3x9q0abcd",
        secret_hash: "digest-1",
        permissions: &permissions,
        expires_at: Some(at(86_400)),
    };
    let created = store.create_api_key(&new, t0()).await.unwrap();
    assert_eq!(created.permissions, permissions);
    assert_eq!(created.expires_at, Some(at(86_400)));
    let taken = NewApiKey {
        user_id: &stranger.id,
        secret_hash: "digest-2",
        ..new
    };
    let err = store.create_api_key(&taken, t0()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict("api key prefix")),
        "{err:?}"
    );

    assert_eq!(
        store.api_keys_of_user(&owner.id).await.unwrap(),
        std::slice::from_ref(&created)
    );
    assert!(
        store
            .api_keys_of_user(&stranger.id)
            .await
            .unwrap()
            .is_empty()
    );
    let found = store
        .api_key_by_prefix("k3x9q0abcd")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.secret_hash, "digest-1");
    assert_eq!(found.info, created);
    assert_eq!(store.api_key_by_prefix("k3x9q0abcD").await.unwrap(), None);

    store.touch_api_key(&created.id, at(50)).await.unwrap();
    store.touch_api_key(&created.id, at(40)).await.unwrap();
    let touched = store.api_key(&created.id).await.unwrap().unwrap();
    assert_eq!(touched.last_used_at, Some(at(50)), "never moves back");

    let err = store
        .revoke_api_key(&stranger.id, &created.id, at(60))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound),
        "only the owner deletes: {err:?}"
    );
    store
        .revoke_api_key(&owner.id, &created.id, at(60))
        .await
        .unwrap();
    assert!(store.api_keys_of_user(&owner.id).await.unwrap().is_empty());
    let revoked = store
        .api_key_by_prefix("k3x9q0abcd")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        revoked.info.revoked_at,
        Some(at(60)),
        "kept, to answer AUTH_007"
    );
    let err = store
        .revoke_api_key(&owner.id, &created.id, at(61))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

// === signing keys ===

pub(crate) fn key(kid: &str, created: u64) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.to_owned(),
        alg: "EdDSA".to_owned(),
        private_key: vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0xff, 0x00, b'\''],
        public_key: (0u8..32).collect(),
        created_at: at(created),
        not_after: None,
        expires_at: None,
    }
}

pub(crate) async fn signing_keys_stay_published_until_their_window_ends(ctx: Ctx) {
    let store = &ctx.store;
    let k1 = key("kid-1", 0);
    store.insert_signing_key(&k1).await.unwrap();
    let err = store.insert_signing_key(&k1).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict("signing key")),
        "{err:?}"
    );
    assert_eq!(
        store.current_signing_key(at(10)).await.unwrap(),
        Some(k1.clone())
    );

    // Rotate at t=1000 with 15-minute tokens: k1 stops signing, stays published 16 more.
    let k2 = key("kid-2", 1000);
    let retired = SigningKeyRecord {
        not_after: Some(at(1000)),
        expires_at: Some(at(1000 + 960)),
        ..k1.clone()
    };
    store
        .apply_key_rotation(&k2, std::slice::from_ref(&retired), &[])
        .await
        .unwrap();
    assert_eq!(
        store.current_signing_key(at(1001)).await.unwrap(),
        Some(k2.clone())
    );
    let published = store.published_signing_keys(at(1959)).await.unwrap();
    assert_eq!(published, [retired.clone(), k2.clone()]);
    let published = store.published_signing_keys(at(1960)).await.unwrap();
    assert_eq!(published, std::slice::from_ref(&k2));
    assert_eq!(
        store.signing_keys().await.unwrap(),
        [retired.clone(), k2.clone()]
    );

    // The next rotation drops k1 for good.
    let k3 = key("kid-3", 3000);
    let retired2 = SigningKeyRecord {
        not_after: Some(at(3000)),
        expires_at: Some(at(3960)),
        ..k2.clone()
    };
    store
        .apply_key_rotation(&k3, std::slice::from_ref(&retired2), &["kid-1".to_owned()])
        .await
        .unwrap();
    assert_eq!(store.signing_keys().await.unwrap(), [retired2, k3.clone()]);
    // A failed rotation changes nothing (k3's kid exists: the insert fails, the update rolls back).
    let clash = SigningKeyRecord {
        not_after: Some(at(4000)),
        expires_at: Some(at(5000)),
        ..k3.clone()
    };
    let err = store
        .apply_key_rotation(&k3, &[clash], &[])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict("signing key")),
        "{err:?}"
    );
    assert_eq!(store.current_signing_key(at(4500)).await.unwrap(), Some(k3));
}

pub(crate) async fn first_signing_key_is_inserted_once(ctx: Ctx) {
    let store = &ctx.store;
    assert_eq!(store.current_signing_key(t0()).await.unwrap(), None);
    assert!(
        store
            .insert_first_signing_key(&key("first", 0))
            .await
            .unwrap()
    );
    assert!(
        !store
            .insert_first_signing_key(&key("second", 1))
            .await
            .unwrap()
    );
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys, [key("first", 0)]);
}
