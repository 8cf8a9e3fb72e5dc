//! The circuit breaker through its public API, with a manual clock: state machine, rate mode,
//! manual overrides, events, logs, the async API and the tower layer; then property tests
//! against a reference model and under concurrency.

// Helpers outside #[test] functions unwrap too: in a test, a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use portico_resilience::breaker::{
    BreakerConfig, BreakerConfigBuilder, CircuitBreaker, CircuitBreakerLayer, State,
    TransitionReason,
};
use portico_resilience::{BoxError, CircuitOpen, ManualClock, ResilienceError};
use proptest::prelude::*;
use tokio::sync::broadcast::error::TryRecvError;
use tower::{Layer, ServiceExt, service_fn};

mod support;
use support::logs_of;

const SEC: Duration = Duration::from_secs(1);

fn breaker(clock: &ManualClock, config: BreakerConfigBuilder) -> CircuitBreaker {
    CircuitBreaker::new("Chroma Server", config.build().unwrap(), clock.shared())
}

fn seed(threshold: u32, recovery_secs: u64, trials: u32) -> BreakerConfigBuilder {
    BreakerConfig::builder()
        .failure_threshold(threshold)
        .recovery_timeout(Duration::from_secs(recovery_secs))
        .half_open_max_calls(trials)
}

fn fail(b: &CircuitBreaker, times: usize) {
    for _ in 0..times {
        b.try_acquire().unwrap().failure();
    }
}

fn succeed(b: &CircuitBreaker, times: usize) {
    for _ in 0..times {
        b.try_acquire().unwrap().success();
    }
}

fn drain(
    rx: &mut tokio::sync::broadcast::Receiver<portico_resilience::breaker::StateChange>,
) -> Vec<(State, State)> {
    let mut seen = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(change) => seen.push((change.from, change.to)),
            Err(TryRecvError::Empty) => return seen,
            Err(e) => panic!("event stream broken: {e}"),
        }
    }
}

// === consecutive mode ===

#[test]
fn opens_after_five_consecutive_failures() {
    let clock = ManualClock::new();
    let b = breaker(&clock, BreakerConfig::builder());
    fail(&b, 4);
    assert_eq!(b.state(), State::Closed);
    fail(&b, 1);
    assert_eq!(b.state(), State::Open);
    let refused = b.try_acquire().unwrap_err();
    assert_eq!(&*refused.name, "Chroma Server");
    assert_eq!(refused.retry_after, 60 * SEC);
    let snap = b.snapshot();
    assert_eq!((snap.state.as_str(), snap.failure_count), ("open", 5));
    assert!(snap.last_failure.is_some());
}

#[test]
fn success_in_closed_resets_the_consecutive_count() {
    let clock = ManualClock::new();
    let b = breaker(&clock, seed(3, 10, 1));
    fail(&b, 2);
    succeed(&b, 1);
    fail(&b, 2);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.snapshot().failure_count, 2);
    fail(&b, 1);
    assert_eq!(b.state(), State::Open);
}

#[test]
fn open_circuit_reports_time_left_until_recovery() {
    let clock = ManualClock::new();
    let b = breaker(&clock, seed(1, 60, 1));
    fail(&b, 1);
    clock.advance(20 * SEC);
    assert_eq!(b.try_acquire().unwrap_err().retry_after, 40 * SEC);
    clock.advance(Duration::from_millis(39_999));
    assert_eq!(
        b.try_acquire().unwrap_err().retry_after,
        Duration::from_millis(1)
    );
}

#[test]
fn recovery_timeout_moves_to_half_open_when_observed() {
    let clock = ManualClock::new();
    let b = breaker(&clock, seed(1, 60, 1));
    let mut rx = b.subscribe();
    fail(&b, 1);
    clock.advance(60 * SEC);
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.snapshot().state, State::HalfOpen);
    assert_eq!(
        drain(&mut rx),
        [(State::Closed, State::Open), (State::Open, State::HalfOpen)]
    );
}

