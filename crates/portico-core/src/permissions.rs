//! Whether granted permissions satisfy a requirement — the one rule auth, the gateway and
//! the realtime hub all apply.
//!
//! A permission is a dotted name (`etl.access`); a grant may be exact, `*` (everything) or a
//! namespace wildcard (`etl.*` grants `etl.access` and `etl.jobs.start`, not `etl` itself).

/// Whether `granted` permits `required` (exact, `*`, or a `prefix.*` wildcard).
pub fn permits(granted: &[String], required: &str) -> bool {
    granted.iter().any(|grant| grant_matches(grant, required))
}

/// Whether `granted` permits every one of `required`.
pub fn permits_all(granted: &[String], required: &[String]) -> bool {
    required.iter().all(|r| permits(granted, r))
}

fn grant_matches(grant: &str, required: &str) -> bool {
    if grant == "*" || grant == required {
        return true;
    }
    match grant.strip_suffix(".*") {
        Some(prefix) => required
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.') && rest.len() > 1),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn wildcards_match_as_documented() {
        assert!(permits(&strings(&["*"]), "anything.at.all"));
        assert!(permits(&strings(&["etl.*"]), "etl.access"));
        assert!(permits(&strings(&["etl.*"]), "etl.jobs.start"));
        assert!(!permits(&strings(&["etl.*"]), "etl"));
        assert!(!permits(&strings(&["etl.*"]), "etlx.access"));
        assert!(!permits(&strings(&["etl.access"]), "etl.admin"));
        assert!(permits_all(&strings(&["a", "b"]), &strings(&["a", "b"])));
        assert!(!permits_all(&strings(&["a"]), &strings(&["a", "b"])));
        assert!(permits_all(&strings(&[]), &[]));
    }
}
