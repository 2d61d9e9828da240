//! Setup over HTTP and the timed PATCH workloads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use flagstaff_bench_harness::cpu::CpuSample;
use flagstaff_bench_harness::report::percentile;
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

pub const PROJECT: &str = "bench";
pub const ENVIRONMENT: &str = "production";
pub const SHARED_FLAG: &str = "flag-shared";
const SEMANTIC_PATCH: &str = "application/json; domain-model=launchdarkly.semanticpatch";
/// Per-request timeout: a request slower than this counts as a failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A flag to patch and the id of the variation its individual targets go to.
#[derive(Debug, Clone)]
pub struct Flag {
    pub key: String,
    pub variation_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// One client, one flag: the latency floor of the write path.
    Single,
    /// N clients at once, each on its own flag: contention only on the store's writer.
    OwnFlags,
    /// N clients at once, all on the same flag: contention on the per-flag lock too.
    SharedFlag,
}

impl Scenario {
    pub const ALL: [Scenario; 3] = [Scenario::Single, Scenario::OwnFlags, Scenario::SharedFlag];

    pub fn id(self) -> &'static str {
        match self {
            Scenario::Single => "single",
            Scenario::OwnFlags => "own-flags",
            Scenario::SharedFlag => "shared-flag",
        }
    }

    pub fn clients(self, concurrency: usize) -> usize {
        match self {
            Scenario::Single => 1,
            _ => concurrency,
        }
    }

    pub fn label(self, concurrency: usize) -> String {
        match self {
            Scenario::Single => "1 client".into(),
            Scenario::OwnFlags => format!("{concurrency} clients, own flags"),
            Scenario::SharedFlag => format!("{concurrency} clients, shared flag"),
        }
    }

    pub fn parse(s: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|x| x.id() == s)
    }
}

/// An HTTP client for the API with the owner token; keep-alive to loopback.
pub fn api_client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .build()?)
}

