//! The dashboard `portico up` serves under `/dashboard/`: server-rendered pages to sign in
//! (password or a configured OAuth provider), watch the services (circuit states, `/health`
//! checks, WebSocket connections; live over `/ws`), manage API keys, and start an agent run of
//! the demo and watch its events stream in.
//!
//! The pages are HTML made on the server; a little plain JavaScript (no build step) adds the
//! live parts. Every page works through the in-process [`AuthService`] and the other parts
//! the binary hands over in [`DashboardParts`]; nothing is global.
//!
//! # Layout
//! - [`html`]: the one escaping function and the page frame.
//! - [`session`]: cookies, the CSRF token, refreshing an expired access token.
//! - `signin`: sign in with a password or OAuth, the OAuth callback, sign out.
//! - [`status`]: the status page, its snapshot, and the live publisher.
//! - `keys`: create (shown once), list, delete API keys.
//! - `demo`: the agent-run demo page.
//! - `assets`: the stylesheet and scripts, compiled in.
//!
//! # Example
//! ```no_run
//! # async fn run(parts: portico_dashboard::DashboardParts) {
//! let dashboard = portico_dashboard::Dashboard::new(parts);
//! dashboard.spawn_live_status();
//! let app: axum::Router = dashboard.router();
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod html;
pub mod session;
pub mod status;

mod assets;
mod demo;
mod keys;
mod signin;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use portico_auth::error::AuthError;
use portico_auth::service::AuthService;
use portico_core::clock::SharedClock;
use portico_core::health::HealthRegistry;
use portico_core::shutdown::Shutdown;
use portico_realtime::Hub;

use crate::session::CookiePolicy;

/// Where the dashboard's pages live.
pub const BASE: &str = "/dashboard";

/// The `/status/services` document, as the binary makes it (the dashboard shows the same).
pub trait ServiceReport: Send + Sync {
    /// `{"services": {name: {service, state, failure_count, last_failure, last_state_change}}, …}`.
    fn report(&self) -> serde_json::Value;
}

/// What the dashboard is built from.
pub struct DashboardParts {
    /// The in-process auth service: sign-in, sessions, API keys.
    pub auth: Arc<AuthService>,
    /// The `/health` checks.
    pub health: HealthRegistry,
    /// The circuit states of `/status/services`.
    pub services: Arc<dyn ServiceReport>,
    /// The WebSocket hub (connection counts and the live status channel), when it runs.
    pub hub: Option<Hub>,
    /// Whether `[realtime.actions] start_agent` is configured (the demo page's button).
    pub agent_action: bool,
    /// How often the live status is published while a connection here subscribes to it.
    pub live_every: Duration,
    /// Stops the live publisher.
    pub shutdown: Shutdown,
    /// Time for the live publisher's interval and the snapshot's timestamp.
    pub clock: SharedClock,
}

/// The dashboard. Cheap to clone.
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub parts: DashboardParts,
    pub cookies: CookiePolicy,
    /// Configured OAuth providers, by name, in config order.
    pub providers: Vec<String>,
}

impl Inner {
    /// The signed-in session of this request (its cookies refreshed when needed), if any.
    pub(crate) async fn session(&self, headers: &HeaderMap) -> Option<session::Session> {
        session::resolve(&self.parts.auth, &self.cookies, headers).await
    }
}

/// The state of every handler.
pub(crate) type State = axum::extract::State<Arc<Inner>>;

impl Dashboard {
    /// A dashboard over `parts`.
    pub fn new(parts: DashboardParts) -> Self {
        let settings = parts.auth.settings();
        let cookies = CookiePolicy {
            secure: settings.issuer.starts_with("https://"),
            max_age: settings.refresh_token_ttl,
        };
        let providers = settings.providers.iter().map(|p| p.name.clone()).collect();
        Self {
            inner: Arc::new(Inner {
                parts,
                cookies,
                providers,
            }),
        }
    }

    /// The pages under `/dashboard/` and `GET /` (a redirect to `/dashboard/`; the binary
    /// sends `/` here only when no gateway route claims it).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(to_dashboard))
            .route("/dashboard", get(to_dashboard))
            .route("/dashboard/", get(status::page))
            .route("/dashboard/sign-in", get(signin::form).post(signin::submit))
            .route("/dashboard/sign-out", post(signin::sign_out))
            .route("/dashboard/oauth/callback", get(signin::oauth_callback))
            .route("/dashboard/oauth/complete", post(signin::oauth_complete))
            .route("/dashboard/keys", get(keys::page).post(keys::create))
            .route("/dashboard/keys/{id}/delete", post(keys::delete))
            .route("/dashboard/demo", get(demo::page))
            .route("/dashboard/assets/{name}", get(assets::serve))
            .with_state(self.inner.clone())
    }

    /// Publishes the status snapshot to [`status::CHANNEL`] every `live_every` while a
    /// connection of this process subscribes to it, until shutdown. Without a hub, does
    /// nothing.
    pub fn spawn_live_status(&self) {
        status::spawn_live(self.inner.clone());
    }
}

