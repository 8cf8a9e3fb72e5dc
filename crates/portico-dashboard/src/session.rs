//! The browser's session: three cookies, all `HttpOnly; SameSite=Strict; Path=/dashboard`.
//!
//! - `portico_access`: the access token auth issued at sign-in (short-lived);
//! - `portico_refresh`: its refresh token; when the access token has expired (or was
//!   revoked), the next page load rotates the pair through the auth service and sets both
//!   cookies again; when that fails too, the browser is sent to the sign-in page;
//! - `portico_csrf`: a random token that every state-changing form repeats in a hidden field
//!   (double submit). With `SameSite=Strict` another site's form carries no cookie at all;
//!   the field is the second lock, and an `Origin` naming another host is refused as well.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use portico_auth::api::dto::{RefreshRequest, TokenResponse};
use portico_auth::service::AuthService;
use subtle::ConstantTimeEq;

/// The cookie holding the access token.
pub const ACCESS_COOKIE: &str = "portico_access";
/// The cookie holding the refresh token.
pub const REFRESH_COOKIE: &str = "portico_refresh";
/// The cookie holding the CSRF token.
pub const CSRF_COOKIE: &str = "portico_csrf";

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// How the cookies are set.
#[derive(Debug, Clone, Copy)]
pub struct CookiePolicy {
    /// Add `Secure` (the issuer is `https://`).
    pub secure: bool,
    /// `Max-Age` of the session cookies: the refresh token's lifetime.
    pub max_age: Duration,
}

impl CookiePolicy {
    /// `Set-Cookie` for `name=value`; `None` when `value` holds characters a cookie may not
    /// (tokens are base64url and dots, so this is a defence, not a path taken).
    pub fn set(&self, name: &str, value: &str) -> Option<HeaderValue> {
        if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
        {
            return None;
        }
        let secure = if self.secure { "; Secure" } else { "" };
        let text = format!(
            "{name}={value}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            self.max_age.as_secs()
        );
        HeaderValue::from_str(&text).ok()
    }

