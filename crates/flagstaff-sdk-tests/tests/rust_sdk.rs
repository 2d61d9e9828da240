//! LaunchDarkly's official Rust server-side SDK (`launchdarkly-server-sdk` 3.2.0 from crates.io,
//! unmodified; plain-HTTP `hyper` transport, no TLS stack) against a running Flagstaff, on
//! SQLite and on Postgres (`FLAGSTAFF_TEST_DATABASE_URL`).
//!
//! Per backend: a project with a boolean flag with a rule, a multivariate flag with a
//! percentage rollout, and a flag with a segment-match rule, made over the REST API. Then two
//! SDK clients, one per data source:
//!
//! - **streaming** (`GET /all`): initialisation, evaluations with reasons, and four REST changes
//!   (semantic patches, a delete and a re-create), each of which the SDK must see within 1 s;
//! - **polling** (`GET /sdk/latest-all`): initialisation and the same evaluations; the SDK
//!   clamps its poll interval to at least 30 s (`PollingDataSourceBuilder::poll_interval`), so
//!   the changes are seen at its second poll, ~30 s after the first: the test measures that and
//!   requires it within 30 s + 3 s. The polling client starts first so that this wait overlaps
//!   the streaming checks.
//!
//! The Rust SDK deserialises flags strictly (a missing field makes the whole payload fail), so
//! the test also decodes `/sdk/latest-all` with the SDK's own `Flag`/`Segment` types first: a
//! server payload the SDK would reject fails with the serde error instead of an
//! initialisation time-out. The rollout results are cross-checked against Flagstaff's own
//! evaluator (`REPORT /sdk/evalx/{envId}/context`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flagstaff_testkit::app::{Backend, TestApp};
use launchdarkly_sdk_transport::HyperTransport;
use launchdarkly_server_sdk::{
    Client, ConfigBuilder, Context, ContextBuilder, EvalError, EventProcessorBuilder, Flag,
    FlagDetailConfig, MultiContextBuilder, PollingDataSourceBuilder, Reason, Segment,
    ServiceEndpointsBuilder, StreamingDataSourceBuilder,
};
use serde_json::{Value, json};

const PROJECT: &str = "rust-sdk";
const SEGMENT: &str = "beta-testers";
/// A streaming change must reach the SDK within this.
const STREAM_DEADLINE: Duration = Duration::from_secs(1);
/// The SDK's minimum poll interval (`MINIMUM_POLL_INTERVAL` in `data_source_builders.rs`).
const SDK_MIN_POLL_INTERVAL: Duration = Duration::from_secs(30);
/// Rollout weights of `banner` (red, green, blue), out of 100000.
const WEIGHTS: [u32; 3] = [20_000, 30_000, 50_000];
/// Contexts evaluated for the rollout distribution.
const ROLLOUT_SAMPLE: usize = 1_000;
/// Of those, how many are cross-checked against Flagstaff's evaluator.
const CROSS_CHECKS: usize = 100;

struct Setup {
    sdk_key: String,
    client_side_id: String,
    /// `_id`s of the variations of `checkout` (true, false) and `banner` (red, green, blue).
    checkout_vars: Vec<String>,
    banner_vars: Vec<String>,
    /// The `_id` of `checkout`'s rule.
    checkout_rule_id: String,
}

fn variation_ids(flag: &Value) -> Vec<String> {
    flag["variations"]
        .as_array()
        .expect("variations")
        .iter()
        .map(|v| v["_id"].as_str().expect("variation _id").to_string())
        .collect()
}

async fn flag_patch(app: &TestApp, flag: &str, instructions: Value) -> Value {
    app.semantic_patch(
        &format!("/api/v2/flags/{PROJECT}/{flag}"),
        json!({"environmentKey": "production", "instructions": instructions}),
    )
    .await
    .expect(200)
}

async fn segment_patch(app: &TestApp, instructions: Value) -> Value {
    app.semantic_patch(
        &format!("/api/v2/segments/{PROJECT}/production/{SEGMENT}"),
        json!({"instructions": instructions}),
    )
    .await
    .expect(200)
}

async fn create_flag(app: &TestApp, body: Value) -> Value {
    app.post(&format!("/api/v2/flags/{PROJECT}"), body)
        .await
        .expect(201)
}

