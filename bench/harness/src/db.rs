//! Fresh databases for a bench run: a throw-away Postgres database, and small read-only
//! queries on a stopped server's SQLite file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sqlx::Connection;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

/// A throw-away Postgres database `flagstaff_bench_<pid>`, created fresh for one run.
/// [`PgDatabase::drop_database`] removes it; call it on every path out.
pub struct PgDatabase {
    admin_url: String,
    pub name: String,
    /// URL of the new database, for the server.
    pub url: String,
}

impl PgDatabase {
    /// Creates `flagstaff_bench_<pid>` on the server of `admin_url`, dropping any leftover
    /// database of that name first (the user must be allowed to create databases).
    pub async fn create(admin_url: &str) -> Result<PgDatabase> {
        let name = format!("flagstaff_bench_{}", std::process::id());
        let mut conn = PgConnection::connect(admin_url)
            .await
            .with_context(|| format!("cannot connect to Postgres at {admin_url}"))?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut conn)
            .await?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .with_context(|| format!("cannot create database {name}"))?;
        conn.close().await?;
        Ok(PgDatabase {
            admin_url: admin_url.to_string(),
            url: with_database(admin_url, &name),
            name,
        })
    }

    /// Size on disk (`pg_database_size`) and audit entries in the database.
    pub async fn stats(&self) -> Result<(u64, u64)> {
        let size = self
            .scalar("SELECT pg_database_size(current_database())")
            .await?;
        let audit = self.scalar("SELECT count(*) FROM audit_log").await?;
        Ok((size as u64, audit as u64))
    }

    /// The single `bigint` a query returns, e.g. a `count(*)`.
    pub async fn scalar(&self, sql: &str) -> Result<i64> {
        let mut conn = PgConnection::connect(&self.url).await?;
        let (value,): (i64,) = sqlx::query_as(sql)
            .fetch_one(&mut conn)
            .await
            .with_context(|| format!("query {sql:?}"))?;
        conn.close().await?;
        Ok(value)
    }

    pub async fn drop_database(self) -> Result<()> {
        let mut conn = PgConnection::connect(&self.admin_url).await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn)
        .await?;
        conn.close().await?;
        Ok(())
    }
}

/// `url` with its database (path) replaced by `name`, keeping any `?query`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[authority_start..]
        .find('/')
        .map(|i| authority_start + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The single integer a query returns on a stopped server's SQLite file, opened read-only.
pub async fn sqlite_scalar(db_file: &Path, sql: &str) -> Result<i64> {
    let options = SqliteConnectOptions::new()
        .filename(db_file)
        .read_only(true);
    let mut conn = SqliteConnection::connect_with(&options).await?;
    let (value,): (i64,) = sqlx::query_as(sql)
        .fetch_one(&mut conn)
        .await
        .with_context(|| format!("query {sql:?}"))?;
    conn.close().await?;
    Ok(value)
}

/// Bytes of a SQLite database file and of its `-wal` file (0 when absent).
pub fn sqlite_size(db_file: &Path) -> (u64, u64) {
    let size = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let main = size(db_file.to_path_buf());
    let mut wal = db_file.as_os_str().to_owned();
    wal.push("-wal");
    (main, size(PathBuf::from(wal)))
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/test?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:1", "x"), "postgres://h:1/x");
    }
}
