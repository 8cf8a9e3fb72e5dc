//! The breaker's state machine and the memory layout that keeps its hot path cheap.
//!
//! The state lives in one atomic word: the [`State`] in the low three bits and an *epoch*
//! above them, bumped on every transition. Every permit remembers the word it was issued
//! under, so an outcome that arrives after the state has moved on (a call started while
//! closed that ends after the circuit opened, a trial from an earlier half-open period) is
//! recognised and left out of the decisions.
//!
//! The hot path — a permit while closed and its success in consecutive mode — only *reads*
//! shared memory (the word, and the consecutive-failure counter, written only when it is not
//! already zero), so uncontended and contended callers do not bounce cache lines. Failures,
//! transitions, half-open admission and the rate mode's window go through one mutex.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::broadcast;

use super::config::BreakerConfig;
use super::state::{BreakerSnapshot, State, StateChange, TransitionReason};
use super::window::{Outcome, Rate, Totals, Window};
use crate::clock::SharedClock;
use crate::error::CircuitOpen;

/// Capacity of the transition broadcast; slower subscribers see `Lagged`.
const EVENT_CAPACITY: usize = 128;

/// What a permit remembers: the state word it was issued under and, when slow calls are
/// detected, when the call started.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    pub(crate) word: u64,
    pub(crate) started: Option<Instant>,
}

impl Ticket {
    #[inline]
    pub(crate) fn is_trial(&self) -> bool {
        State::from_bits(self.word) == State::HalfOpen
    }
}

/// Everything a breaker and its clones share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) name: Arc<str>,
    pub(crate) config: BreakerConfig,
    clock: SharedClock,
    /// The breaker's time line starts here; instants are stored as nanoseconds since it.
    base: Instant,
    /// Whether permits must read the clock (rate mode with slow-call detection).
    times_calls: bool,
    word: AtomicU64,
    /// When the current open period ends (nanoseconds since `base`); valid while open.
    open_until: AtomicU64,
    /// Consecutive failures while closed (consecutive mode).
    consecutive: AtomicU32,
    inner: Mutex<Inner>,
    events: broadcast::Sender<StateChange>,
}

#[derive(Debug)]
struct Inner {
    failure_count: u32,
    last_failure: Option<SystemTime>,
    last_state_change: SystemTime,
    /// Trial slots taken in the current half-open period (in flight or recorded).
    trials_admitted: u32,
    /// Outcomes of the current half-open period's trials.
    trials: Totals,
    window: Option<Window>,
}

