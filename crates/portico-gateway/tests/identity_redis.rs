//! The second level of the gateway's validation cache: auth's verdicts shared by several
//! `RemoteAuthenticator`s (one per gateway instance, each with its own memory) through a
//! real Redis (`PORTICO_TEST_REDIS_URL`; these tests are `#[ignore]`d and `scripts/test`
//! runs them when Redis answers), all asking one real `portico-auth` on 127.0.0.1.
//!
//! An API key validated by one instance is served by another without asking auth, never
//! past its expiry; with auth down, an instance with empty memory still serves what another
//! cached, and gets 503 SYS_002 for the rest; a stale token confirmation in Redis is used
//! only while auth cannot be asked; a refusal from auth replaces the positive entry in
//! Redis. Redis unreachable or hung: requests go to auth as without Redis, one warning.
//!
//! Every test uses a key prefix of its own (and deletes its keys at the end), so runs
//! sharing a Redis never share entries. The unreachable-Redis tests need no Redis and are
//! not ignored (nor named after it, so `scripts/test` runs them even when it skips the
//! Redis tests).
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod identity_support;
mod support;

use std::time::{Duration, Instant};

use identity_support::{AuthServer, CapturedLogs, assert_refused, black_hole, ok};
use portico_core::error::ErrorCode;
use portico_gateway::identity::{Authenticator, RemoteAuthSettings, RemoteAuthenticator};
use redis::aio::ConnectionManager;
use sha2::{Digest as _, Sha256};
use support::{test_redis_url, unique_name};

const SECOND: Duration = Duration::from_secs(1);

/// Gateway settings for `auth` sharing validations through the Redis at `url` under
/// `prefix`.
fn shared(auth: &AuthServer, url: &str, prefix: &str) -> RemoteAuthSettings {
    RemoteAuthSettings {
        redis_url: Some(url.to_owned()),
        redis_key_prefix: prefix.to_owned(),
        ..auth.gateway_settings()
    }
}

/// A test's view of the Redis the instances share: its prefix, and direct access to the
/// entries (Redis's clock is real time: "time passing" there is a shorter TTL set here).
struct SharedRedis {
    url: String,
    prefix: String,
    connection: ConnectionManager,
}

impl SharedRedis {
    async fn new(test: &str) -> SharedRedis {
        let url = test_redis_url();
        let client = redis::Client::open(url.as_str()).unwrap();
        SharedRedis {
            prefix: format!("portico:test:{}:", unique_name(test)),
            connection: ConnectionManager::new(client).await.unwrap(),
            url,
        }
    }

    /// A new gateway instance (empty memory) sharing this Redis.
    fn instance(&self, auth: &AuthServer) -> RemoteAuthenticator {
        auth.authenticator_with(shared(auth, &self.url, &self.prefix))
    }

