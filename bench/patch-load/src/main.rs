//! `flagstaff-patch-load`: end-to-end flag PATCH throughput of a real `flagstaff serve`.
//!
//! For each backend it starts the server on a fresh database, creates a project and flags over
//! HTTP, then runs timed semantic-patch workloads (1 client; N clients on their own flags; N
//! clients on one shared flag) and reports throughput and latency percentiles as markdown on
//! stdout and as JSON in a file. Any non-200 answer fails the run (exit code 1).

mod load;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use serde::Serialize;

use flagstaff_bench_harness::report::civil_date;
use load::{RunSpec, Scenario, ScenarioResult};
use server::{Database, PgDatabase, Server};

/// End-to-end flag PATCH throughput benchmark: starts `flagstaff serve` on a fresh database,
/// drives semantic-patch PATCHes over loopback HTTP and reports req/s and latency percentiles.
#[derive(Parser, Debug)]
#[command(name = "flagstaff-patch-load", version, about)]
struct Args {
    /// The flagstaff binary to benchmark (build it with --release).
    #[arg(long, default_value = "target/release/flagstaff")]
    flagstaff_bin: PathBuf,
    /// Backends to run. Default: both when a Postgres URL is given, else sqlite.
    #[arg(long, value_enum)]
    backend: Option<BackendChoice>,
    /// Postgres server to run on; a fresh database flagstaff_bench_<pid> is created on it and
    /// dropped at the end.
    #[arg(long, env = "FLAGSTAFF_TEST_DATABASE_URL")]
    postgres_url: Option<String>,
    /// Measured seconds per scenario, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Warm-up seconds per scenario (requests run but are not measured).
    #[arg(long, default_value_t = 2.0)]
    warmup_seconds: f64,
    /// Hard cap on the requests of one scenario (warm-up included).
    #[arg(long, default_value_t = 1_000_000)]
    max_requests: u64,
    /// Concurrent clients in the multi-client scenarios.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Scenarios to run, comma-separated: single, own-flags, shared-flag. Default: all.
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Worker threads of the load generator's runtime. It shares the machine with the server,
    /// so keep it small.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// JSON results file. Default: bench/results/patch-load-<YYYY-MM-DD>.json
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendChoice {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn id(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Everything measured on one backend.
#[derive(Debug, Serialize)]
struct BackendReport {
    backend: &'static str,
    scenarios: Vec<ScenarioResult>,
    /// 200 answers to PATCH, warm-up included.
    patches_ok: u64,
    /// Changes committed by those PATCHes (each writes one audit entry).
    commits: u64,
    /// Rows in audit_log at the end, read from the database (setup writes included).
    audit_entries: Option<u64>,
    /// Database size in bytes at the end (SQLite: main file plus WAL after shutdown;
    /// Postgres: pg_database_size).
    db_bytes: Option<u64>,
    /// SQLite: the WAL file's size just before shutdown.
    wal_bytes_before_shutdown: Option<u64>,
    server_exit: Option<String>,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    tool: &'static str,
    date: String,
    unix_time: u64,
    cores: usize,
    flagstaff_bin: String,
    warmup_s: f64,
    measure_s: f64,
    max_requests: u64,
    concurrency: usize,
    client_threads: usize,
    note: &'static str,
    backends: Vec<BackendReport>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(run(&args));
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("FAILED: see the errors above");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Runs everything; `Ok(false)` when a request failed or a backend could not be run.
async fn run(args: &Args) -> Result<bool> {
    if args.seconds <= 0.0 || args.warmup_seconds < 0.0 || args.clients == 0 {
        bail!("--seconds must be > 0, --warmup-seconds >= 0 and --clients >= 1");
    }
    let scenarios: Vec<Scenario> = if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenarios
            .iter()
            .map(|s| {
                Scenario::parse(s.trim()).with_context(|| {
                    format!("unknown scenario {s:?}: use single, own-flags, shared-flag")
                })
            })
            .collect::<Result<_>>()?
    };
    let postgres_url = args.postgres_url.as_deref().filter(|u| !u.is_empty());
    let choice = args.backend.unwrap_or(if postgres_url.is_some() {
        BackendChoice::Both
    } else {
        BackendChoice::Sqlite
    });
    let backends = match choice {
        BackendChoice::Sqlite => vec![Backend::Sqlite],
        BackendChoice::Postgres => vec![Backend::Postgres],
        BackendChoice::Both => vec![Backend::Sqlite, Backend::Postgres],
    };
    if backends.contains(&Backend::Postgres) && postgres_url.is_none() {
        bail!("the postgres backend needs --postgres-url (or FLAGSTAFF_TEST_DATABASE_URL)");
    }
    if !args.flagstaff_bin.is_file() {
        bail!(
            "flagstaff binary not found at {}: build it with `cargo build --release -p flagstaff` or pass --flagstaff-bin",
            args.flagstaff_bin.display()
        );
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let date = civil_date(now);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("bench/results/patch-load-{date}.json")));

    let mut reports = Vec::new();
    for backend in backends {
        eprintln!("== {} ==", backend.id());
        let report = match backend {
            Backend::Sqlite => run_sqlite(args, &scenarios).await,
            Backend::Postgres => run_postgres(args, &scenarios, postgres_url.unwrap_or("")).await,
        };
        if let Some(e) = &report.error {
            eprintln!("error on {}: {e}", backend.id());
        }
        reports.push(report);
        if INTERRUPTED.load(Ordering::Relaxed) {
            break;
        }
    }

    let report = Report {
        tool: "flagstaff-patch-load",
        date,
        unix_time: now,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        flagstaff_bin: args.flagstaff_bin.display().to_string(),
        warmup_s: args.warmup_seconds,
        measure_s: args.seconds,
        max_requests: args.max_requests,
        concurrency: args.clients,
        client_threads: args.client_threads,
        note: "load generator and server share the machine's cores",
        backends: reports,
    };
    println!("{}", markdown(&report));
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!("wrote {}", out.display());

    let mut ok = !INTERRUPTED.load(Ordering::Relaxed);
    for b in &report.backends {
        if b.error.is_some() {
            ok = false;
        }
        for s in &b.scenarios {
            if s.failures() > 0 {
                ok = false;
                eprintln!(
                    "{} / {}: {} failed requests ({:?}, {} transport errors); first: {}",
                    b.backend,
                    s.scenario,
                    s.failures(),
                    s.non_200,
                    s.transport_errors,
                    s.sample_failure.as_deref().unwrap_or("-")
                );
            }
        }
    }
    Ok(ok)
}

fn empty_report(backend: Backend) -> BackendReport {
    BackendReport {
        backend: backend.id(),
        scenarios: Vec::new(),
        patches_ok: 0,
        commits: 0,
        audit_entries: None,
        db_bytes: None,
        wal_bytes_before_shutdown: None,
        server_exit: None,
        error: None,
    }
}

/// Set once Ctrl-C interrupted a backend: the remaining ones are skipped.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Runs `work` until it ends or Ctrl-C arrives. On Ctrl-C `work` is dropped, which stops the
/// server (see [`Server`]'s `Drop`), and the caller still gets to clean up.
async fn interruptible<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => {
            INTERRUPTED.store(true, Ordering::Relaxed);
            bail!("interrupted")
        }
    }
}

