//! `${NAME}` references: every string of the tree may name an environment variable, replaced
//! by its value before the tree is read. `$${` stands for a literal `${`; an unset variable or
//! a malformed reference is a problem at the value's line or variable.

use super::problem::Problems;
use super::tree::{Node, Value};

/// Replaces `${NAME}` in every string of the tree with the variable's value from `lookup`;
/// `$${` stands for a literal `${`. Unset or malformed references are problems.
pub(crate) fn substitute(
    node: &mut Node,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) {
    match &mut node.value {
        Value::String(s) if s.contains('$') => match expand(s, lookup) {
            Ok(expanded) => *s = expanded,
            Err(message) => problems.at(&node.origin, path, message),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute(item, &format!("{path}[{i}]"), lookup, problems);
            }
        }
        Value::Table(map) => {
            for (key, child) in map.iter_mut() {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                substitute(child, &child_path, lookup, problems);
            }
        }
        _ => {}
    }
}

/// Expands one string; the error names the first bad reference.
fn expand(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut unset = Vec::new();
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after.find('}').ok_or_else(|| {
                "unterminated \"${\" (write \"$${\" for a literal \"${\")".to_owned()
            })?;
            let name = &after[..end];
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!("invalid variable name in \"${{{name}}}\""));
            }
            match lookup(name) {
                Some(value) => out.push_str(&value),
                None => unset.push(name.to_owned()),
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    match unset.as_slice() {
        [] => Ok(out),
        [one] => Err(format!("environment variable {one} is not set")),
        many => Err(format!(
            "environment variables {} are not set",
            many.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "SET").then(|| "value".to_owned())
    }

    #[test]
    fn references_are_expanded_and_escapes_kept_literal() {
        assert_eq!(expand("a-${SET}-b", &env).unwrap(), "a-value-b");
        assert_eq!(expand("$${SET} costs $5", &env).unwrap(), "${SET} costs $5");
    }

    #[test]
    fn unset_and_malformed_references_are_errors() {
        assert_eq!(
            expand("${UNSET}", &env).unwrap_err(),
            "environment variable UNSET is not set"
        );
        assert!(expand("${SET", &env).unwrap_err().contains("unterminated"));
        assert!(
            expand("${1X}", &env)
                .unwrap_err()
                .contains("invalid variable name")
        );
    }
}