async fn expect(response: reqwest::Response, status: StatusCode, what: &str) -> Result<Value> {
    let got = response.status();
    let text = response.text().await?;
    if got != status {
        bail!("{what}: expected HTTP {status}, got {got}: {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("{what}: response is not JSON"))
}

/// Creates the project and the flags: `flag-0` … `flag-{n-1}` plus [`SHARED_FLAG`].
pub async fn setup(base: &str, token: &str, n: usize) -> Result<Vec<Flag>> {
    let http = api_client()?;
    let response = http
        .post(format!("{base}/api/v2/projects"))
        .header("Authorization", token)
        .json(&json!({"key": PROJECT, "name": "Bench"}))
        .send()
        .await?;
    let project = expect(response, StatusCode::CREATED, "create project").await?;
    let has_env = project["environments"]
        .as_array()
        .is_some_and(|envs| envs.iter().any(|e| e["key"] == ENVIRONMENT));
    if !has_env {
        bail!("the new project has no \"{ENVIRONMENT}\" environment: {project}");
    }
    let mut flags = Vec::with_capacity(n + 1);
    let keys = (0..n)
        .map(|i| format!("flag-{i}"))
        .chain([SHARED_FLAG.to_string()]);
    for key in keys {
        let response = http
            .post(format!("{base}/api/v2/flags/{PROJECT}"))
            .header("Authorization", token)
            .json(&json!({"key": key, "name": key, "description": "patch-load benchmark flag"}))
            .send()
            .await?;
        let flag = expect(response, StatusCode::CREATED, "create flag").await?;
        let variation_id = flag["variations"][0]["_id"]
            .as_str()
            .with_context(|| format!("flag {key} has no variations[0]._id: {flag}"))?
            .to_string();
        flags.push(Flag { key, variation_id });
    }
    Ok(flags)
}

/// The flag's current `_version` (one more per committed change) and whether it is on in
/// [`ENVIRONMENT`].
pub async fn flag_state(base: &str, token: &str, key: &str) -> Result<(i64, bool)> {
    let http = api_client()?;
    let response = http
        .get(format!("{base}/api/v2/flags/{PROJECT}/{key}"))
        .header("Authorization", token)
        .send()
        .await?;
    let flag = expect(response, StatusCode::OK, "get flag").await?;
    let version = flag["_version"]
        .as_i64()
        .with_context(|| format!("flag {key} has no _version"))?;
    let on = flag["environments"][ENVIRONMENT]["on"]
        .as_bool()
        .with_context(|| format!("flag {key} has no environments.{ENVIRONMENT}.on"))?;
    Ok((version, on))
}

/// What one client sends.
struct PatchPlan {
    client: usize,
    scenario: &'static str,
    flag: Flag,
    /// Whether request 0 turns the flag on (then requests alternate): the opposite of the
    /// flag's state when the run starts, so that a client alone on its flag changes it with
    /// every request.
    first_on: bool,
}

/// The semantic patch of request number `i`: turn the flag on or off, alternating; every 10th
/// request also individually targets a new context key to the first variation and removes the
/// key this client targeted the previous time, so each of those requests changes the targets
/// too while the target list stays small.
fn patch_body(plan: &PatchPlan, i: u64, previous_key: &mut Option<String>) -> String {
    let on = plan.first_on == i.is_multiple_of(2);
    let toggle = if on { "turnFlagOn" } else { "turnFlagOff" };
    let client = plan.client;
    let flag = &plan.flag;
    let mut instructions = vec![json!({"kind": toggle})];
    if i % 10 == 9 {
        let key = format!("ctx-{}-{client}-{i}", plan.scenario);
        instructions.push(json!({
            "kind": "addTargets", "contextKind": "user",
            "variationId": flag.variation_id, "values": [key],
        }));
        if let Some(old) = previous_key.take() {
            instructions.push(json!({
                "kind": "removeTargets", "contextKind": "user",
                "variationId": flag.variation_id, "values": [old],
            }));
        }
        *previous_key = Some(key);
    }
    json!({
        "environmentKey": ENVIRONMENT,
        "comment": format!("patch-load client {client} request {i}"),
        "instructions": instructions,
    })
    .to_string()
}

/// Shared by the clients of one run.
struct RunControl {
    measure_from: Instant,
    stop_at: Instant,
    max_requests: u64,
    issued: AtomicU64,
    capped: AtomicBool,
}

/// What one client saw.
#[derive(Default)]
struct ClientTally {
    /// Latencies (µs) of the requests that started inside the measured window.
    latencies_us: Vec<u64>,
    measured: u64,
    warmup: u64,
    ok: u64,
    /// Non-200 answers by status, over the whole run (warm-up included).
    statuses: BTreeMap<u16, u64>,
    transport_errors: u64,
    sample_failure: Option<String>,
}

async fn run_client(
    control: Arc<RunControl>,
    url: String,
    token: String,
    plan: PatchPlan,
) -> Result<ClientTally> {
    // One HTTP client (one keep-alive connection) per simulated client.
    let http = api_client()?;
    let mut tally = ClientTally::default();
    let mut previous_key = None;
    let mut i: u64 = 0;
    loop {
        if Instant::now() >= control.stop_at {
            break;
        }
        if control.issued.fetch_add(1, Ordering::Relaxed) >= control.max_requests {
            control.capped.store(true, Ordering::Relaxed);
            break;
        }
        let body = patch_body(&plan, i, &mut previous_key);
        i += 1;
        let started = Instant::now();
        let result = http
            .patch(&url)
            .header("Authorization", &token)
            .header("Content-Type", SEMANTIC_PATCH)
            .body(body)
            .send()
            .await;
        let outcome = match result {
            Ok(response) => {
                let status = response.status();
                // Read the whole body so the connection goes back to the pool.
                match response.bytes().await {
                    Ok(_) if status == StatusCode::OK => Ok(()),
                    Ok(bytes) => Err((
                        Some(status.as_u16()),
                        format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes)),
                    )),
                    Err(e) => Err((None, format!("reading the response: {e}"))),
                }
            }
            Err(e) => Err((None, e.to_string())),
        };
        let elapsed = started.elapsed();
        if started >= control.measure_from {
            tally.measured += 1;
            tally.latencies_us.push(elapsed.as_micros() as u64);
        } else {
            tally.warmup += 1;
        }
        match outcome {
            Ok(()) => tally.ok += 1,
            Err((status, text)) => {
                match status {
                    Some(s) => *tally.statuses.entry(s).or_default() += 1,
                    None => tally.transport_errors += 1,
                }
                tally.sample_failure.get_or_insert(text);
            }
        }
    }
    Ok(tally)
}

