//! Permits: the right to make one call, and the duty to report how it went.
//!
//! [`Permit`] borrows its breaker (nothing shared is written when it is issued);
//! [`OwnedPermit`] holds a clone of the breaker for callers that move it into a task or a
//! `'static` future (the tower layer). Both are consumed by [`success`](Permit::success) or
//! [`failure`](Permit::failure); dropping one without either frees its half-open trial slot
//! without counting the call (a cancelled call says nothing about the upstream).

use std::fmt;

use super::CircuitBreaker;
use super::machine::{Shared, Ticket};

/// Permission for one call through a [`CircuitBreaker`], borrowed from it.
#[must_use = "a permit should be completed with success() or failure()"]
pub struct Permit<'a> {
    shared: &'a Shared,
    ticket: Ticket,
    done: bool,
}

impl<'a> Permit<'a> {
    pub(crate) fn new(shared: &'a Shared, ticket: Ticket) -> Self {
        Self {
            shared,
            ticket,
            done: false,
        }
    }

    /// Whether this call is one of the half-open period's trial calls.
    #[inline]
    pub fn is_trial(&self) -> bool {
        self.ticket.is_trial()
    }

    /// Records that the call succeeded.
    #[inline]
    pub fn success(mut self) {
        self.done = true;
        self.shared.record(&self.ticket, false);
    }

    /// Records that the call failed.
    #[inline]
    pub fn failure(mut self) {
        self.done = true;
        self.shared.record(&self.ticket, true);
    }

    /// Records the outcome given as a flag (`true` = failed).
    #[inline]
    pub fn record(self, failed: bool) {
        if failed {
            self.failure()
        } else {
            self.success()
        }
    }
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        if !self.done {
            self.shared.release(&self.ticket);
        }
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("breaker", &self.shared.name)
            .field("trial", &self.is_trial())
            .finish()
    }
}

/// Permission for one call through a [`CircuitBreaker`], holding a clone of it.
#[must_use = "a permit should be completed with success() or failure()"]
pub struct OwnedPermit {
    breaker: CircuitBreaker,
    ticket: Ticket,
    done: bool,
}

impl OwnedPermit {
    pub(crate) fn new(breaker: CircuitBreaker, ticket: Ticket) -> Self {
        Self {
            breaker,
            ticket,
            done: false,
        }
    }

    /// Whether this call is one of the half-open period's trial calls.
    #[inline]
    pub fn is_trial(&self) -> bool {
        self.ticket.is_trial()
    }

    /// Records that the call succeeded.
    #[inline]
    pub fn success(mut self) {
        self.done = true;
        self.breaker.shared.record(&self.ticket, false);
    }

    /// Records that the call failed.
    #[inline]
    pub fn failure(mut self) {
        self.done = true;
        self.breaker.shared.record(&self.ticket, true);
    }

    /// Records the outcome given as a flag (`true` = failed).
    #[inline]
    pub fn record(self, failed: bool) {
        if failed {
            self.failure()
        } else {
            self.success()
        }
    }
}

impl Drop for OwnedPermit {
    #[inline]
    fn drop(&mut self) {
        if !self.done {
            self.breaker.shared.release(&self.ticket);
        }
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("breaker", &self.breaker.shared.name)
            .field("trial", &self.is_trial())
            .finish()
    }
}
