//! Shared scaffolding for this crate's integration tests: driving a `ManualClock`, and
//! capturing what the code under test logs.
// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::sync::Once;
use std::task::Poll;
use std::time::{Duration, Instant};

use portico_resilience::ManualClock;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

// === time ===

/// Polls `fut` to completion, moving `clock` on by `step` whenever something sleeps on it.
pub async fn drive<F: Future>(clock: &ManualClock, step: Duration, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    for _ in 0..1_000_000 {
        let polled = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
        if let Poll::Ready(output) = polled {
            return output;
        }
        if clock.pending_sleeps() > 0 {
            clock.advance(step);
        } else {
            tokio::task::yield_now().await;
        }
    }
    panic!("future did not finish");
}

/// Lets the other tasks run until `condition` holds, failing the test after 5 s of real time.
pub async fn until(what: &str, condition: impl Fn() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < give_up, "still waiting for {what}");
        tokio::task::yield_now().await;
    }
}

/// Waits until the code under test sleeps for exactly `wait` on the manual clock, then lets
/// that time pass.
pub async fn advance_when_sleeping(clock: &ManualClock, wait: Duration) {
    until(&format!("a sleep of {wait:?}"), || {
        clock.pending_sleep_durations().contains(&wait)
    })
    .await;
    clock.advance(wait);
}

// === logs ===

// A thread-local (`set_default`) subscriber is not reliable while other tests run in
// parallel: tracing caches each call site's interest globally, and a site first reached on
// another thread can be cached as disabled. So one global subscriber is installed, and it
// keeps only what is logged on threads that asked for it. Each `#[tokio::test]` runs on its
// own current-thread runtime, so everything a test logs happens on its thread.

thread_local! {
    static TEXT: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
    static MESSAGES: RefCell<Option<Vec<(tracing::Level, String)>>> = const { RefCell::new(None) };
}

/// Starts capturing this thread's log (again, from empty).
pub fn capture_logs() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let text = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(|| ThreadWriter);
        let subscriber = tracing_subscriber::registry()
            .with(text)
            .with(ThreadMessages);
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in this test binary");
    });
    tracing::callsite::rebuild_interest_cache();
    TEXT.with_borrow_mut(|t| *t = Some(Vec::new()));
    MESSAGES.with_borrow_mut(|m| *m = Some(Vec::new()));
}

/// The formatted log lines (level, message, fields) since the last take.
pub fn take_log_text() -> String {
    let text = TEXT.with_borrow_mut(|t| std::mem::take(t.get_or_insert_with(Vec::new)));
    String::from_utf8_lossy(&text).into_owned()
}

/// The messages at `level` or above since the last take.
pub fn take_messages(level: tracing::Level) -> Vec<String> {
    MESSAGES
        .with_borrow_mut(|m| std::mem::take(m.get_or_insert_with(Vec::new)))
        .into_iter()
        .filter(|(l, _)| *l <= level)
        .map(|(_, m)| m)
        .collect()
}

/// Runs `run` and returns what it logged, formatted.
pub fn logs_of(run: impl FnOnce()) -> String {
    capture_logs();
    run();
    take_log_text()
}

struct ThreadWriter;

impl io::Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        TEXT.with_borrow_mut(|t| {
            if let Some(t) = t {
                t.extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct ThreadMessages;

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ThreadMessages {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        MESSAGES.with_borrow_mut(|sink| {
            if let Some(sink) = sink {
                let mut message = Message(String::new());
                event.record(&mut message);
                sink.push((*event.metadata().level(), message.0));
            }
        });
    }
}
