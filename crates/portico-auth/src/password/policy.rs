//! The password policy applied at registration and password change (NIST SP 800-63B in
//! spirit: a minimum length, no composition rules, no password equal to the account name),
//! plus an upper bound in bytes so nobody can make the server hash megabytes.

/// Fewest characters (Unicode scalar values) a password may have.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Most bytes (UTF-8) a password may have. Argon2 prehashes its input, so this is a guard
/// against request-size abuse rather than a cryptographic limit.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a password was refused. `Display` is the text for REQ_001's
/// `details.fields.password`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Fewer than [`MIN_PASSWORD_CHARS`] characters.
    #[error("must be at least 8 characters")]
    TooShort,
    /// More than [`MAX_PASSWORD_BYTES`] bytes.
    #[error("must be at most 1024 bytes")]
    TooLong,
    /// The password is the account's email address.
    #[error("must not be the same as the email")]
    SameAsEmail,
}

impl PolicyError {
    /// The request field the problem belongs to.
    pub fn field(&self) -> &'static str {
        "password"
    }
}

/// Checks `password` for the account `email` against the policy.
pub fn check_policy(password: &str, email: &str) -> Result<(), PolicyError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PolicyError::TooLong);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PolicyError::TooShort);
    }
    if password.to_lowercase() == email.trim().to_lowercase() {
        return Err(PolicyError::SameAsEmail);
    }
    Ok(())
}
