//! Seed 001 (Caudex) walked through the real processes: `portico up` in front of
//! `portico demo search`. A search answered by the store is kept; when the store fails, the
//! gateway serves the kept answer (`X-Portico-Fallback: cache`), the failures open the
//! circuit (`/status/services`), and a search never answered before gets 503 `SYS_002`.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use support::{Demo, Scratch, Server, free_addr, register};

#[test]
fn caudex_search_falls_back_to_the_last_good_answer_while_chroma_fails() {
    let search = free_addr();
    let scratch = Scratch::new();
    scratch.write(
        "portico.toml",
        &format!(
            r#"
[server]
data_dir = "data"

[upstreams.search]
url = "http://{search}"
internal_token = "search-internal-secret"
max_retries = 1
failure_threshold = 2

[[routes]]
prefix = "/v1/api/search"
upstream = "search"
auth = "required"
fallback = {{ cache = true }}
"#
        ),
    );
    let server = Server::start(scratch.path(), &["--config", "portico.toml"], &[]);
    let _demo = Demo::start(
        scratch.path(),
        "search",
        search,
        &["--internal-token", "search-internal-secret"],
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

    let fresh = find("breakers");
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    assert_eq!(fresh.json()["source"], "chroma");
    assert!(!fresh.json()["results"].as_array().unwrap().is_empty());
    assert_eq!(fresh.header("x-portico-fallback"), None);

    Demo::set_failing(search, "search-internal-secret", true);
    for _ in 0..2 {
        let kept = find("breakers");
        assert_eq!(kept.status, 200, "{}", kept.body);
        assert_eq!(kept.header("x-portico-fallback"), Some("cache"));
        assert_eq!(kept.json(), fresh.json());
    }
    let status = server.get("/status/services", &[]).json();
    assert_eq!(status["services"]["search"]["state"], "open", "{status}");

    let never = find("retries");
    assert_eq!(never.status, 503, "{}", never.body);
    assert_eq!(never.json()["error"]["code"], "SYS_002");
    assert!(never.header("retry-after").is_some());
}
