//! Opening the database: [`connect`] and [`begin_write`].

use std::str::FromStr;
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::Error;

/// Connections in the pool of a SQLite file database (WAL: readers run beside the writer).
const SQLITE_FILE_POOL: u32 = 8;
/// How long a SQLite connection waits for another connection's write lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Open a connection pool for `url` (`sqlite:…`, `postgres://…`, `mysql://…`).
///
/// SQLite file databases: the parent directory is created, the file too unless the URL
/// sets `mode=`; every connection gets `journal_mode=WAL`, `synchronous=NORMAL`,
/// `foreign_keys=ON` and a 10 s busy timeout; the pool holds up to 8 connections.
/// In-memory SQLite (`sqlite::memory:`, `mode=memory`): one connection that is never
/// recycled, since every connection would otherwise see its own empty database.
/// PostgreSQL / MySQL: the default pool.
pub async fn connect(url: &str) -> Result<DatabaseConnection, Error> {
    let memory = url.starts_with("sqlite:") && is_sqlite_memory(url);
    // SeaORM insists on a parseable URL, which `sqlite://:memory:` is not.
    let url = if memory && !url.contains("mode=memory") {
        "sqlite::memory:"
    } else {
        url
    };
    let mut opt = ConnectOptions::new(url.to_owned());
    opt.sqlx_logging(false);
    if url.starts_with("sqlite:") {
        let parsed = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::invalid("database.url", e.to_string()))?;
        if memory {
            opt.max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        } else {
            if let Some(dir) = parsed.get_filename().parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        Error::Db(DbErr::Custom(format!(
                            "cannot create database directory {}: {e}",
                            dir.display()
                        )))
                    })?;
                }
            }
            opt.max_connections(SQLITE_FILE_POOL);
        }
        let create = !url.contains("mode=");
        opt.map_sqlx_sqlite_opts(move |o| {
            let mut o = o.foreign_keys(true).busy_timeout(SQLITE_BUSY_TIMEOUT);
            if !memory {
                o = o
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal);
            }
            if create {
                o = o.create_if_missing(true);
            }
            o
        });
    }
    Ok(Database::connect(opt).await?)
}

/// True for the in-memory SQLite URL forms.
fn is_sqlite_memory(url: &str) -> bool {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = rest.split('?').next().unwrap_or_default();
    path.is_empty() || path == ":memory:" || url.contains("mode=memory")
}

/// Begin a transaction meant to write. On SQLite it is `BEGIN IMMEDIATE`, so it takes the
/// write lock up front (waiting up to the busy timeout) instead of failing with
/// `SQLITE_BUSY` when a read transaction later needs to write; elsewhere a plain `BEGIN`.
/// Inside a transaction it opens a savepoint.
pub async fn begin_write<C>(db: &C) -> Result<C::Transaction, DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    if db.get_database_backend() == DbBackend::Sqlite {
        db.begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await
    } else {
        db.begin().await
    }
}

/// Current time in epoch milliseconds (the unit of every time column).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
