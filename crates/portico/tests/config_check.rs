//! `portico config check`: good configs pass with a summary, bad ones exit 2 with every
//! problem on its own line, naming the key and the line or variable it came from.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use support::{Scratch, run};

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:9090"

[upstreams.etl]
url = "http://127.0.0.1:9002"
preset = "billing"
timeout = "2s"

[upstreams.search]
url = "http://127.0.0.1:9003"

[[routes]]
prefix = "/api/etl"
upstream = "etl"
rewrite = "/api/v1"
permissions = ["etl.access"]

[[routes]]
prefix = "/v1/api/search"
upstream = "search"
auth = "optional"
fallback = { status = 200, json = { results = [] } }
"#;

fn check(scratch: &Scratch, toml: &str, env: &[(&str, &str)]) -> support::Outcome {
    let file = scratch.write("portico.toml", toml);
    run(
        scratch.path(),
        &["config", "check", "--config", file.to_str().unwrap()],
        env,
    )
}

/// Runs `config check` on `portico.toml` in the scratch dir, found by the default lookup.
fn check_default(scratch: &Scratch, toml: &str, env: &[(&str, &str)]) -> support::Outcome {
    scratch.write("portico.toml", toml);
    run(scratch.path(), &["config", "check"], env)
}

#[test]
fn a_good_file_passes_with_a_summary() {
    let scratch = Scratch::new();
    let out = check_default(&scratch, GOOD, &[]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        out.stdout.trim(),
        "config ok: portico.toml (2 upstreams, 2 routes)"
    );
}

#[test]
fn no_file_means_built_in_defaults() {
    let scratch = Scratch::new();
    let out = run(scratch.path(), &["config", "check"], &[]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        out.stdout.trim(),
        "config ok: built-in defaults (0 upstreams, 0 routes)"
    );
}

#[test]
fn a_missing_explicit_file_is_a_config_error() {
    let scratch = Scratch::new();
    let out = run(
        scratch.path(),
        &["config", "check", "--config", "nope.toml"],
        &[],
    );
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("nope.toml: cannot read the config file"),
        "{}",
        out.stderr
    );
}