#[test]
fn half_open_admits_only_configured_trials() {
    let clock = ManualClock::new();
    let b = breaker(&clock, seed(1, 10, 2));
    fail(&b, 1);
    clock.advance(10 * SEC);
    let first = b.try_acquire().unwrap();
    let second = b.try_acquire().unwrap();
    assert!(first.is_trial() && second.is_trial());
    let refused = b.try_acquire().unwrap_err();
    assert_eq!(refused.retry_after, Duration::ZERO);
    first.success();
    // The first trial's slot stays used: two trials in all, not two at a time.
    assert!(b.try_acquire().is_err());
    assert_eq!(b.state(), State::HalfOpen);
    second.success();
    assert_eq!(b.state(), State::Closed);
    assert!(!b.try_acquire().unwrap().is_trial());
}

#[test]
fn dropped_trial_permit_frees_its_slot_without_counting() {
    let clock = ManualClock::new();
    let b = breaker(&clock, seed(1, 10, 1));
    fail(&b, 1);
    clock.advance(10 * SEC);
    drop(b.try_acquire().unwrap());
    assert_eq!(b.state(), State::HalfOpen);
    succeed(&b, 1);
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn failure_in_half_open_reopens_and_restarts_timer() {
    let clock = ManualClock::new();
    let b = breaker(&clock, seed(5, 60, 2));
    fail(&b, 5);
    clock.advance(60 * SEC);
    let other = b.try_acquire().unwrap();
    fail(&b, 1);
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.snapshot().failure_count, 6);
    // The other trial's late success belongs to the half-open period that ended.
    other.success();
    assert_eq!(b.state(), State::Open);
    clock.advance(59 * SEC);
    assert_eq!(b.try_acquire().unwrap_err().retry_after, SEC);
    clock.advance(SEC);
    succeed(&b, 2);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.snapshot().failure_count, 0);
}

// === rate mode ===

fn rate(threshold: u32, window: u32, minimum: u32) -> BreakerConfigBuilder {
    BreakerConfig::builder()
        .failure_rate_threshold(threshold)
        .count_window(window)
        .minimum_calls(minimum)
        .recovery_timeout(10 * SEC)
}

#[test]
fn failure_rate_window_opens_after_minimum_calls() {
    let clock = ManualClock::new();
    let b = breaker(&clock, rate(50, 10, 4));
    let mut rx = b.subscribe();
    fail(&b, 3);
    assert_eq!(
        b.state(),
        State::Closed,
        "3 calls are below the minimum of 4"
    );
    succeed(&b, 1);
    assert_eq!(b.state(), State::Open);
    let change = rx.try_recv().unwrap();
    assert_eq!(change.reason.to_string(), "failure rate 75.0% >= 50%");
}

#[test]
fn failure_rate_below_threshold_keeps_the_circuit_closed() {
    let clock = ManualClock::new();
    let b = breaker(&clock, rate(50, 4, 4));
    for _ in 0..10 {
        fail(&b, 1);
        succeed(&b, 3);
    }
    assert_eq!(
        b.state(),
        State::Closed,
        "never more than 1 of the last 4 failed"
    );
    assert_eq!(
        b.snapshot().failure_count,
        1,
        "failures in the last 4 calls"
    );
}

#[test]
fn time_window_forgets_failures_older_than_the_window() {
    let clock = ManualClock::new();
    let config = BreakerConfig::builder()
        .failure_rate_threshold(50)
        .time_window(10 * SEC)
        .minimum_calls(3);
    let b = breaker(&clock, config);
    fail(&b, 2);
    clock.advance(11 * SEC);
    assert_eq!(b.snapshot().failure_count, 0);
    succeed(&b, 2);
    fail(&b, 1);
    assert_eq!(
        b.state(),
        State::Closed,
        "1 of 3 calls failed in the window"
    );
    fail(&b, 1);
    assert_eq!(b.state(), State::Open, "2 of 4");
}

