//! `/openapi.json` against the real binary: the document is what `portico up` serves, it names
//! every route of the public router and every path in it is routed, and (with schemathesis,
//! set up by scripts/test) every answer to generated requests is no 5xx and matches it.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use portico::openapi;
use portico::up::Role;
use serde_json::Value;
use support::{JSON, Scratch, Server, register, request};

/// The config every test here runs `portico up` with: a scratch data directory, and enough
/// configured that the document's examples succeed: the service client and the OAuth
/// provider they name, and an upstream (nothing listens at its address, so `/health` is
/// degraded and `/status/services` has an entry) whose internal token opens `/internal/*`.
const CONFIG: &str = r#"
[server]
data_dir = "data"

[auth.providers.github]
client_id = "openapi-test"
client_secret = "not a real secret"

[[auth.clients]]
id = "etl"
secret = "the client's secret"
audiences = ["realtime"]

[upstreams.svc]
url = "http://127.0.0.1:9"
health = "/health"
internal_token = "an internal token for the openapi test"

[[routes]]
prefix = "/api/svc"
upstream = "svc"
"#;

/// The upstream's internal token of [`CONFIG`], as a header.
const INTERNAL_TOKEN: &str = "X-Internal-Auth: an internal token for the openapi test";

fn start(scratch: &Scratch) -> Server {
    scratch.write("portico.toml", CONFIG);
    Server::start(scratch.path(), &[], &[])
}

/// The methods of each path item of `document`, as `(METHOD, path)`.
fn operations(document: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                found.push((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    found
}

#[test]
fn openapi_json_is_served_as_checked_in() {
    let scratch = Scratch::new();
    let server = start(&scratch);
    let res = server.get("/openapi.json", &[]);
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.header("content-type"), Some("application/json"));
    let served = res.json();
    assert_eq!(served["openapi"], "3.1.0");
    assert_eq!(served, openapi::document(Role::Up).expect("parses"));
}

/// The string literals passed to `.route(` in the non-test source of the crates `portico up`
/// serves (the demos, SDK and load generator are other programs).
fn routes_in_source() -> Vec<String> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for krate in [
        "portico",
        "portico-core",
        "portico-auth",
        "portico-gateway",
        "portico-realtime",
        "portico-dashboard",
    ] {
        collect_rs(&crates.join(krate).join("src"), &mut files);
    }
    let mut routes = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a source file");
        // Unit tests build routers of their own.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for piece in code.split(".route(").skip(1) {
            if let Some(rest) = piece.trim_start().strip_prefix('"') {
                let end = rest.find('"').expect("a closed string literal");
                routes.push(rest[..end].to_owned());
            }
        }
    }
    routes
}

