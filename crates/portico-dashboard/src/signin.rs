//! Signing in and out: the password form, one button per configured OAuth provider, the
//! OAuth callback page, and sign-out.
//!
//! OAuth goes through the Auth API as any client would: the button links to
//! `/auth/oauth?provider=P&redirect_uri=<this host>/dashboard/oauth/callback`; auth sends the
//! browser back there with the tokens in the URL fragment, which only the page's script can
//! read: it posts them (with the CSRF token) to `/dashboard/oauth/complete`, which checks the
//! access token and sets the session cookies. The redirect URI must be allowed by
//! `auth.redirect_allowlist`.

use std::net::SocketAddr;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use portico_auth::api::dto::{LoginRequest, LogoutRequest};
use serde::Deserialize;

use crate::html::{self, Frame, Nav, escape};
use crate::session::{self, REFRESH_COOKIE};
use crate::{DashboardError, State, see_other};

#[derive(Deserialize)]
pub(crate) struct SignInForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

#[derive(Deserialize)]
pub(crate) struct OAuthForm {
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    refresh_token: String,
    #[serde(default)]
    csrf: String,
}

/// `GET /dashboard/sign-in`.
pub(crate) async fn form(state: State, headers: HeaderMap) -> Response {
    if state.session(&headers).await.is_some() {
        return see_other("/dashboard/", Vec::new());
    }
    render(&state, &headers, StatusCode::OK, "", None)
}

/// `POST /dashboard/sign-in`.
pub(crate) async fn submit(
    state: State,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(form) = crate::form::<SignInForm>(&body) else {
        let (status, words) = DashboardError::Form.words();
        return render(&state, &headers, status, "", Some(&words));
    };
    if !session::csrf_ok(&headers, &form.csrf) {
        let (status, words) = DashboardError::Csrf.words();
        return render(&state, &headers, status, &form.email, Some(&words));
    }
    if form.email.trim().is_empty() || form.password.is_empty() {
        return render(
            &state,
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            &form.email,
            Some("Enter your email and your password."),
        );
    }
    let address = peer.map_or_else(|| "unknown".to_owned(), |p| p.0.0.ip().to_string());
    let request = LoginRequest {
        email: form.email.clone(),
        password: form.password,
    };
    match state.parts.auth.login(request, &address).await {
        Ok(tokens) => see_other(
            "/dashboard/",
            state
                .cookies
                .new_session(&tokens.access_token, &tokens.refresh_token),
        ),
        Err(e) => {
            let (status, words) = DashboardError::from(e).words();
            render(&state, &headers, status, &form.email, Some(&words))
        }
    }
}

/// The sign-in page with `email` filled in and an optional error.
fn render(
    state: &State,
    headers: &HeaderMap,
    status: StatusCode,
    email: &str,
    error: Option<&str>,
) -> Response {
    let (csrf, set) = session::csrf(headers, &state.cookies);
    let mut content = String::new();
    if let Some(error) = error {
        content.push_str(&html::error_box(error));
    }
    let described = if error.is_some() {
        " aria-describedby=\"form-error\""
    } else {
        ""
    };
    content.push_str(&format!(
        "<form class=\"card\" method=\"post\" action=\"/dashboard/sign-in\">\n{}\n\
         <label for=\"email\">Email</label>\n\
         <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" required \
         value=\"{}\"{described}>\n\
         <label for=\"password\">Password</label>\n\
         <input id=\"password\" name=\"password\" type=\"password\" \
         autocomplete=\"current-password\" required{described}>\n\
         <button type=\"submit\">Sign in</button>\n</form>\n",
        html::csrf_field(&csrf),
        escape(email),
    ));
    if !state.providers.is_empty() {
        let callback = format!("{}/dashboard/oauth/callback", origin(state, headers));
        let callback: String = url::form_urlencoded::byte_serialize(callback.as_bytes()).collect();
        content.push_str("<section class=\"card\" aria-labelledby=\"oauth-heading\">\n");
        content
            .push_str("<h2 id=\"oauth-heading\">Or sign in with</h2>\n<ul class=\"providers\">\n");
        for provider in &state.providers {
            let name: String = url::form_urlencoded::byte_serialize(provider.as_bytes()).collect();
            content.push_str(&format!(
                "<li><a class=\"button\" href=\"/auth/oauth?provider={}&amp;redirect_uri={}\">\
                 Sign in with {}</a></li>\n",
                escape(&name),
                escape(&callback),
                escape(provider)
            ));
        }
        content.push_str("</ul>\n</section>\n");
    }
    let frame = Frame {
        title: "Sign in",
        nav: Nav::None,
        email: None,
        csrf: None,
        ws_token: None,
        script: None,
    };
    crate::html(
        status,
        html::page(&frame, &content),
        set.into_iter().collect(),
    )
}