async fn run_sqlite(args: &Args, scenarios: &[Scenario]) -> BackendReport {
    let mut report = empty_report(Backend::Sqlite);
    if let Err(e) = interruptible(sqlite_inner(args, scenarios, &mut report)).await {
        report.error = Some(format!("{e:#}"));
    }
    report
}

async fn sqlite_inner(
    args: &Args,
    scenarios: &[Scenario],
    report: &mut BackendReport,
) -> Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("flagstaff-patch-load-")
        .tempdir()?;
    let data_dir = tmp.path().join("data");
    std::fs::create_dir_all(&data_dir)?;
    let db_file = data_dir.join("flagstaff.db");
    let mut server = server::start(
        &args.flagstaff_bin,
        Database::Sqlite(&data_dir),
        tmp.path().join("server.log"),
    )
    .await?;
    let exercised = exercise(&server, args, Backend::Sqlite, scenarios, report).await;
    report.wal_bytes_before_shutdown = Some(server::sqlite_size(&db_file).1);
    report.server_exit = server.stop()?.map(|s| s.to_string());
    exercised?;
    let (main, wal) = server::sqlite_size(&db_file);
    report.db_bytes = Some(main + wal);
    report.audit_entries = Some(server::sqlite_audit_count(&db_file).await?);
    Ok(())
}

async fn run_postgres(args: &Args, scenarios: &[Scenario], admin_url: &str) -> BackendReport {
    let mut report = empty_report(Backend::Postgres);
    let db = match PgDatabase::create(admin_url).await {
        Ok(db) => db,
        Err(e) => {
            report.error = Some(format!("{e:#}"));
            return report;
        }
    };
    eprintln!("created database {}", db.name);
    let outcome = interruptible(postgres_inner(args, scenarios, &db, &mut report)).await;
    let name = db.name.clone();
    if let Err(e) = db.drop_database().await {
        eprintln!("warning: could not drop database {name}: {e:#}");
    }
    if let Err(e) = outcome {
        report.error = Some(format!("{e:#}"));
    }
    report
}

