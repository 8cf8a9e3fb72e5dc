//! Bulkhead: slots, the bounded queue, waiting limits, cancellation and the tower layer.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use portico_resilience::bulkhead::{Bulkhead, BulkheadLayer};
use portico_resilience::{BoxError, BulkheadFull, ManualClock};
use tokio::sync::Notify;
use tower::{Layer as _, Service, ServiceBuilder, ServiceExt as _};

/// Yields to other tasks until `condition` holds; panics if it never does.
async fn until(mut condition: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if condition() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("condition never became true");
}

/// Polls `fut` once, returning its output if it is already done.
async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| match std::pin::Pin::new(&mut *fut).poll(cx) {
        Poll::Ready(output) => Poll::Ready(Some(output)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

const FULL: BulkheadFull = BulkheadFull {
    max_concurrent: 1,
    max_queue: 1,
};

#[test]
fn zero_max_concurrent_is_refused() {
    assert_eq!(Bulkhead::new(0, 10).unwrap_err().field, "max_concurrent");
    let clock = ManualClock::new().shared();
    let err = Bulkhead::new(1, 1)
        .unwrap()
        .with_max_wait(clock, Duration::ZERO)
        .unwrap_err();
    assert_eq!(err.field, "max_wait");
}

#[test]
fn permits_free_their_slot_when_dropped() {
    let bulkhead = Bulkhead::new(2, 0).unwrap();
    let first = bulkhead.try_acquire().unwrap();
    let second = bulkhead.try_acquire().unwrap();
    assert_eq!(bulkhead.available(), 0);
    assert!(bulkhead.try_acquire().is_err());
    drop(first);
    assert_eq!(bulkhead.available(), 1);
    drop(second);
    assert_eq!(bulkhead.available(), 2);
}

#[tokio::test]
async fn bulkhead_rejects_when_full_and_queue_full() {
    let bulkhead = Bulkhead::new(1, 1).unwrap();
    let _running = bulkhead.try_acquire().unwrap();
    let waiting = tokio::spawn({
        let bulkhead = bulkhead.clone();
        async move { bulkhead.run(async { "queued" }).await }
    });
    until(|| bulkhead.queued() == 1).await;

    assert_eq!(bulkhead.acquire().await.unwrap_err(), FULL);
    assert_eq!(bulkhead.run(async {}).await.unwrap_err(), FULL);
    assert_eq!(bulkhead.try_acquire().unwrap_err(), FULL);
    assert_eq!(
        bulkhead.queued(),
        1,
        "refused callers do not take a queue place"
    );
    assert!(!waiting.is_finished());
}

#[tokio::test]
async fn queued_call_runs_when_slot_frees() {
    let bulkhead = Bulkhead::new(1, 1).unwrap();
    let running = bulkhead.try_acquire().unwrap();
    let waiting = tokio::spawn({
        let bulkhead = bulkhead.clone();
        async move { bulkhead.run(async { 42 }).await }
    });
    until(|| bulkhead.queued() == 1).await;
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());

    drop(running);
    assert_eq!(waiting.await.unwrap(), Ok(42));
    assert_eq!(bulkhead.queued(), 0);
    assert_eq!(bulkhead.available(), 1);
}

#[tokio::test]
async fn queued_calls_get_slots_in_arrival_order() {
    let bulkhead = Bulkhead::new(1, 3).unwrap();
    let running = bulkhead.try_acquire().unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for id in 1..=3 {
        let (bulkhead2, order) = (bulkhead.clone(), order.clone());
        waiters.push(tokio::spawn(async move {
            bulkhead2
                .run(async move { order.lock().expect("lock").push(id) })
                .await
        }));
        until(|| bulkhead.queued() == id).await;
    }
    drop(running);
    for waiter in waiters {
        waiter.await.unwrap().unwrap();
    }
    assert_eq!(*order.lock().expect("lock"), [1, 2, 3]);
}

#[tokio::test]
async fn queued_call_gives_up_after_max_wait() {
    let clock = ManualClock::new();
    let bulkhead = Bulkhead::new(1, 1)
        .unwrap()
        .with_max_wait(clock.shared(), Duration::from_secs(2))
        .unwrap();
    let _running = bulkhead.try_acquire().unwrap();
    let mut waiting = Box::pin(bulkhead.acquire());
    assert!(poll_once(&mut waiting).await.is_none());
    assert_eq!(bulkhead.queued(), 1);

    clock.advance(Duration::from_millis(1999));
    assert!(
        poll_once(&mut waiting).await.is_none(),
        "still within max_wait"
    );
    clock.advance(Duration::from_millis(1));
    assert_eq!(poll_once(&mut waiting).await.unwrap().unwrap_err(), FULL);
    assert_eq!(bulkhead.queued(), 0);
}

#[tokio::test]
async fn dropped_waiter_leaves_the_queue() {
    let bulkhead = Bulkhead::new(1, 1).unwrap();
    let running = bulkhead.try_acquire().unwrap();
    let mut waiting = Box::pin(bulkhead.acquire());
    assert!(poll_once(&mut waiting).await.is_none());
    assert_eq!(bulkhead.queued(), 1);
    drop(waiting);
    assert_eq!(bulkhead.queued(), 0);

    let mut next = Box::pin(bulkhead.acquire());
    assert!(
        poll_once(&mut next).await.is_none(),
        "the freed queue place is usable"
    );
    drop(running);
    assert!(poll_once(&mut next).await.unwrap().is_ok());
}

/// A service that answers once `release` is notified.
fn gated(
    release: Arc<Notify>,
) -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Clone + Send + 'static {
    tower::service_fn(move |x: u32| {
        let release = release.clone();
        async move {
            release.notified().await;
            Ok::<_, BoxError>(x)
        }
    })
}

#[tokio::test]
async fn bulkhead_layer_refuses_when_full() {
    let bulkhead = Bulkhead::new(1, 0).unwrap();
    let release = Arc::new(Notify::new());
    let svc = ServiceBuilder::new()
        .layer(BulkheadLayer::new(bulkhead.clone()))
        .service(gated(release.clone()));

    let first = tokio::spawn(svc.clone().oneshot(1));
    until(|| bulkhead.available() == 0).await;
    let err = svc.clone().oneshot(2).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<BulkheadFull>(),
        Some(&BulkheadFull {
            max_concurrent: 1,
            max_queue: 0
        })
    );

    release.notify_one();
    assert_eq!(first.await.unwrap().unwrap(), 1);
    assert_eq!(bulkhead.available(), 1);
}

#[tokio::test]
async fn bulkhead_layer_readiness_holds_no_slot() {
    let bulkhead = Bulkhead::new(1, 0).unwrap();
    let mut svc = BulkheadLayer::new(bulkhead.clone()).layer(gated(Arc::new(Notify::new())));
    for _ in 0..3 {
        svc.ready().await.unwrap();
    }
    assert_eq!(
        bulkhead.available(),
        1,
        "poll_ready without call takes nothing"
    );
}
