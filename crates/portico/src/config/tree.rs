//! The config as a tree of values that remember where they came from.
//!
//! The TOML file is parsed into this tree (each value knows its line), environment overrides
//! are grafted onto it (each knows its variable), and `${NAME}` references are substituted in
//! place. Only then is the tree read into typed structs, so every later problem can name the
//! line or the variable of the value it is about.

use std::collections::BTreeMap;
use std::sync::Arc;

use toml::de::{DeTable, DeValue};

use super::problem::{Location, Problem, Problems};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The config file, at this 1-based line.
    File {
        /// 1-based line of the value.
        line: usize,
    },
    /// An environment variable override; `raw` is the variable's text as given, used when a
    /// string is expected but the text also parsed as a number or boolean.
    Env {
        /// The variable's name.
        var: Arc<str>,
        /// The variable's value, unparsed.
        raw: String,
    },
    /// Not written anywhere: a table created implicitly.
    Builtin,
}

/// A value of the tree.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    String(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    /// TOML datetimes are kept as text; no key takes one, so they only appear in type errors.
    Datetime(String),
    Array(Vec<Node>),
    Table(BTreeMap<String, Node>),
}

impl Value {
    /// The TOML type name, for "expected X, found Y" messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::Integer(_) => "integer",
            Value::Float(_) => "float",
            Value::Boolean(_) => "boolean",
            Value::Datetime(_) => "datetime",
            Value::Array(_) => "array",
            Value::Table(_) => "table",
        }
    }
}

/// A value and its origin.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) value: Value,
    pub(crate) origin: Origin,
}

impl Node {
    /// An empty table with no origin: the root of a config that has no file.
    pub(crate) fn empty_table() -> Self {
        Node {
            value: Value::Table(BTreeMap::new()),
            origin: Origin::Builtin,
        }
    }

    /// The string this node holds, or the raw text of an env override that parsed as another
    /// scalar (`PORTICO_AUTH__DEFAULT_ROLE=123` is the role "123").
    pub(crate) fn as_text(&self) -> Option<&str> {
        match (&self.value, &self.origin) {
            (Value::String(s), _) => Some(s),
            (Value::Integer(_) | Value::Float(_) | Value::Boolean(_), Origin::Env { raw, .. }) => {
                Some(raw)
            }
            (Value::Datetime(s), _) => Some(s),
            _ => None,
        }
    }
}

// === parsing ===

/// Parses TOML text into a tree; syntax errors are reported with line and column.
pub(crate) fn parse_file(text: &str, problems: &mut Problems) -> Option<Node> {
    let (table, mut errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.span().map(|s| s.start).unwrap_or(0));
        for error in errors {
            let offset = error.span().map(|s| s.start).unwrap_or(0);
            let (line, column) = line_column(text, offset);
            problems.push(Problem {
                location: Location::FileColumn {
                    file: problems.file().clone(),
                    line,
                    column,
                },
                key: String::new(),
                message: format!("invalid TOML: {}", error.message()),
            });
        }
        return None;
    }
    let lines = LineIndex::new(text);
    let span = table.span();
    Some(Node {
        value: convert_table(table.get_ref(), &lines),
        origin: Origin::File {
            line: lines.line(span.start),
        },
    })
}

/// Parses the text of an env override: a TOML value when it is one (`3`, `true`, `["a"]`),
/// else the text itself as a string (`5m`, `127.0.0.1:9000`).
pub(crate) fn parse_env_value(var: &Arc<str>, raw: &str) -> Node {
    let origin = Origin::Env {
        var: var.clone(),
        raw: raw.to_owned(),
    };
    let lines = LineIndex::new(raw);
    let value = match DeValue::parse(raw) {
        Ok(v) => match convert_value(v.get_ref(), &lines) {
            // A bare date is more likely meant as text than as a TOML datetime.
            Value::Datetime(_) => Value::String(raw.to_owned()),
            other => other,
        },
        Err(_) => Value::String(raw.to_owned()),
    };
    let mut node = Node {
        value,
        origin: Origin::Builtin,
    };
    set_origin(&mut node, &origin);
    node
}

/// Marks every value under `node` with `origin` (values parsed from an env var's text).
fn set_origin(node: &mut Node, origin: &Origin) {
    node.origin = origin.clone();
    match &mut node.value {
        Value::Array(items) => items.iter_mut().for_each(|n| set_origin(n, origin)),
        Value::Table(map) => map.values_mut().for_each(|n| set_origin(n, origin)),
        _ => {}
    }
}

fn convert_table(table: &DeTable<'_>, lines: &LineIndex) -> Value {
    let map = table
        .iter()
        .map(|(key, value)| {
            let node = Node {
                value: convert_value(value.get_ref(), lines),
                origin: Origin::File {
                    line: lines.line(key.span().start),
                },
            };
            (key.get_ref().to_string(), node)
        })
        .collect();
    Value::Table(map)
}

