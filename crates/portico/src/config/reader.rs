//! Reading the value tree into typed values, one key at a time, collecting every problem.
//!
//! A [`Section`] is a cursor over one table of the tree. Each accessor names the key it
//! reads, converts the value through [`Leaf`] (or a closure) and records a problem instead of
//! failing, so one pass over the tree finds every wrong value; [`Section::finish`] then
//! reports the keys nobody asked for, with a "did you mean" when one is close.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

use portico_core::config::{ByteSize, parse_duration};

use super::problem::{Problems, suggest};
use super::tree::{Node, Origin, Value};

static EMPTY: BTreeMap<String, Node> = BTreeMap::new();

/// A cursor over one table of the config tree.
pub(crate) struct Section<'a> {
    path: String,
    origin: &'a Origin,
    entries: &'a BTreeMap<String, Node>,
    known: Vec<&'static str>,
}

impl<'a> Section<'a> {
    /// The root table.
    pub(crate) fn root(node: &'a Node, problems: &mut Problems) -> Self {
        Self::of(String::new(), Some(node), problems)
    }

    /// A section over `node` (absent → an empty table), reporting a non-table value.
    fn of(path: String, node: Option<&'a Node>, problems: &mut Problems) -> Self {
        static BUILTIN: Origin = Origin::Builtin;
        let (origin, entries) = match node {
            Some(Node {
                value: Value::Table(map),
                origin,
            }) => (origin, map),
            Some(other) => {
                problems.at(
                    &other.origin,
                    &path,
                    format!("expected a table, found {}", other.value.type_name()),
                );
                (&other.origin, &EMPTY)
            }
            None => (&BUILTIN, &EMPTY),
        };
        Self {
            path,
            origin,
            entries,
            known: Vec::new(),
        }
    }

