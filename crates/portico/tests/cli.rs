//! The command line: help and usage errors.
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
fn demo_help_names_every_demo_and_its_flags() {
    let scratch = Scratch::new();
    let out = run(scratch.path(), &["--help"], &[]);
    assert!(
        out.stdout.contains("(agent, search, etl, collab, tutor)"),
        "{}",
        out.stdout
    );
    let demo = run(scratch.path(), &["demo", "--help"], &[]);
    for word in [
        "agent",
        "search",
        "etl",
        "collab",
        "tutor",
        "--internal-token",
    ] {
        assert!(demo.stdout.contains(word), "{word}: {}", demo.stdout);
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
