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
    /// The background checkpointer's connection (none for in-memory databases).
    checkpointer: Option<SqlitePool>,
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
        // Checkpoints run in the background (below), not inside a writer's COMMIT: an
        // automatic checkpoint copies megabytes and fsyncs while every writer waits.
        let writer_options = if in_memory {
            options.clone()
        } else {
            options.clone().pragma("wal_autocheckpoint", "0")
        };
        // The pool's liveness ping costs a thread hand-off per statement; a local file
        // connection does not go stale.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
            .connect_with(writer_options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        // An in-memory database exists only on its one connection, so readers share it.
        let readers = if in_memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(4)
                .test_before_acquire(false)
                .connect_with(options.clone().read_only(true))
                .await?
        };
        let checkpointer = if in_memory {
            None
        } else {
            Some(spawn_checkpointer(options).await?)
        };
        Ok(Self {
            writer,
            readers,
            checkpointer,
            audit_list_sql: sql::audit_list("instr"),
        })
    }

    /// Folds the whole WAL into the database file and closes every connection, so a stopped
    /// server leaves a single, complete database file.
    async fn close_pools(&self) {
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.close().await;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.writer)
            .await
        {
            tracing::warn!("final WAL checkpoint failed: {e}");
        }
        self.readers.close().await;
        self.writer.close().await;
    }

    /// The stored state of `keys` in one segment: SQLite's planner probes the primary key
    /// for an `IN (…)` list on its last column.
    async fn member_states_chunk(
        &self,
        environment_id: &str,
        segment_key: &str,
        keys: &[String],
    ) -> crate::StoreResult<Vec<(String, bool)>> {
        let statement = crate::segment_members::sql::states(keys.len());
        let mut query = sqlx::query_as::<_, (String, bool)>(&statement)
            .bind(environment_id)
            .bind(segment_key);
        for key in keys {
            query = query.bind(key);
        }
        Ok(query.fetch_all(self.reader()).await?)
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

/// How often the background task folds the WAL back into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

/// Runs `PRAGMA wal_checkpoint(PASSIVE)` on its own connection every
/// [`CHECKPOINT_INTERVAL`]: PASSIVE never blocks writers or readers, and with automatic
/// checkpoints off this keeps the WAL from growing without bound. The task ends when the
/// runtime does.
async fn spawn_checkpointer(options: SqliteConnectOptions) -> StoreResult<SqlitePool> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect_with(options)
        .await?;
    let handle = pool.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if pool.is_closed() {
                return;
            }
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                tracing::warn!("background WAL checkpoint failed: {e}");
            }
        }
    });
    Ok(handle)
}

impl_store_for!(SqliteStore, Sqlite, "sqlite");
crate::oauth::impl_oauth_store_for!(SqliteStore);
crate::store_sync::impl_store_sync_for!(SqliteStore);
crate::segment_members::impl_segment_member_store_for!(SqliteStore, Sqlite);
crate::approval_jobs::impl_approval_job_store_for!(SqliteStore);