/// The project, its flags and segment; the production SDK key and client-side ID.
async fn setup(app: &TestApp) -> Setup {
    app.post(
        "/api/v2/projects",
        json!({"key": PROJECT, "name": "Rust SDK"}),
    )
    .await
    .expect(201);
    let env = app
        .get(&format!(
            "/api/v2/projects/{PROJECT}/environments/production"
        ))
        .await
        .expect(200);
    let sdk_key = env["apiKey"].as_str().expect("apiKey").to_string();
    let client_side_id = env["_id"].as_str().expect("_id").to_string();
    assert!(sdk_key.starts_with("sdk-"), "{sdk_key}");

    // Boolean flag: emails at example.com get true, everyone else false.
    let checkout = create_flag(app, json!({"key": "checkout", "name": "Checkout"})).await;
    let checkout_vars = variation_ids(&checkout);
    let checkout = flag_patch(
        app,
        "checkout",
        json!([
            {"kind": "turnFlagOn"},
            {"kind": "addRule", "variationId": checkout_vars[0], "description": "staff",
             "clauses": [{"contextKind": "user", "attribute": "email", "op": "endsWith",
                          "values": ["@example.com"], "negate": false}]},
            {"kind": "updateFallthroughVariationOrRollout", "variationId": checkout_vars[1]},
            {"kind": "updateOffVariation", "variationId": checkout_vars[1]},
        ]),
    )
    .await;
    let checkout_rule_id = checkout["environments"]["production"]["rules"][0]["_id"]
        .as_str()
        .expect("rule _id")
        .to_string();

    // Multivariate flag: a 20/30/50 percentage rollout in the fallthrough. Client-side
    // available, so Flagstaff's own evaluator can be asked for the same contexts.
    let banner = create_flag(
        app,
        json!({"key": "banner", "name": "Banner",
               "variations": [{"value": "red"}, {"value": "green"}, {"value": "blue"}],
               "clientSideAvailability": {"usingEnvironmentId": true, "usingMobileKey": false}}),
    )
    .await;
    let banner_vars = variation_ids(&banner);
    let weights: serde_json::Map<String, Value> = banner_vars
        .iter()
        .zip(WEIGHTS)
        .map(|(id, w)| (id.clone(), json!(w)))
        .collect();
    flag_patch(
        app,
        "banner",
        json!([
            {"kind": "turnFlagOn"},
            {"kind": "updateFallthroughVariationOrRollout", "rolloutWeights": weights,
             "rolloutContextKind": "user", "rolloutBucketBy": "key"},
        ]),
    )
    .await;

    // A segment (a user and an org) and a flag whose rule matches it.
    app.post(
        &format!("/api/v2/segments/{PROJECT}/production"),
        json!({"key": SEGMENT, "name": "Beta testers"}),
    )
    .await
    .expect(201);
    segment_patch(
        app,
        json!([
            {"kind": "addIncludedUsers", "values": ["u-beta"]},
            {"kind": "addIncludedTargets", "contextKind": "org", "values": ["acme"]},
        ]),
    )
    .await;
    let beta = create_flag(app, json!({"key": "beta-access", "name": "Beta access"})).await;
    let beta_vars = variation_ids(&beta);
    flag_patch(
        app,
        "beta-access",
        json!([
            {"kind": "turnFlagOn"},
            {"kind": "addRule", "variationId": beta_vars[0],
             "clauses": [{"attribute": "segmentMatch", "op": "segmentMatch", "values": [SEGMENT],
                          "negate": false}]},
            {"kind": "updateFallthroughVariationOrRollout", "variationId": beta_vars[1]},
        ]),
    )
    .await;

    Setup {
        sdk_key,
        client_side_id,
        checkout_vars,
        banner_vars,
        checkout_rule_id,
    }
}

/// Decodes the polling payload with the SDK's own (strict) types, so that a payload the SDK
/// would refuse fails here with serde's message rather than as an initialisation time-out.
async fn sdk_types_accept_payload(app: &TestApp, sdk_key: &str) {
    let body: Value = reqwest::Client::new()
        .get(format!("{}/sdk/latest-all", app.base_url))
        .header("Authorization", sdk_key)
        .send()
        .await
        .expect("GET /sdk/latest-all")
        .json()
        .await
        .expect("JSON");
    for (key, flag) in body["flags"].as_object().expect("flags object") {
        if let Err(e) = serde_json::from_value::<Flag>(flag.clone()) {
            panic!("the Rust SDK cannot decode flag {key}: {e}\n{flag:#}");
        }
    }
    for (key, segment) in body["segments"].as_object().expect("segments object") {
        if let Err(e) = serde_json::from_value::<Segment>(segment.clone()) {
            panic!("the Rust SDK cannot decode segment {key}: {e}\n{segment:#}");
        }
    }
    assert_eq!(body["flags"].as_object().unwrap().len(), 3, "{body:#}");
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Streaming,
    Polling,
}

