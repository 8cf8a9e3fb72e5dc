//! API keys (created for a user, shown once, validated by prefix and hash) and service
//! tokens (client credentials).

use super::*;

impl AuthService {
    /// `POST /auth/api-keys`: a new key for the bearer's user, shown once.
    pub async fn create_api_key(
        &self,
        bearer: &str,
        req: CreateApiKeyRequest,
    ) -> Result<ApiKeyCreated, AuthError> {
        let claims = self.verify_user(bearer).await?;
        self.create_api_key_for(&claims.sub, &claims.permissions, req)
            .await
    }

    /// Creates a key for `user_id`, whose current permissions are `held`.
    pub(super) async fn create_api_key_for(
        &self,
        user_id: &str,
        held: &[String],
        req: CreateApiKeyRequest,
    ) -> Result<ApiKeyCreated, AuthError> {
        let name = req.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(AuthError::field("name", "must be 1 to 100 characters"));
        }
        let permissions = match req.permissions {
            None => vec!["*".to_owned()],
            Some(wanted) => {
                if let Some(missing) = wanted.iter().find(|p| !rbac::permits(held, p)) {
                    return Err(AuthError::Forbidden(format!(
                        "a key cannot carry {missing:?}, which its owner does not hold"
                    )));
                }
                wanted
            }
        };
        let now = self.clock.system_now();
        let expires_at = match req.expires_in {
            Some(0) => return Err(AuthError::field("expires_in", "must be at least 1 second")),
            // `now + secs` would panic past what `SystemTime` holds (found by schemathesis).
            Some(secs) if secs > MAX_API_KEY_EXPIRES_IN => {
                return Err(AuthError::field(
                    "expires_in",
                    format!("must be at most {MAX_API_KEY_EXPIRES_IN} seconds (100 years)"),
                ));
            }
            Some(secs) => Some(now + Duration::from_secs(secs)),
            None => None,
        };
        let key = ApiKey::generate();
        let info = self
            .store
            .create_api_key(
                &NewApiKey {
                    user_id,
                    name,
                    prefix: key.prefix(),
                    secret_hash: &key.hash(),
                    permissions: &permissions,
                    expires_at,
                },
                now,
            )
            .await
            .map_err(store_error)?;
        self.audit(audit_kind::API_KEY_CREATED, Some(user_id), None, None)
            .await;
        Ok(ApiKeyCreated {
            id: info.id,
            key: key.as_str().to_owned(),
            name: info.name,
            permissions: info.permissions,
            created_at: rfc3339(info.created_at),
            expires_at: info.expires_at.map(rfc3339),
        })
    }

    /// `GET /auth/api-keys`: the bearer's keys, without secrets.
    pub async fn list_api_keys(&self, bearer: &str) -> Result<Vec<ApiKeyView>, AuthError> {
        let claims = self.verify_user(bearer).await?;
        let keys = self
            .store
            .api_keys_of_user(&claims.sub)
            .await
            .map_err(store_error)?;
        Ok(keys.into_iter().map(api_key_view).collect())
    }

    /// `DELETE /auth/api-keys/{id}`: the key stops working at once (AUTH_007).
    pub async fn delete_api_key(&self, bearer: &str, id: &str) -> Result<(), AuthError> {
        let claims = self.verify_user(bearer).await?;
        self.end_api_key(&claims.sub, id, self.clock.system_now())
            .await
            .map_err(store_error)?;
        self.audit(audit_kind::API_KEY_DELETED, Some(&claims.sub), None, None)
            .await;
        Ok(())
    }

    /// Deletes (revokes) the user's key `id` at `now` in the store, and makes this instance's
    /// validation cache re-read every cached key before its next use, so the key is refused at
    /// once here (other instances: within [`REVOCATION_RECHECK`]). Everything in this crate
    /// that ends an API key goes through here, not through [`Store::revoke_api_key`] alone.
    pub(super) async fn end_api_key(
        &self,
        user_id: &str,
        id: &str,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let ended = self.store.revoke_api_key(user_id, id, now).await;
        // After the store has it (whatever it answered: a re-read too many is harmless).
        self.validations.api_key_deleted();
        ended
    }

    /// `POST /auth/token` with `grant_type=client_credentials`: a service token.
    pub async fn service_token(
        &self,
        client_id: &str,
        client_secret: &str,
    ) -> Result<ServiceTokenResponse, AuthError> {
        // Compare digests in constant time, and do the same work for an unknown client.
        let presented = hash_secret(client_secret);
        let client = self.settings.clients.iter().find(|c| c.id == client_id);
        let expected = hash_secret(client.map_or("", |c| c.secret.as_str()));
        let Some(client) = client.filter(|_| hashes_match(&presented, &expected)) else {
            return Err(AuthError::InvalidCredentials);
        };
        let claims = self.issuer.claims(
            &client.id,
            TokenType::Service,
            client.audiences.clone(),
            self.clock.system_now(),
        );
        let access_token = self
            .issuer
            .issue(&*self.key_set().await, &claims)
            .map_err(internal)?;
        Ok(ServiceTokenResponse {
            access_token,
            token_type: "Bearer".into(),
            expires_in: self.settings.access_token_ttl.as_secs(),
        })
    }
    /// `/auth/validate` for an API key (`full`, whose lookup prefix is `prefix`), through
    /// the validation cache: an entry is used while `now` is before min(key expiry, cached +
    /// 5 min); its row is re-read by id (no hashing, one indexed query) when it was last read
    /// [`REVOCATION_RECHECK`] ago or more, or a key was deleted through this instance since.
    /// `digest` is `cache::digest(full)`, computed by the caller.
    pub(super) async fn validate_api_key(
        &self,
        prefix: &str,
        full: &str,
        digest: Option<cache::Digest>,
    ) -> Result<ValidateResponse, AuthError> {
        let now = self.clock.system_now();
        let Some(digest) = digest else {
            return Ok(self
                .validate_api_key_in_store(prefix, full, now)
                .await?
                .answer);
        };
        if let Some(entry) = self.validations.api_key(&digest, now) {
            if !self
                .validations
                .needs_recheck(&entry, now, REVOCATION_RECHECK)
            {
                return Ok(entry.answer.clone());
            }
            let deletions = self.validations.deletions();
            let row = self
                .store
                .api_key(&entry.key_id)
                .await
                .map_err(store_error)?;
            match row {
                Some(key) if key.revoked_at.is_none() => {
                    let answer = entry.answer.clone();
                    self.validations.put_api_key(
                        digest,
                        Arc::new(cache::CachedKey {
                            key_id: entry.key_id.clone(),
                            answer: entry.answer.clone(),
                            valid_until: entry.valid_until,
                            checked_at: now,
                            deletions,
                        }),
                    );
                    return Ok(answer);
                }
                Some(_) => {
                    self.validations.drop_api_key(&digest);
                    return Err(AuthError::Revoked("API key deleted".into()));
                }
                // The row is gone: look the key up again, as if it had never been cached.
                None => self.validations.drop_api_key(&digest),
            }
        }
        let entry = self.validate_api_key_in_store(prefix, full, now).await?;
        let answer = entry.answer.clone();
        self.validations.put_api_key(digest, Arc::new(entry));
        Ok(answer)
    }

    /// Validates an API key on the store alone (key, owner, roles) at `now`; returns the
    /// cache entry for it.
    async fn validate_api_key_in_store(
        &self,
        prefix: &str,
        full: &str,
        now: SystemTime,
    ) -> Result<cache::CachedKey, AuthError> {
        // Read before the row, so a deletion racing with this lookup forces a re-check.
        let deletions = self.validations.deletions();
        let record = self
            .store
            .api_key_by_prefix(prefix)
            .await
            .map_err(store_error)?
            .filter(|r| secret_matches(full, &r.secret_hash))
            .ok_or_else(|| AuthError::InvalidToken("unknown API key".into()))?;
        let key = record.info;
        if key.revoked_at.is_some() {
            return Err(AuthError::Revoked("API key deleted".into()));
        }
        if key.expires_at.is_some_and(|at| at <= now) {
            return Err(AuthError::Expired);
        }
        let user = self
            .store
            .user_by_id(&key.user_id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| AuthError::Revoked("account no longer exists".into()))?;
        let view = self.user_view(&user).await?;
        // A key never grants more than its owner has now; `*` stands for all of it.
        let permissions = if key.permissions.iter().any(|p| p == "*") {
            view.permissions.clone()
        } else {
            key.permissions
                .iter()
                .filter(|p| rbac::permits(&view.permissions, p))
                .cloned()
                .collect()
        };
        let cached_for = now + cache::API_KEY_TTL;
        Ok(cache::CachedKey {
            key_id: key.id,
            valid_until: key.expires_at.map_or(cached_for, |at| at.min(cached_for)),
            checked_at: now,
            deletions,
            answer: ValidateResponse {
                valid: true,
                user_id: user.id,
                email: user.email,
                permissions,
                roles: view.roles,
                token_type: "api_key".into(),
                expires_at: key.expires_at.map(rfc3339),
            },
        })
    }
}

fn api_key_view(info: ApiKeyInfo) -> ApiKeyView {
    ApiKeyView {
        id: info.id,
        name: info.name,
        prefix: info.prefix,
        permissions: info.permissions,
        created_at: rfc3339(info.created_at),
        expires_at: info.expires_at.map(rfc3339),
        last_used_at: info.last_used_at.map(rfc3339),
    }
}