/// The numbers of one backend × scenario run.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub backend: String,
    pub scenario: String,
    pub label: String,
    pub clients: usize,
    /// Requests that started in the measured window.
    pub requests: u64,
    pub warmup_requests: u64,
    /// Seconds from the end of the warm-up until the last measured request finished.
    pub duration_s: f64,
    pub requests_per_s: f64,
    /// 200 answers over the whole run, warm-up included.
    pub ok: u64,
    /// Changes actually committed over the whole run (sum of the flags' version increases);
    /// lower than `ok` when concurrent toggles of one flag cancel out (a no-op PATCH answers 200
    /// without writing).
    pub commits: u64,
    /// `commits` over the whole run's wall time (warm-up included).
    pub commits_per_s: f64,
    pub non_200: BTreeMap<u16, u64>,
    pub transport_errors: u64,
    pub sample_failure: Option<String>,
    pub capped: bool,
    /// CPU seconds used during the run (warm-up included) by the server, by this load
    /// generator, by all `postgres` processes on the machine, and by everything else (other
    /// processes compete for the same cores: a large `other_cpu_s` means a noisy measurement).
    /// Linux only.
    pub server_cpu_s: Option<f64>,
    pub client_cpu_s: Option<f64>,
    pub postgres_cpu_s: Option<f64>,
    pub other_cpu_s: Option<f64>,
    /// Server CPU per 200 answer, µs.
    pub server_cpu_us_per_request: Option<f64>,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl ScenarioResult {
    pub fn failures(&self) -> u64 {
        self.non_200.values().sum::<u64>() + self.transport_errors
    }
}

pub struct RunSpec {
    pub backend: String,
    /// The server's process id, for CPU accounting.
    pub server_pid: Option<u32>,
    pub scenario: Scenario,
    pub concurrency: usize,
    pub warmup: Duration,
    pub measure: Duration,
    pub max_requests: u64,
}

