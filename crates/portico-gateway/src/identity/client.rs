//! The gateway's HTTP client for a remote auth component: `POST /auth/validate` and
//! `GET /.well-known/jwks.json`, with a short timeout, no redirects, no proxies from the
//! environment and bounded answers; it also tracks whether auth is reachable and logs each
//! change of that once.
//!
//! While auth is unreachable, calls are not made at all for [`PROBE_INTERVAL`] after the
//! last failure (they fail at once), so a hung auth costs one request timeout per second,
//! not one per request; the first call after that is the probe that finds it back.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use portico_core::clock::SharedClock;
use portico_core::error::{ApiError, ErrorCode};
use serde::Deserialize;

use super::remote::IdentityError;

/// Largest answer read from auth (a validation answer or JWKS is well under 1 KiB).
pub(super) const MAX_RESPONSE: usize = 1024 * 1024;

/// While auth is unreachable, how long after a failed call the next one is tried.
pub(super) const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Why a call to auth gave no identity.
#[derive(Debug)]
pub(super) enum CallError {
    /// Auth answered 401: the credential is refused, with the envelope error to pass on.
    Refused(ApiError),
    /// No usable answer: connection refused, timeout, 5xx, 429, an unreadable or oversized
    /// body (the reason is for logs only).
    Unavailable(String),
}

/// `POST /auth/validate`'s success answer.
#[derive(Debug, Deserialize)]
pub(super) struct ValidateAnswer {
    /// Always `true` on 200.
    pub valid: bool,
    /// The user (or service client) id.
    pub user_id: String,
    /// The user's email (empty for services).
    #[serde(default)]
    pub email: String,
    /// Permissions granted.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Roles held.
    #[serde(default)]
    pub roles: Vec<String>,
    /// `user`, `api_key` or `service`.
    pub token_type: String,
    /// RFC 3339 expiry, if the credential expires.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// A client for one auth base URL.
pub(super) struct AuthClient {
    http: reqwest::Client,
    /// The base URL as configured, for log lines.
    base: String,
    validate_url: String,
    jwks_url: String,
    /// Whether the last call reached auth; flips are logged.
    reachable: AtomicBool,
    /// When the last call failed (by the clock), while auth is unreachable.
    failed_at: Mutex<Option<Instant>>,
    clock: SharedClock,
}

impl AuthClient {
    /// A client for auth at `auth_url` (`http` or `https`, optionally with a path prefix),
    /// each call bounded by `timeout`.
    pub(super) fn new(
        auth_url: &str,
        timeout: Duration,
        clock: SharedClock,
    ) -> Result<Self, IdentityError> {
        let invalid = |reason: &str| IdentityError::InvalidUrl {
            url: auth_url.to_owned(),
            reason: reason.to_owned(),
        };
        let parsed = url::Url::parse(auth_url).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid("scheme must be http or https"));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(invalid("no host"));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(invalid("must not have a query or fragment"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(invalid("must not carry credentials"));
        }
        let base = parsed.as_str().trim_end_matches('/').to_owned();
        Ok(Self {
            http: http_client(timeout)?,
            validate_url: format!("{base}/auth/validate"),
            jwks_url: format!("{base}/.well-known/jwks.json"),
            base,
            reachable: AtomicBool::new(true),
            failed_at: Mutex::new(None),
            clock,
        })
    }

    /// Whether the last call reached auth (`true` before the first call).
    pub(super) fn is_reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// `POST /auth/validate {"token": credential}`.
    pub(super) async fn validate(&self, credential: &str) -> Result<ValidateAnswer, CallError> {
        let body = serde_json::json!({ "token": credential }).to_string();
        let request = self
            .http
            .post(&self.validate_url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(body);
        let (status, body) = self.send(request, "validate").await?;
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(CallError::Refused(refusal(&body)));
        }
        if status != reqwest::StatusCode::OK {
            return Err(self.failed(format!("validate answered {status}")));
        }
        match serde_json::from_slice::<ValidateAnswer>(&body) {
            Ok(answer) if answer.valid => Ok(answer),
            Ok(_) => Err(self.failed("validate answered 200 without valid:true".into())),
            Err(e) => Err(self.failed(format!("validate answer unreadable: {e}"))),
        }
    }

    /// `GET /.well-known/jwks.json`, as raw JSON.
    pub(super) async fn jwks(&self) -> Result<serde_json::Value, CallError> {
        let request = self
            .http
            .get(&self.jwks_url)
            .header(http::header::ACCEPT, "application/json");
        let (status, body) = self.send(request, "jwks").await?;
        if status != reqwest::StatusCode::OK {
            return Err(self.failed(format!("JWKS answered {status}")));
        }
        serde_json::from_slice(&body).map_err(|e| self.failed(format!("JWKS unreadable: {e}")))
    }

