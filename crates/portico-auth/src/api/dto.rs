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

/// The longest lifetime `POST /auth/api-keys` accepts in `expires_in`: 100 years, in seconds.
/// A bound at all because the expiry is a point in time the clock, the store (Unix
/// milliseconds) and RFC 3339 must all be able to hold.
pub const MAX_API_KEY_EXPIRES_IN: u64 = 100 * 365 * 24 * 60 * 60;

/// `POST /auth/api-keys`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// A label for the key (1–100 characters).
    pub name: String,
    /// Permissions the key carries, each one the owner must hold; omitted: whatever the owner
    /// holds when the key is used.
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
    /// Seconds until the key stops working (1 to [`MAX_API_KEY_EXPIRES_IN`]); omitted: never.
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// An API key as listed (never with its secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKeyView {
    /// Id for `DELETE /auth/api-keys/{id}`.
    pub id: String,
    /// The label.
    pub name: String,
    /// The key's public prefix (`pk_<prefix>_…`).
    pub prefix: String,
    /// Permissions (`["*"]`: the owner's).
    pub permissions: Vec<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 expiry, if any.
    pub expires_at: Option<String>,
    /// RFC 3339 time of last use, if any.
    pub last_used_at: Option<String>,
}

/// The answer of `POST /auth/api-keys`: the only time the whole key is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKeyCreated {
    /// Id for `DELETE /auth/api-keys/{id}`.
    pub id: String,
    /// The whole key; store it now, it cannot be shown again.
    pub key: String,
    /// The label.
    pub name: String,
    /// Permissions (`["*"]`: the owner's).
    pub permissions: Vec<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 expiry, if any.
    pub expires_at: Option<String>,
}

/// The form of `POST /auth/token` (client credentials in the body; HTTP Basic also works).
#[derive(Debug, Clone, Deserialize)]
pub struct TokenRequest {
    /// Must be `client_credentials`.
    pub grant_type: String,
    /// The client id, unless sent with HTTP Basic.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The client secret, unless sent with HTTP Basic.
    #[serde(default)]
    pub client_secret: Option<String>,
}

/// The answer of `POST /auth/token`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceTokenResponse {
    /// A JWT with `token_type: service` and the client's audiences.
    pub access_token: String,
    /// Always `"Bearer"`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}
