//! [`SharedCache`]: the second level of the validation cache — auth's verdicts shared by
//! every gateway instance through Redis (`[redis] url`), so a credential auth has answered
//! for on one instance is known to all of them, and still served by all of them while auth
//! cannot be asked.
//!
//! # Keys and values
//! One key per credential: `<prefix><64 hex of the credential's SHA-256>` (prefix
//! [`DEFAULT_KEY_PREFIX`], `portico:gw:validation:`); the credential itself is never
//! written. The value is a small JSON document:
//!
//! ```json
//! {"v":1,"stale_ms":0,"verdict":{"valid":{"user_id":"…","email":"…","permissions":["…"],
//!   "roles":["…"],"token_type":"api_key","expires_at_ms":null}}}
//! {"v":1,"stale_ms":0,"verdict":{"refused":{"code":"AUTH_007","message":"API key deleted"}}}
//! ```
//!
//! The deadlines travel as lifetimes measured by Redis's own clock, not as instants of any
//! instance's clock (the memory level's clock is monotonic and local to its process):
//! - the key's TTL (`SET … PX`) is the verdict's *usable* lifetime, so Redis drops it when
//!   no instance may use it any more, and it is never longer than the credential's expiry;
//! - `stale_ms` is the tail of that lifetime in which the verdict is only used when auth
//!   cannot be asked (a user token's confirmation: fresh for the 2 s recheck, usable until
//!   its `exp`; 0 for API keys and refusals).
//!
//! A reader asks `GET` and `PTTL` at once (one small script): the verdict is fresh for `PTTL − stale_ms`
//! and usable for `PTTL`, from the moment it reads. Instances whose clocks disagree still
//! agree on both. The only wall-clock number is the credential's own `expires_at_ms`; the
//! reader also stops using the verdict there, by its own clock.
//!
//! # When Redis fails
//! Each call is bounded by the authenticator's `redis_timeout` (50 ms). A failed or late
//! call is a miss (reads) or nothing (writes): the request goes on to auth as it would
//! without Redis, and is never failed because of Redis. The first failure logs one warning
//! (`redis unreachable: identity validations are cached per instance until it is back`);
//! after it, Redis is tried again by at most one request per [`PROBE_INTERVAL`] (the others
//! skip it and pay no timeout), and the first success logs `redis is back: identity
//! validations are shared again`. The gateway's `redis` check in `/health` (registered
//! with the shared rate limits) reports the same Redis.
//!
//! # Trust
//! Whoever can write these keys can make the gateway accept an API key for any identity:
//! give the gateways a Redis (or an ACL user limited to the prefix) that nothing else
//! writes. A user token's identity is never taken from Redis — it is the token's own,
//! verified locally; only auth's confirmation or refusal of it is shared.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portico_core::clock::SharedClock;
use portico_core::error::{ApiError, ErrorCode};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use super::cache::{Digest, Verdict, credential_id};
use super::client::default_message;
use super::{CredentialKind, Identity};
use crate::redis_link::RedisLink;

/// The default prefix of the shared level's keys.
pub const DEFAULT_KEY_PREFIX: &str = "portico:gw:validation:";
/// The default bound on one call to Redis.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
/// While Redis fails, how often one request tries it again.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// The version of the stored JSON; a value of another version is a miss.
const VERSION: u8 = 1;

/// `GET` and `PTTL` of `KEYS[1]` in one atomic step (a `MULTI` would do the same in more
/// round trips of the protocol). A missing key answers `{nil, -2}`.
const READ: &str = "return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}";

/// A verdict as the shared level held it, with its lifetimes from the moment it was read.
#[derive(Debug)]
pub(super) struct SharedVerdict {
    /// The verdict.
    pub verdict: Verdict,
    /// How much longer it is used without asking auth.
    pub fresh_for: Duration,
    /// How much longer it is used when auth cannot be asked (≥ `fresh_for`).
    pub usable_for: Duration,
}

/// Verdicts in Redis, shared by every instance (see the module docs).
pub(super) struct SharedCache {
    link: RedisLink,
    read: redis::Script,
    prefix: String,
    timeout: Duration,
}

impl std::fmt::Debug for SharedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCache")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("failing", &self.link.is_failing())
            .finish_non_exhaustive()
    }
}

// === impl SharedCache ===

impl SharedCache {
    /// The level in the Redis at `url`, not contacted until the first call. The error says
    /// what kind of problem the URL has, never the URL (it may hold a password).
    pub(super) fn new(
        url: &str,
        prefix: String,
        timeout: Duration,
        clock: SharedClock,
    ) -> Result<Self, String> {
        let link = RedisLink::new(
            url,
            clock,
            PROBE_INTERVAL,
            (
                format!(
                    "identity validations are cached per instance until it is back (keys {prefix}…)"
                ),
                format!("identity validations are shared again (keys {prefix}…)"),
            ),
        )
        .map_err(|kind| format!("redis url: {kind:?}"))?;
        Ok(Self {
            link,
            read: redis::Script::new(READ),
            prefix,
            timeout,
        })
    }

