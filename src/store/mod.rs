//! The database: the one place that holds SQL. One `Store` serves both
//! backends; each query is written once in SQL that SQLite and PostgreSQL both
//! accept (`$1` placeholders, `ON CONFLICT`), and `with_pool!` runs it on
//! whichever pool is configured.

mod batch;
mod checkpoint;
mod drafts;
mod health;
mod idempotency;
mod keys;
mod sessions;
mod storage;
mod users;

pub use batch::{BatchItem, ItemOutcome};
pub use drafts::{DraftFilter, DraftStats};
pub use health::Readiness;
pub use idempotency::{IdempotencyRecord, IDEMPOTENCY_RETENTION};
pub use keys::KeySummary;
pub use storage::{Commit, CommitOutcome, HistoryEntry, StoredValue};
pub use users::{NewUserOutcome, SessionUser};

use anyhow::Context;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Runs `$body` with `$pool` bound to the configured pool. The body is
/// compiled once per backend, so each gets its own native types.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite($pool) => $body,
            $crate::store::Backend::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// As `with_pool!`, on the pool group commits use: on SQLite the single
/// writer connection, on PostgreSQL the shared pool.
macro_rules! with_writer {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite(readers) => {
                let $pool = $store.sqlite_writer.as_ref().unwrap_or(readers);
                $body
            }
            $crate::store::Backend::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_writer;

#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    /// SQLite: one connection of its own for group commits. SQLite takes
    /// one writer at a time anyway, and a connection drops its page cache
    /// whenever another connection has written: the writer's cache stays
    /// warm only if every batch goes through it.
    sqlite_writer: Option<SqlitePool>,
    /// SQLite: one connection that moves committed pages from the WAL into
    /// the database file while the writer goes on (see [`Store::checkpoint`]).
    sqlite_checkpointer: Option<SqlitePool>,
}

/// Pages the SQLite writer connection keeps in memory (negative: KiB).
const WRITER_CACHE_KIB: &str = "-65536";

/// WAL pages after which the writer checkpoints by itself, in its commit.
/// Far above what the background checkpointer lets pile up: only a backstop
/// that bounds the WAL if checkpoints ever fall behind.
const WRITER_AUTOCHECKPOINT_PAGES: &str = "16384";

#[derive(Clone, Debug)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

pub type StoreResult<T> = Result<T, sqlx::Error>;

/// How long a request waits for a database connection before it counts as
/// an outage (503, payload kept): long enough for a busy pool, short enough
/// that nobody stares at a spinner while the database is gone.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

impl Store {
    /// Opens (and for SQLite, creates) the database named by `url`.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let mut sqlite_writer = None;
        let mut sqlite_checkpointer = None;
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect(url)
                .await
                .context("connecting to PostgreSQL")?;
            Backend::Postgres(pool)
        } else if url.starts_with("sqlite:") {
            let options = sqlite_options(url)?;
            if let Some(dir) = options.get_filename().parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating the database directory {}", dir.display()))?;
                }
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options.clone())
                .await
                .context("opening the SQLite database")?;
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                // A ping before each batch would be one more round trip to
                // the connection's thread; a broken connection fails the
                // batch anyway (and its drafts are spooled).
                .test_before_acquire(false)
                .connect_with(
                    options
                        .clone()
                        .pragma("cache_size", WRITER_CACHE_KIB)
                        .pragma("wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES),
                )
                .await
                .context("opening the SQLite writer connection")?;
            let checkpointer = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await
                .context("opening the SQLite checkpoint connection")?;
            sqlite_writer = Some(writer);
            sqlite_checkpointer = Some(checkpointer);
            Backend::Sqlite(pool)
        } else {
            anyhow::bail!("DATABASE_URL must start with sqlite:// or postgres://");
        };
        Ok(Self {
            backend,
            sqlite_writer,
            sqlite_checkpointer,
        })
    }

    /// Applies the migrations of this backend that are not applied yet.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match &self.backend {
            Backend::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await,
            Backend::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await,
        }
        .context("applying database migrations")
    }

    /// The SQLite database file, when the backend is SQLite.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        match &self.backend {
            Backend::Sqlite(pool) => Some(pool.connect_options().get_filename().to_path_buf()),
            Backend::Postgres(_) => None,
        }
    }

    /// Whether other processes may write this database: several instances
    /// share one PostgreSQL database, while an embedded SQLite file belongs
    /// to the one instance that opened it.
    pub fn shared_by_instances(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        for pool in [&self.sqlite_writer, &self.sqlite_checkpointer].into_iter().flatten() {
            pool.close().await;
        }
        with_pool!(self, pool => pool.close().await)
    }
}

/// Every acknowledged write must survive a crash or power cut: WAL with
/// `synchronous=FULL` flushes the log on every commit. The busy timeout lets
/// the key actors' and the draft actor's transactions queue for SQLite's
/// single writer lock instead of failing.
fn sqlite_options(url: &str) -> anyhow::Result<SqliteConnectOptions> {
    Ok(SqliteConnectOptions::from_str(url)
        .with_context(|| format!("reading the SQLite URL {url}"))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true))
}