#[test]
fn every_problem_is_reported_with_its_key_and_line() {
    let scratch = Scratch::new();
    let toml = r#"[server]
listen = "everywhere"
max_body = "lots"

[upstreams.etl]
url = "http://127.0.0.1:9002"
timeout = "fast"
max_retries = 0

[[routes]]
prefix = "api/etl"
upstream = "etl"
auth = "sometimes"
"#;
    let out = check_default(&scratch, toml, &[]);
    assert_eq!(out.code, Some(2), "{out:?}");
    let expected = [
        r#"portico.toml:2: server.listen: invalid address "everywhere" (expected IP:PORT, e.g. "127.0.0.1:8080")"#,
        r#"portico.toml:3: server.max_body: invalid size "lots""#,
        r#"portico.toml:7: upstreams.etl.timeout: invalid duration "fast" (expected e.g. "250ms", "15s")"#,
        "portico.toml:8: upstreams.etl.max_retries: must be at least 1",
        r#"portico.toml:11: routes[0].prefix: "api/etl" must start with "/""#,
        r#"portico.toml:13: routes[0].auth: unknown value "sometimes" (expected one of: required, optional, none)"#,
    ];
    for line in expected {
        assert!(
            out.stderr.contains(line),
            "missing {line:?} in:\n{}",
            out.stderr
        );
    }
    assert!(
        out.stderr.contains("6 configuration problems"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_unknown_key_is_reported_with_a_suggestion() {
    let scratch = Scratch::new();
    let toml = "[upstreams.etl]\nurl = \"http://127.0.0.1:9002\"\ntimout = \"2s\"\n\n[sever]\nlisten = \"127.0.0.1:1\"\n";
    let out = check_default(&scratch, toml, &[]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains(
            r#"portico.toml:3: upstreams.etl.timout: unknown key (did you mean "timeout"?)"#
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(r#"portico.toml:5: sever: unknown key (did you mean "server"?)"#),
        "{}",
        out.stderr
    );
}

#[test]
fn a_bad_duration_from_the_environment_names_the_variable() {
    let scratch = Scratch::new();
    let out = check_default(
        &scratch,
        GOOD,
        &[
            ("PORTICO_AUTH__ACCESS_TOKEN_TTL", "soon"),
            ("PORTICO_UPSTREAMS__ETL__TIMEOUT", "2s"),
        ],
    );
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains(
            r#"PORTICO_AUTH__ACCESS_TOKEN_TTL: auth.access_token_ttl: invalid duration "soon""#
        ),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("PORTICO_UPSTREAMS__ETL__TIMEOUT"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_reference_to_an_unset_variable_is_an_error() {
    let scratch = Scratch::new();
    let toml = "[upstreams.etl]\nurl = \"http://127.0.0.1:9002\"\ninternal_token = \"${ETL_INTERNAL_KEY}\"\n";
    let out = check_default(&scratch, toml, &[]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains(
            "portico.toml:3: upstreams.etl.internal_token: environment variable ETL_INTERNAL_KEY is not set"
        ),
        "{}",
        out.stderr
    );
    let ok = check_default(&scratch, toml, &[("ETL_INTERNAL_KEY", "s3cret")]);
    assert_eq!(ok.code, Some(0), "{ok:?}");
    assert!(!ok.stdout.contains("s3cret") && !ok.stderr.contains("s3cret"));
}

#[test]
fn an_unknown_preset_names_the_key() {
    let scratch = Scratch::new();
    let toml = "[upstreams.etl]\nurl = \"http://127.0.0.1:9002\"\npreset = \"redis\"\n";
    let out = check_default(&scratch, toml, &[]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains(r#"portico.toml:3: upstreams.etl.preset: unknown preset "redis""#),
        "{}",
        out.stderr
    );
}

#[test]
fn a_route_to_a_missing_upstream_is_reported() {
    let scratch = Scratch::new();
    let toml = "[upstreams.etl]\nurl = \"http://127.0.0.1:9002\"\n\n[[routes]]\nprefix = \"/api\"\nupstream = \"elt\"\n";
    let out = check_default(&scratch, toml, &[]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains(
            r#"portico.toml:6: routes[0].upstream: no upstream named "elt" (did you mean "etl"?)"#
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn duplicate_route_prefixes_are_reported() {
    let scratch = Scratch::new();
    let toml = "[upstreams.a]\nurl = \"http://127.0.0.1:1\"\n\n[[routes]]\nprefix = \"/api\"\nupstream = \"a\"\n\n[[routes]]\nprefix = \"/api/\"\nupstream = \"a\"\n";
    let out = check_default(&scratch, toml, &[]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains(r#"portico.toml:9: routes[1].prefix: duplicate route prefix "/api/" (also routes[0].prefix)"#),
        "{}",
        out.stderr
    );
}

#[test]
fn an_alias_must_stand_for_portico_s_own_path_and_not_hide_one() {
    let scratch = Scratch::new();
    let toml = "[[aliases]]\nprefix = \"/api/auth\"\nto = \"/api/v1\"\n\n[[aliases]]\nprefix = \"/health/x\"\nto = \"/auth\"\n\n[[aliases]]\nprefix = \"/api/auth/\"\nto = \"/auth\"\n";
    let out = check_default(&scratch, toml, &[]);
    assert_eq!(out.code, Some(2), "{out:?}");
    for problem in [
        r#"portico.toml:3: aliases[0].to: "/api/v1" is not under one of Portico's own paths"#,
        r#"portico.toml:6: aliases[1].prefix: "/health/x" is one of Portico's own paths: an alias cannot hide it"#,
        r#"portico.toml:10: aliases[2].prefix: duplicate alias prefix "/api/auth/""#,
    ] {
        assert!(out.stderr.contains(problem), "{problem}\n{}", out.stderr);
    }
}

#[test]
fn a_toml_syntax_error_has_line_and_column() {
    let scratch = Scratch::new();
    let out = check_default(&scratch, "[server]\nlisten = = 1\n", &[]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.starts_with("portico.toml:2:10: invalid TOML"),
        "{}",
        out.stderr
    );
}

#[test]
fn designs_full_example_passes() {
    let scratch = Scratch::new();
    let out = check(
        &scratch,
        include_str!("fixtures/design_example.toml"),
        &[
            ("GOOGLE_CLIENT_SECRET", "g-secret"),
            ("ETL_CLIENT_SECRET", "etl-secret"),
            ("ETL_INTERNAL_KEY", "etl-internal"),
        ],
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("(1 upstream, 1 route)"),
        "{}",
        out.stdout
    );
}

#[test]
fn the_documented_example_passes() {
    let doc = include_str!("../../../docs/configuration.md");
    let example = doc
        .split("<!-- complete example -->")
        .nth(1)
        .and_then(|rest| rest.split("```toml\n").nth(1))
        .and_then(|block| block.split("\n```").next())
        .expect("docs/configuration.md has a ```toml block after <!-- complete example -->");
    let scratch = Scratch::new();
    let out = check(
        &scratch,
        example,
        &[
            ("GOOGLE_CLIENT_ID", "g-id"),
            ("GOOGLE_CLIENT_SECRET", "g-secret"),
            ("GITHUB_CLIENT_SECRET", "gh-secret"),
            ("ETL_CLIENT_SECRET", "etl-secret"),
            ("ETL_INTERNAL_KEY", "etl-internal"),
        ],
    );
    assert_eq!(out.code, Some(0), "{out:?}");
}

#[test]
fn every_example_file_passes() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let file = entry.unwrap().path().join("portico.toml");
        let scratch = Scratch::new();
        // Each example's secrets come from the environment (`${NAME}`): give every one.
        let text = std::fs::read_to_string(&file).unwrap();
        let names: Vec<String> = text
            .split("${")
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
            .collect();
        let env: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "a-secret")).collect();
        let out = check(&scratch, &text, &env);
        assert_eq!(out.code, Some(0), "{}: {out:?}", file.display());
        checked += 1;
    }
    assert_eq!(checked, 5, "one portico.toml per seed under examples/");
}