impl Shared {
    pub(crate) fn new(name: Arc<str>, config: BreakerConfig, clock: SharedClock) -> Self {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let rate = config.rate();
        Self {
            inner: Mutex::new(Inner {
                failure_count: 0,
                last_failure: None,
                last_state_change: clock.system_now(),
                trials_admitted: 0,
                trials: Totals::default(),
                window: rate.map(|r| Window::new(r.window())),
            }),
            times_calls: rate.is_some_and(|r| r.detects_slow_calls()),
            base: clock.now(),
            name,
            config,
            clock,
            word: AtomicU64::new(State::Closed as u64),
            open_until: AtomicU64::new(0),
            consecutive: AtomicU32::new(0),
            events,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Inner holds plain counters that are consistent after every statement, so a panic
        // elsewhere while holding the lock cannot leave it half-updated in a harmful way.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<StateChange> {
        self.events.subscribe()
    }

    // === admission ===

    #[inline]
    pub(crate) fn acquire(&self) -> Result<Ticket, CircuitOpen> {
        let word = self.word.load(Ordering::Acquire);
        match State::from_bits(word) {
            State::Closed | State::ForcedClosed if !self.times_calls => Ok(Ticket {
                word,
                started: None,
            }),
            _ => self.acquire_other(word),
        }
    }

    /// Admission when the clock must be read or the breaker is not closed.
    fn acquire_other(&self, word: u64) -> Result<Ticket, CircuitOpen> {
        match State::from_bits(word) {
            State::Closed | State::ForcedClosed => Ok(Ticket {
                word,
                started: Some(self.clock.now()),
            }),
            State::Open => {
                let now = self.clock.now();
                let until = self.open_until.load(Ordering::Acquire);
                match until.checked_sub(self.nanos(now)) {
                    Some(left) if left > 0 => Err(self.reject(Duration::from_nanos(left))),
                    _ => self.acquire_slow(now),
                }
            }
            State::HalfOpen => self.acquire_slow(self.clock.now()),
            State::ForcedOpen => Err(self.reject(self.config.recovery_timeout())),
        }
    }

    fn acquire_slow(&self, now: Instant) -> Result<Ticket, CircuitOpen> {
        let mut inner = self.lock();
        let word = self.maybe_half_open(&mut inner, now);
        match State::from_bits(word) {
            State::HalfOpen if inner.trials_admitted < self.config.half_open_max_calls().get() => {
                inner.trials_admitted += 1;
                Ok(Ticket {
                    word,
                    started: self.times_calls.then_some(now),
                })
            }
            State::HalfOpen => {
                drop(inner);
                tracing::debug!(
                    upstream = %self.name,
                    "[{}] Circuit breaker HALF_OPEN - rejecting request (trial calls in flight)",
                    self.name
                );
                Err(CircuitOpen {
                    name: self.name.clone(),
                    retry_after: Duration::ZERO,
                })
            }
            State::Closed | State::ForcedClosed => Ok(Ticket {
                word,
                started: self.times_calls.then_some(now),
            }),
            State::Open => {
                let until = self.open_until.load(Ordering::Acquire);
                drop(inner);
                let left = until.saturating_sub(self.nanos(now));
                Err(self.reject(Duration::from_nanos(left)))
            }
            State::ForcedOpen => {
                drop(inner);
                Err(self.reject(self.config.recovery_timeout()))
            }
        }
    }

    fn reject(&self, retry_after: Duration) -> CircuitOpen {
        tracing::debug!(
            upstream = %self.name,
            "[{}] Circuit breaker OPEN - rejecting request",
            self.name
        );
        CircuitOpen {
            name: self.name.clone(),
            retry_after,
        }
    }

    /// Moves OPEN → HALF_OPEN if the recovery timeout has passed; returns the current word.
    fn maybe_half_open(&self, inner: &mut Inner, now: Instant) -> u64 {
        let word = self.word.load(Ordering::Acquire);
        if State::from_bits(word) == State::Open
            && self.nanos(now) >= self.open_until.load(Ordering::Acquire)
        {
            return self.transition(
                inner,
                word,
                State::HalfOpen,
                TransitionReason::RecoveryTimeoutElapsed,
                now,
            );
        }
        word
    }

    // === outcomes ===

    #[inline]
    pub(crate) fn record(&self, ticket: &Ticket, failed: bool) {
        let issued_in = State::from_bits(ticket.word);
        if !failed && issued_in == State::Closed && self.config.rate().is_none() {
            // Hot path: a success while closed only clears a non-zero failure count.
            if self.word.load(Ordering::Acquire) == ticket.word
                && self.consecutive.load(Ordering::Relaxed) != 0
            {
                self.consecutive.store(0, Ordering::Relaxed);
            }
            return;
        }
        if !failed && issued_in == State::ForcedClosed {
            return;
        }
        self.record_locked(ticket, failed, issued_in);
    }

    /// Failures, trials and the rate mode: everything that needs the lock.
    fn record_locked(&self, ticket: &Ticket, failed: bool, issued_in: State) {
        let now = self.clock.now();
        let mut inner = self.lock();
        if failed {
            inner.last_failure = Some(self.clock.system_now());
        }
        if self.word.load(Ordering::Acquire) != ticket.word {
            return; // the state moved on since this call was admitted
        }
        let outcome = Outcome {
            failed,
            slow: self.is_slow(ticket, now),
        };
        match issued_in {
            State::Closed => self.record_closed(&mut inner, ticket.word, outcome, now),
            State::HalfOpen => self.record_trial(&mut inner, ticket.word, outcome, now),
            _ => {}
        }
    }

    fn is_slow(&self, ticket: &Ticket, now: Instant) -> bool {
        match (ticket.started, self.config.rate()) {
            (Some(started), Some(rate)) => {
                now.saturating_duration_since(started) >= rate.slow_call_duration()
            }
            _ => false,
        }
    }

    fn record_closed(&self, inner: &mut Inner, word: u64, outcome: Outcome, now: Instant) {
        let Some(rate) = self.config.rate() else {
            // Consecutive mode; only failures get here.
            let failures = self
                .consecutive
                .fetch_add(1, Ordering::Relaxed)
                .saturating_add(1);
            inner.failure_count = failures;
            let threshold = self.config.failure_threshold().get();
            if failures >= threshold {
                let reason = TransitionReason::ThresholdReached {
                    failures,
                    threshold,
                };
                self.transition(inner, word, State::Open, reason, now);
            }
            return;
        };
        let at = self.nanos(now);
        let Some(window) = inner.window.as_mut() else {
            return;
        };
        window.record(at, outcome);
        let totals = window.totals(at);
        inner.failure_count = u32::try_from(totals.failures).unwrap_or(u32::MAX);
        if totals.calls >= u64::from(rate.minimum_calls().get())
            && let Some(reason) = self.rate_reason(totals)
        {
            self.transition(inner, word, State::Open, reason, now);
        }
    }

    fn record_trial(&self, inner: &mut Inner, word: u64, outcome: Outcome, now: Instant) {
        inner.trials.add(outcome);
        if outcome.failed {
            inner.failure_count = inner.failure_count.saturating_add(1);
        }
        let done = inner.trials.calls >= u64::from(self.config.half_open_max_calls().get());
        let (to, reason) = if self.config.rate().is_none() {
            match (outcome.failed, done) {
                (true, _) => (State::Open, TransitionReason::TrialFailed),
                (false, true) => (State::Closed, TransitionReason::Recovered),
                (false, false) => return,
            }
        } else if done {
            match self.rate_reason(inner.trials) {
                Some(reason) => (State::Open, reason),
                None => (State::Closed, TransitionReason::Recovered),
            }
        } else {
            return;
        };
        self.transition(inner, word, to, reason, now);
    }

    fn rate_reason(&self, totals: Totals) -> Option<TransitionReason> {
        let rate = self.config.rate()?;
        Rate::reached(totals.failures, totals.calls, rate.failure_rate_threshold())
            .map(TransitionReason::FailureRate)
            .or_else(|| {
                Rate::reached(totals.slow, totals.calls, rate.slow_call_rate_threshold())
                    .map(TransitionReason::SlowCallRate)
            })
    }

    /// A permit dropped without an outcome: give its trial slot back.
    #[inline]
    pub(crate) fn release(&self, ticket: &Ticket) {
        if ticket.is_trial() {
            self.release_trial(ticket);
        }
    }

    fn release_trial(&self, ticket: &Ticket) {
        let mut inner = self.lock();
        if self.word.load(Ordering::Acquire) == ticket.word {
            inner.trials_admitted = inner.trials_admitted.saturating_sub(1);
        }
    }

    // === transitions ===

    /// Sets the state to `to` (a new epoch), logs it and broadcasts one event.
    fn transition(
        &self,
        inner: &mut Inner,
        from_word: u64,
        to: State,
        reason: TransitionReason,
        now: Instant,
    ) -> u64 {
        let from = State::from_bits(from_word);
        let word = ((from_word >> 3).wrapping_add(1) << 3) | to as u64;
        inner.trials_admitted = 0;
        inner.trials = Totals::default();
        match to {
            State::Open => {
                let until = now + self.config.recovery_timeout();
                self.open_until.store(self.nanos(until), Ordering::Release);
            }
            State::Closed => self.clear_counts(inner),
            _ => {}
        }
        self.word.store(word, Ordering::Release);
        let at = self.clock.system_now();
        inner.last_state_change = at;
        self.log(from, to, reason);
        // No subscriber is fine: events are for whoever listens.
        let _ = self.events.send(StateChange {
            name: self.name.clone(),
            from,
            to,
            at,
            reason,
        });
        word
    }

    fn clear_counts(&self, inner: &mut Inner) {
        self.consecutive.store(0, Ordering::Relaxed);
        inner.failure_count = 0;
        if let Some(window) = inner.window.as_mut() {
            window.clear();
        }
    }

    fn log(&self, from: State, to: State, reason: TransitionReason) {
        let name = &*self.name;
        let (from_s, to_s) = (from.as_str(), to.as_str());
        match to {
            State::Open => tracing::warn!(
                upstream = name,
                from = from_s,
                to = to_s,
                "[{name}] Circuit breaker OPEN ({reason})"
            ),
            State::HalfOpen => tracing::info!(
                upstream = name,
                from = from_s,
                to = to_s,
                "[{name}] Circuit breaker entering HALF_OPEN state"
            ),
            State::Closed => tracing::info!(
                upstream = name,
                from = from_s,
                to = to_s,
                "[{name}] Circuit breaker CLOSED ({reason})"
            ),
            State::ForcedOpen | State::ForcedClosed => tracing::warn!(
                upstream = name,
                from = from_s,
                to = to_s,
                "[{name}] Circuit breaker {} ({reason})",
                to.log_name()
            ),
        }
    }

    /// Manual transitions: force open/closed, or reset to a fresh CLOSED.
    pub(crate) fn set(&self, to: State, reason: TransitionReason) {
        let mut inner = self.lock();
        let word = self.word.load(Ordering::Acquire);
        if State::from_bits(word) == to {
            if to == State::Closed {
                self.clear_counts(&mut inner);
            }
            return;
        }
        self.transition(&mut inner, word, to, reason, self.clock.now());
    }

    // === reporting ===

    pub(crate) fn state(&self) -> State {
        let word = self.word.load(Ordering::Acquire);
        if State::from_bits(word) != State::Open {
            return State::from_bits(word);
        }
        let now = self.clock.now();
        if self.nanos(now) < self.open_until.load(Ordering::Acquire) {
            return State::Open;
        }
        let mut inner = self.lock();
        State::from_bits(self.maybe_half_open(&mut inner, now))
    }

    pub(crate) fn snapshot(&self) -> BreakerSnapshot {
        let now = self.clock.now();
        let mut inner = self.lock();
        let state = State::from_bits(self.maybe_half_open(&mut inner, now));
        let at = self.nanos(now);
        let failure_count = match (state, inner.window.as_mut()) {
            (State::Closed, None) => self.consecutive.load(Ordering::Relaxed),
            (State::Closed, Some(window)) => {
                u32::try_from(window.totals(at).failures).unwrap_or(u32::MAX)
            }
            _ => inner.failure_count,
        };
        BreakerSnapshot {
            name: self.name.clone(),
            state,
            failure_count,
            last_failure: inner.last_failure,
            last_state_change: inner.last_state_change,
        }
    }
}
