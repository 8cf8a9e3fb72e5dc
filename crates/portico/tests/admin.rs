//! `portico admin …` against the SQLite store of a scratch data dir: users, roles, keys and
//! signing-key rotation, then the result seen through a running `portico up`.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use std::io::Write;
use std::process::Stdio;

use support::{Scratch, Server, portico, request, run};

const CONFIG: &str = "[server]\ndata_dir = \"data\"\n\n[roles.ops]\npermissions = [\"etl.access\", \"status.read\"]\n";

/// Runs an admin command with `stdin` as its standard input.
fn admin(scratch: &Scratch, args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    let mut child = portico(scratch.path(), args, &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn admin_creates_users_grants_roles_makes_keys_and_rotates_signing_keys() {
    let scratch = Scratch::new();
    scratch.write("portico.toml", CONFIG);

    let (code, out, err) = admin(
        &scratch,
        &[
            "admin",
            "user",
            "create",
            "--email",
            "ops@example.com",
            "--password-stdin",
        ],
        "a long enough password\n",
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("created user ops@example.com"), "{out}");
    assert!(out.contains("with role user"), "{out}");

    let (code, out, err) = admin(
        &scratch,
        &[
            "admin",
            "user",
            "grant",
            "--email",
            "OPS@example.com",
            "--role",
            "ops",
        ],
        "",
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("granted role ops"), "{out}");

    let (code, key, err) = admin(
        &scratch,
        &[
            "admin",
            "key",
            "create",
            "--user",
            "ops@example.com",
            "--name",
            "ci",
            "--permission",
            "etl.access",
        ],
        "",
    );
    assert_eq!(code, Some(0), "{key}{err}");
    let key = key.trim().to_owned();
    assert!(key.starts_with("pk_"), "{key}");
    assert!(err.contains("shown once"), "{err}");

    // A running server sees what the CLI wrote, and the key works.
    let server = Server::start(scratch.path(), &[], &[]);
    let json = [("Content-Type", "application/json")];
    let validated = request(
        server.addr,
        "POST",
        "/auth/validate",
        &json,
        format!(r#"{{"token":"{key}"}}"#).as_bytes(),
    );
    assert_eq!(validated.status, 200, "{}", validated.body);
    assert_eq!(
        validated.json()["permissions"],
        serde_json::json!(["etl.access"])
    );
    let login = request(
        server.addr,
        "POST",
        "/auth/login",
        &json,
        br#"{"email":"ops@example.com","password":"a long enough password"}"#,
    );
    assert_eq!(login.status, 200, "{}", login.body);
    let roles = login.json()["user"]["roles"].clone();
    assert_eq!(roles, serde_json::json!(["ops", "user"]));
    let before = server.get("/.well-known/jwks.json", &[]).json()["keys"]
        .as_array()
        .unwrap()
        .len();

    // Rotation while the server runs: the old key stays published.
    let (code, out, err) = admin(&scratch, &["admin", "jwks", "rotate"], "");
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("new signing key"), "{out}");
    let old_token = login.json()["access_token"].as_str().unwrap().to_owned();
    let still_valid = request(
        server.addr,
        "POST",
        "/auth/validate",
        &json,
        format!(r#"{{"token":"{old_token}"}}"#).as_bytes(),
    );
    assert_eq!(still_valid.status, 200, "{}", still_valid.body);
    drop(server);
    let server = Server::start(scratch.path(), &[], &[]);
    let after = server.get("/.well-known/jwks.json", &[]).json()["keys"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(after, before + 1, "old and new key both published");
}

#[test]
fn admin_errors_are_plain_words_with_exit_1() {
    let scratch = Scratch::new();
    scratch.write("portico.toml", CONFIG);
    let (code, _, err) = admin(
        &scratch,
        &[
            "admin",
            "user",
            "create",
            "--email",
            "a@example.com",
            "--password-stdin",
            "--role",
            "wizard",
        ],
        "a long enough password\n",
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("role: no role \"wizard\" is configured"),
        "{err}"
    );

    let (code, _, err) = admin(
        &scratch,
        &[
            "admin",
            "user",
            "create",
            "--email",
            "a@example.com",
            "--password-stdin",
        ],
        "",
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("no password on standard input"), "{err}");

    let (code, _, err) = admin(
        &scratch,
        &[
            "admin",
            "user",
            "create",
            "--email",
            "a@example.com",
            "--password-stdin",
        ],
        "short\n",
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("password: must be at least 8 characters"),
        "{err}"
    );

    let out = run(
        scratch.path(),
        &[
            "admin",
            "user",
            "grant",
            "--email",
            "nobody@example.com",
            "--role",
            "ops",
        ],
        &[],
    );
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("no such user"), "{}", out.stderr);
}

#[test]
fn up_says_how_to_create_the_first_admin_until_there_is_one() {
    let scratch = Scratch::new();
    scratch.write("portico.toml", CONFIG);
    let hint = "no admin yet; create the first";
    let server = Server::start(scratch.path(), &["--config", "portico.toml"], &[]);
    let line = server
        .wait_for_line(|l| l.contains(hint))
        .unwrap_or_else(|| panic!("no hint in {:?}", server.output()));
    assert!(
        line.contains(
            "portico admin user create --email you@example.com --password-stdin --role admin"
        ),
        "{line}"
    );
    drop(server);

    let (code, out, err) = admin(
        &scratch,
        &[
            "admin",
            "user",
            "create",
            "--email",
            "root@example.com",
            "--password-stdin",
            "--role",
            "admin",
        ],
        "a long enough password\n",
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let server = Server::start(scratch.path(), &["--config", "portico.toml"], &[]);
    assert!(
        server
            .wait_for_line(|l| l.contains("serving thread"))
            .is_some(),
        "{:?}",
        server.output()
    );
    assert!(
        !server.output().iter().any(|l| l.contains(hint)),
        "{:?}",
        server.output()
    );
}