    /// The key of `credential`: the prefix and the hex SHA-256, never the credential.
    fn key(&self, credential: &str) -> String {
        let hex: String = Sha256::digest(credential.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{}{hex}", self.prefix)
    }

    async fn value(&self, credential: &str) -> Option<String> {
        redis::cmd("GET")
            .arg(self.key(credential))
            .query_async(&mut self.connection.clone())
            .await
            .unwrap()
    }

    async fn pttl(&self, credential: &str) -> i64 {
        redis::cmd("PTTL")
            .arg(self.key(credential))
            .query_async(&mut self.connection.clone())
            .await
            .unwrap()
    }

    /// Leaves the entry of `credential` 60 s to live: a user token's confirmation (fresh
    /// for 2 s, usable until its exp 15 min away) is then past fresh, still usable.
    async fn make_stale(&self, credential: &str) {
        self.set_pttl(credential, 60_000).await;
    }

    /// Gives the entry of `credential` `ms` more to live.
    async fn set_pttl(&self, credential: &str, ms: u64) {
        let set: bool = redis::cmd("PEXPIRE")
            .arg(self.key(credential))
            .arg(ms)
            .query_async(&mut self.connection.clone())
            .await
            .unwrap();
        assert!(set, "no entry for the credential");
    }

    /// Deletes every key under the prefix.
    async fn clean(&self) {
        let mut connection = self.connection.clone();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut connection)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut connection)
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
#[ignore = "needs Redis (PORTICO_TEST_REDIS_URL)"]
async fn redis_shares_an_api_key_validation_between_instances() {
    let auth = AuthServer::start().await;
    let redis = SharedRedis::new("shares").await;
    let (one, two) = (redis.instance(&auth), redis.instance(&auth));
    let tokens = auth.register("shared@example.com").await;
    let key = auth.api_key(&tokens.access_token, None).await.key;

    let identity = ok(&one, &key).await;
    assert_eq!(auth.validations(), 1);
    // Another instance, nothing in its memory: from Redis, auth not asked.
    for _ in 0..3 {
        assert_eq!(ok(&two, &key).await, identity);
    }
    assert_eq!(auth.validations(), 1);

    // Kept for the cache TTL (5 min), under the digest; the key is nowhere in the value.
    let pttl = redis.pttl(&key).await;
    assert!(pttl > 290_000 && pttl <= 300_000, "{pttl}");
    let value = redis.value(&key).await.unwrap();
    assert!(
        !value.contains(&key) && !value.contains(&key[3..13]),
        "{value}"
    );
    assert!(value.contains(&tokens.user.id), "{value}");

    // A key expiring in 60 s lives no longer in Redis.
    let short = auth.api_key(&tokens.access_token, Some(60)).await.key;
    let short_identity = ok(&one, &short).await;
    let pttl = redis.pttl(&short).await;
    assert!(pttl > 55_000 && pttl <= 60_000, "{pttl}");
    assert_eq!(ok(&two, &short).await, short_identity);
    assert_eq!(auth.validations(), 2);
    redis.clean().await;
}

#[tokio::test]
#[ignore = "needs Redis (PORTICO_TEST_REDIS_URL)"]
async fn redis_entry_is_never_used_past_the_keys_expiry() {
    let auth = AuthServer::start().await;
    let redis = SharedRedis::new("expiry").await;
    let tokens = auth.register("expiring@example.com").await;
    let key = auth.api_key(&tokens.access_token, Some(60)).await.key;
    ok(&redis.instance(&auth), &key).await;
    // Whatever the TTL in Redis says (a writer whose clock was behind), a reader stops at
    // the key's own expiry by its clock.
    redis.set_pttl(&key, 10 * 60 * 1000).await;
    auth.clock.advance(60 * SECOND);
    assert_refused(
        redis.instance(&auth).authenticate(&key).await,
        ErrorCode::Auth002,
    );
    assert_eq!(auth.validations(), 2);
    redis.clean().await;
}

/// Seed 000, scenario 3, across instances: auth goes down; an instance that never saw a key
/// serves it from what another cached in Redis; what nobody cached gets 503.
#[tokio::test]
#[ignore = "needs Redis (PORTICO_TEST_REDIS_URL)"]
async fn redis_serves_another_instances_validation_while_auth_is_down() {
    let mut auth = AuthServer::start().await;
    let redis = SharedRedis::new("down").await;
    let one = redis.instance(&auth);
    let tokens = auth.register("outage@example.com").await;
    let key = auth.api_key(&tokens.access_token, None).await.key;
    let unseen_key = auth.api_key(&tokens.access_token, None).await.key;
    let unseen_token = auth.register("unseen@example.com").await.access_token;
    let identity = ok(&one, &key).await;

    auth.stop().await;
    let validations = auth.validations();
    // A fresh process: empty memory, auth unreachable.
    let two = redis.instance(&auth);
    assert_eq!(ok(&two, &key).await, identity);
    for never_seen in [&unseen_key, &unseen_token] {
        let e = assert_refused(two.authenticate(never_seen).await, ErrorCode::Sys002);
        assert_eq!(e.status(), 503);
        assert_eq!(e.retry_after(), Some(5 * SECOND));
    }
    assert_eq!(auth.validations(), validations, "auth was down");
    redis.clean().await;
}

#[tokio::test]
#[ignore = "needs Redis (PORTICO_TEST_REDIS_URL)"]
async fn redis_stale_token_confirmation_is_used_only_when_auth_cannot_be_asked() {
    let mut auth = AuthServer::start().await;
    let redis = SharedRedis::new("stale").await;
    let alice = auth.register("alice@example.com").await.access_token;
    let bob = auth.register("bob@example.com").await.access_token;
    let carol = auth.register("carol@example.com").await.access_token;

    let one = redis.instance(&auth);
    let identity = ok(&one, &alice).await;
    assert_eq!(auth.validations(), 1);
    // Confirmed 2 s ago at most: another instance takes the confirmation from Redis.
    let two = redis.instance(&auth);
    assert_eq!(ok(&two, &alice).await, identity);
    assert_eq!(auth.validations(), 1);

    // Past the recheck (still before exp): with auth reachable, auth is asked again.
    redis.make_stale(&alice).await;
    let three = redis.instance(&auth);
    assert_eq!(ok(&three, &alice).await, identity);
    assert_eq!(auth.validations(), 2);

    // Stale again, auth down: a fresh instance (which has auth's JWKS) serves it; a token
    // nobody confirmed gets 503.
    let four = redis.instance(&auth);
    ok(&four, &bob).await;
    redis.make_stale(&alice).await;
    auth.stop().await;
    let validations = auth.validations();
    assert_eq!(ok(&four, &alice).await, identity);
    assert_refused(four.authenticate(&carol).await, ErrorCode::Sys002);
    assert_eq!(auth.validations(), validations, "auth was down");
    redis.clean().await;
}

#[tokio::test]
#[ignore = "needs Redis (PORTICO_TEST_REDIS_URL)"]
async fn redis_entry_is_replaced_by_auths_refusal() {
    let mut auth = AuthServer::start().await;
    let redis = SharedRedis::new("refusal").await;
    let token = auth.register("leaving@example.com").await.access_token;
    let other = auth.register("staying@example.com").await.access_token;
    let one = redis.instance(&auth);
    let late = redis.instance(&auth);
    // `late` has the JWKS, so it can verify tokens with auth down.
    ok(&late, &other).await;
    ok(&one, &token).await;

    auth.logout(&token).await;
    redis.make_stale(&token).await;
    let two = redis.instance(&auth);
    assert_refused(two.authenticate(&token).await, ErrorCode::Auth007);
    let validations = auth.validations();
    // The refusal, not the confirmation, is what Redis now holds, for 1 s.
    assert!(redis.pttl(&token).await <= 1_000);
    let three = redis.instance(&auth);
    assert_refused(three.authenticate(&token).await, ErrorCode::Auth007);
    assert_eq!(auth.validations(), validations, "refused from Redis");
    // With auth down, the logged-out token is not served from the old confirmation.
    auth.stop().await;
    let e = late.authenticate(&token).await.unwrap_err();
    assert!(
        [ErrorCode::Auth007, ErrorCode::Sys002].contains(&e.code()),
        "{e:?}"
    );
    redis.clean().await;
}

/// An address where nothing listens.
async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("redis://{addr}")
}

