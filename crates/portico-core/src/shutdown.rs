//! Graceful shutdown: a [`Shutdown`] handle every long-lived task watches, and [`serve`], which
//! runs the HTTP server until the handle triggers and then drains in-flight requests for at
//! most a deadline.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use std::pin::Pin;
use std::task::{Context, Poll};

use std::convert::Infallible;

use axum::extract::Request;
use axum::response::Response;
use axum::serve::ListenerExt as _;
use axum::{Router, ServiceExt};
use pin_project_lite::pin_project;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::{Layer, Service};

/// A shutdown signal shared by every task that must stop. Cheap to clone; triggering any
/// clone triggers them all, once and for good.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
    /// How many [`Tracked`] tasks are still running.
    tracked: Arc<watch::Sender<usize>>,
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
            tracked: Arc::new(watch::Sender::new(0)),
        }
    }

    /// Marks a long-lived task that outlives the request which started it (a WebSocket
    /// connection, whose socket hyper hands over on upgrade) as one the server must wait for
    /// when it drains: the task counts until the returned guard is dropped. It must end by
    /// itself once shutdown triggers (within the drain deadline, after which it is
    /// abandoned with its runtime).
    pub fn track(&self) -> Tracked {
        self.tracked.send_modify(|n| *n += 1);
        Tracked(self.tracked.clone())
    }

    /// Completes once no [`Tracked`] task is running.
    pub fn tracked_finished(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.tracked.subscribe();
        async move {
            // Fails only once every handle and guard is gone: nothing is tracked then.
            let _ = rx.wait_for(|n| *n == 0).await;
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

    /// Triggers shutdown on Ctrl-C or (on Unix) SIGTERM, and logs which, from a spawned task
    /// that ends when shutdown triggers for any reason. The signal handlers are registered
    /// before this returns, so a signal sent once the caller is serving is never missed
    /// (registered inside the task instead, a SIGTERM sent right after start-up was
    /// sometimes lost: the tests saw `portico up` ignore its first SIGTERM).
    pub fn listen_for_signals(&self) {
        let shutdown = self.clone();
        let signals = Signals::register();
        tokio::spawn(async move {
            tokio::select! {
                signal = signals.next() => {
                    tracing::info!(signal, "received {signal}, shutting down");
                    shutdown.trigger();
                }
                () = shutdown.wait() => {}
            }
        });
    }
}

/// A task [`Shutdown::track`] counts, until this is dropped.
#[derive(Debug)]
pub struct Tracked(Arc<watch::Sender<usize>>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The termination signals, registered.
struct Signals {
    /// SIGINT (`None` where it cannot be registered).
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    /// SIGTERM (`None` where it cannot be registered).
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Registers the handlers now; must run inside the runtime.
    fn register() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                interrupt: signal(SignalKind::interrupt()).ok(),
                terminate: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    /// The name of the first termination signal received.
    async fn next(self) -> &'static str {
        #[cfg(unix)]
        {
            let Signals {
                interrupt,
                terminate,
            } = self;
            let wait = |signal: Option<tokio::signal::unix::Signal>| async move {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    // Not registered: rely on the other one.
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => "SIGINT",
                () = wait(terminate) => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = self;
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            "SIGINT"
        }
    }
}

/// Serves `app` on `listener` until `shutdown` triggers, then stops accepting connections,
/// lets in-flight requests finish and returns — after at most `drain_timeout`. Requests still
/// running at the deadline are abandoned (their connections close when the runtime stops).
/// Handlers can read the peer address with `ConnectInfo<SocketAddr>`. Connections are served
/// on the calling runtime; [`serve_workers`] serves on one single-threaded runtime per core.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: Shutdown,
    drain_timeout: Duration,
) -> std::io::Result<()> {
    let (app, in_flight) = counting_in_flight(app);
    let server = axum::serve(
        listener.tap_io(set_nodelay),
        ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(app),
    )
    .with_graceful_shutdown(shutdown.wait())
    .into_future();
    let tracked = shutdown.tracked_finished();
    let server = async move {
        let result = server.await;
        tracked.await;
        result
    };
    drain(server, &shutdown, drain_timeout, &in_flight).await
}

/// Like [`serve`], but connections are accepted and served by `workers` threads, each running
/// its own single-threaded tokio runtime on a clone of `listener` (the kernel hands each new
/// connection to whichever thread accepts first).
///
/// Why: on a multi-threaded runtime the task serving a client connection, the upstream
/// connection's task and the timers it waits on end up on different threads, so nearly every
/// proxied request wakes another thread (a futex call and a context switch). One runtime per
/// core keeps a request on one thread from accept to response, as nginx's worker processes
/// do; docs/BENCHMARKS.md has the measurement (with one upstream pool per thread, about
/// twice the gateway's requests/s on 2 cores).
///
/// `app` is any service axum can serve: a [`Router`], or a router behind a service that
/// answers some requests itself (`portico up` sends proxied paths straight to the gateway).
/// Everything it holds must be usable from any thread (it is: axum requires `Send`).
/// Tasks spawned while serving (a hyper client's connection, a WebSocket tunnel) run on the
/// worker that spawned them. If a worker fails, shutdown is triggered so the others stop too,
/// and its error is returned once they have drained.
pub async fn serve_workers<S>(
    listener: std::net::TcpListener,
    app: S,
    shutdown: Shutdown,
    drain_timeout: Duration,
    workers: usize,
) -> std::io::Result<()>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send,
{
    listener.set_nonblocking(true)?;
    let (app, in_flight) = counting_in_flight(app);
    let workers = workers.max(1);
    // Each worker gets its own handle on the socket (the last one the original), so the
    // socket closes, refusing new connections, once every worker has stopped accepting.
    let mut listeners = Vec::with_capacity(workers);
    for _ in 1..workers {
        listeners.push(listener.try_clone()?);
    }
    listeners.push(listener);
    let mut finished = Vec::with_capacity(workers);
    for (index, listener) in listeners.into_iter().enumerate() {
        let (app, stop) = (app.clone(), shutdown.clone());
        let (done, finished_rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("portico-serve-{index}"))
            .spawn(move || {
                let serve = || worker(listener, app, &stop, drain_timeout);
                // A panic's message is on stderr already; it stops the others like an error.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(serve))
                    .unwrap_or_else(|_| Err(std::io::Error::other("a serving thread panicked")));
                if result.is_err() {
                    stop.trigger();
                }
                let _ = done.send(result);
            });
        if let Err(e) = spawned {
            // The threads already serving must not be left running unwatched.
            shutdown.trigger();
            return Err(e);
        }
        finished.push(finished_rx);
    }
    let all = async move {
        let mut outcome = Ok(());
        for finished in finished {
            let result = finished
                .await
                .unwrap_or_else(|_| Err(std::io::Error::other("a serving thread vanished")));
            if outcome.is_ok() {
                outcome = result;
            }
        }
        outcome
    };
    drain(all, &shutdown, drain_timeout, &in_flight).await
}

/// One serving thread of [`serve_workers`]: a single-threaded runtime serving `listener`
/// until shutdown, and then for at most `drain_timeout` more.
fn worker<S>(
    listener: std::net::TcpListener,
    app: Counted<S>,
    shutdown: &Shutdown,
    drain_timeout: Duration,
) -> std::io::Result<()>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        let server = axum::serve(
            listener.tap_io(set_nodelay),
            ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(app),
        )
        .with_graceful_shutdown(shutdown.wait())
        .into_future();
        // Upgraded connections (WebSockets) run as tasks of this runtime, which must live
        // until they have said goodbye.
        let tracked = shutdown.tracked_finished();
        let server = async move {
            let result = server.await;
            tracked.await;
            result
        };
        let deadline = {
            let shutdown = shutdown.clone();
            async move {
                shutdown.wait().await;
                tokio::time::sleep(drain_timeout).await;
            }
        };
        tokio::select! {
            result = server => result,
            () = deadline => Ok(()),
        }
    })
}

