//! CPU accounting from Linux `/proc`: the server, this load generator, all `postgres`
//! processes, and everything else on the machine (other builds and tests compete for the
//! same cores, so a large "other" share marks a noisy measurement). Elsewhere every value is
//! `None`.

use std::collections::BTreeMap;

/// USER_HZ: 100 on every Linux configuration this runs on.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU counters (in USER_HZ ticks) of the server, this process, all `postgres` processes and
/// the whole machine, taken at one moment.
pub struct CpuSample {
    server: Option<u64>,
    client: Option<u64>,
    postgres: Option<u64>,
    machine: Option<u64>,
}

/// CPU seconds used between two [`CpuSample`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    pub server: Option<f64>,
    pub client: Option<f64>,
    pub postgres: Option<f64>,
    /// Busy time of the machine not accounted to the three above.
    pub other: Option<f64>,
}

impl CpuSample {
    pub fn take(server_pid: Option<u32>) -> CpuSample {
        CpuSample {
            server: server_pid.and_then(|pid| process_ticks(&format!("/proc/{pid}/stat"))),
            client: process_ticks("/proc/self/stat"),
            postgres: postgres_ticks(),
            machine: machine_busy_ticks(),
        }
    }

    pub fn since(&self, before: &CpuSample) -> CpuUse {
        let delta =
            |a: Option<u64>, b: Option<u64>| Some(a?.saturating_sub(b?) as f64 / TICKS_PER_SECOND);
        let server = delta(self.server, before.server);
        let client = delta(self.client, before.client);
        let postgres = delta(self.postgres, before.postgres);
        let machine = delta(self.machine, before.machine);
        let other = match (machine, server, client) {
            (Some(m), Some(s), Some(c)) => Some((m - s - c - postgres.unwrap_or(0.0)).max(0.0)),
            _ => None,
        };
        CpuUse {
            server,
            client,
            postgres,
            other,
        }
    }
}

/// utime + stime of a process or thread, from its `/proc/…/stat`.
pub fn process_ticks(path: &str) -> Option<u64> {
    stat_name_and_ticks(path).map(|(_, ticks)| ticks)
}

/// The command name and utime + stime of a `/proc/…/stat` file.
fn stat_name_and_ticks(path: &str) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    // The command name is in parentheses and may contain spaces.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let name = text.get(open + 1..close)?.to_string();
    let fields: Vec<&str> = text.get(close + 2..)?.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((name, ticks))
}

/// utime + stime of every process named `postgres` (the Postgres server and its backends).
fn postgres_ticks() -> Option<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let path = format!("/proc/{pid}/stat");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if text.contains("(postgres)") {
            total += process_ticks(&path).unwrap_or(0);
        }
    }
    Some(total)
}

/// Busy ticks of all CPUs (user, nice, system, irq, softirq, steal), from `/proc/stat`.
fn machine_busy_ticks() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    Some(v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7)?)
}

/// CPU ticks of a process's live threads, summed by thread name with trailing digits and
/// dashes removed (`sqlx-sqlite-wor` for sqlx's SQLite worker threads, `tokio-runtime-w` for
/// tokio's workers; Linux truncates names to 15 bytes). Threads that already exited are
/// missing, so the sum can be below the process's total.
#[derive(Debug, Clone, Default)]
pub struct ThreadSample(BTreeMap<String, u64>);

impl ThreadSample {
    pub fn take(pid: u32) -> ThreadSample {
        let mut by_name = BTreeMap::new();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return ThreadSample(by_name);
        };
        for task in tasks.flatten() {
            let path = task.path().join("stat");
            let Some((name, ticks)) = path.to_str().and_then(stat_name_and_ticks) else {
                continue;
            };
            let group = name
                .trim_end_matches(|c: char| c.is_ascii_digit() || c == '-')
                .to_string();
            *by_name.entry(group).or_insert(0) += ticks;
        }
        ThreadSample(by_name)
    }

    /// CPU seconds per thread group between `before` and this sample, largest first.
    pub fn since(&self, before: &ThreadSample) -> Vec<(String, f64)> {
        let mut out: Vec<(String, f64)> = self
            .0
            .iter()
            .map(|(name, after)| {
                let start = before.0.get(name).copied().unwrap_or(0);
                (
                    name.clone(),
                    after.saturating_sub(start) as f64 / TICKS_PER_SECOND,
                )
            })
            .filter(|(_, s)| *s > 0.0)
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cpu_ticks() {
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(process_ticks("/proc/self/stat").is_some());
            assert!(machine_busy_ticks().is_some());
            let threads = ThreadSample::take(std::process::id());
            assert!(!threads.0.is_empty());
        }
    }
}
