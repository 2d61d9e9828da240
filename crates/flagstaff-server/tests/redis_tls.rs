//! TLS Redis: a `rediss://` feature store and a `tlsEnabled` big-segment store, written by
//! Flagstaff into a redis-server started here that listens with TLS only. Its certificate
//! comes from a CA made with openssl for this test, which Flagstaff trusts through
//! `Integrations::with_redis_root_certificates` (the server's `--redis-ca-file`); a runtime
//! without that CA refuses the server's certificate. Skips without `redis-server` or
//! `openssl` on PATH.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use flagstaff_outbound::{OutboundPolicy, RedisTarget, RedisTimeouts};
use flagstaff_server::AppState;
use flagstaff_server::integrations::stores::StoreSyncSettings;
use flagstaff_server::integrations::{DeliverySettings, Integrations};
use flagstaff_testkit::app::TestApp;
use flagstaff_testkit::integrations::{Outbound, catalogue_integrations};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

fn on_path(program: &str, version_arg: &str) -> bool {
    std::process::Command::new(program)
        .arg(version_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA and a certificate for `localhost` / 127.0.0.1 signed by it, in `dir`.
fn make_certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=flagstaff-test-ca",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.cnf",
        ],
    );
}

/// redis-server with only a TLS port, killed when dropped.
struct TlsRedis {
    port: u16,
    _child: tokio::process::Child,
}

