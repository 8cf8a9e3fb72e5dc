//! The project's one clock, re-exported from `portico-resilience` so components that do not
//! otherwise need resilience still take time from the same place.

pub use portico_resilience::clock::*;