fn convert_value(value: &DeValue<'_>, lines: &LineIndex) -> Value {
    match value {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => Value::Integer(n),
            // Out of i64 range: keep the digits so the type error can show them.
            Err(_) => Value::String(i.to_string()),
        },
        DeValue::Float(f) => Value::Float(f.as_str().parse().unwrap_or(f64::NAN)),
        DeValue::Boolean(b) => Value::Boolean(*b),
        DeValue::Datetime(d) => Value::Datetime(d.to_string()),
        DeValue::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| Node {
                    value: convert_value(item.get_ref(), lines),
                    origin: Origin::File {
                        line: lines.line(item.span().start),
                    },
                })
                .collect(),
        ),
        DeValue::Table(t) => convert_table(t, lines),
    }
}

/// Byte offset → 1-based line and column.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Start offsets of every line, for offset → line lookups.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { starts }
    }

    fn line(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

// === env overrides ===

/// Puts `value` at `path` (lowercased segments; numeric segments index arrays), creating
/// tables on the way. Fails with words when the path runs into a value that is not a table.
pub(crate) fn graft(root: &mut Node, path: &[String], value: Node) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else {
        return Err("empty key".to_owned());
    };
    let mut node = root;
    let mut walked = String::new();
    for segment in parents {
        node = child_mut(node, segment, &walked, true)?;
        push_segment(&mut walked, segment);
    }
    match &mut node.value {
        Value::Table(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) => {
            let slot = index_into(items, last, &walked)?;
            *slot = value;
            Ok(())
        }
        other => Err(format!(
            "cannot set {last:?}: {} is a {}, not a table",
            display_path(&walked),
            other.type_name()
        )),
    }
}

fn child_mut<'a>(
    node: &'a mut Node,
    segment: &str,
    walked: &str,
    create: bool,
) -> Result<&'a mut Node, String> {
    match &mut node.value {
        Value::Table(map) => {
            if !map.contains_key(segment) && create {
                map.insert(segment.to_owned(), Node::empty_table());
            }
            map.get_mut(segment)
                .ok_or_else(|| format!("no key {segment:?}"))
        }
        Value::Array(items) => index_into(items, segment, walked),
        other => Err(format!(
            "{} is a {}, not a table",
            display_path(walked),
            other.type_name()
        )),
    }
}

fn index_into<'a>(
    items: &'a mut [Node],
    segment: &str,
    walked: &str,
) -> Result<&'a mut Node, String> {
    let len = items.len();
    let index: usize = segment.parse().map_err(|_| {
        format!(
            "{} is an array: expected an index, found {segment:?}",
            display_path(walked)
        )
    })?;
    items.get_mut(index).ok_or_else(|| {
        format!(
            "{} has {len} entries; index {index} is out of range",
            display_path(walked)
        )
    })
}

fn push_segment(path: &mut String, segment: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(segment);
}

fn display_path(path: &str) -> &str {
    if path.is_empty() { "the root" } else { path }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_know_their_lines() {
        let mut problems = Problems::new("t.toml".into());
        let root = parse_file("[a]\n\nb = 1\n[[c]]\nd = 'x'\n", &mut problems).unwrap();
        let Value::Table(map) = &root.value else {
            panic!()
        };
        let Value::Table(a) = &map["a"].value else {
            panic!()
        };
        assert_eq!(a["b"].origin, Origin::File { line: 3 });
        let Value::Array(c) = &map["c"].value else {
            panic!()
        };
        assert_eq!(c[0].origin, Origin::File { line: 4 });
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let mut problems = Problems::new("t.toml".into());
        assert!(parse_file("a = 1\nb = = 2\n", &mut problems).is_none());
        let text = problems.finish(()).unwrap_err().to_string();
        assert!(text.starts_with("t.toml:2:5: invalid TOML"), "{text}");
    }

    #[test]
    fn env_text_parses_as_toml_scalar_or_string() {
        let var: Arc<str> = "V".into();
        assert!(matches!(
            parse_env_value(&var, "3").value,
            Value::Integer(3)
        ));
        assert!(matches!(
            parse_env_value(&var, "5m").value,
            Value::String(_)
        ));
        assert!(matches!(
            parse_env_value(&var, "[\"a\"]").value,
            Value::Array(_)
        ));
        assert!(matches!(
            parse_env_value(&var, "2026-01-01").value,
            Value::String(_)
        ));
    }

    #[test]
    fn graft_creates_tables_and_indexes_arrays() {
        let mut problems = Problems::new("t.toml".into());
        let mut root = parse_file("[[routes]]\nprefix = '/a'\n", &mut problems).unwrap();
        let var: Arc<str> = "V".into();
        let path = |s: &str| s.split('.').map(str::to_owned).collect::<Vec<_>>();
        graft(
            &mut root,
            &path("upstreams.etl.timeout"),
            parse_env_value(&var, "2s"),
        )
        .unwrap();
        graft(
            &mut root,
            &path("routes.0.prefix"),
            parse_env_value(&var, "/b"),
        )
        .unwrap();
        assert!(
            graft(
                &mut root,
                &path("routes.3.prefix"),
                parse_env_value(&var, "/b")
            )
            .is_err()
        );
        assert!(
            graft(
                &mut root,
                &path("upstreams.etl.timeout.x"),
                parse_env_value(&var, "1")
            )
            .is_err()
        );
    }
}
