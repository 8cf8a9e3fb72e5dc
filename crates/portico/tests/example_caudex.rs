//! examples/caudex (seed 001) walked through the real processes: `portico up` with the
//! example's own portico.toml in front of `portico demo search`. A search answered by the
//! store is kept; when the store fails, the gateway retries with the seed's backoff (and logs
//! it as the seed does), serves the kept answer (`X-Portico-Fallback: cache`), the failures
//! open the circuit (`/status/services`), a search never answered before gets 503 `SYS_002`,
//! and after the recovery timeout the circuit closes again.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use std::time::{Duration, Instant};

use support::{DEADLINE, Demo, Scratch, Server, example_config, free_addr, register};

const TOKEN: &str = "chroma-internal-secret-0123456789";

#[test]
fn caudex_search_retries_opens_the_circuit_serves_the_fallback_and_recovers() {
    let search = free_addr();
    let scratch = Scratch::new();
    example_config(&scratch, "caudex", &[("127.0.0.1:9001", search)]);
    let server = Server::start(
        scratch.path(),
        &["--config", "portico.toml"],
        &[
            ("CHROMA_INTERNAL_TOKEN", TOKEN),
            // The seed waits 60 s before it tries again; the test, 1 s.
            ("PORTICO_UPSTREAMS__CHROMA__RECOVERY_TIMEOUT", "1s"),
        ],
    );
    let _demo = Demo::start(
        scratch.path(),
        "search",
        search,
        &["--internal-token", TOKEN],
        &[],
    );
    let token = register(server.addr, "analyst@example.com");
    let bearer = format!("Bearer {token}");
    let find = |q: &str| {
        server.get(
            &format!("/v1/api/search?q={q}"),
            &[("Authorization", &bearer)],
        )
    };
    let state =
        || server.get("/status/services", &[]).json()["services"]["chroma"]["state"].clone();

    let fresh = find("breakers");
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    assert_eq!(fresh.json()["source"], "chroma");
    assert!(!fresh.json()["results"].as_array().unwrap().is_empty());
    assert_eq!(fresh.header("x-portico-fallback"), None);
    assert_eq!(state(), "closed");

    // The store fails: each search is tried 3 times (1 s, then 2 s apart) and answered from
    // the kept answer; the 5th failure opens the circuit.
    Demo::set_failing(search, TOKEN, true);
    for _ in 0..2 {
        let kept = find("breakers");
        assert_eq!(kept.status, 200, "{}", kept.body);
        assert_eq!(kept.header("x-portico-fallback"), Some("cache"));
        assert_eq!(kept.json(), fresh.json());
    }
    for line in [
        "[chroma] Retrying in 1s...",
        "[chroma] Retrying in 2s...",
        "[chroma] Circuit breaker OPEN (threshold reached: 5/5)",
    ] {
        assert!(
            server.wait_for_line(|l| l.contains(line)).is_some(),
            "no {line:?} in:\n{}",
            server.output().join("\n")
        );
    }
    let status = server.get("/status/services", &[]).json();
    assert_eq!(status["services"]["chroma"]["state"], "open", "{status}");
    assert_eq!(status["services"]["chroma"]["failure_count"], 5, "{status}");
    // Open: the kept answer still serves; a search never answered before has nothing to fall
    // back on.
    let kept = find("breakers");
    assert_eq!(kept.header("x-portico-fallback"), Some("cache"));
    let never = find("retries");
    assert_eq!(never.status, 503, "{}", never.body);
    assert_eq!(never.json()["error"]["code"], "SYS_002");
    assert!(never.header("retry-after").is_some());
    // Degraded, not down: chroma is not critical.
    let health = server.get("/health", &[]);
    assert_eq!(health.status, 200, "{}", health.body);

    // The store recovers; after the recovery timeout a trial search closes the circuit.
    Demo::set_failing(search, TOKEN, false);
    let until = Instant::now() + DEADLINE;
    loop {
        let answer = find("recovery");
        if answer.status == 200 && answer.header("x-portico-fallback").is_none() {
            assert_eq!(answer.json()["source"], "chroma");
            break;
        }
        assert!(
            Instant::now() < until,
            "the circuit never closed: {}",
            answer.body
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(state(), "closed");
    assert!(
        server
            .wait_for_line(|l| l.contains("[chroma] Circuit breaker CLOSED"))
            .is_some(),
        "{}",
        server.output().join("\n")
    );
}