#[test]
fn slow_calls_open_the_circuit() {
    let clock = ManualClock::new();
    let config = BreakerConfig::builder()
        .slow_call_rate_threshold(50)
        .slow_call_duration(2 * SEC)
        .count_window(4)
        .minimum_calls(2);
    let b = breaker(&clock, config);
    let mut rx = b.subscribe();
    let quick = b.try_acquire().unwrap();
    clock.advance(SEC);
    quick.success();
    let slow = b.try_acquire().unwrap();
    clock.advance(2 * SEC);
    slow.success();
    assert_eq!(b.state(), State::Open);
    let reason = rx.try_recv().unwrap().reason;
    assert!(matches!(reason, TransitionReason::SlowCallRate(r) if r.part == 1 && r.calls == 2));
}

#[test]
fn rate_mode_half_open_decides_on_the_trials_rate() {
    let clock = ManualClock::new();
    let b = breaker(&clock, rate(50, 4, 4).half_open_max_calls(4));
    fail(&b, 4);
    clock.advance(10 * SEC);
    fail(&b, 1);
    assert_eq!(
        b.state(),
        State::HalfOpen,
        "one failed trial does not decide"
    );
    succeed(&b, 2);
    fail(&b, 1);
    assert_eq!(b.state(), State::Open, "2 of 4 trials failed");
    clock.advance(10 * SEC);
    fail(&b, 1);
    succeed(&b, 3);
    assert_eq!(b.state(), State::Closed, "1 of 4 trials failed");
}

// === manual overrides and events ===

#[test]
fn forced_open_rejects_until_reset() {
    let clock = ManualClock::new();
    let b = breaker(&clock, seed(5, 30, 1));
    b.force_open();
    assert_eq!(b.try_acquire().unwrap_err().retry_after, 30 * SEC);
    clock.advance(3600 * SEC);
    assert_eq!(b.state(), State::ForcedOpen);
    assert!(b.try_acquire().is_err());
    b.reset();
    assert_eq!(b.state(), State::Closed);
    succeed(&b, 1);
}

#[test]
fn forced_closed_admits_everything_and_counts_nothing() {
    let clock = ManualClock::new();
    let b = breaker(&clock, seed(1, 30, 1));
    b.force_closed();
    fail(&b, 10);
    assert_eq!(b.state(), State::ForcedClosed);
    assert_eq!(b.snapshot().state.as_str(), "forced_closed");
    b.reset();
    fail(&b, 1);
    assert_eq!(b.state(), State::Open);
}

