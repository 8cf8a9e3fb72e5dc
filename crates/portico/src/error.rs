//! What a command can fail with, and the exit code each failure maps to.

use crate::config::ConfigErrors;
use crate::up::UpError;

/// The exit code of a successful command.
pub const EXIT_OK: u8 = 0;
/// The exit code of a runtime failure (port in use, data dir not writable).
pub const EXIT_RUNTIME: u8 = 1;
/// The exit code of a configuration or usage error (clap's own usage errors are 2 as well).
pub const EXIT_USAGE: u8 = 2;

/// A command's failure.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The configuration has problems; each is printed on its own line.
    #[error("{errors}\n{origin}: {count} configuration problem{s}", count = errors.problems().len(), s = if errors.problems().len() == 1 { "" } else { "s" })]
    Config {
        /// Where the configuration came from (`portico.toml`, `built-in defaults`).
        origin: String,
        /// Every problem.
        errors: ConfigErrors,
    },
    /// A flag was accepted by the parser but cannot be used (e.g. an invalid `--log-level`).
    #[error("portico: {0}")]
    Usage(String),
    /// `portico up` (or `auth`, `gateway`, `realtime`, which it runs with one role) failed
    /// while starting or running.
    #[error("portico {command}: {source}")]
    Up {
        /// The command as typed (`up`, `gateway`, …).
        command: &'static str,
        /// What failed.
        source: UpError,
    },
    /// An admin command failed (unknown user or role, bad password, database down).
    #[error("portico admin: {0}")]
    Admin(String),
    /// A demo upstream could not start or stopped with an error.
    #[error("portico demo: {0}")]
    Demo(String),
}

impl CliError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config { .. } | CliError::Usage(_) => EXIT_USAGE,
            CliError::Up { .. } | CliError::Admin(_) | CliError::Demo(_) => EXIT_RUNTIME,
        }
    }
}
