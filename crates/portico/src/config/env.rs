//! Environment variables: the `PORTICO_` overrides and the lookup for `${NAME}`.
//!
//! Any key can be set as `PORTICO_<SECTION>__<KEY>`: the name after the prefix is lowercased
//! and split on `__` into a key path, so `PORTICO_AUTH__ACCESS_TOKEN_TTL=5m` sets
//! `auth.access_token_ttl` and `PORTICO_UPSTREAMS__ETL__TIMEOUT=2s` sets
//! `upstreams.etl.timeout`; a numeric segment indexes an array (`PORTICO_ROUTES__0__PREFIX`).
//! Four shortcuts name the most common keys: [`SHORTCUTS`]. Variables meant for other
//! readers are left alone: [`IGNORED_PREFIXES`]. A few standard variables of other tools fill
//! a key the config leaves empty: [`FALLBACKS`].
//!
//! The environment is a value ([`Env`]) so tests pass a map instead of changing the process's.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::problem::Problems;
use super::tree::{self, Node, Origin, Value};

/// The prefix of every override variable.
pub const PREFIX: &str = "PORTICO_";

/// Variables that name a key directly.
pub const SHORTCUTS: [(&str, &str); 4] = [
    ("PORTICO_LISTEN", "server.listen"),
    ("PORTICO_DATA_DIR", "server.data_dir"),
    ("PORTICO_DATABASE_URL", "database.url"),
    ("PORTICO_REDIS_URL", "redis.url"),
];

/// `PORTICO_` variables that are not config overrides: test settings, demo flags, the log
/// flags (`PORTICO_LOG_FORMAT`, `PORTICO_LOG_LEVEL`) and the config file flag
/// (`PORTICO_CONFIG`), which the command line reads itself.
pub const IGNORED_PREFIXES: [&str; 4] = [
    "PORTICO_TEST_",
    "PORTICO_DEMO_",
    "PORTICO_LOG",
    "PORTICO_CONFIG",
];

/// Standard variables that set a key only when neither the file nor a `PORTICO_` override
/// gives it a non-empty value: OpenTelemetry's collector endpoint.
pub const FALLBACKS: [(&str, &str); 1] = [(
    super::schema::telemetry::OTEL_ENDPOINT_VAR,
    "telemetry.otlp_endpoint",
)];

/// A snapshot of environment variables.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// The process environment. Variables whose name or value is not UTF-8 are left out
    /// (a `${NAME}` naming one reports it as unset).
    pub fn from_process() -> Self {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Self { vars }
    }

    /// An environment holding exactly `vars`.
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// The override variables, with the key path each one sets.
    fn overrides(&self) -> impl Iterator<Item = (&str, &str, Vec<String>)> {
        self.vars.iter().filter_map(|(name, value)| {
            let path = override_path(name)?;
            Some((name.as_str(), value.as_str(), path))
        })
    }
}

/// The key path an override variable sets, or `None` when the variable is not an override.
pub(crate) fn override_path(name: &str) -> Option<Vec<String>> {
    let rest = name.strip_prefix(PREFIX)?;
    if IGNORED_PREFIXES.iter().any(|p| name.starts_with(p)) {
        return None;
    }
    if let Some((_, key)) = SHORTCUTS.iter().find(|(var, _)| *var == name) {
        return Some(key.split('.').map(str::to_owned).collect());
    }
    Some(rest.split("__").map(str::to_ascii_lowercase).collect())
}

/// Applies every override variable to the tree. Overrides are applied in name order, so a
/// shortcut and its long form (`PORTICO_LISTEN`, `PORTICO_SERVER__LISTEN`) resolve the same
/// way every time; setting both is reported as a conflict.
pub(crate) fn apply_overrides(root: &mut Node, env: &Env, problems: &mut Problems) {
    let mut set_by: BTreeMap<Vec<String>, Arc<str>> = BTreeMap::new();
    for (name, value, path) in env.overrides() {
        let var: Arc<str> = name.into();
        let key = path.join(".");
        let origin = Origin::Env {
            var: var.clone(),
            raw: value.to_owned(),
        };
        if path.iter().any(String::is_empty) {
            problems.at(
                &origin,
                &key,
                "malformed override name (empty segment between \"__\")",
            );
            continue;
        }
        if let Some(other) = set_by.get(&path) {
            problems.at(
                &origin,
                &key,
                format!("also set by {other}; set only one of them"),
            );
            continue;
        }
        match tree::graft(root, &path, tree::parse_env_value(&var, value)) {
            Ok(()) => {
                set_by.insert(path, var);
            }
            Err(message) => problems.at(&origin, &key, message),
        }
    }
}

/// Applies [`FALLBACKS`] (after the overrides): each set, non-empty variable fills its key
/// when the key is absent or empty. Problems with the value then name the variable.
pub(crate) fn apply_fallbacks(root: &mut Node, env: &Env, problems: &mut Problems) {
    for (var, key) in FALLBACKS {
        let Some(value) = env.get(var).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        let path: Vec<String> = key.split('.').map(str::to_owned).collect();
        if is_set(root, &path) {
            continue;
        }
        let origin = Origin::Env {
            var: var.into(),
            raw: value.to_owned(),
        };
        let node = Node {
            value: Value::String(value.to_owned()),
            origin: origin.clone(),
        };
        if let Err(message) = tree::graft(root, &path, node) {
            problems.at(&origin, key, message);
        }
    }
}

/// Whether the tree has a non-empty value at `path`. Anything but a table on the way counts
/// as set, so the reader reports it as it is.
fn is_set(root: &Node, path: &[String]) -> bool {
    let mut node = root;
    for segment in path {
        let Value::Table(map) = &node.value else {
            return true;
        };
        match map.get(segment) {
            Some(child) => node = child,
            None => return false,
        }
    }
    !matches!(node.as_text(), Some(text) if text.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_underscore_nests_and_names_are_lowercased() {
        assert_eq!(
            override_path("PORTICO_UPSTREAMS__ETL__TIMEOUT").unwrap(),
            ["upstreams", "etl", "timeout"]
        );
        assert_eq!(
            override_path("PORTICO_AUTH__ACCESS_TOKEN_TTL").unwrap(),
            ["auth", "access_token_ttl"]
        );
        assert_eq!(
            override_path("PORTICO_REDIS_URL").unwrap(),
            ["redis", "url"]
        );
    }

    #[test]
    fn foreign_variables_are_not_overrides() {
        for name in [
            "HOME",
            "PORTICO_TEST_DATABASE_URL",
            "PORTICO_DEMO_LISTEN",
            "PORTICO_LOG_FORMAT",
            "PORTICO_LOG",
            "PORTICO_CONFIG",
        ] {
            assert_eq!(override_path(name), None, "{name}");
        }
    }
}