    /// The verdict Redis holds for `digest`, if any, it is readable, and Redis answered
    /// within the timeout.
    pub(super) async fn get(&self, digest: &Digest) -> Option<SharedVerdict> {
        let key = self.key(digest);
        let (value, pttl) = self
            .call(|mut connection| async move {
                self.read
                    .key(&key)
                    .invoke_async::<(Option<Vec<u8>>, i64)>(&mut connection)
                    .await
            })
            .await?;
        // PTTL: -2 no key, -1 no expiry (not written by us); 0 about to go.
        let usable_ms = u64::try_from(pttl).ok().filter(|&ms| ms > 0)?;
        let stored = match serde_json::from_slice::<Stored>(&value?) {
            Ok(stored) if stored.v == VERSION => stored,
            _ => {
                tracing::debug!(
                    credential = %credential_id(digest),
                    "shared validation entry unreadable; ignored"
                );
                return None;
            }
        };
        let verdict = stored.verdict.into_verdict(digest)?;
        Some(SharedVerdict {
            verdict,
            fresh_for: Duration::from_millis(usable_ms.saturating_sub(stored.stale_ms)),
            usable_for: Duration::from_millis(usable_ms),
        })
    }

    /// Writes `verdict` for `digest`, fresh for `fresh_for` and usable for `usable_for`
    /// (replacing whatever was there); a verdict with less than a millisecond to live
    /// deletes the key instead.
    pub(super) async fn put(
        &self,
        digest: &Digest,
        verdict: &Verdict,
        fresh_for: Duration,
        usable_for: Duration,
    ) {
        let key = self.key(digest);
        // Whole milliseconds, rounded down: never past the credential's expiry.
        let usable_ms = u64::try_from(usable_for.as_millis()).unwrap_or(u64::MAX);
        let fresh_ms = u64::try_from(fresh_for.as_millis())
            .unwrap_or(u64::MAX)
            .min(usable_ms);
        let mut write = redis::cmd(if usable_ms == 0 { "DEL" } else { "SET" });
        write.arg(&key);
        if usable_ms > 0 {
            let stored = Stored {
                v: VERSION,
                stale_ms: usable_ms - fresh_ms,
                verdict: StoredVerdict::of(verdict),
            };
            let Ok(value) = serde_json::to_vec(&stored) else {
                return;
            };
            write.arg(value).arg("PX").arg(usable_ms);
        }
        // A write that fails is only a miss for the other instances later.
        let _ = self
            .call(|mut connection| async move {
                write.query_async::<redis::Value>(&mut connection).await
            })
            .await;
    }

    /// The Redis key of `digest`.
    pub(super) fn key(&self, digest: &Digest) -> String {
        let mut key = String::with_capacity(self.prefix.len() + 64);
        key.push_str(&self.prefix);
        portico_core::hex::push_bytes(&mut key, digest);
        key
    }

    /// Runs `command` on the connection within the timeout, unless Redis is being skipped;
    /// `None` when it was skipped, failed or was late (the failure is recorded, see the
    /// module docs).
    async fn call<T, F, Fut>(&self, command: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if !self.link.should_ask() {
            return None;
        }
        let call = async {
            let connection = self.link.connection().await?;
            command(connection).await
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(reply)) => {
                self.link.succeeded();
                Some(reply)
            }
            Ok(Err(error)) => {
                self.link.failed(&error);
                None
            }
            Err(_) => {
                self.link
                    .failed(&format_args!("no answer within {:?}", self.timeout));
                None
            }
        }
    }
}

// === stored form ===

