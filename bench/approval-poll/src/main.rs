//! `flagstaff-approval-poll`: one full status-check cycle of an approval integration over many
//! pending external approval requests of a real `flagstaff serve`.
//!
//! It starts a loopback change-management service (`flagstaff_testkit::change_management`,
//! the custom-approvals API) in this process and a release `flagstaff serve` with the
//! catalogue loaded, `--approval-poll-secs` and `--approval-concurrency`; configures the
//! `custom-approvals` integration for `production`, and creates `--requests` approval
//! requests over the API (each one creates its external record). Then it stops the server,
//! waits until every request is due for its next status check, and starts the server again
//! on the same database: the whole backlog is due at once, the worst case of a cycle, and the
//! polling state must have survived the restart. It measures, at the service, how long it
//! takes until every external record has been checked once, and the most checks in flight
//! at once. A cycle that does not finish, or that exceeds the configured concurrency, fails
//! the run (exit code 1); the time is reported, never asserted.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;
use flagstaff_bench_harness::Server;
use flagstaff_bench_harness::db::PgDatabase;
use flagstaff_bench_harness::report::civil_date;
use flagstaff_testkit::change_management::ChangeManagement;
use serde::Serialize;
use serde_json::json;

#[derive(Parser, Debug)]
#[command(name = "flagstaff-approval-poll", version, about)]
struct Args {
    /// The flagstaff binary to benchmark (build it with --release).
    #[arg(long, default_value = "target/release/flagstaff")]
    flagstaff_bin: PathBuf,
    /// Integration catalogue with `custom-approvals` (the conformance copy by default).
    #[arg(long)]
    integrations_dir: Option<PathBuf>,
    /// Pending external approval requests.
    #[arg(long, default_value_t = 10_000)]
    requests: usize,
    /// The server's --approval-poll-secs.
    #[arg(long, default_value_t = 60)]
    poll_secs: u64,
    /// The server's --approval-concurrency.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Concurrent API clients creating the requests.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Run on a fresh database of this Postgres server instead of SQLite.
    #[arg(long)]
    postgres_url: Option<String>,
    /// Where to write the JSON result (default bench/results/approval-poll-<date>.json).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Serialize)]
struct Outcome {
    backend: String,
    requests: usize,
    poll_secs: u64,
    concurrency: usize,
    creation_seconds: f64,
    cycle_seconds: f64,
    checks_per_second: f64,
    max_in_flight: usize,
    cycle_over_interval: f64,
    load_before: String,
    load_after: String,
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

async fn start(
    args: &Args,
    data_dir: &std::path::Path,
    db: Option<&str>,
    n: usize,
) -> Result<Server> {
    let catalogue = args.integrations_dir.clone().unwrap_or_else(|| {
        flagstaff_testkit::conformance::conformance_dir().join("integration-framework/integrations")
    });
    let log = data_dir.join(format!("server-{n}.log"));
    Server::start(&args.flagstaff_bin, log, |command| {
        command
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--allow-outbound")
            .arg("127.0.0.0/8")
            .arg("--rate-limit")
            .arg("0")
            .arg("--integrations-dir")
            .arg(&catalogue)
            .arg("--approval-poll-secs")
            .arg(args.poll_secs.to_string())
            .arg("--approval-concurrency")
            .arg(args.concurrency.to_string());
        if let Some(url) = db {
            command.arg("--database-url").arg(url);
        }
    })
    .await
}

async fn call(
    http: &reqwest::Client,
    server: &Server,
    method: reqwest::Method,
    path: &str,
    body: serde_json::Value,
) -> Result<serde_json::Value> {
    let response = http
        .request(method, format!("{}{path}", server.base))
        .header("Authorization", &server.token)
        .json(&body)
        .send()
        .await?;
    let status = response.status();
    let value: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        bail!("{path} answered {status}: {value}");
    }
    Ok(value)
}

async fn run(args: &Args) -> Result<Outcome> {
    let load_before = load();
    let service = Arc::new(ChangeManagement::start_with(false).await);
    let data = tempfile::tempdir()?;
    let pg = match &args.postgres_url {
        Some(url) => Some(PgDatabase::create(url).await?),
        None => None,
    };
    let db_url = pg.as_ref().map(|d| d.url.clone());
    let result = async {
        let mut server = start(args, data.path(), db_url.as_deref(), 1).await?;
        let http = reqwest::Client::new();
        call(&http, &server, reqwest::Method::POST, "/api/v2/projects", json!({"key": "bench", "name": "Bench"})).await?;
        call(&http, &server, reqwest::Method::POST, "/api/v2/flags/bench", json!({"key": "gate", "name": "Gate"})).await?;
        let config = call(
            &http,
            &server,
            reqwest::Method::POST,
            "/api/v2/integration-configurations/keys/custom-approvals",
            json!({"name": "bench", "configValues": {"apiKey": "bench-key", "baseURL": service.base_url}}),
        )
        .await?;
        call(
            &http,
            &server,
            reqwest::Method::PATCH,
            "/api/v2/projects/bench/environments/production",
            json!([{"op": "add", "path": "/approvalSettings", "value": {
                "required": true, "bypassApprovalsForPendingChanges": false, "minNumApprovals": 1,
                "canReviewOwnRequest": false, "canApplyDeclinedChanges": false,
                "serviceKind": "custom-approvals", "serviceConfig": {},
                "serviceKindConfigurationId": config["_id"], "requiredApprovalTags": []}}]),
        )
        .await?;

        eprintln!("creating {} approval requests…", args.requests);
        let created_at = Instant::now();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut clients = Vec::new();
        for _ in 0..args.clients.max(1) {
            let next = next.clone();
            let http = http.clone();
            let base = server.base.clone();
            let token = server.token.clone();
            let total = args.requests;
            clients.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= total {
                        return Ok::<(), anyhow::Error>(());
                    }
                    let response = http
                        .post(format!("{base}/api/v2/approval-requests"))
                        .header("Authorization", &token)
                        .json(&json!({
                            "resourceId": "proj/bench:env/production:flag/gate",
                            "description": format!("bench request {i}"),
                            "instructions": [{"kind": "turnFlagOn"}],
                        }))
                        .send()
                        .await?;
                    if response.status() != reqwest::StatusCode::CREATED {
                        bail!("creating request {i} answered {}", response.status());
                    }
                }
            }));
        }
        for client in clients {
            client.await??;
        }
        let creation_seconds = created_at.elapsed().as_secs_f64();
        // Every creation that reached the service before the stop is a pending record; a
        // creation still being retried is not polled, so wait for all of them.
        let deadline = Instant::now() + Duration::from_secs(120);
        while service.record_count() < args.requests {
            if Instant::now() > deadline {
                bail!("only {} of {} external records were created", service.record_count(), args.requests);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!("created in {creation_seconds:.1} s; restarting the server once every request is due…");
        server.stop()?;
        let last_created = service.last_created_ms();
        let due_at = last_created + (args.poll_secs as i64) * 1000 + 1000;
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
        if due_at > now {
            tokio::time::sleep(Duration::from_millis((due_at - now) as u64)).await;
        }
        let restarted_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
        let checks_before = service.status_checks();
        service.reset_max_in_flight();
        let mut server = start(args, data.path(), db_url.as_deref(), 2).await?;
        let deadline = Instant::now() + Duration::from_secs(args.poll_secs.max(60) * 3);
        let cycle_seconds = loop {
            let checked = service.checked_since(restarted_ms);
            if checked >= args.requests {
                // From the first check to the last, at the service (server start-up excluded).
                let (first, last) = service.check_span_since(restarted_ms).unwrap_or((0, 0));
                break (last - first) as f64 / 1000.0;
            }
            if Instant::now() > deadline {
                bail!("after {:?} only {checked} of {} records were checked", deadline, args.requests);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let checks = service.status_checks() - checks_before;
        let max_in_flight = service.max_in_flight();
        server.stop()?;
        if max_in_flight > args.concurrency {
            bail!("{max_in_flight} status checks were in flight at once; the limit is {}", args.concurrency);
        }
        Ok(Outcome {
            backend: if pg.is_some() { "postgres" } else { "sqlite" }.into(),
            requests: args.requests,
            poll_secs: args.poll_secs,
            concurrency: args.concurrency,
            creation_seconds,
            cycle_seconds,
            checks_per_second: checks as f64 / cycle_seconds,
            max_in_flight,
            cycle_over_interval: cycle_seconds / args.poll_secs as f64,
            load_before: load_before.clone(),
            load_after: load(),
        })
    }
    .await;
    if let Some(db) = pg {
        db.drop_database().await?;
    }
    result
}

#[tokio::main]
async fn main() -> Result<ExitCode> {
    let args = Args::parse();
    let outcome = match run(&args).await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("approval-poll failed: {e:#}");
            return Ok(ExitCode::FAILURE);
        }
    };
    println!(
        "| backend | requests | poll interval | concurrency | cycle | checks/s | max in flight | cycle / interval | load before → after |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} s | {} | {:.2} s | {:.0} | {} | {:.3} | {} → {} |",
        outcome.backend,
        outcome.requests,
        outcome.poll_secs,
        outcome.concurrency,
        outcome.cycle_seconds,
        outcome.checks_per_second,
        outcome.max_in_flight,
        outcome.cycle_over_interval,
        outcome.load_before,
        outcome.load_after
    );
    println!(
        "(creating the {} requests took {:.1} s)",
        outcome.requests, outcome.creation_seconds
    );
    let out = args.out.clone().unwrap_or_else(|| {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        PathBuf::from(format!(
            "bench/results/approval-poll-{}-{}.json",
            civil_date(secs),
            outcome.backend
        ))
    });
    std::fs::write(&out, serde_json::to_string_pretty(&outcome)?)
        .with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!("wrote {}", out.display());
    Ok(ExitCode::SUCCESS)
}