#[test]
fn reset_clears_counts() {
    let clock = ManualClock::new();
    let b = breaker(&clock, seed(3, 30, 1));
    fail(&b, 2);
    b.reset();
    assert_eq!(b.snapshot().failure_count, 0);
    fail(&b, 2);
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn one_event_per_transition() {
    let clock = ManualClock::new();
    let b = breaker(&clock, seed(2, 10, 1));
    let mut rx = b.subscribe();
    fail(&b, 2); // closed -> open
    b.try_acquire().unwrap_err();
    b.state();
    clock.advance(10 * SEC);
    b.state(); // open -> half_open
    b.state();
    fail(&b, 1); // half_open -> open
    clock.advance(10 * SEC);
    succeed(&b, 1); // open -> half_open -> closed
    b.reset(); // already closed: no event
    b.force_open();
    b.force_open(); // already forced open: no event
    b.force_closed();
    b.reset();
    use State::*;
    assert_eq!(
        drain(&mut rx),
        [
            (Closed, Open),
            (Open, HalfOpen),
            (HalfOpen, Open),
            (Open, HalfOpen),
            (HalfOpen, Closed),
            (Closed, ForcedOpen),
            (ForcedOpen, ForcedClosed),
            (ForcedClosed, Closed),
        ]
    );
}

#[test]
fn snapshot_carries_status_fields() {
    let clock = ManualClock::new();
    let b = breaker(&clock, seed(1, 10, 1));
    let made = b.snapshot();
    assert_eq!(
        (&*made.name, made.state, made.last_failure),
        ("Chroma Server", State::Closed, None)
    );
    clock.advance(5 * SEC);
    fail(&b, 1);
    let open = b.snapshot();
    assert_eq!(open.last_state_change, made.last_state_change + 5 * SEC);
    assert_eq!(open.last_failure, Some(open.last_state_change));
}

// === logs ===

#[test]
fn logs_use_seed_001_text() {
    let logs = logs_of(|| {
        let clock = ManualClock::new();
        let b = breaker(&clock, BreakerConfig::builder());
        fail(&b, 5);
        b.try_acquire().unwrap_err();
        clock.advance(60 * SEC);
        succeed(&b, 1);
    });
    for line in [
        "WARN",
        "[Chroma Server] Circuit breaker OPEN (threshold reached: 5/5)",
        "[Chroma Server] Circuit breaker OPEN - rejecting request",
        "[Chroma Server] Circuit breaker entering HALF_OPEN state",
        "[Chroma Server] Circuit breaker CLOSED (service recovered)",
        "upstream=\"Chroma Server\"",
    ] {
        assert!(logs.contains(line), "missing {line:?} in:\n{logs}");
    }
    let rate_logs = logs_of(|| {
        let b = breaker(&ManualClock::new(), rate(50, 5, 5));
        fail(&b, 3);
        succeed(&b, 2);
    });
    assert!(rate_logs.contains("[Chroma Server] Circuit breaker OPEN (failure rate 60.0% >= 50%)"));
}

// === async API ===

#[tokio::test]
async fn call_counts_errors_and_refuses_when_open() {
    let clock = ManualClock::new();
    let b = breaker(&clock, seed(2, 30, 1));
    for _ in 0..2 {
        let err = b
            .call(|| async { Err::<(), _>(io::Error::other("down")) })
            .await
            .unwrap_err();
        assert!(matches!(err, ResilienceError::Inner(_)));
    }
    let refused = b
        .call(|| async { Ok::<_, io::Error>(()) })
        .await
        .unwrap_err();
    assert_eq!(refused.retry_after(), Some(30 * SEC));
    assert!(matches!(refused, ResilienceError::CircuitOpen(_)));
}

#[tokio::test]
async fn call_with_predicate_counts_ok_responses_as_failures() {
    let clock = ManualClock::new();
    let b = breaker(&clock, seed(2, 30, 1));
    let is_5xx = |r: &Result<u16, io::Error>| matches!(r, Ok(s) if *s >= 500) || r.is_err();
    for _ in 0..2 {
        let status = b.call_with(|| async { Ok(503) }, is_5xx).await.unwrap();
        assert_eq!(status, 503, "the response is still returned");
    }
    assert_eq!(b.state(), State::Open);
}

#[tokio::test]
async fn cancelled_call_frees_its_trial_slot() {
    let clock = ManualClock::new();
    let b = breaker(&clock, seed(1, 10, 1));
    fail(&b, 1);
    clock.advance(10 * SEC);
    {
        let hung = b.call(std::future::pending::<Result<(), io::Error>>);
        tokio::pin!(hung);
        tokio::select! {
            biased;
            _ = &mut hung => unreachable!("pending never completes"),
            _ = std::future::ready(()) => {}
        }
        assert!(
            b.try_acquire().is_err(),
            "the hung call holds the only slot"
        );
    }
    assert!(b.try_acquire().is_ok());
}

// === tower ===

#[tokio::test]
async fn tower_layer_uses_the_classifier_and_refuses_with_circuit_open() {
    let clock = ManualClock::new();
    let b = breaker(&clock, seed(2, 30, 1));
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let inner = service_fn(move |_req: ()| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok::<u16, Infallible>(500) }
    });
    let layer = CircuitBreakerLayer::new(b.clone())
        .with_classifier(|r: &Result<u16, Infallible>| matches!(r, Ok(s) if *s >= 500));
    let svc = layer.layer(inner);
    for _ in 0..2 {
        assert_eq!(svc.clone().oneshot(()).await.unwrap(), 500);
    }
    let err: BoxError = svc.clone().oneshot(()).await.unwrap_err();
    let open = err.downcast_ref::<CircuitOpen>().expect("a CircuitOpen");
    assert_eq!(open.retry_after, 30 * SEC);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "refused calls never reach the service"
    );
}

