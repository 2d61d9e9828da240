//! `flagstaff-oauth-load`: Flagstaff's OAuth authorization server under load, on a real
//! `flagstaff serve` (release build, SQLite in a temp directory) over loopback HTTP.
//!
//! 1. sets the owner's password with `flagstaff admin set-password`, registers a confidential
//!    client, signs in through the page and consents once per authorization code needed;
//! 2. **code exchange**: `grant_type=authorization_code` (client_secret_basic), one at a time
//!    over `--codes` fresh codes;
//! 3. **refresh**: `grant_type=refresh_token` chains (each request rotates the refresh token,
//!    so a chain is strictly sequential), 1 chain and `--chains` concurrent chains, timed;
//! 4. **Bearer vs API token**: `GET /api/v2/projects/bench` alternately with an API token and
//!    an OAuth access token (same run, same connection pool, interleaved so drift hits both),
//!    reporting latency percentiles and the difference of the medians.
//!
//! Any unexpected status fails the run. Results go to stdout (markdown) and to
//! `bench/results/oauth-load-<date>.json`.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;
use flagstaff_bench_harness::Server;
use flagstaff_bench_harness::report::{civil_date, percentile};
use serde::Serialize;
use serde_json::{Value, json};

const OWNER: &str = "owner@flagstaff.local";
const PASSWORD: &str = "bench password 0123456789";
const REDIRECT: &str = "http://127.0.0.1:1/callback";

/// OAuth token endpoint throughput and Bearer authentication latency.
#[derive(Parser, Debug)]
#[command(name = "flagstaff-oauth-load", version, about)]
struct Args {
    /// The flagstaff binary to benchmark (build it with --release).
    #[arg(long, default_value = "target/release/flagstaff")]
    flagstaff_bin: PathBuf,
    /// Measured seconds per refresh scenario, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    #[arg(long, default_value_t = 2.0)]
    warmup_seconds: f64,
    /// Concurrent refresh chains in the multi-client scenario.
    #[arg(long, default_value_t = 8)]
    chains: usize,
    /// Authorization codes to exchange (one consent each).
    #[arg(long, default_value_t = 200)]
    codes: usize,
    /// REST calls per token kind in the latency comparison (after 200 warm-up pairs).
    #[arg(long, default_value_t = 5_000)]
    calls: usize,
    /// JSON results file. Default: bench/results/oauth-load-<YYYY-MM-DD>.json
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Latency {
    n: usize,
    p50_us: u64,
    p90_us: u64,
    p99_us: u64,
    mean_us: f64,
}

fn latency(mut samples: Vec<u64>) -> Latency {
    samples.sort_unstable();
    let n = samples.len();
    Latency {
        n,
        p50_us: percentile(&samples, 50.0),
        p90_us: percentile(&samples, 90.0),
        p99_us: percentile(&samples, 99.0),
        mean_us: samples.iter().sum::<u64>() as f64 / n.max(1) as f64,
    }
}

#[derive(Debug, Serialize)]
struct Throughput {
    scenario: String,
    clients: usize,
    requests: usize,
    req_per_s: f64,
    latency: Latency,
}

#[derive(Debug, Serialize)]
struct Report {
    date: String,
    backend: &'static str,
    code_exchange: Throughput,
    refresh: Vec<Throughput>,
    rest_api_token: Latency,
    rest_bearer: Latency,
    bearer_minus_api_token_p50_us: i64,
    bearer_over_api_token_p50: f64,
}

/// A browser session: the session cookie, and what the consent page needs.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: HashMap<String, String>,
}

impl Browser {
    async fn send(
        &mut self,
        req: reqwest::RequestBuilder,
    ) -> Result<(u16, Option<String>, String)> {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let response = req.header("Cookie", cookie.join("; ")).send().await?;
        for v in response.headers().get_all("set-cookie") {
            let text = v.to_str()?;
            let pair = text.split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                self.cookies.insert(k.into(), v.into());
            }
        }
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok((status, location, response.text().await?))
    }

    async fn sign_in(&mut self) -> Result<()> {
        let req = self.http.get(format!("{}/trust/signin", self.base));
        let (_, _, html) = self.send(req).await?;
        let csrf = hidden(&html, "csrf")?;
        let req = self
            .http
            .post(format!("{}/trust/signin", self.base))
            .form(&[
                ("email", OWNER),
                ("password", PASSWORD),
                ("csrf", &csrf),
                ("next", ""),
            ]);
        let (status, _, html) = self.send(req).await?;
        if status != 303 {
            bail!("sign-in answered {status}: {html}");
        }
        Ok(())
    }

    /// Consents once; returns the authorization code.
    async fn code(&mut self, client_id: &str) -> Result<String> {
        let query = serde_urlencoded::to_string([
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("scope", "writer"),
        ])?;
        let req = self
            .http
            .get(format!("{}/trust/oauth/authorize?{query}", self.base));
        let (status, _, html) = self.send(req).await?;
        if status != 200 {
            bail!("consent page answered {status}: {html}");
        }
        let form = [
            ("request", hidden(&html, "request")?),
            ("csrf", hidden(&html, "csrf")?),
            ("decision", "allow".to_string()),
        ];
        let req = self
            .http
            .post(format!("{}/trust/oauth/authorize", self.base))
            .form(&form);
        let (status, location, html) = self.send(req).await?;
        let location = location.with_context(|| format!("consent answered {status}: {html}"))?;
        let query = location.split_once('?').map(|(_, q)| q).unwrap_or("");
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)?;
        pairs
            .into_iter()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v)
            .with_context(|| format!("no code in {location}"))
    }
}

