//! `flagstaff-store-sync-load`: how fast a real `flagstaff serve` keeps persistent stores
//! current.
//!
//! * **latency**: one flag toggled over the REST API, one change at a time; the time from
//!   sending the PATCH to the new value being readable in Redis (`HGET <prefix>:features`),
//!   as a daemon-mode SDK would read it. p50/p99.
//! * **full sync**: an environment with `--flags` flags and `--segments` segments; the time
//!   from creating a configuration (which starts with a full sync) until the whole
//!   environment is in Redis (`$inited` set, every flag present) or has arrived at a loopback
//!   HTTP store (the generic-feature-store manifest of the conformance catalogue). Median of
//!   `--runs`.
//!
//! SQLite backend, release binary. A failed request or a missing key fails the run; no
//! timing is asserted.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use flagstaff_bench_harness::Server;
use flagstaff_bench_harness::report::percentile;
use serde_json::{Value, json};
use tokio::sync::Notify;

#[derive(Parser, Debug)]
#[command(name = "flagstaff-store-sync-load", version, about)]
struct Args {
    /// The flagstaff binary to benchmark (build it with --release).
    #[arg(long, default_value = "target/release/flagstaff")]
    flagstaff_bin: PathBuf,
    #[arg(
        long,
        env = "FLAGSTAFF_TEST_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,
    /// The conformance catalogue (for generic-feature-store).
    #[arg(
        long,
        default_value = "../shared/conformance/integration-framework/integrations"
    )]
    catalogue: PathBuf,
    /// Latency: changes, one at a time.
    #[arg(long, default_value_t = 300)]
    changes: usize,
    #[arg(long, default_value_t = 5_000)]
    flags: usize,
    #[arg(long, default_value_t = 1_000)]
    segments: usize,
    /// Full syncs of each kind.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Concurrent REST clients while populating the environment.
    #[arg(long, default_value_t = 8)]
    clients: usize,
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
        body: Option<Value>,
    ) -> Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}/api/v2{path}", self.base))
            .header("Authorization", &self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{method} {path}: HTTP {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    percentile(&values, 50.0)
}

/// A loopback HTTP store: counts the bytes of every push and wakes the waiter.
#[derive(Default)]
struct Sink {
    pushes: std::sync::Mutex<Vec<(Instant, usize)>>,
    arrived: Notify,
}

async fn start_sink() -> Result<(String, Arc<Sink>)> {
    let sink = Arc::new(Sink::default());
    let shared = sink.clone();
    let app = axum::Router::new()
        .fallback(move |body: axum::body::Bytes| {
            let shared = shared.clone();
            async move {
                shared
                    .pushes
                    .lock()
                    .unwrap()
                    .push((Instant::now(), body.len()));
                shared.arrived.notify_waiters();
                axum::Json(json!({"success": true}))
            }
        })
        // A 5,000-flag environment is several MB: lift axum's 2 MB default, as a KV store would.
        .layer(axum::extract::DefaultBodyLimit::disable());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}"), sink))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let catalogue = std::fs::canonicalize(&args.catalogue)
        .with_context(|| format!("catalogue {}", args.catalogue.display()))?;
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir)?;
    let mut server = Server::start(&args.flagstaff_bin, dir.path().join("server.log"), |c| {
        c.arg("--data-dir")
            .arg(&data_dir)
            .arg("--integrations-dir")
            .arg(&catalogue)
            .arg("--allow-outbound")
            .arg("127.0.0.0/8");
    })
    .await?;
    let api = Arc::new(Api {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        token: server.token.clone(),
    });
    let redis = redis::Client::open(args.redis_url.as_str())?;
    let mut conn = redis.get_multiplexed_async_connection().await?;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let mut prefixes = Vec::new();

    // -- latency -----------------------------------------------------------------------
    api.call(
        reqwest::Method::POST,
        "/projects",
        Some(json!({"key": "lat", "name": "lat"})),
    )
    .await?;
    api.call(
        reqwest::Method::POST,
        "/flags/lat",
        Some(json!({"key": "f", "name": "f"})),
    )
    .await?;
    let prefix = format!("bench-{run_id}-lat");
    prefixes.push(prefix.clone());
    api.call(
        reqwest::Method::POST,
        "/integration-capabilities/featureStore/lat/production/redis-feature-store",
        Some(
            json!({"name": "lat", "on": true, "config": {"url": args.redis_url, "prefix": prefix}}),
        ),
    )
    .await?;
    wait_redis_flags(&mut conn, &prefix, 1, Duration::from_secs(30)).await?;
    let mut latencies = Vec::with_capacity(args.changes);
    for i in 0..args.changes {
        let on = i % 2 == 0;
        let start = Instant::now();
        api.call(
            reqwest::Method::PATCH,
            "/flags/lat/f",
            Some(json!([{"op": "replace", "path": "/environments/production/on", "value": on}])),
        )
        .await?;
        let deadline = start + Duration::from_secs(10);
        loop {
            let stored: Option<String> = redis::cmd("HGET")
                .arg(format!("{prefix}:features"))
                .arg("f")
                .query_async(&mut conn)
                .await?;
            let seen = stored
                .and_then(|s| serde_json::from_str::<Value>(&s).ok())
                .is_some_and(|v| v["on"] == on);
            if seen {
                latencies.push(ms(start.elapsed()));
                break;
            }
            if Instant::now() > deadline {
                bail!("change {i} not visible in Redis within 10 s");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    latencies.sort_by(|a, b| a.total_cmp(b));

    // -- a large environment -------------------------------------------------------------
    api.call(
        reqwest::Method::POST,
        "/projects",
        Some(json!({"key": "big", "name": "big"})),
    )
    .await?;
    let populate = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..args.clients {
        let api = api.clone();
        let (flags, segments, clients) = (args.flags, args.segments, args.clients);
        tasks.spawn(async move {
            for i in (client..flags).step_by(clients) {
                api.call(
                    reqwest::Method::POST,
                    "/flags/big",
                    Some(json!({"key": format!("flag-{i}"), "name": format!("Flag {i}")})),
                )
                .await?;
            }
            for i in (client..segments).step_by(clients) {
                // A segment is created empty (LaunchDarkly's SegmentBody has no members),
                // then given one member.
                api.call(
                    reqwest::Method::POST,
                    "/segments/big/production",
                    Some(json!({"key": format!("seg-{i}"), "name": format!("Segment {i}")})),
                )
                .await?;
                api.call(
                    reqwest::Method::PATCH,
                    &format!("/segments/big/production/seg-{i}"),
                    Some(
                        json!([{"op": "add", "path": "/included/-", "value": format!("user-{i}")}]),
                    ),
                )
                .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    eprintln!(
        "populated {} flags and {} segments in {:.1} s",
        args.flags,
        args.segments,
        populate.elapsed().as_secs_f64()
    );

    let mut redis_syncs = Vec::new();
    for run in 0..args.runs {
        let prefix = format!("bench-{run_id}-full-{run}");
        prefixes.push(prefix.clone());
        let start = Instant::now();
        api.call(
            reqwest::Method::POST,
            "/integration-capabilities/featureStore/big/production/redis-feature-store",
            Some(json!({"name": format!("full-{run}"), "on": true,
                "config": {"url": args.redis_url, "prefix": prefix}})),
        )
        .await?;
        wait_redis_flags(&mut conn, &prefix, args.flags, Duration::from_secs(120)).await?;
        redis_syncs.push(ms(start.elapsed()));
        let segments: usize = redis::cmd("HLEN")
            .arg(format!("{prefix}:segments"))
            .query_async(&mut conn)
            .await?;
        if segments != args.segments {
            bail!("{segments} segments in Redis, expected {}", args.segments);
        }
    }

    let (sink_url, sink) = start_sink().await?;
    let mut http_syncs = Vec::new();
    let mut payload_bytes = 0;
    for run in 0..args.runs {
        let before = sink.pushes.lock().unwrap().len();
        let start = Instant::now();
        api.call(
            reqwest::Method::POST,
            "/integration-capabilities/featureStore/big/production/generic-feature-store",
            Some(
                json!({"name": format!("http-{run}"), "on": true, "config": {
                "featureStoreReqUrl": format!("{sink_url}/store/{run}"),
                "validationReqUrl": format!("{sink_url}/validate")}}),
            ),
        )
        .await?;
        let deadline = start + Duration::from_secs(120);
        loop {
            let arrived = sink.arrived.notified();
            let pushes = sink.pushes.lock().unwrap().clone();
            // The validation request has no body; the push carries the environment.
            if let Some((at, bytes)) = pushes[before..].iter().find(|(_, b)| *b > 0) {
                http_syncs.push(ms(at.duration_since(start)));
                payload_bytes = *bytes;
                break;
            }
            if tokio::time::timeout_at(deadline.into(), arrived)
                .await
                .is_err()
            {
                bail!("no push of the large environment within 120 s");
            }
        }
    }

    for prefix in &prefixes {
        let _: () = redis::cmd("DEL")
            .arg(format!("{prefix}:features"))
            .arg(format!("{prefix}:segments"))
            .arg(format!("{prefix}:$inited"))
            .query_async(&mut conn)
            .await?;
    }
    server.stop()?;

    println!("## store-sync-load\n");
    println!(
        "change → visible in Redis ({} changes, one at a time): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or_default()
    );
    println!(
        "full sync, {} flags + {} segments → Redis: median {:.0} ms of {:?}",
        args.flags,
        args.segments,
        median(redis_syncs.clone()),
        redis_syncs.iter().map(|v| v.round()).collect::<Vec<_>>()
    );
    println!(
        "full sync, same environment → loopback HTTP store ({} bytes): median {:.0} ms of {:?}",
        payload_bytes,
        median(http_syncs.clone()),
        http_syncs.iter().map(|v| v.round()).collect::<Vec<_>>()
    );
    Ok(())
}

/// Waits until `$inited` is set and `<prefix>:features` holds at least `flags` entries.
async fn wait_redis_flags(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    flags: usize,
    limit: Duration,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let inited: bool = redis::cmd("EXISTS")
            .arg(format!("{prefix}:$inited"))
            .query_async(conn)
            .await?;
        if inited {
            let count: usize = redis::cmd("HLEN")
                .arg(format!("{prefix}:features"))
                .query_async(conn)
                .await?;
            if count >= flags {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{prefix}: the store did not reach {flags} flags within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