fn http() -> HyperTransport {
    HyperTransport::new().expect("plain-HTTP transport")
}

/// A started SDK client pointed at `app` (streaming, polling and events base URLs).
fn start_client(app: &TestApp, sdk_key: &str, mode: Mode) -> Client {
    let mut endpoints = ServiceEndpointsBuilder::new();
    endpoints
        .streaming_base_url(&app.base_url)
        .polling_base_url(&app.base_url)
        .events_base_url(&app.base_url);
    let mut events = EventProcessorBuilder::new();
    events
        .transport(http())
        .flush_interval(Duration::from_millis(500));
    let builder = ConfigBuilder::new(sdk_key)
        .service_endpoints(&endpoints)
        .event_processor(&events);
    let builder = match mode {
        Mode::Streaming => {
            let mut source = StreamingDataSourceBuilder::new();
            source
                .transport(http())
                .initial_reconnect_delay(Duration::from_millis(100));
            builder.data_source(&source)
        }
        Mode::Polling => {
            let mut source = PollingDataSourceBuilder::new();
            // Clamped by the SDK to SDK_MIN_POLL_INTERVAL.
            source
                .transport(http())
                .poll_interval(Duration::from_secs(1));
            builder.data_source(&source)
        }
    };
    let config = builder.build().expect("SDK config");
    let client = Client::build(config).expect("SDK client");
    client.start_with_default_executor();
    client
}

async fn wait_initialised(client: &Client, mode: Mode) -> Duration {
    let start = Instant::now();
    let ok = client
        .wait_for_initialization(Duration::from_secs(10))
        .await;
    assert_eq!(
        ok,
        Some(true),
        "{mode:?}: the Rust SDK did not initialise within 10 s (None = timed out)"
    );
    start.elapsed()
}

fn user(key: &str) -> Context {
    ContextBuilder::new(key).build().expect("context")
}

fn user_with_email(key: &str, email: &str) -> Context {
    ContextBuilder::new(key)
        .set_string("email", email)
        .build()
        .expect("context")
}

/// Flagstaff's own evaluation of `flag` for `context` (client-side `evalx`, with reasons).
async fn flagstaff_eval(app: &TestApp, client_side_id: &str, context: &Value, flag: &str) -> Value {
    let method = reqwest::Method::from_bytes(b"REPORT").unwrap();
    let body: Value = reqwest::Client::new()
        .request(
            method,
            format!(
                "{}/sdk/evalx/{client_side_id}/context?withReasons=true",
                app.base_url
            ),
        )
        .header("Content-Type", "application/json")
        .body(context.to_string())
        .send()
        .await
        .expect("REPORT evalx")
        .json()
        .await
        .expect("evalx JSON");
    body[flag].clone()
}

