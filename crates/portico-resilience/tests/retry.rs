//! Retry: seed 001's backoff, jitter bounds, `Retry-After` hints, the retry budget, the
//! observer's view of a call, the logging observer and the tower layer — on a manual clock.

use std::fmt::Debug;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use portico_resilience::retry::{
    self, Attempt, Backoff, GiveUp, HumanDelay, Jitter, LogObserver, Random, RetryBudget,
    RetryDecision, RetryLayer, RetryObserver, RetryPolicy,
};
use portico_resilience::timeout::TimeoutLayer;
use portico_resilience::{BoxError, ManualClock, SharedClock};
use proptest::prelude::*;
use tower::{Service, ServiceBuilder, ServiceExt as _};

mod support;
use support::drive;

const STEP: Duration = Duration::from_millis(250);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Writes down everything the runner reports.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
}

impl Recorder {
    fn push(&self, event: String) {
        self.events.lock().expect("lock").push(event);
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().expect("lock").clone()
    }

    fn give_ups(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter(|e| e.starts_with("give up"))
            .collect()
    }
}

impl<T: Debug, E: Debug> RetryObserver<T, E> for Recorder {
    fn on_attempt(&self, attempt: Attempt) {
        self.push(format!("attempt {attempt}"));
    }

    fn on_outcome(&self, attempt: Attempt, outcome: &Result<T, E>) {
        self.push(format!("outcome {attempt}: {outcome:?}"));
    }

    fn on_retry(&self, attempt: Attempt, delay: Duration) {
        self.push(format!("retry after {attempt} in {}", HumanDelay(delay)));
    }

    fn on_give_up(&self, attempt: Attempt, reason: GiveUp) {
        self.push(format!("give up after {attempt}: {reason:?}"));
    }
}

