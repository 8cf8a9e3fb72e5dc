//! Calling Portico as a service: [`ServiceClient`] holds a service token — a client of
//! `[[auth.clients]]`, its token fetched from `POST /auth/token` (client credentials) and
//! renewed before it expires, or a fixed token — and sends it with each call. Through the
//! gateway that is one service calling another (seed 003's services with their
//! `SERVICE_TOKEN`); [`crate::Publisher`] uses it for the hub's publish API.

use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a call to Portico may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// A service token is renewed when it has less than this left.
const RENEW_BEFORE: Duration = Duration::from_secs(30);

/// Why a call to Portico (a publish, a disconnect, a service call) did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Portico answered with an error envelope (or another non-2xx answer).
    #[error("Portico refused with {status} {code}: {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The envelope's code (`AUTH_001`, `REQ_001`, …), empty when the answer had none.
        code: String,
        /// The envelope's message.
        message: String,
    },
    /// Portico could not be reached, or answered something unreadable.
    #[error("Portico cannot be reached: {0}")]
    Unreachable(String),
    /// The Portico URL or a credential is unusable.
    #[error("{0}")]
    Invalid(String),
}

/// A service's client of Portico. Share one per service (it is cheap to clone and keeps one
/// connection pool and one service token).
#[derive(Debug, Clone)]
pub struct ServiceClient {
    base: String,
    client: reqwest::Client,
    auth: std::sync::Arc<Auth>,
}

#[derive(Debug)]
enum Auth {
    /// A fixed `Authorization: Bearer` token.
    Bearer(String),
    /// A service client of `[[auth.clients]]`; its token is fetched and renewed here.
    Client {
        id: String,
        secret: String,
        token: tokio::sync::Mutex<Option<(String, Instant)>>,
    },
}

impl ServiceClient {
    /// Calls as the service client `client_id` (`[[auth.clients]]`, whose audiences name what
    /// it may call), getting its token from `POST {portico_url}/auth/token`.
    pub fn with_client_credentials(
        portico_url: &str,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Self, ServiceError> {
        Self::new(
            portico_url,
            Auth::Client {
                id: client_id.to_owned(),
                secret: client_secret.to_owned(),
                token: tokio::sync::Mutex::new(None),
            },
        )
    }

    /// Calls with a fixed bearer token (a service token obtained elsewhere).
    pub fn with_token(portico_url: &str, token: &str) -> Result<Self, ServiceError> {
        Self::new(portico_url, Auth::Bearer(token.to_owned()))
    }

    fn new(portico_url: &str, auth: Auth) -> Result<Self, ServiceError> {
        let base = portico_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ServiceError::Invalid(format!(
                "the Portico URL must start with http:// or https://, not {portico_url:?}"
            )));
        }
        let client = crate::http_client(TIMEOUT).map_err(ServiceError::Invalid)?;
        Ok(Self {
            base,
            client,
            auth: std::sync::Arc::new(auth),
        })
    }

    /// `GET {portico_url}{path}` (a route of the gateway, say) as this service; the JSON answer.
    pub async fn get(&self, path: &str) -> Result<Value, ServiceError> {
        self.call(http::Method::GET, path, None).await
    }

    /// `POST {portico_url}{path}` with the JSON `body` as this service; the JSON answer
    /// (`null` for an empty one).
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ServiceError> {
        self.call(http::Method::POST, path, Some(body)).await
    }

    /// Sends one call with the service's token; a refused client token is renewed once.
    async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ServiceError> {
        let url = format!("{}{path}", self.base);
        let bytes = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ServiceError::Invalid(e.to_string()))?;
        for renewed in [false, true] {
            let token = self.token(renewed).await?;
            let mut request = self
                .client
                .request(method.clone(), &url)
                .bearer_auth(&token);
            if let Some(bytes) = &bytes {
                request = request
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(bytes.clone());
            }
            let (status, text) = answer_of(request).await?;
            if status.is_success() {
                return Ok(serde_json::from_slice(&text).unwrap_or(Value::Null));
            }
            let retry = status == http::StatusCode::UNAUTHORIZED
                && !renewed
                && matches!(*self.auth, Auth::Client { .. });
            if !retry {
                return Err(refused(status, &text));
            }
        }
        Err(ServiceError::Invalid(
            "the service token was refused twice".into(),
        ))
    }

    /// The bearer token; for a service client, a fresh one when `renew` or when the one in
    /// hand expires within [`RENEW_BEFORE`].
    async fn token(&self, renew: bool) -> Result<String, ServiceError> {
        let Auth::Client { id, secret, token } = &*self.auth else {
            let Auth::Bearer(token) = &*self.auth else {
                return Err(ServiceError::Invalid("no credentials".into()));
            };
            return Ok(token.clone());
        };
        let mut held = token.lock().await;
        if let Some((value, until)) = held.as_ref()
            && !renew
            && Instant::now() + RENEW_BEFORE < *until
        {
            return Ok(value.clone());
        }
        let (status, text) = answer_of(self.client.post(format!("{}/auth/token", self.base)).form(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", id.as_str()),
                ("client_secret", secret.as_str()),
            ],
        ))
        .await?;
        if !status.is_success() {
            return Err(refused(status, &text));
        }
        let answer: Value = serde_json::from_slice(&text)
            .map_err(|e| ServiceError::Unreachable(format!("token answer: {e}")))?;
        let value = answer
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| ServiceError::Unreachable("no access_token in the answer".into()))?
            .to_owned();
        let lifetime = answer
            .get("expires_in")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        *held = Some((
            value.clone(),
            Instant::now() + Duration::from_secs(lifetime),
        ));
        Ok(value)
    }
}

/// Sends `request` and reads its whole answer.
async fn answer_of(
    request: reqwest::RequestBuilder,
) -> Result<(http::StatusCode, bytes::Bytes), ServiceError> {
    let unreachable = |e: reqwest::Error| ServiceError::Unreachable(e.to_string());
    let response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    Ok((status, response.bytes().await.map_err(unreachable)?))
}

/// The error of a non-2xx answer, from its envelope when it has one.
fn refused(status: http::StatusCode, body: &[u8]) -> ServiceError {
    let envelope: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |name: &str| {
        envelope["error"][name]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    ServiceError::Refused {
        status: status.as_u16(),
        code: field("code"),
        message: field("message"),
    }
}
