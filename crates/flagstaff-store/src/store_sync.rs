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
    /// Takes or renews the lease on a configuration's engine for `owner` until `until`
    /// (milliseconds). True when `owner` holds it now: it was free, had lapsed before `now`,
    /// or was `owner`'s already. Atomic, so two nodes never both get it.
    async fn store_sync_lease(
        &self,
        config_id: &str,
        owner: &str,
        now: i64,
        until: i64,
    ) -> StoreResult<bool>;
    /// Extends `owner`'s lease until `until`. False when `owner` no longer holds it (another
    /// node took it) or the configuration's row is gone (the configuration was deleted):
    /// unlike taking a lease, renewing never creates the row.
    async fn store_sync_renew(&self, config_id: &str, owner: &str, until: i64)
    -> StoreResult<bool>;
    /// Gives up every lease `owner` holds (a node shutting down), so another node takes over
    /// without waiting for them to lapse. Returns how many were held.
    async fn store_sync_release(&self, owner: &str) -> StoreResult<u64>;
}

pub(crate) mod sql {
    pub const GET: &str = "SELECT config_id, pushed_version, pushed_at, last_error, last_error_at, failures, next_retry_at FROM store_sync WHERE config_id = ?";
    pub const PUT: &str = "INSERT INTO store_sync (config_id, pushed_version, pushed_at, last_error, last_error_at, failures, next_retry_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (config_id) DO UPDATE SET pushed_version = excluded.pushed_version, pushed_at = excluded.pushed_at, last_error = excluded.last_error, last_error_at = excluded.last_error_at, failures = excluded.failures, next_retry_at = excluded.next_retry_at";
    pub const DELETE: &str = "DELETE FROM store_sync WHERE config_id = ?";
    /// The conflict branch updates only when the lease is free, lapsed or already the
    /// caller's; otherwise no row changes and the caller is told it does not hold it.
    pub const LEASE: &str = "INSERT INTO store_sync (config_id, pushed_version, failures, lease_owner, lease_until) VALUES (?, 0, 0, ?, ?) ON CONFLICT (config_id) DO UPDATE SET lease_owner = excluded.lease_owner, lease_until = excluded.lease_until WHERE store_sync.lease_owner IS NULL OR store_sync.lease_owner = excluded.lease_owner OR store_sync.lease_until < ?";
    pub const RENEW: &str =
        "UPDATE store_sync SET lease_until = ? WHERE config_id = ? AND lease_owner = ?";
    pub const RELEASE: &str =
        "UPDATE store_sync SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = ?";

    pub const ALL: &[&str] = &[GET, PUT, DELETE, LEASE, RENEW, RELEASE];
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

            async fn store_sync_lease(
                &self,
                config_id: &str,
                owner: &str,
                now: i64,
                until: i64,
            ) -> $crate::StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                let changed = sqlx::query(self.sql($crate::store_sync::sql::LEASE))
                    .bind(config_id)
                    .bind(owner)
                    .bind(until)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(changed == 1)
            }

            async fn store_sync_renew(
                &self,
                config_id: &str,
                owner: &str,
                until: i64,
            ) -> $crate::StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                let renewed = sqlx::query(self.sql($crate::store_sync::sql::RENEW))
                    .bind(until)
                    .bind(config_id)
                    .bind(owner)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(renewed == 1)
            }

            async fn store_sync_release(&self, owner: &str) -> $crate::StoreResult<u64> {
                let mut tx = self.begin_write().await?;
                let released = sqlx::query(self.sql($crate::store_sync::sql::RELEASE))
                    .bind(owner)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                Ok(released)
            }
        }
    };
}
pub(crate) use impl_store_sync_for;
