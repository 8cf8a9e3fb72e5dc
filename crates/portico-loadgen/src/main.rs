//! `portico-loadgen`: drives a WebSocket hub — Portico's realtime hub or a Socket.IO server —
//! through the scenarios of issue #6 and prints what it measured, so the two can be compared
//! in one run (`bench/realtime-vs-socketio.sh`).
//!
//! ```text
//! portico-loadgen --target portico --url ws://127.0.0.1:8080/ws --token T idle --connections 10000
//! portico-loadgen --target socketio --url 'ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket' \
//!     --token T fanout --subscribers 10000 --publishes 20
//! portico-loadgen --target portico --url … --token T \
//!     --publish-url http://127.0.0.1:8080/internal/publish --publish-token S throughput --duration 10
//! ```
//!
//! Each run prints one `result key=value …` line, then a human summary on `#` lines; the exit
//! code is 1 when a connection failed, was dropped, or a delivery was lost.
//!
//! # Layout
//! - `protocol`: the frames of both protocols, and what a received frame means
//! - `connect`: handshakes, and many connections with bounded concurrency and retries
//! - `subscriber`: one task per connection counting deliveries and their latency
//! - `publish`: HTTP or WebSocket publishing of stamped messages
//! - `histogram`: the lock-free latency histogram
//! - `scenario`: idle, fanout, throughput
//! - `report`: the output lines

#![forbid(unsafe_code)]

mod connect;
mod histogram;
mod protocol;
mod publish;
mod report;
mod scenario;
mod subscriber;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::connect::Endpoint;
use crate::protocol::Target;
use crate::scenario::{Fanout, Run, Throughput};

/// Load generator for WebSocket hubs: Portico's realtime protocol or Socket.IO.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Which protocol the server speaks.
    #[arg(long, value_enum)]
    target: Target,
    /// The WebSocket URL (Portico: ws://HOST:PORT/ws; Socket.IO:
    /// ws://HOST:PORT/socket.io/?EIO=4&transport=websocket).
    #[arg(long)]
    url: String,
    /// The token every connection authenticates with (Portico `?token=`, Socket.IO auth).
    #[arg(long, env = "LOADGEN_TOKEN", hide_env_values = true)]
    token: String,
    /// The channel (Socket.IO: room) subscribers join.
    #[arg(long, default_value = "bench:room")]
    channel: String,
    /// Publish with HTTP POSTs to this URL (Portico: /internal/publish; the Socket.IO peer:
    /// /publish) instead of a client WebSocket's publish frames.
    #[arg(long, requires = "publish_token")]
    publish_url: Option<String>,
    /// Bearer token for --publish-url (a service token).
    #[arg(long, env = "LOADGEN_PUBLISH_TOKEN", hide_env_values = true)]
    publish_token: Option<String>,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Connection handshakes in flight at once.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Tries per connection before it counts as failed.
    #[arg(long, default_value_t = 5)]
    connect_attempts: u32,
    /// The server's process id: throughput then reports its CPU time per delivered message.
    #[arg(long)]
    server_pid: Option<u32>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Open N subscribed connections, print `ready …`, hold them until SIGINT/SIGTERM or --hold.
    Idle {
        /// Connections to open.
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Seconds to hold them (default: until a signal).
        #[arg(long)]
        hold: Option<f64>,
    },
    /// One publish at a time to N subscribers: delivery latency p50/p99/max, losses.
    Fanout {
        /// Subscribers.
        #[arg(long, default_value_t = 10_000)]
        subscribers: usize,
        /// Measured publishes.
        #[arg(long, default_value_t = 20)]
        publishes: u64,
        /// Unmeasured publishes first.
        #[arg(long, default_value_t = 2)]
        warmup: u64,
        /// Milliseconds between a publish's last delivery and the next publish.
        #[arg(long, default_value_t = 100)]
        interval_ms: u64,
        /// Seconds to wait for one publish's deliveries.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
    },
    /// Publish for a while to N subscribers: delivered messages per second.
    Throughput {
        /// Subscribers.
        #[arg(long, default_value_t = 10_000)]
        subscribers: usize,
        /// Measured seconds.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Unmeasured seconds first.
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
        /// Publishes per second (default: flat out, bounded by --window).
        #[arg(long)]
        rate: Option<f64>,
        /// Flat out: publishes in flight (not yet delivered to every subscriber), at most.
        #[arg(long, default_value_t = 4)]
        window: u64,
        /// Seconds to wait for the last deliveries after publishing stops.
        #[arg(long, default_value_t = 10.0)]
        drain: f64,
    },
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let run = Run {
        ep: Endpoint {
            target: cli.target,
            url: cli.url,
            token: cli.token,
        },
        channel: cli.channel,
        publish_http: cli.publish_url.zip(cli.publish_token),
        concurrency: cli.connect_concurrency,
        attempts: cli.connect_attempts.max(1),
        server_pid: cli.server_pid,
        threads: cli.threads.max(1),
    };
    let outcome = runtime.block_on(async {
        match cli.scenario {
            Scenario::Idle { connections, hold } => {
                scenario::idle(&run, connections, hold.map(secs)).await
            }
            Scenario::Fanout {
                subscribers,
                publishes,
                warmup,
                interval_ms,
                timeout,
            } => {
                let p = Fanout {
                    subscribers,
                    publishes,
                    warmup,
                    interval: Duration::from_millis(interval_ms),
                    timeout: secs(timeout),
                };
                scenario::fanout(&run, &p).await
            }
            Scenario::Throughput {
                subscribers,
                duration,
                warmup,
                rate,
                window,
                drain,
            } => {
                let p = Throughput {
                    subscribers,
                    duration: secs(duration),
                    warmup: secs(warmup),
                    rate,
                    window: window.max(1),
                    drain: secs(drain),
                };
                scenario::throughput(&run, &p).await
            }
        }
    });
    // Dropping the runtime with ten thousand connections would wait on nothing useful.
    runtime.shutdown_background();
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