/// Runs one scenario against a set-up server.
pub async fn run_scenario(
    base: &str,
    token: &str,
    flags: &[Flag],
    spec: &RunSpec,
) -> Result<ScenarioResult> {
    let clients = spec.scenario.clients(spec.concurrency);
    let targets: Vec<Flag> = (0..clients)
        .map(|c| match spec.scenario {
            Scenario::SharedFlag => flags
                .iter()
                .find(|f| f.key == SHARED_FLAG)
                .cloned()
                .expect("setup creates the shared flag"),
            _ => flags[c].clone(),
        })
        .collect();
    let mut touched: Vec<String> = targets.iter().map(|f| f.key.clone()).collect();
    touched.sort();
    touched.dedup();
    let mut versions_before = Vec::new();
    let mut on_before = BTreeMap::new();
    for key in &touched {
        let (version, on) = flag_state(base, token, key).await?;
        versions_before.push(version);
        on_before.insert(key.clone(), on);
    }

    let cpu_before = CpuSample::take(spec.server_pid);
    let start = Instant::now();
    let control = Arc::new(RunControl {
        measure_from: start + spec.warmup,
        stop_at: start + spec.warmup + spec.measure,
        max_requests: spec.max_requests,
        issued: AtomicU64::new(0),
        capped: AtomicBool::new(false),
    });
    let mut tasks = Vec::with_capacity(clients);
    for (client, flag) in targets.into_iter().enumerate() {
        let url = format!("{base}/api/v2/flags/{PROJECT}/{}", flag.key);
        let plan = PatchPlan {
            client,
            scenario: spec.scenario.id(),
            first_on: !on_before.get(&flag.key).copied().unwrap_or(false),
            flag,
        };
        tasks.push(tokio::spawn(run_client(
            control.clone(),
            url,
            token.to_string(),
            plan,
        )));
    }
    let mut all = ClientTally::default();
    for task in tasks {
        let t = task.await.context("a client task panicked")??;
        all.latencies_us.extend(t.latencies_us);
        all.measured += t.measured;
        all.warmup += t.warmup;
        all.ok += t.ok;
        for (s, n) in t.statuses {
            *all.statuses.entry(s).or_default() += n;
        }
        all.transport_errors += t.transport_errors;
        if all.sample_failure.is_none() {
            all.sample_failure = t.sample_failure;
        }
    }
    let finished = Instant::now();
    let cpu = CpuSample::take(spec.server_pid).since(&cpu_before);
    let total_secs = finished.saturating_duration_since(start).as_secs_f64();
    let duration = finished.saturating_duration_since(control.measure_from);

    let mut commits = 0;
    for (key, before) in touched.iter().zip(versions_before) {
        commits += (flag_state(base, token, key).await?.0 - before).max(0) as u64;
    }

    let mut lat = all.latencies_us;
    lat.sort_unstable();
    let ms = |us: u64| us as f64 / 1000.0;
    let mean_ms = if lat.is_empty() {
        0.0
    } else {
        lat.iter().sum::<u64>() as f64 / lat.len() as f64 / 1000.0
    };
    let secs = duration.as_secs_f64();
    Ok(ScenarioResult {
        backend: spec.backend.clone(),
        scenario: spec.scenario.id().into(),
        label: spec.scenario.label(spec.concurrency),
        clients,
        requests: all.measured,
        warmup_requests: all.warmup,
        duration_s: secs,
        requests_per_s: if secs > 0.0 {
            all.measured as f64 / secs
        } else {
            0.0
        },
        ok: all.ok,
        commits,
        commits_per_s: if total_secs > 0.0 {
            commits as f64 / total_secs
        } else {
            0.0
        },
        non_200: all.statuses,
        transport_errors: all.transport_errors,
        sample_failure: all.sample_failure,
        capped: control.capped.load(Ordering::Relaxed),
        server_cpu_s: cpu.server,
        client_cpu_s: cpu.client,
        postgres_cpu_s: cpu.postgres,
        other_cpu_s: cpu.other,
        server_cpu_us_per_request: cpu
            .server
            .filter(|_| all.ok > 0)
            .map(|s| s * 1e6 / all.ok as f64),
        p50_ms: ms(percentile(&lat, 50.0)),
        p90_ms: ms(percentile(&lat, 90.0)),
        p99_ms: ms(percentile(&lat, 99.0)),
        max_ms: ms(lat.last().copied().unwrap_or(0)),
        mean_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(first_on: bool) -> PatchPlan {
        PatchPlan {
            client: 3,
            scenario: "single",
            flag: Flag {
                key: "f".into(),
                variation_id: "v0".into(),
            },
            first_on,
        }
    }

    #[test]
    fn starts_with_the_toggle_that_changes_the_flag() {
        let mut prev = None;
        let first: Value = serde_json::from_str(&patch_body(&plan(false), 0, &mut prev)).unwrap();
        assert_eq!(first["instructions"][0]["kind"], "turnFlagOff");
        let second: Value = serde_json::from_str(&patch_body(&plan(false), 1, &mut prev)).unwrap();
        assert_eq!(second["instructions"][0]["kind"], "turnFlagOn");
    }

    #[test]
    fn every_tenth_patch_moves_a_target() {
        let plan = plan(true);
        let mut prev = None;
        let bodies: Vec<Value> = (0..20)
            .map(|i| serde_json::from_str(&patch_body(&plan, i, &mut prev)).unwrap())
            .collect();
        assert_eq!(bodies[0]["instructions"][0]["kind"], "turnFlagOn");
        assert_eq!(bodies[1]["instructions"][0]["kind"], "turnFlagOff");
        assert_eq!(bodies[0]["environmentKey"], "production");
        assert!(bodies[0]["comment"].as_str().unwrap().contains("request 0"));
        let nine = bodies[9]["instructions"].as_array().unwrap();
        assert_eq!(nine.len(), 2);
        assert_eq!(nine[1]["kind"], "addTargets");
        assert_eq!(nine[1]["values"][0], "ctx-single-3-9");
        let nineteen = bodies[19]["instructions"].as_array().unwrap();
        assert_eq!(nineteen[1]["values"][0], "ctx-single-3-19");
        assert_eq!(nineteen[2]["kind"], "removeTargets");
        assert_eq!(nineteen[2]["values"][0], "ctx-single-3-9");
        assert_eq!(bodies[10]["instructions"].as_array().unwrap().len(), 1);
    }
}