fn hidden(html: &str, name: &str) -> Result<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .with_context(|| format!("no {name} in {html}"))?
        + marker.len();
    let end = start + html[start..].find('"').context("unterminated value")?;
    Ok(html[start..end]
        .replace("&amp;", "&")
        .replace("&quot;", "\""))
}

/// One token-endpoint request; returns the JSON of a 200.
async fn token_request(
    http: &reqwest::Client,
    base: &str,
    client: &(String, String),
    form: &[(&str, &str)],
) -> Result<Value> {
    let response = http
        .post(format!("{base}/trust/oauth/token"))
        .basic_auth(&client.0, Some(&client.1))
        .form(form)
        .send()
        .await?;
    let status = response.status().as_u16();
    let body: Value = response.json().await?;
    if status != 200 {
        bail!("token endpoint answered {status}: {body}");
    }
    Ok(body)
}

fn field(v: &Value, name: &str) -> Result<String> {
    v[name]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("no {name} in {v}"))
}

/// Runs `chains` refresh chains for warm-up + measured seconds.
async fn refresh_scenario(
    base: &str,
    client: &(String, String),
    tokens: &mut [String],
    warmup: Duration,
    measured: Duration,
) -> Result<Throughput> {
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + measured;
    let mut tasks = Vec::new();
    for token in tokens.iter() {
        let base = base.to_string();
        let client = client.clone();
        let mut token = token.clone();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut samples = Vec::new();
            while Instant::now() < end {
                let t = Instant::now();
                let body = token_request(
                    &http,
                    &base,
                    &client,
                    &[("grant_type", "refresh_token"), ("refresh_token", &token)],
                )
                .await?;
                token = field(&body, "refresh_token")?;
                if t >= measure_from {
                    samples.push(t.elapsed().as_micros() as u64);
                }
            }
            Ok::<_, anyhow::Error>((samples, token))
        }));
    }
    let mut all = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let (samples, token) = task.await??;
        all.extend(samples);
        tokens[i] = token;
    }
    let requests = all.len();
    Ok(Throughput {
        scenario: "refresh_token".into(),
        clients: tokens.len(),
        requests,
        req_per_s: requests as f64 / measured.as_secs_f64(),
        latency: latency(all),
    })
}

