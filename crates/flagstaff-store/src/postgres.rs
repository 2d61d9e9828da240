use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

use crate::{StoreResult, impl_store_for, sql};

/// Postgres. Statements are the shared ones with `$n` placeholders, rewritten once at connect.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    statements: Arc<HashMap<&'static str, String>>,
    audit_list_sql: String,
}

impl PgStore {
    /// Connects and migrates. With `schema`, everything lives in that schema (created if
    /// missing): tests use one schema each so they can run in parallel on one database.
    pub async fn connect(url: &str, schema: Option<&str>) -> StoreResult<Self> {
        let mut options = PgConnectOptions::from_str(url)?;
        if let Some(schema) = schema {
            let admin = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone())
                .await?;
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .execute(&admin)
                .await?;
            admin.close().await;
            options = options.options([("search_path", schema)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let statements = sql::ALL
            .iter()
            .chain(crate::deliveries::sql::ALL)
            .chain(crate::oauth::sql::ALL)
            .chain(crate::store_sync::sql::ALL)
            .chain(crate::segment_members::sql::ALL)
            .chain(crate::approval_jobs::sql::ALL)
            .map(|s| (*s, sql::numbered_placeholders(s)))
            .collect();
        Ok(Self {
            pool,
            statements: Arc::new(statements),
            audit_list_sql: sql::numbered_placeholders(&sql::audit_list("strpos")),
        })
    }

    /// Drops a schema made by [`PgStore::connect`] with `schema` (test clean-up).
    pub async fn drop_schema(url: &str, schema: &str) -> StoreResult<()> {
        let pool = PgPoolOptions::new().max_connections(1).connect(url).await?;
        sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .execute(&pool)
            .await?;
        pool.close().await;
        Ok(())
    }

    async fn close_pools(&self) {
        self.pool.close().await;
    }

    /// The stored state of `keys` in one segment (see `segment_members::sql::STATES_BY_KEY_PG`).
    async fn member_states_chunk(
        &self,
        environment_id: &str,
        segment_key: &str,
        keys: &[String],
    ) -> crate::StoreResult<Vec<(String, bool)>> {
        Ok(
            sqlx::query_as::<_, (String, bool)>(crate::segment_members::sql::STATES_BY_KEY_PG)
                .bind(environment_id)
                .bind(segment_key)
                .bind(keys)
                .fetch_all(self.reader())
                .await?,
        )
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn sql(&self, statement: &'static str) -> &str {
        self.statements
            .get(statement)
            .map(String::as_str)
            .unwrap_or(statement)
    }

    async fn begin_write(&self) -> StoreResult<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

impl_store_for!(PgStore, Postgres, "postgres");
crate::oauth::impl_oauth_store_for!(PgStore);
crate::store_sync::impl_store_sync_for!(PgStore);
crate::segment_members::impl_segment_member_store_for!(PgStore, Postgres);
crate::approval_jobs::impl_approval_job_store_for!(PgStore);
