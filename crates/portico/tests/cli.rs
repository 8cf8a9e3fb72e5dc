//! The command line: help, usage errors, and the commands of later issues.
#![allow(clippy::unwrap_used)] // tests unwrap; a panic is the failure report

mod support;

use support::{Scratch, run};

#[test]
fn help_lists_every_subcommand() {
    let scratch = Scratch::new();
    let out = run(scratch.path(), &["--help"], &[]);
    assert_eq!(out.code, Some(0), "{out:?}");
    for command in [
        "up", "gateway", "auth", "realtime", "demo", "admin", "config",
    ] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "{command} missing from:\n{}",
            out.stdout
        );
    }
    assert!(out.stdout.contains("--config"), "{}", out.stdout);
}

#[test]
fn help_of_a_later_command_says_which_issue_builds_it() {
    let scratch = Scratch::new();
    let out = run(scratch.path(), &["--help"], &[]);
    assert!(
        out.stdout
            .contains("(built so far: agent, etl, search, tutor; collab: issue #7)"),
        "{}",
        out.stdout
    );
    let demo = run(scratch.path(), &["demo", "--help"], &[]);
    assert!(demo.stdout.contains("--internal-token"), "{}", demo.stdout);
}

#[test]
fn commands_of_later_issues_parse_then_exit_1_naming_the_issue() {
    let scratch = Scratch::new();
    let cases: [(&[&str], &str); 2] = [
        (
            &["demo", "collab"],
            "portico demo collab: not built yet (lands with issue #7)",
        ),
        (
            &[
                "--log-level",
                "debug",
                "demo",
                "collab",
                "--config",
                "x.toml",
            ],
            "portico demo collab: not built yet (lands with issue #7)",
        ),
    ];
    for (args, message) in cases {
        let out = run(scratch.path(), args, &[]);
        assert_eq!(out.code, Some(1), "{args:?}: {out:?}");
        assert_eq!(out.stderr.trim(), message, "{args:?}");
    }
}

#[test]
fn gateway_or_realtime_alone_without_the_auth_url_says_what_to_set() {
    let scratch = Scratch::new();
    for (command, component) in [("gateway", "the gateway"), ("realtime", "the realtime hub")] {
        let out = run(scratch.path(), &[command, "--listen", "127.0.0.1:0"], &[]);
        assert_eq!(out.code, Some(1), "{out:?}");
        // Named by the command that was run, once.
        assert!(
            out.stderr.lines().any(|l| l.starts_with(&format!(
                "portico {command}: cannot start {component}: set [auth] url (or PORTICO_AUTH__URL) to where auth runs"
            ))),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("portico up"), "{}", out.stderr);
    }
}

#[test]
fn usage_errors_exit_2() {
    let scratch = Scratch::new();
    for args in [
        &["up", "--listen", "not-an-address"][..],
        &["demo", "weather"][..],
        &["admin", "user", "create", "--email", "a@b.c"][..],
        &["frobnicate"][..],
    ] {
        let out = run(scratch.path(), args, &[]);
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
    }
}