/// `scheme://host` of this request, as the browser addressed it.
fn origin(state: &State, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1:8080");
    let scheme = if state.cookies.secure {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

/// `POST /dashboard/sign-out`: ends the session at auth and clears the cookies.
pub(crate) async fn sign_out(state: State, headers: HeaderMap, body: Bytes) -> Response {
    let csrf = crate::form_csrf(&body);
    if !session::csrf_ok(&headers, &csrf) {
        let (status, words) = DashboardError::Csrf.words();
        return crate::message_page(status, "Sign out", &words);
    }
    if let Some(session) = state.session(&headers).await {
        let request = LogoutRequest {
            refresh_token: session::cookie(&headers, REFRESH_COOKIE),
        };
        // The cookies go either way; a failed logout leaves a session that expires on its own.
        if let Err(e) = state.parts.auth.logout(&session.access, request).await {
            tracing::debug!("dashboard sign-out: {e}");
        }
    }
    see_other("/dashboard/sign-in", state.cookies.signed_out())
}

/// `GET /dashboard/oauth/callback`: the page auth's OAuth callback sends the browser to.
pub(crate) async fn oauth_callback(state: State) -> Response {
    // A fresh CSRF token: the browser arrives from the provider's site, so the Strict
    // cookie was not sent with this navigation; the one set here is sent with the POST.
    let csrf = session::new_csrf();
    let set = state.cookies.set(session::CSRF_COOKIE, &csrf);
    let content = format!(
        "<p id=\"oauth-state\" role=\"status\">Finishing sign-in…</p>\n\
         <noscript><p class=\"error\">JavaScript is needed to finish signing in with a \
         provider. <a href=\"/dashboard/sign-in\">Sign in with a password</a> instead.</p>\
         </noscript>\n\
         <form id=\"oauth-complete\" method=\"post\" action=\"/dashboard/oauth/complete\" hidden>\n\
         {}\n<input type=\"hidden\" name=\"access_token\">\n\
         <input type=\"hidden\" name=\"refresh_token\">\n</form>\n",
        html::csrf_field(&csrf)
    );
    let frame = Frame {
        title: "Signing in",
        nav: Nav::None,
        email: None,
        csrf: None,
        ws_token: None,
        script: Some("oauth.js"),
    };
    crate::html(
        StatusCode::OK,
        html::page(&frame, &content),
        set.into_iter().collect(),
    )
}

/// `POST /dashboard/oauth/complete`: the tokens of the fragment become the session.
pub(crate) async fn oauth_complete(state: State, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(form) = crate::form::<OAuthForm>(&body) else {
        let (status, words) = DashboardError::Form.words();
        return crate::message_page(status, "Sign in", &words);
    };
    if !session::csrf_ok(&headers, &form.csrf) {
        let (status, words) = DashboardError::Csrf.words();
        return crate::message_page(status, "Sign in", &words);
    }
    match state.parts.auth.validate(&form.access_token).await {
        Ok(valid) if valid.token_type == "user" => {
            let cookies = [
                state
                    .cookies
                    .set(session::ACCESS_COOKIE, &form.access_token),
                state.cookies.set(REFRESH_COOKIE, &form.refresh_token),
            ]
            .into_iter()
            .flatten()
            .collect();
            see_other("/dashboard/", cookies)
        }
        _ => crate::message_page(
            StatusCode::UNAUTHORIZED,
            "Sign in",
            "Signing in with the provider did not finish: no valid token came back. Try again.",
        ),
    }
}
