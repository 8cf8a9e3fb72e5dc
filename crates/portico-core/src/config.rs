//! Config primitives shared by every component's settings: durations (`"250ms"`, `"1h30m"`)
//! and byte sizes (`"10MiB"`). Loading and validating the config file is the binary's job.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Parses a human duration: `"250ms"`, `"60s"`, `"15m"`, `"2h"`, `"30d"`, `"1h30m"`.
/// A number must carry a unit; empty, negative or unknown input is an error in words.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err("empty duration (expected e.g. \"250ms\", \"15s\", \"1h30m\")".to_owned());
    }
    if trimmed.starts_with('-') {
        return Err(format!("negative duration {s:?} is not allowed"));
    }
    humantime::parse_duration(trimmed).map_err(|e| {
        format!("invalid duration {s:?}: {e} (expected e.g. \"250ms\", \"15s\", \"1h30m\")")
    })
}

/// A size in bytes, written `"512"`, `"512B"`, `"64KiB"`, `"10MiB"`, `"1GiB"` (powers of 1024)
/// or `"10KB"`, `"10MB"`, `"1GB"` (powers of 1000). Units are case-insensitive; a space between
/// number and unit is allowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// The size in bytes.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The size in bytes as a `usize`, saturating on 32-bit targets.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

/// Why a byte size did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ByteSizeError {
    /// Nothing to parse.
    #[error("empty size (expected e.g. \"64KiB\", \"10MiB\")")]
    Empty,
    /// No leading whole number.
    #[error("invalid size {0:?}: expected a whole number followed by an optional unit")]
    NotANumber(String),
    /// A unit outside B, KB, MB, GB, TB, KiB, MiB, GiB, TiB.
    #[error("unknown size unit {0:?} (expected B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)")]
    UnknownUnit(String),
    /// Larger than 2^64 - 1 bytes.
    #[error("size {0:?} is too large")]
    TooLarge(String),
}

const UNITS: [(&str, u64); 9] = [
    ("b", 1),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
];

impl FromStr for ByteSize {
    type Err = ByteSizeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err(ByteSizeError::Empty);
        }
        let digits_end = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(digits_end);
        if number.is_empty() {
            return Err(ByteSizeError::NotANumber(s.to_owned()));
        }
        let number: u64 = number
            .parse()
            .map_err(|_| ByteSizeError::TooLarge(s.to_owned()))?;
        let unit = unit.trim_start();
        let multiplier = if unit.is_empty() {
            1
        } else {
            UNITS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(unit))
                .map(|&(_, m)| m)
                .ok_or_else(|| ByteSizeError::UnknownUnit(unit.to_owned()))?
        };
        number
            .checked_mul(multiplier)
            .map(ByteSize)
            .ok_or_else(|| ByteSizeError::TooLarge(s.to_owned()))
    }
}

impl fmt::Display for ByteSize {
    /// The largest unit that divides the size exactly, binary units first: `10MiB`, `1MB`,
    /// `512B`. Parsing the output gives the same size back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const DISPLAY: [(&str, u64); 8] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
            ("TB", 1_000_000_000_000),
            ("GB", 1_000_000_000),
            ("MB", 1_000_000),
            ("KB", 1_000),
        ];
        let unit = DISPLAY
            .iter()
            .find(|&&(_, m)| self.0 != 0 && self.0.is_multiple_of(m));
        match unit {
            Some(&(name, m)) => write!(f, "{}{name}", self.0 / m),
            None => write!(f, "{}B", self.0),
        }
    }
}