#[tokio::test]
async fn an_unreachable_second_level_never_fails_a_request() {
    let logs = CapturedLogs::global();
    let mut auth = AuthServer::start().await;
    let prefix = format!("portico:test:{}:", unique_name("closed"));
    let gateway = auth.authenticator_with(shared(&auth, &closed_port().await, &prefix));
    let tokens = auth.register("noredis@example.com").await;
    let keys = [
        auth.api_key(&tokens.access_token, None).await.key,
        auth.api_key(&tokens.access_token, None).await.key,
    ];

    for key in &keys {
        ok(&gateway, key).await;
        // Past the probe interval: every round tries Redis, and fails.
        auth.clock.advance(SECOND);
    }
    ok(&gateway, &tokens.access_token).await;
    assert_eq!(auth.validations(), 3, "asked auth, as without Redis");
    // Served from memory.
    ok(&gateway, &keys[0]).await;
    assert_eq!(auth.validations(), 3);
    let warned = logs.lines_with(&["redis unreachable", &prefix]);
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains("WARN"), "{warned:?}");

    // Auth down too: what memory holds passes, anything else is 503 as without Redis.
    auth.stop().await;
    ok(&gateway, &keys[1]).await;
    let unseen = auth.api_key(&tokens.access_token, None).await.key;
    assert_refused(gateway.authenticate(&unseen).await, ErrorCode::Sys002);
}

/// A "Redis" refusing every command (`-ERR`), as a Redis does when the password is wrong or
/// it is out of memory.
async fn refusing_redis() -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                // Each command is an array: one error per array header.
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.starts_with('*')
                        && write
                            .write_all(b"-NOAUTH Authentication required.\r\n")
                            .await
                            .is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    (format!("redis://{addr}"), task)
}

#[tokio::test]
async fn a_second_level_refusing_every_command_never_fails_a_request() {
    let logs = CapturedLogs::global();
    let auth = AuthServer::start().await;
    let (url, _redis) = refusing_redis().await;
    let prefix = format!("portico:test:{}:", unique_name("noauth"));
    let gateway = auth.authenticator_with(shared(&auth, &url, &prefix));
    let tokens = auth.register("noauth@example.com").await;
    let key = auth.api_key(&tokens.access_token, None).await.key;
    ok(&gateway, &key).await;
    auth.clock.advance(SECOND);
    ok(&gateway, &tokens.access_token).await;
    assert_eq!(auth.validations(), 2);
    let warned = logs.lines_with(&["redis unreachable", &prefix]);
    assert_eq!(warned.len(), 1, "{warned:?}");
}

#[tokio::test]
async fn a_hung_second_level_costs_one_timeout_per_probe_interval() {
    let auth = AuthServer::start().await;
    let (addr, _hung) = black_hole().await;
    let timeout = Duration::from_millis(200);
    let gateway = auth.authenticator_with(RemoteAuthSettings {
        redis_timeout: timeout,
        ..shared(&auth, &format!("redis://{addr}"), "portico:test:hung:")
    });
    let tokens = auth.register("hung@example.com").await;
    let mut keys = Vec::new();
    for _ in 0..5 {
        keys.push(auth.api_key(&tokens.access_token, None).await.key);
    }

    // The first request waits for Redis once (the read), then goes to auth.
    let started = Instant::now();
    ok(&gateway, &keys[0]).await;
    let first = started.elapsed();
    assert!(
        first >= timeout && first < 2 * timeout + SECOND,
        "{first:?}"
    );
    // The next ones skip Redis until the probe interval has passed.
    let started = Instant::now();
    for key in &keys[1..4] {
        ok(&gateway, key).await;
    }
    // (Waiting for Redis, they would take a timeout each.)
    assert!(started.elapsed() < 3 * timeout, "{:?}", started.elapsed());
    // Then one request tries it again.
    auth.clock.advance(SECOND);
    let started = Instant::now();
    ok(&gateway, &keys[4]).await;
    assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());
    assert_eq!(auth.validations(), 5);
}
