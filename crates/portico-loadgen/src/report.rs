//! What a scenario prints: one machine-readable line, `result key=value …` (values without
//! spaces, so `grep ^result` and a split on spaces read it), then a human summary on lines
//! starting with `#`.

use std::fmt::Display;
use std::io::Write;

/// An ordered list of `key=value` pairs.
#[derive(Default)]
pub struct Report {
    pairs: Vec<(&'static str, String)>,
}

impl Report {
    /// Adds a pair; spaces in the value become `_` to keep the line splittable.
    pub fn set(&mut self, key: &'static str, value: impl Display) -> &mut Self {
        self.pairs.push((key, value.to_string().replace(' ', "_")));
        self
    }

    /// Adds a duration in µs as milliseconds with three decimals.
    pub fn ms(&mut self, key: &'static str, us: u64) -> &mut Self {
        self.set(key, format!("{:.3}", us as f64 / 1000.0))
    }

    /// Prints the `result` line and the human summary, and flushes (a script may be waiting).
    pub fn print(&self, summary: &str) {
        let mut line = String::from("result");
        for (k, v) in &self.pairs {
            line.push(' ');
            line.push_str(k);
            line.push('=');
            line.push_str(v);
        }
        let mut out = std::io::stdout().lock();
        // Nothing useful can be done if stdout is gone.
        let _ = writeln!(out, "{line}");
        for l in summary.lines() {
            let _ = writeln!(out, "# {l}");
        }
        let _ = out.flush();
    }
}

/// The resident set size of this process in KiB, from /proc/self/status (0 if unreadable).
pub fn own_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time (user + system) a process has used, in µs, from /proc/PID/stat (`self` for this
/// process); `None` if unreadable. /proc counts in USER_HZ ticks, 100 per second on every
/// Linux ABI this runs on, so the resolution is 10 ms: enough over a measurement of seconds.
pub fn cpu_us(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * 10_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_and_rss_are_readable() {
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(30) {}
        assert!(cpu_us("self").unwrap() >= 10_000);
        assert!(own_rss_kib() > 0);
        assert_eq!(cpu_us("not-a-pid"), None);
    }
}