/// Runs `policy` over an operation that answers `outcomes` in turn (the last one repeats),
/// returning the result and the clock time at which each attempt started.
async fn run_scripted(
    policy: &RetryPolicy,
    clock: &ManualClock,
    classify: impl Fn(&Result<u32, &'static str>) -> RetryDecision,
    observer: &Recorder,
    outcomes: &[Result<u32, &'static str>],
) -> (Result<u32, &'static str>, Vec<Duration>) {
    let starts = Mutex::new(Vec::new());
    let shared = clock.shared();
    let result = drive(
        clock,
        STEP,
        policy.run(&shared, classify, observer, || {
            let mut starts = starts.lock().expect("lock");
            starts.push(clock.elapsed());
            let outcome = outcomes[(starts.len() - 1).min(outcomes.len() - 1)];
            async move { outcome }
        }),
    )
    .await;
    (result, starts.into_inner().expect("lock"))
}

// === backoff ===

#[test]
fn seed_001_backoff_is_1s_2s_4s() {
    let delays: Vec<_> = Backoff::default().delays().take(3).collect();
    assert_eq!(delays, [secs(1), secs(2), secs(4)]);
}

#[test]
fn backoff_is_capped_at_max() {
    let backoff = Backoff::exponential(secs(1), 2.0, secs(5)).unwrap();
    let delays: Vec<_> = backoff.delays().take(6).collect();
    assert_eq!(
        delays,
        [secs(1), secs(2), secs(4), secs(5), secs(5), secs(5)]
    );
    assert_eq!(backoff.exponential_delay(u32::MAX), secs(5));
}

#[test]
fn invalid_backoff_settings_name_their_field() {
    let field = |r: Result<Backoff, portico_resilience::ConfigError>| r.unwrap_err().field;
    assert_eq!(
        field(Backoff::exponential(Duration::ZERO, 2.0, secs(1))),
        "backoff_initial"
    );
    assert_eq!(
        field(Backoff::exponential(secs(1), 0.5, secs(1))),
        "backoff_multiplier"
    );
    assert_eq!(
        field(Backoff::exponential(secs(1), f64::NAN, secs(1))),
        "backoff_multiplier"
    );
    assert_eq!(
        field(Backoff::exponential(secs(2), 2.0, secs(1))),
        "backoff_max"
    );
}

#[test]
fn full_jitter_draws_a_share_of_the_exponential_delay() {
    let draws = Mutex::new(vec![0.0, 0.5, 0.25].into_iter());
    let backoff = Backoff::default()
        .with_jitter(Jitter::Full)
        .with_random(Random::from_fn(move || {
            draws.lock().expect("lock").next().unwrap()
        }));
    let delays: Vec<_> = backoff.delays().take(3).collect();
    assert_eq!(delays, [Duration::ZERO, secs(1), secs(1)]);
}

proptest! {
    #[test]
    fn full_jitter_stays_within_bounds(
        initial_ms in 1u64..5_000,
        multiplier in 1.0f64..4.0,
        cap_factor in 1u64..100,
    ) {
        let initial = Duration::from_millis(initial_ms);
        let backoff = Backoff::exponential(initial, multiplier, initial * cap_factor as u32)
            .unwrap()
            .with_jitter(Jitter::Full);
        for (n, delay) in (1..).zip(backoff.delays().take(20)) {
            prop_assert!(delay <= backoff.exponential_delay(n), "retry {n}: {delay:?}");
            prop_assert!(delay <= backoff.max());
        }
    }

    #[test]
    fn decorrelated_jitter_is_capped(
        initial_ms in 1u64..2_000,
        cap_factor in 1u32..50,
        draws in proptest::collection::vec(0.0f64..1.0, 1..40),
    ) {
        let initial = Duration::from_millis(initial_ms);
        let cap = initial * cap_factor;
        let n = draws.len();
        let mut source = draws.into_iter();
        let backoff = Backoff::exponential(initial, 2.0, cap)
            .unwrap()
            .with_jitter(Jitter::Decorrelated)
            .with_random(Random::from_fn(move || source.next().unwrap_or(0.0)));
        let mut previous = initial;
        for delay in backoff.delays().take(n) {
            prop_assert!(delay >= initial, "{delay:?} below {initial:?}");
            prop_assert!(delay <= cap, "{delay:?} above cap {cap:?}");
            prop_assert!(delay <= previous * 3, "{delay:?} above 3 x {previous:?}");
            previous = delay;
        }
    }
}

// === policy ===

#[test]
fn invalid_policy_settings_name_their_field() {
    let err = RetryPolicy::builder().max_attempts(0).build().unwrap_err();
    assert_eq!(err.field, "max_attempts");
    let err = RetryPolicy::builder()
        .max_retry_after(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err.field, "max_retry_after");
}

#[test]
fn upstream_preset_sets_the_attempts() {
    let billing = portico_resilience::Preset::Billing.policy();
    assert_eq!(RetryPolicy::for_upstream(&billing).max_attempts().get(), 2);
}

#[tokio::test]
async fn seed_001_run_waits_1s_then_2s_and_returns_the_last_error() {
    let clock = ManualClock::new();
    let policy = RetryPolicy::builder().max_attempts(3).build().unwrap();
    let recorder = Recorder::default();
    let outcomes = [Err("500 a"), Err("500 b"), Err("500 c")];
    let (result, starts) =
        run_scripted(&policy, &clock, retry::on_error, &recorder, &outcomes).await;
    assert_eq!(result, Err("500 c"));
    assert_eq!(starts, [secs(0), secs(1), secs(3)]);
    assert_eq!(clock.elapsed(), secs(3));
}

#[tokio::test]
async fn success_after_a_failure_stops_retrying() {
    let clock = ManualClock::new();
    let policy = RetryPolicy::builder().max_attempts(3).build().unwrap();
    let recorder = Recorder::default();
    let (result, starts) = run_scripted(
        &policy,
        &clock,
        retry::on_error,
        &recorder,
        &[Err("refused"), Ok(7)],
    )
    .await;
    assert_eq!(result, Ok(7));
    assert_eq!(starts, [secs(0), secs(1)]);
    assert!(recorder.give_ups().is_empty());
}

#[tokio::test]
async fn non_retryable_error_is_returned_at_once() {
    let clock = ManualClock::new();
    let policy = RetryPolicy::builder().max_attempts(3).build().unwrap();
    let recorder = Recorder::default();
    let classify = |outcome: &Result<u32, &str>| match outcome {
        Err("400") => RetryDecision::DontRetry,
        other => retry::on_error(other),
    };
    let (result, starts) = run_scripted(&policy, &clock, classify, &recorder, &[Err("400")]).await;
    assert_eq!(result, Err("400"));
    assert_eq!(starts, [secs(0)]);
    assert_eq!(recorder.give_ups(), ["give up after 1/3: NotRetryable"]);
}

#[tokio::test]
async fn retry_after_hint_overrides_shorter_backoff() {
    let clock = ManualClock::new();
    let policy = RetryPolicy::builder().max_attempts(2).build().unwrap();
    let recorder = Recorder::default();
    let classify = |outcome: &Result<u32, &str>| match outcome {
        Err(_) => RetryDecision::RetryAfter(secs(5)),
        Ok(_) => RetryDecision::DontRetry,
    };
    let (result, starts) =
        run_scripted(&policy, &clock, classify, &recorder, &[Err("503"), Ok(1)]).await;
    assert_eq!(result, Ok(1));
    assert_eq!(starts, [secs(0), secs(5)]);
}

#[tokio::test]
async fn shorter_retry_after_hint_keeps_the_backoff() {
    let clock = ManualClock::new();
    let policy = RetryPolicy::builder().max_attempts(2).build().unwrap();
    let recorder = Recorder::default();
    let classify = |outcome: &Result<u32, &str>| match outcome {
        Err(_) => RetryDecision::RetryAfter(Duration::from_millis(250)),
        Ok(_) => RetryDecision::DontRetry,
    };
    let (_, starts) =
        run_scripted(&policy, &clock, classify, &recorder, &[Err("503"), Ok(1)]).await;
    assert_eq!(starts, [secs(0), secs(1)]);
}

#[tokio::test]
async fn retry_after_beyond_max_is_not_retried() {
    let clock = ManualClock::new();
    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .max_retry_after(secs(10))
        .build()
        .unwrap();
    let recorder = Recorder::default();
    let classify = |_: &Result<u32, &str>| RetryDecision::RetryAfter(secs(30));
    let (result, starts) = run_scripted(&policy, &clock, classify, &recorder, &[Err("503")]).await;
    assert_eq!(result, Err("503"));
    assert_eq!(starts, [secs(0)]);
    assert_eq!(
        recorder.give_ups(),
        ["give up after 1/3: RetryAfterTooLong(30s)"]
    );
}

#[tokio::test]
async fn observer_sees_attempts_in_order() {
    let clock = ManualClock::new();
    let policy = RetryPolicy::builder().max_attempts(3).build().unwrap();
    let recorder = Recorder::default();
    let (result, _) =
        run_scripted(&policy, &clock, retry::on_error, &recorder, &[Err("500")]).await;
    assert_eq!(result, Err("500"));
    assert_eq!(
        recorder.events(),
        [
            "attempt 1/3",
            "outcome 1/3: Err(\"500\")",
            "retry after 1/3 in 1s",
            "attempt 2/3",
            "outcome 2/3: Err(\"500\")",
            "retry after 2/3 in 2s",
            "attempt 3/3",
            "outcome 3/3: Err(\"500\")",
            "give up after 3/3: Exhausted",
        ]
    );
}

// === budget ===

fn budget(clock: &ManualClock) -> Arc<RetryBudget> {
    Arc::new(RetryBudget::new(&clock.shared(), secs(10), 1, 0.2).expect("valid budget"))
}

#[test]
fn invalid_budget_settings_name_their_field() {
    let clock = ManualClock::new().shared();
    assert_eq!(
        RetryBudget::new(&clock, Duration::ZERO, 1, 0.2)
            .unwrap_err()
            .field,
        "ttl"
    );
    assert_eq!(
        RetryBudget::new(&clock, secs(10), 1, -0.1)
            .unwrap_err()
            .field,
        "ratio"
    );
    assert_eq!(
        RetryBudget::new(&clock, secs(10), 1, f64::INFINITY)
            .unwrap_err()
            .field,
        "ratio"
    );
}

#[test]
fn budget_allows_twenty_percent_of_requests_plus_the_floor() {
    let clock = ManualClock::new();
    let budget = budget(&clock);
    assert_eq!(budget.available(), 10, "floor: 1/s over 10s");
    for _ in 0..100 {
        budget.deposit();
    }
    let retries = std::iter::from_fn(|| budget.try_withdraw().then_some(())).count();
    assert_eq!(retries, 20 + 10);
}

#[tokio::test]
async fn budget_limits_retries_to_twenty_percent() {
    let clock = ManualClock::new();
    let budget = budget(&clock);
    let step = Duration::from_millis(1);
    let backoff = Backoff::exponential(step, 1.0, step).unwrap();
    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .backoff(backoff)
        .budget(budget.clone())
        .build()
        .unwrap();
    let shared = clock.shared();
    let attempts = AtomicU32::new(0);
    let recorder = Recorder::default();
    for _ in 0..100 {
        let call = policy.run(&shared, retry::on_error, &recorder, || {
            attempts.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>("500") }
        });
        assert_eq!(drive(&clock, step, call).await, Err("500"));
    }
    let retries = attempts.load(Ordering::SeqCst) - 100;
    assert_eq!(
        retries,
        20 + 10,
        "20% of 100 requests plus the 10-retry floor"
    );
    let budget_refusals = recorder
        .give_ups()
        .iter()
        .filter(|e| e.ends_with("BudgetExhausted"))
        .count();
    assert!(
        budget_refusals >= 80,
        "{budget_refusals} calls stopped by the budget"
    );
    assert!(clock.elapsed() < secs(1), "all within one window");
}

#[test]
fn budget_refills_as_window_slides() {
    let clock = ManualClock::new();
    let budget = budget(&clock);
    for _ in 0..100 {
        budget.deposit();
    }
    while budget.try_withdraw() {}
    clock.advance(secs(5));
    assert!(!budget.try_withdraw(), "still inside the window");
    clock.advance(secs(6));
    assert_eq!(
        budget.available(),
        10,
        "old deposits and withdrawals have left the window"
    );
    let retries = std::iter::from_fn(|| budget.try_withdraw().then_some(())).count();
    assert_eq!(retries, 10);
}

#[tokio::test]
async fn empty_budget_skips_the_retry_and_returns_the_last_outcome() {
    let clock = ManualClock::new();
    let empty = Arc::new(RetryBudget::new(&clock.shared(), secs(10), 0, 0.0).unwrap());
    let policy = RetryPolicy::builder().budget(empty).build().unwrap();
    let recorder = Recorder::default();
    let (result, starts) = run_scripted(
        &policy,
        &clock,
        retry::on_error,
        &recorder,
        &[Err("500"), Ok(1)],
    )
    .await;
    assert_eq!(result, Err("500"));
    assert_eq!(starts, [secs(0)]);
    assert_eq!(recorder.give_ups(), ["give up after 1/3: BudgetExhausted"]);
}

// === logging ===

#[test]
fn delay_is_written_like_seed_001() {
    let shown = |d: Duration| HumanDelay(d).to_string();
    assert_eq!(shown(secs(1)), "1s");
    assert_eq!(shown(secs(30)), "30s");
    assert_eq!(shown(Duration::from_millis(250)), "250ms");
    assert_eq!(shown(Duration::from_millis(1500)), "1.5s");
    assert_eq!(shown(Duration::from_millis(2250)), "2.25s");
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn log_observer_writes_seed_001_lines() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .without_time()
        .with_level(false)
        .with_target(false)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let clock = ManualClock::new();
    let shared = clock.shared();
    let policy = RetryPolicy::builder().max_attempts(3).build().unwrap();
    let log = LogObserver::new("Chroma Server");
    let call = policy.run(&shared, retry::on_error, &log, || async {
        Err::<(), _>("500")
    });
    drive(&clock, STEP, call).await.unwrap_err();

    let text = String::from_utf8(captured.0.lock().expect("lock").clone()).unwrap();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        [
            "[Chroma Server] Retrying in 1s...",
            "[Chroma Server] Retrying in 2s...",
            "[Chroma Server] ✗ All 3 retry attempts failed",
        ]
    );
}

