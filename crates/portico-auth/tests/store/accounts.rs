//! Schema, connections, users, roles and credentials.

use crate::*;

// === schema and connections ===

pub(crate) async fn migrations_run_again_without_harm(ctx: Ctx) {
    let user = new_user(&ctx.store, "a@example.com").await;
    let again = ctx.reopen().await;
    let third = ctx.reopen().await;
    assert_eq!(
        again.user_by_id(&user.id).await.unwrap(),
        Some(user.clone())
    );
    assert_eq!(third.user_by_id(&user.id).await.unwrap(), Some(user));
    again.ping().await.unwrap();
    again.close().await;
    third.close().await;
}

pub(crate) async fn a_second_store_on_the_same_database_sees_the_first_ones_writes(ctx: Ctx) {
    // The admin CLI opens the database the server has open and both keep working.
    let server = ctx.store.clone();
    let admin = ctx.reopen().await;
    let user = new_user(&admin, "new@example.com").await;
    assert!(admin.grant_role(&user.id, "admin", t0()).await.unwrap());
    assert_eq!(server.roles_of(&user.id).await.unwrap(), ["admin"]);
    let session = server
        .create_session(&user.id, "h1", at(60), t0())
        .await
        .unwrap();
    assert!(
        admin
            .revoke_session(&session.id, "admin", at(1))
            .await
            .unwrap()
    );
    assert!(server.is_session_revoked(&session.id).await.unwrap());
    admin.close().await;
}

// === users ===

pub(crate) async fn email_is_unique_regardless_of_case(ctx: Ctx) {
    let store = &ctx.store;
    let alice = new_user(store, "Alice@Example.com").await;
    let again = NewUser {
        email: "alice@example.COM",
        name: Some("impostor"),
        password_hash: Some("$argon2id$x"),
        email_verified: false,
    };
    let err = store.create_user(&again, at(1)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict("email")), "{err:?}");
    assert_eq!(err.to_string(), "email already exists");
    let found = store.user_by_email("  ALICE@example.com ").await.unwrap();
    assert_eq!(found.as_ref(), Some(&alice));
    assert_eq!(
        found.unwrap().email,
        "Alice@Example.com",
        "display form is kept"
    );
    assert_eq!(store.user_by_email("bob@example.com").await.unwrap(), None);
    assert_eq!(store.user_by_id("nope").await.unwrap(), None);
}

pub(crate) async fn sql_looking_strings_are_stored_and_returned_verbatim(ctx: Ctx) {
    let store = &ctx.store;
    let name = "Robert'); DROP TABLE users;--";
    let email = "bobby'--\"@example.com";
    let new = NewUser {
        email,
        name: Some(name),
        password_hash: Some("x' OR '1'='1"),
        email_verified: true,
    };
    let user = store.create_user(&new, t0()).await.unwrap();
    let back = store.user_by_email(email).await.unwrap().unwrap();
    assert_eq!(back.name.as_deref(), Some(name));
    assert_eq!(back.email, email);
    assert_eq!(back.email_verified_at, Some(t0()));
    assert_eq!(
        store.password_hash(&user.id).await.unwrap().as_deref(),
        Some("x' OR '1'='1")
    );
    let role = "admin' OR '1'='1";
    store.grant_role(&user.id, role, t0()).await.unwrap();
    assert_eq!(store.roles_of(&user.id).await.unwrap(), [role]);
    assert!(store.roles_of("' OR '1'='1").await.unwrap().is_empty());
    store
        .set_user_name(&user.id, Some("; DELETE FROM users"), at(1))
        .await
        .unwrap();
    let back = store.user_by_id(&user.id).await.unwrap().unwrap();
    assert_eq!(back.name.as_deref(), Some("; DELETE FROM users"));
    assert_eq!(back.updated_at, at(1));
    // The table is still there and still holds the one user.
    assert!(store.user_by_email("' OR 1=1 --").await.unwrap().is_none());
    assert_eq!(store.user_by_id(&user.id).await.unwrap(), Some(back));
}

pub(crate) async fn password_hash_is_stored_with_the_user_and_replaceable(ctx: Ctx) {
    let store = &ctx.store;
    let new = NewUser {
        email: "p@example.com",
        name: Some("P"),
        password_hash: Some("$argon2id$v=19$first"),
        email_verified: false,
    };
    let user = store.create_user(&new, t0()).await.unwrap();
    assert_eq!(user.email_verified_at, None);
    let hash = store.password_hash(&user.id).await.unwrap();
    assert_eq!(hash.as_deref(), Some("$argon2id$v=19$first"));
    store
        .set_password_hash(&user.id, "$argon2id$v=19$second", at(5))
        .await
        .unwrap();
    let hash = store.password_hash(&user.id).await.unwrap();
    assert_eq!(hash.as_deref(), Some("$argon2id$v=19$second"));
    let oauth_only = new_user(store, "o@example.com").await;
    assert_eq!(store.password_hash(&oauth_only.id).await.unwrap(), None);
    store
        .mark_email_verified(&oauth_only.id, at(7))
        .await
        .unwrap();
    store
        .mark_email_verified(&oauth_only.id, at(9))
        .await
        .unwrap();
    let verified = store.user_by_id(&oauth_only.id).await.unwrap().unwrap();
    assert_eq!(
        verified.email_verified_at,
        Some(at(7)),
        "the first verification stays"
    );
}

pub(crate) async fn roles_are_granted_once_and_revoked(ctx: Ctx) {
    let store = &ctx.store;
    let user = new_user(store, "r@example.com").await;
    assert!(!store.role_is_held("admin").await.unwrap());
    assert!(store.grant_role(&user.id, "viewer", t0()).await.unwrap());
    assert!(!store.role_is_held("admin").await.unwrap());
    assert!(store.grant_role(&user.id, "admin", t0()).await.unwrap());
    assert!(store.role_is_held("admin").await.unwrap());
    assert!(!store.grant_role(&user.id, "admin", at(1)).await.unwrap());
    assert_eq!(store.roles_of(&user.id).await.unwrap(), ["admin", "viewer"]);
    assert!(store.revoke_role(&user.id, "admin").await.unwrap());
    assert!(!store.revoke_role(&user.id, "admin").await.unwrap());
    assert_eq!(store.roles_of(&user.id).await.unwrap(), ["viewer"]);
    assert!(!store.role_is_held("admin").await.unwrap());
}

pub(crate) async fn records_of_unknown_users_are_refused_as_not_found(ctx: Ctx) {
    // Foreign keys are enforced on both backends.
    let store = &ctx.store;
    let ghost = "00000000000000000000000000000000";
    let err = store.grant_role(ghost, "admin", t0()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    let err = store
        .create_session(ghost, "h", at(60), t0())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    let err = store.set_password_hash(ghost, "h", t0()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    let err = store.set_user_name(ghost, None, t0()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    let key = NewApiKey {
        user_id: ghost,
        name: "k",
        prefix: "ghostpfx01",
        secret_hash: "h",
        permissions: &[],
        expires_at: None,
    };
    let err = store.create_api_key(&key, t0()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}
