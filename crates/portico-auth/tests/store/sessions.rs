//! Sessions and refresh-token rotation, including under concurrency.

use crate::*;

// === sessions and refresh tokens ===

pub(crate) async fn refresh_token_rotates_along_the_family(ctx: Ctx) {
    let store = &ctx.store;
    let user = new_user(store, "s@example.com").await;
    let session = store
        .create_session(&user.id, "h1", at(100), t0())
        .await
        .unwrap();
    assert_eq!(session.user_id, user.id);
    assert_eq!(session.last_used_at, t0());
    assert!(!store.is_session_revoked(&session.id).await.unwrap());

    let RotateOutcome::Rotated { session: rotated } = store
        .rotate_refresh("h1", "h2", at(200), at(10))
        .await
        .unwrap()
    else {
        panic!("first use rotates");
    };
    assert_eq!(rotated.id, session.id);
    assert_eq!(rotated.user_id, user.id);
    assert_eq!(rotated.created_at, t0());
    assert_eq!(rotated.last_used_at, at(10));
    // The successor rotates in turn, past the first token's expiry.
    let outcome = store
        .rotate_refresh("h2", "h3", at(300), at(150))
        .await
        .unwrap();
    assert!(matches!(&outcome, RotateOutcome::Rotated { session: s } if s.id == session.id));
    assert_eq!(
        store
            .session(&session.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        at(150)
    );
}

pub(crate) async fn reused_refresh_token_is_reported_and_revocation_stops_the_family(ctx: Ctx) {
    let store = &ctx.store;
    let user = new_user(store, "reuse@example.com").await;
    let session = store
        .create_session(&user.id, "h1", at(100), t0())
        .await
        .unwrap();
    store
        .rotate_refresh("h1", "h2", at(200), at(10))
        .await
        .unwrap();

    let outcome = store
        .rotate_refresh("h1", "stolen", at(200), at(20))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        RotateOutcome::Reused {
            session_id: session.id.clone(),
            user_id: user.id.clone(),
            used_at: at(10),
        }
    );
    // The loser's new token was not stored.
    assert_eq!(
        store
            .rotate_refresh("stolen", "x", at(200), at(21))
            .await
            .unwrap(),
        RotateOutcome::Unknown
    );
    // The caller revokes the family: the live successor dies with it.
    assert!(
        store
            .revoke_session(&session.id, "refresh token reuse", at(22))
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_session(&session.id, "logout", at(23))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .rotate_refresh("h2", "h3", at(200), at(24))
            .await
            .unwrap(),
        RotateOutcome::Revoked {
            session_id: session.id.clone()
        }
    );
    assert!(store.is_session_revoked(&session.id).await.unwrap());
    let ended = store.session(&session.id).await.unwrap().unwrap();
    assert_eq!(ended.revoked_at, Some(at(22)));
    assert_eq!(ended.revoked_reason.as_deref(), Some("refresh token reuse"));
}

pub(crate) async fn expired_and_unknown_refresh_tokens_do_not_rotate(ctx: Ctx) {
    let store = &ctx.store;
    let user = new_user(store, "e@example.com").await;
    let session = store
        .create_session(&user.id, "h1", at(100), t0())
        .await
        .unwrap();
    let expired = RotateOutcome::Expired {
        session_id: session.id.clone(),
    };
    assert_eq!(
        store
            .rotate_refresh("h1", "h2", at(200), at(100))
            .await
            .unwrap(),
        expired
    );
    // Not consumed by the failed attempt: still expired, not "reused".
    assert_eq!(
        store
            .rotate_refresh("h1", "h3", at(200), at(101))
            .await
            .unwrap(),
        expired
    );
    assert_eq!(
        store
            .rotate_refresh("never-issued", "h4", at(200), t0())
            .await
            .unwrap(),
        RotateOutcome::Unknown
    );
    assert!(
        store.is_session_revoked("unknown-session").await.unwrap(),
        "fail closed"
    );
}

pub(crate) async fn concurrent_rotations_of_one_token_have_exactly_one_winner(ctx: Ctx) {
    const CONTENDERS: usize = 10;
    let user = new_user(&ctx.store, "race@example.com").await;
    let session = ctx
        .store
        .create_session(&user.id, "gen0", at(3600), t0())
        .await
        .unwrap();
    let mut current = "gen0".to_owned();
    for round in 1..=5u64 {
        let tasks: Vec<_> = (0..CONTENDERS)
            .map(|i| {
                let store = ctx.store.clone();
                let old = current.clone();
                let new = format!("gen{round}-{i}");
                tokio::spawn(async move {
                    let outcome = store.rotate_refresh(&old, &new, at(3600), at(round)).await;
                    (new, outcome.unwrap())
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                (new, RotateOutcome::Rotated { session: s }) => {
                    assert_eq!(s.id, session.id);
                    winners.push(new);
                }
                (_, RotateOutcome::Reused { session_id, .. }) => assert_eq!(session_id, session.id),
                (_, other) => panic!("round {round}: unexpected {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        current = winners.remove(0);
    }
    // Only the last winner's token is live.
    let outcome = ctx
        .store
        .rotate_refresh(&current, "final", at(3600), at(10))
        .await
        .unwrap();
    assert!(
        matches!(outcome, RotateOutcome::Rotated { .. }),
        "{outcome:?}"
    );
}

pub(crate) async fn sessions_are_listed_found_by_refresh_hash_and_revoked_together(ctx: Ctx) {
    let store = &ctx.store;
    let user = new_user(store, "many@example.com").await;
    let other = new_user(store, "other@example.com").await;
    let first = store
        .create_session(&user.id, "a1", at(100), t0())
        .await
        .unwrap();
    let second = store
        .create_session(&user.id, "b1", at(100), at(1))
        .await
        .unwrap();
    let theirs = store
        .create_session(&other.id, "c1", at(100), t0())
        .await
        .unwrap();
    store
        .rotate_refresh("a1", "a2", at(100), at(2))
        .await
        .unwrap();

    let by_hash = store.session_by_refresh_hash("a1").await.unwrap().unwrap();
    assert_eq!(by_hash.id, first.id, "used tokens still name their session");
    assert_eq!(
        store
            .session_by_refresh_hash("a2")
            .await
            .unwrap()
            .unwrap()
            .id,
        first.id
    );
    assert_eq!(store.session_by_refresh_hash("zz").await.unwrap(), None);
    let listed: Vec<_> = store.sessions_of_user(&user.id).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, [second.id.as_str(), first.id.as_str()]);

    assert_eq!(
        store
            .revoke_all_sessions_of_user(&user.id, "password changed", at(3))
            .await
            .unwrap(),
        2
    );
    assert!(store.is_session_revoked(&first.id).await.unwrap());
    assert!(store.is_session_revoked(&second.id).await.unwrap());
    assert!(!store.is_session_revoked(&theirs.id).await.unwrap());
    assert_eq!(
        store
            .revoke_all_sessions_of_user(&user.id, "again", at(4))
            .await
            .unwrap(),
        0
    );
}