// === tower ===

/// A service that must be polled ready before each call; clones start unready, as a
/// clone of a tower service holds no reserved capacity. Fails `failures` times, then echoes.
struct Flaky {
    ready: bool,
    calls: Arc<AtomicU32>,
    failures: u32,
}

impl Clone for Flaky {
    fn clone(&self) -> Self {
        Self {
            ready: false,
            calls: self.calls.clone(),
            failures: self.failures,
        }
    }
}

impl Service<u32> for Flaky {
    type Response = u32;
    type Error = BoxError;
    type Future = std::future::Ready<Result<u32, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.ready {
            Poll::Ready(Ok(()))
        } else {
            self.ready = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    fn call(&mut self, req: u32) -> Self::Future {
        if !std::mem::take(&mut self.ready) {
            return std::future::ready(Err("called before ready".into()));
        }
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(if n < self.failures {
            Err(format!("failure {}", n + 1).into())
        } else {
            Ok(req)
        })
    }
}

#[tokio::test]
async fn retry_layer_polls_each_clone_ready_and_retries_until_success() {
    let clock = ManualClock::new();
    let calls = Arc::new(AtomicU32::new(0));
    let flaky = Flaky {
        ready: false,
        calls: calls.clone(),
        failures: 2,
    };
    let policy = RetryPolicy::builder().max_attempts(3).build().unwrap();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(policy, clock.shared()))
        .service(flaky);
    let answer = drive(&clock, STEP, svc.oneshot(21)).await.unwrap();
    assert_eq!(answer, 21);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(clock.elapsed(), secs(3));
}

