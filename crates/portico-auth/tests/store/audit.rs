//! The audit trail, and purging what has expired.

use crate::*;

// === audit ===

async fn record(store: &Store, kind: &str, user_id: Option<&str>, secs: u64) -> AuditEvent {
    let event = NewAuditEvent {
        kind,
        user_id,
        actor: None,
        ip: Some("203.0.113.7"),
        detail: json!({ "note": "it's \"quoted\"; --", "n": secs }),
    };
    store.append_audit(&event, at(secs)).await.unwrap()
}

pub(crate) async fn audit_events_are_appended_and_listed_newest_first(ctx: Ctx) {
    let store = &ctx.store;
    let first = record(store, audit_kind::LOGIN_FAILED, Some("u1"), 1).await;
    record(store, audit_kind::LOGIN_SUCCEEDED, Some("u1"), 2).await;
    record(store, audit_kind::LOGIN_FAILED, Some("u2"), 3).await;
    let last = record(store, audit_kind::REFRESH_REUSED, Some("u1"), 4).await;
    let anonymous = record(store, audit_kind::LOGIN_FAILED, None, 5).await;

    let kinds = |events: Vec<portico_auth::store::AuditEvent>| {
        events
            .into_iter()
            .map(|e| (e.kind, e.user_id))
            .collect::<Vec<_>>()
    };
    let all = AuditQuery {
        user_id: None,
        kind: None,
        limit: 100,
    };
    let listed = store.recent_audit(&all).await.unwrap();
    assert_eq!(listed.len(), 5);
    assert_eq!(listed[0], anonymous);
    assert_eq!(listed[1], last);
    assert_eq!(listed[4], first);
    assert_eq!(
        listed[4].detail,
        json!({ "note": "it's \"quoted\"; --", "n": 1 })
    );

    let of_u1 = AuditQuery {
        user_id: Some("u1"),
        ..all
    };
    let u1: Vec<_> = kinds(store.recent_audit(&of_u1).await.unwrap());
    assert_eq!(
        u1.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        [
            audit_kind::REFRESH_REUSED,
            audit_kind::LOGIN_SUCCEEDED,
            audit_kind::LOGIN_FAILED
        ]
    );
    let failed = AuditQuery {
        kind: Some(audit_kind::LOGIN_FAILED),
        limit: 2,
        ..all
    };
    assert_eq!(
        kinds(store.recent_audit(&failed).await.unwrap()),
        [
            (audit_kind::LOGIN_FAILED.to_owned(), None),
            (audit_kind::LOGIN_FAILED.to_owned(), Some("u2".to_owned())),
        ]
    );
    let failed_u1 = AuditQuery {
        user_id: Some("u1"),
        kind: Some(audit_kind::LOGIN_FAILED),
        limit: 10,
    };
    assert_eq!(store.recent_audit(&failed_u1).await.unwrap(), [first]);
}

// === housekeeping ===

pub(crate) async fn purge_removes_only_what_can_no_longer_be_used(ctx: Ctx) {
    let store = &ctx.store;
    let user = new_user(store, "purge@example.com").await;
    let session = store
        .create_session(&user.id, "old", at(100), t0())
        .await
        .unwrap();
    store
        .rotate_refresh("old", "live", at(1000), at(50))
        .await
        .unwrap();
    store
        .create_oauth_state(&oauth_state("stale", 100))
        .await
        .unwrap();
    store
        .create_oauth_state(&oauth_state("fresh", 1000))
        .await
        .unwrap();
    let gone = SigningKeyRecord {
        not_after: Some(at(10)),
        expires_at: Some(at(100)),
        ..key("gone", 0)
    };
    store.insert_signing_key(&gone).await.unwrap();
    store.insert_signing_key(&key("kept", 5)).await.unwrap();

    assert_eq!(store.purge_expired(at(200)).await.unwrap(), 3);
    assert_eq!(
        store
            .rotate_refresh("old", "x", at(1000), at(201))
            .await
            .unwrap(),
        RotateOutcome::Unknown
    );
    assert!(matches!(
        store
            .rotate_refresh("live", "next", at(1000), at(202))
            .await
            .unwrap(),
        RotateOutcome::Rotated { .. }
    ));
    assert!(
        store
            .consume_oauth_state("fresh", at(203))
            .await
            .unwrap()
            .is_some()
    );
    let kids: Vec<_> = store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(kids, ["kept"]);
    assert!(
        !store.is_session_revoked(&session.id).await.unwrap(),
        "sessions stay"
    );
}
