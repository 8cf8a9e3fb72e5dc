//! The Auth API of DESIGN.md as an axum router: `/auth/*` and `/.well-known/*`.
//!
//! Handlers only translate HTTP into [`AuthService`] calls: bodies through
//! [`ApiJson`] (REQ_001 naming the field, REQ_002 over the 64 KiB limit), the bearer token
//! from `Authorization`, the client address from the connection; every failure is an
//! [`AuthError`] turned into the envelope.

pub mod dto;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use portico_core::error::{ApiError, ApiJson};

use crate::error::AuthError;
use crate::service::{AuthService, CallbackQuery};
use dto::{
    CreateApiKeyRequest, LoginRequest, LogoutRequest, RefreshRequest, RegisterRequest,
    TokenRequest, ValidateRequest,
};

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
        .route("/auth/api-keys", post(create_api_key).get(list_api_keys))
        .route("/auth/api-keys/{id}", delete(delete_api_key))
        .route("/auth/token", post(token))
        .route("/auth/oauth", get(oauth_start))
        .route("/auth/callback", get(oauth_callback))
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

async fn create_api_key(
    State(auth): Shared,
    headers: HeaderMap,
    ApiJson(req): ApiJson<CreateApiKeyRequest>,
) -> Result<Response> {
    let created = auth.create_api_key(bearer(&headers)?, req).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn list_api_keys(State(auth): Shared, headers: HeaderMap) -> Result<Response> {
    Ok(Json(auth.list_api_keys(bearer(&headers)?).await?).into_response())
}

async fn delete_api_key(
    State(auth): Shared,
    headers: HeaderMap,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Result<StatusCode> {
    // axum's own rejection (an id that is not UTF-8 once decoded) would be a REQ_001 that
    // does not name the field.
    let Path(id) = id.map_err(|e| {
        ApiError::invalid_fields(StatusCode::BAD_REQUEST, [("id".into(), e.body_text())])
    })?;
    auth.delete_api_key(bearer(&headers)?, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /auth/token`: OAuth 2.0 client credentials (RFC 6749 §4.4), credentials in the form
/// or as HTTP Basic.
async fn token(
    State(auth): Shared,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response> {
    let form: TokenRequest = serde_urlencoded::from_bytes(&body)
        .map_err(|e| ApiError::from(AuthError::field("body", e.to_string())))?;
    if form.grant_type != "client_credentials" {
        return Err(AuthError::field("grant_type", "only client_credentials is supported").into());
    }
    let (id, secret) = match (form.client_id, form.client_secret) {
        (Some(id), Some(secret)) => (id, secret),
        _ => basic_credentials(&headers).ok_or(AuthError::InvalidCredentials)?,
    };
    Ok(Json(auth.service_token(&id, &secret).await?).into_response())
}

/// `GET /auth/oauth?provider=P&redirect_uri=U`: 302 to the provider.
async fn oauth_start(State(auth): Shared, RawQuery(query): RawQuery) -> Result<Response> {
    #[derive(serde::Deserialize)]
    struct Start {
        provider: Option<String>,
        redirect_uri: Option<String>,
    }
    let start: Start = serde_urlencoded::from_str(query.as_deref().unwrap_or_default())
        .map_err(|e| AuthError::field("query", e.to_string()))?;
    let provider = start
        .provider
        .ok_or_else(|| AuthError::field("provider", "is required"))?;
    let redirect_uri = start
        .redirect_uri
        .ok_or_else(|| AuthError::field("redirect_uri", "is required"))?;
    let target = auth.oauth_start(&provider, &redirect_uri).await?;
    Ok(redirect(target.as_str()))
}

/// `GET /auth/callback?code&state`: 302 to the login's `redirect_uri` with the tokens in
/// the fragment (which browsers never send to a server).
async fn oauth_callback(State(auth): Shared, RawQuery(query): RawQuery) -> Result<Response> {
    let query: CallbackQuery = serde_urlencoded::from_str(query.as_deref().unwrap_or_default())
        .map_err(|_| AuthError::OAuth("malformed callback query".into()))?;
    let target = auth.oauth_callback(query).await?;
    Ok(redirect(target.as_str()))
}

/// A 302 that no cache keeps and that leaks no referrer.
fn redirect(location: &str) -> Response {
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
    )
        .into_response()
}

/// `Authorization: Basic base64(id:secret)`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine as _;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

async fn jwks(State(auth): Shared) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=60")],
        Json(auth.jwks().await),
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
