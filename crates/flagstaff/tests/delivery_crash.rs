//! `kill -9` of the server in the middle of 1,000 changes, then a restart: every committed
//! change reaches the webhook (counted by delivery id), none is lost, and the webhook secret
//! never shows up in the logs.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flagstaff_testkit::receiver::Receiver;
use serde_json::{Value, json};
use support::{Server, free_port};

const TOKEN: &str = "api-0c1d2e3f-4a5b-4c6d-8e7f-901234567890";
const SECRET: &str = "kill9-webhook-secret-SENTINEL";
const CHANGES: usize = 1000;

fn start(dir: &std::path::Path, port: u16) -> Server {
    let listen = format!("127.0.0.1:{port}");
    let mut server = Server::start(
        &[
            "--listen",
            &listen,
            "--data-dir",
            dir.to_str().unwrap(),
            "--allow-outbound",
            "127.0.0.0/8",
            "--delivery-retry-ms",
            "100",
            "--rate-limit",
            "0",
        ],
        &[
            ("FLAGSTAFF_BOOTSTRAP_TOKEN", TOKEN),
            ("FLAGSTAFF_LOG", "info"),
        ],
    );
    server.wait_ready();
    server
}

async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Value,
    semantic: bool,
) -> Option<u16> {
    let content_type = if semantic {
        "application/json; domain-model=launchdarkly.semanticpatch"
    } else {
        "application/json"
    };
    client
        .request(method, url)
        .header("Authorization", TOKEN)
        .header("Content-Type", content_type)
        .body(body.to_string())
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// Makes toggles `from..CHANGES` until one fails (server gone); returns how many succeeded.
async fn toggles(base: String, from: usize, done: Arc<AtomicUsize>) -> usize {
    let client = reqwest::Client::new();
    let mut next = from;
    while next < CHANGES {
        let status = send(
            &client,
            reqwest::Method::PATCH,
            format!("{base}/api/v2/flags/crash/f"),
            json!({"environmentKey": "production", "instructions": [{"kind": if next.is_multiple_of(2) { "turnFlagOn" } else { "turnFlagOff" }}]}),
            true,
        )
        .await;
        if status != Some(200) {
            break;
        }
        next += 1;
        done.store(next, Ordering::SeqCst);
    }
    next
}

async fn all_audit_ids(base: &str) -> BTreeSet<String> {
    let client = reqwest::Client::new();
    let mut ids = BTreeSet::new();
    let mut before: Option<i64> = None;
    loop {
        let mut url = format!("{base}/api/v2/auditlog?limit=20");
        if let Some(before) = before {
            url.push_str(&format!("&before={before}"));
        }
        let page: Value = client
            .get(url)
            .header("Authorization", TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap();
        if items.is_empty() {
            return ids;
        }
        for item in items {
            ids.insert(item["_id"].as_str().unwrap().to_string());
            before = item["date"].as_i64();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_changes_loses_no_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let receiver = Receiver::start().await;
    let server = start(dir.path(), port);
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{base}/api/v2/webhooks"))
        .header("Authorization", TOKEN)
        .header("Content-Type", "application/json")
        .body(
            json!({"url": receiver.base_url, "sign": true, "on": true, "secret": SECRET})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 200);
    let before_changes = all_audit_ids(&base).await;
    assert_eq!(
        send(
            &client,
            reqwest::Method::POST,
            format!("{base}/api/v2/projects"),
            json!({"key": "crash", "name": "Crash"}),
            false
        )
        .await,
        Some(201)
    );
    assert_eq!(
        send(
            &client,
            reqwest::Method::POST,
            format!("{base}/api/v2/flags/crash"),
            json!({"key": "f", "name": "F"}),
            false
        )
        .await,
        Some(201)
    );

    // Toggle until the server is killed, part-way through.
    let done = Arc::new(AtomicUsize::new(0));
    let worker = tokio::spawn(toggles(base.clone(), 0, done.clone()));
    while done.load(Ordering::SeqCst) < 400 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let first_log = server.kill_9();
    let made = worker.await.unwrap();
    assert!(made < CHANGES, "the kill came too late");

    // Restart on the same data and finish the 1,000 changes.
    let server = start(dir.path(), port);
    let finished = toggles(base.clone(), made, Arc::new(AtomicUsize::new(0))).await;
    assert_eq!(finished, CHANGES);

    // Every change committed after the webhook existed must arrive.
    let expected: BTreeSet<String> = all_audit_ids(&base)
        .await
        .difference(&before_changes)
        .cloned()
        .collect();
    assert!(expected.len() >= CHANGES + 2, "{} entries", expected.len());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let by_audit = loop {
        let mut by_audit: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for request in receiver.received() {
            let audit_id = request.json()["_id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let delivery = request
                .header("x-flagstaff-delivery")
                .unwrap_or_default()
                .to_string();
            by_audit.entry(audit_id).or_default().insert(delivery);
        }
        if expected.iter().all(|id| by_audit.contains_key(id)) {
            break by_audit;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {} changes delivered",
            expected
                .iter()
                .filter(|id| by_audit.contains_key(*id))
                .count(),
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // One delivery id per change (a redelivery after the crash reuses its id).
    for id in &expected {
        assert_eq!(
            by_audit[id].len(),
            1,
            "audit entry {id} got several delivery ids"
        );
    }
    let delivered_ids: BTreeSet<&String> = by_audit.values().flatten().collect();
    assert_eq!(delivered_ids.len(), expected.len());
    let (_, second_log) = server.terminate();
    for log in [first_log, second_log] {
        assert!(!log.contains(SECRET), "the webhook secret is in the log");
    }
    println!(
        "kill -9 after {made} of {CHANGES} toggles: {} changes, {} requests received, {} distinct delivery ids, none missing",
        expected.len(),
        receiver.received().len(),
        delivered_ids.len()
    );
}
