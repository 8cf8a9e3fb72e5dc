//! Rate limiter hot paths: `check` on one hot key, next to a baseline (a plain locked
//! `HashMap` lookup and update); through the async trait object; and with two threads on the
//! same key and on different keys.
//!
//! Run with: `cargo bench -p portico-resilience --bench ratelimit -- --warm-up-time 1 --measurement-time 3`

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Barrier, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use portico_resilience::SystemClock;
use portico_resilience::ratelimit::{LocalRateLimiter, Quota, RateLimiter};

fn limiter() -> LocalRateLimiter {
    // A generous quota: the benchmark measures the bookkeeping, mostly on allowed requests.
    let quota = Quota::new(1_000_000_000, Duration::from_secs(1)).unwrap_or_else(|e| panic!("{e}"));
    LocalRateLimiter::new(quota, SystemClock::shared())
}

/// Two threads each make `iters` checks (on `keys[0]` and `keys[1]`); the result is the wall
/// time, so criterion reports the time per check as each thread sees it.
fn contended(limiter: &LocalRateLimiter, keys: [&str; 2], iters: u64) -> Duration {
    let barrier = Barrier::new(3);
    std::thread::scope(|s| {
        for key in keys {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                for _ in 0..iters {
                    black_box(limiter.check(black_box(key)));
                }
            });
        }
        barrier.wait();
        Instant::now()
    })
    .elapsed()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("ratelimit");
    let baseline = Mutex::new(HashMap::from([(String::from("user:42"), 0u64)]));
    group.bench_function("baseline/locked map update", |b| {
        b.iter(|| {
            let mut map = baseline.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(v) = map.get_mut(black_box("user:42")) {
                *v += 1;
            }
        })
    });

    let local = limiter();
    group.bench_function("check/hot key", |b| {
        b.iter(|| local.check(black_box("user:42")))
    });

    let shared: &dyn RateLimiter = &local;
    let mut cx = Context::from_waker(Waker::noop());
    group.bench_function("check/dyn RateLimiter", |b| {
        b.iter(
            || match shared.check(black_box("user:42")).as_mut().poll(&mut cx) {
                Poll::Ready(decision) => decision.is_ok(),
                Poll::Pending => false,
            },
        )
    });

    group.bench_function("check/2 threads same key", |b| {
        b.iter_custom(|iters| contended(&local, ["user:42", "user:42"], iters))
    });
    group.bench_function("check/2 threads different keys", |b| {
        b.iter_custom(|iters| contended(&local, ["user:1", "user:2"], iters))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
