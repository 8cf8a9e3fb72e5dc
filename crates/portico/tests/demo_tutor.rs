//! Seed 004 (CodeMentor) walked through the real processes: `portico up` in front of
//! `portico demo tutor`. The tutor answers; told to fail, its failures open the route's
//! circuit, `/status/services` says `open`, and the gateway answers with the static fallback
//! reply (`X-Portico-Fallback: static`) without calling the tutor.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use support::{Demo, JSON, Scratch, Server, free_addr, register, request};

#[test]
fn codementor_tutor_failures_open_the_circuit_and_the_fallback_answers() {
    let tutor = free_addr();
    let scratch = Scratch::new();
    scratch.write(
        "portico.toml",
        &format!(
            r#"
[server]
data_dir = "data"

[upstreams.tutor]
url = "http://{tutor}"
internal_token = "tutor-internal-secret"
failure_threshold = 3

[[routes]]
prefix = "/api/tutor"
upstream = "tutor"
auth = "required"
fallback = {{ status = 200, json = {{ reply = "The tutor is busy; here is a hint: read the error message first." }} }}
"#
        ),
    );
    let server = Server::start(scratch.path(), &["--config", "portico.toml"], &[]);
    let _demo = Demo::start(
        scratch.path(),
        "tutor",
        tutor,
        &["--internal-token", "tutor-internal-secret"],
        &[],
    );
    let token = register(server.addr, "learner@example.com");
    let bearer = format!("Bearer {token}");
    let ask = || {
        request(
            server.addr,
            "POST",
            "/api/tutor/ask",
            &[("Authorization", bearer.as_str()), JSON[0]],
            br#"{"question":"Why does my loop never end?"}"#,
        )
    };

    let answer = ask();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["source"], "tutor");
    assert_eq!(answer.header("x-portico-fallback"), None);

    // The tutor starts failing (told directly, with its internal token).
    Demo::set_failing(tutor, "tutor-internal-secret", true);
    for _ in 0..3 {
        let fallback = ask();
        assert_eq!(fallback.status, 200, "{}", fallback.body);
        assert_eq!(fallback.header("x-portico-fallback"), Some("static"));
        assert!(
            fallback.json()["reply"]
                .as_str()
                .unwrap()
                .starts_with("The tutor is busy")
        );
    }
    let status = server.get("/status/services", &[]).json();
    assert_eq!(status["services"]["tutor"]["state"], "open", "{status}");

    // While the circuit is open the tutor is not called: it recovers, the fallback stays.
    Demo::set_failing(tutor, "tutor-internal-secret", false);
    let fallback = ask();
    assert_eq!(fallback.header("x-portico-fallback"), Some("static"));
}
