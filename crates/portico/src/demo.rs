//! `portico demo <name>`: one of the seed systems' demo upstreams (crate `portico-demos`),
//! on its fixed port unless `--listen` says otherwise, until SIGTERM or Ctrl-C.

use std::net::SocketAddr;

use portico_core::shutdown::Shutdown;
use portico_core::telemetry::{self, LogFormat};
use portico_demos::DemoSettings;
use portico_sdk::Publisher;

use crate::CliError;
use crate::cli::{DemoArgs, DemoName, LogFormatArg};

/// Runs the demo `args` names; blocks until it is stopped.
pub fn run(args: DemoArgs, log_format: LogFormatArg, log_level: &str) -> Result<(), CliError> {
    let format = match log_format {
        LogFormatArg::Text => LogFormat::Text,
        LogFormatArg::Json => LogFormat::Json,
    };
    telemetry::init_tracing(format, log_level)
        .map_err(|e| CliError::Usage(format!("--log-level: {e}")))?;
    let failed = |e: String| CliError::Demo(e);
    let (name, port) = match args.name {
        DemoName::Agent => ("agent", portico_demos::agent::DEFAULT_PORT),
        DemoName::Etl => ("etl", portico_demos::etl::DEFAULT_PORT),
        DemoName::Tutor => ("tutor", portico_demos::tutor::DEFAULT_PORT),
        DemoName::Search => ("search", portico_demos::search::DEFAULT_PORT),
        DemoName::Collab => ("collab", portico_demos::collab::DEFAULT_PORT),
    };
    let publisher = match (&args.client_id, &args.client_secret) {
        (Some(id), Some(secret)) => Some(
            Publisher::with_client_credentials(&args.portico, id, secret)
                .map_err(|e| failed(e.to_string()))?,
        ),
        (None, None) => None,
        _ => {
            return Err(CliError::Usage(
                "--client-id and --client-secret go together".into(),
            ));
        }
    };
    let settings = DemoSettings {
        portico: args.portico.clone(),
        publisher,
        internal_token: args.internal_token.clone(),
    };
    let app = match args.name {
        DemoName::Tutor => portico_demos::tutor::router(settings, args.fail_rate),
        DemoName::Search => portico_demos::search::router(settings, args.fail_rate),
        DemoName::Agent => portico_demos::agent::router(settings),
        DemoName::Collab => portico_demos::collab::router(settings),
        DemoName::Etl => portico_demos::etl::router(settings),
    }
    .map_err(CliError::Usage)?;
    let addr = args
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], port)));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| failed(format!("cannot listen on {addr}: {e}")))?;
        let bound = listener.local_addr().unwrap_or(addr);
        tracing::info!("portico demo {name}: listening on http://{bound}");
        match &args.client_id {
            Some(id) => tracing::info!(
                "portico demo {name}: publishing to {} as service client {id}",
                args.portico
            ),
            None => tracing::warn!(
                "portico demo {name}: no --client-id/--client-secret: events are not published"
            ),
        }
        // collab checks the X-Portico-Identity Portico signs, not the internal token.
        if args.internal_token.is_none() && args.name != DemoName::Collab {
            tracing::warn!(
                "portico demo {name}: no --internal-token: every call but /health is refused"
            );
        }
        let shutdown = Shutdown::new();
        shutdown.listen_for_signals();
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.wait())
            .await
            .map_err(|e| failed(format!("server error: {e}")))?;
        tracing::info!("portico demo {name}: stopped");
        Ok(())
    })
}
