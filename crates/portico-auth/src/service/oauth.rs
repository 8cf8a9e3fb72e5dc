//! Login with an OAuth / OIDC provider: `GET /auth/oauth` and `GET /auth/callback`.
//!
//! The user is found by the provider account first (`oauth_identities`), then by the
//! provider-verified email (the account is linked), and is otherwise created with that email
//! and the default role. An email the provider does not vouch for never links or creates
//! anything. Linking into an account whose email had never been verified ends that
//! account's password, sessions and API keys: they may have been set up by someone who
//! registered the address before its owner (account pre-hijacking) — only the provider has
//! proved who owns it.

use url::Url;

use super::*;
use crate::oauth::{LoginRequest, ProviderIdentity};
use crate::secret::random_token;
use crate::store::OAuthState;

/// The query of `GET /auth/callback` (RFC 6749 §4.1.2 and §4.1.2.1).
#[derive(Debug, Default, serde::Deserialize)]
pub struct CallbackQuery {
    /// The authorization code.
    pub code: Option<String>,
    /// The state sent with the authorization request.
    pub state: Option<String>,
    /// The provider's error code when the user was not signed in (`access_denied`).
    pub error: Option<String>,
}

impl AuthService {
    /// `GET /auth/oauth?provider=P&redirect_uri=U`: stores the login in flight and returns
    /// the provider's authorization URL to send the browser to.
    pub async fn oauth_start(&self, provider: &str, redirect_uri: &str) -> Result<Url, AuthError> {
        let Some(chosen) = self.providers.get(provider) else {
            let known = self.providers.names();
            let problem = if known.is_empty() {
                "no OAuth provider is configured".to_owned()
            } else {
                format!("must be one of: {}", known.join(", "))
            };
            return Err(AuthError::field("provider", problem));
        };
        let Some(redirect) = self.redirects.check(redirect_uri) else {
            return Err(AuthError::field(
                "redirect_uri",
                "is not in the redirect allow-list (auth.redirect_allowlist)",
            ));
        };
        let now = self.clock.system_now();
        let pending = OAuthState {
            state: random_token(32),
            provider: provider.to_owned(),
            pkce_verifier: random_token(32),
            nonce: random_token(32),
            redirect_uri: redirect.to_string(),
            created_at: now,
            expires_at: now + self.settings.oauth_login_ttl,
        };
        let callback = self.callback_url();
        let url = self
            .providers
            .authorize_url(chosen, &login_request(&pending, &callback), now)
            .await?;
        self.store
            .create_oauth_state(&pending)
            .await
            .map_err(store_error)?;
        Ok(url)
    }

    /// `GET /auth/callback`: finishes the login and returns where to send the browser:
    /// the login's `redirect_uri` with the tokens in its fragment.
    pub async fn oauth_callback(&self, query: CallbackQuery) -> Result<Url, AuthError> {
        let bad_state = || AuthError::OAuth("unknown, used or expired state".into());
        let state = query
            .state
            .as_deref()
            .filter(|s| !s.is_empty() && s.len() <= 128);
        let state = state.ok_or_else(bad_state)?;
        let now = self.clock.system_now();
        let pending = self
            .store
            .consume_oauth_state(state, now)
            .await
            .map_err(store_error)?
            .ok_or_else(bad_state)?;
        if let Some(error) = query.error {
            return Err(AuthError::OAuth(format!(
                "the provider did not sign the user in: {}",
                crate::oauth::http::printable(&error)
            )));
        }
        let code = query
            .code
            .filter(|c| !c.is_empty())
            .ok_or_else(|| AuthError::OAuth("the provider sent no code".into()))?;
        let provider = self.providers.get(&pending.provider).ok_or_else(|| {
            AuthError::OAuth("the login's provider is no longer configured".into())
        })?;
        let callback = self.callback_url();
        let identity = self
            .providers
            .identity(provider, &code, &login_request(&pending, &callback), now)
            .await?;
        let user = self.oauth_user(&pending.provider, &identity).await?;
        let tokens = self.new_session(&user).await?;
        let actor = format!("oauth:{}", pending.provider);
        self.audit(audit_kind::OAUTH_LOGIN, Some(&user.id), Some(&actor), None)
            .await;
        let mut target = Url::parse(&pending.redirect_uri)
            .map_err(|e| AuthError::Internal(format!("stored redirect_uri: {e}")))?;
        let fragment = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("access_token", &tokens.access_token)
            .append_pair("refresh_token", &tokens.refresh_token)
            .append_pair("token_type", &tokens.token_type)
            .append_pair("expires_in", &tokens.expires_in.to_string())
            .finish();
        target.set_fragment(Some(&fragment));
        Ok(target)
    }

