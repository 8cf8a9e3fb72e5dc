//! Circuit breaker hot paths: a permit and its success on a closed breaker, next to a
//! baseline with no breaker; the same with two threads on one breaker; a refusal while
//! open; and a permit in rate mode (which takes the lock).
//!
//! Run with: `cargo bench -p portico-resilience --bench breaker -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use portico_resilience::SystemClock;
use portico_resilience::breaker::{BreakerConfig, CircuitBreaker};

fn closed() -> CircuitBreaker {
    CircuitBreaker::new("bench", BreakerConfig::default(), SystemClock::shared())
}

/// `threads` threads each make `iters` permit+success calls on one breaker; the result is
/// the wall time, so criterion reports the time per call as each thread sees it.
fn contended(breaker: &CircuitBreaker, threads: usize, iters: u64) -> Duration {
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                barrier.wait();
                for _ in 0..iters {
                    if let Ok(permit) = black_box(breaker).try_acquire() {
                        permit.success();
                    }
                }
            });
        }
        barrier.wait();
        let start = Instant::now();
        // Leaving the scope joins every thread.
        start
    })
    .elapsed()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("breaker");
    group.bench_function("baseline/no breaker", |b| {
        let mut counter = 0u64;
        b.iter(|| {
            counter = black_box(counter).wrapping_add(1);
            counter
        })
    });

    let breaker = closed();
    group.bench_function("permit+success/closed", |b| {
        b.iter(|| {
            if let Ok(permit) = black_box(&breaker).try_acquire() {
                permit.success();
            }
        })
    });

    group.bench_function("permit+success/closed/2 threads", |b| {
        b.iter_custom(|iters| contended(&breaker, 2, iters))
    });

    let open = closed();
    open.force_open();
    group.bench_function("refusal/open", |b| {
        b.iter(|| black_box(&open).try_acquire().is_err())
    });

    let rate = BreakerConfig::builder()
        .failure_rate_threshold(50)
        .count_window(100)
        .build()
        .unwrap_or_default();
    let windowed = CircuitBreaker::new("bench", rate, SystemClock::shared());
    group.bench_function("permit+success/rate mode", |b| {
        b.iter(|| {
            if let Ok(permit) = black_box(&windowed).try_acquire() {
                permit.success();
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
