//! LaunchDarkly's SDK protocols over real HTTP: the `/all` stream (put, patch within a second
//! of a REST change, delete, versions rising across delete and re-create, heartbeats),
//! polling with ETag/304, SDK/mobile key authentication (rotated keys until expiry), events,
//! and client-side/mobile evaluation (`evalx`) with availability filtering.

use std::time::{Duration, Instant};

use flagstaff_testkit::app::TestApp;
use flagstaff_testkit::backend_test;
use flagstaff_testkit::sse::SseReader;
use reqwest::Method;
use serde_json::{Value, json};

struct Keys {
    sdk: String,
    mobile: String,
    client_id: String,
}

async fn setup(app: &TestApp) -> Keys {
    app.post("/api/v2/projects", json!({"key": "p", "name": "P"}))
        .await
        .expect(201);
    let env = app
        .get("/api/v2/projects/p/environments/production")
        .await
        .expect(200);
    Keys {
        sdk: env["apiKey"].as_str().unwrap().to_string(),
        mobile: env["mobileKey"].as_str().unwrap().to_string(),
        client_id: env["_id"].as_str().unwrap().to_string(),
    }
}

async fn create_flag(app: &TestApp, key: &str, client_side: bool) {
    app.post(
        "/api/v2/flags/p",
        json!({"key": key, "name": key,
               "clientSideAvailability": {"usingEnvironmentId": client_side, "usingMobileKey": client_side}}),
    )
    .await
    .expect(201);
}

async fn turn_on(app: &TestApp, key: &str) {
    app.patch(
        &format!("/api/v2/flags/p/{key}"),
        json!([{"op": "replace", "path": "/environments/production/on", "value": true}]),
    )
    .await
    .expect(200);
}

const SECOND: Duration = Duration::from_secs(1);

backend_test!(all_stream_put_patch_delete_recreate, |app| async move {
    let keys = setup(&app).await;
    create_flag(&app, "f", false).await;
    let mut sse = SseReader::open(&app, "/all", &keys.sdk).await;
    let (name, put) = sse.next(5 * SECOND).await;
    assert_eq!(name, "put");
    assert_eq!(put["path"], "/");
    assert_eq!(put["data"]["segments"], json!({}));
    let f = &put["data"]["flags"]["f"];
    for field in [
        "key",
        "on",
        "targets",
        "contextTargets",
        "rules",
        "prerequisites",
        "fallthrough",
        "offVariation",
        "variations",
        "salt",
        "clientSide",
        "clientSideAvailability",
        "trackEvents",
        "trackEventsFallthrough",
        "debugEventsUntilDate",
        "version",
        "deleted",
    ] {
        assert!(f.get(field).is_some(), "flag lacks {field}: {f}");
    }
    assert_eq!(f["on"], false);
    assert_eq!(f["variations"], json!([true, false]));
    let v1 = f["version"].as_u64().unwrap();

    let started = Instant::now();
    turn_on(&app, "f").await;
    let (name, patch) = sse.next(SECOND).await;
    assert!(
        started.elapsed() < SECOND,
        "patch took {:?}",
        started.elapsed()
    );
    assert_eq!(name, "patch");
    assert_eq!(patch["path"], "/flags/f");
    assert_eq!(patch["data"]["on"], true);
    let v2 = patch["data"]["version"].as_u64().unwrap();
    assert!(v2 > v1);

    app.delete("/api/v2/flags/p/f").await.expect(204);
    let (name, del) = sse.next(SECOND).await;
    assert_eq!(name, "delete");
    assert_eq!(del["path"], "/flags/f");
    let v3 = del["version"].as_u64().unwrap();
    assert!(v3 > v2);

    create_flag(&app, "f", false).await;
    let (name, patch) = sse.next(SECOND).await;
    assert_eq!(name, "patch");
    assert_eq!(patch["data"]["on"], false);
    let v4 = patch["data"]["version"].as_u64().unwrap();
    assert!(
        v4 > v3,
        "re-created flag version {v4} must exceed the tombstone's {v3}"
    );

    // Segments in the same stream.
    app.post(
        "/api/v2/segments/p/production",
        json!({"key": "s", "name": "S"}),
    )
    .await
    .expect(201);
    let (name, patch) = sse.next(SECOND).await;
    assert_eq!(name, "patch");
    assert_eq!(patch["path"], "/segments/s");
    for field in ["key", "included", "excluded", "rules", "salt", "version"] {
        assert!(patch["data"].get(field).is_some(), "segment lacks {field}");
    }
    app.delete("/api/v2/segments/p/production/s")
        .await
        .expect(204);
    let (name, del) = sse.next(SECOND).await;
    assert_eq!(name, "delete");
    assert_eq!(del["path"], "/segments/s");
    assert!(del["version"].as_u64().unwrap() > patch["data"]["version"].as_u64().unwrap());

    // A new stream (e.g. after a restart of the client) sees the re-created flag's version.
    let mut again = SseReader::open(&app, "/all", &format!("api_key {}", keys.sdk)).await;
    let (_, put) = again.next(5 * SECOND).await;
    assert_eq!(put["data"]["flags"]["f"]["version"].as_u64().unwrap(), v4);
    assert_eq!(put["data"]["segments"], json!({}));
});

