//! The server under test: a `flagstaff serve` child process on a free loopback port, and the
//! fresh database it runs on (a temp SQLite directory or a throw-away Postgres database, see
//! `flagstaff_bench_harness::db`).

use std::path::{Path, PathBuf};

use anyhow::Result;

pub use flagstaff_bench_harness::Server;
pub use flagstaff_bench_harness::db::{PgDatabase, sqlite_size};

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

/// Audit entries in a stopped server's SQLite database.
pub async fn sqlite_audit_count(db_file: &Path) -> Result<u64> {
    let n = flagstaff_bench_harness::db::sqlite_scalar(db_file, "SELECT count(*) FROM audit_log")
        .await?;
    Ok(n as u64)
}