/// Small answers go out at once: Nagle's algorithm would hold a response written in two
/// parts until the client acknowledges the first.
fn set_nodelay(stream: &mut tokio::net::TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("cannot set TCP_NODELAY on an accepted connection: {e}");
    }
}

/// `app` counting its requests in flight, and the counter. The count wraps the router as a
/// whole rather than through `Router::layer`, which would box each route once more and clone
/// that box on every request.
fn counting_in_flight<S>(app: S) -> (Counted<S>, Arc<AtomicUsize>) {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let app = InFlightLayer(in_flight.clone()).layer(app);
    (app, in_flight)
}

/// What the serving threads serve: the app inside the in-flight count.
type Counted<S> = InFlightService<S>;

/// Runs `server` (which stops accepting once `shutdown` triggers and ends when its
/// connections have) and, from the shutdown on, gives it at most `drain_timeout`, logging the
/// drain and its end.
async fn drain(
    server: impl Future<Output = std::io::Result<()>>,
    shutdown: &Shutdown,
    drain_timeout: Duration,
    in_flight: &AtomicUsize,
) -> std::io::Result<()> {
    tokio::pin!(server);
    let ended_first = tokio::select! {
        biased;
        () = shutdown.wait() => None,
        result = &mut server => Some(result),
    };
    // Idle servers stop at once when shutdown triggers, and in about 1 run of 40 the server
    // was seen done while the wait above was not (the cause is not pinned down; the wait
    // yielding to tokio's cooperative budget is one possibility): a server that stopped
    // while shutdown is triggered still logs its drain.
    let drained_already = match ended_first {
        Some(result) if !shutdown.is_triggered() => return result,
        Some(result) => Some(result),
        None => None,
    };
    tracing::info!(
        in_flight = in_flight.load(Ordering::SeqCst),
        "draining for up to {}: no new connections, waiting for in-flight requests",
        humantime::format_duration(drain_timeout)
    );
    if let Some(result) = drained_already {
        tracing::info!("drained");
        return result;
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

/// Counts each request as in flight until its response future is done or dropped (a plain
/// layer: no boxed future per request).
#[derive(Debug, Clone)]
struct InFlightLayer(Arc<AtomicUsize>);

impl<S> Layer<S> for InFlightLayer {
    type Service = InFlightService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InFlightService {
            inner,
            counter: self.0.clone(),
        }
    }
}

/// The service of [`InFlightLayer`].
#[derive(Debug, Clone)]
struct InFlightService<S> {
    inner: S,
    counter: Arc<AtomicUsize>,
}

impl<S: Service<R>, R> Service<R> for InFlightService<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = InFlightFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let guard = InFlight::enter(self.counter.clone());
        InFlightFuture {
            inner: self.inner.call(request),
            _guard: guard,
        }
    }
}

pin_project! {
    /// The response future of [`InFlightService`]: the request counts until it is dropped.
    struct InFlightFuture<F> {
        #[pin]
        inner: F,
        _guard: InFlight,
    }
}

impl<F: Future> Future for InFlightFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
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
