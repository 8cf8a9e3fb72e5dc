//! One channel's stream in memory: its epoch, its last offset, and the recent messages kept
//! for recovery within the channel's size and age bounds.
//!
//! A client that left off at `(offset, epoch)` gets exactly what came after, in order, when
//! every one of those messages is still kept; otherwise `recovered: false` (Centrifugo's
//! rule): a gap is never papered over.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;

use crate::protocol::Position;
use crate::settings::HistoryBounds;

/// What a subscriber learns when it joins a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovery {
    /// The channel's position now (the offset of its last message).
    pub position: Position,
    /// Whether everything after the client's `since` was delivered in `missed`.
    pub recovered: bool,
    /// The frames after `since`, oldest first (empty when not recovered).
    pub missed: Vec<Utf8Bytes>,
}

#[derive(Debug)]
struct Entry {
    offset: u64,
    at: Instant,
    frame: Utf8Bytes,
}

/// A channel's stream.
#[derive(Debug)]
pub(crate) struct Stream {
    epoch: String,
    offset: u64,
    entries: VecDeque<Entry>,
    /// When the last message was published (an idle stream without history can be dropped).
    last: Instant,
}

impl Stream {
    /// A new stream, with a fresh random epoch.
    pub fn new(now: Instant) -> Self {
        Self {
            epoch: new_epoch(),
            offset: 0,
            entries: VecDeque::new(),
            last: now,
        }
    }

    /// Appends the message `frame` (made for [`Stream::next_offset`]); returns its offset.
    pub fn push(&mut self, now: Instant, bounds: HistoryBounds, frame: Utf8Bytes) -> u64 {
        self.offset += 1;
        self.last = now;
        if bounds.size > 0 && !bounds.ttl.is_zero() {
            self.entries.push_back(Entry {
                offset: self.offset,
                at: now,
                frame,
            });
        }
        self.trim(now, bounds);
        self.offset
    }

    /// The stream's epoch.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The offset the next message will get.
    pub fn next_offset(&self) -> u64 {
        self.offset + 1
    }

    /// Drops what the bounds no longer allow.
    pub fn trim(&mut self, now: Instant, bounds: HistoryBounds) {
        while self.entries.len() > bounds.size {
            self.entries.pop_front();
        }
        while self
            .entries
            .front()
            .is_some_and(|e| now.saturating_duration_since(e.at) > bounds.ttl)
        {
            self.entries.pop_front();
        }
    }

    /// Whether the stream holds nothing and has been idle for `idle`: dropping it loses
    /// nothing a client could still recover (its next publication starts a new epoch).
    pub fn is_disposable(&self, now: Instant, idle: Duration) -> bool {
        self.entries.is_empty() && now.saturating_duration_since(self.last) > idle
    }

    /// The position now and, when `since` is given, what came after it.
    pub fn recover(
        &mut self,
        now: Instant,
        bounds: HistoryBounds,
        since: Option<&Position>,
    ) -> Recovery {
        self.trim(now, bounds);
        let position = Position {
            offset: self.offset,
            epoch: self.epoch.clone(),
        };
        let Some(since) = since else {
            return Recovery {
                position,
                recovered: false,
                missed: Vec::new(),
            };
        };
        if since.epoch != self.epoch || since.offset > self.offset {
            return Recovery {
                position,
                recovered: false,
                missed: Vec::new(),
            };
        }
        let missed: Vec<Utf8Bytes> = self
            .entries
            .iter()
            .filter(|e| e.offset > since.offset)
            .map(|e| e.frame.clone())
            .collect();
        // Complete when every offset in (since, now] is there.
        let recovered = missed.len() as u64 == self.offset - since.offset;
        Recovery {
            position,
            recovered,
            missed: if recovered { missed } else { Vec::new() },
        }
    }
}

/// A new random epoch: 16 hex characters.
pub(crate) fn new_epoch() -> String {
    portico_core::hex::u128_string(u128::from(rand::random::<u64>()))[16..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(size: usize, secs: u64) -> HistoryBounds {
        HistoryBounds {
            size,
            ttl: Duration::from_secs(secs),
        }
    }

    fn push(s: &mut Stream, now: Instant, b: HistoryBounds) -> u64 {
        let next = s.next_offset();
        s.push(now, b, Utf8Bytes::from(format!("m{next}")))
    }

    #[test]
    fn a_client_gets_exactly_what_it_missed() {
        let t0 = Instant::now();
        let b = bounds(10, 60);
        let mut s = Stream::new(t0);
        for _ in 0..5 {
            push(&mut s, t0, b);
        }
        let pos = s.recover(t0, b, None).position;
        assert_eq!(pos.offset, 5);
        let since = Position {
            offset: 3,
            epoch: pos.epoch.clone(),
        };
        let r = s.recover(t0, b, Some(&since));
        assert!(r.recovered);
        assert_eq!(r.missed, vec![Utf8Bytes::from("m4"), Utf8Bytes::from("m5")]);
        let at_end = Position {
            offset: 5,
            epoch: pos.epoch.clone(),
        };
        let r = s.recover(t0, b, Some(&at_end));
        assert!(r.recovered && r.missed.is_empty());
    }

    #[test]
    fn gaps_wrong_epochs_and_expired_history_are_not_recovered() {
        let t0 = Instant::now();
        let b = bounds(3, 60);
        let mut s = Stream::new(t0);
        for _ in 0..6 {
            push(&mut s, t0, b);
        }
        let epoch = s.recover(t0, b, None).position.epoch;
        // Offsets 4..=6 are kept; 2 needs 3, which is gone.
        let r = s.recover(
            t0,
            b,
            Some(&Position {
                offset: 2,
                epoch: epoch.clone(),
            }),
        );
        assert!(!r.recovered && r.missed.is_empty());
        let r = s.recover(
            t0,
            b,
            Some(&Position {
                offset: 3,
                epoch: epoch.clone(),
            }),
        );
        assert!(r.recovered);
        assert_eq!(r.missed.len(), 3);
        let r = s.recover(
            t0,
            b,
            Some(&Position {
                offset: 3,
                epoch: "other".into(),
            }),
        );
        assert!(!r.recovered);
        let r = s.recover(
            t0,
            b,
            Some(&Position {
                offset: 99,
                epoch: epoch.clone(),
            }),
        );
        assert!(!r.recovered);
        // Two minutes later everything has aged out.
        let later = t0 + Duration::from_secs(120);
        let r = s.recover(later, b, Some(&Position { offset: 5, epoch }));
        assert!(!r.recovered);
        assert!(s.is_disposable(later, Duration::from_secs(60)));
    }
}
