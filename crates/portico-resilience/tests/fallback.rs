//! Fallback: the plain combinators and the tower layer, alone and over a timeout.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use portico_resilience::fallback::{FallbackLayer, RejectedResponse, fallback, fallback_when};
use portico_resilience::timeout::TimeoutLayer;
use portico_resilience::{BoxError, ManualClock, TimeoutElapsed};
use tower::{ServiceBuilder, ServiceExt as _};

mod support;
use support::drive;

#[tokio::test]
async fn fallback_replaces_error() {
    let answer = fallback(async { Err::<&str, _>("search down") }, |err| async move {
        assert_eq!(err, "search down");
        Ok::<_, Infallible>("cached results")
    })
    .await;
    assert_eq!(answer, Ok("cached results"));
}

#[tokio::test]
async fn fallback_is_not_called_on_success() {
    let called = AtomicBool::new(false);
    let answer = fallback(async { Ok::<_, &str>("fresh") }, |_| async {
        called.store(true, Ordering::SeqCst);
        Ok::<_, &str>("cached")
    })
    .await;
    assert_eq!(answer, Ok("fresh"));
    assert!(!called.load(Ordering::SeqCst));
}

#[tokio::test]
async fn failing_fallback_returns_its_own_error() {
    let answer: Result<u32, String> = fallback(async { Err::<u32, _>("down") }, |err| async move {
        Err(format!("no cache either ({err})"))
    })
    .await;
    assert_eq!(answer.unwrap_err(), "no cache either (down)");
}

#[tokio::test]
async fn fallback_when_replaces_a_bad_success() {
    let answer = fallback_when(
        async { Ok::<u16, &str>(503) },
        |outcome| !matches!(outcome, Ok(200..=299)),
        |outcome| async move {
            assert_eq!(outcome, Ok(503));
            Ok(200)
        },
    )
    .await;
    assert_eq!(answer, Ok(200));
}

#[tokio::test]
async fn fallback_when_keeps_an_accepted_outcome() {
    let answer = fallback_when(
        async { Ok::<u16, &str>(204) },
        |outcome| !matches!(outcome, Ok(200..=299)),
        |_| async { Ok(200) },
    )
    .await;
    assert_eq!(answer, Ok(204));
}

#[tokio::test]
async fn fallback_layer_replaces_service_error() {
    let svc = ServiceBuilder::new()
        .layer(FallbackLayer::new(|err: BoxError| async move {
            Ok(format!("static reply ({err})"))
        }))
        .service(tower::service_fn(|_: ()| async {
            Err::<String, BoxError>("ai engine down".into())
        }));
    assert_eq!(
        svc.oneshot(()).await.unwrap(),
        "static reply (ai engine down)"
    );
}

#[tokio::test]
async fn fallback_layer_passes_good_responses_through() {
    let svc = ServiceBuilder::new()
        .layer(
            FallbackLayer::new(|_: BoxError| async { Ok(0u16) }).on_response(|s: &u16| *s >= 500),
        )
        .service(tower::service_fn(
            |s: u16| async move { Ok::<_, BoxError>(s) },
        ));
    assert_eq!(svc.oneshot(201).await.unwrap(), 201);
}

#[tokio::test]
async fn fallback_layer_replaces_rejected_response() {
    let svc = ServiceBuilder::new()
        .layer(
            FallbackLayer::new(|err: BoxError| async move {
                assert!(err.downcast_ref::<RejectedResponse>().is_some(), "{err}");
                Ok(200u16)
            })
            .on_response(|status: &u16| *status >= 500),
        )
        .service(tower::service_fn(
            |s: u16| async move { Ok::<_, BoxError>(s) },
        ));
    assert_eq!(svc.oneshot(502).await.unwrap(), 200);
}

#[tokio::test]
async fn fallback_layer_sees_the_timeout_refusal() {
    let clock = ManualClock::new();
    let seen = Arc::new(AtomicBool::new(false));
    let seen2 = seen.clone();
    let svc = ServiceBuilder::new()
        .layer(FallbackLayer::new(move |err: BoxError| {
            let timed_out = err.downcast_ref::<TimeoutElapsed>().is_some();
            seen2.store(timed_out, Ordering::SeqCst);
            async { Ok("stale but served") }
        }))
        .layer(TimeoutLayer::new(Duration::from_secs(5), clock.shared()).unwrap())
        .service(tower::service_fn(|_: ()| {
            std::future::pending::<Result<&'static str, BoxError>>()
        }));
    let answer = drive(&clock, Duration::from_secs(1), svc.oneshot(())).await;
    assert_eq!(answer.unwrap(), "stale but served");
    assert!(
        seen.load(Ordering::SeqCst),
        "the fallback got a TimeoutElapsed"
    );
    assert_eq!(clock.elapsed(), Duration::from_secs(5));
}
