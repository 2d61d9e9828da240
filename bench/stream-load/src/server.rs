//! The server under test: a release `flagstaff serve` child process on a free loopback port,
//! over SQLite in a fresh temp directory, with rate limiting off. Spawning, waiting for and
//! stopping the process is `flagstaff_bench_harness::Server`, shared with `bench/patch-load`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub use flagstaff_bench_harness::Server;

/// Starts the server on SQLite in `data_dir` and waits until `GET /api/v2/projects`
/// answers 200. The child inherits this process's (raised) file-descriptor limit.
pub async fn start(bin: &Path, data_dir: &Path, log_path: PathBuf) -> Result<Server> {
    Server::start(bin, log_path, |command| {
        command
            .arg("--data-dir")
            .arg(data_dir)
            .env("FLAGSTAFF_RATE_LIMIT", "0");
    })
    .await
}

/// Resident set size of a process in bytes (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_bytes(pid: u32) -> Result<u64> {
    status_kib(&format!("/proc/{pid}/status"), "VmRSS:").map(|k| k * 1024)
}

/// Resident set size of this process in bytes.
pub fn own_rss_bytes() -> Result<u64> {
    status_kib("/proc/self/status", "VmRSS:").map(|k| k * 1024)
}

/// Threads of a process (`Threads:` in `/proc/<pid>/status`).
pub fn threads(pid: u32) -> Result<u64> {
    status_kib(&format!("/proc/{pid}/status"), "Threads:")
}

fn status_kib(path: &str, field: &str) -> Result<u64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    let line = text
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("no {field} in {path}"))?;
    line[field.len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("cannot parse {line:?}"))
}

/// CPU time (user + system) a process has used, from `/proc/<pid>/stat`, in seconds.
pub fn cpu_seconds(pid: Option<u32>) -> Result<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .with_context(|| format!("cannot parse {path}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, i.e. 12 and 13 after the name.
    let ticks = |i: usize| -> Result<f64> {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .with_context(|| format!("cannot parse {path}"))
    };
    // USER_HZ is 100 on every Linux configuration this runs on.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}
