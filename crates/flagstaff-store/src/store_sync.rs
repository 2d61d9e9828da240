//! Sync state of persistent-store configurations (feature stores, big-segment stores): the
//! environment version the store holds and the last failure, one row per configuration.
//!
//! Written by the sync engines after every push or failed attempt; the configurations
//! themselves are entities (changed through the audited path), this is only where their
//! sync stands, so a restarted node knows what the store already has.

use async_trait::async_trait;

use crate::StoreResult;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreSyncState {
    pub config_id: String,
    /// The environment version (outbox sequence) last written; 0 = never.
    pub pushed_version: i64,
    pub pushed_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    /// Consecutive failed attempts since the last success.
    pub failures: i64,
    pub next_retry_at: Option<i64>,
}

#[async_trait]
pub trait StoreSyncStore {
    async fn store_sync_get(&self, config_id: &str) -> StoreResult<Option<StoreSyncState>>;
    /// Inserts or replaces the row of `state.config_id`.
    async fn store_sync_put(&self, state: &StoreSyncState) -> StoreResult<()>;
    async fn store_sync_delete(&self, config_id: &str) -> StoreResult<()>;
}

pub(crate) mod sql {
    pub const GET: &str = "SELECT config_id, pushed_version, pushed_at, last_error, last_error_at, failures, next_retry_at FROM store_sync WHERE config_id = ?";
    pub const PUT: &str = "INSERT INTO store_sync (config_id, pushed_version, pushed_at, last_error, last_error_at, failures, next_retry_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (config_id) DO UPDATE SET pushed_version = excluded.pushed_version, pushed_at = excluded.pushed_at, last_error = excluded.last_error, last_error_at = excluded.last_error_at, failures = excluded.failures, next_retry_at = excluded.next_retry_at";
    pub const DELETE: &str = "DELETE FROM store_sync WHERE config_id = ?";

    pub const ALL: &[&str] = &[GET, PUT, DELETE];
}

pub(crate) type SyncRow = (
    String,
    i64,
    Option<i64>,
    Option<String>,
    Option<i64>,
    i64,
    Option<i64>,
);

pub(crate) fn state(row: SyncRow) -> StoreSyncState {
    let (config_id, pushed_version, pushed_at, last_error, last_error_at, failures, next_retry_at) =
        row;
    StoreSyncState {
        config_id,
        pushed_version,
        pushed_at,
        last_error,
        last_error_at,
        failures,
        next_retry_at,
    }
}

/// The [`StoreSyncStore`] implementation both dialects share.
macro_rules! impl_store_sync_for {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store_sync::StoreSyncStore for $store {
            async fn store_sync_get(
                &self,
                config_id: &str,
            ) -> $crate::StoreResult<Option<$crate::store_sync::StoreSyncState>> {
                let row: Option<$crate::store_sync::SyncRow> =
                    sqlx::query_as(self.sql($crate::store_sync::sql::GET))
                        .bind(config_id)
                        .fetch_optional(self.reader())
                        .await?;
                Ok(row.map($crate::store_sync::state))
            }

            async fn store_sync_put(
                &self,
                s: &$crate::store_sync::StoreSyncState,
            ) -> $crate::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(self.sql($crate::store_sync::sql::PUT))
                    .bind(&s.config_id)
                    .bind(s.pushed_version)
                    .bind(s.pushed_at)
                    .bind(&s.last_error)
                    .bind(s.last_error_at)
                    .bind(s.failures)
                    .bind(s.next_retry_at)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn store_sync_delete(&self, config_id: &str) -> $crate::StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(self.sql($crate::store_sync::sql::DELETE))
                    .bind(config_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }
        }
    };
}
pub(crate) use impl_store_sync_for;
