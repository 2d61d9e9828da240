//! `flagstaff-delivery-load`: change-history delivery throughput and latency of a real
//! `flagstaff serve`.
//!
//! For each backend and scenario it starts the server on a fresh database with loopback
//! destinations allowed, starts a sink (a minimal HTTP server in this process) and points
//! webhooks at it, makes flag changes over the REST API, and measures at the sink what
//! arrives: deliveries per second (throughput scenario: many webhooks, changes as fast as a
//! few clients go) and change → delivery latency (latency scenario: one webhook, a steady
//! change rate). Markdown on stdout, JSON in a file. A failed PATCH, a missing delivery or a
//! bad signature fails the run (exit code 1); no timing is ever asserted.

mod scenario;
mod sink;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use flagstaff_bench_harness::Server;
use flagstaff_bench_harness::db::{PgDatabase, sqlite_scalar};
use flagstaff_bench_harness::report::civil_date;
use serde::Serialize;

use scenario::{DB_COUNT_QUERIES, DbCounts, Scenario, ScenarioResult, Spec};
use sink::Sink;

/// Change-history delivery benchmark: webhooks of a real `flagstaff serve` pointing at a
/// loopback sink; deliveries/s and change → delivery latency on SQLite and Postgres.
#[derive(Parser, Debug)]
#[command(name = "flagstaff-delivery-load", version, about)]
struct Args {
    /// The flagstaff binary to benchmark (build it with --release).
    #[arg(long, default_value = "target/release/flagstaff")]
    flagstaff_bin: PathBuf,
    /// Backends to run. Default: both when a Postgres URL is given, else sqlite.
    #[arg(long, value_enum)]
    backend: Option<BackendChoice>,
    /// Postgres server to run on; a fresh database flagstaff_bench_<pid> is created on it for
    /// each scenario and dropped afterwards.
    #[arg(long, env = "FLAGSTAFF_TEST_DATABASE_URL")]
    postgres_url: Option<String>,
    /// Scenarios to run, comma-separated: throughput, latency. Default: both.
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Throughput: webhooks, all pointing at the sink (each change is delivered to each).
    #[arg(long, default_value_t = 20)]
    webhooks: u32,
    /// Throughput: changes to make in all.
    #[arg(long, default_value_t = 1_500)]
    changes: u64,
    /// Throughput: concurrent change clients, each toggling its own flag back to back.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Latency: changes per second, from one client on a fixed schedule.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Latency: seconds at --rate.
    #[arg(long, default_value_t = 30.0)]
    latency_seconds: f64,
    /// Latency: webhooks.
    #[arg(long, default_value_t = 1)]
    latency_webhooks: u32,
    /// Runs of each scenario (each on a fresh server and database); with more than one, the
    /// report adds the medians.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Create unsigned webhooks (default: signed, and every signature is checked).
    #[arg(long)]
    unsigned: bool,
    /// How long to wait for the deliveries after the last change.
    #[arg(long, default_value_t = 300.0)]
    drain_timeout_seconds: f64,
    /// Worker threads of the change clients' runtime. It shares the machine with the server,
    /// so keep it small.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Runtime threads of the sink (1: one thread of its own).
    #[arg(long, default_value_t = 1)]
    sink_threads: usize,
    /// Copy each run's server log to DIR/<backend>-<scenario>.log (they live in a temp
    /// directory that is removed otherwise). With FLAGSTAFF_LOG=info,sqlx::query=debug in the
    /// environment (the server inherits it) the log lists every SQL statement.
    #[arg(long, value_name = "DIR")]
    keep_server_logs: Option<PathBuf>,
    /// JSON results file. Default: bench/results/delivery-load-<YYYY-MM-DD>.json
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

#[derive(Debug, Serialize)]
struct BackendReport {
    backend: &'static str,
    /// Every run of every scenario.
    scenarios: Vec<ScenarioResult>,
    /// Per scenario, the medians over its runs.
    medians: Vec<Medians>,
    errors: Vec<String>,
}

/// Medians over the runs of one scenario on one backend.
#[derive(Debug, Serialize)]
struct Medians {
    scenario: String,
    runs: usize,
    changes_per_s: f64,
    deliveries_per_s_first_to_last: f64,
    deliveries_per_s_middle_80: f64,
    deliveries_per_s_after_changes: f64,
    drain_s: f64,
    latency_from_answer_p50_ms: f64,
    latency_from_answer_p99_ms: f64,
    server_cpu_us_per_delivery: Option<f64>,
    duplicates_total: u64,
}

impl Medians {
    fn of(scenario: Scenario, runs: &[&ScenarioResult]) -> Medians {
        let median = |f: &dyn Fn(&ScenarioResult) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(|r| f(r)).collect();
            v.sort_by(f64::total_cmp);
            match v.len() {
                0 => 0.0,
                n if n % 2 == 1 => v[n / 2],
                n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
            }
        };
        let cpu = runs
            .iter()
            .all(|r| r.server_cpu_us_per_delivery.is_some())
            .then(|| median(&|r| r.server_cpu_us_per_delivery.unwrap_or(0.0)));
        Medians {
            scenario: scenario.id().to_string(),
            runs: runs.len(),
            changes_per_s: median(&|r| r.changes_per_s),
            deliveries_per_s_first_to_last: median(&|r| r.deliveries.per_s_first_to_last),
            deliveries_per_s_middle_80: median(&|r| r.deliveries.per_s_middle_80),
            deliveries_per_s_after_changes: median(&|r| r.deliveries.per_s_after_changes),
            drain_s: median(&|r| r.deliveries.drain_s),
            latency_from_answer_p50_ms: median(&|r| r.deliveries.latency_from_answer_ms.p50),
            latency_from_answer_p99_ms: median(&|r| r.deliveries.latency_from_answer_ms.p99),
            server_cpu_us_per_delivery: cpu,
            duplicates_total: runs.iter().map(|r| r.deliveries.duplicates).sum(),
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    tool: &'static str,
    date: String,
    unix_time: u64,
    cores: usize,
    flagstaff_bin: String,
    client_threads: usize,
    sink_threads: usize,
    runs: usize,
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
    match runtime.block_on(run(&args)) {
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

/// Runs everything; `Ok(false)` when something failed or a run could not be made.
async fn run(args: &Args) -> Result<bool> {
    if args.webhooks == 0 || args.latency_webhooks == 0 || args.clients == 0 {
        bail!("--webhooks, --latency-webhooks and --clients must be at least 1");
    }
    if args.changes == 0 || args.rate <= 0.0 || args.latency_seconds <= 0.0 {
        bail!("--changes, --rate and --latency-seconds must be positive");
    }
    let scenarios: Vec<Scenario> = if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenarios
            .iter()
            .map(|s| {
                Scenario::parse(s.trim())
                    .with_context(|| format!("unknown scenario {s:?}: use throughput, latency"))
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
        .unwrap_or_else(|| PathBuf::from(format!("bench/results/delivery-load-{date}.json")));

    let runs = args.runs.max(1);
    let mut reports = Vec::new();
    'backends: for backend in backends {
        let mut report = BackendReport {
            backend: backend.id(),
            scenarios: Vec::new(),
            medians: Vec::new(),
            errors: Vec::new(),
        };
        for &scenario in &scenarios {
            for run in 1..=runs {
                eprintln!(
                    "== {} / {} / run {run} of {runs} ==",
                    backend.id(),
                    scenario.id()
                );
                match run_one(args, backend, scenario, postgres_url.unwrap_or("")).await {
                    Ok(mut result) => {
                        result.run = run;
                        eprintln!("  {}", summary(&result));
                        report.scenarios.push(result);
                    }
                    Err(e) => {
                        let e = format!("{} run {run}: {e:#}", scenario.id());
                        eprintln!("error on {}: {e}", backend.id());
                        report.errors.push(e);
                    }
                }
                if INTERRUPTED.load(Ordering::Relaxed) {
                    reports.push(report);
                    break 'backends;
                }
            }
            let done: Vec<&ScenarioResult> = report
                .scenarios
                .iter()
                .filter(|r| r.scenario == scenario.id())
                .collect();
            if runs > 1 && !done.is_empty() {
                report.medians.push(Medians::of(scenario, &done));
            }
        }
        reports.push(report);
    }

    let report = Report {
        tool: "flagstaff-delivery-load",
        date,
        unix_time: now,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        flagstaff_bin: args.flagstaff_bin.display().to_string(),
        client_threads: args.client_threads,
        sink_threads: args.sink_threads,
        runs,
        note: "server, PostgreSQL, change clients and sink share the machine's cores",
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
        ok &= b.errors.is_empty();
        for s in &b.scenarios {
            let problems = problems(s);
            if !problems.is_empty() {
                ok = false;
                eprintln!("{} / {}: {}", b.backend, s.scenario, problems.join("; "));
            }
        }
    }
    Ok(ok)
}

/// What makes a run invalid (never its timings).
fn problems(s: &ScenarioResult) -> Vec<String> {
    let d = &s.deliveries;
    let mut out = Vec::new();
    if s.failures() > 0 {
        out.push(format!(
            "{} failed PATCHes ({:?}, {} transport errors); first: {}",
            s.failures(),
            s.non_200,
            s.transport_errors,
            s.sample_failure.as_deref().unwrap_or("-")
        ));
    }
    if s.commits != s.changes_sent {
        out.push(format!(
            "{} PATCHes sent but {} changes committed",
            s.changes_sent, s.commits
        ));
    }
    if d.missing > 0 || s.timed_out {
        out.push(format!(
            "{} of {} deliveries missing after the drain timeout",
            d.missing, d.expected
        ));
    }
    if d.incomplete_entries > 0 || d.unparseable > 0 || d.unmatched > 0 {
        out.push(format!(
            "{} audit entries not delivered to every webhook, {} unparseable bodies, {} deliveries of unknown changes",
            d.incomplete_entries, d.unparseable, d.unmatched
        ));
    }
    if d.signatures_invalid > 0 || d.signatures_missing > 0 {
        out.push(format!(
            "{} invalid and {} missing signatures",
            d.signatures_invalid, d.signatures_missing
        ));
    }
    out
}

fn summary(s: &ScenarioResult) -> String {
    let d = &s.deliveries;
    format!(
        "{} changes ({:.0}/s); {}/{} deliveries, {} duplicates; {:.0}/s first→last, {:.0}/s middle 80%; drain {:.2} s; latency from PATCH answer p50 {:.1} ms p99 {:.1} ms (from audit date p50 {:.1} ms); audit date ahead by up to {:.0} ms",
        s.commits,
        s.changes_per_s,
        d.distinct,
        d.expected,
        d.duplicates,
        d.per_s_first_to_last,
        d.per_s_middle_80,
        d.drain_s,
        d.latency_from_answer_ms.p50,
        d.latency_from_answer_ms.p99,
        d.latency_ms.p50,
        d.server_clock_ahead_ms.max
    )
}

/// Set once Ctrl-C interrupted a run: the remaining ones are skipped.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Runs `work` until it ends or Ctrl-C arrives. On Ctrl-C `work` is dropped, which stops the
/// server and the sink, and the caller still gets to drop the Postgres database.
async fn interruptible<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => {
            INTERRUPTED.store(true, Ordering::Relaxed);
            bail!("interrupted")
        }
    }
}

/// One scenario on a fresh server over a fresh database.
async fn run_one(
    args: &Args,
    backend: Backend,
    scenario: Scenario,
    admin_url: &str,
) -> Result<ScenarioResult> {
    let tmp = tempfile::Builder::new()
        .prefix("flagstaff-delivery-load-")
        .tempdir()?;
    let pg = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => {
            let db = PgDatabase::create(admin_url).await?;
            eprintln!("  created database {}", db.name);
            Some(db)
        }
    };
    let outcome = interruptible(on_server(args, backend, scenario, tmp.path(), pg.as_ref())).await;
    if let Some(dir) = &args.keep_server_logs {
        let to = dir.join(format!("{}-{}.log", backend.id(), scenario.id()));
        let copied = std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::copy(tmp.path().join("server.log"), &to));
        match copied {
            Ok(_) => eprintln!("  server log kept in {}", to.display()),
            Err(e) => eprintln!(
                "warning: cannot keep the server log in {}: {e}",
                to.display()
            ),
        }
    }
    if let Some(db) = pg {
        let name = db.name.clone();
        if let Err(e) = db.drop_database().await {
            eprintln!("warning: could not drop database {name}: {e:#}");
        }
    }
    outcome
}

async fn on_server(
    args: &Args,
    backend: Backend,
    scenario: Scenario,
    dir: &Path,
    pg: Option<&PgDatabase>,
) -> Result<ScenarioResult> {
    let sink = Sink::start(args.sink_threads)?;
    // SQLite lives here; with Postgres only the integration secret key file does.
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir)?;
    let mut server = Server::start(&args.flagstaff_bin, dir.join("server.log"), |command| {
        command
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--allow-outbound")
            .arg("127.0.0.0/8")
            .arg("--rate-limit")
            .arg("0")
            .env_remove("FLAGSTAFF_ALLOW_OUTBOUND");
        if let Some(db) = pg {
            command.arg("--database-url").arg(&db.url);
        }
    })
    .await?;
    let spec = Spec {
        backend: backend.id(),
        scenario,
        server_pid: server.pid(),
        webhooks: match scenario {
            Scenario::Throughput => args.webhooks,
            Scenario::Latency => args.latency_webhooks,
        },
        clients: args.clients,
        changes: args.changes,
        rate: args.rate,
        seconds: args.latency_seconds,
        sign: !args.unsigned,
        drain_timeout: Duration::from_secs_f64(args.drain_timeout_seconds.max(0.0)),
    };
    eprintln!(
        "  server at {} (log {}), sink at {}: {}",
        server.base,
        server.log_path.display(),
        sink.addr,
        spec.label()
    );
    let result = scenario::run(&server.base, &server.token, &sink, &spec).await;
    let broken = match &result {
        Ok(r) => !problems(r).is_empty(),
        Err(_) => true,
    };
    if broken {
        eprintln!("  server log tail:\n{}", server.log_tail());
    }
    let exit = server.stop()?;
    drop(sink);
    let mut result = result?;
    result.server_exit = exit.map(|s| s.to_string());
    let db_file = data_dir.join("flagstaff.db");
    let counts = match pg {
        Some(db) => db_counts(|sql| db.scalar(sql)).await,
        None => db_counts(|sql| sqlite_scalar(&db_file, sql)).await,
    };
    match counts {
        Ok(counts) => result.db = Some(counts),
        Err(e) => eprintln!("warning: cannot count the deliveries in the database: {e:#}"),
    }
    Ok(result)
}

