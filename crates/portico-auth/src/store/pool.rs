//! Opening the store: which database a URL names, how its connections are set up, the
//! embedded migrations, and the health check.
//!
//! SQLite connections enforce foreign keys and wait up to [`BUSY_TIMEOUT`] for a lock, and
//! the file is switched to WAL once, so readers never block the writer and a second process
//! (the admin CLI while a server runs) can read and write the same file.

use std::borrow::Cow;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Any, ConnectOptions as _, Executor as _, Transaction};

use super::{Store, StoreError};

/// The file the store uses inside the data directory when no database URL is given.
pub const SQLITE_FILE: &str = "portico.db";

/// How long a SQLite connection waits for another connection's (or process's) write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an operation waits for a free connection before the store reports unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the WAL switch and the migrations of a SQLite file are tried before opening
/// fails (see `Store::migrate`; the pauses between attempts add up to 1.4 s at most).
const SQLITE_OPEN_ATTEMPTS: u32 = 8;

/// The migrations, embedded in the binary: `(version, description, sql)`.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "accounts",
    include_str!("../../migrations/0001_accounts.sql"),
)];

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Store {
    /// Opens the store and brings its schema up to date.
    ///
    /// Without `url`, the store is the SQLite file [`SQLITE_FILE`] in `data_dir` (both made
    /// if missing). `postgres://…` / `postgresql://…` selects PostgreSQL, `sqlite:…` another
    /// SQLite file. Unreachable databases give [`StoreError::Unavailable`].
    pub async fn open(url: Option<&str>, data_dir: &Path) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (options, backend) = match url {
            None => (sqlite_file(data_dir)?, Backend::Sqlite),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                (parse(url)?, Backend::Postgres)
            }
            Some(url) if url.starts_with("sqlite:") => (parse(url)?, Backend::Sqlite),
            Some(_) => return Err(StoreError::UnsupportedUrl),
        };
        let max_connections = match backend {
            Backend::Sqlite => 8,
            Backend::Postgres => 16,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Also the sqlx defaults; said here because the atomicity and the
                        // admin-CLI-while-serving case depend on them.
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        let busy = format!("PRAGMA busy_timeout = {}", BUSY_TIMEOUT.as_millis());
                        conn.execute(busy.as_str()).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(StoreError::from_sqlx)?;
        let store = Store { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    /// Which database this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers (for health checks; failure → SYS_001).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok(())
    }

    /// Closes every connection; operations afterwards fail with
    /// [`StoreError::Unavailable`]. Waits for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Applies the migrations this binary has and the database has not.
    async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = Migrator::new(Embedded).await?;
        if self.backend == Backend::Postgres {
            // PostgreSQL migrations take an advisory lock: concurrent openers wait their turn.
            return Ok(migrator.run(&self.pool).await?);
        }
        let mut attempt = 1;
        loop {
            let outcome = async {
                // Persistent in the file; a no-op once set. Done before the first write.
                self.pool
                    .execute("PRAGMA journal_mode = WAL")
                    .await
                    .map_err(StoreError::from_sqlx)?;
                Ok::<_, StoreError>(migrator.run(&self.pool).await?)
            }
            .await;
            match outcome {
                Ok(()) => return Ok(()),
                // Two processes opening a fresh file at once race twice, and SQLite answers
                // the loser at once instead of waiting for the busy timeout: switching to WAL
                // needs the file to itself ("database is locked" while another opener holds
                // it), and there is no migration lock (both see migration 1 pending; the
                // slower fails once the faster has committed). Another pass, after a short
                // random pause so the openers spread out, finds both done.
                Err(error) if attempt < SQLITE_OPEN_ATTEMPTS => {
                    tracing::debug!(%error, attempt, "opening the SQLite file raced another process; retrying");
                    let pause = rand::random_range(10..=50) * u64::from(attempt);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`, waiting up to the busy timeout) so that a transaction never has to
    /// upgrade a read snapshot to a write lock, which SQLite refuses without waiting.
    pub(super) async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        };
        tx.map_err(StoreError::from_sqlx)
    }

    /// The pool, for the record modules.
    pub(super) fn pool(&self) -> &sqlx::AnyPool {
        &self.pool
    }
}

/// Connect options for `data_dir/portico.db`, creating the directory and the file.
fn sqlite_file(data_dir: &Path) -> Result<AnyConnectOptions, StoreError> {
    std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Other(Box::new(e)))?;
    // Absolute, so the path survives the trip through a URL (a relative first component
    // would be read as a host name).
    let dir = std::path::absolute(data_dir).map_err(|e| StoreError::Other(Box::new(e)))?;
    let url = SqliteConnectOptions::new()
        .filename(dir.join(SQLITE_FILE))
        .create_if_missing(true)
        .to_url_lossy();
    AnyConnectOptions::from_url(&url).map_err(StoreError::from_sqlx)
}

fn parse(url: &str) -> Result<AnyConnectOptions, StoreError> {
    let options = AnyConnectOptions::from_str(url).map_err(StoreError::from_sqlx)?;
    if url.starts_with("sqlite:") && !url.contains("mode=") {
        // A named SQLite file is created like the default one unless the URL says otherwise.
        let mut with_mode = options.database_url.clone();
        with_mode.query_pairs_mut().append_pair("mode", "rwc");
        return AnyConnectOptions::from_url(&with_mode).map_err(StoreError::from_sqlx);
    }
    Ok(options)
}

/// The embedded [`MIGRATIONS`] as a migration source.
#[derive(Debug)]
struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}
