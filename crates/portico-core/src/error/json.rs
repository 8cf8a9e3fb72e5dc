//! [`ApiJson`]: axum's JSON extractor with envelope rejections that name the bad field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ApiError, ErrorCode};

/// A JSON request body or response, like [`axum::Json`], whose rejections are envelopes:
///
/// - not `Content-Type: application/json` (or `application/*+json`) → 400 `REQ_001`;
/// - body over the limit ([`axum::extract::DefaultBodyLimit`]) → 413 `REQ_002`;
/// - not JSON at all (syntax, truncated) → 400 `REQ_001`;
/// - JSON of the wrong shape (wrong type, missing or unknown field) → 422 `REQ_001` with
///   `details.fields = {"<path>": "<problem>"}`, the path dotted (`user.emails[2]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(
                ApiError::bad_request("expected Content-Type: application/json")
                    .with_detail("content_type", "expected application/json"),
            );
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorCode::Req002, "request body too large")
            } else {
                ApiError::bad_request("could not read the request body")
            }
        })?;
        Self::from_bytes(&bytes)
    }
}

impl<T: DeserializeOwned> ApiJson<T> {
    /// Deserializes `bytes`, with the same errors as the extractor.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ApiError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(shape_error)?;
        de.end().map_err(|e| syntax_error(&e))?;
        Ok(ApiJson(value))
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || subtype.to_ascii_lowercase().ends_with("+json"))
}

/// serde_json's message without its " at line L column C" suffix.
fn bare_message(err: &serde_json::Error) -> String {
    let full = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    full.strip_suffix(&suffix).unwrap_or(&full).to_owned()
}

fn syntax_error(err: &serde_json::Error) -> ApiError {
    ApiError::bad_request(format!("malformed JSON: {}", bare_message(err)))
        .with_detail("line", err.line())
        .with_detail("column", err.column())
}

fn shape_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = err.inner();
    if !matches!(inner.classify(), serde_json::error::Category::Data) {
        return syntax_error(inner);
    }
    let problem = bare_message(inner);
    let path = err.path().to_string();
    // serde reports a missing field at its parent's path; name the field itself. (An
    // unknown field's path already ends with it.)
    let field = problem
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
        .map(|name| {
            if path == "." {
                name.to_owned()
            } else {
                format!("{path}.{name}")
            }
        })
        .unwrap_or(path);
    ApiError::invalid_fields(StatusCode::UNPROCESSABLE_ENTITY, [(field, problem)])
}