async fn run(args: &Args) -> Result<Report> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let server = Server::start(&args.flagstaff_bin, dir.path().join("server.log"), |c| {
        c.env("FLAGSTAFF_RATE_LIMIT", u32::MAX.to_string())
            .env_remove("FLAGSTAFF_BASE_URL")
            .arg("--data-dir")
            .arg(&data);
    })
    .await?;
    let mut child = Command::new(&args.flagstaff_bin)
        .args(["admin", "set-password", "--email", OWNER, "--data-dir"])
        .arg(&data)
        .stdin(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(format!("{PASSWORD}\n").as_bytes())?;
    if !child.wait()?.success() {
        bail!("flagstaff admin set-password failed");
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let api = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{}{path}", server.base))
            .header("Authorization", &server.token)
    };
    let r = api(reqwest::Method::POST, "/api/v2/projects")
        .json(&json!({"key": "bench", "name": "Bench"}))
        .send()
        .await?;
    if r.status() != 201 {
        bail!("creating the project answered {}", r.status());
    }
    let client: Value = api(reqwest::Method::POST, "/api/v2/oauth/clients")
        .json(&json!({"name": "Bench app", "redirectUri": REDIRECT}))
        .send()
        .await?
        .json()
        .await?;
    let client = (
        field(&client, "_clientId")?,
        field(&client, "_clientSecret")?,
    );
    let mut browser = Browser {
        http: http.clone(),
        base: server.base.clone(),
        cookies: HashMap::new(),
    };
    browser.sign_in().await?;

    // Code exchange, one at a time over fresh codes.
    let mut codes = Vec::with_capacity(args.codes);
    for _ in 0..args.codes {
        codes.push(browser.code(&client.0).await?);
    }
    let mut samples = Vec::new();
    let mut refresh_tokens = Vec::new();
    let mut access_tokens = Vec::new();
    let started = Instant::now();
    for code in &codes {
        let t = Instant::now();
        let body = token_request(
            &http,
            &server.base,
            &client,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await?;
        samples.push(t.elapsed().as_micros() as u64);
        refresh_tokens.push(field(&body, "refresh_token")?);
        access_tokens.push(field(&body, "access_token")?);
    }
    let code_exchange = Throughput {
        scenario: "authorization_code".into(),
        clients: 1,
        requests: samples.len(),
        req_per_s: samples.len() as f64 / started.elapsed().as_secs_f64(),
        latency: latency(samples),
    };

    // Refresh chains: 1, then `chains` concurrent (each chain is one authorization).
    let warmup = Duration::from_secs_f64(args.warmup_seconds);
    let measured = Duration::from_secs_f64(args.seconds);
    let mut refresh = Vec::new();
    for n in [1, args.chains] {
        let mut chain: Vec<String> = refresh_tokens
            .drain(..n.min(refresh_tokens.len()))
            .collect();
        refresh.push(refresh_scenario(&server.base, &client, &mut chain, warmup, measured).await?);
    }

    // Bearer vs API token on the same REST call, interleaved.
    let bearer = format!(
        "Bearer {}",
        access_tokens.last().context("no access token")?
    );
    let path = format!("{}/api/v2/projects/bench", server.base);
    let (mut with_token, mut with_bearer) = (Vec::new(), Vec::new());
    for i in 0..args.calls + 200 {
        for (auth, out) in [
            (server.token.as_str(), &mut with_token),
            (bearer.as_str(), &mut with_bearer),
        ] {
            let t = Instant::now();
            let r = http.get(&path).header("Authorization", auth).send().await?;
            let status = r.status();
            r.bytes().await?;
            if status != 200 {
                bail!("GET /api/v2/projects/bench answered {status}");
            }
            if i >= 200 {
                out.push(t.elapsed().as_micros() as u64);
            }
        }
    }
    let rest_api_token = latency(with_token);
    let rest_bearer = latency(with_bearer);
    drop(server);
    Ok(Report {
        date: civil_date(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs()),
        backend: "sqlite",
        code_exchange,
        refresh,
        bearer_minus_api_token_p50_us: rest_bearer.p50_us as i64 - rest_api_token.p50_us as i64,
        bearer_over_api_token_p50: rest_bearer.p50_us as f64 / rest_api_token.p50_us.max(1) as f64,
        rest_api_token,
        rest_bearer,
    })
}

fn print(report: &Report) {
    println!(
        "## OAuth token endpoint ({}, {})\n",
        report.backend, report.date
    );
    println!("| grant | clients | requests | req/s | p50 µs | p90 µs | p99 µs |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for t in std::iter::once(&report.code_exchange).chain(&report.refresh) {
        println!(
            "| {} | {} | {} | {:.0} | {} | {} | {} |",
            t.scenario,
            t.clients,
            t.requests,
            t.req_per_s,
            t.latency.p50_us,
            t.latency.p90_us,
            t.latency.p99_us
        );
    }
    println!("\n## REST call `GET /api/v2/projects/bench`, interleaved\n");
    println!("| auth | calls | p50 µs | p90 µs | p99 µs | mean µs |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, l) in [
        ("API token", &report.rest_api_token),
        ("OAuth Bearer", &report.rest_bearer),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} | {:.0} |",
            l.n, l.p50_us, l.p90_us, l.p99_us, l.mean_us
        );
    }
    println!(
        "\nBearer − API token (p50): {} µs; ratio {:.3}",
        report.bearer_minus_api_token_p50_us, report.bearer_over_api_token_p50
    );
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(report) => {
            print(&report);
            let out = args.out.clone().unwrap_or_else(|| {
                PathBuf::from(format!("bench/results/oauth-load-{}.json", report.date))
            });
            match serde_json::to_string_pretty(&report)
                .map_err(anyhow::Error::from)
                .and_then(|json| std::fs::write(&out, json + "\n").map_err(Into::into))
            {
                Ok(()) => {
                    eprintln!("wrote {}", out.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: cannot write {}: {e}", out.display());
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