backend_test!(old_flags_stream, |app| async move {
    let keys = setup(&app).await;
    create_flag(&app, "f", false).await;
    let mut sse = SseReader::open(&app, "/flags", &keys.sdk).await;
    let (name, put) = sse.next(5 * SECOND).await;
    assert_eq!(name, "put");
    assert_eq!(put["f"]["key"], "f");
    turn_on(&app, "f").await;
    let (name, patch) = sse.next(SECOND).await;
    assert_eq!(name, "patch");
    assert_eq!(patch["path"], "/f");
});

backend_test!(polling_with_etag, |app| async move {
    let keys = setup(&app).await;
    create_flag(&app, "f", false).await;
    let client = reqwest::Client::new();
    let get = |path: &str, etag: Option<&str>| {
        let mut req = client
            .get(format!("{}{path}", app.base_url))
            .header("Authorization", &keys.sdk);
        if let Some(e) = etag {
            req = req.header("If-None-Match", e);
        }
        req.send()
    };
    let first = get("/sdk/latest-all", None).await.unwrap();
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["flags"]["f"]["key"], "f");
    assert_eq!(body["segments"], json!({}));

    let same = get("/sdk/latest-all", Some(&etag)).await.unwrap();
    assert_eq!(same.status(), 304);
    assert!(same.bytes().await.unwrap().is_empty());

    turn_on(&app, "f").await;
    let deadline = Instant::now() + SECOND;
    loop {
        let r = get("/sdk/latest-all", Some(&etag)).await.unwrap();
        if r.status() == 200 {
            assert_ne!(r.headers()["etag"].to_str().unwrap(), etag);
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["flags"]["f"]["on"], true);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the poll did not change within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let one: Value = get("/sdk/latest-flags/f", None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["on"], true);
    let flags: Value = get("/sdk/latest-flags", None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(flags["f"].is_object());
    assert_eq!(
        get("/sdk/latest-flags/nope", None).await.unwrap().status(),
        404
    );
    let segments: Value = get("/sdk/latest-segments", None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(segments, json!({}));
    assert_eq!(
        get("/sdk/latest-segments/nope", None)
            .await
            .unwrap()
            .status(),
        404
    );
});

backend_test!(sdk_key_authentication, |app| async move {
    let keys = setup(&app).await;
    let client = reqwest::Client::new();
    let status = |path: &'static str, auth: Option<String>| {
        let mut req = client.get(format!("{}{path}", app.base_url));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("/sdk/latest-all", None).await, 401);
    assert_eq!(
        status(
            "/sdk/latest-all",
            Some("sdk-00000000-0000-0000-0000-000000000000".into())
        )
        .await,
        401
    );
    assert_eq!(status("/all", Some("sdk-nope".into())).await, 401);
    // The mobile key and the REST token are not SDK keys.
    assert_eq!(
        status("/sdk/latest-all", Some(keys.mobile.clone())).await,
        401
    );
    assert_eq!(
        status("/sdk/latest-all", Some(app.token.clone())).await,
        401
    );
    assert_eq!(status("/sdk/latest-all", Some(keys.sdk.clone())).await, 200);
    assert_eq!(
        status("/sdk/latest-all", Some(format!("api_key {}", keys.sdk))).await,
        200
    );

    // Reset with an expiry: the old key works until then, the new one at once.
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 2000;
    let env = app
        .post(
            &format!("/api/v2/projects/p/environments/production/apiKey?expiry={expiry}"),
            json!({}),
        )
        .await
        .expect(200);
    let new_key = env["apiKey"].as_str().unwrap().to_string();
    assert_ne!(new_key, keys.sdk);
    let deadline = Instant::now() + SECOND;
    while status("/sdk/latest-all", Some(new_key.clone())).await != 200 {
        assert!(Instant::now() < deadline, "the new key was not accepted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status("/sdk/latest-all", Some(keys.sdk.clone())).await, 200);
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(status("/sdk/latest-all", Some(keys.sdk.clone())).await, 401);
    assert_eq!(status("/sdk/latest-all", Some(new_key)).await, 200);
});

fn b64url(v: &Value) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = v.to_string().into_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

backend_test!(client_side_evaluation, |app| async move {
    let keys = setup(&app).await;
    create_flag(&app, "visible", true).await;
    create_flag(&app, "server-only", false).await;
    turn_on(&app, "visible").await;
    // A rule: emails at example.com get `false`.
    app.patch(
        "/api/v2/flags/p/visible",
        json!([{"op": "add", "path": "/environments/production/rules/0", "value":
            {"variation": 1, "clauses": [{"attribute": "email", "op": "endsWith", "values": ["@example.com"], "contextKind": "user"}]}}]),
    )
    .await
    .expect(200);
    let ctx = json!({"kind": "user", "key": "u1", "email": "a@example.com"});
    let client = reqwest::Client::new();
    let url = |p: String| format!("{}{p}", app.base_url);

    // GET with the context in the path; the stream may still be catching up.
    let deadline = Instant::now() + SECOND;
    let body = loop {
        let r = client
            .get(url(format!(
                "/sdk/evalx/{}/contexts/{}?withReasons=true",
                keys.client_id,
                b64url(&ctx)
            )))
            .header("Origin", "https://app.example")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["access-control-allow-origin"],
            "https://app.example"
        );
        let body: Value = r.json().await.unwrap();
        if body["visible"]["reason"]["kind"] == "RULE_MATCH" || Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(body.get("server-only").is_none(), "{body}");
    let v = &body["visible"];
    assert_eq!(v["value"], false);
    assert_eq!(v["variation"], 1);
    assert_eq!(v["reason"]["kind"], "RULE_MATCH");
    assert!(v["version"].as_u64().unwrap() > 0);
    assert_eq!(v["flagVersion"], v["version"]);
    assert_eq!(v["trackEvents"], false);

    // REPORT with the context in the body; no reasons unless asked.
    let report = Method::from_bytes(b"REPORT").unwrap();
    let other = json!({"kind": "user", "key": "u2"});
    for path in ["context", "contexts"] {
        let r = client
            .request(
                report.clone(),
                url(format!("/sdk/evalx/{}/{path}", keys.client_id)),
            )
            .header("Content-Type", "application/json")
            .body(other.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["visible"]["value"], true);
        assert!(body["visible"].get("reason").is_none());
        assert!(body.get("server-only").is_none());
    }
    // Legacy user format and path.
    let user = json!({"key": "u3", "email": "x@example.com"});
    let r: Value = client
        .get(url(format!(
            "/sdk/evalx/{}/users/{}",
            keys.client_id,
            b64url(&user)
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["visible"]["value"], false);

    // Mobile: mobile key, mobile availability.
    let r = client
        .get(url(format!(
            "/msdk/evalx/contexts/{}?withReasons=true",
            b64url(&other)
        )))
        .header("Authorization", &keys.mobile)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["visible"]["reason"]["kind"], "FALLTHROUGH");
    assert!(body.get("server-only").is_none());
    let r = client
        .get(url(format!("/msdk/evalx/contexts/{}", b64url(&other))))
        .header("Authorization", &keys.sdk)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Errors: bad base64, bad JSON, invalid context, unknown environment.
    for bad in [
        "!!!".to_string(),
        b64url(&json!("not an object")),
        b64url(&json!({"kind": "user"})),
        "e30".into(),
    ] {
        let r = client
            .get(url(format!("/sdk/evalx/{}/contexts/{bad}", keys.client_id)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "context {bad}");
    }
    let r = client
        .request(
            report.clone(),
            url(format!("/sdk/evalx/{}/context", keys.client_id)),
        )
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = client
        .get(url(format!(
            "/sdk/evalx/{}/contexts/{}",
            "0123456789abcdef01234567",
            b64url(&other)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // GET on a REPORT route is refused.
    let r = client
        .get(url(format!("/sdk/evalx/{}/context", keys.client_id)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
});

backend_test!(client_ping_stream, |app| async move {
    let keys = setup(&app).await;
    create_flag(&app, "f", true).await;
    let ctx = b64url(&json!({"kind": "user", "key": "u"}));
    let mut sse = SseReader::open(&app, &format!("/eval/{}/{ctx}", keys.client_id), "").await;
    assert_eq!(sse.next(5 * SECOND).await.0, "ping");
    turn_on(&app, "f").await;
    assert_eq!(sse.next(SECOND).await.0, "ping");
    let r = reqwest::get(format!("{}/eval/{}/!!", app.base_url, keys.client_id))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
});

backend_test!(events_accepted_and_garbage_refused, |app| async move {
    let keys = setup(&app).await;
    create_flag(&app, "f", true).await;
    let mut sse = SseReader::open(&app, "/all", &keys.sdk).await;
    assert_eq!(sse.next(5 * SECOND).await.0, "put");
    let client = reqwest::Client::new();
    let post = |path: String, auth: &str, body: &str| {
        client
            .post(format!("{}{path}", app.base_url))
            .header("Authorization", auth)
            .header("Content-Type", "application/json")
            .header("X-LaunchDarkly-Event-Schema", "4")
            .body(body.to_string())
            .send()
    };
    let events = json!([{"kind": "summary", "startDate": 1, "endDate": 2, "features": {}},
                        {"kind": "identify", "creationDate": 1, "context": {"kind": "user", "key": "u"}}]);
    let r = post("/bulk".into(), &keys.sdk, &events.to_string())
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert!(r.headers().contains_key("date"));
    let diag =
        json!({"kind": "diagnostic-init", "id": {"diagnosticId": "x", "sdkKeySuffix": "abcdef"}});
    assert_eq!(
        post("/diagnostic".into(), &keys.sdk, &diag.to_string())
            .await
            .unwrap()
            .status(),
        202
    );
    assert_eq!(
        post(
            format!("/events/bulk/{}", keys.client_id),
            "",
            &events.to_string()
        )
        .await
        .unwrap()
        .status(),
        202
    );
    assert_eq!(
        post(
            "/mobile/events/bulk".into(),
            &keys.mobile,
            &events.to_string()
        )
        .await
        .unwrap()
        .status(),
        202
    );
    for garbage in ["{not json", "{\"kind\":\"summary\"}", "[1,2,3]", ""] {
        assert_eq!(
            post("/bulk".into(), &keys.sdk, garbage)
                .await
                .unwrap()
                .status(),
            400,
            "{garbage}"
        );
    }
    assert_eq!(
        post("/diagnostic".into(), &keys.sdk, "[]")
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        post("/bulk".into(), "sdk-bad", &events.to_string())
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        post("/events/bulk/nope".into(), "", &events.to_string())
            .await
            .unwrap()
            .status(),
        404
    );
    // The stream is unaffected.
    turn_on(&app, "f").await;
    let (name, patch) = sse.next(SECOND).await;
    assert_eq!(name, "patch");
    assert_eq!(patch["data"]["on"], true);
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_comments() {
    let app = TestApp::sqlite_with(|s| s.with_sdk_heartbeat(Duration::from_millis(200))).await;
    let keys = setup(&app).await;
    let mut sse = SseReader::open(&app, "/all", &keys.sdk).await;
    assert_eq!(sse.next(5 * SECOND).await.0, "put");
    let deadline = Instant::now() + 2 * SECOND;
    while sse.comments < 2 && !sse.buffer.contains(':') {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, sse.response.chunk())
            .await
            .expect("a heartbeat in time")
            .unwrap()
            .unwrap();
        sse.buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        sse.buffer.starts_with(':'),
        "heartbeat is a comment: {:?}",
        sse.buffer
    );
}
