//! `[[aliases]]`: other paths for Portico's own endpoints. Seed 004's clients call
//! `/api/auth/login`; with `prefix = "/api/auth"`, `to = "/auth"` that request is served as
//! `/auth/login`, in process — no loopback hop through the gateway, so the auth component
//! sees the client's own address (its login throttle is per IP) and the answer is exactly
//! `/auth/login`'s.
//!
//! [`Aliased`] wraps the whole public service and rewrites the path before anything else
//! looks at it; everything after (request id, metrics, the front door) sees the Portico path.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use http::Uri;
use http::uri::PathAndQuery;
use tower::Service;

use crate::config::AliasConfig;

/// The public service `S` with `[[aliases]]` applied. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Aliased<S> {
    inner: S,
    aliases: Arc<[(String, String)]>,
}

impl<S> Aliased<S> {
    /// `inner` behind `aliases` (none: requests pass unchanged).
    pub fn new(inner: S, aliases: &[AliasConfig]) -> Self {
        let aliases = aliases
            .iter()
            .map(|a| {
                (
                    a.prefix.as_str().trim_end_matches('/').to_owned(),
                    a.to.as_str().trim_end_matches('/').to_owned(),
                )
            })
            .collect();
        Self { inner, aliases }
    }
}

impl<S: Service<Request>> Service<Request> for Aliased<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        if let Some(uri) = rewrite(&self.aliases, request.uri()) {
            *request.uri_mut() = uri;
        }
        self.inner.call(request)
    }
}

/// The URI with the first matching alias applied (whole segments: `/api/auth` matches
/// `/api/auth` and `/api/auth/login`, not `/api/authors`), or `None`.
fn rewrite(aliases: &[(String, String)], uri: &Uri) -> Option<Uri> {
    let path = uri.path();
    let (rest, to) = aliases.iter().find_map(|(prefix, to)| {
        let rest = path.strip_prefix(prefix.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some((rest, to))
    })?;
    let mut target = format!("{to}{rest}");
    if target.is_empty() {
        target.push('/');
    }
    if let Some(query) = uri.query() {
        target.push('?');
        target.push_str(query);
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(target).ok()?);
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aliases() -> Vec<(String, String)> {
        vec![("/api/auth".into(), "/auth".into())]
    }

    fn rewritten(uri: &str) -> Option<String> {
        rewrite(&aliases(), &uri.parse().ok()?).map(|u| u.to_string())
    }

    #[test]
    fn a_path_under_the_prefix_is_served_under_the_target() {
        assert_eq!(rewritten("/api/auth/login").as_deref(), Some("/auth/login"));
        assert_eq!(rewritten("/api/auth").as_deref(), Some("/auth"));
        assert_eq!(
            rewritten("/api/auth/oauth?provider=google&redirect_uri=x").as_deref(),
            Some("/auth/oauth?provider=google&redirect_uri=x")
        );
    }

    #[test]
    fn only_whole_segments_match() {
        assert_eq!(rewritten("/api/authors"), None);
        assert_eq!(rewritten("/api"), None);
        assert_eq!(rewritten("/auth/login"), None);
    }
}
