//! Portico's auth component: accounts and passwords, sessions with rotating refresh tokens,
//! asymmetric JWT access tokens published as a JWKS, API keys, service (client-credentials)
//! tokens, and roles mapped to permissions — stored through sqlx in SQLite or PostgreSQL.
//!
//! # Layout
//! - [`api`]: the HTTP routes of DESIGN.md's Auth API and their JSON bodies.
//! - [`service`]: register, login, refresh, logout, validate, me.
//! - [`error`]: [`error::AuthError`], every failure and its envelope code.
//! - [`store`]: the database: one set of migrations for SQLite and PostgreSQL, and the
//!   records (users, credentials, roles, sessions and refresh tokens, API keys, signing
//!   keys, OAuth states, audit events).
//! - [`password`]: argon2id hashing off the async runtime, with bounded concurrency.
//! - [`keys`]: Ed25519 signing keys, their `kid`, and the JWKS.
//! - [`token`]: access-token claims, signing and verification.
//! - [`secret`]: opaque secrets (refresh tokens, API keys) and their stored hashes.
//! - [`settings`]: the component's checked settings.
//! - [`rbac`]: roles → permissions, and permission checks with wildcards.
//! - [`throttle`]: login throttling per account and per client address.
#![forbid(unsafe_code)]

pub mod api;
pub mod error;
pub mod keys;
pub mod oauth;
pub mod password;
pub mod rbac;
pub mod secret;
pub mod service;
pub mod settings;
pub mod store;
pub mod throttle;
pub mod token;
