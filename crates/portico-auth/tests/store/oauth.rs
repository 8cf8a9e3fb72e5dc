//! OAuth identities and login states.

use crate::*;

// === OAuth ===

pub(crate) async fn oauth_identity_links_one_account_to_one_user(ctx: Ctx) {
    let store = &ctx.store;
    let user = new_user(store, "g@example.com").await;
    let other = new_user(store, "h@example.com").await;
    assert_eq!(store.identity("google", "sub-1").await.unwrap(), None);
    let linked = store
        .link_identity("google", "sub-1", &user.id, Some("g@example.com"), t0())
        .await
        .unwrap();
    assert_eq!(linked.user_id, user.id);
    let again = store
        .link_identity("google", "sub-1", &user.id, None, at(5))
        .await
        .unwrap();
    assert_eq!(again, linked, "linking twice keeps the first link");
    let err = store
        .link_identity("google", "sub-1", &other.id, None, at(6))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict("identity")), "{err:?}");
    store
        .link_identity("github", "sub-1", &user.id, None, at(7))
        .await
        .unwrap();
    let providers: Vec<_> = store
        .identities_of_user(&user.id)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.provider)
        .collect();
    assert_eq!(providers, ["google", "github"]);
    assert_eq!(
        store.identity("google", "sub-1").await.unwrap(),
        Some(linked)
    );
}

pub(crate) fn oauth_state(state: &str, expires: u64) -> OAuthState {
    OAuthState {
        state: state.to_owned(),
        provider: "google".to_owned(),
        pkce_verifier: "verifier".to_owned(),
        nonce: "nonce".to_owned(),
        redirect_uri: "http://127.0.0.1:3000/done?a=1&b='".to_owned(),
        created_at: t0(),
        expires_at: at(expires),
    }
}

pub(crate) async fn oauth_state_is_consumed_once_before_it_expires(ctx: Ctx) {
    let store = &ctx.store;
    let state = oauth_state("s1", 600);
    store.create_oauth_state(&state).await.unwrap();
    let err = store.create_oauth_state(&state).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict("oauth state")),
        "{err:?}"
    );
    assert_eq!(
        store.consume_oauth_state("s1", at(10)).await.unwrap(),
        Some(state)
    );
    assert_eq!(
        store.consume_oauth_state("s1", at(11)).await.unwrap(),
        None,
        "replay"
    );
    assert_eq!(
        store.consume_oauth_state("forged", at(11)).await.unwrap(),
        None
    );
    store
        .create_oauth_state(&oauth_state("s2", 600))
        .await
        .unwrap();
    assert_eq!(
        store.consume_oauth_state("s2", at(600)).await.unwrap(),
        None,
        "expired"
    );
}

pub(crate) async fn concurrent_oauth_callbacks_consume_a_state_once(ctx: Ctx) {
    ctx.store
        .create_oauth_state(&oauth_state("race", 600))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = ctx.store.clone();
            tokio::spawn(async move { store.consume_oauth_state("race", at(1)).await.unwrap() })
        })
        .collect();
    let mut taken = 0;
    for task in tasks {
        taken += usize::from(task.await.unwrap().is_some());
    }
    assert_eq!(taken, 1);
}
