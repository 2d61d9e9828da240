//! `flagstaff-inbound-load`: how fast a real `flagstaff serve` takes partner traffic.
//!
//! 1. Synced segments: one cohort of `--members` members posted to
//!    `/api/v2/segment-targets/amplitude` in batches of `--batch`, one batch after another
//!    (as a CDP sends them), then the same members removed again; members per second. Each
//!    of `--runs` runs syncs a fresh cohort; the median run is reported.
//! 2. Triggers: `--trigger-requests` alerts posted to two generic triggers (one turns the flag
//!    on, the other off, so every request changes the flag) by `--clients` concurrent
//!    clients; requests per second (`--runs` runs, median; 0 requests skips this).
//!
//! The server's peak resident memory (`VmHWM`) is reported per backend.
//!
//! Any unexpected status fails the run.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;
use flagstaff_bench_harness::Server;
use flagstaff_bench_harness::db::PgDatabase;
use flagstaff_bench_harness::report::{civil_date, percentile};
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(name = "flagstaff-inbound-load", version, about)]
struct Args {
    /// The flagstaff binary to benchmark (build it with --release).
    #[arg(long, default_value = "target/release/flagstaff")]
    flagstaff_bin: PathBuf,
    /// The integration-framework catalogue the server loads (needs amplitude and
    /// generic-trigger).
    #[arg(
        long,
        default_value = "../shared/conformance/integration-framework/integrations"
    )]
    integrations_dir: PathBuf,
    /// Also run on a fresh database on this Postgres server.
    #[arg(long)]
    postgres_url: Option<String>,
    #[arg(long, default_value_t = 100_000)]
    members: usize,
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    #[arg(long, default_value_t = 4_000)]
    trigger_requests: u64,
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Runs per measurement; medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// JSON results file. Default: bench/results/inbound-load-<YYYY-MM-DD>.json
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct SyncResult {
    phase: &'static str,
    run: usize,
    members: usize,
    batches: usize,
    seconds: f64,
    members_per_second: f64,
    batch_p50_ms: f64,
    batch_p99_ms: f64,
    batch_max_ms: f64,
}

#[derive(Debug, Serialize)]
struct TriggerResult {
    run: usize,
    requests: u64,
    clients: usize,
    seconds: f64,
    requests_per_second: f64,
    flag_changes: u64,
    p50_ms: f64,
    p99_ms: f64,
}

