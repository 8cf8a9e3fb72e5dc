//! The stylesheet and the scripts, compiled into the binary and served under
//! `/dashboard/assets/`.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// `(name, content type, body)` of every asset.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "dashboard.css",
        "text/css; charset=utf-8",
        include_str!("../assets/dashboard.css"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/live.js"),
    ),
    (
        "status.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/status.js"),
    ),
    (
        "demo.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/demo.js"),
    ),
    (
        "oauth.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/oauth.js"),
    ),
];

/// `GET /dashboard/assets/{name}`.
pub(crate) async fn serve(Path(name): Path<String>) -> Response {
    let Some((_, kind, body)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return crate::message_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such file in the dashboard.",
        );
    };
    let mut response = (*body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
