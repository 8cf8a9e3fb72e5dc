//! The password-hashing threads' scheduling, read back from Linux's /proc. A file of its own
//! so that no other test's hasher threads are alive in this process while it looks.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

use std::time::{Duration, Instant};

use portico_auth::password::{HashPriority, PasswordHasher};

const SCHED_OTHER: u32 = 0;
const SCHED_IDLE: u32 = 5;

/// (niceness, scheduling policy) of a /proc/<pid>/task/<tid>/stat line: its 19th and 41st
/// fields, counted past the parenthesised thread name (which may hold spaces).
fn scheduling(stat: &str) -> (i32, u32) {
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // `fields[0]` is the 3rd field (the state).
    (
        fields[19 - 3].parse().unwrap(),
        fields[41 - 3].parse().unwrap(),
    )
}

/// The scheduling of each thread of this process whose name starts with `prefix`.
fn threads_named(prefix: &str) -> Vec<(i32, u32)> {
    let mut found = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        // A thread may end between the listing and the reads.
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("stat")),
        ) else {
            continue;
        };
        if comm.starts_with(prefix) {
            found.push(scheduling(&stat));
        }
    }
    found
}

fn own_scheduling() -> (i32, u32) {
    scheduling(&std::fs::read_to_string("/proc/thread-self/stat").unwrap())
}

#[tokio::test]
async fn hashing_threads_run_at_background_priority_and_end_with_the_hasher() {
    let (own_nice, own_policy) = own_scheduling();
    assert_eq!(own_policy, SCHED_OTHER, "the test itself runs normally");

    // Default: SCHED_IDLE, so a waking serving thread takes the core from a hash at once.
    let hasher = PasswordHasher::new(2);
    let phc = hasher.hash("password-123").await.unwrap();
    assert!(hasher.verify("password-123", &phc).await.unwrap());
    let threads = threads_named("portico-argon2-");
    assert_eq!(threads.len(), 2, "{threads:?}");
    assert!(
        threads.iter().all(|&(_, policy)| policy == SCHED_IDLE),
        "{threads:?}"
    );
    assert_eq!(
        own_scheduling(),
        (own_nice, own_policy),
        "the caller keeps its priority"
    );

    // The threads end once the last clone of the hasher is gone.
    drop(hasher);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !threads_named("portico-argon2-").is_empty() {
        assert!(
            Instant::now() < deadline,
            "hashing threads outlived their hasher"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // `low`: normal policy at niceness 10 (or the process's own, if already lower).
    let hasher = PasswordHasher::with_priority(1, HashPriority::Low);
    hasher.hash("password-123").await.unwrap();
    let threads = threads_named("portico-argon2-");
    assert_eq!(threads, vec![(own_nice.max(10), SCHED_OTHER)]);
}