#[derive(Debug, Serialize)]
struct BackendReport {
    backend: &'static str,
    synced_segments: Vec<SyncResult>,
    triggers: Vec<TriggerResult>,
    add_members_per_second_median: f64,
    remove_members_per_second_median: f64,
    trigger_requests_per_second_median: Option<f64>,
    /// The server's peak resident set (`VmHWM` of /proc/<pid>/status), KiB.
    server_peak_rss_kib: Option<u64>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn peak_rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn expect(response: reqwest::Response, want: u16, what: &str) -> Result<Value> {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status != want {
        bail!("{what}: {status} {body}");
    }
    Ok(body)
}

async fn sync_phase(
    client: &reqwest::Client,
    server: &Server,
    env_id: &str,
    args: &Args,
    (run, cohort): (usize, &str),
    add: bool,
) -> Result<SyncResult> {
    let url = format!("{}/api/v2/segment-targets/amplitude", server.base);
    let mut latencies = Vec::new();
    let started = Instant::now();
    for (n, start) in (0..args.members).step_by(args.batch).enumerate() {
        let end = (start + args.batch).min(args.members);
        let batch: Vec<Value> = (start..end)
            .map(|i| {
                json!({"userId": format!("member-{i}"), "cohortId": cohort,
                    "cohortName": "Bench cohort", "value": add})
            })
            .collect();
        let body = json!({"environmentId": env_id, "batch": batch});
        let sent = Instant::now();
        let response = client
            .post(&url)
            .header("Authorization", &server.token)
            .json(&body)
            .send()
            .await?;
        expect(response, 204, &format!("batch {n}")).await?;
        latencies.push(sent.elapsed());
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort();
    Ok(SyncResult {
        phase: if add { "add" } else { "remove" },
        run,
        members: args.members,
        batches: latencies.len(),
        seconds,
        members_per_second: args.members as f64 / seconds,
        batch_p50_ms: ms(percentile(&latencies, 50.0)),
        batch_p99_ms: ms(percentile(&latencies, 99.0)),
        batch_max_ms: ms(latencies.last().copied().unwrap_or_default()),
    })
}

async fn triggers(
    client: &reqwest::Client,
    server: &Server,
    args: &Args,
    run: usize,
) -> Result<TriggerResult> {
    let api = |path: &str| format!("{}{path}", server.base);
    let flag = format!("alerted-{run}");
    expect(
        client
            .post(api("/api/v2/flags/bench"))
            .header("Authorization", &server.token)
            .json(&json!({"key": flag, "name": flag}))
            .send()
            .await?,
        201,
        "create flag",
    )
    .await?;
    let mut urls = Vec::new();
    for kind in ["turnFlagOn", "turnFlagOff"] {
        let created = expect(
            client
                .post(api(&format!(
                    "/api/v2/flags/bench/{flag}/triggers/production"
                )))
                .header("Authorization", &server.token)
                .json(
                    &json!({"integrationKey": "generic-trigger", "instructions": [{"kind": kind}]}),
                )
                .send()
                .await?,
            201,
            "create trigger",
        )
        .await?;
        let url = created["triggerURL"].as_str().context("triggerURL")?;
        let path = &url[url.find("/webhook/").context("trigger path")?..];
        urls.push(Arc::new(api(path)));
    }
    let next = Arc::new(AtomicU64::new(0));
    let changes = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (next, changes, urls) = (next.clone(), changes.clone(), urls.clone());
        let total = args.trigger_requests;
        let client = reqwest::Client::new();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let sent = Instant::now();
                let response = client
                    .post(urls[(n % 2) as usize].as_str())
                    .json(&json!({"eventName": format!("alert {n}"), "value": n, "url": "https://alerts.example/1"}))
                    .send()
                    .await?;
                let body = expect(response, 200, "trigger").await?;
                if body["changed"] == true {
                    changes.fetch_add(1, Ordering::Relaxed);
                }
                latencies.push(sent.elapsed());
            }
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort();
    Ok(TriggerResult {
        run,
        requests: args.trigger_requests,
        clients: args.clients,
        seconds,
        requests_per_second: args.trigger_requests as f64 / seconds,
        flag_changes: changes.load(Ordering::Relaxed),
        p50_ms: ms(percentile(&latencies, 50.0)),
        p99_ms: ms(percentile(&latencies, 99.0)),
    })
}

async fn run_backend(args: &Args, backend: &'static str, server: &Server) -> Result<BackendReport> {
    let client = reqwest::Client::new();
    expect(
        client
            .post(format!("{}/api/v2/projects", server.base))
            .header("Authorization", &server.token)
            .json(&json!({"key": "bench", "name": "Bench"}))
            .send()
            .await?,
        201,
        "create project",
    )
    .await?;
    let env = expect(
        client
            .get(format!(
                "{}/api/v2/projects/bench/environments/production",
                server.base
            ))
            .header("Authorization", &server.token)
            .send()
            .await?,
        200,
        "environment",
    )
    .await?;
    let env_id = env["_id"].as_str().context("client-side id")?.to_string();
    let mut synced = Vec::new();
    for run in 0..args.runs {
        let cohort = format!("bench-{run}");
        synced.push(sync_phase(&client, server, &env_id, args, (run, &cohort), true).await?);
        let last = args.members.saturating_sub(1);
        for (member, want) in [(0, true), (last, true), (args.members, false)] {
            let state = membership(&client, server, &cohort, member).await?;
            if state != want {
                bail!("member-{member} of cohort {cohort}: included {state}, expected {want}");
            }
        }
        synced.push(sync_phase(&client, server, &env_id, args, (run, &cohort), false).await?);
        if membership(&client, server, &cohort, last).await? {
            bail!("member-{last} of cohort {cohort} was not removed");
        }
    }
    let mut trigger_runs = Vec::new();
    if args.trigger_requests > 0 {
        for run in 0..args.runs {
            trigger_runs.push(triggers(&client, server, args, run).await?);
        }
    }
    let phase = |name: &str| {
        median(
            synced
                .iter()
                .filter(|s| s.phase == name)
                .map(|s| s.members_per_second)
                .collect(),
        )
    };
    Ok(BackendReport {
        backend,
        add_members_per_second_median: phase("add"),
        remove_members_per_second_median: phase("remove"),
        trigger_requests_per_second_median: (!trigger_runs.is_empty())
            .then(|| median(trigger_runs.iter().map(|t| t.requests_per_second).collect())),
        server_peak_rss_kib: peak_rss_kib(server.pid()),
        synced_segments: synced,
        triggers: trigger_runs,
    })
}

/// Whether `member-<n>` is in the synced segment of `cohort` (LaunchDarkly's big-segment
/// membership route).
async fn membership(
    client: &reqwest::Client,
    server: &Server,
    cohort: &str,
    member: usize,
) -> Result<bool> {
    let state = expect(
        client
            .get(format!(
                "{}/api/v2/segments/bench/production/amplitude-{cohort}/contexts/member-{member}",
                server.base
            ))
            .header("Authorization", &server.token)
            .send()
            .await?,
        200,
        "membership",
    )
    .await?;
    state["included"].as_bool().context("included")
}

fn print(report: &BackendReport) {
    println!("\n### {}\n", report.backend);
    println!(
        "| synced segments | run | members | batches | s | members/s | batch p50 ms | p99 ms | max ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for s in &report.synced_segments {
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.0} | {:.1} | {:.1} | {:.1} |",
            s.phase,
            s.run,
            s.members,
            s.batches,
            s.seconds,
            s.members_per_second,
            s.batch_p50_ms,
            s.batch_p99_ms,
            s.batch_max_ms
        );
    }
    println!(
        "\nmedian members/s: add {:.0}, remove {:.0}",
        report.add_members_per_second_median, report.remove_members_per_second_median
    );
    if !report.triggers.is_empty() {
        println!("\n| triggers | run | clients | s | req/s | flag changes | p50 ms | p99 ms |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        for t in &report.triggers {
            println!(
                "| {} | {} | {} | {:.2} | {:.0} | {} | {:.1} | {:.1} |",
                t.requests,
                t.run,
                t.clients,
                t.seconds,
                t.requests_per_second,
                t.flag_changes,
                t.p50_ms,
                t.p99_ms
            );
        }
        if let Some(m) = report.trigger_requests_per_second_median {
            println!("\nmedian trigger req/s: {m:.0}");
        }
    }
    if let Some(kib) = report.server_peak_rss_kib {
        println!("\nserver peak RSS: {:.1} MiB", kib as f64 / 1024.0);
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let integrations = std::fs::canonicalize(&args.integrations_dir)
        .with_context(|| format!("catalogue {}", args.integrations_dir.display()))?;
    let mut reports = Vec::new();
    let data = tempfile::tempdir()?;
    let mut server = Server::start(&args.flagstaff_bin, data.path().join("server.log"), |c| {
        c.env("FLAGSTAFF_RATE_LIMIT", u32::MAX.to_string());
        c.arg("--data-dir").arg(data.path());
        c.arg("--integrations-dir").arg(&integrations);
    })
    .await?;
    let result = run_backend(&args, "sqlite", &server).await;
    server.stop()?;
    reports.push(result.with_context(|| server.log_tail())?);
    if let Some(url) = &args.postgres_url {
        let db = PgDatabase::create(url).await?;
        let mut server = Server::start(&args.flagstaff_bin, data.path().join("pg.log"), |c| {
            c.env("FLAGSTAFF_RATE_LIMIT", u32::MAX.to_string());
            c.arg("--database-url").arg(&db.url);
            c.arg("--integrations-dir").arg(&integrations);
        })
        .await?;
        let result = run_backend(&args, "postgres", &server).await;
        server.stop()?;
        db.drop_database().await?;
        reports.push(result.with_context(|| server.log_tail())?);
    }
    for r in &reports {
        print(r);
    }
    let unix = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "bench/results/inbound-load-{}.json",
            civil_date(unix)
        ))
    });
    let doc = json!({
        "tool": "flagstaff-inbound-load",
        "unix_time": unix,
        "members": args.members,
        "batch": args.batch,
        "runs": args.runs,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "backends": reports,
    });
    std::fs::write(&out, serde_json::to_string_pretty(&doc)?)?;
    println!("\nwrote {}", out.display());
    Ok(())
}
