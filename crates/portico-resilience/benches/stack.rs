//! The cost of the resilience stack on a call that succeeds: a ready echo service alone,
//! then under a timeout, a retry, and the full stack (retry → circuit breaker → timeout).
//!
//! Run with:
//! `cargo bench -p portico-resilience --bench stack -- --warm-up-time 1 --measurement-time 3`
//!
//! Each batch of calls runs inside one `block_on` on a current-thread tokio runtime (time
//! enabled, for the timeout's sleep), timed with `iter_custom`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use portico_resilience::breaker::{BreakerConfig, CircuitBreaker, CircuitBreakerLayer};
use portico_resilience::retry::{RetryLayer, RetryPolicy};
use portico_resilience::timeout::TimeoutLayer;
use portico_resilience::{BoxError, SharedClock, SystemClock};
use tokio::runtime::Runtime;
use tower::{Service, ServiceBuilder, ServiceExt as _};

fn runtime() -> Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("tokio runtime: {e}"),
    }
}

/// Times `iters` sequential calls through `svc`.
fn calls<S>(rt: &Runtime, svc: &mut S, iters: u64) -> Duration
where
    S: Service<u64, Response = u64>,
    S::Error: std::fmt::Debug,
{
    rt.block_on(async {
        let start = Instant::now();
        for i in 0..iters {
            let ready = match svc.ready().await {
                Ok(ready) => ready,
                Err(e) => panic!("not ready: {e:?}"),
            };
            match ready.call(black_box(i)).await {
                Ok(answer) => {
                    black_box(answer);
                }
                Err(e) => panic!("call failed: {e:?}"),
            }
        }
        start.elapsed()
    })
}

fn echo()
-> impl Service<u64, Response = u64, Error = BoxError, Future: Send> + Clone + Send + 'static {
    tower::service_fn(|x: u64| async move { Ok::<_, BoxError>(x) })
}

fn stack(c: &mut Criterion) {
    let rt = runtime();
    let clock: SharedClock = SystemClock::shared();
    let timeout = match TimeoutLayer::new(Duration::from_secs(15), clock.clone()) {
        Ok(layer) => layer,
        Err(e) => panic!("{e}"),
    };
    let retry = match RetryPolicy::builder().max_attempts(3).build() {
        Ok(policy) => RetryLayer::new(policy, clock.clone()),
        Err(e) => panic!("{e}"),
    };

    let mut group = c.benchmark_group("stack");
    let mut bare = echo();
    group.bench_function("no_layers", |b| b.iter_custom(|n| calls(&rt, &mut bare, n)));

    let mut timed = ServiceBuilder::new().layer(timeout.clone()).service(echo());
    group.bench_function("timeout", |b| b.iter_custom(|n| calls(&rt, &mut timed, n)));

    let mut retried = ServiceBuilder::new().layer(retry.clone()).service(echo());
    group.bench_function("retry", |b| b.iter_custom(|n| calls(&rt, &mut retried, n)));

    // Seed 001's order: each attempt passes the breaker, and a timed-out attempt counts as
    // a failure, so the timeout sits inside the breaker.
    let breaker = CircuitBreaker::new("bench", BreakerConfig::default(), clock.clone());
    let mut full = ServiceBuilder::new()
        .layer(retry)
        .layer(CircuitBreakerLayer::new(breaker))
        .layer(timeout)
        .service(echo());
    group.bench_function("retry_breaker_timeout", |b| {
        b.iter_custom(|n| calls(&rt, &mut full, n))
    });
    group.finish();
}

criterion_group!(benches, stack);
criterion_main!(benches);