#[tokio::test]
async fn tower_layer_boxes_inner_errors_and_counts_them() {
    let clock = ManualClock::new();
    let b = breaker(&clock, seed(1, 30, 1));
    let inner = service_fn(|_req: ()| async { Err::<(), _>(io::Error::other("refused")) });
    let err = CircuitBreakerLayer::new(b.clone())
        .layer(inner)
        .oneshot(())
        .await
        .unwrap_err();
    assert!(err.downcast_ref::<io::Error>().is_some());
    assert_eq!(b.state(), State::Open);
}

// === properties ===

#[derive(Debug, Clone)]
enum Op {
    Success,
    Failure,
    AcquireAndDrop,
    Advance(u64),
    ForceOpen,
    ForceClosed,
    Reset,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Success),
        4 => Just(Op::Failure),
        1 => Just(Op::AcquireAndDrop),
        3 => (0u64..25).prop_map(Op::Advance),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::ForceClosed),
        1 => Just(Op::Reset),
    ]
}

/// The consecutive-mode state machine, written as plainly as possible.
struct Model {
    threshold: u32,
    recovery: u64,
    trials: u32,
    now: u64,
    state: State,
    failures: u32,
    open_until: u64,
    trial_successes: u32,
    transitions: Vec<(State, State)>,
}

impl Model {
    fn go(&mut self, to: State) {
        self.transitions.push((self.state, to));
        self.state = to;
        self.trial_successes = 0;
        match to {
            State::Open => self.open_until = self.now + self.recovery,
            State::Closed => self.failures = 0,
            _ => {}
        }
    }

    fn observe(&mut self) {
        if self.state == State::Open && self.now >= self.open_until {
            self.go(State::HalfOpen);
        }
    }

    /// Returns whether the call is admitted.
    fn call(&mut self, outcome: Option<bool>) -> bool {
        self.observe();
        let admitted = !matches!(self.state, State::Open | State::ForcedOpen);
        let Some(failed) = outcome else {
            return admitted;
        };
        match (self.state, failed) {
            (State::Closed, true) => {
                self.failures += 1;
                if self.failures >= self.threshold {
                    self.go(State::Open);
                }
            }
            (State::Closed, false) => self.failures = 0,
            (State::HalfOpen, true) => self.go(State::Open),
            (State::HalfOpen, false) => {
                self.trial_successes += 1;
                if self.trial_successes == self.trials {
                    self.go(State::Closed);
                }
            }
            _ => {}
        }
        admitted
    }

