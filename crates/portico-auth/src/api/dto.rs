//! The JSON bodies of the Auth API, exactly as DESIGN.md names them.

use serde::{Deserialize, Serialize};

/// `POST /auth/register`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The account's email (its login name).
    pub email: String,
    /// The password (policy: ≥ 8 characters, not the email).
    pub password: String,
    /// A display name.
    #[serde(default)]
    pub name: Option<String>,
}

/// `POST /auth/login`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The account's email.
    pub email: String,
    /// Its password.
    pub password: String,
}

/// `POST /auth/refresh`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token to rotate.
    pub refresh_token: String,
}

/// `POST /auth/logout` (body optional).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// The session's refresh token, when the client has it.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// `POST /auth/validate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    /// An access token, API key or service token.
    pub token: String,
}

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    /// Stable id.
    pub id: String,
    /// Email as registered.
    pub email: String,
    /// Display name.
    pub name: Option<String>,
    /// Granted roles.
    pub roles: Vec<String>,
    /// Permissions the roles grant.
    pub permissions: Vec<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
}

/// The answer of register, login and refresh.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The user the tokens are for.
    pub user: UserView,
    /// A short-lived JWT.
    pub access_token: String,
    /// An opaque, single-use refresh token.
    pub refresh_token: String,
    /// Always `"Bearer"`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// The answer of `/auth/validate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidateResponse {
    /// Always `true` (failures are errors).
    pub valid: bool,
    /// The user (or service client) the token stands for.
    pub user_id: String,
    /// The user's email (empty for services).
    pub email: String,
    /// Permissions granted.
    pub permissions: Vec<String>,
    /// Roles held.
    pub roles: Vec<String>,
    /// `"user"`, `"api_key"` or `"service"`.
    pub token_type: String,
    /// RFC 3339 expiry, if the token expires.
    pub expires_at: Option<String>,
}
