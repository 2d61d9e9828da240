//! The server under test: a `flagstaff serve` child process on a free loopback port, and the
//! fresh database it runs on (a temp SQLite directory or a throw-away Postgres database).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

pub use flagstaff_bench_harness::Server;

/// Where the server keeps its data.
pub enum Database<'a> {
    /// SQLite in `flagstaff.db` inside this (fresh, empty) directory.
    Sqlite(&'a Path),
    /// A Postgres database URL.
    Postgres(&'a str),
}

/// Starts the server on `database` and waits until `GET /api/v2/projects` answers 200.
pub async fn start(bin: &Path, database: Database<'_>, log_path: PathBuf) -> Result<Server> {
    Server::start(bin, log_path, |command| {
        // All clients share the owner token: keep the per-token rate limiter in the path
        // but never let it answer 429 (servers without rate limiting ignore the variable).
        command.env("FLAGSTAFF_RATE_LIMIT", u32::MAX.to_string());
        match database {
            Database::Sqlite(dir) => command.arg("--data-dir").arg(dir),
            Database::Postgres(url) => command.arg("--database-url").arg(url),
        };
    })
    .await
}

/// A throw-away Postgres database `flagstaff_bench_<pid>`, created fresh for one run.
/// [`PgDatabase::drop_database`] removes it; call it on every path out.
pub struct PgDatabase {
    admin_url: String,
    pub name: String,
    /// URL of the new database, for the server.
    pub url: String,
}

impl PgDatabase {
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
        let mut conn = PgConnection::connect(&self.url).await?;
        let (size,): (i64,) = sqlx::query_as("SELECT pg_database_size(current_database())")
            .fetch_one(&mut conn)
            .await?;
        let (audit,): (i64,) = sqlx::query_as("SELECT count(*) FROM audit_log")
            .fetch_one(&mut conn)
            .await?;
        conn.close().await?;
        Ok((size as u64, audit as u64))
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
fn with_database(url: &str, name: &str) -> String {
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

/// Audit entries in a stopped server's SQLite database.
pub async fn sqlite_audit_count(db_file: &Path) -> Result<u64> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
    let options = SqliteConnectOptions::new()
        .filename(db_file)
        .read_only(true);
    let mut conn = SqliteConnection::connect_with(&options).await?;
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM audit_log")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(n as u64)
}

/// Bytes of a SQLite database with its `-wal` and `-shm` files, if present.
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
