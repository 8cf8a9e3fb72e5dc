//! The rate limiter through its public API, with a manual clock: exact allow/deny sequences,
//! header values, keys, eviction, the trait object, the async helper and the tower layer; then
//! a property test of the GCRA bound.

// Helpers outside #[test] functions unwrap too: in a test, a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use portico_resilience::ratelimit::local::{MIN_SWEEP, SHARDS};
use portico_resilience::ratelimit::{
    self, CheckFuture, LimiterError, LocalRateLimiter, Quota, RateLimitLayer, RateLimiter,
};
use portico_resilience::{ManualClock, RateLimited, ResilienceError};
use proptest::prelude::*;
use tower::{Layer, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

fn limiter(clock: &ManualClock, requests: u32, window: Duration, burst: u32) -> LocalRateLimiter {
    let quota = Quota::new(requests, window)
        .unwrap()
        .with_burst(burst)
        .unwrap();
    LocalRateLimiter::new(quota, clock.shared())
}

#[test]
fn allows_the_burst_then_refuses_with_exact_retry_after() {
    let clock = ManualClock::new();
    let l = limiter(&clock, 5, 10 * SEC, 5); // one request every 2 s
    for remaining in (0..5).rev() {
        let d = l.check("k");
        assert!(d.allowed);
        assert_eq!((d.remaining, d.retry_after), (remaining, None));
    }
    let refused = l.check("k");
    assert!(!refused.allowed);
    assert_eq!(refused.retry_after, Some(2 * SEC));
    assert_eq!(refused.reset_after, 10 * SEC);
    assert_eq!(refused.remaining, 0);
    clock.advance(2 * SEC - MS);
    assert_eq!(l.check("k").retry_after, Some(MS));
    clock.advance(MS);
    let again = l.check("k");
    assert!(again.allowed);
    assert_eq!((again.remaining, again.reset_after), (0, 10 * SEC));
}

#[test]
fn remaining_recovers_with_time() {
    let clock = ManualClock::new();
    let l = limiter(&clock, 5, 10 * SEC, 5);
    for _ in 0..5 {
        l.check("k");
    }
    clock.advance(6 * SEC);
    let d = l.check("k");
    assert!(d.allowed);
    assert_eq!(d.remaining, 2, "3 requests earned back, 1 spent");
    assert_eq!(d.reset_after, 6 * SEC);
    clock.advance(60 * SEC);
    assert_eq!(l.check("k").remaining, 4, "a full bucket again");
}

#[test]
fn burst_of_one_spaces_requests_evenly() {
    let clock = ManualClock::new();
    let l = limiter(&clock, 60, 60 * SEC, 1);
    assert!(l.check("k").allowed);
    assert_eq!(l.check("k").retry_after, Some(SEC));
    clock.advance(999 * MS);
    assert_eq!(l.check("k").retry_after, Some(MS));
    clock.advance(MS);
    assert!(l.check("k").allowed);
}

#[test]
fn decision_announces_the_quota_limit_not_the_burst() {
    let clock = ManualClock::new();
    let l = limiter(&clock, 100, 60 * SEC, 10);
    let d = l.check("k");
    assert_eq!((d.limit, d.remaining), (100, 9));
    assert_eq!(d.reset_after, Duration::from_millis(600));
}

#[test]
fn refused_requests_do_not_use_up_the_quota() {
    let clock = ManualClock::new();
    let l = limiter(&clock, 1, SEC, 1);
    assert!(l.check("k").allowed);
    for _ in 0..100 {
        assert!(!l.check("k").allowed);
    }
    clock.advance(SEC);
    assert!(l.check("k").allowed);
}

#[test]
fn keys_are_independent() {
    let clock = ManualClock::new();
    let l = limiter(&clock, 2, SEC, 2);
    assert!(l.check("alice").allowed && l.check("alice").allowed);
    assert!(!l.check("alice").allowed);
    let bob = l.check("bob");
    assert!(bob.allowed);
    assert_eq!(bob.remaining, 1);
}

#[test]
fn eviction_keeps_memory_bounded() {
    let clock = ManualClock::new();
    let l = limiter(&clock, 1, SEC, 1);
    let per_round = 1_000;
    for round in 0..50 {
        for i in 0..per_round {
            assert!(l.check(&format!("client-{round}-{i}")).allowed);
        }
        assert!(
            l.len() <= 2 * per_round + SHARDS * MIN_SWEEP,
            "round {round}: {} keys kept",
            l.len()
        );
        clock.advance(2 * SEC);
    }
    l.sweep();
    assert!(l.is_empty(), "every key expired");
}

#[test]
fn sweep_keeps_keys_that_still_owe_time() {
    let clock = ManualClock::new();
    let l = limiter(&clock, 1, 10 * SEC, 1);
    l.check("busy");
    clock.advance(5 * SEC);
    l.sweep();
    assert_eq!(l.len(), 1);
    assert_eq!(l.check("busy").retry_after, Some(5 * SEC));
}

// === trait object, async helper, tower ===

/// A limiter whose backend is down.
struct Broken;

impl RateLimiter for Broken {
    fn check<'a>(&'a self, _key: &'a str) -> CheckFuture<'a> {
        Box::pin(async { Err(LimiterError::Backend("redis down".into())) })
    }
}

#[tokio::test]
async fn call_runs_until_the_limit_then_refuses() {
    let clock = ManualClock::new();
    let l: Arc<dyn RateLimiter> = Arc::new(limiter(&clock, 2, SEC, 2));
    for _ in 0..2 {
        let ok = ratelimit::call(&*l, "k", || async { Ok::<_, Infallible>(7) }).await;
        assert_eq!(ok.unwrap(), 7);
    }
    let err = ratelimit::call(&*l, "k", || async { Ok::<_, Infallible>(7) })
        .await
        .unwrap_err();
    assert!(matches!(err, ResilienceError::RateLimited(_)));
    assert_eq!(err.retry_after(), Some(Duration::from_millis(500)));
}

#[tokio::test]
async fn call_fails_open_when_the_backend_is_down() {
    let ok = ratelimit::call(&Broken, "k", || async { Ok::<_, Infallible>(1) }).await;
    assert_eq!(ok.unwrap(), 1);
}

#[tokio::test]
async fn tower_layer_refuses_with_rate_limited_per_key() {
    let clock = ManualClock::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let inner = service_fn(move |req: String| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, Infallible>(req) }
    });
    let layer = RateLimitLayer::new(Arc::new(limiter(&clock, 1, 4 * SEC, 1)), |req: &String| {
        req.clone()
    });
    let svc = layer.layer(inner);
    assert_eq!(svc.clone().oneshot("a".into()).await.unwrap(), "a");
    let err = svc.clone().oneshot("a".into()).await.unwrap_err();
    let limited = err.downcast_ref::<RateLimited>().expect("a RateLimited");
    assert_eq!(limited.retry_after, 4 * SEC);
    assert_eq!(svc.clone().oneshot("b".into()).await.unwrap(), "b");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "refused requests never reach the service"
    );
}

