//! `flagstaff-inbound-load`: how fast a real `flagstaff serve` takes partner traffic.
//!
//! 1. Synced segments: one cohort of `--members` members posted to
//!    `/api/v2/segment-targets/amplitude` in batches of `--batch`, one batch after another
//!    (as a CDP sends them), then the same members removed again; members per second.
//! 2. Triggers: `--trigger-requests` alerts posted to two generic triggers (one turns the flag
//!    on, the other off, so every request changes the flag) by `--clients` concurrent
//!    clients; requests per second.
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
    /// JSON results file. Default: bench/results/inbound-load-<YYYY-MM-DD>.json
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct SyncResult {
    phase: &'static str,
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
    triggers: Option<TriggerResult>,
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
    add: bool,
) -> Result<SyncResult> {
    let url = format!("{}/api/v2/segment-targets/amplitude", server.base);
    let mut latencies = Vec::new();
    let started = Instant::now();
    for (n, start) in (0..args.members).step_by(args.batch).enumerate() {
        let end = (start + args.batch).min(args.members);
        let batch: Vec<Value> = (start..end)
            .map(|i| {
                json!({"userId": format!("member-{i}"), "cohortId": "bench",
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
        members: args.members,
        batches: latencies.len(),
        seconds,
        members_per_second: args.members as f64 / seconds,
        batch_p50_ms: ms(percentile(&latencies, 50.0)),
        batch_p99_ms: ms(percentile(&latencies, 99.0)),
        batch_max_ms: ms(latencies.last().copied().unwrap_or_default()),
    })
}

async fn triggers(client: &reqwest::Client, server: &Server, args: &Args) -> Result<TriggerResult> {
    let api = |path: &str| format!("{}{path}", server.base);
    expect(
        client
            .post(api("/api/v2/flags/bench"))
            .header("Authorization", &server.token)
            .json(&json!({"key": "alerted", "name": "Alerted"}))
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
                .post(api("/api/v2/flags/bench/alerted/triggers/production"))
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
    let added = sync_phase(&client, server, &env_id, args, true).await?;
    let segment = expect(
        client
            .get(format!(
                "{}/api/v2/segments/bench/production/amplitude-bench",
                server.base
            ))
            .header("Authorization", &server.token)
            .send()
            .await?,
        200,
        "segment",
    )
    .await?;
    let count = segment["included"].as_array().map_or(0, Vec::len);
    if count != args.members {
        bail!("the segment has {count} members, expected {}", args.members);
    }
    let removed = sync_phase(&client, server, &env_id, args, false).await?;
    let triggers = triggers(&client, server, args).await?;
    Ok(BackendReport {
        backend,
        synced_segments: vec![added, removed],
        triggers: Some(triggers),
    })
}

fn print(report: &BackendReport) {
    println!("\n### {}\n", report.backend);
    println!(
        "| synced segments | members | batches | s | members/s | batch p50 ms | p99 ms | max ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for s in &report.synced_segments {
        println!(
            "| {} | {} | {} | {:.2} | {:.0} | {:.1} | {:.1} | {:.1} |",
            s.phase,
            s.members,
            s.batches,
            s.seconds,
            s.members_per_second,
            s.batch_p50_ms,
            s.batch_p99_ms,
            s.batch_max_ms
        );
    }
    if let Some(t) = &report.triggers {
        println!("\n| triggers | clients | s | req/s | flag changes | p50 ms | p99 ms |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        println!(
            "| {} | {} | {:.2} | {:.0} | {} | {:.1} | {:.1} |",
            t.requests,
            t.clients,
            t.seconds,
            t.requests_per_second,
            t.flag_changes,
            t.p50_ms,
            t.p99_ms
        );
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
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "backends": reports,
    });
    std::fs::write(&out, serde_json::to_string_pretty(&doc)?)?;
    println!("\nwrote {}", out.display());
    Ok(())
}