async fn postgres_inner(
    args: &Args,
    scenarios: &[Scenario],
    db: &PgDatabase,
    report: &mut BackendReport,
) -> Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("flagstaff-patch-load-")
        .tempdir()?;
    let mut server = server::start(
        &args.flagstaff_bin,
        Database::Postgres(&db.url),
        tmp.path().join("server.log"),
    )
    .await?;
    let exercised = exercise(&server, args, Backend::Postgres, scenarios, report).await;
    report.server_exit = server.stop()?.map(|s| s.to_string());
    exercised?;
    let (size, audit) = db.stats().await?;
    report.db_bytes = Some(size);
    report.audit_entries = Some(audit);
    Ok(())
}

/// Setup and every scenario against a running server.
async fn exercise(
    server: &Server,
    args: &Args,
    backend: Backend,
    scenarios: &[Scenario],
    report: &mut BackendReport,
) -> Result<()> {
    let flags = load::setup(&server.base, &server.token, args.clients).await?;
    eprintln!(
        "server at {} (log {}); created project {} with {} flags",
        server.base,
        server.log_path.display(),
        load::PROJECT,
        flags.len()
    );
    for &scenario in scenarios {
        let spec = RunSpec {
            backend: backend.id().into(),
            server_pid: server.pid(),
            scenario,
            concurrency: args.clients,
            warmup: Duration::from_secs_f64(args.warmup_seconds),
            measure: Duration::from_secs_f64(args.seconds),
            max_requests: args.max_requests,
        };
        let result = load::run_scenario(&server.base, &server.token, &flags, &spec)
            .await
            .with_context(|| format!("scenario {}", scenario.id()))?;
        eprintln!(
            "  {:<26} {:>7} req  {:>8.0} req/s  p50 {:.2} ms  p99 {:.2} ms  failures {}",
            result.label,
            result.requests,
            result.requests_per_s,
            result.p50_ms,
            result.p99_ms,
            result.failures()
        );
        if result.failures() > 0 {
            eprintln!("  server log tail:\n{}", server.log_tail());
        }
        report.patches_ok += result.ok;
        report.commits += result.commits;
        report.scenarios.push(result);
    }
    Ok(())
}

fn markdown(report: &Report) -> String {
    let mut out = format!(
        "## flagstaff-patch-load, {} ({} cores shared by client and server; {} s warm-up + {} s measured per scenario)\n",
        report.date, report.cores, report.warmup_s, report.measure_s
    );
    for b in &report.backends {
        out.push_str(&format!("\n### {}\n\n", b.backend));
        if let Some(e) = &b.error {
            out.push_str(&format!("**error:** {e}\n\n"));
        }
        out.push_str(
            "| scenario | requests | req/s | p50 ms | p90 ms | p99 ms | max ms | non-200 | commits/s | committed / 200s | server CPU µs/req | CPU s: server / client / postgres / other |\n",
        );
        out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for s in &b.scenarios {
            out.push_str(&format!(
                "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {:.0} | {} / {} | {} | {} / {} / {} / {} |{}\n",
                s.label,
                s.requests,
                s.requests_per_s,
                s.p50_ms,
                s.p90_ms,
                s.p99_ms,
                s.max_ms,
                s.failures(),
                s.commits_per_s,
                s.commits,
                s.ok,
                opt(s.server_cpu_us_per_request, 0),
                opt(s.server_cpu_s, 1),
                opt(s.client_cpu_s, 1),
                opt(s.postgres_cpu_s, 1),
                opt(s.other_cpu_s, 1),
                if s.capped {
                    " (hit --max-requests)"
                } else {
                    ""
                }
            ));
        }
        out.push('\n');
        out.push_str(&format!(
            "Successful patches: {} (warm-up included), of which {} committed a change; audit entries in the database: {}; database size: {}{}.\n",
            b.patches_ok,
            b.commits,
            b.audit_entries
                .map_or("?".to_string(), |n| n.to_string()),
            b.db_bytes.map_or("?".to_string(), mib),
            b.wal_bytes_before_shutdown
                .map_or(String::new(), |w| format!(" (WAL just before shutdown: {})", mib(w)))
        ));
    }
    out
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or("?".to_string(), |v| format!("{v:.decimals$}"))
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