/// Why a dashboard action failed, in words a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The auth service refused or failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A form's CSRF token was missing or wrong, or it came from another site.
    #[error("the form's CSRF token did not match")]
    Csrf,
    /// A form body could not be read.
    #[error("the form could not be read")]
    Form,
}

impl DashboardError {
    /// The HTTP status and the sentence shown on the page.
    pub fn words(&self) -> (StatusCode, String) {
        match self {
            DashboardError::Csrf => (
                StatusCode::FORBIDDEN,
                "This form has expired or was sent from another site. Reload the page and try \
                 again."
                    .to_owned(),
            ),
            DashboardError::Form => (
                StatusCode::BAD_REQUEST,
                "The form could not be read. Reload the page and try again.".to_owned(),
            ),
            DashboardError::Auth(e) => auth_words(e),
        }
    }
}

/// The status and sentence for an auth service error.
fn auth_words(e: &AuthError) -> (StatusCode, String) {
    match e {
        AuthError::InvalidCredentials => (
            StatusCode::UNAUTHORIZED,
            "Wrong email or password.".to_owned(),
        ),
        AuthError::Throttled { retry_after } => (
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many sign-in attempts. Try again in {} seconds.",
                retry_after.as_secs().max(1)
            ),
        ),
        AuthError::InvalidFields(fields) => {
            let list: Vec<String> = fields.iter().map(|(k, v)| format!("{k} {v}")).collect();
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("Please check the form: {}.", list.join("; ")),
            )
        }
        AuthError::Forbidden(why) => (StatusCode::FORBIDDEN, format!("Not allowed: {why}.")),
        AuthError::NotFound => (
            StatusCode::NOT_FOUND,
            "That key does not exist (it may have been deleted already).".to_owned(),
        ),
        AuthError::StoreUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The account database is unavailable right now. Try again shortly.".to_owned(),
        ),
        AuthError::InvalidToken(_)
        | AuthError::Expired
        | AuthError::MissingToken
        | AuthError::Revoked(_) => (
            StatusCode::UNAUTHORIZED,
            "Your session has ended. Sign in again.".to_owned(),
        ),
        AuthError::OAuth(_) | AuthError::OAuthProvider(_) => (
            StatusCode::BAD_GATEWAY,
            "Signing in with the provider did not work. Try again.".to_owned(),
        ),
        _ => {
            tracing::warn!("dashboard: auth failed: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side. Try again; the server log has the details."
                    .to_owned(),
            )
        }
    }
}

/// An HTML response with the dashboard's headers and `cookies`.
pub(crate) fn html(status: StatusCode, body: String, cookies: Vec<HeaderValue>) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(headers);
    for cookie in cookies {
        headers.append(header::SET_COOKIE, cookie);
    }
    response
}

/// `303 See Other` to `location` with `cookies`.
pub(crate) fn see_other(location: &str, cookies: Vec<HeaderValue>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    secure_headers(headers);
    for cookie in cookies {
        headers.append(header::SET_COOKIE, cookie);
    }
    response
}

/// To the sign-in page (a request without a usable session).
pub(crate) fn to_sign_in() -> Response {
    see_other("/dashboard/sign-in", Vec::new())
}

/// No caching, no framing, no sniffing, no referrer, scripts and connections to this origin
/// only.
fn secure_headers(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
}

/// `GET /` and `GET /dashboard`: to the dashboard's home.
async fn to_dashboard() -> Response {
    see_other("/dashboard/", Vec::new())
}

/// A page showing only `message` (an error in words), with a link back.
pub(crate) fn message_page(status: StatusCode, title: &str, message: &str) -> Response {
    let frame = html::Frame {
        title,
        nav: html::Nav::None,
        email: None,
        csrf: None,
        ws_token: None,
        script: None,
    };
    let content = format!(
        "{}<p><a href=\"/dashboard/\">Back to the dashboard</a></p>",
        html::error_box(message)
    );
    html(status, html::page(&frame, &content), Vec::new())
}

/// Reads a form body.
pub(crate) fn form<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, DashboardError> {
    serde_urlencoded::from_bytes(body).map_err(|_| DashboardError::Form)
}

/// The `csrf` field of a form that has no other (sign-out, delete); empty when the body is
/// unreadable, which the CSRF check then refuses.
pub(crate) fn form_csrf(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct CsrfForm {
        #[serde(default)]
        csrf: String,
    }
    form::<CsrfForm>(body).map(|f| f.csrf).unwrap_or_default()
}