#[tokio::test]
async fn retry_layer_returns_the_last_error_when_attempts_run_out() {
    let clock = ManualClock::new();
    let calls = Arc::new(AtomicU32::new(0));
    let flaky = Flaky {
        ready: false,
        calls: calls.clone(),
        failures: 10,
    };
    let policy = RetryPolicy::builder().max_attempts(2).build().unwrap();
    let recorder = Arc::new(Recorder::default());
    let layer = RetryLayer::new(policy, clock.shared()).observer(recorder.clone());
    let err = drive(&clock, STEP, layer_service(layer, flaky).oneshot(1))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "failure 2");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(recorder.give_ups(), ["give up after 2/2: Exhausted"]);
}

fn layer_service<L: tower::Layer<Flaky>>(layer: L, inner: Flaky) -> L::Service {
    layer.layer(inner)
}

#[tokio::test]
async fn retry_layer_classifier_stops_on_chosen_responses() {
    let clock = ManualClock::new();
    let calls = Arc::new(AtomicU32::new(0));
    let flaky = Flaky {
        ready: false,
        calls: calls.clone(),
        failures: 10,
    };
    let policy = RetryPolicy::builder().max_attempts(3).build().unwrap();
    let layer = RetryLayer::new(policy, clock.shared())
        .classify(|_: &Result<u32, BoxError>| RetryDecision::DontRetry);
    let err = drive(&clock, STEP, layer_service(layer, flaky).oneshot(1))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "failure 1");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn tower_stack_with_timeout_inside_retry_recovers_from_a_hung_attempt() {
    let clock = ManualClock::new();
    let shared: SharedClock = clock.shared();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let upstream = tower::service_fn(move |req: u32| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                std::future::pending::<()>().await;
            }
            Ok::<_, BoxError>(req + 1)
        }
    });
    let policy = RetryPolicy::builder().max_attempts(3).build().unwrap();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(policy, shared.clone()))
        .layer(TimeoutLayer::new(secs(2), shared).unwrap())
        .service(upstream);
    let answer = drive(&clock, STEP, svc.oneshot(41)).await.unwrap();
    assert_eq!(answer, 42);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        clock.elapsed(),
        secs(2) + secs(1),
        "2s timeout, then 1s backoff"
    );
}
