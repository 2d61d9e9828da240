//! `flagstaff-stream-load`: SSE fan-out of a real `flagstaff serve`.
//!
//! Starts the release server on a fresh SQLite database (rate limiting off), creates a project
//! and a flag over REST, raises its own `RLIMIT_NOFILE` (the server child inherits it), opens N
//! concurrent `GET /all` streams at a bounded connect rate (raw HTTP/1.1 over loopback, see
//! `client.rs`), waits until every stream has its first `put`, and measures the server's RSS
//! before and after: RSS per stream. Then it makes C flag changes over REST (sequential, spaced)
//! and, for each, measures the delay from sending the PATCH until every stream has received the
//! `patch` event carrying it. Reports percentiles as markdown on stdout (and JSON with `--out`).
//!
//! Every phase is bounded in time; the streams are closed and the server stopped on every path.
//! Exit code 1 when a stream failed or missed a change.

mod client;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::{Value, json};

use client::{Shared, StreamResult};
use server::Server;

/// SSE fan-out benchmark: N `GET /all` streams against `flagstaff serve` (SQLite), server RSS
/// per stream, and the delay until every stream has a flag change.
#[derive(Parser, Debug)]
#[command(name = "flagstaff-stream-load", version, about)]
struct Args {
    /// The flagstaff binary to benchmark (build it with --release).
    #[arg(long, default_value = "target/release/flagstaff")]
    flagstaff_bin: PathBuf,
    /// Concurrent `GET /all` streams.
    #[arg(long, default_value_t = 10_000)]
    streams: usize,
    /// New connections per second while opening the streams.
    #[arg(long, default_value_t = 1_000)]
    connect_rate: u32,
    /// Flag changes to make once every stream is open.
    #[arg(long, default_value_t = 100)]
    changes: usize,
    /// Spacing between the starts of two changes, in milliseconds.
    #[arg(long, default_value_t = 50)]
    change_interval_ms: u64,
    /// How long to wait, after the last change, for every stream to have every change.
    #[arg(long, default_value_t = 30.0)]
    drain_timeout_secs: f64,
    /// How long opening all streams (until each has its first `put`) may take, beyond
    /// streams / connect-rate.
    #[arg(long, default_value_t = 60.0)]
    connect_slack_secs: f64,
    /// Worker threads of the client's runtime. It shares the machine with the server, so keep
    /// it small.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to cover the streams (children inherit it).
fn raise_fd_limit(streams: usize) -> Result<u64> {
    let want = streams as u64 + 1_024;
    let got = rlimit::increase_nofile_limit(want).context("cannot raise RLIMIT_NOFILE")?;
    if got < want {
        bail!(
            "RLIMIT_NOFILE can only be raised to {got} (hard limit), {want} are needed for {streams} streams: run fewer streams or raise the hard limit"
        );
    }
    Ok(got)
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, Value)>,
    ) -> Result<Value> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}/api/v2{path}", self.base))
            .header("Authorization", &self.token);
        if let Some((content_type, body)) = body {
            req = req
                .header("Content-Type", content_type)
                .body(body.to_string());
        }
        let response = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{method} {path} answered {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

const SEMANTIC: &str = "application/json; domain-model=launchdarkly.semanticpatch";

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(mut values: Vec<f64>) -> Value {
    values.sort_by(f64::total_cmp);
    json!({
        "count": values.len(),
        "p50": pct(&values, 50.0),
        "p90": pct(&values, 90.0),
        "p99": pct(&values, 99.0),
        "max": values.last().copied().unwrap_or(f64::NAN),
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

async fn run(args: &Args) -> Result<bool> {
    if args.streams == 0 || args.changes == 0 || args.connect_rate == 0 {
        bail!("--streams, --changes and --connect-rate must be positive");
    }
    let fd_limit = raise_fd_limit(args.streams)?;
    let dir = tempfile::tempdir().context("temp dir")?;
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir)?;
    let mut server = server::start(
        &args.flagstaff_bin,
        &data_dir,
        dir.path().join("server.log"),
    )
    .await?;
    let pid = server.pid().context("server pid")?;
    eprintln!(
        "server pid {pid} on {} (RLIMIT_NOFILE {fd_limit})",
        server.base
    );

    // A project and a string flag whose first variation carries the change counter.
    let api = Api {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
        base: server.base.clone(),
        token: server.token.clone(),
    };
    use reqwest::Method;
    api.call(
        Method::POST,
        "/projects",
        Some(("application/json", json!({"key": "load", "name": "Load"}))),
    )
    .await?;
    let flag = api
        .call(
            Method::POST,
            "/flags/load",
            Some((
                "application/json",
                json!({"key": "fanout", "name": "Fan-out",
                       "variations": [{"value": "chg-0"}, {"value": "other"}]}),
            )),
        )
        .await?;
    let variation_id = flag["variations"][0]["_id"]
        .as_str()
        .context("variation _id")?
        .to_string();
    let env = api
        .call(Method::GET, "/projects/load/environments/production", None)
        .await?;
    let sdk_key: Arc<str> = env["apiKey"].as_str().context("apiKey")?.into();

    // Build the environment's feed (lazily made on the first SDK request) before measuring.
    let warm = api
        .http
        .get(format!("{}/sdk/latest-all", server.base))
        .header("Authorization", &*sdk_key)
        .send()
        .await?;
    if !warm.status().is_success() {
        bail!("GET /sdk/latest-all answered {}", warm.status());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = server::rss_bytes(pid)?;
    let threads_before = server::threads(pid)?;

    // Open the streams at a bounded rate.
    let shared = Arc::new(Shared::new(args.changes));
    let mut handles = Vec::with_capacity(args.streams);
    let mut results = Vec::with_capacity(args.streams);
    let connect_start = Instant::now();
    let per_tick = (args.connect_rate as usize / 100).max(1);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(
        per_tick as f64 / f64::from(args.connect_rate),
    ));
    while handles.len() < args.streams {
        ticker.tick().await;
        for _ in 0..per_tick.min(args.streams - handles.len()) {
            let result = Arc::new(Mutex::new(StreamResult {
                arrivals: vec![0; args.changes + 1],
                error: None,
            }));
            results.push(result.clone());
            handles.push(tokio::spawn(client::run_stream(
                server.addr,
                sdk_key.clone(),
                shared.clone(),
                result,
            )));
        }
        if shared.failed.load(Ordering::Relaxed) > 0 {
            break;
        }
    }
    let connect_deadline = connect_start
        + Duration::from_secs_f64(
            args.streams as f64 / f64::from(args.connect_rate) + args.connect_slack_secs,
        );
    while shared.ready.load(Ordering::Relaxed) < args.streams
        && shared.failed.load(Ordering::Relaxed) == 0
        && Instant::now() < connect_deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connect_secs = connect_start.elapsed().as_secs_f64();
    let ready = shared.ready.load(Ordering::Relaxed);
    eprintln!(
        "{ready}/{} streams have their first put after {connect_secs:.1} s",
        args.streams
    );

    let outcome = if ready < args.streams {
        Err(first_error(&results)
            .map(|e| anyhow::anyhow!("only {ready} of {} streams opened: {e}", args.streams))
            .unwrap_or_else(|| {
                anyhow::anyhow!(
                    "only {ready} of {} streams opened within {connect_secs:.1} s",
                    args.streams
                )
            }))
    } else {
        measure(
            args,
            &api,
            &server,
            pid,
            &shared,
            &results,
            &variation_id,
            rss_before,
            threads_before,
            connect_secs,
        )
        .await
    };

    // Close every stream, then stop the server.
    for h in &handles {
        h.abort();
    }
    for h in handles {
        let _ = h.await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    if let Some(status) = server.exited() {
        eprintln!(
            "warning: the server exited during the run ({status}); log:\n{}",
            server.log_tail()
        );
    }
    let status = server.stop()?;
    eprintln!("server stopped: {status:?}");
    outcome
}

fn first_error(results: &[Arc<Mutex<StreamResult>>]) -> Option<String> {
    results
        .iter()
        .find_map(|r| r.lock().ok().and_then(|r| r.error.clone()))
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    args: &Args,
    api: &Api,
    server: &Server,
    pid: u32,
    shared: &Shared,
    results: &[Arc<Mutex<StreamResult>>],
    variation_id: &str,
    rss_before: u64,
    threads_before: u64,
    connect_secs: f64,
) -> Result<bool> {
    // Let allocations settle, then measure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = server::rss_bytes(pid)?;
    let threads_after = server::threads(pid)?;
    let client_rss = server::own_rss_bytes()?;
    let per_stream = (rss_after.saturating_sub(rss_before)) as f64 / args.streams as f64;
    eprintln!(
        "server RSS {:.1} MiB -> {:.1} MiB: {:.1} KiB per stream",
        mib(rss_before),
        mib(rss_after),
        per_stream / 1024.0
    );

    // The changes.
    let server_cpu_0 = server::cpu_seconds(Some(pid))?;
    let client_cpu_0 = server::cpu_seconds(None)?;
    let mut sent_us = vec![0u64; args.changes + 1];
    let mut rest_ms = Vec::with_capacity(args.changes);
    let interval = Duration::from_millis(args.change_interval_ms);
    let changes_start = Instant::now();
    for (i, sent) in sent_us.iter_mut().enumerate().skip(1) {
        let due = changes_start + interval * (i as u32 - 1);
        tokio::time::sleep_until(due.into()).await;
        let start = Instant::now();
        *sent = start.duration_since(shared.epoch).as_micros() as u64;
        api.call(
            reqwest::Method::PATCH,
            "/flags/load/fanout",
            Some((
                SEMANTIC,
                json!({"comment": format!("change {i}"), "instructions": [
                    {"kind": "updateVariation", "variationId": variation_id, "value": format!("chg-{i}")}
                ]}),
            )),
        )
        .await?;
        rest_ms.push(start.elapsed().as_secs_f64() * 1000.0);
        if shared.failed.load(Ordering::Relaxed) > 0 {
            break;
        }
    }
    let drain_deadline = Instant::now() + Duration::from_secs_f64(args.drain_timeout_secs);
    while shared.seen[args.changes].load(Ordering::Relaxed) < args.streams
        && shared.failed.load(Ordering::Relaxed) == 0
        && Instant::now() < drain_deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let change_phase_secs = changes_start.elapsed().as_secs_f64();
    let server_cpu = server::cpu_seconds(Some(pid))? - server_cpu_0;
    let client_cpu = server::cpu_seconds(None)? - client_cpu_0;
    let rss_end = server::rss_bytes(pid)?;

    // Delays: per stream and change, and per change the slowest stream.
    let mut per_stream_ms = Vec::with_capacity(args.streams * args.changes);
    let mut all_ms = Vec::with_capacity(args.changes);
    let mut first_ms = Vec::with_capacity(args.changes);
    let mut missed = 0usize;
    let mut slowest = vec![0u64; args.changes + 1];
    let mut fastest = vec![u64::MAX; args.changes + 1];
    let mut complete = vec![true; args.changes + 1];
    for r in results {
        let r = r.lock().expect("result lock");
        for i in 1..=args.changes {
            let at = r.arrivals[i];
            if at == 0 {
                missed += 1;
                complete[i] = false;
                continue;
            }
            let d = at.saturating_sub(sent_us[i]);
            per_stream_ms.push(d as f64 / 1000.0);
            slowest[i] = slowest[i].max(d);
            fastest[i] = fastest[i].min(d);
        }
    }
    for i in 1..=args.changes {
        if complete[i] {
            all_ms.push(slowest[i] as f64 / 1000.0);
        }
        if fastest[i] != u64::MAX {
            first_ms.push(fastest[i] as f64 / 1000.0);
        }
    }
    let failed = shared.failed.load(Ordering::Relaxed);
    let report = json!({
        "streams": args.streams,
        "changes": args.changes,
        "change_interval_ms": args.change_interval_ms,
        "connect_rate_per_s": args.connect_rate,
        "client_threads": args.client_threads,
        "connect_seconds": connect_secs,
        "server": {
            "rss_before_bytes": rss_before,
            "rss_after_bytes": rss_after,
            "rss_end_bytes": rss_end,
            "rss_per_stream_bytes": per_stream,
            "threads_before": threads_before,
            "threads_after": threads_after,
            "cpu_seconds_during_changes": server_cpu,
        },
        "client": {"rss_bytes": client_rss, "cpu_seconds_during_changes": client_cpu},
        "change_phase_seconds": change_phase_secs,
        "rest_patch_ms": summary(rest_ms),
        "delay_until_all_streams_ms": summary(all_ms),
        "delay_until_first_stream_ms": summary(first_ms),
        "per_stream_delay_ms": summary(per_stream_ms),
        "missed": missed,
        "failed_streams": failed,
        "resyncs": shared.resyncs.load(Ordering::Relaxed),
        "coalesced": shared.skipped.load(Ordering::Relaxed),
        "server_base": server.base,
    });
    print_markdown(&report);
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("cannot write {}", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    if failed > 0 {
        eprintln!(
            "FAIL: {failed} streams ended early; first error: {}",
            first_error(results).unwrap_or_default()
        );
    }
    if missed > 0 {
        eprintln!("FAIL: {missed} (stream, change) pairs never arrived");
    }
    Ok(failed == 0 && missed == 0)
}

fn print_markdown(r: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let row = |name: &str, s: &Value| {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
            f(&s["p50"]),
            f(&s["p90"]),
            f(&s["p99"]),
            f(&s["max"])
        );
    };
    println!(
        "\n### {} streams, {} changes every {} ms\n",
        r["streams"], r["changes"], r["change_interval_ms"]
    );
    println!("| measure | value |\n| --- | --- |");
    println!(
        "| open all streams (connect rate {}/s) | {:.1} s |",
        r["connect_rate_per_s"],
        f(&r["connect_seconds"])
    );
    let s = &r["server"];
    println!(
        "| server RSS before / with streams / after changes | {:.1} / {:.1} / {:.1} MiB |",
        mib(s["rss_before_bytes"].as_u64().unwrap_or(0)),
        mib(s["rss_after_bytes"].as_u64().unwrap_or(0)),
        mib(s["rss_end_bytes"].as_u64().unwrap_or(0))
    );
    println!(
        "| server RSS per stream | {:.1} KiB |",
        f(&s["rss_per_stream_bytes"]) / 1024.0
    );
    println!(
        "| server threads before / with streams | {} / {} |",
        s["threads_before"], s["threads_after"]
    );
    println!(
        "| CPU during the change phase ({:.1} s): server / client | {:.2} s / {:.2} s |",
        f(&r["change_phase_seconds"]),
        f(&s["cpu_seconds_during_changes"]),
        f(&r["client"]["cpu_seconds_during_changes"])
    );
    println!(
        "| client RSS | {:.1} MiB |",
        mib(r["client"]["rss_bytes"].as_u64().unwrap_or(0))
    );
    println!(
        "| missed (stream, change) pairs / failed streams / resync puts / coalesced patches | {} / {} / {} / {} |",
        r["missed"], r["failed_streams"], r["resyncs"], r["coalesced"]
    );
    println!(
        "\n| delay (ms), from sending the PATCH | p50 | p90 | p99 | max |\n| --- | --- | --- | --- | --- |"
    );
    row("REST PATCH response", &r["rest_patch_ms"]);
    row(
        "first stream has the change",
        &r["delay_until_first_stream_ms"],
    );
    row(
        "**every** stream has the change",
        &r["delay_until_all_streams_ms"],
    );
    row("per stream", &r["per_stream_delay_ms"]);
}