    /// `<issuer>/auth/callback`, the redirect URI registered at every provider.
    pub fn callback_url(&self) -> String {
        format!(
            "{}/auth/callback",
            self.settings.issuer.trim_end_matches('/')
        )
    }

    /// The user the provider account signs in as: linked, found by verified email, or new.
    async fn oauth_user(&self, provider: &str, who: &ProviderIdentity) -> Result<User, AuthError> {
        let now = self.clock.system_now();
        if let Some(link) = self
            .store
            .identity(provider, &who.subject)
            .await
            .map_err(store_error)?
        {
            return self
                .store
                .user_by_id(&link.user_id)
                .await
                .map_err(store_error)?
                .ok_or(AuthError::NotFound);
        }
        let email = match (&who.email, who.email_verified) {
            (Some(email), true) if check_email(email.trim()).is_ok() => email.trim(),
            _ => {
                return Err(AuthError::OAuth(
                    "the provider did not confirm an email address for this account".into(),
                ));
            }
        };
        let actor = format!("oauth:{provider}");
        let user = match self.store.user_by_email(email).await.map_err(store_error)? {
            Some(user) => {
                if user.email_verified_at.is_none() {
                    self.end_unproven_credentials(&user, &actor).await?;
                }
                self.audit(audit_kind::OAUTH_LINKED, Some(&user.id), Some(&actor), None)
                    .await;
                user
            }
            None => {
                let name = who
                    .name
                    .as_deref()
                    .map(|n| n.chars().take(200).collect::<String>());
                let new = NewUser {
                    email,
                    name: name.as_deref(),
                    password_hash: None,
                    email_verified: true,
                };
                match self.store.create_user(&new, now).await {
                    Ok(user) => {
                        self.store
                            .grant_role(&user.id, &self.settings.default_role, now)
                            .await
                            .map_err(store_error)?;
                        self.audit(audit_kind::USER_CREATED, Some(&user.id), Some(&actor), None)
                            .await;
                        user
                    }
                    // Created by a concurrent login with the same email: use that account.
                    Err(StoreError::Conflict(_)) => self
                        .store
                        .user_by_email(email)
                        .await
                        .map_err(store_error)?
                        .ok_or(AuthError::NotFound)?,
                    Err(other) => return Err(store_error(other)),
                }
            }
        };
        match self
            .store
            .link_identity(provider, &who.subject, &user.id, Some(email), now)
            .await
        {
            Ok(_) => Ok(user),
            Err(StoreError::Conflict(_)) => Err(AuthError::OAuth(
                "this provider account is linked to another user".into(),
            )),
            Err(other) => Err(store_error(other)),
        }
    }

    /// Ends what was set up on an account before anyone proved its email: the password,
    /// every session and every API key; then records the email as verified.
    async fn end_unproven_credentials(&self, user: &User, actor: &str) -> Result<(), AuthError> {
        let now = self.clock.system_now();
        self.store
            .remove_password(&user.id)
            .await
            .map_err(store_error)?;
        let sessions = self
            .store
            .sessions_of_user(&user.id)
            .await
            .map_err(store_error)?;
        for session in sessions.iter().filter(|s| s.revoked_at.is_none()) {
            self.revoke(&session.id, "email proven by a provider")
                .await?;
        }
        for key in self
            .store
            .api_keys_of_user(&user.id)
            .await
            .map_err(store_error)?
        {
            match self.end_api_key(&user.id, &key.id, now).await {
                Ok(()) | Err(StoreError::NotFound) => {}
                Err(other) => return Err(store_error(other)),
            }
        }
        self.store
            .mark_email_verified(&user.id, now)
            .await
            .map_err(store_error)?;
        tracing::warn!(
            user_id = %user.id,
            "OAuth login proved the email of an unverified account: its password, sessions and API keys were ended"
        );
        self.audit(
            audit_kind::OAUTH_TAKEOVER_GUARD,
            Some(&user.id),
            Some(actor),
            None,
        )
        .await;
        Ok(())
    }
}

fn login_request<'a>(pending: &'a OAuthState, callback: &'a str) -> LoginRequest<'a> {
    LoginRequest {
        callback,
        state: &pending.state,
        pkce_verifier: &pending.pkce_verifier,
        nonce: &pending.nonce,
    }
}
