use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::{StoreResult, impl_store_for, sql};

/// SQLite in WAL mode. Writes go through a single-connection pool, so they queue in-process
/// instead of failing with "database is locked"; reads use a separate pool and never wait
/// for writers.
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
    audit_list_sql: String,
}

impl SqliteStore {
    /// `url` is `sqlite://PATH` (the file is created when missing) or `sqlite::memory:`.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let in_memory = url.contains(":memory:");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        // An in-memory database exists only on its one connection, so readers share it.
        let readers = if in_memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options.read_only(true))
                .await?
        };
        Ok(Self {
            writer,
            readers,
            audit_list_sql: sql::audit_list("instr"),
        })
    }

    fn reader(&self) -> &SqlitePool {
        &self.readers
    }

    fn sql(&self, statement: &'static str) -> &'static str {
        statement
    }

    async fn begin_write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin().await?)
    }
}

impl_store_for!(SqliteStore, Sqlite, "sqlite");
