//! `GET /openapi.json`: the OpenAPI 3.1 description of Portico's own HTTP endpoints.
//!
//! The document is a checked-in JSON file (`src/openapi.json`) embedded with
//! `include_str!`, not generated from the handlers: the contract is DESIGN.md's, written once
//! where a reviewer reads it whole, and the build stays free of a derive-macro crate. What
//! keeps it true is tested, not generated: `tests/openapi.rs` checks that every route of the
//! public router is in it and that every path in it answers something other than REQ_003 from
//! the real binary, and the schemathesis test there checks every answer against it.
//!
//! Each serving command serves the part of the document it answers: `portico up` all of it,
//! `portico auth` the Auth API, `portico gateway` the gateway's own paths, `portico realtime`
//! the hub's (operational endpoints everywhere); the dashboard is `portico up`'s alone. Paths
//! of configured gateway routes (`[[routes]]`) belong to their upstreams and are not
//! described (docs/openapi.md says why).

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::Value;

use crate::up::Role;

/// The path the document is served at.
pub const PATH: &str = "/openapi.json";

/// The whole document, as checked in (what `portico up` serves).
pub const DOCUMENT: &str = include_str!("openapi.json");

/// Path prefixes (whole segments) served by every command: the operational endpoints and
/// this document.
const OPERATIONS: &[&str] = &["/health", "/metrics", "/status", PATH];

/// Whether `role` serves the documented `path`.
pub fn serves(role: Role, path: &str) -> bool {
    let under = |prefix: &str| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    let auth = || {
        under("/auth")
            || path == "/.well-known/jwks.json"
            || path == "/.well-known/openid-configuration"
    };
    let gateway = || path == "/.well-known/portico-identity-jwks.json";
    let hub = || under("/ws") || under("/internal");
    // The dashboard needs the in-process auth service: `portico up` only.
    let dashboard = || path == "/" || under("/dashboard");
    OPERATIONS.iter().any(|p| under(p))
        || match role {
            Role::Up => auth() || gateway() || hub() || dashboard(),
            Role::Auth => auth(),
            Role::Gateway => gateway(),
            Role::Realtime => hub(),
        }
}

/// The document `role` serves: [`DOCUMENT`] without the paths it does not answer.
pub fn document(role: Role) -> Result<Value, serde_json::Error> {
    let mut document: Value = serde_json::from_str(DOCUMENT)?;
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        paths.retain(|path, _| serves(role, path));
    }
    Ok(document)
}

/// `GET /openapi.json` for `role`, the body rendered once.
pub fn routes(role: Role) -> Router {
    let body = match document(role).and_then(|d| serde_json::to_vec(&d)) {
        Ok(bytes) => Bytes::from(bytes),
        // The embedded document is valid JSON (the unit test below); should it ever not be,
        // serve it as it is rather than fail the whole server.
        Err(e) => {
            tracing::error!("the embedded OpenAPI document does not parse: {e}");
            Bytes::from_static(DOCUMENT.as_bytes())
        }
    };
    Router::new().route(
        PATH,
        get(move || {
            let body = body.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    body,
                )
                    .into_response()
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(role: Role) -> Vec<String> {
        let document = document(role).expect("the embedded document parses");
        document["paths"]
            .as_object()
            .expect("paths is an object")
            .keys()
            .cloned()
            .collect()
    }

    #[test]
    fn embedded_document_is_openapi_3_1_with_the_error_envelope() {
        let document = document(Role::Up).expect("the embedded document parses");
        assert_eq!(document["openapi"], "3.1.0");
        let error = &document["components"]["schemas"]["Error"];
        assert_eq!(
            error["required"],
            serde_json::json!(["error", "status"]),
            "{error}"
        );
        let codes = error["properties"]["error"]["properties"]["code"]["enum"]
            .as_array()
            .expect("the code enum");
        for code in portico_core::error::ErrorCode::ALL {
            assert!(
                codes.contains(&Value::from(code.as_str())),
                "{} is not in the Error schema's code enum",
                code.as_str()
            );
        }
        assert_eq!(codes.len(), portico_core::error::ErrorCode::ALL.len());
    }

    #[test]
    fn each_command_serves_only_its_own_paths() {
        let up = paths(Role::Up);
        assert!(up.iter().any(|p| p == "/ws") && up.iter().any(|p| p == "/auth/login"));
        let auth = paths(Role::Auth);
        assert!(auth.iter().any(|p| p == "/auth/login"), "{auth:?}");
        assert!(
            !auth
                .iter()
                .any(|p| p == "/ws" || p.starts_with("/internal"))
        );
        let gateway = paths(Role::Gateway);
        assert!(
            !gateway.iter().any(|p| p.starts_with("/auth")),
            "{gateway:?}"
        );
        assert!(
            gateway
                .iter()
                .any(|p| p == "/.well-known/portico-identity-jwks.json")
        );
        let realtime = paths(Role::Realtime);
        assert!(realtime.iter().any(|p| p == "/internal/publish"));
        assert!(up.iter().any(|p| p == "/dashboard/keys"));
        for role in [Role::Auth, Role::Gateway, Role::Realtime] {
            let served = paths(role);
            assert!(
                !served
                    .iter()
                    .any(|p| p == "/" || p.starts_with("/dashboard")),
                "{role:?} serves no dashboard: {served:?}"
            );
        }
        assert!(!realtime.iter().any(|p| p.starts_with("/.well-known")));
        for role in [Role::Up, Role::Auth, Role::Gateway, Role::Realtime] {
            let served = paths(role);
            for path in ["/health", "/health/live", "/metrics", PATH] {
                assert!(served.iter().any(|p| p == path), "{role:?} lacks {path}");
            }
        }
    }
}
