//! The route table: which route serves a path (the longest matching prefix, on whole path
//! segments) and the path the upstream is sent (the prefix replaced by `rewrite`).
//!
//! `/api/etl` serves `/api/etl` and `/api/etl/…`, never `/api/etlx`. A prefix ending in `/`
//! (and `/` itself) serves everything under it.

use crate::settings::RouteSettings;

/// The routes, longest prefix first.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<RouteSettings>,
}

/// A route chosen for a request path.
#[derive(Debug, Clone, Copy)]
pub struct Matched<'a> {
    /// The route.
    pub route: &'a RouteSettings,
    /// The index of the route in the table (stable for the table's lifetime).
    pub index: usize,
}

impl RouteTable {
    /// A table of `routes` (their order does not matter).
    pub fn new(mut routes: Vec<RouteSettings>) -> Self {
        routes.sort_by(|a, b| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then(a.prefix.cmp(&b.prefix))
        });
        Self { routes }
    }

    /// The routes, longest prefix first.
    pub fn routes(&self) -> &[RouteSettings] {
        &self.routes
    }

    /// The route serving `path`, if any.
    pub fn find(&self, path: &str) -> Option<Matched<'_>> {
        self.routes
            .iter()
            .enumerate()
            .find(|(_, r)| prefix_matches(&r.prefix, path))
            .map(|(index, route)| Matched { route, index })
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    let Some(rest) = path.strip_prefix(prefix) else {
        return false;
    };
    rest.is_empty() || rest.starts_with('/') || prefix.ends_with('/')
}

/// The upstream path and query for `path_and_query` served by `route`: the route's prefix
/// replaced by its `rewrite` (kept when it has none); the query is kept as it came.
pub fn upstream_path(route: &RouteSettings, path: &str, query: Option<&str>) -> String {
    let rest = path.strip_prefix(route.prefix.as_str()).unwrap_or(path);
    let mut out = match &route.rewrite {
        None => path.to_owned(),
        Some(rewrite) => {
            let base = rewrite.trim_end_matches('/');
            match (base.is_empty(), rest.is_empty()) {
                (true, true) => "/".to_owned(),
                (true, false) if rest.starts_with('/') => rest.to_owned(),
                (true, false) => format!("/{rest}"),
                (false, true) => base.to_owned(),
                (false, false) if rest.starts_with('/') => format!("{base}{rest}"),
                (false, false) => format!("{base}/{rest}"),
            }
        }
    };
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::AuthMode;

    fn route(prefix: &str, rewrite: Option<&str>) -> RouteSettings {
        RouteSettings {
            prefix: prefix.into(),
            upstream: prefix.trim_matches('/').replace('/', "_"),
            rewrite: rewrite.map(Into::into),
            auth: AuthMode::None,
            permissions: vec![],
            rate_limit: None,
            fallback: None,
            cache: None,
            cors: None,
        }
    }

    #[test]
    fn the_longest_prefix_wins_on_whole_segments() {
        let table = RouteTable::new(vec![
            route("/api", None),
            route("/api/etl", None),
            route("/api/etl/jobs", None),
            route("/static/", None),
        ]);
        let found = |p: &str| table.find(p).map(|m| m.route.prefix.clone());
        assert_eq!(
            found("/api/etl/jobs/start").as_deref(),
            Some("/api/etl/jobs")
        );
        assert_eq!(found("/api/etl/jobs").as_deref(), Some("/api/etl/jobs"));
        assert_eq!(found("/api/etl/x").as_deref(), Some("/api/etl"));
        assert_eq!(found("/api/etl").as_deref(), Some("/api/etl"));
        assert_eq!(found("/api/etlx").as_deref(), Some("/api"));
        assert_eq!(found("/api").as_deref(), Some("/api"));
        assert_eq!(found("/apix"), None);
        assert_eq!(found("/static/app.js").as_deref(), Some("/static/"));
        assert_eq!(found("/static"), None);
        assert_eq!(found("/"), None);
    }

    #[test]
    fn a_root_route_serves_everything_else() {
        let table = RouteTable::new(vec![route("/", None), route("/api", None)]);
        assert_eq!(table.find("/anything").unwrap().route.prefix, "/");
        assert_eq!(table.find("/api/x").unwrap().route.prefix, "/api");
    }

    #[test]
    fn rewrite_replaces_the_prefix_and_keeps_the_query() {
        let etl = route("/api/etl", Some("/api/v1"));
        assert_eq!(
            upstream_path(&etl, "/api/etl/jobs/start", None),
            "/api/v1/jobs/start"
        );
        assert_eq!(
            upstream_path(&etl, "/api/etl", Some("a=1&b=2")),
            "/api/v1?a=1&b=2"
        );
        let root = route("/svc", Some("/"));
        assert_eq!(upstream_path(&root, "/svc/x/y", None), "/x/y");
        assert_eq!(upstream_path(&root, "/svc", None), "/");
        let slash = route("/pub/", Some("/v2/"));
        assert_eq!(upstream_path(&slash, "/pub/file", None), "/v2/file");
        let keep = route("/api/search", None);
        assert_eq!(
            upstream_path(&keep, "/api/search/q", Some("x=1")),
            "/api/search/q?x=1"
        );
    }
}
