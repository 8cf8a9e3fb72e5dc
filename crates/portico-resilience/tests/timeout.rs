//! Timeout and deadline: a future racing the clock, an overall deadline across retried
//! attempts, and the tower layer — on a manual clock.

use std::fmt::Debug;
use std::sync::Mutex;
use std::time::Duration;

use portico_resilience::retry::{self, Attempt, GiveUp, RetryObserver, RetryPolicy};
use portico_resilience::timeout::{Deadline, TimeoutLayer, timeout};
use portico_resilience::{BoxError, ManualClock, TimeoutElapsed};
use tower::{ServiceBuilder, ServiceExt as _};

mod support;
use support::drive;

const STEP: Duration = Duration::from_millis(250);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[tokio::test]
async fn ready_future_wins_without_waiting() {
    let clock = ManualClock::new();
    let answer = timeout(&clock.shared(), secs(5), async { 7 }).await;
    assert_eq!(answer, Ok(7));
    assert_eq!(clock.elapsed(), Duration::ZERO);
}

#[tokio::test]
async fn slow_future_times_out_after_its_duration() {
    let clock = ManualClock::new();
    let call = timeout(&clock.shared(), secs(2), std::future::pending::<()>());
    assert_eq!(
        drive(&clock, STEP, call).await,
        Err(TimeoutElapsed(secs(2)))
    );
    assert_eq!(clock.elapsed(), secs(2));
    assert_eq!(
        clock.pending_sleeps(),
        0,
        "the timer is gone with the future"
    );
}

#[tokio::test]
async fn future_finishing_before_the_timer_wins() {
    let clock = ManualClock::new();
    let shared = clock.shared();
    let work = shared.sleep(secs(1));
    let call = timeout(&shared, secs(2), async move {
        work.await;
        "done"
    });
    assert_eq!(drive(&clock, STEP, call).await, Ok("done"));
    assert_eq!(clock.elapsed(), secs(1));
}

#[test]
fn zero_durations_are_refused_naming_the_field() {
    let clock = ManualClock::new().shared();
    assert_eq!(
        TimeoutLayer::new(Duration::ZERO, clock.clone())
            .unwrap_err()
            .field,
        "timeout"
    );
    assert_eq!(
        Deadline::after(&clock, Duration::ZERO).unwrap_err().field,
        "deadline"
    );
}

#[test]
fn deadline_remaining_shrinks_with_the_clock() {
    let clock = ManualClock::new();
    let deadline = Deadline::after(&clock.shared(), secs(10)).unwrap();
    assert_eq!(deadline.remaining(), secs(10));
    clock.advance(secs(3));
    assert_eq!(deadline.remaining(), secs(7));
    assert_eq!(deadline.attempt_timeout(secs(4)), secs(4));
    clock.advance(secs(5));
    assert_eq!(deadline.attempt_timeout(secs(4)), secs(2));
    assert!(!deadline.is_expired());
    clock.advance(secs(3));
    assert_eq!(deadline.remaining(), Duration::ZERO);
    assert!(deadline.is_expired());
}

#[test]
fn deadline_at_a_past_instant_has_nothing_left() {
    let clock = ManualClock::new();
    let shared = clock.shared();
    let then = shared.now();
    clock.advance(secs(1));
    assert!(Deadline::at(&shared, then).is_expired());
}

#[tokio::test]
async fn deadline_run_times_out_at_the_deadline() {
    let clock = ManualClock::new();
    let deadline = Deadline::after(&clock.shared(), secs(5)).unwrap();
    clock.advance(secs(2));
    let call = deadline.run(std::future::pending::<()>());
    assert_eq!(
        drive(&clock, STEP, call).await,
        Err(TimeoutElapsed(secs(5)))
    );
    assert_eq!(clock.elapsed(), secs(5));
}

/// Records outcomes and the time each happened.
#[derive(Default)]
struct Timeline {
    events: Mutex<Vec<String>>,
    clock: ManualClock,
}

impl<T: Debug, E: Debug> RetryObserver<T, E> for Timeline {
    fn on_outcome(&self, attempt: Attempt, outcome: &Result<T, E>) {
        let at = self.clock.elapsed();
        self.events
            .lock()
            .expect("lock")
            .push(format!("{at:?} {attempt} {outcome:?}"));
    }

