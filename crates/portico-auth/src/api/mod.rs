//! The Auth API of DESIGN.md as an axum router: `/auth/*` and `/.well-known/*`.
//!
//! Handlers only translate HTTP into [`AuthService`] calls: bodies through
//! [`ApiJson`] (REQ_001 naming the field, REQ_002 over the 64 KiB limit), the bearer token
//! from `Authorization`, the client address from the connection; every failure is an
//! [`AuthError`] turned into the envelope.

pub mod dto;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use portico_core::error::{ApiError, ApiJson};

use crate::error::AuthError;
use crate::service::AuthService;
use dto::{LoginRequest, LogoutRequest, RefreshRequest, RegisterRequest, ValidateRequest};

/// Largest request body the auth endpoints accept.
pub const MAX_BODY: usize = 64 * 1024;

type Shared = State<Arc<AuthService>>;
type Result<T> = std::result::Result<T, ApiError>;

/// The Auth API routes, with absolute paths (`/auth/login`, `/.well-known/jwks.json`).
pub fn router(service: Arc<AuthService>) -> Router {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/auth/validate", post(validate))
        .route("/auth/me", get(me))
        .route("/.well-known/jwks.json", get(jwks))
        .route(
            "/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(service)
}

async fn register(State(auth): Shared, ApiJson(req): ApiJson<RegisterRequest>) -> Result<Response> {
    let tokens = auth.register(req).await?;
    Ok((StatusCode::CREATED, Json(tokens)).into_response())
}

async fn login(
    State(auth): Shared,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response> {
    // Absent when served without connect info (then all clients share one address bucket).
    let address = peer.map_or_else(|| "unknown".to_owned(), |p| p.0.0.ip().to_string());
    Ok(Json(auth.login(req, &address).await?).into_response())
}

async fn refresh(State(auth): Shared, ApiJson(req): ApiJson<RefreshRequest>) -> Result<Response> {
    Ok(Json(auth.refresh(req).await?).into_response())
}

async fn logout(
    State(auth): Shared,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<StatusCode> {
    let token = bearer(&headers)?;
    let req = if body.iter().all(u8::is_ascii_whitespace) {
        LogoutRequest::default()
    } else {
        ApiJson::<LogoutRequest>::from_bytes(&body)?.0
    };
    auth.logout(token, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn validate(State(auth): Shared, ApiJson(req): ApiJson<ValidateRequest>) -> Result<Response> {
    Ok(Json(auth.validate(&req.token).await?).into_response())
}

async fn me(State(auth): Shared, headers: HeaderMap) -> Result<Response> {
    let token = bearer(&headers)?;
    Ok(Json(auth.me(token).await?).into_response())
}

async fn jwks(State(auth): Shared) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=60")],
        Json(auth.jwks()),
    )
        .into_response()
}

async fn openid_configuration(State(auth): Shared) -> Response {
    let issuer = auth.settings().issuer.trim_end_matches('/').to_owned();
    Json(serde_json::json!({
        "issuer": auth.settings().issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "token_endpoint": format!("{issuer}/auth/token"),
        "authorization_endpoint": format!("{issuer}/auth/oauth"),
        "userinfo_endpoint": format!("{issuer}/auth/me"),
        "grant_types_supported": ["refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "subject_types_supported": ["public"],
    }))
    .into_response()
}

/// The token of `Authorization: Bearer …` (AUTH_003 when there is none).
fn bearer(headers: &HeaderMap) -> std::result::Result<&str, AuthError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(AuthError::MissingToken)?
        .to_str()
        .map_err(|_| AuthError::InvalidToken("authorization header is not text".into()))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| AuthError::InvalidToken("expected \"Bearer <token>\"".into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::InvalidToken(
            "expected \"Bearer <token>\"".into(),
        ));
    }
    Ok(token.trim())
}
