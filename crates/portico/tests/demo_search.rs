//! Seed 001 (Caudex) walked through the real processes: `portico up` in front of
//! `portico demo search`. A search answered by the store is kept; when the store fails, the
//! gateway serves the kept answer (`X-Portico-Fallback: cache`), the failures open the
//! circuit (`/status/services`), and a search never answered before gets 503 `SYS_002`.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::{DEADLINE, JSON, Scratch, Server, portico, register, request};

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn caudex_search_falls_back_to_the_last_good_answer_while_chroma_fails() {
    let search: SocketAddr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
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
    let listen = search.to_string();
    let _demo = Demo(
        portico(
            scratch.path(),
            &[
                "demo",
                "search",
                "--listen",
                &listen,
                "--internal-token",
                "search-internal-secret",
            ],
            &[],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let until = Instant::now() + DEADLINE;
    while TcpStream::connect(search).is_err() {
        assert!(Instant::now() < until, "the search demo did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
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

    let told = request(
        search,
        "POST",
        "/control/failing",
        &[
            JSON[0],
            ("X-Internal-Auth", "search-internal-secret"),
            ("X-User-ID", "ops"),
        ],
        br#"{"failing":true}"#,
    );
    assert_eq!(told.status, 200, "{}", told.body);
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
