//! A flaky service behind the resilience stack: rate limit → retry → circuit breaker →
//! timeout, as tower layers. Watch the retries, the breaker opening, and the refusals.
//!
//! Run with: `cargo run -p portico-resilience --example stack`

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use portico_resilience::breaker::{BreakerConfig, CircuitBreaker, CircuitBreakerLayer};
use portico_resilience::ratelimit::{LocalRateLimiter, Quota, RateLimitLayer};
use portico_resilience::retry::{Backoff, RetryLayer, RetryPolicy};
use portico_resilience::timeout::TimeoutLayer;
use portico_resilience::{BoxError, CircuitOpen, RateLimited, SystemClock, TimeoutElapsed};
use tower::{ServiceBuilder, ServiceExt};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .init();
    let clock = SystemClock::shared();

    // The "upstream": hangs on the 2nd call, fails the 3rd to the 7th, then recovers.
    let calls = Arc::new(AtomicU32::new(0));
    let upstream = tower::service_fn({
        let calls = calls.clone();
        move |query: &'static str| {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                match n {
                    2 => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        Ok(format!("late answer to {query}"))
                    }
                    3..=7 => Err::<String, BoxError>(format!("call {n}: upstream error").into()),
                    _ => Ok(format!("answer to {query} (call {n})")),
                }
            }
        }
    });

    let breaker = CircuitBreaker::new(
        "Search",
        BreakerConfig::builder()
            .failure_threshold(5)
            .recovery_timeout(Duration::from_millis(500))
            .build()?,
        clock.clone(),
    );
    let retry = RetryPolicy::builder()
        .max_attempts(3)
        .backoff(Backoff::exponential(
            Duration::from_millis(50),
            2.0,
            Duration::from_secs(1),
        )?)
        .build()?;
    let limiter = Arc::new(LocalRateLimiter::new(
        Quota::new(20, Duration::from_secs(1))?,
        clock.clone(),
    ));

    let service = ServiceBuilder::new()
        .layer(RateLimitLayer::new(limiter, |_: &&'static str| {
            "demo".to_owned()
        }))
        .layer(RetryLayer::new(retry, clock.clone()))
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .layer(TimeoutLayer::new(
            Duration::from_millis(200),
            clock.clone(),
        )?)
        .service(upstream);

    for i in 1..=8 {
        if i == 7 {
            println!("-- waiting 600ms for the breaker's recovery timeout --");
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
        let outcome = service.clone().oneshot("rust resilience").await;
        let state = breaker.snapshot().state.as_str();
        match outcome {
            Ok(answer) => println!("request {i}: ok: {answer}  [breaker {state}]"),
            Err(e) if e.is::<CircuitOpen>() => {
                println!("request {i}: refused, circuit open  [breaker {state}]")
            }
            Err(e) if e.is::<TimeoutElapsed>() => {
                println!("request {i}: timed out  [breaker {state}]")
            }
            Err(e) if e.is::<RateLimited>() => println!("request {i}: rate limited"),
            Err(e) => println!("request {i}: failed: {e}  [breaker {state}]"),
        }
    }
    println!("upstream saw {} calls", calls.load(Ordering::SeqCst));
    Ok(())
}
