//! The `portico` binary as a library: the command line, the configuration, and the wiring
//! of the components into servers.
//!
//! `main.rs` only calls [`run`]; everything else lives here so it can be documented and
//! tested. The binary is thin: behaviour belongs to `portico-core`, `portico-resilience` and
//! the component crates; this crate reads the config once into checked types and builds the
//! servers from them.
//!
//! # Layout
//! - [`cli`]: the clap definition of every command.
//! - [`config`]: loading `portico.toml` + `PORTICO_*` overrides into a checked [`config::Config`].
//! - [`up`]: `portico up`, the all-in-one server.
//! - [`front`]: the listener's front door, sending proxied paths straight to the gateway.
//! - [`alias`]: `[[aliases]]`, other paths for Portico's own endpoints.
//! - [`admin`]: `portico admin …` on the configured store.
//! - [`auth`]: the auth component as `up` runs it (store, settings, health check).
//! - [`gateway`]: the gateway's settings and authenticators as the binary builds them.
//! - [`realtime`]: the WebSocket hub as the binary builds it.
//! - [`reload`]: config reload on SIGHUP and on file change, the gateway swapped live.
//! - [`status`]: `/status/services`, the circuit state of every upstream.
//! - [`openapi`]: `/openapi.json`, the OpenAPI 3.1 description of the endpoints.
//! - [`error`]: [`CliError`] and the exit codes.
//!
//! # Example
//! ```
//! use portico::config::{load_str, Env};
//!
//! let config = load_str("portico.toml", "[server]\nlisten = \"127.0.0.1:9000\"\n", &Env::default())
//!     .expect("a valid config");
//! assert_eq!(config.server.listen.port(), 9000);
//! ```
#![forbid(unsafe_code)]

pub mod admin;
pub mod alias;
pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod error;
pub mod front;
pub mod gateway;
pub mod openapi;
pub mod realtime;
pub mod reload;
pub mod status;
pub mod up;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, ConfigCommand};
use config::{Config, ConfigSource, Env};
pub use error::CliError;

/// Parses the process's command line, runs the command and returns its exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(()) => ExitCode::from(error::EXIT_OK),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Runs a parsed command.
pub fn dispatch(cli: Cli) -> Result<(), CliError> {
    let source = ConfigSource::resolve(cli.config.as_deref());
    let env = Env::from_process();
    match cli.command {
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            let config = load(&source, &env)?;
            println!(
                "config ok: {} ({} upstream{}, {} route{})",
                source.describe(),
                config.upstreams.len(),
                plural(config.upstreams.len()),
                config.routes.len(),
                plural(config.routes.len()),
            );
            Ok(())
        }
        Command::Up(ref args)
        | Command::Auth(ref args)
        | Command::Gateway(ref args)
        | Command::Realtime(ref args) => {
            let role = match cli.command {
                Command::Auth(_) => up::Role::Auth,
                Command::Gateway(_) => up::Role::Gateway,
                Command::Realtime(_) => up::Role::Realtime,
                _ => up::Role::Up,
            };
            let listen = args.listen;
            let config = load(&source, &env)?;
            let options = up::UpOptions {
                listen,
                log_format: cli.log_format,
                log_level: cli.log_level,
                source,
                role,
            };
            up::run(config, options)
        }
        Command::Admin { command } => {
            let config = load(&source, &env)?;
            admin::run(&config, command)
        }
        Command::Demo(args) => demo::run(args, cli.log_format, &cli.log_level),
    }
}

fn load(source: &ConfigSource, env: &Env) -> Result<Config, CliError> {
    config::load(source, env).map_err(|errors| CliError::Config {
        origin: source.describe(),
        errors,
    })
}

pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
