//! Config problems: what is wrong, under which key, and where the value came from.
//!
//! Loading never stops at the first problem. Every step pushes into a collector and goes on
//! with what it could read; the caller gets all of them at once as [`ConfigErrors`], one line
//! each: `portico.toml:12: upstreams.etl.timeout: invalid duration "fast" (…)`.

use std::fmt;
use std::sync::Arc;

use super::tree::Origin;

/// Where a config value came from, as shown at the start of a problem line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A line of the config file.
    File {
        /// The file as the user named it.
        file: Arc<str>,
        /// 1-based line.
        line: usize,
    },
    /// A line and column of the config file (syntax errors).
    FileColumn {
        /// The file as the user named it.
        file: Arc<str>,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// An environment variable.
    Env {
        /// The variable's name.
        var: Arc<str>,
    },
    /// The whole file (it could not be read).
    Whole {
        /// The file as the user named it.
        file: Arc<str>,
    },
    /// A built-in default or a command-line flag; nothing to point at.
    Nowhere,
}

impl Location {
    /// Orders file lines first (by line), then environment variables, then the rest.
    fn sort_key(&self) -> (u8, usize, usize, &str) {
        match self {
            Location::Whole { .. } => (0, 0, 0, ""),
            Location::File { line, .. } => (1, *line, 0, ""),
            Location::FileColumn { line, column, .. } => (1, *line, *column, ""),
            Location::Env { var } => (2, 0, 0, var),
            Location::Nowhere => (3, 0, 0, ""),
        }
    }
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where the offending value came from.
    pub location: Location,
    /// The full key path (`upstreams.etl.timeout`, `routes[0].prefix`); empty for syntax errors.
    pub key: String,
    /// What is wrong, in words. Never contains a secret's value.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Location::File { file, line } => write!(f, "{file}:{line}: ")?,
            Location::FileColumn { file, line, column } => write!(f, "{file}:{line}:{column}: ")?,
            Location::Env { var } => write!(f, "{var}: ")?,
            Location::Whole { file } => write!(f, "{file}: ")?,
            Location::Nowhere => {}
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found while loading a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    problems: Vec<Problem>,
}

impl ConfigErrors {
    /// The problems, ordered by where they come from (file lines first, then env vars).
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// The collector every loading step pushes into.
#[derive(Debug)]
pub(crate) struct Problems {
    file: Arc<str>,
    list: Vec<Problem>,
}

impl Problems {
    /// A collector for a config read from `file` (shown in problem lines).
    pub(crate) fn new(file: Arc<str>) -> Self {
        Self {
            file,
            list: Vec::new(),
        }
    }

    /// The file name problems are reported against.
    pub(crate) fn file(&self) -> &Arc<str> {
        &self.file
    }

    /// Records a problem about `key`, located where `origin` says the value came from.
    pub(crate) fn at(&mut self, origin: &Origin, key: &str, message: impl Into<String>) {
        let location = match origin {
            Origin::File { line } => Location::File {
                file: self.file.clone(),
                line: *line,
            },
            Origin::Env { var, .. } => Location::Env { var: var.clone() },
            Origin::Builtin => Location::Nowhere,
        };
        self.push(Problem {
            location,
            key: key.to_owned(),
            message: message.into(),
        });
    }

    /// Records a fully formed problem.
    pub(crate) fn push(&mut self, problem: Problem) {
        self.list.push(problem);
    }

    /// `Ok(value)` when no problem was recorded, else every problem.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.list.is_empty() {
            Ok(value)
        } else {
            Err(self.into_errors())
        }
    }

    /// Every problem, sorted by location. A step that gave up always recorded why; should
    /// one not have, the result still says that something failed.
    pub(crate) fn into_errors(mut self) -> ConfigErrors {
        if self.list.is_empty() {
            self.list.push(Problem {
                location: Location::Nowhere,
                key: String::new(),
                message: "the configuration could not be read".to_owned(),
            });
        }
        self.list
            .sort_by(|a, b| a.location.sort_key().cmp(&b.location.sort_key()));
        ConfigErrors {
            problems: self.list,
        }
    }
}

/// The known key closest to `unknown`, when it is close enough to be a likely typo.
pub(crate) fn suggest<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    let budget = (unknown.chars().count() / 3).max(1);
    known
        .iter()
        .map(|k| (edit_distance(unknown, k), *k))
        .filter(|(d, _)| *d <= budget)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Edit distance counting insertions, deletions, substitutions and swaps of two neighbours
/// (`elt` → `etl` is one edit); config keys are short, so the quadratic cost is nothing.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: distance between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_typos_get_a_suggestion_and_far_ones_do_not() {
        let known = ["timeout", "max_retries", "failure_threshold"];
        assert_eq!(suggest("timout", &known), Some("timeout"));
        assert_eq!(suggest("max_retry", &known), Some("max_retries"));
        assert_eq!(suggest("colour", &known), None);
        assert_eq!(suggest("elt", &["etl", "search"]), Some("etl"));
    }

    #[test]
    fn problems_are_sorted_by_line_then_env() {
        let mut p = Problems::new("portico.toml".into());
        p.at(
            &Origin::Env {
                var: "PORTICO_X".into(),
                raw: String::new(),
            },
            "x",
            "bad",
        );
        p.at(&Origin::File { line: 9 }, "b", "bad");
        p.at(&Origin::File { line: 2 }, "a", "bad");
        let text = p.finish(()).unwrap_err().to_string();
        assert_eq!(
            text,
            "portico.toml:2: a: bad\nportico.toml:9: b: bad\nPORTICO_X: x: bad"
        );
    }
}