    /// The full path of `key` in this section (`upstreams.etl.timeout`).
    pub(crate) fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// This section's own path.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// Where this table was written (for problems about missing keys).
    pub(crate) fn origin(&self) -> &'a Origin {
        self.origin
    }

    /// The raw node at `key`, marking the key as known.
    pub(crate) fn node(&mut self, key: &'static str) -> Option<&'a Node> {
        if !self.known.contains(&key) {
            self.known.push(key);
        }
        self.entries.get(key)
    }

    /// Declares the keys this table takes, in the order "expected one of" lists them.
    pub(crate) fn declare(&mut self, keys: &[&'static str]) {
        for key in keys {
            if !self.known.contains(key) {
                self.known.push(key);
            }
        }
    }

    /// Whether `key` is present (it counts as known either way).
    pub(crate) fn has(&mut self, key: &'static str) -> bool {
        self.node(key).is_some()
    }

    /// Converts the value at `key` with `convert`; a failure is recorded and gives `None`.
    pub(crate) fn parse_with<T>(
        &mut self,
        key: &'static str,
        problems: &mut Problems,
        convert: impl FnOnce(&Node) -> Result<T, String>,
    ) -> Option<T> {
        let node = self.node(key)?;
        match convert(node) {
            Ok(v) => Some(v),
            Err(message) => {
                problems.at(&node.origin, &self.key_path(key), message);
                None
            }
        }
    }

    /// The value at `key`, if present and valid.
    pub(crate) fn get<T: Leaf>(&mut self, key: &'static str, problems: &mut Problems) -> Option<T> {
        self.parse_with(key, problems, T::from_node)
    }

    /// The value at `key`, or `default` when absent (or invalid, which is recorded).
    pub(crate) fn or<T: Leaf>(
        &mut self,
        key: &'static str,
        default: T,
        problems: &mut Problems,
    ) -> T {
        self.get(key, problems).unwrap_or(default)
    }

    /// The value at `key`; its absence is a problem.
    pub(crate) fn required<T: Leaf>(
        &mut self,
        key: &'static str,
        problems: &mut Problems,
    ) -> Option<T> {
        self.required_with(key, problems, T::from_node)
    }

    /// Like [`Section::required`], with a custom conversion.
    pub(crate) fn required_with<T>(
        &mut self,
        key: &'static str,
        problems: &mut Problems,
        convert: impl FnOnce(&Node) -> Result<T, String>,
    ) -> Option<T> {
        if !self.has(key) {
            problems.at(self.origin, &self.key_path(key), "missing (required)");
            return None;
        }
        self.parse_with(key, problems, convert)
    }

    /// The sub-table at `key` (an empty one when absent).
    pub(crate) fn section(&mut self, key: &'static str, problems: &mut Problems) -> Section<'a> {
        let node = self.node(key);
        Section::of(self.key_path(key), node, problems)
    }

    /// The sub-tables of the table at `key`, by name (`[upstreams.<name>]`).
    pub(crate) fn named_sections(
        &mut self,
        key: &'static str,
        problems: &mut Problems,
    ) -> Vec<(&'a str, Section<'a>)> {
        let outer = self.section(key, problems);
        outer
            .entries
            .iter()
            .map(|(name, node)| {
                let path = outer.key_path(name);
                (name.as_str(), Section::of(path, Some(node), problems))
            })
            .collect()
    }

    /// The tables of the array at `key` (`[[routes]]`).
    pub(crate) fn array_sections(
        &mut self,
        key: &'static str,
        problems: &mut Problems,
    ) -> Vec<Section<'a>> {
        let path = self.key_path(key);
        match self.node(key) {
            None => Vec::new(),
            Some(Node {
                value: Value::Array(items),
                ..
            }) => items
                .iter()
                .enumerate()
                .map(|(i, item)| Section::of(format!("{path}[{i}]"), Some(item), problems))
                .collect(),
            Some(other) => {
                problems.at(
                    &other.origin,
                    &path,
                    format!(
                        "expected an array of tables ([[{path}]]), found {}",
                        other.value.type_name()
                    ),
                );
                Vec::new()
            }
        }
    }

    /// Reports every key of this table that no accessor asked for.
    pub(crate) fn finish(self, problems: &mut Problems) {
        for (key, node) in self.entries {
            if self.known.contains(&key.as_str()) {
                continue;
            }
            let message = match suggest(key, &self.known) {
                Some(close) => format!("unknown key (did you mean \"{close}\"?)"),
                None if self.known.is_empty() => {
                    "unknown key (this table takes no keys)".to_owned()
                }
                None => format!("unknown key (expected one of: {})", self.known.join(", ")),
            };
            problems.at(&node.origin, &self.key_path(key), message);
        }
    }
}

/// A value that can be read from one node of the tree.
pub(crate) trait Leaf: Sized {
    /// Converts the node, or says in words what is wrong with it.
    fn from_node(node: &Node) -> Result<Self, String>;
}

/// "expected X, found Y" for a node of the wrong type.
pub(crate) fn mismatch(expected: &str, node: &Node) -> String {
    format!("expected {expected}, found {}", node.value.type_name())
}

/// The node's text, or a type error.
pub(crate) fn text(node: &Node) -> Result<&str, String> {
    node.as_text().ok_or_else(|| mismatch("a string", node))
}

impl Leaf for String {
    fn from_node(node: &Node) -> Result<Self, String> {
        text(node).map(str::to_owned)
    }
}

impl Leaf for bool {
    fn from_node(node: &Node) -> Result<Self, String> {
        match node.value {
            Value::Boolean(b) => Ok(b),
            _ => Err(mismatch("true or false", node)),
        }
    }
}

fn integer(node: &Node) -> Result<i64, String> {
    match node.value {
        Value::Integer(n) => Ok(n),
        _ => Err(mismatch("an integer", node)),
    }
}

impl Leaf for u32 {
    fn from_node(node: &Node) -> Result<Self, String> {
        let n = integer(node)?;
        u32::try_from(n).map_err(|_| format!("{n} is out of range (0 to {})", u32::MAX))
    }
}

impl Leaf for usize {
    fn from_node(node: &Node) -> Result<Self, String> {
        let n = integer(node)?;
        usize::try_from(n).map_err(|_| format!("{n} is out of range (must be 0 or more)"))
    }
}

impl Leaf for NonZeroU32 {
    fn from_node(node: &Node) -> Result<Self, String> {
        let n = integer(node)?;
        if n < 1 {
            return Err(format!("must be at least 1, found {n}"));
        }
        u32::try_from(n)
            .ok()
            .and_then(NonZeroU32::new)
            .ok_or_else(|| format!("{n} is too large (at most {})", u32::MAX))
    }
}

impl Leaf for Duration {
    fn from_node(node: &Node) -> Result<Self, String> {
        let s = text(node).map_err(|_| {
            format!(
                "expected a duration string like \"15s\", found {}",
                node.value.type_name()
            )
        })?;
        parse_duration(s)
            .map_err(|_| format!("invalid duration {s:?} (expected e.g. \"250ms\", \"15s\")"))
    }
}

/// A duration that must be greater than zero.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Positive(pub(crate) Duration);

impl Leaf for Positive {
    fn from_node(node: &Node) -> Result<Self, String> {
        let d = Duration::from_node(node)?;
        if d.is_zero() {
            return Err("must be greater than 0".to_owned());
        }
        Ok(Positive(d))
    }
}

impl Leaf for ByteSize {
    fn from_node(node: &Node) -> Result<Self, String> {
        if let Value::Integer(n) = node.value {
            return u64::try_from(n)
                .map(ByteSize)
                .map_err(|_| format!("{n} is out of range (must be 0 or more)"));
        }
        let s = text(node).map_err(|_| {
            format!(
                "expected a size like \"10MiB\", found {}",
                node.value.type_name()
            )
        })?;
        s.parse()
            .map_err(|_| format!("invalid size {s:?} (expected e.g. \"64KiB\", \"10MiB\")"))
    }
}

impl Leaf for Vec<String> {
    fn from_node(node: &Node) -> Result<Self, String> {
        list(node, String::from_node)
    }
}

/// Converts every item of an array node; the first bad item's index is named.
pub(crate) fn list<T>(
    node: &Node,
    mut convert: impl FnMut(&Node) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let Value::Array(items) = &node.value else {
        return Err(mismatch("an array", node));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| convert(item).map_err(|e| format!("item {i}: {e}")))
        .collect()
}