#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    v: u8,
    /// The end of the usable lifetime (the key's TTL) that is not fresh, in ms.
    stale_ms: u64,
    verdict: StoredVerdict,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoredVerdict {
    Valid(StoredIdentity),
    Refused(StoredRefusal),
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredIdentity {
    user_id: String,
    email: String,
    permissions: Vec<String>,
    roles: Vec<String>,
    token_type: String,
    expires_at_ms: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredRefusal {
    code: String,
    message: String,
}

impl StoredVerdict {
    fn of(verdict: &Verdict) -> Self {
        match verdict {
            Verdict::Valid(identity) => StoredVerdict::Valid(StoredIdentity {
                user_id: identity.user_id.clone(),
                email: identity.email.clone(),
                permissions: identity.permissions.clone(),
                roles: identity.roles.clone(),
                token_type: identity.kind.as_str().to_owned(),
                expires_at_ms: identity.expires_at.map(|at| {
                    at.duration_since(UNIX_EPOCH)
                        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                }),
            }),
            Verdict::Refused(error) => StoredVerdict::Refused(StoredRefusal {
                code: error.code().as_str().to_owned(),
                message: error.message().to_owned(),
            }),
        }
    }

    /// The verdict, or `None` when the stored one is not one auth could have given.
    fn into_verdict(self, digest: &Digest) -> Option<Verdict> {
        match self {
            StoredVerdict::Valid(stored) => Some(Verdict::Valid(Identity {
                kind: CredentialKind::parse(&stored.token_type)?,
                user_id: stored.user_id,
                email: stored.email,
                permissions: stored.permissions,
                roles: stored.roles,
                credential_id: credential_id(digest),
                expires_at: stored
                    .expires_at_ms
                    .map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
            })),
            StoredVerdict::Refused(stored) => {
                // Only the refusals auth gives (as `client::refusal` accepts them).
                let code = ErrorCode::from_code(&stored.code).filter(|c| {
                    matches!(
                        c,
                        ErrorCode::Auth001 | ErrorCode::Auth002 | ErrorCode::Auth007
                    )
                })?;
                let message = Some(stored.message)
                    .filter(|m| {
                        !m.is_empty()
                            && m.len() <= 200
                            && m.chars().all(|c| c.is_ascii_graphic() || c == ' ')
                    })
                    .unwrap_or_else(|| default_message(code).to_owned());
                Some(Verdict::Refused(ApiError::new(code, message)))
            }
        }
    }
}

/// The remaining lifetime, by the wall clock at `system_now`, of a credential expiring at
/// `expires_at` (zero once past).
pub(super) fn until_expiry(expires_at: SystemTime, system_now: SystemTime) -> Duration {
    expires_at
        .duration_since(system_now)
        .unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(expires_at: Option<SystemTime>) -> Identity {
        Identity {
            user_id: "u1".into(),
            email: "u1@example.com".into(),
            permissions: vec!["etl.access".into()],
            roles: vec!["user".into()],
            kind: CredentialKind::ApiKey,
            credential_id: credential_id(&[7; 32]),
            expires_at,
        }
    }

    fn round_trip(verdict: &Verdict) -> Option<Verdict> {
        let bytes = serde_json::to_vec(&StoredVerdict::of(verdict)).unwrap();
        serde_json::from_slice::<StoredVerdict>(&bytes)
            .unwrap()
            .into_verdict(&[7; 32])
    }

    #[test]
    fn verdicts_survive_the_trip() {
        let at = UNIX_EPOCH + Duration::from_millis(1_900_000_000_123);
        for expires_at in [None, Some(at)] {
            let Some(Verdict::Valid(back)) = round_trip(&Verdict::Valid(identity(expires_at)))
            else {
                panic!("not valid");
            };
            assert_eq!(back, identity(expires_at));
        }
        let refusal = ApiError::new(ErrorCode::Auth007, "API key deleted");
        let Some(Verdict::Refused(back)) = round_trip(&Verdict::Refused(refusal)) else {
            panic!("not refused");
        };
        assert_eq!(
            (back.code(), back.message()),
            (ErrorCode::Auth007, "API key deleted")
        );
    }

    #[test]
    fn what_auth_could_not_have_said_is_not_a_verdict() {
        let refusal = |code: &str, message: &str| {
            StoredVerdict::Refused(StoredRefusal {
                code: code.into(),
                message: message.into(),
            })
        };
        assert!(refusal("SYS_002", "down").into_verdict(&[0; 32]).is_none());
        assert!(refusal("NOPE", "x").into_verdict(&[0; 32]).is_none());
        let Some(Verdict::Refused(e)) = refusal("AUTH_002", "\u{1b}[31m").into_verdict(&[0; 32])
        else {
            panic!("a refusal");
        };
        assert_eq!(e.message(), default_message(ErrorCode::Auth002));
        let mut odd = StoredVerdict::of(&Verdict::Valid(identity(None)));
        if let StoredVerdict::Valid(stored) = &mut odd {
            stored.token_type = "root".into();
        }
        assert!(odd.into_verdict(&[0; 32]).is_none());
    }

    #[test]
    fn keys_are_the_prefix_and_the_whole_digest_in_hex() {
        let clock = portico_core::clock::ManualClock::new().shared();
        let cache =
            SharedCache::new("redis://127.0.0.1:1", "p:".into(), DEFAULT_TIMEOUT, clock).unwrap();
        let key = cache.key(&[0xab; 32]);
        assert_eq!(key, format!("p:{}", "ab".repeat(32)));
        assert!(
            SharedCache::new("http://x", "p:".into(), DEFAULT_TIMEOUT, {
                portico_core::clock::ManualClock::new().shared()
            })
            .is_err()
        );
    }
}