fn collect_rs(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect_rs(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

#[test]
fn each_serving_command_serves_its_part_of_the_document() {
    let scratch = Scratch::new();
    scratch.write("portico.toml", CONFIG);
    let auth = Server::start_command(scratch.path(), "auth", &[], &[]);
    let res = auth.get("/openapi.json", &[]);
    assert_eq!(res.status, 200, "{}", res.body);
    let served = res.json();
    assert_eq!(served, openapi::document(Role::Auth).expect("parses"));
    let paths = served["paths"].as_object().expect("paths");
    assert!(paths.contains_key("/auth/login"), "{paths:?}");
    assert!(!paths.contains_key("/ws") && !paths.contains_key("/internal/publish"));
    // Every path it lists is answered by `portico auth` (not REQ_003).
    for (method, path) in operations(&served) {
        let concrete = path.replace("{id}", "no-such-id");
        let res = request(auth.addr, &method, &concrete, &JSON, b"{}");
        assert_ne!(res.status, 404, "{method} {path}: {}", res.body);
    }
}

#[test]
fn every_route_of_the_public_router_is_documented() {
    let document = openapi::document(Role::Up).expect("parses");
    let paths = document["paths"].as_object().expect("paths");
    let mut routes = routes_in_source();
    // Routed without `.route(` (the gateway answers it before its routes; this module by
    // its constant).
    routes.push(portico_gateway::identity::token::JWKS_PATH.to_owned());
    routes.push(openapi::PATH.to_owned());
    assert!(routes.len() > 20, "too few routes found: {routes:?}");
    for route in &routes {
        assert!(
            paths.contains_key(route),
            "{route} is served but not in openapi.json"
        );
    }
    for path in paths.keys() {
        assert!(
            routes.contains(path),
            "{path} is in openapi.json but no route serves it"
        );
    }
}

#[test]
fn every_documented_operation_is_routed() {
    let scratch = Scratch::new();
    let server = start(&scratch);
    let document = openapi::document(Role::Up).expect("parses");
    for (method, path) in operations(&document) {
        let concrete = path.replace("{id}", "no-such-id");
        let body: &[u8] = if method == "POST" { b"{}" } else { b"" };
        let res = request(server.addr, &method, &concrete, &JSON, body);
        let code = serde_json::from_str::<Value>(&res.body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
        assert!(
            !matches!(code.as_deref(), Some("REQ_003" | "REQ_004")),
            "{method} {path} is documented but answers {}: {}",
            res.status,
            res.body
        );
        assert!(
            res.status < 500,
            "{method} {path}: {} {}",
            res.status,
            res.body
        );
    }
}

/// How long one schemathesis run may take before the test fails as hung.
const SCHEMATHESIS_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// The checks of every run: no 5xx; status, content type, headers and body as documented;
/// invalid input refused, protected operations refusing requests without their credentials,
/// a deleted resource gone, an undocumented method 405 with `Allow`. Not
/// `positive_data_acceptance`: a request valid by the document may still be refused by the
/// configuration (an OAuth provider that is not configured, a namespace that does not exist).
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance,\
                      negative_data_rejection,ignored_auth,use_after_free,\
                      ensure_resource_availability,unsupported_method,allow_header_conformance";

#[test]
#[ignore = "needs schemathesis (PORTICO_TEST_SCHEMATHESIS, set by scripts/test)"]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_schema() {
    let cli = std::env::var("PORTICO_TEST_SCHEMATHESIS")
        .expect("PORTICO_TEST_SCHEMATHESIS names the schemathesis CLI (scripts/test installs it)");
    let examples =
        std::env::var("PORTICO_TEST_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "50".into());
    let seed = std::env::var("PORTICO_TEST_SCHEMATHESIS_SEED").unwrap_or_else(|_| "7".into());
    let scratch = Scratch::new();
    let server = start(&scratch);
    let token = register(server.addr, "schemathesis@example.com");
    let url = format!("http://{}/openapi.json", server.addr);
    let bearer = format!("Authorization: Bearer {token}");
    // The dashboard's session is a cookie: with it, its pages answer signed in.
    let cookie = format!("Cookie: portico_access={token}");
    let started = Instant::now();
    // Logout last and alone: it ends the session whose token every other request carries.
    let runs: [&[&str]; 2] = [
        &["--exclude-path", "/auth/logout"],
        &["--include-path", "/auth/logout"],
    ];
    for filter in runs {
        let mut args = vec![
            "--no-color",
            "run",
            &url,
            "--checks",
            CHECKS,
            "--max-examples",
            &examples,
            "--seed",
            &seed,
            "--workers",
            "2",
            "--request-timeout",
            "10",
            "--max-redirects",
            "0",
            "--generation-database",
            "none",
            "--header",
            &bearer,
            "--header",
            INTERNAL_TOKEN,
            "--header",
            &cookie,
        ];
        args.extend_from_slice(filter);
        if let Err(report) = schemathesis(&cli, &args, scratch.path()) {
            panic!("{report}\nportico's log:\n{}", server.output().join("\n"));
        }
    }
    eprintln!(
        "schemathesis ran {:.0?} ({examples} examples per operation, seed {seed})",
        started.elapsed()
    );
}

/// Runs the schemathesis CLI with `args` in `dir`; its report when it fails or hangs.
fn schemathesis(cli: &str, args: &[&str], dir: &Path) -> Result<(), String> {
    let started = Instant::now();
    let mut child = Command::new(cli)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cli}: {e}"));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for schemathesis") {
            break Some(status);
        }
        if started.elapsed() > SCHEMATHESIS_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = format!(
        "{}\n{}",
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default()
    );
    // The summary, also when it passes, so a run's coverage can be read in the test log.
    let summary = output
        .find("=== SUMMARY")
        .map_or(output.as_str(), |at| &output[at..]);
    // The filter only: the other arguments hold the bearer token.
    let filter = args.iter().rev().take(2).rev().copied().collect::<Vec<_>>();
    eprintln!("schemathesis {}:\n{summary}", filter.join(" "));
    match status {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(format!("schemathesis failed ({status}):\n{output}")),
        None => Err(format!(
            "schemathesis did not finish within {SCHEMATHESIS_DEADLINE:?}:\n{output}"
        )),
    }
}

// === what checking the document found ===

/// `expires_in` past what `SystemTime` holds panicked in the handler (the connection was
/// dropped with no answer); now 422 naming the field, and the largest allowed still works.
#[test]
fn an_api_key_lifetime_past_the_maximum_is_422_not_a_dropped_connection() {
    let scratch = Scratch::new();
    let server = start(&scratch);
    let token = register(server.addr, "keys@example.com");
    let bearer = format!("Bearer {token}");
    let headers = [JSON[0], ("Authorization", bearer.as_str())];
    for huge in ["18446744073709551615", "9223372036854775807", "3153600001"] {
        let body = format!(r#"{{"name":"k","expires_in":{huge}}}"#);
        let res = request(
            server.addr,
            "POST",
            "/auth/api-keys",
            &headers,
            body.as_bytes(),
        );
        assert_eq!(res.status, 422, "{huge}: {}", res.body);
        let error = &res.json()["error"];
        assert_eq!(error["code"], "REQ_001");
        assert!(
            error["details"]["fields"]["expires_in"].is_string(),
            "{error}"
        );
    }
    let max = portico_auth::api::dto::MAX_API_KEY_EXPIRES_IN;
    let body = format!(r#"{{"name":"k","expires_in":{max}}}"#);
    let res = request(
        server.addr,
        "POST",
        "/auth/api-keys",
        &headers,
        body.as_bytes(),
    );
    assert_eq!(res.status, 201, "{}", res.body);
    assert!(res.json()["expires_at"].is_string(), "{}", res.body);
    // The server is still there.
    assert_eq!(server.get("/health/live", &[]).status, 200);
}

/// An API key id that is not UTF-8 once decoded was a REQ_001 without `details.fields`.
#[test]
fn a_malformed_api_key_id_is_req_001_naming_the_id() {
    let scratch = Scratch::new();
    let server = start(&scratch);
    let token = register(server.addr, "ids@example.com");
    let bearer = format!("Bearer {token}");
    let res = request(
        server.addr,
        "DELETE",
        "/auth/api-keys/%FF",
        &[("Authorization", bearer.as_str())],
        b"",
    );
    assert_eq!(res.status, 400, "{}", res.body);
    let error = &res.json()["error"];
    assert_eq!(error["code"], "REQ_001");
    assert!(error["details"]["fields"]["id"].is_string(), "{error}");
}

/// An invalid token's message said "invalid token: invalid token: malformed".
#[test]
fn an_invalid_token_says_invalid_token_once() {
    let scratch = Scratch::new();
    let server = start(&scratch);
    let res = request(
        server.addr,
        "POST",
        "/auth/validate",
        &JSON,
        br#"{"token":"a.b.c"}"#,
    );
    assert_eq!(res.status, 401, "{}", res.body);
    let error = &res.json()["error"];
    assert_eq!(error["code"], "AUTH_001");
    assert_eq!(error["message"], "invalid token: malformed", "{error}");
}
