//! A log line written inside a request carries the request id (its own test binary, because
//! it installs a tracing subscriber for the test's thread).

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::Method;
use portico_core::request_id::RequestIdLayer;
use support::{TestServer, send};
use tracing_subscriber::fmt::MakeWriter;

/// A `MakeWriter` appending to a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

async fn handler() -> &'static str {
    tracing::info!("handling the order");
    "ok"
}

// current_thread runtime: the server's tasks run on this thread, under the default set here.
#[tokio::test]
async fn log_lines_inside_a_request_carry_its_request_id() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = Router::new()
        .route("/order", get(handler))
        .layer(RequestIdLayer::new());
    let server = TestServer::start(app).await;
    let reply = send(
        Method::GET,
        &server.url("/order"),
        &[("x-request-id", "order-7f3a")],
        Bytes::new(),
    )
    .await;
    assert_eq!(reply.status, 200);

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let line = logs
        .lines()
        .find(|l| l.contains("handling the order"))
        .unwrap_or_else(|| panic!("no log line in {logs:?}"));
    assert!(line.contains("request_id=order-7f3a"), "{line}");
    assert!(line.contains("method=GET"), "{line}");
    assert!(line.contains("path=/order"), "{line}");
}
