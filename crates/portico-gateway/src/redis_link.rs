//! [`RedisLink`]: a gateway's connection to Redis for one purpose (shared rate limits, the
//! shared validation cache) and whether that purpose is currently done without Redis
//! because it failed.
//!
//! Each thread that calls Redis gets its own connection, made on its first call and then kept
//! and re-established by redis-rs's `ConnectionManager`: `portico up` serves requests on one
//! single-threaded runtime per core (`portico_core::shutdown::serve_workers`), and a
//! connection whose task runs on another thread would make every call cross threads (a
//! wake-up and a context switch there and back), as a shared upstream pool would (see
//! `proxy::upstream`). While Redis answers, every call asks it. After a failure, the
//! purpose is served without Redis and at most one request per probe interval tries it
//! again (the others skip it and pay no timeout); the change each way is logged once.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use portico_core::clock::SharedClock;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use thread_local::ThreadLocal;
use tokio::sync::OnceCell;

/// The Redis of one purpose, and whether it is failing.
pub(crate) struct RedisLink {
    client: redis::Client,
    /// One connection per calling thread, its task on that thread's runtime.
    connections: ThreadLocal<OnceCell<ConnectionManager>>,
    clock: SharedClock,
    probe_interval: Duration,
    /// The log lines: what the purpose does without Redis, and with it again.
    without: String,
    again: String,
    state: Mutex<State>,
}

/// Answering or failing.
#[derive(Debug, Default)]
struct State {
    failing: bool,
    /// While failing: when one request may try Redis again.
    next_probe: Option<Instant>,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink")
            .field("failing", &self.is_failing())
            .finish_non_exhaustive()
    }
}

impl RedisLink {
    /// The Redis at `url`, not contacted until the first call; the probe interval runs on
    /// `clock`. `without` and `again` finish the log lines "redis unreachable: …" and
    /// "redis is back: …". The error says what kind of problem the URL has, never the URL
    /// (it may hold a password).
    pub(crate) fn new(
        url: &str,
        clock: SharedClock,
        probe_interval: Duration,
        (without, again): (String, String),
    ) -> Result<Self, redis::ErrorKind> {
        let client = redis::Client::open(url).map_err(|e| e.kind())?;
        Ok(Self {
            client,
            connections: ThreadLocal::new(),
            clock,
            probe_interval,
            without,
            again,
            state: Mutex::new(State::default()),
        })
    }

    /// Whether Redis failed and has not answered since.
    pub(crate) fn is_failing(&self) -> bool {
        self.state().failing
    }

    /// This thread's connection (a cheap clone of the reconnecting one), made on the
    /// thread's first call.
    pub(crate) async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        let manager = self
            .connections
            .get_or_default()
            .get_or_try_init(|| async {
                // Reconnection is redis-rs's; each of our calls is bounded by its caller.
                let config = ConnectionManagerConfig::new()
                    .set_number_of_retries(2)
                    .set_max_delay(self.probe_interval)
                    .set_connection_timeout(Some(Duration::from_secs(1)));
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            })
            .await?;
        Ok(manager.clone())
    }

    /// Whether this call should ask Redis: always while it answers; while it fails, one call
    /// per probe interval.
    pub(crate) fn should_ask(&self) -> bool {
        let mut state = self.state();
        if !state.failing {
            return true;
        }
        let now = self.clock.now();
        match state.next_probe {
            Some(at) if now < at => false,
            _ => {
                state.next_probe = Some(now + self.probe_interval);
                true
            }
        }
    }

    /// Redis answered.
    pub(crate) fn succeeded(&self) {
        let mut state = self.state();
        if state.failing {
            state.failing = false;
            state.next_probe = None;
            tracing::info!("redis is back: {}", self.again);
        }
    }

    /// Redis failed with `error` (or did not answer in time).
    pub(crate) fn failed(&self, error: &dyn std::fmt::Display) {
        let mut state = self.state();
        state.next_probe = Some(self.clock.now() + self.probe_interval);
        if !state.failing {
            state.failing = true;
            tracing::warn!(error = %error, "redis unreachable: {}", self.without);
        }
    }

    // Two plain fields, each written in one statement: poisoning is ignored.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
