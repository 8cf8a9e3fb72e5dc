//! Pushing events to WebSocket clients through the hub's publish API (DESIGN.md "Realtime":
//! `POST /internal/publish {channel | user_id, event, data, metadata?}` → 202 `{offset}`,
//! `POST /internal/disconnect {user_id}`).

use serde_json::{Value, json};

use crate::service::{ServiceClient, ServiceError};

/// Who receives a publication.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// Every subscriber of a channel (`job:42`, `session:abc`).
    Channel(&'a str),
    /// Every connection of a user (their personal channel `user:<id>`).
    User(&'a str),
}

/// A client of the hub's publish API, as one service. Share one per service (it is cheap to
/// clone and keeps one connection pool and one service token).
#[derive(Debug, Clone)]
pub struct Publisher {
    service: ServiceClient,
}

impl From<ServiceClient> for Publisher {
    fn from(service: ServiceClient) -> Self {
        Self { service }
    }
}

impl Publisher {
    /// Publishes as the service client `client_id` (`[[auth.clients]]`, with `realtime` in its
    /// audiences), getting its token from `POST {portico_url}/auth/token`.
    pub fn with_client_credentials(
        portico_url: &str,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Self, ServiceError> {
        ServiceClient::with_client_credentials(portico_url, client_id, client_secret)
            .map(Self::from)
    }

    /// Publishes with a fixed bearer token (a service token obtained elsewhere).
    pub fn with_token(portico_url: &str, token: &str) -> Result<Self, ServiceError> {
        ServiceClient::with_token(portico_url, token).map(Self::from)
    }

    /// The service client it publishes with, for the service's other calls to Portico.
    pub fn service(&self) -> &ServiceClient {
        &self.service
    }

    /// Publishes `event` with `data` (and seed 000's `metadata`, e.g. `thread_id`, `run_id`)
    /// to `target`; returns the publication's offset in its channel.
    pub async fn publish(
        &self,
        target: Target<'_>,
        event: &str,
        data: Value,
        metadata: Option<Value>,
    ) -> Result<u64, ServiceError> {
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
    ) -> Result<u64, ServiceError> {
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
    ) -> Result<u64, ServiceError> {
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
        let answer = self.service.post("/internal/publish", &body).await?;
        answer
            .get("offset")
            .and_then(Value::as_u64)
            .ok_or_else(|| ServiceError::Unreachable(format!("no offset in {answer}")))
    }

    /// Closes every connection of `user_id` (they get close code 1008).
    pub async fn disconnect_user(&self, user_id: &str) -> Result<(), ServiceError> {
        self.service
            .post("/internal/disconnect", &json!({"user_id": user_id}))
            .await
            .map(drop)
    }
}