/// The evaluations every freshly initialised client must produce.
async fn check_initial(app: &TestApp, setup: &Setup, client: &Client, mode: Mode) {
    // Boolean flag: rule match and fallthrough.
    let d =
        client.bool_variation_detail(&user_with_email("u1", "ann@example.com"), "checkout", false);
    assert_eq!(d.value, Some(true), "{mode:?} {d:?}");
    assert_eq!(d.variation_index, Some(0), "{mode:?} {d:?}");
    assert_eq!(
        d.reason,
        Reason::RuleMatch {
            rule_index: 0,
            rule_id: setup.checkout_rule_id.clone(),
            in_experiment: false
        },
        "{mode:?}"
    );
    let d = client.bool_variation_detail(&user_with_email("u2", "bob@other.org"), "checkout", true);
    assert_eq!(d.value, Some(false), "{mode:?} {d:?}");
    assert_eq!(d.variation_index, Some(1), "{mode:?} {d:?}");
    assert_eq!(
        d.reason,
        Reason::Fallthrough {
            in_experiment: false
        },
        "{mode:?}"
    );

    // Segment match: a user in the segment, an org in the segment (multi-context), and a user
    // who is not.
    let d = client.bool_variation_detail(&user("u-beta"), "beta-access", false);
    assert_eq!(d.value, Some(true), "{mode:?} {d:?}");
    assert!(
        matches!(d.reason, Reason::RuleMatch { rule_index: 0, .. }),
        "{mode:?} {d:?}"
    );
    let org = ContextBuilder::new("acme").kind("org").build().unwrap();
    let multi = MultiContextBuilder::new()
        .add_context(user("someone"))
        .add_context(org)
        .build()
        .unwrap();
    let d = client.bool_variation_detail(&multi, "beta-access", false);
    assert_eq!(d.value, Some(true), "{mode:?} org in segment: {d:?}");
    let d = client.bool_variation_detail(&user("u3"), "beta-access", true);
    assert_eq!(d.value, Some(false), "{mode:?} {d:?}");
    assert_eq!(
        d.reason,
        Reason::Fallthrough {
            in_experiment: false
        },
        "{mode:?}"
    );

    // Percentage rollout: every result a fallthrough, the split close to 20/30/50, and the
    // same bucket as Flagstaff's evaluator.
    let colours = ["red", "green", "blue"];
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for i in 0..ROLLOUT_SAMPLE {
        let key = format!("visitor-{i}");
        let d = client.str_variation_detail(&user(&key), "banner", "default".to_string());
        assert_eq!(
            d.reason,
            Reason::Fallthrough {
                in_experiment: false
            },
            "{mode:?}"
        );
        let value = d.value.clone().expect("a value");
        let index =
            usize::try_from(d.variation_index.expect("a variation index")).expect("index >= 0");
        assert_eq!(colours[index], value, "{mode:?} {d:?}");
        *counts.entry(colours[index]).or_default() += 1;
        if i < CROSS_CHECKS {
            let theirs = flagstaff_eval(
                app,
                &setup.client_side_id,
                &json!({"kind": "user", "key": key}),
                "banner",
            )
            .await;
            assert_eq!(theirs["value"], json!(value), "{mode:?} {key}: {theirs}");
            assert_eq!(
                theirs["variation"],
                json!(index),
                "{mode:?} {key}: {theirs}"
            );
        }
    }
    for (colour, weight) in colours.iter().zip(WEIGHTS) {
        let expected = ROLLOUT_SAMPLE as f64 * f64::from(weight) / 100_000.0;
        let got = counts.get(colour).copied().unwrap_or(0) as f64;
        assert!(
            (got - expected).abs() <= ROLLOUT_SAMPLE as f64 * 0.06,
            "{mode:?}: {colour} served {got} times of {ROLLOUT_SAMPLE}, expected about {expected}: {counts:?}"
        );
    }

    // Unknown flag, wrong type.
    let d = client.str_variation_detail(&user("u1"), "no-such-flag", "dflt".to_string());
    assert_eq!(d.value.as_deref(), Some("dflt"));
    assert_eq!(
        d.reason,
        Reason::Error {
            error: EvalError::FlagNotFound
        },
        "{mode:?}"
    );
    let d = client.str_variation_detail(&user("u1"), "checkout", "dflt".to_string());
    assert_eq!(
        d.reason,
        Reason::Error {
            error: EvalError::WrongType
        },
        "{mode:?}"
    );

    let all = client.all_flags_detail(&user("u1"), FlagDetailConfig::new());
    let all = serde_json::to_value(&all).expect("all flags JSON");
    assert_eq!(all["$valid"], true, "{mode:?} {all:#}");
    for flag in ["checkout", "banner", "beta-access"] {
        assert!(
            all.get(flag).is_some(),
            "{mode:?}: {flag} missing from {all:#}"
        );
    }
}

