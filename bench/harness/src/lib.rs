//! Shared plumbing for the benches: a release `flagstaff serve` child process on a free
//! loopback port, waited on until it answers and stopped (SIGTERM, then SIGKILL) at the end;
//! fresh databases ([`db`]), CPU accounting from `/proc` ([`cpu`]) and report helpers
//! ([`report`]).

pub mod cpu;
pub mod db;
pub mod report;

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long the server may take to start answering.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the server may take to stop after SIGTERM before it is killed. Open SSE streams
/// do not end by themselves, so a bench closes its streams before stopping the server.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A running `flagstaff serve`. Dropping it stops the process (SIGTERM, then SIGKILL).
pub struct Server {
    child: Option<Child>,
    /// `127.0.0.1:PORT`
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The owner API token created through `FLAGSTAFF_BOOTSTRAP_TOKEN`.
    pub token: String,
    pub log_path: PathBuf,
}

impl Server {
    /// Starts `bin serve --listen 127.0.0.1:PORT` with `FLAGSTAFF_BOOTSTRAP_TOKEN` set and the
    /// `FLAGSTAFF_DATABASE_URL`, `FLAGSTAFF_DATA_DIR` and `FLAGSTAFF_LISTEN` variables removed,
    /// its output going to `log_path`, and waits until `GET /api/v2/projects` answers 200.
    /// `configure` adds the bench's own arguments (the database) and environment.
    pub async fn start(
        bin: &Path,
        log_path: PathBuf,
        configure: impl FnOnce(&mut Command),
    ) -> Result<Server> {
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
            .env_remove("FLAGSTAFF_DATABASE_URL")
            .env_remove("FLAGSTAFF_DATA_DIR")
            .env_remove("FLAGSTAFF_LISTEN")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        configure(&mut command);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut server = Server {
            child: Some(child),
            addr,
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

    /// Whether the child has exited (it should not during a run).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
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
