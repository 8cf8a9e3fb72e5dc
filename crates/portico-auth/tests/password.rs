//! Password hashing and policy through the public API: argon2id PHC strings, verification,
//! the dummy verification for unknown accounts, and the concurrency bound.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use portico_auth::password::{
    MAX_PASSWORD_BYTES, PasswordError, PasswordHasher, PasswordParams, PolicyError, check_policy,
};

/// Cheap parameters for tests of behaviour rather than cost.
const FAST: PasswordParams = PasswordParams {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

fn fast_hasher() -> PasswordHasher {
    PasswordHasher::with_params(2, FAST).unwrap()
}

// === hashing and verification ===

#[tokio::test]
async fn hash_is_an_argon2id_phc_string_with_owasp_parameters() {
    let hasher = PasswordHasher::new(1);
    let phc = hasher.hash("correct horse battery").await.unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    assert!(!hasher.needs_rehash(&phc));
    assert!(hasher.verify("correct horse battery", &phc).await.unwrap());
}

#[tokio::test]
async fn correct_password_verifies_and_wrong_one_does_not() {
    let hasher = fast_hasher();
    let phc = hasher.hash("s3cret-pass").await.unwrap();
    assert!(hasher.verify("s3cret-pass", &phc).await.unwrap());
    assert!(!hasher.verify("s3cret-pasS", &phc).await.unwrap());
    assert!(!hasher.verify("", &phc).await.unwrap());
}

#[tokio::test]
async fn same_password_hashes_differently_each_time() {
    let hasher = fast_hasher();
    let a = hasher.hash("same password").await.unwrap();
    let b = hasher.hash("same password").await.unwrap();
    assert_ne!(a, b, "salts differ");
    assert!(hasher.verify("same password", &b).await.unwrap());
}

#[tokio::test]
async fn malformed_stored_hash_is_an_error_not_a_mismatch() {
    let hasher = fast_hasher();
    for stored in [
        "",
        "plaintext",
        "$argon2id$v=19$m=64",
        "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ",
        "$scrypt$ln=4,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
    ] {
        assert!(matches!(
            hasher.verify("whatever1", stored).await,
            Err(PasswordError::InvalidHash)
        ));
    }
}

#[tokio::test]
async fn over_long_password_is_refused_and_never_matches() {
    let hasher = fast_hasher();
    let long = "x".repeat(MAX_PASSWORD_BYTES + 1);
    assert!(matches!(
        hasher.hash(&long).await,
        Err(PasswordError::TooLong)
    ));
    let phc = hasher.hash(&long[..MAX_PASSWORD_BYTES]).await.unwrap();
    assert!(
        hasher
            .verify(&long[..MAX_PASSWORD_BYTES], &phc)
            .await
            .unwrap()
    );
    assert!(!hasher.verify(&long, &phc).await.unwrap());
}

#[tokio::test]
async fn hash_made_with_weaker_parameters_needs_rehash() {
    let weak = fast_hasher().hash("password1").await.unwrap();
    let hasher = PasswordHasher::new(1);
    assert!(hasher.needs_rehash(&weak));
    assert!(hasher.needs_rehash("not a hash"));
    // Old hashes still verify.
    assert!(hasher.verify("password1", &weak).await.unwrap());
}

// === unknown accounts ===

#[tokio::test]
async fn unknown_user_verification_runs_a_real_verification() {
    let hasher = PasswordHasher::new(1);
    assert_eq!(hasher.peak_concurrency(), 0);
    hasher.verify_unknown_user("guess-1234").await;
    assert_eq!(
        hasher.peak_concurrency(),
        1,
        "work ran on the blocking pool"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_takes_about_as_long_as_a_wrong_password() {
    let hasher = PasswordHasher::new(1);
    let phc = hasher.hash("the real password").await.unwrap();
    // Fastest of three each, to shed noise from other work on the machine.
    let mut wrong = Duration::MAX;
    let mut unknown = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        assert!(!hasher.verify("a wrong password", &phc).await.unwrap());
        wrong = wrong.min(t.elapsed());
        let t = Instant::now();
        hasher.verify_unknown_user("a wrong password").await;
        unknown = unknown.min(t.elapsed());
    }
    assert!(
        unknown * 2 > wrong && wrong * 2 > unknown,
        "unknown {unknown:?} vs wrong password {wrong:?}"
    );
}

// === concurrency ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_one_never_runs_two_hashes_at_once() {
    let hasher = PasswordHasher::new(1);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..4 {
        let hasher = hasher.clone();
        tasks.spawn(async move { hasher.hash(&format!("password-{i}")).await });
    }
    let mut hashes = Vec::new();
    while let Some(result) = tasks.join_next().await {
        hashes.push(result.unwrap().unwrap());
    }
    assert_eq!(hashes.len(), 4);
    assert_eq!(hasher.peak_concurrency(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashes_overlap_when_the_bound_allows() {
    // The counterpart of the test above: the measurement does see overlap.
    let hasher = PasswordHasher::new(3);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..3 {
        let hasher = hasher.clone();
        tasks.spawn(async move { hasher.hash(&format!("password-{i}")).await });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap().unwrap();
    }
    assert!(
        hasher.peak_concurrency() >= 2,
        "{}",
        hasher.peak_concurrency()
    );
}

#[tokio::test]
async fn hashing_does_not_block_the_runtime() {
    // One runtime thread: if the hash ran on it, the ticker could not run until it ended.
    let hasher = PasswordHasher::new(1);
    let done = Arc::new(AtomicBool::new(false));
    let hash = {
        let done = done.clone();
        async move {
            let phc = hasher.hash("password-123").await;
            done.store(true, Ordering::SeqCst);
            phc
        }
    };
    let ticker = async {
        let mut ticks = 0u64;
        while !done.load(Ordering::SeqCst) {
            ticks += 1;
            tokio::task::yield_now().await;
        }
        ticks
    };
    let (phc, ticks) = tokio::join!(hash, ticker);
    phc.unwrap();
    assert!(ticks > 0, "the runtime made progress while hashing");
}

// === policy ===

#[test]
fn password_of_eight_characters_passes_policy() {
    assert_eq!(check_policy("abcdefgh", "ada@example.com"), Ok(()));
    // Characters, not bytes: eight multi-byte characters are enough.
    assert_eq!(
        check_policy("ééééééé", "ada@example.com"),
        Err(PolicyError::TooShort)
    );
    assert_eq!(check_policy("éééééééé", "ada@example.com"), Ok(()));
}

#[test]
fn short_password_is_refused_by_policy() {
    for short in ["", "a", "1234567"] {
        assert_eq!(
            check_policy(short, "ada@example.com"),
            Err(PolicyError::TooShort)
        );
    }
    assert_eq!(
        PolicyError::TooShort.to_string(),
        "must be at least 8 characters"
    );
    assert_eq!(PolicyError::TooShort.field(), "password");
}

#[test]
fn password_over_1024_bytes_is_refused_by_policy() {
    assert_eq!(check_policy(&"a".repeat(1024), "ada@example.com"), Ok(()));
    assert_eq!(
        check_policy(&"a".repeat(1025), "ada@example.com"),
        Err(PolicyError::TooLong)
    );
    // 342 three-byte characters are 1026 bytes.
    assert_eq!(
        check_policy(&"€".repeat(342), "ada@example.com"),
        Err(PolicyError::TooLong)
    );
    assert_eq!(
        PolicyError::TooLong.to_string(),
        "must be at most 1024 bytes"
    );
}

#[test]
fn password_equal_to_the_email_is_refused_whatever_the_case() {
    for password in ["ada@example.com", "Ada@Example.COM"] {
        assert_eq!(
            check_policy(password, "ada@example.com"),
            Err(PolicyError::SameAsEmail)
        );
    }
    assert_eq!(
        PolicyError::SameAsEmail.to_string(),
        "must not be the same as the email"
    );
}