/// Polls `seen` every 2 ms until it holds; returns the delay, or `None` after `deadline`.
async fn wait_seen(deadline: Duration, seen: impl Fn() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if seen() {
            return Some(start.elapsed());
        }
        if start.elapsed() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn is_off(client: &Client) -> bool {
    let d =
        client.bool_variation_detail(&user_with_email("u1", "ann@example.com"), "checkout", true);
    d.reason == Reason::Off && d.value == Some(false)
}

fn u3_in_segment(client: &Client) -> bool {
    let d = client.bool_variation_detail(&user("u3"), "beta-access", false);
    d.value == Some(true) && matches!(d.reason, Reason::RuleMatch { .. })
}

fn banner_green(client: &Client) -> bool {
    let d = client.str_variation_detail(&user("visitor-0"), "banner", String::new());
    d.value.as_deref() == Some("green")
        && d.variation_index == Some(1)
        && d.reason
            == Reason::Fallthrough {
                in_experiment: false,
            }
}

fn checkout_missing(client: &Client) -> bool {
    client
        .bool_variation_detail(&user("u1"), "checkout", false)
        .reason
        == Reason::Error {
            error: EvalError::FlagNotFound,
        }
}

/// The re-created `checkout` is a new flag: off, serving its default off variation.
fn checkout_recreated(client: &Client) -> bool {
    client
        .bool_variation_detail(&user("u1"), "checkout", true)
        .reason
        == Reason::Off
}

/// Makes the four changes; after each, waits for the streaming client to see it and records
/// the delay (from the REST response to the first evaluation that shows it).
async fn changes_seen_by_stream(
    app: &TestApp,
    setup: &Setup,
    stream: &Client,
) -> Vec<(&'static str, Duration)> {
    let mut delays = Vec::new();
    let mut record = |what: &'static str, delay: Option<Duration>| {
        let delay = delay.unwrap_or_else(|| {
            panic!("streaming: the Rust SDK did not see '{what}' within {STREAM_DEADLINE:?}")
        });
        delays.push((what, delay));
    };

    flag_patch(app, "checkout", json!([{"kind": "turnFlagOff"}])).await;
    record(
        "turnFlagOff",
        wait_seen(STREAM_DEADLINE, || is_off(stream)).await,
    );

    segment_patch(app, json!([{"kind": "addIncludedUsers", "values": ["u3"]}])).await;
    record(
        "segment addIncludedUsers",
        wait_seen(STREAM_DEADLINE, || u3_in_segment(stream)).await,
    );

    flag_patch(
        app,
        "banner",
        json!([{"kind": "updateFallthroughVariationOrRollout", "variationId": setup.banner_vars[1]}]),
    )
    .await;
    record(
        "rollout -> fixed variation",
        wait_seen(STREAM_DEADLINE, || banner_green(stream)).await,
    );

    app.delete(&format!("/api/v2/flags/{PROJECT}/checkout"))
        .await
        .expect(204);
    record(
        "flag deleted",
        wait_seen(STREAM_DEADLINE, || checkout_missing(stream)).await,
    );

    create_flag(app, json!({"key": "checkout", "name": "Checkout again"})).await;
    record(
        "flag re-created",
        wait_seen(STREAM_DEADLINE, || checkout_recreated(stream)).await,
    );
    delays
}

async fn close(client: Client) {
    let flushed = client.flush_blocking(Duration::from_secs(5)).await;
    tokio::task::block_in_place(|| client.close());
    assert!(flushed, "the SDK's events did not flush within 5 s");
}

async fn run(backend: Backend) {
    let Some(app) = TestApp::on(backend).await else {
        return;
    };
    let test_start = Instant::now();
    let setup = setup(&app).await;
    assert_eq!(setup.checkout_vars.len(), 2);
    sdk_types_accept_payload(&app, &setup.sdk_key).await;

    // Polling first: its second poll comes SDK_MIN_POLL_INTERVAL after the first one, so the
    // streaming checks run inside that wait.
    let polling = start_client(&app, &setup.sdk_key, Mode::Polling);
    let first_poll = Instant::now();
    let init = wait_initialised(&polling, Mode::Polling).await;
    println!("{backend:?} polling: initialised in {init:?}");
    check_initial(&app, &setup, &polling, Mode::Polling).await;

    let streaming = start_client(&app, &setup.sdk_key, Mode::Streaming);
    let init = wait_initialised(&streaming, Mode::Streaming).await;
    println!("{backend:?} streaming: initialised in {init:?}");
    check_initial(&app, &setup, &streaming, Mode::Streaming).await;

    let changes_start = Instant::now();
    let delays = changes_seen_by_stream(&app, &setup, &streaming).await;
    for (what, delay) in &delays {
        println!(
            "{backend:?} streaming: '{what}' seen {:.1} ms after the REST response",
            delay.as_secs_f64() * 1000.0
        );
    }

    // Polling: every change shows at the next poll.
    assert!(
        first_poll.elapsed() < SDK_MIN_POLL_INTERVAL,
        "the streaming checks outlasted the poll interval"
    );
    assert!(
        !is_off(&polling) && !u3_in_segment(&polling),
        "polling: changes seen before the second poll"
    );
    let seen = wait_seen(SDK_MIN_POLL_INTERVAL + Duration::from_secs(3), || {
        checkout_recreated(&polling) && u3_in_segment(&polling) && banner_green(&polling)
    })
    .await;
    let since_change = changes_start.elapsed();
    let since_first_poll = first_poll.elapsed();
    if seen.is_none() {
        panic!(
            "polling: the Rust SDK did not see the changes within {:?} of its first poll",
            since_first_poll
        );
    }
    println!(
        "{backend:?} polling: changes seen {:.2} s after the first change, {:.2} s after the first poll (the SDK's poll interval is at least {SDK_MIN_POLL_INTERVAL:?})",
        since_change.as_secs_f64(),
        since_first_poll.as_secs_f64()
    );

    close(streaming).await;
    close(polling).await;
    println!(
        "{backend:?}: test took {:.1} s",
        test_start.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_rust_sdk_sqlite() {
    run(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_rust_sdk_postgres() {
    run(Backend::Postgres).await;
}
