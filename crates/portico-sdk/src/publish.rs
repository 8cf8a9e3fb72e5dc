//! Pushing events to WebSocket clients through the hub's publish API (DESIGN.md "Realtime":
//! `POST /internal/publish {channel | user_id, event, data, metadata?}` → 202 `{offset}`,
//! `POST /internal/disconnect {user_id}`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long a call to Portico may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// A service token is renewed when it has less than this left.
const RENEW_BEFORE: Duration = Duration::from_secs(30);

/// Why a publish (or disconnect) did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
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

/// Who receives a publication.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// Every subscriber of a channel (`job:42`, `session:abc`).
    Channel(&'a str),
    /// Every connection of a user (their personal channel `user:<id>`).
    User(&'a str),
}

/// A client of the hub's publish API. Share one per service (it is cheap to clone and keeps
/// one connection pool and one service token).
#[derive(Debug, Clone)]
pub struct Publisher {
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

impl Publisher {
    /// Publishes as the service client `client_id` (`[[auth.clients]]`, with `realtime` in its
    /// audiences), getting its token from `POST {portico_url}/auth/token`.
    pub fn with_client_credentials(
        portico_url: &str,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Self, PublishError> {
        Self::new(
            portico_url,
            Auth::Client {
                id: client_id.to_owned(),
                secret: client_secret.to_owned(),
                token: tokio::sync::Mutex::new(None),
            },
        )
    }

    /// Publishes with a fixed bearer token (a service token obtained elsewhere).
    pub fn with_token(portico_url: &str, token: &str) -> Result<Self, PublishError> {
        Self::new(portico_url, Auth::Bearer(token.to_owned()))
    }

    fn new(portico_url: &str, auth: Auth) -> Result<Self, PublishError> {
        let base = portico_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(PublishError::Invalid(format!(
                "the Portico URL must start with http:// or https://, not {portico_url:?}"
            )));
        }
        let client = crate::http_client(TIMEOUT).map_err(PublishError::Invalid)?;
        Ok(Self {
            base,
            client,
            auth: std::sync::Arc::new(auth),
        })
    }

    /// Publishes `event` with `data` (and seed 000's `metadata`, e.g. `thread_id`, `run_id`)
    /// to `target`; returns the publication's offset in its channel.
    pub async fn publish(
        &self,
        target: Target<'_>,
        event: &str,
        data: Value,
        metadata: Option<Value>,
    ) -> Result<u64, PublishError> {
        self.publish_to(target, event, data, metadata, None).await
    }

    /// Like [`Publisher::publish`], but the connection `connection_id` (a routed action's
    /// `X-Portico-Connection-ID`) does not receive it: seeds 003/004's "to everyone but the
    /// sender" (`code-change`, `cursor-update`).
    pub async fn publish_except(
        &self,
        target: Target<'_>,
        event: &str,
        data: Value,
        metadata: Option<Value>,
        connection_id: &str,
    ) -> Result<u64, PublishError> {
        self.publish_to(target, event, data, metadata, Some(connection_id))
            .await
    }

    async fn publish_to(
        &self,
        target: Target<'_>,
        event: &str,
        data: Value,
        metadata: Option<Value>,
        exclude_connection_id: Option<&str>,
    ) -> Result<u64, PublishError> {
        let mut body = match target {
            Target::Channel(channel) => json!({"channel": channel}),
            Target::User(user_id) => json!({"user_id": user_id}),
        };
        body["event"] = Value::from(event);
        body["data"] = data;
        if let Some(metadata) = metadata {
            body["metadata"] = metadata;
        }
        if let Some(connection_id) = exclude_connection_id {
            body["exclude_connection_id"] = Value::from(connection_id);
        }
        let answer = self.post("/internal/publish", &body).await?;
        answer
            .get("offset")
            .and_then(Value::as_u64)
            .ok_or_else(|| PublishError::Unreachable(format!("no offset in {answer}")))
    }

    /// Closes every connection of `user_id` (they get close code 1008).
    pub async fn disconnect_user(&self, user_id: &str) -> Result<(), PublishError> {
        self.post("/internal/disconnect", &json!({"user_id": user_id}))
            .await
            .map(drop)
    }

    /// POSTs `body` with the service's token; a refused client token is renewed once.
    async fn post(&self, path: &str, body: &Value) -> Result<Value, PublishError> {
        let url = format!("{}{path}", self.base);
        let bytes = serde_json::to_vec(body).map_err(|e| PublishError::Invalid(e.to_string()))?;
        for renewed in [false, true] {
            let token = self.token(renewed).await?;
            let (status, text) = answer_of(
                self.client
                    .post(&url)
                    .bearer_auth(&token)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(bytes.clone()),
            )
            .await?;
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
        Err(PublishError::Invalid(
            "the service token was refused twice".into(),
        ))
    }

    /// The bearer token; for a service client, a fresh one when `renew` or when the one in
    /// hand expires within [`RENEW_BEFORE`].
    async fn token(&self, renew: bool) -> Result<String, PublishError> {
        let Auth::Client { id, secret, token } = &*self.auth else {
            let Auth::Bearer(token) = &*self.auth else {
                return Err(PublishError::Invalid("no credentials".into()));
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
            .map_err(|e| PublishError::Unreachable(format!("token answer: {e}")))?;
        let value = answer
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| PublishError::Unreachable("no access_token in the answer".into()))?
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
) -> Result<(http::StatusCode, bytes::Bytes), PublishError> {
    let unreachable = |e: reqwest::Error| PublishError::Unreachable(e.to_string());
    let response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    Ok((status, response.bytes().await.map_err(unreachable)?))
}

/// The error of a non-2xx answer, from its envelope when it has one.
fn refused(status: http::StatusCode, body: &[u8]) -> PublishError {
    let envelope: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let field = |name: &str| {
        envelope["error"][name]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    PublishError::Refused {
        status: status.as_u16(),
        code: field("code"),
        message: field("message"),
    }
}
