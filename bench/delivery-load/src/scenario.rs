//! Setup over the REST API, the two change workloads, and what the sink saw.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use flagstaff_bench_harness::cpu::{CpuSample, ThreadSample};
use flagstaff_bench_harness::report::percentile;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::sink::{Received, Sink};

pub const PROJECT: &str = "bench";
pub const ENVIRONMENT: &str = "production";
const SEMANTIC_PATCH: &str = "application/json; domain-model=launchdarkly.semanticpatch";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Every change of a run carries this comment prefix, which the delivered audit entry repeats:
/// it tells the run's deliveries from those of the setup (creating webhooks, the project and
/// the flags is delivered too).
const COMMENT_PREFIX: &str = "delivery-load";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Many webhooks, changes as fast as a few clients can make them: delivery throughput.
    Throughput,
    /// One webhook, a steady change rate: change → delivery latency.
    Latency,
}

impl Scenario {
    pub const ALL: [Scenario; 2] = [Scenario::Throughput, Scenario::Latency];

    pub fn id(self) -> &'static str {
        match self {
            Scenario::Throughput => "throughput",
            Scenario::Latency => "latency",
        }
    }

    pub fn parse(s: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|x| x.id() == s)
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    pub backend: &'static str,
    pub scenario: Scenario,
    pub server_pid: Option<u32>,
    pub webhooks: u32,
    /// Concurrent change clients (throughput; latency always uses one).
    pub clients: usize,
    /// Changes to make (throughput).
    pub changes: u64,
    /// Changes per second (latency).
    pub rate: f64,
    /// Seconds at `rate` (latency).
    pub seconds: f64,
    pub sign: bool,
    /// How long to wait for the deliveries after the last change.
    pub drain_timeout: Duration,
}

impl Spec {
    pub fn label(&self) -> String {
        match self.scenario {
            Scenario::Throughput => format!(
                "{} webhooks, {} clients, {} changes",
                self.webhooks, self.clients, self.changes
            ),
            Scenario::Latency => format!(
                "{} webhook(s), {} changes/s for {} s",
                self.webhooks, self.rate, self.seconds
            ),
        }
    }
}

/// An HTTP client for the API; one keep-alive connection per simulated client.
fn api_client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .tcp_nodelay(true)
        .build()?)
}

