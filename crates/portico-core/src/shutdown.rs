//! Graceful shutdown: a [`Shutdown`] handle every long-lived task watches, and [`serve`], which
//! runs the HTTP server until the handle triggers and then drains in-flight requests for at
//! most a deadline.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A shutdown signal shared by every task that must stop. Cheap to clone; triggering any
/// clone triggers them all, once and for good.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A handle not yet triggered.
    pub fn new() -> Self {
        Self {
            tx: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Triggers shutdown. Idempotent.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether shutdown has been triggered.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Completes once shutdown is triggered (at once if it already was).
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.tx.subscribe();
        async move {
            // `wait_for` fails only once every `Shutdown` handle is gone: nothing can trigger
            // any more, so waiting forever is the honest answer.
            if rx.wait_for(|triggered| *triggered).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Spawns a task that triggers shutdown on Ctrl-C or (on Unix) SIGTERM and logs which.
    /// The task ends when shutdown triggers for any reason.
    pub fn listen_for_signals(&self) {
        let shutdown = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                signal = next_signal() => {
                    tracing::info!(signal, "received {signal}, shutting down");
                    shutdown.trigger();
                }
                () = shutdown.wait() => {}
            }
        });
    }
}

/// The name of the first termination signal received.
async fn next_signal() -> &'static str {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // No Ctrl-C handler on this platform: rely on SIGTERM alone.
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => "SIGINT",
        () = terminate => "SIGTERM",
    }
}

/// Serves `app` on `listener` until `shutdown` triggers, then stops accepting connections,
/// lets in-flight requests finish and returns — after at most `drain_timeout`. Requests still
/// running at the deadline are abandoned (their connections close when the runtime stops).
/// Handlers can read the peer address with `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: Shutdown,
    drain_timeout: Duration,
) -> std::io::Result<()> {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let counter = in_flight.clone();
    let app = app.layer(middleware::from_fn(move |req: Request, next: Next| {
        let guard = InFlight::enter(counter.clone());
        async move {
            let _guard = guard;
            next.run(req).await
        }
    }));

    let signal = {
        let shutdown = shutdown.clone();
        let in_flight = in_flight.clone();
        async move {
            shutdown.wait().await;
            tracing::info!(
                in_flight = in_flight.load(Ordering::SeqCst),
                "draining for up to {}: no new connections, waiting for in-flight requests",
                humantime::format_duration(drain_timeout)
            );
        }
    };
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(signal)
    .into_future();
    tokio::pin!(server);

    tokio::select! {
        result = &mut server => return result,
        () = shutdown.wait() => {}
    }
    match tokio::time::timeout(drain_timeout, server).await {
        Ok(result) => {
            tracing::info!("drained");
            result
        }
        Err(_) => {
            tracing::warn!(
                in_flight = in_flight.load(Ordering::SeqCst),
                deadline = %humantime::format_duration(drain_timeout),
                "drain deadline reached, abandoning in-flight requests"
            );
            Ok(())
        }
    }
}

/// Counts a request as in flight for as long as it lives.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
