//! Password hashing with argon2id, off the async runtime and with bounded concurrency.
//!
//! # Parameters
//! argon2id (v1.3) with **m = 19 456 KiB (19 MiB), t = 2, p = 1**, a 16-byte random salt and
//! a 32-byte tag — the OWASP Password Storage Cheat Sheet's first recommended configuration
//! ([`PasswordParams::OWASP`]). Hashes are PHC strings
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<tag>`), so each records its own parameters: a
//! hash made with older parameters still verifies, and [`PasswordHasher::needs_rehash`] says
//! when to replace it after a successful login.
//!
//! # Concurrency
//! One hash costs tens of milliseconds of CPU and 19 MiB. [`PasswordHasher`] runs each on
//! one of `max_concurrent` dedicated threads, behind a semaphore of as many permits: a burst
//! of logins queues for permits instead of occupying every core, and never blocks the async
//! workers that serve token validation. The hashing threads run at a background scheduling
//! priority ([`HashPriority`]; `SCHED_IDLE` on Linux by default), so a core shared between a
//! hash and a serving thread goes to the serving thread at once, and validation latency stays
//! flat while logins run beside it.
//! A permit is held by the hashing job itself, so a request that is cancelled while its hash
//! runs still counts until the hash finishes.
//!
//! # Unknown accounts
//! [`PasswordHasher::verify_unknown_user`] verifies against a fixed dummy hash with the same
//! parameters, so "no such email" costs the same time as "wrong password" and the two cannot
//! be told apart.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use rand::RngCore as _;
use tokio::sync::{Semaphore, oneshot};

use pool::HashPool;
pub use pool::HashPriority;

mod policy;
mod pool;

pub use policy::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS, PolicyError, check_policy};

/// What [`PasswordHasher::verify_unknown_user`] verifies against: the hash of a random
/// 43-character password, made once with [`PasswordParams::OWASP`] and then discarded. A
/// test checks that its parameters stay equal to the hasher's.
const OWASP_DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$h0xtUnxCNiw8QRKjJ0eO0g$aaJH6KNmx2SxLtEvPZf1u3oXrhs1xcIVfwivdKNsACU";

/// [`PasswordParams::OWASP`] as argon2's type, checked at compile time.
const OWASP_PARAMS: Params = match Params::new(19 * 1024, 2, 1, None) {
    Ok(params) => params,
    Err(_) => panic!("OWASP argon2 parameters out of range"),
};

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory per hash, in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl PasswordParams {
    /// OWASP's recommendation: 19 MiB, 2 passes, 1 lane.
    pub const OWASP: Self = Self {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };
}

impl Default for PasswordParams {
    fn default() -> Self {
        Self::OWASP
    }
}

/// Why hashing or verifying failed (not "wrong password": that is `Ok(false)`).
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The password is longer than [`MAX_PASSWORD_BYTES`].
    #[error("password too long")]
    TooLong,
    /// The stored hash is not a PHC string this hasher understands.
    #[error("stored password hash is malformed")]
    InvalidHash,
    /// The parameters are out of argon2's range.
    #[error("invalid argon2 parameters")]
    InvalidParams,
    /// argon2 itself failed.
    #[error("password hashing failed: {0}")]
    Hashing(argon2::password_hash::Error),
    /// The hashing job panicked, or no hashing thread could run it.
    #[error("password hashing task failed")]
    TaskFailed,
}

/// Hashes and verifies passwords on `max_concurrent` dedicated background-priority threads,
/// at most `max_concurrent` at once. Cheap to clone; clones share the bound and the threads,
/// which end when the last clone is dropped.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    argon2: Argon2<'static>,
    params: PasswordParams,
    permits: Arc<Semaphore>,
    pool: HashPool,
    max_concurrent: usize,
    dummy_hash: String,
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl PasswordHasher {
    /// A hasher with [`PasswordParams::OWASP`] running at most `max_concurrent` hashes at
    /// once (at least 1), on threads at [`HashPriority::Idle`].
    pub fn new(max_concurrent: usize) -> Self {
        Self::with_priority(max_concurrent, HashPriority::default())
    }

    /// [`PasswordHasher::new`] with its threads at `priority`.
    pub fn with_priority(max_concurrent: usize, priority: HashPriority) -> Self {
        Self::build(
            max_concurrent,
            priority,
            PasswordParams::OWASP,
            Argon2::new(Algorithm::Argon2id, Version::V0x13, OWASP_PARAMS),
            OWASP_DUMMY_HASH.to_owned(),
        )
    }

    /// A hasher with other parameters. Computes its dummy hash here, once, synchronously
    /// (one hash's time).
    pub fn with_params(
        max_concurrent: usize,
        params: PasswordParams,
    ) -> Result<Self, PasswordError> {
        let argon2 = argon2(params)?;
        let dummy_hash = hash_with(&argon2, &random_password())?;
        Ok(Self::build(
            max_concurrent,
            HashPriority::default(),
            params,
            argon2,
            dummy_hash,
        ))
    }

    fn build(
        max_concurrent: usize,
        priority: HashPriority,
        params: PasswordParams,
        argon2: Argon2<'static>,
        dummy_hash: String,
    ) -> Self {
        let max_concurrent = max_concurrent.max(1);
        Self {
            inner: Arc::new(Inner {
                argon2,
                params,
                permits: Arc::new(Semaphore::new(max_concurrent)),
                pool: HashPool::new(max_concurrent, priority),
                max_concurrent,
                dummy_hash,
                running: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
            }),
        }
    }

    /// The PHC string of `password` with a fresh random salt.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(PasswordError::TooLong);
        }
        let password = password.to_owned();
        self.run(move |argon2| hash_with(argon2, &password)).await?
    }

    /// Whether `password` matches the stored PHC string `phc`.
    ///
    /// `Ok(false)` for a wrong password, and without hashing for one longer than
    /// [`MAX_PASSWORD_BYTES`] (no stored password can be that long); `Err(InvalidHash)` when
    /// `phc` cannot be parsed.
    pub async fn verify(&self, password: &str, phc: &str) -> Result<bool, PasswordError> {
        parse_stored(phc)?;
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(false);
        }
        let password = password.to_owned();
        let phc = phc.to_owned();
        self.run(move |argon2| verify_with(argon2, &password, &phc))
            .await?
    }

    /// Spends the time of a verification for an account that does not exist, so the answer
    /// for an unknown email takes as long as for a wrong password. The outcome is always
    /// "no match" and is not returned; a failure of the task is ignored for the same reason.
    pub async fn verify_unknown_user(&self, password: &str) {
        if password.len() > MAX_PASSWORD_BYTES {
            // `verify` answers such a password at once for a known account too.
            return;
        }
        let dummy = self.inner.dummy_hash.clone();
        let password = password.to_owned();
        // The outcome is "no match" whatever happens; there is nothing to report.
        let _ = self
            .run(move |argon2| verify_with(argon2, &password, &dummy))
            .await;
    }

    /// Whether a stored hash should be replaced (after a successful login) because it is
    /// not argon2id v1.3 or is weaker than this hasher's parameters.
    pub fn needs_rehash(&self, phc: &str) -> bool {
        let Ok(hash) = PasswordHash::new(phc) else {
            return true;
        };
        let Ok(params) = Params::try_from(&hash) else {
            return true;
        };
        let ours = self.inner.params;
        hash.algorithm != Algorithm::Argon2id.ident()
            || hash.version != Some(Version::V0x13.into())
            || params.m_cost() < ours.memory_kib
            || params.t_cost() < ours.iterations
            || params.p_cost() < ours.parallelism
    }

    /// The parameters of new hashes.
    pub fn params(&self) -> PasswordParams {
        self.inner.params
    }

    /// The bound on hashes running at once.
    pub fn max_concurrent(&self) -> usize {
        self.inner.max_concurrent
    }

    /// The most hashes or verifications that have run at the same moment so far, counted
    /// inside the blocking tasks (for telemetry, and to prove the bound holds).
    pub fn peak_concurrency(&self) -> usize {
        self.inner.peak.load(Ordering::SeqCst)
    }

    /// Runs `work` on a hashing thread once a permit is free.
    async fn run<T, F>(&self, work: F) -> Result<T, PasswordError>
    where
        T: Send + 'static,
        F: FnOnce(&Argon2<'static>) -> T + Send + 'static,
    {
        let permit = self
            .inner
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PasswordError::TaskFailed)?;
        let inner = self.inner.clone();
        let (reply, answer) = oneshot::channel();
        let queued = self.inner.pool.execute(move || {
            let _permit = permit;
            let now = inner.running.fetch_add(1, Ordering::SeqCst) + 1;
            inner.peak.fetch_max(now, Ordering::SeqCst);
            let out = work(&inner.argon2);
            inner.running.fetch_sub(1, Ordering::SeqCst);
            // The caller may have gone (a cancelled request); the work is done either way.
            let _ = reply.send(out);
        });
        if !queued {
            return Err(PasswordError::TaskFailed);
        }
        answer.await.map_err(|_| PasswordError::TaskFailed)
    }
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.inner.params)
            .field("max_concurrent", &self.inner.max_concurrent)
            .finish()
    }
}

fn argon2(params: PasswordParams) -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        None,
    )
    .map_err(|_| PasswordError::InvalidParams)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_with(argon2: &Argon2<'_>, password: &str) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(PasswordError::Hashing)?;
    argon2
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(PasswordError::Hashing)
}

fn verify_with(argon2: &Argon2<'_>, password: &str, phc: &str) -> Result<bool, PasswordError> {
    let hash = parse_stored(phc)?;
    match argon2.verify_password(password.as_bytes(), &hash) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(PasswordError::Hashing(e)),
    }
}

/// A stored PHC string with an argon2 algorithm, a salt and a tag.
fn parse_stored(phc: &str) -> Result<PasswordHash<'_>, PasswordError> {
    let hash = PasswordHash::new(phc).map_err(|_| PasswordError::InvalidHash)?;
    let argon2 = [Algorithm::Argon2id, Algorithm::Argon2i, Algorithm::Argon2d]
        .iter()
        .any(|alg| hash.algorithm == alg.ident());
    if !argon2 || hash.salt.is_none() || hash.hash.is_none() {
        return Err(PasswordError::InvalidHash);
    }
    Ok(hash)
}

fn random_password() -> String {
    crate::secret::random_token(32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_parameters_are_the_documented_ones() {
        assert_eq!(OWASP_PARAMS.m_cost(), 19_456);
        assert_eq!(OWASP_PARAMS.t_cost(), 2);
        assert_eq!(OWASP_PARAMS.p_cost(), 1);
        assert_eq!(OWASP_PARAMS.m_cost(), PasswordParams::OWASP.memory_kib);
        assert_eq!(OWASP_PARAMS.t_cost(), PasswordParams::OWASP.iterations);
        assert_eq!(OWASP_PARAMS.p_cost(), PasswordParams::OWASP.parallelism);
    }

    #[test]
    fn dummy_hash_has_the_owasp_parameters() {
        let hash = PasswordHash::new(OWASP_DUMMY_HASH).unwrap();
        let params = Params::try_from(&hash).unwrap();
        assert_eq!(hash.algorithm, Algorithm::Argon2id.ident());
        assert_eq!(params.m_cost(), PasswordParams::OWASP.memory_kib);
        assert_eq!(params.t_cost(), PasswordParams::OWASP.iterations);
        assert_eq!(params.p_cost(), PasswordParams::OWASP.parallelism);
        assert!(!PasswordHasher::new(1).needs_rehash(OWASP_DUMMY_HASH));
    }
}