async fn expect(response: reqwest::Response, ok: &[StatusCode], what: &str) -> Result<Value> {
    let got = response.status();
    let text = response.text().await?;
    if !ok.contains(&got) {
        bail!("{what}: expected HTTP {ok:?}, got {got}: {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("{what}: response is not JSON"))
}

/// A created webhook.
pub struct Hook {
    pub index: u32,
    pub secret: Option<String>,
}

/// Creates the webhooks (first, so every later setup change is delivered too), the project
/// and flags `flag-0` … `flag-{flags-1}`.
async fn setup(
    base: &str,
    token: &str,
    sink: &Sink,
    webhooks: u32,
    flags: usize,
    sign: bool,
) -> Result<Vec<Hook>> {
    let http = api_client()?;
    let mut hooks = Vec::new();
    for index in 0..webhooks {
        let secret = sign.then(|| format!("delivery-load-{}", uuid::Uuid::new_v4()));
        let mut body = json!({
            "name": format!("delivery-load sink {index}"),
            "url": sink.url(index),
            "sign": sign,
            "on": true,
        });
        if let Some(secret) = &secret {
            body["secret"] = json!(secret);
        }
        let response = http
            .post(format!("{base}/api/v2/webhooks"))
            .header("Authorization", token)
            .json(&body)
            .send()
            .await?;
        let created = expect(
            response,
            &[StatusCode::OK, StatusCode::CREATED],
            "create webhook",
        )
        .await?;
        if created["_id"].as_str().is_none() {
            bail!("the new webhook has no _id: {created}");
        }
        hooks.push(Hook { index, secret });
    }
    let response = http
        .post(format!("{base}/api/v2/projects"))
        .header("Authorization", token)
        .json(&json!({"key": PROJECT, "name": "Delivery bench"}))
        .send()
        .await?;
    expect(response, &[StatusCode::CREATED], "create project").await?;
    for i in 0..flags {
        let key = format!("flag-{i}");
        let response = http
            .post(format!("{base}/api/v2/flags/{PROJECT}"))
            .header("Authorization", token)
            .json(&json!({"key": key, "name": key}))
            .send()
            .await?;
        expect(response, &[StatusCode::CREATED], "create flag").await?;
    }
    Ok(hooks)
}

/// The flag's `_version` (one more per committed change) and whether it is on in
/// [`ENVIRONMENT`].
async fn flag_state(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    key: &str,
) -> Result<(i64, bool)> {
    let response = http
        .get(format!("{base}/api/v2/flags/{PROJECT}/{key}"))
        .header("Authorization", token)
        .send()
        .await?;
    let flag = expect(response, &[StatusCode::OK], "get flag").await?;
    let version = flag["_version"]
        .as_i64()
        .with_context(|| format!("flag {key} has no _version"))?;
    let on = flag["environments"][ENVIRONMENT]["on"]
        .as_bool()
        .with_context(|| format!("flag {key} has no environments.{ENVIRONMENT}.on"))?;
    Ok((version, on))
}

/// The semantic patch of a client's change `i`: turn the flag on or off, alternating from the
/// state that changes it, so every PATCH commits a change.
fn change_body(scenario: Scenario, client: usize, i: u64, first_on: bool) -> String {
    let on = first_on == i.is_multiple_of(2);
    json!({
        "environmentKey": ENVIRONMENT,
        "comment": format!("{COMMENT_PREFIX} {} client {client} change {i}", scenario.id()),
        "instructions": [{"kind": if on { "turnFlagOn" } else { "turnFlagOff" }}],
    })
    .to_string()
}

/// When one change was sent and answered, by this process's clocks.
#[derive(Debug, Clone, Copy)]
struct Timing {
    sent: Instant,
    answered: Instant,
    /// Wall clock at the answer, µs since the Unix epoch.
    answered_unix_us: u64,
}

/// What the change clients saw.
#[derive(Default)]
struct Writes {
    ok: u64,
    non_200: BTreeMap<u16, u64>,
    transport_errors: u64,
    sample_failure: Option<String>,
    /// Per change, by (client, change number): the key its comment carries.
    timings: HashMap<(usize, u64), Timing>,
    first_start: Option<Instant>,
    last_end: Option<Instant>,
}

impl Writes {
    fn merge(&mut self, other: Writes) {
        self.ok += other.ok;
        for (status, n) in other.non_200 {
            *self.non_200.entry(status).or_default() += n;
        }
        self.transport_errors += other.transport_errors;
        if self.sample_failure.is_none() {
            self.sample_failure = other.sample_failure;
        }
        self.timings.extend(other.timings);
        self.first_start = match (self.first_start, other.first_start) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_end = match (self.last_end, other.last_end) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    async fn patch(
        &mut self,
        http: &reqwest::Client,
        url: &str,
        token: &str,
        key: (usize, u64),
        body: String,
    ) {
        let started = Instant::now();
        self.first_start.get_or_insert(started);
        let result = http
            .patch(url)
            .header("Authorization", token)
            .header("Content-Type", SEMANTIC_PATCH)
            .body(body)
            .send()
            .await;
        let outcome = match result {
            Ok(response) => {
                let status = response.status();
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
        let ended = Instant::now();
        self.last_end = Some(ended);
        self.timings.insert(
            key,
            Timing {
                sent: started,
                answered: ended,
                answered_unix_us: unix_us(),
            },
        );
        match outcome {
            Ok(()) => self.ok += 1,
            Err((status, text)) => {
                match status {
                    Some(s) => *self.non_200.entry(s).or_default() += 1,
                    None => self.transport_errors += 1,
                }
                self.sample_failure.get_or_insert(text);
            }
        }
    }
}

/// One client toggling its own flag `count` times, back to back.
async fn back_to_back(
    url: String,
    token: String,
    client: usize,
    count: u64,
    first_on: bool,
) -> Result<Writes> {
    let http = api_client()?;
    let mut writes = Writes::default();
    for i in 0..count {
        let body = change_body(Scenario::Throughput, client, i, first_on);
        writes.patch(&http, &url, &token, (client, i), body).await;
    }
    Ok(writes)
}

/// One client toggling one flag on a fixed schedule (`tokio::time::interval`, whose default
/// missed-tick behaviour catches up after a slow request, so the average rate holds).
async fn paced(
    url: String,
    token: String,
    rate: f64,
    count: u64,
    first_on: bool,
) -> Result<Writes> {
    let http = api_client()?;
    let mut writes = Writes::default();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    for i in 0..count {
        ticks.tick().await;
        let body = change_body(Scenario::Latency, 0, i, first_on);
        writes.patch(&http, &url, &token, (0, i), body).await;
    }
    Ok(writes)
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// `b - a` in milliseconds, negative when `b` is earlier.
fn signed_ms(a: Instant, b: Instant) -> f64 {
    if b >= a {
        b.duration_since(a).as_secs_f64() * 1000.0
    } else {
        -(a.duration_since(b).as_secs_f64() * 1000.0)
    }
}

/// Percentiles of a set of samples, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Millis {
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Millis {
    fn of(mut samples: Vec<f64>) -> Millis {
        if samples.is_empty() {
            return Millis::default();
        }
        samples.sort_by(f64::total_cmp);
        Millis {
            min: samples[0],
            p50: percentile(&samples, 50.0),
            p90: percentile(&samples, 90.0),
            p99: percentile(&samples, 99.0),
            max: samples[samples.len() - 1],
            mean: samples.iter().sum::<f64>() / samples.len() as f64,
        }
    }
}

/// What arrived at the sink for the changes of one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Deliveries {
    /// Changes committed × webhooks.
    pub expected: u64,
    /// Requests the sink got for this run's changes (duplicates included).
    pub requests: u64,
    /// Distinct delivery ids among them.
    pub distinct: u64,
    /// `requests - distinct`: the same delivery sent again (at-least-once).
    pub duplicates: u64,
    pub missing: u64,
    /// Requests for other changes (the setup's) that arrived during the run.
    pub other_requests: u64,
    /// Bodies that were not an audit entry with `_id` and `date`.
    pub unparseable: u64,
    /// Distinct audit entries delivered.
    pub audit_entries: u64,
    /// Audit entries that did not reach every webhook.
    pub incomplete_entries: u64,
    pub signatures_valid: u64,
    pub signatures_invalid: u64,
    pub signatures_missing: u64,
    /// First to last delivery (first arrival of each distinct delivery).
    pub first_to_last_s: f64,
    pub per_s_first_to_last: f64,
    /// Between the 10th and the 90th percentile of arrival times.
    pub per_s_middle_80: f64,
    /// Arrived before the last change was answered, and the rate over that time (from the
    /// first change).
    pub during_changes: u64,
    pub per_s_during_changes: f64,
    /// Arrived after the last change was answered, and the rate from then to the last one.
    pub after_changes: u64,
    pub per_s_after_changes: f64,
    /// From the last change's answer to the last delivery.
    pub drain_s: f64,
    /// Change → delivery as this process sees it: sink receive time − when the PATCH was
    /// answered (the change committed before that, so this is a lower bound and can be
    /// slightly negative) …
    pub latency_from_answer_ms: Millis,
    /// … and − when the PATCH was sent (an upper bound).
    pub latency_from_sent_ms: Millis,
    /// Sink receive time (wall clock) − the audit entry's `date` (ms resolution, so up to
    /// 1 ms too high). Only meaningful while the server's clock keeps to the wall clock:
    /// see `server_clock_ahead_ms`.
    pub latency_ms: Millis,
    /// Per delivered change: its audit entry's `date` − the wall clock when its PATCH was
    /// answered. The change commits before the answer, so anything above ~1 ms means the
    /// server's timestamps ran ahead of the wall clock.
    pub server_clock_ahead_ms: Millis,
    /// Distinct deliveries whose comment matched no change this run made.
    pub unmatched: u64,
}

/// The numbers of one backend × scenario run.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub backend: String,
    pub scenario: String,
    /// 1-based number of this run of the scenario (see `--runs`).
    pub run: usize,
    pub label: String,
    pub webhooks: u32,
    pub clients: usize,
    pub signed: bool,
    /// PATCHes sent, answered 200, and changes committed (the flags' `_version` increases).
    pub changes_sent: u64,
    pub changes_ok: u64,
    pub commits: u64,
    pub non_200: BTreeMap<u16, u64>,
    pub transport_errors: u64,
    pub sample_failure: Option<String>,
    /// First PATCH sent to last PATCH answered.
    pub changes_s: f64,
    pub changes_per_s: f64,
    /// Latency scenario: the rate asked for.
    pub target_changes_per_s: Option<f64>,
    /// PATCH latency as the client saw it.
    pub patch_ms: Millis,
    pub deliveries: Deliveries,
    /// True when not every expected delivery arrived within the drain timeout.
    pub timed_out: bool,
    /// CPU seconds from the first change until the last delivery arrived.
    pub server_cpu_s: Option<f64>,
    pub client_cpu_s: Option<f64>,
    pub postgres_cpu_s: Option<f64>,
    pub other_cpu_s: Option<f64>,
    pub server_cpu_us_per_delivery: Option<f64>,
    /// The server's CPU seconds by thread name over the same time.
    pub server_threads: Vec<(String, f64)>,
    /// `deliveries` rows by state and `delivery_attempts` rows in the database after the run
    /// (the setup's deliveries included).
    pub db: Option<DbCounts>,
    pub server_exit: Option<String>,
}

impl ScenarioResult {
    pub fn failures(&self) -> u64 {
        self.non_200.values().sum::<u64>() + self.transport_errors
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DbCounts {
    pub delivered: i64,
    pub pending: i64,
    pub failed: i64,
    pub attempts: i64,
}

/// The queries behind [`DbCounts`], in field order.
pub const DB_COUNT_QUERIES: [&str; 4] = [
    "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
    "SELECT count(*) FROM deliveries WHERE state = 'pending'",
    "SELECT count(*) FROM deliveries WHERE state = 'failed'",
    "SELECT count(*) FROM delivery_attempts",
];

/// Runs one scenario against a fresh server whose webhooks will point at `sink`.
pub async fn run(base: &str, token: &str, sink: &Sink, spec: &Spec) -> Result<ScenarioResult> {
    let clients = match spec.scenario {
        Scenario::Throughput => spec.clients.max(1),
        Scenario::Latency => 1,
    };
    let hooks = setup(base, token, sink, spec.webhooks, clients, spec.sign).await?;
    // Let the setup's own deliveries arrive, then start counting afresh.
    sink.wait_quiet(Duration::from_secs(1), Duration::from_secs(30))
        .await;
    let setup_requests = sink.take().len();
    eprintln!(
        "  setup: {} webhooks, project {PROJECT}, {clients} flags; {setup_requests} setup deliveries received",
        hooks.len()
    );

    let http = api_client()?;
    let mut before = Vec::new();
    for c in 0..clients {
        before.push(flag_state(&http, base, token, &format!("flag-{c}")).await?);
    }
    let cpu_before = CpuSample::take(spec.server_pid);
    let threads_before = spec.server_pid.map(ThreadSample::take);

    let (sent, target_rate, writes) = match spec.scenario {
        Scenario::Throughput => {
            let mut tasks = Vec::new();
            let mut sent = 0;
            for (c, &(_, on)) in before.iter().enumerate() {
                let share = spec.changes / clients as u64
                    + u64::from((c as u64) < spec.changes % clients as u64);
                sent += share;
                tasks.push(tokio::spawn(back_to_back(
                    format!("{base}/api/v2/flags/{PROJECT}/flag-{c}"),
                    token.to_string(),
                    c,
                    share,
                    !on,
                )));
            }
            let mut writes = Writes::default();
            for task in tasks {
                writes.merge(task.await.context("a change client panicked")??);
            }
            (sent, None, writes)
        }
        Scenario::Latency => {
            let count = (spec.rate * spec.seconds).round().max(1.0) as u64;
            let writes = paced(
                format!("{base}/api/v2/flags/{PROJECT}/flag-0"),
                token.to_string(),
                spec.rate,
                count,
                !before[0].1,
            )
            .await?;
            (count, Some(spec.rate), writes)
        }
    };

    let mut commits = 0;
    for (c, (version, _)) in before.iter().enumerate() {
        let (after, _) = flag_state(&http, base, token, &format!("flag-{c}")).await?;
        commits += (after - version).max(0) as u64;
    }
    let expected = commits * u64::from(spec.webhooks);
    eprintln!(
        "  {} changes answered 200 ({} committed), waiting for {expected} deliveries…",
        writes.ok, commits
    );
    let deadline = Instant::now() + spec.drain_timeout;
    let mut timed_out = false;
    while (sink.distinct() as u64) < expected {
        if Instant::now() >= deadline {
            timed_out = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cpu = CpuSample::take(spec.server_pid).since(&cpu_before);
    let server_threads = match (spec.server_pid, threads_before) {
        (Some(pid), Some(before)) => ThreadSample::take(pid).since(&before),
        _ => Vec::new(),
    };
    // Catch stragglers (duplicates sent in the same wave) before counting.
    sink.wait_quiet(Duration::from_millis(250), Duration::from_secs(5))
        .await;
    let received = sink.take();

    let secrets: HashMap<u32, &[u8]> = hooks
        .iter()
        .filter_map(|h| h.secret.as_deref().map(|s| (h.index, s.as_bytes())))
        .collect();
    let deliveries = analyze(&received, spec, expected, &writes, &secrets);

    let changes_s = match (writes.first_start, writes.last_end) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
        _ => 0.0,
    };
    let delivered = deliveries.distinct;
    Ok(ScenarioResult {
        backend: spec.backend.to_string(),
        scenario: spec.scenario.id().to_string(),
        run: 1,
        label: spec.label(),
        webhooks: spec.webhooks,
        clients,
        signed: spec.sign,
        changes_sent: sent,
        changes_ok: writes.ok,
        commits,
        non_200: writes.non_200.clone(),
        transport_errors: writes.transport_errors,
        sample_failure: writes.sample_failure.clone(),
        changes_s,
        changes_per_s: if changes_s > 0.0 {
            commits as f64 / changes_s
        } else {
            0.0
        },
        target_changes_per_s: target_rate,
        patch_ms: Millis::of(
            writes
                .timings
                .values()
                .map(|t| signed_ms(t.sent, t.answered))
                .collect(),
        ),
        deliveries,
        timed_out,
        server_cpu_s: cpu.server,
        client_cpu_s: cpu.client,
        postgres_cpu_s: cpu.postgres,
        other_cpu_s: cpu.other,
        server_cpu_us_per_delivery: cpu
            .server
            .filter(|_| delivered > 0)
            .map(|s| s * 1e6 / delivered as f64),
        server_threads,
        db: None,
        server_exit: None,
    })
}

/// The fields of a delivered audit entry the bench reads.
#[derive(Deserialize)]
struct EntryHead<'a> {
    #[serde(rename = "_id", borrow)]
    id: std::borrow::Cow<'a, str>,
    /// Unix ms at commit.
    date: i64,
    #[serde(default, borrow)]
    comment: Option<std::borrow::Cow<'a, str>>,
}

/// Counts, rates and latencies of the deliveries of one run's changes.
fn analyze(
    received: &[Received],
    spec: &Spec,
    expected: u64,
    writes: &Writes,
    secrets: &HashMap<u32, &[u8]>,
) -> Deliveries {
    let prefix = format!("{COMMENT_PREFIX} {} ", spec.scenario.id());
    let mut out = Deliveries {
        expected,
        ..Deliveries::default()
    };
    // First arrival of each distinct delivery.
    let mut arrivals: Vec<Instant> = Vec::new();
    let mut from_date = Vec::new();
    let mut from_answer = Vec::new();
    let mut from_sent = Vec::new();
    let mut clock_ahead: HashMap<String, f64> = HashMap::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut per_entry: HashMap<String, HashSet<u32>> = HashMap::new();
    for r in received {
        let Ok(entry) = serde_json::from_slice::<EntryHead>(&r.body) else {
            out.unparseable += 1;
            continue;
        };
        if !entry
            .comment
            .as_deref()
            .is_some_and(|c| c.starts_with(&prefix))
        {
            out.other_requests += 1;
            continue;
        }
        out.requests += 1;
        match (secrets.get(&r.hook), r.signature.as_deref()) {
            (Some(secret), Some(signature)) => {
                if signature_valid(secret, &r.body, signature) {
                    out.signatures_valid += 1;
                } else {
                    out.signatures_invalid += 1;
                }
            }
            (Some(_), None) => out.signatures_missing += 1,
            (None, _) => {}
        }
        let Some(id) = r.delivery_id.as_deref() else {
            continue;
        };
        if !seen.insert(id) {
            continue;
        }
        arrivals.push(r.at);
        from_date.push(r.unix_us as f64 / 1000.0 - entry.date as f64);
        let timing = entry
            .comment
            .as_deref()
            .and_then(|c| change_key(&c[prefix.len()..]))
            .and_then(|key| writes.timings.get(&key));
        match timing {
            Some(t) => {
                from_answer.push(signed_ms(t.answered, r.at));
                from_sent.push(signed_ms(t.sent, r.at));
                clock_ahead
                    .entry(entry.id.to_string())
                    .or_insert(entry.date as f64 - t.answered_unix_us as f64 / 1000.0);
            }
            None => out.unmatched += 1,
        }
        per_entry
            .entry(entry.id.into_owned())
            .or_default()
            .insert(r.hook);
    }
    out.distinct = arrivals.len() as u64;
    out.duplicates = out.requests - out.distinct;
    out.missing = expected.saturating_sub(out.distinct);
    out.audit_entries = per_entry.len() as u64;
    out.incomplete_entries = per_entry
        .values()
        .filter(|hooks| hooks.len() < spec.webhooks as usize)
        .count() as u64;
    out.latency_ms = Millis::of(from_date);
    out.latency_from_answer_ms = Millis::of(from_answer);
    out.latency_from_sent_ms = Millis::of(from_sent);
    out.server_clock_ahead_ms = Millis::of(clock_ahead.into_values().collect());
    arrivals.sort_unstable();
    let rate = |n: usize, from: Instant, to: Instant| {
        let secs = to.saturating_duration_since(from).as_secs_f64();
        if secs > 0.0 { n as f64 / secs } else { 0.0 }
    };
    if let (Some(&t0), Some(&t1)) = (arrivals.first(), arrivals.last()) {
        let n = arrivals.len();
        out.first_to_last_s = t1.duration_since(t0).as_secs_f64();
        out.per_s_first_to_last = rate(n - 1, t0, t1);
        let lo = n / 10;
        let hi = (n * 9).div_ceil(10).saturating_sub(1);
        if hi > lo {
            out.per_s_middle_80 = rate(hi - lo, arrivals[lo], arrivals[hi]);
        }
        if let (Some(start), Some(end)) = (writes.first_start, writes.last_end) {
            let during = arrivals.partition_point(|&t| t <= end);
            out.during_changes = during as u64;
            out.per_s_during_changes = rate(during, start, end.min(t1));
            out.after_changes = (n - during) as u64;
            out.per_s_after_changes = rate(n - during, end, t1);
            out.drain_s = t1.saturating_duration_since(end).as_secs_f64();
        }
    }
    out
}

/// `(client, change)` from the rest of a comment, `client C change I`.
fn change_key(rest: &str) -> Option<(usize, u64)> {
    let mut words = rest.split(' ');
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("client"), Some(c), Some("change"), Some(i)) => {
            Some((c.parse().ok()?, i.parse().ok()?))
        }
        _ => None,
    }
}

/// Whether `signature` is the hex HMAC-SHA256 of `body` under `secret`.
fn signature_valid(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Ok(expected) = hex::decode(signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toggles_from_the_state_that_changes_the_flag() {
        let b: Value = serde_json::from_str(&change_body(Scenario::Latency, 0, 0, true)).unwrap();
        assert_eq!(b["instructions"][0]["kind"], "turnFlagOn");
        assert_eq!(b["environmentKey"], "production");
        assert_eq!(b["comment"], "delivery-load latency client 0 change 0");
        let b: Value = serde_json::from_str(&change_body(Scenario::Latency, 0, 1, true)).unwrap();
        assert_eq!(b["instructions"][0]["kind"], "turnFlagOff");
        let b: Value =
            serde_json::from_str(&change_body(Scenario::Throughput, 2, 0, false)).unwrap();
        assert_eq!(b["instructions"][0]["kind"], "turnFlagOff");
    }

    #[test]
    fn checks_signatures() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"k").unwrap();
        mac.update(b"body");
        let good = hex::encode(mac.finalize().into_bytes());
        assert!(signature_valid(b"k", b"body", &good));
        assert!(!signature_valid(b"k", b"other", &good));
        assert!(!signature_valid(b"k", b"body", "zz"));
    }

    fn received(at: Instant, hook: u32, id: &str, unix_ms: u64, body: Value) -> Received {
        Received {
            unix_us: unix_ms * 1000 + 500,
            at,
            hook,
            delivery_id: Some(id.into()),
            signature: None,
            body: serde_json::to_vec(&body).unwrap().into(),
        }
    }

    #[test]
    fn counts_rates_and_latencies() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let entry = |id: &str, date: i64, tag: &str| json!({"_id": id, "date": date, "comment": format!("delivery-load {tag} client 0 change 0"), "kind": "flag"});
        let received = vec![
            received(ms(0), 0, "d1", 1_000, entry("a1", 998, "throughput")),
            received(ms(100), 1, "d2", 1_100, entry("a1", 998, "throughput")),
            received(ms(150), 1, "d2", 1_150, entry("a1", 998, "throughput")),
            received(ms(200), 0, "d3", 1_200, entry("a2", 1_190, "throughput")),
            received(
                ms(250),
                0,
                "x",
                1_250,
                json!({"_id": "s", "date": 1, "kind": "webhook"}),
            ),
            received(ms(300), 0, "y", 1_300, json!({"not": "an entry"})),
        ];
        let spec = Spec {
            backend: "sqlite",
            scenario: Scenario::Throughput,
            server_pid: None,
            webhooks: 2,
            clients: 1,
            changes: 2,
            rate: 0.0,
            seconds: 0.0,
            sign: false,
            drain_timeout: Duration::from_secs(1),
        };
        let mut writes = Writes {
            first_start: Some(t0),
            last_end: Some(ms(50)),
            ..Writes::default()
        };
        writes.timings.insert(
            (0, 0),
            Timing {
                sent: t0,
                answered: ms(1),
                answered_unix_us: 999_000,
            },
        );
        let d = analyze(&received, &spec, 4, &writes, &HashMap::new());
        assert_eq!(d.requests, 4);
        assert_eq!(d.distinct, 3);
        assert_eq!(d.duplicates, 1);
        assert_eq!(d.missing, 1);
        assert_eq!(d.other_requests, 1);
        assert_eq!(d.unparseable, 1);
        assert_eq!(d.audit_entries, 2);
        assert_eq!(d.incomplete_entries, 1);
        assert!((d.first_to_last_s - 0.2).abs() < 1e-9);
        assert!((d.per_s_first_to_last - 10.0).abs() < 1e-6);
        assert_eq!(d.during_changes, 1);
        assert_eq!(d.after_changes, 2);
        assert!((d.drain_s - 0.15).abs() < 1e-9);
        // Latencies 2.5, 102.5, 10.5 ms.
        assert!((d.latency_ms.p50 - 10.5).abs() < 1e-9);
        assert!((d.latency_ms.max - 102.5).abs() < 1e-9);
        assert_eq!(d.unmatched, 0);
        assert!((d.latency_from_answer_ms.min + 1.0).abs() < 1e-9);
        assert!((d.latency_from_answer_ms.max - 199.0).abs() < 1e-9);
        assert!((d.latency_from_sent_ms.max - 200.0).abs() < 1e-9);
        assert!((d.server_clock_ahead_ms.min + 1.0).abs() < 1e-9);
        assert!((d.server_clock_ahead_ms.max - 191.0).abs() < 1e-9);
        assert_eq!(change_key("client 3 change 41"), Some((3, 41)));
        assert_eq!(change_key("client x change 41"), None);
    }
}