#[tokio::test]
async fn tower_layer_fails_open_or_closed_on_backend_errors() {
    let inner = service_fn(|_req: ()| async { Ok::<_, Infallible>("served") });
    let open = RateLimitLayer::new(Arc::new(Broken), |_: &()| String::from("k"));
    let closed = open.clone().fail_closed();
    assert_eq!(open.layer(inner).oneshot(()).await.unwrap(), "served");
    let err = closed.layer(inner).oneshot(()).await.unwrap_err();
    assert!(matches!(
        err.downcast_ref::<LimiterError>(),
        Some(LimiterError::Backend(_))
    ));
}

// === properties ===

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Over any span [t_i, t_j] between allowed requests, at most
    /// `burst + (t_j - t_i) / emission_interval` requests are allowed; every refusal says to
    /// wait at most one emission interval, and `remaining` never exceeds `burst - 1`.
    #[test]
    fn allowed_requests_never_exceed_burst_plus_elapsed_intervals(
        requests in 1u32..20,
        window_ms in 1u64..5_000,
        burst in 1u32..10,
        steps in prop::collection::vec((0u64..1_500, 0usize..6), 1..80),
    ) {
        let clock = ManualClock::new();
        let l = limiter(&clock, requests, Duration::from_millis(window_ms), burst);
        let interval = l.quota().emission_interval();
        let mut allowed_at = Vec::new();
        for (advance_ms, checks) in steps {
            clock.advance(Duration::from_millis(advance_ms));
            for _ in 0..checks {
                let d = l.check("k");
                if d.allowed {
                    allowed_at.push(clock.elapsed());
                    prop_assert!(d.remaining < burst);
                } else {
                    let wait = d.retry_after.unwrap();
                    prop_assert!(!wait.is_zero() && wait <= interval, "retry after {:?}", wait);
                }
            }
        }
        for (i, start) in allowed_at.iter().enumerate() {
            for (j, end) in allowed_at.iter().enumerate().skip(i) {
                let in_span = (j - i + 1) as u128;
                let bound = u128::from(burst) + (*end - *start).as_nanos() / interval.as_nanos();
                prop_assert!(in_span <= bound, "{} allowed in {:?}, bound {}", in_span, *end - *start, bound);
            }
        }
    }
}