    /// `Set-Cookie` removing cookie `name`.
    pub fn clear(&self, name: &str) -> HeaderValue {
        HeaderValue::from_str(&format!(
            "{name}=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("portico_cleared=; Max-Age=0"))
    }

    /// The cookies of a refresh: the new token pair.
    pub fn refreshed(&self, tokens: &TokenResponse) -> Vec<HeaderValue> {
        [
            self.set(ACCESS_COOKIE, &tokens.access_token),
            self.set(REFRESH_COOKIE, &tokens.refresh_token),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// The cookies of a sign-in (password or OAuth): the tokens and a new CSRF token, so no
    /// token from before the sign-in (one planted, or seen on a shared screen) outlives it.
    /// A refresh keeps the CSRF token: pages open in other tabs still carry it.
    pub fn new_session(&self, access: &str, refresh: &str) -> Vec<HeaderValue> {
        [
            self.set(ACCESS_COOKIE, access),
            self.set(REFRESH_COOKIE, refresh),
            self.set(CSRF_COOKIE, &new_csrf()),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// The cookies that end a session: all three (the sign-in page makes a new CSRF token).
    pub fn signed_out(&self) -> Vec<HeaderValue> {
        vec![
            self.clear(ACCESS_COOKIE),
            self.clear(REFRESH_COOKIE),
            self.clear(CSRF_COOKIE),
        ]
    }
}

/// A new CSRF token: 32 random bytes, base64url.
pub fn new_csrf() -> String {
    portico_auth::secret::random_token(32)
}

/// The request's CSRF token, or a new one with the `Set-Cookie` that stores it.
pub fn csrf(headers: &HeaderMap, policy: &CookiePolicy) -> (String, Option<HeaderValue>) {
    match cookie(headers, CSRF_COOKIE) {
        Some(token) => (token, None),
        None => {
            let token = new_csrf();
            let set = policy.set(CSRF_COOKIE, &token);
            (token, set)
        }
    }
}

/// Whether a form's `csrf` field matches the CSRF cookie (in constant time), and the request's
/// `Origin`, when sent, names the host it was sent to.
pub fn csrf_ok(headers: &HeaderMap, field: &str) -> bool {
    if !same_origin(headers) {
        return false;
    }
    let Some(expected) = cookie(headers, CSRF_COOKIE) else {
        return false;
    };
    !field.is_empty() && bool::from(expected.as_bytes().ct_eq(field.as_bytes()))
}

/// False when `Origin` names a host other than `Host`. An absent origin, or the opaque
/// `null` (headless Chromium sends it with the dashboard's own form posts), says nothing:
/// the token and the Strict cookie decide.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| *o != "null")
    else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = url::Url::parse(origin).ok().and_then(|u| {
        let host = u.host_str()?.to_owned();
        Some(match u.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        })
    });
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// A valid access token of the user (for the auth service's calls and the page's `/ws`).
    pub access: String,
    /// The user's id.
    pub user_id: String,
    /// The user's email.
    pub email: String,
    /// The CSRF token forms must repeat.
    pub csrf: String,
    /// Cookies to set on the response (after a refresh, or a new CSRF token).
    pub set_cookies: Vec<HeaderValue>,
}

/// The session of the request, refreshing an expired access token; `None` when the browser
/// must sign in (again).
pub async fn resolve(
    auth: &AuthService,
    policy: &CookiePolicy,
    headers: &HeaderMap,
) -> Option<Session> {
    let (csrf, csrf_cookie) = csrf(headers, policy);
    let mut set_cookies: Vec<HeaderValue> = csrf_cookie.into_iter().collect();
    if let Some(access) = cookie(headers, ACCESS_COOKIE)
        && let Ok(valid) = auth.validate(&access).await
        && valid.token_type == "user"
    {
        return Some(Session {
            access,
            user_id: valid.user_id,
            email: valid.email,
            csrf,
            set_cookies,
        });
    }
    let refresh_token = cookie(headers, REFRESH_COOKIE)?;
    match auth.refresh(RefreshRequest { refresh_token }).await {
        Ok(tokens) => {
            set_cookies.extend(policy.refreshed(&tokens));
            Some(Session {
                access: tokens.access_token,
                user_id: tokens.user.id,
                email: tokens.user.email,
                csrf,
                set_cookies,
            })
        }
        Err(e) => {
            tracing::debug!("dashboard session not refreshed: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let h = headers(&[("cookie", "a=1; portico_csrf=xyz; portico_csrfx=no")]);
        assert_eq!(cookie(&h, CSRF_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "b"), None);
    }

    #[test]
    fn csrf_needs_the_cookie_the_field_and_the_same_origin() {
        let good = headers(&[
            ("cookie", "portico_csrf=abc"),
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert!(csrf_ok(&good, "abc"));
        assert!(!csrf_ok(&good, "abd"));
        assert!(!csrf_ok(&good, ""));
        let no_cookie = headers(&[("host", "127.0.0.1:8080")]);
        assert!(!csrf_ok(&no_cookie, "abc"));
        let other_site = headers(&[
            ("cookie", "portico_csrf=abc"),
            ("host", "127.0.0.1:8080"),
            ("origin", "https://evil.example"),
        ]);
        assert!(!csrf_ok(&other_site, "abc"));
        let opaque = headers(&[
            ("cookie", "portico_csrf=abc"),
            ("host", "127.0.0.1:8080"),
            ("origin", "null"),
        ]);
        assert!(csrf_ok(&opaque, "abc"));
        assert!(!csrf_ok(&opaque, "abd"));
    }

    #[test]
    fn cookies_are_http_only_and_strict() {
        let policy = CookiePolicy {
            secure: false,
            max_age: Duration::from_secs(60),
        };
        let set = policy.set(ACCESS_COOKIE, "a.b-c_d").unwrap();
        let text = set.to_str().unwrap();
        assert!(
            text.contains("HttpOnly") && text.contains("SameSite=Strict"),
            "{text}"
        );
        assert!(policy.set(ACCESS_COOKIE, "a;b").is_none());
    }
}
