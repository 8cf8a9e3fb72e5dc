-- Portico auth: accounts, sessions, API keys, signing keys, OAuth, audit.
--
-- One file for SQLite and PostgreSQL, so only what both understand the same way:
-- TEXT ids (128-bit random, hex), BIGINT Unix milliseconds, TEXT JSON for lists and details,
-- no booleans (a nullable timestamp says "when", which is more than yes/no), no sequences,
-- NOT NULL spelled out on every key (SQLite would otherwise allow NULL in a TEXT primary key).

CREATE TABLE users (
    id                TEXT NOT NULL PRIMARY KEY,
    email             TEXT NOT NULL,            -- as the user typed it, for display
    email_normalized  TEXT NOT NULL,            -- trimmed and lowercased, for lookups
    name              TEXT,
    email_verified_at BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_email_normalized ON users (email_normalized);

CREATE TABLE user_roles (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, role)
);

CREATE TABLE password_credentials (
    user_id    TEXT NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    hash       TEXT NOT NULL,                   -- argon2id PHC string
    updated_at BIGINT NOT NULL
);

CREATE TABLE oauth_identities (
    provider   TEXT NOT NULL,
    subject    TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX oauth_identities_user ON oauth_identities (user_id);

-- A session is a refresh-token family: every token rotated out of the first one shares it.
CREATE TABLE sessions (
    id             TEXT NOT NULL PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     BIGINT NOT NULL,
    last_used_at   BIGINT NOT NULL,
    revoked_at     BIGINT,
    revoked_reason TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE refresh_tokens (
    hash        TEXT NOT NULL PRIMARY KEY,      -- digest of the token; the token itself is never stored
    session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,                         -- set once, by the rotation that consumed it
    replaced_by TEXT                            -- hash of the token that rotation issued
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);

CREATE TABLE api_keys (
    id           TEXT NOT NULL PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,                 -- lookup part of the key, stored in clear
    secret_hash  TEXT NOT NULL,
    permissions  TEXT NOT NULL,                 -- JSON array of strings
    expires_at   BIGINT,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE UNIQUE INDEX api_keys_prefix ON api_keys (prefix);
CREATE INDEX api_keys_user ON api_keys (user_id, created_at);

CREATE TABLE signing_keys (
    kid         TEXT NOT NULL PRIMARY KEY,
    alg         TEXT NOT NULL,
    private_key TEXT NOT NULL,                  -- base64 (standard, padded)
    public_key  TEXT NOT NULL,                  -- base64 (standard, padded)
    created_at  BIGINT NOT NULL,
    not_after   BIGINT,                         -- stops signing; NULL while current
    expires_at  BIGINT                          -- may leave the JWKS; NULL while current
);

CREATE TABLE oauth_states (
    state         TEXT NOT NULL PRIMARY KEY,
    provider      TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    redirect_uri  TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    used_at       BIGINT
);
CREATE INDEX oauth_states_expires ON oauth_states (expires_at);

-- No foreign key on user_id: the trail outlives the account it describes.
CREATE TABLE audit_events (
    id      TEXT NOT NULL PRIMARY KEY,
    at      BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    user_id TEXT,
    actor   TEXT,
    ip      TEXT,
    detail  TEXT NOT NULL                       -- JSON object
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_user ON audit_events (user_id, at);
CREATE INDEX audit_events_kind ON audit_events (kind, at);