async fn db_counts<'a, F, Fut>(scalar: F) -> Result<DbCounts>
where
    F: Fn(&'a str) -> Fut,
    Fut: Future<Output = Result<i64>>,
{
    let [delivered, pending, failed, attempts] = DB_COUNT_QUERIES;
    Ok(DbCounts {
        delivered: scalar(delivered).await?,
        pending: scalar(pending).await?,
        failed: scalar(failed).await?,
        attempts: scalar(attempts).await?,
    })
}

fn markdown(report: &Report) -> String {
    let mut out = format!(
        "## flagstaff-delivery-load, {} ({} cores shared by server, database, change clients and sink)\n",
        report.date, report.cores
    );
    for b in &report.backends {
        out.push_str(&format!("\n### {}\n\n", b.backend));
        for e in &b.errors {
            out.push_str(&format!("**error:** {e}\n\n"));
        }
        let run_label = |s: &ScenarioResult| {
            if report.runs > 1 {
                format!("{} (run {})", s.label, s.run)
            } else {
                s.label.clone()
            }
        };
        let throughput: Vec<&ScenarioResult> = b
            .scenarios
            .iter()
            .filter(|s| s.scenario == Scenario::Throughput.id())
            .collect();
        if !throughput.is_empty() {
            out.push_str(
                "| throughput run | changes | changes/s | PATCH p50 / p99 ms | deliveries / expected | duplicates | deliveries/s first→last | middle 80 % | while changing | after last change | drain s | change→delivery p50 / p99 ms (from PATCH answer) | server CPU µs/delivery | CPU s: server / client+sink / postgres / other |\n",
            );
            out.push_str(
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
            );
            for s in throughput {
                let d = &s.deliveries;
                out.push_str(&format!(
                    "| {} | {} | {:.0} | {:.2} / {:.2} | {} / {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.0} / {:.0} | {} | {} |\n",
                    run_label(s),
                    s.commits,
                    s.changes_per_s,
                    s.patch_ms.p50,
                    s.patch_ms.p99,
                    d.distinct,
                    d.expected,
                    d.duplicates,
                    d.per_s_first_to_last,
                    d.per_s_middle_80,
                    d.per_s_during_changes,
                    d.per_s_after_changes,
                    d.drain_s,
                    d.latency_from_answer_ms.p50,
                    d.latency_from_answer_ms.p99,
                    opt(s.server_cpu_us_per_delivery, 0),
                    cpu(s),
                ));
            }
            out.push('\n');
        }
        let latency: Vec<&ScenarioResult> = b
            .scenarios
            .iter()
            .filter(|s| s.scenario == Scenario::Latency.id())
            .collect();
        if !latency.is_empty() {
            out.push_str(
                "| latency run | changes | achieved changes/s | PATCH p50 / p99 ms | deliveries / expected | duplicates | change→delivery p50 ms | p90 ms | p99 ms | max ms | from audit `date`: p50 / p99 ms | server CPU µs/delivery | CPU s: server / client+sink / postgres / other |\n",
            );
            out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
            for s in latency {
                let d = &s.deliveries;
                out.push_str(&format!(
                    "| {} | {} | {:.1} | {:.2} / {:.2} | {} / {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} / {:.1} | {} | {} |\n",
                    run_label(s),
                    s.commits,
                    s.changes_per_s,
                    s.patch_ms.p50,
                    s.patch_ms.p99,
                    d.distinct,
                    d.expected,
                    d.duplicates,
                    d.latency_from_answer_ms.p50,
                    d.latency_from_answer_ms.p90,
                    d.latency_from_answer_ms.p99,
                    d.latency_from_answer_ms.max,
                    d.latency_ms.p50,
                    d.latency_ms.p99,
                    opt(s.server_cpu_us_per_delivery, 0),
                    cpu(s),
                ));
            }
            out.push('\n');
        }
        if !b.medians.is_empty() {
            out.push_str("| medians | runs | changes/s | deliveries/s first→last | middle 80 % | after last change | drain s | change→delivery p50 / p99 ms | server CPU µs/delivery | duplicates (all runs) |\n");
            out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
            for m in &b.medians {
                out.push_str(&format!(
                    "| {} | {} | {:.1} | {:.0} | {:.0} | {:.0} | {:.2} | {:.1} / {:.1} | {} | {} |\n",
                    m.scenario,
                    m.runs,
                    m.changes_per_s,
                    m.deliveries_per_s_first_to_last,
                    m.deliveries_per_s_middle_80,
                    m.deliveries_per_s_after_changes,
                    m.drain_s,
                    m.latency_from_answer_p50_ms,
                    m.latency_from_answer_p99_ms,
                    opt(m.server_cpu_us_per_delivery, 0),
                    m.duplicates_total,
                ));
            }
            out.push('\n');
        }
        for s in &b.scenarios {
            let threads: Vec<String> = s
                .server_threads
                .iter()
                .take(6)
                .map(|(name, secs)| format!("{name} {secs:.1}"))
                .collect();
            let db = s.db.as_ref().map_or("?".to_string(), |c| {
                format!(
                    "{} delivered, {} pending, {} failed, {} attempts",
                    c.delivered, c.pending, c.failed, c.attempts
                )
            });
            out.push_str(&format!(
                "- {} run {}: server CPU s by thread: {}; in the database afterwards (setup included): {db}; signatures valid {} / invalid {} / missing {}; audit `date` ahead of the PATCH answer: p50 {:.1} ms, max {:.1} ms.\n",
                s.scenario,
                s.run,
                if threads.is_empty() {
                    "?".to_string()
                } else {
                    threads.join(", ")
                },
                s.deliveries.signatures_valid,
                s.deliveries.signatures_invalid,
                s.deliveries.signatures_missing,
                s.deliveries.server_clock_ahead_ms.p50,
                s.deliveries.server_clock_ahead_ms.max,
            ));
        }
    }
    out
}

fn cpu(s: &ScenarioResult) -> String {
    format!(
        "{} / {} / {} / {}",
        opt(s.server_cpu_s, 1),
        opt(s.client_cpu_s, 1),
        opt(s.postgres_cpu_s, 1),
        opt(s.other_cpu_s, 1)
    )
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or("?".to_string(), |v| format!("{v:.decimals$}"))
}