    fn set(&mut self, to: State) {
        if self.state != to {
            self.go(to);
        } else if to == State::Closed {
            self.failures = 0;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn consecutive_mode_matches_the_reference_model(
        threshold in 1u32..6,
        recovery in 1u64..20,
        trials in 1u32..4,
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let clock = ManualClock::new();
        let b = breaker(&clock, seed(threshold, recovery, trials));
        let mut rx = b.subscribe();
        let mut model = Model {
            threshold, recovery, trials, now: 0, state: State::Closed, failures: 0,
            open_until: 0, trial_successes: 0, transitions: Vec::new(),
        };
        for op in ops {
            match op {
                Op::Success | Op::Failure | Op::AcquireAndDrop => {
                    let outcome = match op {
                        Op::Success => Some(false),
                        Op::Failure => Some(true),
                        _ => None,
                    };
                    let expected = model.call(outcome);
                    let permit = b.try_acquire();
                    prop_assert_eq!(permit.is_ok(), expected, "admission after {:?}", op);
                    match (permit, outcome) {
                        (Ok(p), Some(failed)) => p.record(failed),
                        (Ok(p), None) => drop(p),
                        (Err(_), _) => {}
                    }
                }
                Op::Advance(secs) => {
                    clock.advance(Duration::from_secs(secs));
                    model.now += secs;
                }
                Op::ForceOpen => { b.force_open(); model.set(State::ForcedOpen); }
                Op::ForceClosed => { b.force_closed(); model.set(State::ForcedClosed); }
                Op::Reset => { b.reset(); model.set(State::Closed); }
            }
            model.observe();
            prop_assert_eq!(b.state(), model.state);
            if model.state == State::Closed {
                prop_assert_eq!(b.snapshot().failure_count, model.failures);
            }
        }
        prop_assert_eq!(drain(&mut rx), model.transitions);
    }
}

#[derive(Debug, Clone, Copy)]
enum TrialEnd {
    Success,
    Failure,
    Drop,
}

fn trial_end(with_drops: bool) -> impl Strategy<Value = TrialEnd> {
    let drop_weight = if with_drops { 2 } else { 0 };
    prop_oneof![
        3 => Just(TrialEnd::Success),
        1 => Just(TrialEnd::Failure),
        drop_weight => Just(TrialEnd::Drop),
    ]
}

/// Several threads race for trial slots of one half-open period. Returns the most trial
/// calls seen in flight at once and the number of trial permits issued in all.
fn race_half_open(
    max: u32,
    plans: Vec<Vec<(TrialEnd, u16)>>,
    b: &CircuitBreaker,
) -> (usize, usize) {
    let in_flight = AtomicUsize::new(0);
    let peak = AtomicUsize::new(0);
    let issued = AtomicUsize::new(0);
    let barrier = Barrier::new(plans.len());
    std::thread::scope(|s| {
        for plan in plans {
            let (in_flight, peak, issued, barrier) = (&in_flight, &peak, &issued, &barrier);
            s.spawn(move || {
                barrier.wait();
                for (end, spins) in plan {
                    let Ok(permit) = b.try_acquire() else {
                        continue;
                    };
                    if !permit.is_trial() {
                        permit.success();
                        continue;
                    }
                    issued.fetch_add(1, Ordering::SeqCst);
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    for _ in 0..spins {
                        std::thread::yield_now();
                    }
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    match end {
                        TrialEnd::Success => permit.success(),
                        TrialEnd::Failure => permit.failure(),
                        TrialEnd::Drop => drop(permit),
                    }
                }
            });
        }
    });
    assert!(max >= 1);
    (peak.into_inner(), issued.into_inner())
}

fn half_open_breaker(clock: &ManualClock, max: u32) -> CircuitBreaker {
    let b = breaker(clock, seed(1, 10, max));
    fail(&b, 1);
    clock.advance(10 * SEC);
    b
}

/// Events must chain (each starts where the previous ended) and end in the final state.
fn assert_events_chain(
    b: &CircuitBreaker,
    mut rx: tokio::sync::broadcast::Receiver<portico_resilience::breaker::StateChange>,
) {
    let events = drain(&mut rx);
    let mut state = State::Open;
    for (from, to) in &events {
        assert_eq!(*from, state, "events {events:?}");
        assert_ne!(from, to);
        state = *to;
    }
    assert_eq!(state, b.state(), "events {events:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn half_open_never_has_more_trials_in_flight_than_allowed(
        max in 1u32..4,
        plans in prop::collection::vec(
            prop::collection::vec((trial_end(true), 0u16..20), 1..40), 2..5),
    ) {
        let clock = ManualClock::new();
        let b = half_open_breaker(&clock, max);
        let rx = b.subscribe();
        let (peak, _) = race_half_open(max, plans, &b);
        prop_assert!(peak <= max as usize, "{} trials in flight, {} allowed", peak, max);
        assert_events_chain(&b, rx);
    }

    #[test]
    fn half_open_issues_at_most_the_allowed_trials_when_all_report(
        max in 1u32..4,
        plans in prop::collection::vec(
            prop::collection::vec((trial_end(false), 0u16..20), 1..40), 2..5),
    ) {
        let clock = ManualClock::new();
        let b = half_open_breaker(&clock, max);
        let rx = b.subscribe();
        let (_, issued) = race_half_open(max, plans, &b);
        prop_assert!(issued <= max as usize, "{} trials issued, {} allowed", issued, max);
        assert_events_chain(&b, rx);
    }
}
