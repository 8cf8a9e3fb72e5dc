//! Config reload in the real binary: SIGHUP and a changed file swap the gateway's routes and
//! upstreams without dropping a request in flight; a broken config is refused, logged with
//! its file and line, and the running one kept.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use support::{DEADLINE, Scratch, Server};

/// A tiny HTTP upstream answering `{"from":"<name>"}`; a path containing `slow` is answered
/// after `SLOW`.
fn upstream(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut raw = Vec::new();
                let mut buf = [0u8; 4096];
                while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => raw.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&raw).into_owned();
                if head.lines().next().unwrap_or_default().contains("slow") {
                    std::thread::sleep(SLOW);
                }
                let body = format!(r#"{{"from":"{name}"}}"#);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    addr
}

/// How long the upstream takes to answer a `slow` path.
const SLOW: Duration = Duration::from_millis(1500);

/// One route `prefix` → the upstream `name` at `addr`.
fn config(prefix: &str, name: &str, addr: SocketAddr) -> String {
    format!(
        r#"[server]
data_dir = "data"

[upstreams.{name}]
url = "http://{addr}"

[[routes]]
prefix = "{prefix}"
upstream = "{name}"
auth = "none"
"#
    )
}

/// Polls `GET path` until it answers `status`, for at most the test deadline.
fn until_status(server: &Server, path: &str, status: u16) -> support::Response {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let res = server.get(path, &[]);
        if res.status == status || Instant::now() > deadline {
            return res;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_and_file_changes_swap_routes_and_a_bad_config_is_refused() {
    let dir = Scratch::new();
    let a = upstream("a");
    let b = upstream("b");
    dir.write("portico.toml", &config("/a", "a", a));
    let server = Server::start(dir.path(), &[], &[]);

    let res = server.get("/a/x", &[]);
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["from"], "a");
    assert!(server.get("/b/x", &[]).status == 404);

    // A request in flight on the old gateway while the config changes.
    let addr = server.addr;
    let in_flight = std::thread::spawn(move || support::request(addr, "GET", "/a/slow", &[], b""));
    std::thread::sleep(Duration::from_millis(300));

    dir.write("portico.toml", &config("/b", "b", b));
    server.signal("HUP");
    let line =
        server.wait_for_line(|l| l.contains("config reloaded (SIGHUP): 1 route, 1 upstream"));
    assert!(
        line.is_some(),
        "no reload line:\n{}",
        server.output().join("\n")
    );

    let res = server.get("/b/x", &[]);
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["from"], "b");
    let gone = server.get("/a/x", &[]);
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json()["error"]["code"], "REQ_003");
    let status = server.get("/status/services", &[]).json();
    let services: Vec<_> = status["services"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(services, ["b"]);

    let slow = in_flight.join().unwrap();
    assert_eq!(
        slow.status, 200,
        "the request in flight was dropped: {}",
        slow.body
    );
    assert_eq!(slow.json()["from"], "a");

    // A broken config: refused with file:line, the running gateway kept.
    let broken = config("/c", "c", b).replace("upstream = \"c\"", "upstream = \"nope\"");
    dir.write("portico.toml", &broken);
    server.signal("HUP");
    let refused = server.wait_for_line(|l| {
        l.contains("config reload refused: portico.toml:") && l.contains("routes[0].upstream")
    });
    assert!(
        refused.is_some(),
        "no refusal:\n{}",
        server.output().join("\n")
    );
    assert!(
        server
            .wait_for_line(|l| l.contains("still serving the previous config"))
            .is_some()
    );
    let res = server.get("/b/x", &[]);
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(server.get("/c/x", &[]).status, 404);

    // A changed file alone is picked up (polled every 2 s).
    let changed = Instant::now();
    dir.write("portico.toml", &config("/d", "a", a));
    let res = until_status(&server, "/d/x", 200);
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.json()["from"], "a");
    assert!(
        changed.elapsed() < Duration::from_secs(5),
        "took {:?}",
        changed.elapsed()
    );
    assert!(
        server
            .wait_for_line(|l| l.contains("config reloaded (file changed)"))
            .is_some()
    );
    assert_eq!(server.get("/b/x", &[]).status, 404);
}

/// `[upstreams.down]` at `url` (breaker opens on the first failure) behind `/down`, plus
/// `extra`.
fn down_config(url: SocketAddr, extra: &str) -> String {
    format!(
        r#"[server]
data_dir = "data"

[upstreams.down]
url = "http://{url}"
max_retries = 1
failure_threshold = 1
recovery_timeout = "10m"

[[routes]]
prefix = "/down"
upstream = "down"
auth = "none"
{extra}"#
    )
}

/// A reload line (SIGHUP, or the file poll when it sees the write first — the SIGHUP after
/// it then keeps both).
const KEPT_ONE: &str = "2 routes, 2 upstreams; circuit state kept for 1 unchanged upstream";

/// Waits (bounded) until `n` lines contain `text`.
fn lines_reach(server: &Server, text: &str, n: usize) -> bool {
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        if server.output().iter().filter(|l| l.contains(text)).count() >= n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn circuit(server: &Server, upstream: &str) -> String {
    let status = server.get("/status/services", &[]).json();
    status["services"][upstream]["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn an_unchanged_upstream_keeps_its_circuit_across_a_reload() {
    let dir = Scratch::new();
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let up = upstream("up");
    dir.write("portico.toml", &down_config(closed, ""));
    let server = Server::start(dir.path(), &[], &[]);
    let failed = server.get("/down/x", &[]);
    assert!(failed.status >= 500, "{}", failed.status);
    assert_eq!(circuit(&server, "down"), "open");

    // Another route and upstream added; `down` as it was: its circuit stays open.
    let extra = format!(
        "[upstreams.up]\nurl = \"http://{up}\"\n[[routes]]\nprefix = \"/up\"\nupstream = \"up\"\nauth = \"none\"\n"
    );
    dir.write("portico.toml", &down_config(closed, &extra));
    server.signal("HUP");
    assert!(
        lines_reach(&server, KEPT_ONE, 1),
        "{}",
        server.output().join("\n")
    );
    assert_eq!(circuit(&server, "down"), "open");
    assert_eq!(circuit(&server, "up"), "closed");
    assert_eq!(server.get("/up/x", &[]).status, 200);

    // `down` moved to a live address: a new, closed breaker.
    dir.write("portico.toml", &down_config(up, &extra));
    server.signal("HUP");
    // The second such line: `up` kept, `down` not.
    assert!(
        lines_reach(&server, KEPT_ONE, 2),
        "{}",
        server.output().join("\n")
    );
    let res = until_status(&server, "/down/x", 200);
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(circuit(&server, "down"), "closed");
}