    fn on_give_up(&self, attempt: Attempt, reason: GiveUp) {
        let at = self.clock.elapsed();
        self.events
            .lock()
            .expect("lock")
            .push(format!("{at:?} {attempt} {reason:?}"));
    }
}

#[tokio::test]
async fn attempt_timeout_and_overall_deadline() {
    let clock = ManualClock::new();
    let deadline = Deadline::after(&clock.shared(), secs(8)).unwrap();
    let policy = RetryPolicy::builder().max_attempts(5).build().unwrap();
    let timeline = Timeline {
        clock: clock.clone(),
        ..Timeline::default()
    };
    let call = policy.run_until(&deadline, secs(4), retry::on_error, &timeline, || {
        std::future::pending::<Result<(), TimeoutElapsed>>()
    });
    let result = drive(&clock, STEP, call).await;
    // Attempt 1 gets its full 4s; after the 1s backoff only 3s are left for attempt 2;
    // then nothing is left to wait 2s in, so the call ends exactly at the deadline.
    assert_eq!(result, Err(TimeoutElapsed(secs(3))));
    assert_eq!(clock.elapsed(), secs(8));
    assert_eq!(
        *timeline.events.lock().expect("lock"),
        [
            "4s 1/5 Err(TimeoutElapsed(4s))",
            "8s 2/5 Err(TimeoutElapsed(3s))",
            "8s 2/5 DeadlineExceeded",
        ]
    );
}

#[tokio::test]
async fn retry_within_deadline_does_not_start_a_wait_it_cannot_finish() {
    let clock = ManualClock::new();
    let shared = clock.shared();
    let deadline = Deadline::after(&shared, secs(8)).unwrap();
    let policy = RetryPolicy::builder().max_attempts(5).build().unwrap();
    let timeline = Timeline {
        clock: clock.clone(),
        ..Timeline::default()
    };
    let work = || {
        let slow = shared.sleep(secs(3));
        async move {
            slow.await;
            Err::<(), TimeoutElapsed>(TimeoutElapsed(Duration::ZERO))
        }
    };
    let call = policy.run_until(&deadline, secs(5), retry::on_error, &timeline, work);
    drive(&clock, STEP, call).await.unwrap_err();
    // 0-3s attempt 1, 1s wait, 4-7s attempt 2; the next 2s wait would end past the 8s
    // deadline, so the call gives up at 7s instead of sleeping into it.
    assert_eq!(clock.elapsed(), secs(7));
    assert_eq!(
        timeline.events.lock().expect("lock").last().unwrap(),
        "7s 2/5 DeadlineExceeded"
    );
}

#[tokio::test]
async fn timeout_layer_fails_with_boxed_timeout_elapsed() {
    let clock = ManualClock::new();
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new(secs(3), clock.shared()).unwrap())
        .service(tower::service_fn(|_: ()| {
            std::future::pending::<Result<(), BoxError>>()
        }));
    let err = drive(&clock, STEP, svc.oneshot(())).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<TimeoutElapsed>(),
        Some(&TimeoutElapsed(secs(3)))
    );
    assert_eq!(clock.elapsed(), secs(3));
}

#[tokio::test]
async fn timeout_layer_passes_answers_and_errors_through() {
    let clock = ManualClock::new();
    let layer = TimeoutLayer::new(secs(3), clock.shared()).unwrap();
    let echo = ServiceBuilder::new()
        .layer(layer.clone())
        .service(tower::service_fn(
            |x: u32| async move { Ok::<_, BoxError>(x) },
        ));
    assert_eq!(echo.oneshot(5).await.unwrap(), 5);
    let failing = ServiceBuilder::new()
        .layer(layer)
        .service(tower::service_fn(|_: u32| async {
            Err::<u32, BoxError>("refused".into())
        }));
    let err = failing.oneshot(5).await.unwrap_err();
    assert_eq!(err.to_string(), "refused");
    assert!(err.downcast_ref::<TimeoutElapsed>().is_none());
}
