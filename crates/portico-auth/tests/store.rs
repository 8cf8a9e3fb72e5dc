//! The store's behaviour through its public API, on SQLite always and on PostgreSQL when
//! `PORTICO_TEST_DATABASE_URL` is set: every test body below runs as `sqlite::<name>` and as
//! `postgres::<name>` (ignored by default; run with `--include-ignored postgres`).
//!
//! The bodies live in `tests/store/`, one file per kind of record.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

#[path = "store/accounts.rs"]
mod accounts;
#[path = "store/audit.rs"]
mod audit;
#[path = "store/keys.rs"]
mod keys;
#[path = "store/oauth.rs"]
mod oauth;
#[path = "store/sessions.rs"]
mod sessions;

use accounts::*;
use audit::*;
use keys::*;
use oauth::*;
use sessions::*;

use std::path::Path;

use portico_auth::store::{
    AuditEvent, AuditQuery, Backend, NewApiKey, NewAuditEvent, NewUser, OAuthState, RotateOutcome,
    SigningKeyRecord, Store, StoreError, User, audit_kind,
};
use serde_json::json;
use support::{Ctx, at, t0};

/// Declares each body as a SQLite test and an (ignored) PostgreSQL test.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    crate::support::on_sqlite(crate::$name).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[ignore = "needs PostgreSQL (PORTICO_TEST_DATABASE_URL)"]
                async fn $name() {
                    crate::support::on_postgres(crate::$name).await
                }
            )*
        }
    };
}

on_both_backends!(
    migrations_run_again_without_harm,
    a_second_store_on_the_same_database_sees_the_first_ones_writes,
    email_is_unique_regardless_of_case,
    sql_looking_strings_are_stored_and_returned_verbatim,
    password_hash_is_stored_with_the_user_and_replaceable,
    roles_are_granted_once_and_revoked,
    records_of_unknown_users_are_refused_as_not_found,
    refresh_token_rotates_along_the_family,
    reused_refresh_token_is_reported_and_revocation_stops_the_family,
    expired_and_unknown_refresh_tokens_do_not_rotate,
    concurrent_rotations_of_one_token_have_exactly_one_winner,
    sessions_are_listed_found_by_refresh_hash_and_revoked_together,
    api_key_lifecycle,
    signing_keys_stay_published_until_their_window_ends,
    first_signing_key_is_inserted_once,
    oauth_identity_links_one_account_to_one_user,
    oauth_state_is_consumed_once_before_it_expires,
    concurrent_oauth_callbacks_consume_a_state_once,
    audit_events_are_appended_and_listed_newest_first,
    purge_removes_only_what_can_no_longer_be_used,
);

async fn new_user(store: &Store, email: &str) -> User {
    let new = NewUser {
        email,
        name: None,
        password_hash: None,
        email_verified: false,
    };
    store.create_user(&new, t0()).await.unwrap()
}

// === opening ===

#[tokio::test]
async fn default_store_is_a_sqlite_file_in_the_data_dir() {
    let dir = std::env::temp_dir().join(format!("portico-store-open-{}", support::random_hex()));
    let nested = dir.join("a").join("b");
    let store = Store::open(None, &nested).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    store.ping().await.unwrap();
    assert!(nested.join("portico.db").is_file());
    store.close().await;
    let err = store.ping().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processes_opening_a_fresh_sqlite_file_at_once_all_succeed() {
    // `portico up` and an admin command started together on an empty data directory.
    for _ in 0..3 {
        let dir =
            std::env::temp_dir().join(format!("portico-store-race-{}", support::random_hex()));
        let opening: Vec<_> = (0..4)
            .map(|_| {
                let dir = dir.clone();
                tokio::spawn(async move { Store::open(None, &dir).await })
            })
            .collect();
        let mut stores = Vec::new();
        for task in opening {
            stores.push(task.await.unwrap().unwrap());
        }
        let user = new_user(&stores[0], "race@example.com").await;
        assert_eq!(stores[3].user_by_id(&user.id).await.unwrap(), Some(user));
        for store in stores {
            store.close().await;
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[tokio::test]
async fn unreachable_database_is_unavailable_and_odd_urls_are_refused() {
    // Nothing listens on port 1.
    let err = Store::open(
        Some("postgres://nobody:secret@127.0.0.1:1/x"),
        Path::new("."),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert_eq!(err.to_string(), "database unavailable");
    let err = Store::open(Some("mysql://127.0.0.1/x"), Path::new("."))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl), "{err:?}");
}

#[tokio::test]
async fn store_debug_shows_no_connection_details() {
    let dir = std::env::temp_dir().join(format!("portico-store-dbg-{}", support::random_hex()));
    let store = Store::open(None, &dir).await.unwrap();
    let shown = format!("{store:?}");
    assert!(
        shown.contains("Sqlite") && !shown.contains("portico-store-dbg"),
        "{shown}"
    );
    store.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

// === the futures can be spawned ===

/// Compiles only if the store's futures are `Send` for any borrow, as axum handlers and
/// `tokio::spawn` need (sqlx's `Acquire` makes this easy to break).
#[allow(dead_code)]
fn store_futures_can_be_spawned(store: Store) {
    tokio::spawn(async move {
        let text = String::from("x");
        let now = support::t0();
        let store = Store::open(Some(&text), Path::new(&text)).await.unwrap();
        let user = NewUser {
            email: &text,
            name: None,
            password_hash: None,
            email_verified: false,
        };
        store.create_user(&user, now).await.unwrap();
        store.rotate_refresh(&text, &text, now, now).await.unwrap();
        store.is_session_revoked(&text).await.unwrap();
        store.api_key_by_prefix(&text).await.unwrap();
        store.consume_oauth_state(&text, now).await.unwrap();
        let event = NewAuditEvent {
            kind: &text,
            user_id: Some(&text),
            actor: None,
            ip: None,
            detail: json!({}),
        };
        store.append_audit(&event, now).await.unwrap();
        store
            .apply_key_rotation(&key(&text, 0), &[], std::slice::from_ref(&text))
            .await
            .unwrap();
    });
    drop(store);
}
