//! [`StoreError`]: what a store operation can fail with, sorted by what the caller does about
//! it, and the one place that sorts database failures into those kinds.

use sqlx::error::{BoxDynError, DatabaseError, ErrorKind};

/// Why a store operation failed.
///
/// `Display` never contains SQL, values or connection details, so it may reach a client; the
/// database's own message is kept as the [`source`](std::error::Error::source), for logs.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique value is taken (e.g. an account with this email exists → AUTH_008).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The record the operation is about does not exist (→ BACKEND_002).
    #[error("not found")]
    NotFound,
    /// The database cannot be reached or is too busy right now (→ SYS_001, 503).
    #[error("database unavailable")]
    Unavailable(#[source] BoxDynError),
    /// The database URL is neither `postgres://…` nor `sqlite:…`.
    #[error("unsupported database URL: expected postgres://… or sqlite:…")]
    UnsupportedUrl,
    /// Anything else: a bug, a broken migration, a corrupt row (→ SYS_003).
    #[error("database error")]
    Other(#[source] BoxDynError),
}

impl StoreError {
    /// Sorts a database failure: connection and pool failures, lock timeouts and shutdowns
    /// are [`Unavailable`](Self::Unavailable); everything else is [`Other`](Self::Other).
    pub(super) fn from_sqlx(error: sqlx::Error) -> Self {
        let transient = match &error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => is_transient(db.as_ref()),
            _ => false,
        };
        if transient {
            StoreError::Unavailable(Box::new(error))
        } else {
            StoreError::Other(Box::new(error))
        }
    }

    /// Like [`from_sqlx`](Self::from_sqlx), but a unique violation is a
    /// [`Conflict`](Self::Conflict) over `what`.
    pub(super) fn conflict_on(what: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |error| match &error {
            sqlx::Error::Database(db) if db.kind() == ErrorKind::UniqueViolation => {
                StoreError::Conflict(what)
            }
            _ => StoreError::from_sqlx(error),
        }
    }

    /// Like [`conflict_on`](Self::conflict_on), and a foreign-key violation (the record this
    /// one refers to is missing) is [`NotFound`](Self::NotFound).
    pub(super) fn conflict_or_missing(what: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |error| match &error {
            sqlx::Error::Database(db) if db.kind() == ErrorKind::ForeignKeyViolation => {
                StoreError::NotFound
            }
            _ => StoreError::conflict_on(what)(error),
        }
    }

    /// A stored value that does not decode (bad JSON, bad base64).
    pub(super) fn corrupt(what: &'static str, cause: impl std::fmt::Display) -> Self {
        StoreError::Other(format!("stored {what} does not decode: {cause}").into())
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        match error {
            sqlx::migrate::MigrateError::Execute(e) => StoreError::from_sqlx(e),
            other => StoreError::Other(Box::new(other)),
        }
    }
}

/// Whether a database error says "not now" rather than "never": SQLite busy or locked past
/// the busy timeout; PostgreSQL connection exceptions (08), insufficient resources (53),
/// operator intervention such as shutdown (57P), serialization failure or deadlock (40).
fn is_transient(db: &dyn DatabaseError) -> bool {
    let Some(code) = db.code() else {
        return false;
    };
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // SQLite reports extended result codes; the primary code is the low byte.
        let primary = code.parse::<i32>().map_or(0, |c| c & 0xff);
        return matches!(primary, 5 | 6); // SQLITE_BUSY, SQLITE_LOCKED
    }
    ["08", "53", "57P", "40001", "40P01"]
        .iter()
        .any(|prefix| code.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_says_what_not_how() {
        let e = StoreError::from_sqlx(sqlx::Error::PoolTimedOut);
        assert!(matches!(e, StoreError::Unavailable(_)));
        assert_eq!(e.to_string(), "database unavailable");
        let e = StoreError::from_sqlx(sqlx::Error::Protocol("SELECT secret FROM x".into()));
        assert!(!e.to_string().contains("SELECT"));
        let e = StoreError::from_sqlx(sqlx::Error::RowNotFound);
        assert!(matches!(e, StoreError::Other(_)));
        assert_eq!(e.to_string(), "database error");
    }
}