async fn start_tls_redis(dir: &Path) -> TlsRedis {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let child = tokio::process::Command::new("redis-server")
        .args(["--port", "0", "--bind", "127.0.0.1"])
        .args(["--tls-port", &port.to_string()])
        .args([
            "--tls-cert-file",
            "server.crt",
            "--tls-key-file",
            "server.key",
        ])
        .args(["--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no"])
        .args(["--save", "", "--appendonly", "no"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start redis-server");
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "redis-server (TLS) did not listen on {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    TlsRedis {
        port,
        _child: child,
    }
}

fn runtime(ca: Option<Vec<u8>>) -> Integrations {
    let integrations = catalogue_integrations(Outbound::Loopback, DeliverySettings::default())
        .with_store_sync_settings(StoreSyncSettings {
            base_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            ..StoreSyncSettings::default()
        });
    match ca {
        Some(pem) => integrations.with_redis_root_certificates(pem).unwrap(),
        None => integrations,
    }
}

async fn eventually<F, Fut>(what: &str, mut check: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Value, String>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(why) if tokio::time::Instant::now() > deadline => {
                panic!("{what}: not reached within {WAIT:?}: {why}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_redis_stores_are_written_and_verified() {
    if !on_path("redis-server", "--version") || !on_path("openssl", "version") {
        eprintln!("skipping: redis-server or openssl is not on PATH");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let redis = start_tls_redis(dir.path()).await;
    let ca = std::fs::read(dir.path().join("ca.crt")).unwrap();

    let app = TestApp::sqlite_with({
        let ca = ca.clone();
        move |state: AppState| state.with_integrations(runtime(Some(ca)))
    })
    .await;
    app.post("/api/v2/projects", json!({"key": "tls", "name": "tls"}))
        .await
        .expect(201);
    app.post("/api/v2/flags/tls", json!({"key": "f", "name": "f"}))
        .await
        .expect(201);
    let env = app
        .get("/api/v2/projects/tls/environments/production")
        .await
        .expect(200);
    let client_side_id = env["_id"].as_str().unwrap().to_string();

    // Read back over TLS, verifying the server against the same CA.
    let reader = RedisTarget::parse(&format!("rediss://localhost:{}", redis.port))
        .unwrap()
        .with_root_certificates(Some(std::sync::Arc::new(ca.clone())))
        .connect(
            &OutboundPolicy::from_cidrs(&["127.0.0.0/8".to_string()]).unwrap(),
            RedisTimeouts::default(),
        )
        .await
        .expect("a TLS connection verified by the test CA");

    // A rediss:// feature store: the flag arrives, and so does a change.
    let base = "/api/v2/integration-capabilities/featureStore/tls/production/redis-feature-store";
    app.post(
        base,
        json!({"name": "tls", "on": true, "config": {
            "url": format!("rediss://localhost:{}", redis.port), "prefix": "tls"}}),
    )
    .await
    .expect(201);
    let flag_version = |reader: redis::aio::MultiplexedConnection| async move {
        let mut reader = reader;
        let stored: Option<String> = redis::cmd("HGET")
            .arg("tls:features")
            .arg("f")
            .query_async(&mut reader)
            .await
            .map_err(|e| e.to_string())?;
        let flag: Value =
            serde_json::from_str(&stored.ok_or("no flag yet")?).map_err(|e| e.to_string())?;
        Ok::<Value, String>(flag)
    };
    let first = eventually("the flag in the TLS Redis", || flag_version(reader.clone())).await;
    assert_eq!(first["on"], false, "{first}");
    app.patch(
        "/api/v2/flags/tls/f",
        json!([{"op": "replace", "path": "/environments/production/on", "value": true}]),
    )
    .await
    .expect(200);
    eventually("the change in the TLS Redis", || {
        let reader = reader.clone();
        async move {
            let flag = flag_version(reader).await?;
            if flag["on"] == true {
                Ok(flag)
            } else {
                Err(format!("still {flag}"))
            }
        }
    })
    .await;

    // A tlsEnabled big-segment store: the engine connects over TLS and marks the store
    // synchronized.
    app.post(
        "/api/v2/integration-capabilities/big-segment-store/tls/production/redis",
        json!({"name": "tls", "on": true, "config": {
            "host": "localhost", "port": redis.port.to_string(), "tlsEnabled": true}}),
    )
    .await
    .expect(201);
    let synchronized_on = format!("{client_side_id}:big_segments_synchronized_on");
    eventually("big segments synchronized over TLS", || {
        let mut reader = reader.clone();
        let key = synchronized_on.clone();
        async move {
            let at: Option<i64> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut reader)
                .await
                .map_err(|e| e.to_string())?;
            at.map(Value::from).ok_or_else(|| "not yet".to_string())
        }
    })
    .await;

    // Without the CA, the same server's certificate is refused and the status says so.
    let untrusting =
        TestApp::sqlite_with(|state: AppState| state.with_integrations(runtime(None))).await;
    untrusting
        .post("/api/v2/projects", json!({"key": "tls", "name": "tls"}))
        .await
        .expect(201);
    let created = untrusting
        .post(
            base,
            json!({"name": "tls", "on": true, "config": {
                "url": format!("rediss://localhost:{}", redis.port), "prefix": "other"}}),
        )
        .await
        .expect(201);
    let path = format!("{base}/{}", created["_id"].as_str().unwrap());
    let status = eventually("the certificate refused", || {
        let (app, path) = (&untrusting, path.clone());
        async move {
            let got = app.get(&path).await.expect(200);
            match got["_status"]["errors"][0]["message"].as_str() {
                Some(_) => Ok(got["_status"].clone()),
                None => Err(got["_status"].to_string()),
            }
        }
    })
    .await;
    let message = status["errors"][0]["message"].as_str().unwrap();
    println!("without the CA: {message}");
    assert!(
        message.to_ascii_lowercase().contains("certificate"),
        "the error names the certificate: {message}"
    );
    let mut reader = reader;
    let written: bool = redis::cmd("EXISTS")
        .arg("other:$inited")
        .query_async(&mut reader)
        .await
        .unwrap();
    assert!(
        !written,
        "nothing was written through an unverified connection"
    );
}

#[test]
fn a_ca_file_without_a_certificate_is_refused() {
    let refused = catalogue_integrations(Outbound::Loopback, DeliverySettings::default())
        .with_redis_root_certificates(b"not a certificate".to_vec());
    assert!(refused.is_err());
}
