//! Akamai EdgeGrid v1 signing against Akamai's published vectors
//! (`<conformance>/edgegrid/testcases.json` + `testdata.json`, read in place), and the
//! `edgeGridAuth` template helper as the akamai-edgeworkers manifest uses it.

use std::path::PathBuf;

use flagstaff_template::edgegrid::{
    self, Credentials, Request, SignOptions, SigningClock, format_timestamp, sign, signing_key,
    with_signing_clock,
};
use flagstaff_template::{Compat, RenderOptions, Template};
use serde_json::{Value, json};

fn conformance_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FLAGSTAFF_CONFORMANCE_DIR").filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        assert!(
            dir.is_dir(),
            "conformance data directory not found: tried {} (from $FLAGSTAFF_CONFORMANCE_DIR)",
            dir.display()
        );
        return dir;
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance");
    assert!(
        dir.is_dir(),
        "conformance data directory not found: tried {} (default: <workspace root>/../shared/conformance; set $FLAGSTAFF_CONFORMANCE_DIR to override)",
        dir.display()
    );
    dir
}

fn read_json(path: PathBuf) -> Value {
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing string field {key:?} in {v}"))
}

#[test]
fn akamai_edgegrid_vectors() {
    let dir = conformance_dir().join("edgegrid");
    let data = read_json(dir.join("testdata.json"));
    let cases = read_json(dir.join("testcases.json"));
    let cases = cases.as_array().expect("testcases.json is an array");

    let credentials = Credentials {
        client_token: str_field(&data, "client_token"),
        client_secret: str_field(&data, "client_secret"),
        access_token: str_field(&data, "access_token"),
    };
    let timestamp = str_field(&data, "timestamp");
    let nonce = str_field(&data, "nonce");
    let headers_to_sign: Vec<&str> = data["headers_to_sign"]
        .as_array()
        .expect("headers_to_sign")
        .iter()
        .map(|h| h.as_str().expect("header name"))
        .collect();
    let options = SignOptions {
        headers_to_sign: &headers_to_sign,
        max_body: data["max_body"].as_u64().expect("max_body") as usize,
    };
    let base_url = str_field(&data, "base_url");
    let (scheme, rest) = base_url.split_once("://").expect("base_url has a scheme");
    let host = rest.split('/').next().expect("base_url has a host");

    // Sanity checks of the building blocks against the extra values in testdata.json.
    assert_eq!(
        signing_key(credentials.client_secret, timestamp),
        str_field(&data, "sign_key_test")
    );
    assert_eq!(format_timestamp(1_395_430_461), timestamp);
    let prefix = edgegrid::auth_header_prefix(&credentials, timestamp, nonce);

    let mut passed = 0;
    let mut failures = Vec::new();
    for case in cases {
        let name = str_field(case, "testName");
        let req = &case["request"];
        let headers: Vec<(&str, &str)> = req["headers"]
            .as_array()
            .map(|hs| {
                hs.iter()
                    .flat_map(|h| h.as_object().expect("header object"))
                    .map(|(k, v)| (k.as_str(), v.as_str().expect("header value")))
                    .collect()
            })
            .unwrap_or_default();
        let request = Request {
            method: str_field(req, "method"),
            scheme,
            host,
            path_and_query: str_field(req, "path"),
            headers: &headers,
            body: req["data"].as_str().map(str::as_bytes),
        };
        let signed = sign(&request, &credentials, &options, timestamp, nonce);
        let mut problems = Vec::new();
        // The vectors give the data to sign without the auth header prefix that ends it.
        if let Some(expected) = case["expectedDataToSign"].as_str() {
            let expected = format!("{expected}{prefix}");
            if signed.data_to_sign != expected {
                problems.push(format!(
                    "data to sign:\n    expected {expected:?}\n    actual   {:?}",
                    signed.data_to_sign
                ));
            }
        }
        let expected_auth = str_field(case, "expectedAuthorization");
        if signed.authorization != expected_auth {
            problems.push(format!(
                "authorization:\n    expected {expected_auth:?}\n    actual   {:?}",
                signed.authorization
            ));
        }
        if problems.is_empty() {
            passed += 1;
        } else {
            failures.push(format!("{name}: {}", problems.join("; ")));
        }
    }
    println!("edgegrid vectors: {passed}/{} passed", cases.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(cases.len(), 15, "vector count");
}

#[test]
fn timestamp_format() {
    assert_eq!(format_timestamp(0), "19700101T00:00:00+0000");
    assert_eq!(format_timestamp(951_782_400), "20000229T00:00:00+0000");
    assert_eq!(format_timestamp(1_580_777_685), "20200204T00:54:45+0000");
    assert_eq!(format_timestamp(4_102_444_799), "20991231T23:59:59+0000");
    assert_eq!(format_timestamp(-1), "19691231T23:59:59+0000");
}

#[test]
fn content_hash_only_for_post() {
    let body = b"datadatadatadatadatadatadatadata";
    assert_eq!(
        edgegrid::content_hash("POST", Some(body), 2048),
        "fDimoYqXOLntG3If/Z0K2aS9I19Pkv9P5OMCoL8lY0w="
    );
    assert_eq!(edgegrid::content_hash("post", Some(body), 2048).len(), 44);
    assert_eq!(edgegrid::content_hash("PUT", Some(body), 2048), "");
    assert_eq!(edgegrid::content_hash("POST", Some(b""), 2048), "");
    assert_eq!(edgegrid::content_hash("POST", None, 2048), "");
    // Truncation to max_body.
    assert_eq!(
        edgegrid::content_hash("POST", Some(b"abcdef"), 3),
        edgegrid::content_hash("POST", Some(b"abc"), 3)
    );
}

const AKAMAI_CLOCK: SigningClock = SigningClock {
    unix_seconds: 1_395_430_461,
    nonce: "nonce-xx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
};

fn akamai_manifest() -> Value {
    read_json(
        conformance_dir()
            .join("integration-framework/integrations/akamai-edgeworkers/manifest.json"),
    )
}

/// The featureStore endpoint context as the platform builds it.
fn akamai_context() -> Value {
    json!({
        "hostname": "akab-host.luna.akamaiapis.net",
        "network": "staging",
        "namespaceId": "ld-flags",
        "groupId": "grp-7",
        "clientSecret": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx=",
        "clientToken": "akab-client-token-xxx-xxxxxxxxxxxxxxxx",
        "accessToken": "akab-access-token-xxx-xxxxxxxxxxxxxxxx",
        "_featureStoreKey": "LD-Env-abc123",
        "envId": "abc123",
    })
}

fn expected_header(method: &str, path: &str) -> String {
    let credentials = Credentials {
        client_token: "akab-client-token-xxx-xxxxxxxxxxxxxxxx",
        client_secret: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx=",
        access_token: "akab-access-token-xxx-xxxxxxxxxxxxxxxx",
    };
    let request = Request {
        method,
        scheme: "https",
        host: "akab-host.luna.akamaiapis.net",
        path_and_query: path,
        headers: &[],
        body: None,
    };
    sign(
        &request,
        &credentials,
        &SignOptions::default(),
        &format_timestamp(AKAMAI_CLOCK.unix_seconds),
        AKAMAI_CLOCK.nonce,
    )
    .authorization
}

#[test]
fn edge_grid_auth_helper_signs_manifest_requests() {
    let manifest = akamai_manifest();
    let cases = [
        (
            "/capabilities/featureStore/validationRequest/endpoint",
            "GET",
            "/edgekv/v1/networks/staging/namespaces/ld-flags",
        ),
        (
            "/capabilities/featureStore/featureStoreRequest/endpoint",
            "PUT",
            "/edgekv/v1/networks/staging/namespaces/ld-flags/groups/grp-7/items/LD-Env-abc123",
        ),
    ];
    for compat in [Compat::Js, Compat::Go] {
        for strict in [false, true] {
            let options = RenderOptions { strict, compat };
            for (pointer, method, path) in cases {
                let endpoint = manifest.pointer(pointer).expect(pointer);
                let source = endpoint["headers"][0]["value"].as_str().expect("header");
                let template = Template::parse(format!("{pointer}/headers/0/value"), source)
                    .expect("akamai header parses");
                let rendered = with_signing_clock(AKAMAI_CLOCK, || {
                    template.render(&akamai_context(), options)
                })
                .expect("edgeGridAuth renders");
                assert_eq!(
                    rendered,
                    expected_header(method, path),
                    "{pointer} {compat:?}"
                );

                // The signed path is the path of the URL the platform requests.
                let url = Template::parse("url", endpoint["url"].as_str().expect("url"))
                    .expect("url parses")
                    .render(&akamai_context(), options)
                    .expect("url renders");
                assert_eq!(url, format!("https://akab-host.luna.akamaiapis.net{path}"));
            }
        }
    }
}

#[test]
fn edge_grid_auth_helper_uses_current_time_and_fresh_nonce() {
    let manifest = akamai_manifest();
    let source = manifest
        .pointer("/capabilities/featureStore/featureStoreRequest/endpoint/headers/0/value")
        .and_then(Value::as_str)
        .expect("header");
    let template = Template::parse("auth", source).expect("parses");
    let options = RenderOptions {
        compat: Compat::Go,
        ..RenderOptions::default()
    };
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let a = template
        .render(&akamai_context(), options)
        .expect("renders");
    let b = template
        .render(&akamai_context(), options)
        .expect("renders");
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;

    let field = |header: &str, name: &str| -> String {
        header
            .strip_prefix("EG1-HMAC-SHA256 ")
            .expect("algorithm")
            .split(';')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} in {header}"))
            .to_owned()
    };
    let ts = field(&a, "timestamp");
    assert!(
        (before..=after).any(|t| format_timestamp(t) == ts),
        "timestamp {ts} is not the current time"
    );
    let nonce_a = field(&a, "nonce");
    assert_eq!(nonce_a.len(), 36, "UUID nonce: {nonce_a}");
    assert_ne!(nonce_a, field(&b, "nonce"), "nonces are fresh per render");
    assert_eq!(field(&a, "signature").len(), 44);
}
