//! The server under test: a `flagstaff serve` child process on a free loopback port, and the
//! fresh database it runs on (a temp SQLite directory or a throw-away Postgres database).

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// How long the server may take to start answering.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the server may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the server keeps its data.
pub enum Database<'a> {
    /// SQLite in `flagstaff.db` inside this (fresh, empty) directory.
    Sqlite(&'a Path),
    /// A Postgres database URL.
    Postgres(&'a str),
}

/// A running `flagstaff serve`. Dropping it stops the process (SIGTERM, then SIGKILL).
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The owner API token created through `FLAGSTAFF_BOOTSTRAP_TOKEN`.
    pub token: String,
    pub log_path: PathBuf,
}

impl Server {
    /// Starts the server and waits until `GET /api/v2/projects` answers 200.
    pub async fn start(bin: &Path, database: Database<'_>, log_path: PathBuf) -> Result<Server> {
        if !bin.is_file() {
            bail!(
                "flagstaff binary not found at {}: build it with `cargo build --release -p flagstaff` or pass --flagstaff-bin",
                bin.display()
            );
        }
        let addr = free_loopback_port()?;
        let token = format!("api-{}", uuid::Uuid::new_v4());
        let log = File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut command = Command::new(bin);
        command
            .arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .env("FLAGSTAFF_BOOTSTRAP_TOKEN", &token)
            // All clients share the owner token: keep the per-token rate limiter in the path
            // but never let it answer 429 (servers without rate limiting ignore the variable).
            .env("FLAGSTAFF_RATE_LIMIT", u32::MAX.to_string())
            .env_remove("FLAGSTAFF_DATABASE_URL")
            .env_remove("FLAGSTAFF_DATA_DIR")
            .env_remove("FLAGSTAFF_LISTEN")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        match database {
            Database::Sqlite(dir) => command.arg("--data-dir").arg(dir),
            Database::Postgres(url) => command.arg("--database-url").arg(url),
        };
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut server = Server {
            child: Some(child),
            base: format!("http://{addr}"),
            token,
            log_path,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let url = format!("{}/api/v2/projects", self.base);
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                bail!(
                    "the server exited during start-up ({status}); its log:\n{}",
                    self.log_tail()
                );
            }
            match http
                .get(&url)
                .header("Authorization", &self.token)
                .send()
                .await
            {
                Ok(r) if r.status() == reqwest::StatusCode::OK => return Ok(()),
                Ok(r) => last = format!("HTTP {}", r.status()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "the server did not answer 200 on {url} within {READY_TIMEOUT:?} (last: {last}); its log:\n{}",
            self.log_tail()
        )
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last lines of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Sends SIGTERM and waits for the process to exit; kills it if it does not in time.
    pub fn stop(&mut self) -> Result<Option<ExitStatus>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        if child.try_wait()?.is_none() {
            // std has no portable "send SIGTERM" and the workspace forbids unsafe code, so
            // use kill(1) on our own child's pid.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if let Some(status) = child.try_wait()? {
                    return Ok(Some(status));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            eprintln!(
                "warning: the server did not stop within {STOP_TIMEOUT:?} of SIGTERM; killing it"
            );
            let _ = child.kill();
        }
        Ok(Some(child.wait()?))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("warning: stopping the server: {e}");
        }
    }
}

fn free_loopback_port() -> Result<SocketAddr> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("cannot bind a free loopback port")?;
    Ok(listener.local_addr()?)
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
