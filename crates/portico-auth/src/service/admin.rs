//! What `portico admin` does on the store: create users, grant roles, create API keys for a
//! user, rotate the signing keys.

use super::*;
use crate::keys::rotate;

/// Who the audit log names for changes made from the command line.
const CLI_ACTOR: &str = "portico admin";

impl AuthService {
    /// `portico admin user create`: a user with a password and `role` (default: the
    /// configured default role).
    pub async fn admin_create_user(
        &self,
        email: &str,
        password: &str,
        role: Option<&str>,
    ) -> Result<UserView, AuthError> {
        let email = email.trim();
        check_email(email)?;
        let role = role.unwrap_or(&self.settings.default_role);
        self.check_role(role)?;
        check_policy(password, email).map_err(|e| AuthError::field(e.field(), e.to_string()))?;
        let hash = self.hasher.hash(password).await.map_err(internal)?;
        let now = self.clock.system_now();
        let new = NewUser {
            email,
            name: None,
            password_hash: Some(&hash),
            email_verified: false,
        };
        let user = self
            .store
            .create_user(&new, now)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => AuthError::AccountExists,
                other => store_error(other),
            })?;
        self.store
            .grant_role(&user.id, role, now)
            .await
            .map_err(store_error)?;
        self.audit_as(audit_kind::USER_CREATED, &user.id, CLI_ACTOR)
            .await;
        self.audit_as(audit_kind::ROLE_GRANTED, &user.id, CLI_ACTOR)
            .await;
        self.user_view(&user).await
    }

    /// `portico admin user grant`: gives `role` to the user with `email`; `false` when the
    /// user had it already.
    pub async fn admin_grant(&self, email: &str, role: &str) -> Result<bool, AuthError> {
        self.check_role(role)?;
        let user = self.user_by_email(email).await?;
        let granted = self
            .store
            .grant_role(&user.id, role, self.clock.system_now())
            .await
            .map_err(store_error)?;
        if granted {
            self.audit_as(audit_kind::ROLE_GRANTED, &user.id, CLI_ACTOR)
                .await;
        }
        Ok(granted)
    }

    /// `portico admin key create`: an API key for the user with `email`.
    pub async fn admin_create_key(
        &self,
        email: &str,
        name: &str,
        permissions: Vec<String>,
    ) -> Result<ApiKeyCreated, AuthError> {
        let user = self.user_by_email(email).await?;
        let view = self.user_view(&user).await?;
        let request = CreateApiKeyRequest {
            name: name.to_owned(),
            permissions: (!permissions.is_empty()).then_some(permissions),
            expires_in: None,
        };
        self.create_api_key_for(&user.id, &view.permissions, request)
            .await
    }

    /// `portico admin jwks rotate`: a new signing key; the old one stops signing now and stays
    /// published until the tokens it signed have expired. Returns the new key's id.
    pub async fn rotate_signing_keys(&self) -> Result<String, AuthError> {
        let now = self.clock.system_now();
        let records: Vec<KeyRecord> = self
            .store
            .signing_keys()
            .await
            .map_err(store_error)?
            .into_iter()
            .map(keys::from_store)
            .collect();
        let rotation = rotate(&records, now, self.settings.access_token_ttl).map_err(internal)?;
        let kid = rotation.new_key.kid.clone();
        let retired: Vec<SigningKeyRecord> =
            rotation.retired.into_iter().map(keys::to_store).collect();
        self.store
            .apply_key_rotation(
                &keys::to_store(rotation.new_key),
                &retired,
                &rotation.expired,
            )
            .await
            .map_err(store_error)?;
        self.reload_keys(now).await?;
        self.audit_as(audit_kind::SIGNING_KEY_ROTATED, "", CLI_ACTOR)
            .await;
        Ok(kid)
    }

    fn check_role(&self, role: &str) -> Result<(), AuthError> {
        if self.settings.roles.contains(role) {
            Ok(())
        } else {
            let known: Vec<&str> = self.settings.roles.names().collect();
            Err(AuthError::field(
                "role",
                format!(
                    "no role {role:?} is configured (known: {})",
                    known.join(", ")
                ),
            ))
        }
    }

    async fn user_by_email(&self, email: &str) -> Result<User, AuthError> {
        self.store
            .user_by_email(email)
            .await
            .map_err(store_error)?
            .ok_or(AuthError::NotFound)
    }

    async fn audit_as(&self, kind: &str, user_id: &str, actor: &str) {
        let event = NewAuditEvent {
            kind,
            user_id: (!user_id.is_empty()).then_some(user_id),
            actor: Some(actor),
            ip: None,
            detail: serde_json::Value::Object(Default::default()),
        };
        if let Err(e) = self
            .store
            .append_audit(&event, self.clock.system_now())
            .await
        {
            tracing::warn!(error = %e, kind, "could not write audit event");
        }
    }
}
