//! The command line: every command of DESIGN.md, parsed with clap.
//!
//! The global flags (`--config`, `--log-format`, `--log-level`) are accepted in any position.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Portico: auth, gateway, realtime hub and resilience for service-to-service communication.
#[derive(Debug, Parser)]
#[command(name = "portico", version, propagate_version = true)]
pub struct Cli {
    /// Config file [default: ./portico.toml when it exists, else built-in defaults]
    #[arg(long, global = true, value_name = "FILE", env = "PORTICO_CONFIG")]
    pub config: Option<PathBuf>,

    /// Log line format
    #[arg(long, global = true, value_enum, default_value_t = LogFormatArg::Text, env = "PORTICO_LOG_FORMAT")]
    pub log_format: LogFormatArg,

    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives; RUST_LOG wins
    #[arg(
        long,
        global = true,
        value_name = "LEVEL",
        default_value = "info",
        env = "PORTICO_LOG_LEVEL"
    )]
    pub log_level: String,

    /// What to do
    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process (gateway, auth, realtime) on embedded defaults
    Up(ServeArgs),
    /// Run the gateway alone, for scale-out (asks the auth component at `[auth] url`)
    Gateway(ServeArgs),
    /// Run the auth service alone, for scale-out (`/auth`, JWKS, health, metrics)
    Auth(ServeArgs),
    /// Run the realtime WebSocket hub alone, for scale-out (asks auth at `[auth] url`)
    Realtime(ServeArgs),
    /// Run one of the seed demo upstreams (agent, search, etl, collab, tutor)
    Demo(DemoArgs),
    /// Manage users, API keys and signing keys in the configured store
    Admin {
        /// The admin command
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Work with the configuration
    Config {
        /// The config command
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

/// Flags of the serving commands.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (overrides server.listen and PORTICO_LISTEN)
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

/// `portico demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Which demo upstream to run
    #[arg(value_enum)]
    pub name: DemoName,
    /// Address to listen on [default: a fixed port per demo]
    #[arg(long, value_name = "ADDR", env = "PORTICO_DEMO_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Where the demo reaches Portico
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080",
        env = "PORTICO_DEMO_PORTICO"
    )]
    pub portico: String,
    /// Service client id (from [[auth.clients]]) for /internal/publish
    #[arg(long, value_name = "ID", env = "PORTICO_DEMO_CLIENT_ID")]
    pub client_id: Option<String>,
    /// Service client secret
    #[arg(
        long,
        value_name = "SECRET",
        env = "PORTICO_DEMO_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub client_secret: Option<String>,
    /// The upstream's internal token (its `internal_token` in Portico's config), which the
    /// gateway's calls carry
    #[arg(
        long,
        value_name = "TOKEN",
        env = "PORTICO_DEMO_INTERNAL_TOKEN",
        hide_env_values = true
    )]
    pub internal_token: Option<String>,
    /// `search`, `tutor`: the share of calls that fail, 0 to 1
    #[arg(
        long,
        value_name = "RATE",
        default_value_t = 0.0,
        env = "PORTICO_DEMO_FAIL_RATE"
    )]
    pub fail_rate: f64,
}

/// The demo upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoName {
    /// Seed 000: agent runs streamed over the hub
    Agent,
    /// Seed 001: search behind a failing chroma-like upstream
    Search,
    /// Seed 002: ETL jobs with progress over the hub
    Etl,
    /// Seeds 003/004: collaborative sessions
    Collab,
    /// Seed 004: a slow, sometimes failing AI tutor
    Tutor,
}

/// `portico admin …`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Manage user accounts
    User {
        /// The user command
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage API keys
    Key {
        /// The key command
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Manage the token signing keys
    Jwks {
        /// The JWKS command
        #[command(subcommand)]
        command: JwksCommand,
    },
}

/// `portico admin user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input
    Create {
        /// The user's email
        #[arg(long, value_name = "E")]
        email: String,
        /// Read the password from standard input
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Role to give [default: auth.default_role]
        #[arg(long, value_name = "R")]
        role: Option<String>,
    },
    /// Give a user a role
    Grant {
        /// The user's email
        #[arg(long, value_name = "E")]
        email: String,
        /// The role
        #[arg(long, value_name = "R")]
        role: String,
    },
}

/// `portico admin key …`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key for a user and print it once
    Create {
        /// The owner's email
        #[arg(long, value_name = "E")]
        user: String,
        /// A name for the key
        #[arg(long, value_name = "N")]
        name: String,
        /// A permission of the key (repeatable) [default: the user's]
        #[arg(long, value_name = "P")]
        permission: Vec<String>,
    },
}

/// `portico admin jwks …`.
#[derive(Debug, Subcommand)]
pub enum JwksCommand {
    /// Make a new signing key current; old keys stay published until their tokens expire
    Rotate,
}

/// `portico config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print every problem with its line
    Check,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_are_accepted_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "portico",
            "config",
            "check",
            "--config",
            "x.toml",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(cli.config.as_deref(), Some(std::path::Path::new("x.toml")));
        assert_eq!(cli.log_format, LogFormatArg::Json);
    }

    #[test]
    fn admin_key_create_takes_repeated_permissions() {
        let cli = Cli::try_parse_from([
            "portico",
            "admin",
            "key",
            "create",
            "--user",
            "a@b.c",
            "--name",
            "ci",
            "--permission",
            "etl.access",
            "--permission",
            "search",
        ])
        .unwrap();
        let Command::Admin {
            command:
                AdminCommand::Key {
                    command: KeyCommand::Create { permission, .. },
                },
        } = cli.command
        else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(permission, ["etl.access", "search"]);
    }
}
