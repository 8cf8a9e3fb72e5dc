//! Shared scaffolding for this crate's integration tests: a fresh store per test, on SQLite
//! (a new file in a scratch directory) or on PostgreSQL (a new schema in the database named
//! by `PORTICO_TEST_DATABASE_URL`), removed when the test ends, whether it passed or not.
// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portico_auth::store::{Store, StoreError};
use sqlx::Connection as _;
use sqlx::Executor as _;

/// The variable naming the PostgreSQL database the PostgreSQL tests use.
pub const DATABASE_URL_VAR: &str = "PORTICO_TEST_DATABASE_URL";

/// A fixed "now" for tests: 2023-11-14T22:13:20Z.
pub fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// `t0()` plus `secs` seconds.
pub fn at(secs: u64) -> SystemTime {
    t0() + Duration::from_secs(secs)
}

/// 64 random bits in hex, for scratch names.
pub fn random_hex() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// What a test body gets: the store, and the means to open another on the same database.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// A freshly migrated, empty store.
    pub store: Store,
    target: Target,
}

#[derive(Debug, Clone)]
enum Target {
    Sqlite { dir: PathBuf },
    Postgres { url: String },
}

impl Ctx {
    /// Opens a second store on the same database — another process, as far as the database
    /// can tell (its own pool, its own connections).
    pub async fn reopen(&self) -> Store {
        match &self.target {
            Target::Sqlite { dir } => Store::open(None, dir).await.unwrap(),
            Target::Postgres { url } => Store::open(Some(url), Path::new(".")).await.unwrap(),
        }
    }
}

/// Runs `body` against a fresh SQLite file, then deletes it.
pub async fn on_sqlite<F, Fut>(body: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = std::env::temp_dir().join(format!("portico-store-test-{}", random_hex()));
    let _cleanup = RemoveDir(dir.clone());
    let store = Store::open(None, &dir).await.unwrap();
    let ctx = Ctx {
        store: store.clone(),
        target: Target::Sqlite { dir },
    };
    let result = tokio::spawn(body(ctx)).await;
    store.close().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic.into_panic());
    }
}

/// Runs `body` against a fresh schema of the PostgreSQL database named by
/// [`DATABASE_URL_VAR`], then drops the schema. Without that variable the test is skipped
/// (with a note on stderr): these tests are opt-in.
pub async fn on_postgres<F, Fut>(body: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(base) = std::env::var(DATABASE_URL_VAR) else {
        eprintln!("{DATABASE_URL_VAR} is not set; skipping a PostgreSQL test");
        return;
    };
    let schema = format!("pt_{}", random_hex());
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    admin
        .execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
    let outcome = async {
        let store = Store::open(Some(&url), Path::new(".")).await?;
        let ctx = Ctx {
            store: store.clone(),
            target: Target::Postgres { url: url.clone() },
        };
        let result = tokio::spawn(body(ctx)).await;
        store.close().await;
        Ok::<_, StoreError>(result)
    }
    .await;
    admin
        .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await
        .unwrap();
    match outcome {
        Err(e) => panic!("opening the PostgreSQL store failed: {e:?}"),
        Ok(Err(panic)) => std::panic::resume_unwind(panic.into_panic()),
        Ok(Ok(())) => {}
    }
}

/// Removes a scratch directory when dropped, also when the test panicked.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        // Nothing to do about a directory that cannot be removed but leave it behind.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
