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
        let role = role.unwrap_or(&self.settings.default_role);
        self.check_role(role)?;
        let user = self
            .create_account(email, None, password, role, Some(CLI_ACTOR))
            .await?;
        self.audit(
            audit_kind::ROLE_GRANTED,
            Some(&user.id),
            Some(CLI_ACTOR),
            None,
        )
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
            self.audit(
                audit_kind::ROLE_GRANTED,
                Some(&user.id),
                Some(CLI_ACTOR),
                None,
            )
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
        self.audit(audit_kind::SIGNING_KEY_ROTATED, None, Some(CLI_ACTOR), None)
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
}