    /// Sends `request` and reads the answer (at most [`MAX_RESPONSE`] bytes). A 5xx or 429
    /// counts as auth being unavailable; any other answer as auth being reachable.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), CallError> {
        let describe = |e: &reqwest::Error| {
            let kind = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "connection failed"
            } else {
                "failed"
            };
            format!("{what} call {kind}")
        };
        if !self.is_reachable() {
            let failed_at = *self.failed_at.lock().unwrap_or_else(|e| e.into_inner());
            if failed_at.is_some_and(|at| self.clock.now() < at + PROBE_INTERVAL) {
                return Err(CallError::Unavailable(format!(
                    "{what} not tried: auth unreachable less than {PROBE_INTERVAL:?} ago"
                )));
            }
        }
        let mut response = request.send().await.map_err(|e| {
            tracing::debug!(error = %e, "auth {what} call failed");
            self.failed(describe(&e))
        })?;
        let status = response.status();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_RESPONSE {
                        return Err(
                            self.failed(format!("{what} answer larger than {MAX_RESPONSE} bytes"))
                        );
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(self.failed(describe(&e))),
            }
        }
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(self.failed(format!("{what} answered {status}")));
        }
        self.reached();
        Ok((status, body))
    }

    /// Records a failed call (logging the change to unreachable once) and returns it as
    /// [`CallError::Unavailable`].
    fn failed(&self, reason: String) -> CallError {
        *self.failed_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(self.clock.now());
        if self.reachable.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                auth = %self.base,
                reason = %reason,
                "auth is unreachable ({reason}); credentials validated before keep passing \
                 from the cache, new ones are refused with 503 until it is back"
            );
        }
        CallError::Unavailable(reason)
    }

    /// Records a call that reached auth (logging the change back to reachable once).
    fn reached(&self) {
        if !self.reachable.swap(true, Ordering::Relaxed) {
            tracing::info!(auth = %self.base, "auth is reachable again");
        }
    }
}

/// The client: rustls on ring with the Mozilla roots (for an `https` auth URL), no
/// redirects, no proxy from the environment, `timeout` per call, connection included.
fn http_client(timeout: Duration) -> Result<reqwest::Client, IdentityError> {
    let tls = portico_core::tls::client_config()
        .map_err(|e| IdentityError::Client(format!("TLS setup: {e}")))?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(timeout)
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("portico-gateway/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| IdentityError::Client(format!("HTTP client setup: {e}")))
}

/// The envelope error for auth's 401 answer: its `error.code` when it is AUTH_001, AUTH_002
/// or AUTH_007 (AUTH_001 otherwise), with auth's message when it is short plain text.
fn refusal(body: &[u8]) -> ApiError {
    #[derive(Deserialize)]
    struct Envelope {
        error: Body,
    }
    #[derive(Deserialize)]
    struct Body {
        code: String,
        #[serde(default)]
        message: String,
    }
    let parsed = serde_json::from_slice::<Envelope>(body).ok();
    let code = parsed
        .as_ref()
        .and_then(|e| ErrorCode::from_code(&e.error.code))
        .filter(|c| {
            matches!(
                c,
                ErrorCode::Auth001 | ErrorCode::Auth002 | ErrorCode::Auth007
            )
        })
        .unwrap_or(ErrorCode::Auth001);
    let message = parsed
        .map(|e| e.error.message)
        .filter(|m| {
            !m.is_empty() && m.len() <= 200 && m.chars().all(|c| c.is_ascii_graphic() || c == ' ')
        })
        .unwrap_or_else(|| default_message(code).to_owned());
    ApiError::new(code, message)
}

/// The message for a refusal with `code` when auth gave none usable.
pub(super) fn default_message(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::Auth002 => "token expired",
        ErrorCode::Auth007 => "token revoked",
        _ => "invalid token",
    }
}

/// Parses the RFC 3339 times auth writes (`2026-01-01T00:00:00.000Z`, any fraction, `Z` or a
/// `±HH:MM` offset). `None` for anything else.
pub(super) fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // 60 is a leap second; read it as the last second of the minute.
    if second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos: u32 = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        for (i, c) in fraction.bytes().take(digits.min(9)).enumerate() {
            nanos += u32::from(c - b'0') * 10u32.pow(8 - u32::try_from(i).ok()?);
        }
        rest = &fraction[digits..];
    }
    let offset_secs: i64 = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let hours: i64 = rest.get(1..3)?.parse().ok()?;
            let minutes: i64 = rest.get(4..6)?.parse().ok()?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            sign * (hours * 3600 + minutes * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_as_auth_writes_them() {
        let at = |s| {
            parse_rfc3339(s)
                .map(|t| t.duration_since(UNIX_EPOCH).unwrap())
                .map(|d| (d.as_secs(), d.subsec_millis()))
        };
        assert_eq!(at("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(at("2026-01-01T00:00:00.000Z"), Some((1_767_225_600, 0)));
        assert_eq!(at("2024-02-29T12:34:56.789Z"), Some((1_709_210_096, 789)));
        assert_eq!(
            at("2024-02-29T13:34:56.789+01:00"),
            Some((1_709_210_096, 789))
        );
        assert_eq!(
            at("2024-02-29T11:04:56.789-01:30"),
            Some((1_709_210_096, 789))
        );
        for bad in [
            "",
            "2026-01-01",
            "2026-01-01T00:00:00",
            "2026-13-01T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00+0100",
            "1969-12-31T23:59:59Z",
            "+026-01-01T00:00:00Z",
        ] {
            assert_eq!(at(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn refusals_keep_auths_code_and_message_when_they_are_sane() {
        let body = br#"{"error":{"code":"AUTH_007","message":"API key deleted"},"status":401}"#;
        let e = refusal(body);
        assert_eq!(
            (e.code(), e.message()),
            (ErrorCode::Auth007, "API key deleted")
        );
        let e = refusal(br#"{"error":{"code":"SYS_003","message":"x"}}"#);
        assert_eq!(e.code(), ErrorCode::Auth001);
        let e = refusal(b"not json");
        assert_eq!(
            (e.code(), e.message()),
            (ErrorCode::Auth001, "invalid token")
        );
        let e = refusal("{\"error\":{\"code\":\"AUTH_002\",\"message\":\"a\\nb\"}}".as_bytes());
        assert_eq!(
            (e.code(), e.message()),
            (ErrorCode::Auth002, "token expired")
        );
    }
}
