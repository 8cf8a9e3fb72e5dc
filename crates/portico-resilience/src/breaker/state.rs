//! What a breaker reports about itself: its [`State`], the [`StateChange`] events with their
//! [`TransitionReason`], and the [`BreakerSnapshot`] behind `/status/services`.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use super::window::Rate;

/// The state of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum State {
    /// Calls flow; failures are counted.
    Closed = 0,
    /// Calls are refused until the recovery timeout has passed.
    Open = 1,
    /// A limited number of trial calls decide between closing and reopening.
    HalfOpen = 2,
    /// Opened by an operator: every call is refused until [`reset`](super::CircuitBreaker::reset).
    ForcedOpen = 3,
    /// Closed by an operator: every call flows and nothing is counted until reset.
    ForcedClosed = 4,
}

impl State {
    /// The name used in status JSON and metrics: `closed`, `open`, `half_open`,
    /// `forced_open` or `forced_closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::ForcedOpen => "forced_open",
            State::ForcedClosed => "forced_closed",
        }
    }

    /// The name in seed 001's log lines (`OPEN`, `HALF_OPEN`, …).
    pub(crate) fn log_name(self) -> &'static str {
        match self {
            State::Closed => "CLOSED",
            State::Open => "OPEN",
            State::HalfOpen => "HALF_OPEN",
            State::ForcedOpen => "FORCED_OPEN",
            State::ForcedClosed => "FORCED_CLOSED",
        }
    }

    #[inline]
    pub(crate) fn from_bits(bits: u64) -> State {
        match bits & 0b111 {
            0 => State::Closed,
            1 => State::Open,
            2 => State::HalfOpen,
            3 => State::ForcedOpen,
            _ => State::ForcedClosed,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a breaker changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionReason {
    /// Consecutive mode: `failures` in a row reached `threshold`.
    ThresholdReached {
        /// Consecutive failures seen.
        failures: u32,
        /// The configured threshold.
        threshold: u32,
    },
    /// Rate mode: the failure rate reached its threshold.
    FailureRate(Rate),
    /// Rate mode: the slow-call rate reached its threshold.
    SlowCallRate(Rate),
    /// Consecutive mode: a trial call failed while half-open.
    TrialFailed,
    /// The recovery timeout passed while open.
    RecoveryTimeoutElapsed,
    /// The trial calls succeeded (or their rates stayed below the thresholds).
    Recovered,
    /// [`force_open`](super::CircuitBreaker::force_open) was called.
    ForcedOpen,
    /// [`force_closed`](super::CircuitBreaker::force_closed) was called.
    ForcedClosed,
    /// [`reset`](super::CircuitBreaker::reset) was called.
    Reset,
}

impl fmt::Display for TransitionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransitionReason::ThresholdReached {
                failures,
                threshold,
            } => write!(f, "threshold reached: {failures}/{threshold}"),
            TransitionReason::FailureRate(rate) => write!(f, "failure rate {rate}"),
            TransitionReason::SlowCallRate(rate) => write!(f, "slow call rate {rate}"),
            TransitionReason::TrialFailed => f.write_str("trial call failed"),
            TransitionReason::RecoveryTimeoutElapsed => f.write_str("recovery timeout elapsed"),
            TransitionReason::Recovered => f.write_str("service recovered"),
            TransitionReason::ForcedOpen => f.write_str("forced open"),
            TransitionReason::ForcedClosed => f.write_str("forced closed"),
            TransitionReason::Reset => f.write_str("reset"),
        }
    }
}

/// One state transition, as broadcast to [`subscribe`](super::CircuitBreaker::subscribe)rs.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    /// The breaker's name.
    pub name: Arc<str>,
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
    /// When it happened (wall clock of the breaker's clock).
    pub at: SystemTime,
    /// Why it happened.
    pub reason: TransitionReason,
}

/// A point-in-time view of a breaker, the shape of one entry of `/status/services`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerSnapshot {
    /// The breaker's name (the upstream's name).
    pub name: Arc<str>,
    /// The current state.
    pub state: State,
    /// Consecutive failures (consecutive mode) or failures in the window (rate mode) while
    /// closed; the count that opened the circuit (plus failed trials) while open or half-open.
    pub failure_count: u32,
    /// When the last failure was recorded, if ever.
    pub last_failure: Option<SystemTime>,
    /// When the state last changed (or the breaker was made).
    pub last_state_change: SystemTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_bits_round_trip() {
        for s in [
            State::Closed,
            State::Open,
            State::HalfOpen,
            State::ForcedOpen,
            State::ForcedClosed,
        ] {
            assert_eq!(State::from_bits(s as u64 | 0b1000), s);
        }
        assert_eq!(State::HalfOpen.as_str(), "half_open");
    }

    #[test]
    fn reasons_read_like_seed_001() {
        let r = TransitionReason::ThresholdReached {
            failures: 5,
            threshold: 5,
        };
        assert_eq!(r.to_string(), "threshold reached: 5/5");
        let rate = Rate::reached(3, 5, Some(50)).unwrap();
        assert_eq!(
            TransitionReason::FailureRate(rate).to_string(),
            "failure rate 60.0% >= 50%"
        );
    }
}
