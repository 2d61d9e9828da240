//! The bad-input matrix: every rejected request answers the right 4xx status with
//! LaunchDarkly's error `code`, a message that says what to fix, and writes nothing (no audit
//! entry, no change to the entities it aimed at).

use flagstaff_testkit::app::{TestApp, TestResponse};
use flagstaff_testkit::backend_test;
use reqwest::Method;
use serde_json::{Value, json};

const SEMANTIC: &str = "application/json; domain-model=launchdarkly.semanticpatch";

/// The entities every case watches: the project (with its environments and their keys), the
/// flag and the segment created by [`setup`].
const WATCHED: &[&str] = &[
    "/api/v2/projects/p1?expand=environments",
    "/api/v2/flags/p1/f1",
    "/api/v2/segments/p1/production/s1",
];

#[derive(Debug, PartialEq)]
struct Snapshot {
    audit: usize,
    entities: Vec<Value>,
}

async fn snapshot(app: &TestApp) -> Snapshot {
    let mut entities = Vec::new();
    for path in WATCHED {
        entities.push(app.get(path).await.expect(200));
    }
    Snapshot {
        audit: app.audit_count().await,
        entities,
    }
}

/// Project `p1` (production, test), boolean flag `f1`, segment `s1` in production.
async fn setup(app: &TestApp) {
    app.post("/api/v2/projects", json!({"key": "p1", "name": "P1"}))
        .await
        .expect(201);
    app.post("/api/v2/flags/p1", json!({"key": "f1", "name": "F1"}))
        .await
        .expect(201);
    app.post(
        "/api/v2/segments/p1/production",
        json!({"key": "s1", "name": "S1"}),
    )
    .await
    .expect(201);
}

/// Checks that `resp` is the expected error, that its message contains every needle, and
/// that nothing changed since `before`; returns what is wrong.
async fn rejection_problems(
    app: &TestApp,
    before: &Snapshot,
    resp: &TestResponse,
    status: u16,
    code: &str,
    needles: &[&str],
) -> Vec<String> {
    let mut problems = Vec::new();
    if resp.status != status || resp.code() != code {
        problems.push(format!(
            "expected {status} {code}, got {} {}",
            resp.status,
            resp.code()
        ));
    }
    for needle in needles {
        if !resp.message().contains(needle) {
            problems.push(format!("message does not mention {needle:?}"));
        }
    }
    let after = snapshot(app).await;
    if after.audit != before.audit {
        problems.push(format!(
            "wrote {} audit entries",
            after.audit as i64 - before.audit as i64
        ));
    }
    if after.entities != before.entities {
        problems.push("changed a watched entity".into());
    }
    if !problems.is_empty() {
        problems.push(format!("body: {}", resp.body));
    }
    problems
}

/// Panics with the problems `rejection_problems` found.
async fn assert_rejected(
    app: &TestApp,
    label: &str,
    before: &Snapshot,
    resp: &TestResponse,
    status: u16,
    code: &str,
    needles: &[&str],
) {
    let problems = rejection_problems(app, before, resp, status, code, needles).await;
    assert!(problems.is_empty(), "{label}:\n  {}", problems.join("\n  "));
}

/// One bad request of the table.
struct Bad {
    label: &'static str,
    method: Method,
    path: &'static str,
    body: Option<String>,
    content_type: Option<&'static str>,
    status: u16,
    code: &'static str,
    needles: Vec<&'static str>,
    /// A resource the request would have created, which must still not exist.
    absent: Option<&'static str>,
}

fn bad(
    label: &'static str,
    method: Method,
    path: &'static str,
    body: Option<String>,
    status: u16,
    code: &'static str,
    needles: &[&'static str],
) -> Bad {
    Bad {
        label,
        method,
        path,
        body,
        content_type: None,
        status,
        code,
        needles: needles.to_vec(),
        absent: None,
    }
}

impl Bad {
    fn content_type(mut self, ct: &'static str) -> Self {
        self.content_type = Some(ct);
        self
    }

    fn absent(mut self, path: &'static str) -> Self {
        self.absent = Some(path);
        self
    }
}

/// Sends every case and reports all the cases that went wrong at once.
async fn run(app: &TestApp, cases: Vec<Bad>) {
    let mut failures = Vec::new();
    for case in cases {
        let before = snapshot(app).await;
        let resp = app
            .request(
                case.method.clone(),
                case.path,
                case.body.clone(),
                case.content_type,
            )
            .await;
        let mut problems =
            rejection_problems(app, &before, &resp, case.status, case.code, &case.needles).await;
        if let Some(path) = case.absent {
            let r = app.get(path).await;
            if r.status != 404 {
                problems.push(format!("{path} was created"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!("{}:\n  {}", case.label, problems.join("\n  ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

backend_test!(malformed_and_mistyped_bodies, |app| async move {
    setup(&app).await;
    let mut cases = Vec::new();
    // Malformed JSON: the message says so and where.
    for (label, path) in [
        ("malformed project", "/api/v2/projects"),
        ("malformed flag", "/api/v2/flags/p1"),
        ("malformed segment", "/api/v2/segments/p1/production"),
    ] {
        cases.push(bad(
            label,
            Method::POST,
            path,
            Some(r#"{"key": "x", "name": "#.to_string()),
            400,
            "invalid_request",
            &["malformed JSON", "line 1 column"],
        ));
    }
    cases.push(bad(
        "malformed flag patch",
        Method::PATCH,
        "/api/v2/flags/p1/f1",
        Some(r#"[{"op": "replace", "path": "/name", "value": }]"#.to_string()),
        400,
        "invalid_request",
        &["malformed JSON", "line 1 column"],
    ));
    // Unknown fields on every create body.
    let colour = json!({"key": "x", "name": "X", "colour": 1}).to_string();
    for (label, path, absent) in [
        (
            "unknown field: project",
            "/api/v2/projects",
            "/api/v2/projects/x",
        ),
        (
            "unknown field: environment",
            "/api/v2/projects/p1/environments",
            "/api/v2/projects/p1/environments/x",
        ),
        (
            "unknown field: flag",
            "/api/v2/flags/p1",
            "/api/v2/flags/p1/x",
        ),
        (
            "unknown field: segment",
            "/api/v2/segments/p1/production",
            "/api/v2/segments/p1/production/x",
        ),
    ] {
        cases.push(
            bad(
                label,
                Method::POST,
                path,
                Some(colour.clone()),
                400,
                "invalid_request",
                &["unknown field `colour`", "expected one of", "`key`"],
            )
            .absent(absent),
        );
    }
    // Wrong-typed fields: the message names the field and the expected type.
    cases.push(
        bad(
            "temporary as a string",
            Method::POST,
            "/api/v2/flags/p1",
            Some(json!({"key": "x", "name": "X", "temporary": "yes"}).to_string()),
            400,
            "invalid_request",
            &["temporary", "expected a boolean"],
        )
        .absent("/api/v2/flags/p1/x"),
    );
    for (label, path, absent) in [
        (
            "flag tags as a string",
            "/api/v2/flags/p1",
            "/api/v2/flags/p1/x",
        ),
        (
            "project tags as a string",
            "/api/v2/projects",
            "/api/v2/projects/x",
        ),
        (
            "segment tags as a string",
            "/api/v2/segments/p1/production",
            "/api/v2/segments/p1/production/x",
        ),
    ] {
        cases.push(
            bad(
                label,
                Method::POST,
                path,
                Some(json!({"key": "x", "name": "X", "tags": "a"}).to_string()),
                400,
                "invalid_request",
                &["tags", "expected a sequence"],
            )
            .absent(absent),
        );
    }
    cases.push(
        bad(
            "defaults as a number",
            Method::POST,
            "/api/v2/flags/p1",
            Some(json!({"key": "x", "name": "X", "defaults": {"onVariation": "0", "offVariation": 1}}).to_string()),
            400,
            "invalid_request",
            &["defaults.onVariation", "expected usize"],
        )
        .absent("/api/v2/flags/p1/x"),
    );
    // Missing required fields.
    for (label, path, body, field) in [
        (
            "project without key",
            "/api/v2/projects",
            json!({"name": "X"}),
            "missing field `key`",
        ),
        (
            "project without name",
            "/api/v2/projects",
            json!({"key": "x"}),
            "missing field `name`",
        ),
        (
            "environment without color",
            "/api/v2/projects/p1/environments",
            json!({"key": "x", "name": "X"}),
            "missing field `color`",
        ),
        (
            "flag without key",
            "/api/v2/flags/p1",
            json!({"name": "X"}),
            "missing field `key`",
        ),
        (
            "segment without name",
            "/api/v2/segments/p1/production",
            json!({"key": "x"}),
            "missing field `name`",
        ),
    ] {
        cases.push(bad(
            label,
            Method::POST,
            path,
            Some(body.to_string()),
            400,
            "invalid_request",
            &[field],
        ));
    }
    // Empty body.
    cases.push(bad(
        "empty flag body",
        Method::POST,
        "/api/v2/flags/p1",
        Some(String::new()),
        400,
        "invalid_request",
        &["empty"],
    ));
    run(&app, cases).await;
});

backend_test!(invalid_keys_and_duplicates, |app| async move {
    setup(&app).await;
    let mut cases = Vec::new();
    for key in ["has space", "-leading-dash"] {
        for (what, path) in [
            ("project", "/api/v2/projects"),
            ("environment", "/api/v2/projects/p1/environments"),
            ("flag", "/api/v2/flags/p1"),
            ("segment", "/api/v2/segments/p1/production"),
        ] {
            let body = json!({"key": key, "name": "X", "color": "417505"});
            let body = if what == "environment" {
                body
            } else {
                json!({"key": key, "name": "X"})
            };
            cases.push(bad(
                what,
                Method::POST,
                path,
                Some(body.to_string()),
                400,
                "invalid_request",
                &[
                    "key",
                    "is invalid",
                    "letters, digits",
                    "starting with a letter or digit",
                ],
            ));
        }
    }
    // Duplicate keys are 409 conflicts.
    for (label, path, body, needle) in [
        (
            "duplicate project",
            "/api/v2/projects",
            json!({"key": "p1", "name": "Again"}),
            "project with key \"p1\" already exists",
        ),
        (
            "duplicate environment",
            "/api/v2/projects/p1/environments",
            json!({"key": "production", "name": "Again", "color": "417505"}),
            "environment with key \"production\" already exists",
        ),
        (
            "duplicate flag",
            "/api/v2/flags/p1",
            json!({"key": "f1", "name": "Again"}),
            "flag with key \"f1\" already exists",
        ),
        (
            "duplicate segment",
            "/api/v2/segments/p1/production",
            json!({"key": "s1", "name": "Again"}),
            "segment with key \"s1\" already exists",
        ),
    ] {
        cases.push(bad(
            label,
            Method::POST,
            path,
            Some(body.to_string()),
            409,
            "conflict",
            &[needle],
        ));
    }
    cases.push(
        bad(
            "environment key given twice in a new project",
            Method::POST,
            "/api/v2/projects",
            Some(
                json!({"key": "x", "name": "X", "environments": [
                    {"key": "a", "name": "A", "color": "417505"},
                    {"key": "a", "name": "A2", "color": "417505"}]})
                .to_string(),
            ),
            400,
            "invalid_request",
            &["\"a\" is given twice"],
        )
        .absent("/api/v2/projects/x"),
    );
    cases.push(
        bad(
            "duplicate variation values",
            Method::POST,
            "/api/v2/flags/p1",
            Some(
                json!({"key": "x", "name": "X", "variations": [{"value": "a"}, {"value": "a"}]})
                    .to_string(),
            ),
            400,
            "invalid_request",
            &["variations 0 and 1 have the same value", "unique"],
        )
        .absent("/api/v2/flags/p1/x"),
    );
    cases.push(bad(
        "duplicate variation value by patch",
        Method::PATCH,
        "/api/v2/flags/p1/f1",
        Some(json!([{"op": "add", "path": "/variations/-", "value": {"value": true}}]).to_string()),
        400,
        "invalid_request",
        &["variations 0 and 2 have the same value"],
    ));
    cases.push(
        bad(
            "environment color",
            Method::POST,
            "/api/v2/projects/p1/environments",
            Some(json!({"key": "x", "name": "X", "color": "red"}).to_string()),
            400,
            "invalid_request",
            &["color \"red\"", "six hexadecimal digits"],
        )
        .absent("/api/v2/projects/p1/environments/x"),
    );
    run(&app, cases).await;
});

backend_test!(invalid_json_patches, |app| async move {
    setup(&app).await;
    let flag = "/api/v2/flags/p1/f1";
    let patch = |ops: Value| Some(ops.to_string());
    let cases = vec![
        bad(
            "unknown op",
            Method::PATCH,
            flag,
            patch(json!([{"op": "bogus", "path": "/name", "value": "x"}])),
            400,
            "invalid_request",
            &["operation 0 is invalid", "bogus", "add|remove|replace"],
        ),
        bad(
            "op without path",
            Method::PATCH,
            flag,
            patch(json!([{"op": "replace", "value": "x"}])),
            400,
            "invalid_request",
            &["operation 0 is invalid", "missing field `path`"],
        ),
        bad(
            "second op invalid",
            Method::PATCH,
            flag,
            patch(json!([{"op": "replace", "path": "/name", "value": "ok"}, {"path": "/name"}])),
            400,
            "invalid_request",
            &["operation 1 is invalid", "missing field `op`"],
        ),
        bad(
            "empty patch",
            Method::PATCH,
            flag,
            patch(json!([])),
            400,
            "invalid_request",
            &["no operations"],
        ),
        bad(
            "replace on a missing path",
            Method::PATCH,
            flag,
            patch(json!([{"op": "replace", "path": "/nope", "value": 1}])),
            422,
            "patch_failed",
            &["operation 0", "/nope"],
        ),
        bad(
            "remove of a missing array element",
            Method::PATCH,
            flag,
            patch(json!([{"op": "remove", "path": "/environments/production/rules/0"}])),
            422,
            "patch_failed",
            &["/environments/production/rules/0"],
        ),
        bad(
            "read-only /key",
            Method::PATCH,
            flag,
            patch(json!([{"op": "replace", "path": "/key", "value": "z"}])),
            400,
            "invalid_request",
            &["/key is read-only"],
        ),
        bad(
            "read-only /_version",
            Method::PATCH,
            flag,
            patch(json!([{"op": "replace", "path": "/_version", "value": 9}])),
            400,
            "invalid_request",
            &["/_version is read-only"],
        ),
        bad(
            "read-only project /key",
            Method::PATCH,
            "/api/v2/projects/p1",
            patch(json!([{"op": "replace", "path": "/key", "value": "z"}])),
            400,
            "invalid_request",
            &["/key is read-only"],
        ),
        bad(
            "read-only environment /apiKey",
            Method::PATCH,
            "/api/v2/projects/p1/environments/production",
            patch(json!([{"op": "replace", "path": "/apiKey", "value": "sdk-mine"}])),
            400,
            "invalid_request",
            &["/apiKey is read-only"],
        ),
        bad(
            "read-only segment /key",
            Method::PATCH,
            "/api/v2/segments/p1/production/s1",
            patch(json!([{"op": "replace", "path": "/key", "value": "z"}])),
            400,
            "invalid_request",
            &["/key is read-only"],
        ),
        bad(
            "patch producing a wrong type",
            Method::PATCH,
            flag,
            patch(json!([{"op": "replace", "path": "/temporary", "value": "x"}])),
            400,
            "invalid_request",
            &["temporary", "expected a boolean"],
        ),
        bad(
            "merge producing a wrong type",
            Method::PATCH,
            flag,
            patch(json!({"merge": {"tags": "a"}})),
            400,
            "invalid_request",
            &["tags", "expected a sequence"],
        ),
        bad(
            "patch adding an unknown field",
            Method::PATCH,
            flag,
            patch(json!([{"op": "add", "path": "/colour", "value": 1}])),
            400,
            "invalid_request",
            &["unknown field `colour`"],
        ),
        bad(
            "project patch producing a wrong type",
            Method::PATCH,
            "/api/v2/projects/p1",
            patch(json!([{"op": "replace", "path": "/tags", "value": "a"}])),
            400,
            "invalid_request",
            &["tags", "expected a sequence"],
        ),
        bad(
            "environment patch with a bad color",
            Method::PATCH,
            "/api/v2/projects/p1/environments/production",
            patch(json!([{"op": "replace", "path": "/color", "value": "#fff"}])),
            400,
            "invalid_request",
            &["color \"#fff\"", "six hexadecimal digits"],
        ),
        bad(
            "project patch as a merge document",
            Method::PATCH,
            "/api/v2/projects/p1",
            patch(json!({"name": "X"})),
            400,
            "invalid_request",
            &["expected a JSON Patch array"],
        ),
        bad(
            "segment rule with an unknown operator",
            Method::PATCH,
            "/api/v2/segments/p1/production/s1",
            patch(json!([{"op": "add", "path": "/rules/-", "value":
                {"clauses": [{"attribute": "a", "op": "is", "values": []}]}}])),
            400,
            "invalid_request",
            &["rules[0].clauses[0].op \"is\""],
        ),
        bad(
            "version test mismatch",
            Method::PATCH,
            flag,
            patch(json!([{"op": "test", "path": "/version", "value": 99},
                         {"op": "replace", "path": "/name", "value": "N"}])),
            409,
            "optimistic_locking_error",
            &["expected version 99", "current version is 1"],
        ),
        bad(
            "_version test mismatch in a comment wrapper",
            Method::PATCH,
            flag,
            patch(
                json!({"comment": "c", "patch": [{"op": "test", "path": "/_version", "value": 0},
                         {"op": "replace", "path": "/name", "value": "N"}]}),
            ),
            409,
            "optimistic_locking_error",
            &["current version is 1"],
        ),
        bad(
            "unknown field next to patch",
            Method::PATCH,
            flag,
            patch(json!({"comment": "c", "patch": [], "extra": 1})),
            400,
            "invalid_request",
            &["unknown field `extra`"],
        ),
    ];
    run(&app, cases).await;
});

backend_test!(out_of_range_variations_and_rollouts, |app| async move {
    setup(&app).await;
    let flag = "/api/v2/flags/p1/f1";
    let patch = |ops: Value| Some(ops.to_string());
    let f1 = app.get(flag).await.expect(200);
    let (v0, v1) = (
        f1["variations"][0]["_id"].as_str().unwrap().to_string(),
        f1["variations"][1]["_id"].as_str().unwrap().to_string(),
    );
    let semantic = |instructions: Value| {
        Some(json!({"environmentKey": "production", "instructions": instructions}).to_string())
    };
    let cases = vec![
        bad(
            "defaults.onVariation out of range",
            Method::POST,
            "/api/v2/flags/p1",
            Some(
                json!({"key": "x", "name": "X", "defaults": {"onVariation": 5, "offVariation": 1}})
                    .to_string(),
            ),
            400,
            "invalid_request",
            &[
                "defaults.onVariation refers to variation 5",
                "only 2 variations",
            ],
        )
        .absent("/api/v2/flags/p1/x"),
        bad(
            "offVariation out of range",
            Method::PATCH,
            flag,
            patch(
                json!([{"op": "replace", "path": "/environments/production/offVariation", "value": 9}]),
            ),
            400,
            "invalid_request",
            &[
                "environments.production.offVariation refers to variation 9",
                "(0-1)",
            ],
        ),
        bad(
            "fallthrough variation out of range",
            Method::PATCH,
            flag,
            patch(
                json!([{"op": "replace", "path": "/environments/production/fallthrough", "value": {"variation": 7}}]),
            ),
            400,
            "invalid_request",
            &["environments.production.fallthrough refers to variation 7"],
        ),
        bad(
            "target variation out of range",
            Method::PATCH,
            flag,
            patch(
                json!([{"op": "add", "path": "/environments/test/targets/-", "value": {"values": ["u1"], "variation": 3}}]),
            ),
            400,
            "invalid_request",
            &["environments.test.targets[0].variation refers to variation 3"],
        ),
        bad(
            "rule variation out of range",
            Method::PATCH,
            flag,
            patch(
                json!([{"op": "add", "path": "/environments/production/rules/-", "value":
                {"variation": 2, "clauses": [{"attribute": "key", "op": "in", "values": ["a"]}]}}]),
            ),
            400,
            "invalid_request",
            &["environments.production.rules[0] refers to variation 2"],
        ),
        bad(
            "rollout weights not adding up",
            Method::PATCH,
            flag,
            patch(
                json!([{"op": "replace", "path": "/environments/production/fallthrough", "value":
                {"rollout": {"variations": [{"variation": 0, "weight": 50000}, {"variation": 1, "weight": 40000}]}}}]),
            ),
            400,
            "invalid_request",
            &["add up to 90000", "must add up to 100000"],
        ),
        bad(
            "semantic updateOffVariation with an unknown variationId",
            Method::PATCH,
            flag,
            semantic(json!([{"kind": "updateOffVariation", "variationId": "nope"}])),
            400,
            "invalid_request",
            &[
                "instruction 0 (updateOffVariation)",
                "variationId \"nope\" is not a variation",
            ],
        )
        .content_type(SEMANTIC),
        bad(
            "semantic rollout weights not adding up",
            Method::PATCH,
            flag,
            semantic(json!([{"kind": "updateFallthroughVariationOrRollout",
                "rolloutWeights": {v0.clone(): 60000, v1.clone(): 60000}}])),
            400,
            "invalid_request",
            &["120000", "100000"],
        )
        .content_type(SEMANTIC),
    ];
    run(&app, cases).await;
});

backend_test!(semantic_patch_errors, |app| async move {
    setup(&app).await;
    let flag = "/api/v2/flags/p1/f1";
    let cases = vec![
        bad(
            "semantic patch without its content type",
            Method::PATCH,
            flag,
            Some(
                json!({"environmentKey": "production", "instructions": [{"kind": "turnFlagOn"}]})
                    .to_string(),
            ),
            400,
            "invalid_request",
            &["Content-Type: application/json; domain-model=launchdarkly.semanticpatch"],
        ),
        bad(
            "atomicity: second instruction invalid",
            Method::PATCH,
            flag,
            Some(
                json!({"environmentKey": "production", "instructions": [
                {"kind": "turnFlagOn"},
                {"kind": "updateOffVariation", "variationId": "nope"}]})
                .to_string(),
            ),
            400,
            "invalid_request",
            &["instruction 1 (updateOffVariation)", "\"nope\""],
        )
        .content_type(SEMANTIC),
        bad(
            "unknown instruction kind",
            Method::PATCH,
            flag,
            Some(
                json!({"environmentKey": "production", "instructions": [{"kind": "flyToTheMoon"}]})
                    .to_string(),
            ),
            400,
            "invalid_request",
            &[
                "unknown semantic patch instruction kind \"flyToTheMoon\"",
                "turnFlagOn",
            ],
        )
        .content_type(SEMANTIC),
        bad(
            "instruction without kind",
            Method::PATCH,
            flag,
            Some(
                json!({"environmentKey": "production", "instructions": [{"value": 1}]}).to_string(),
            ),
            400,
            "invalid_request",
            &["missing \"kind\""],
        )
        .content_type(SEMANTIC),
        bad(
            "no instructions",
            Method::PATCH,
            flag,
            Some(json!({"environmentKey": "production", "instructions": []}).to_string()),
            400,
            "invalid_request",
            &["at least one instruction"],
        )
        .content_type(SEMANTIC),
        bad(
            "missing environmentKey",
            Method::PATCH,
            flag,
            Some(json!({"instructions": [{"kind": "turnFlagOn"}]}).to_string()),
            400,
            "invalid_request",
            &["environmentKey"],
        )
        .content_type(SEMANTIC),
        bad(
            "unknown environmentKey",
            Method::PATCH,
            flag,
            Some(
                json!({"environmentKey": "staging", "instructions": [{"kind": "turnFlagOn"}]})
                    .to_string(),
            ),
            400,
            "invalid_request",
            &["environmentKey \"staging\"", "production"],
        )
        .content_type(SEMANTIC),
        bad(
            "unknown top-level field",
            Method::PATCH,
            flag,
            Some(json!({"environmentKey": "production", "instrucitons": []}).to_string()),
            400,
            "invalid_request",
            &["unknown field `instrucitons`"],
        )
        .content_type(SEMANTIC),
        bad(
            "wrong-typed instruction parameter",
            Method::PATCH,
            flag,
            Some(json!({"instructions": [{"kind": "updateName", "value": 5}]}).to_string()),
            400,
            "invalid_request",
            &["instruction 0 (updateName)", "invalid type"],
        )
        .content_type(SEMANTIC),
        bad(
            "semantic patch on a project",
            Method::PATCH,
            "/api/v2/projects/p1",
            Some(json!({"instructions": [{"kind": "updateName", "value": "X"}]}).to_string()),
            400,
            "invalid_request",
            &["does not accept semantic patch"],
        )
        .content_type(SEMANTIC),
        bad(
            "segment semantic patch atomicity",
            Method::PATCH,
            "/api/v2/segments/p1/production/s1",
            Some(
                json!({"instructions": [
                {"kind": "addIncludedUsers", "values": ["u1"]},
                {"kind": "updateRuleDescription", "ruleId": "nope", "description": "D"}]})
                .to_string(),
            ),
            400,
            "invalid_request",
            &["instruction 1 (updateRuleDescription)", "ruleId \"nope\""],
        )
        .content_type(SEMANTIC),
        bad(
            "flag instruction on a segment",
            Method::PATCH,
            "/api/v2/segments/p1/production/s1",
            Some(json!({"instructions": [{"kind": "turnFlagOn"}]}).to_string()),
            400,
            "invalid_request",
            &[
                "unknown semantic patch instruction kind \"turnFlagOn\"",
                "addIncludedTargets",
            ],
        )
        .content_type(SEMANTIC),
    ];
    run(&app, cases).await;
});

backend_test!(transport_errors, |app| async move {
    setup(&app).await;
    let big_name = "a".repeat(1024 * 1024 + 10);
    let cases = vec![
        bad(
            "oversized body",
            Method::POST,
            "/api/v2/flags/p1",
            Some(json!({"key": "big", "name": big_name}).to_string()),
            413,
            "payload_too_large",
            &["1048576"],
        )
        .absent("/api/v2/flags/p1/big"),
        bad(
            "oversized patch",
            Method::PATCH,
            "/api/v2/flags/p1/f1",
            Some(json!([{"op": "replace", "path": "/description", "value": big_name}]).to_string()),
            413,
            "payload_too_large",
            &["1048576"],
        ),
        bad(
            "text/plain create",
            Method::POST,
            "/api/v2/flags/p1",
            Some(json!({"key": "x", "name": "X"}).to_string()),
            415,
            "unsupported_media_type",
            &["text/plain", "application/json"],
        )
        .content_type("text/plain")
        .absent("/api/v2/flags/p1/x"),
        bad(
            "text/plain patch",
            Method::PATCH,
            "/api/v2/flags/p1/f1",
            Some(json!([{"op": "replace", "path": "/name", "value": "N"}]).to_string()),
            415,
            "unsupported_media_type",
            &["application/json"],
        )
        .content_type("text/plain"),
    ];
    run(&app, cases).await;

    // Authentication: no token, an unknown token, an empty one.
    for (label, token) in [
        ("no token", None),
        (
            "unknown token",
            Some("api-00000000-0000-4000-8000-000000000bad"),
        ),
        ("empty bearer", Some("Bearer ")),
    ] {
        for (method, path, body) in [
            (Method::GET, "/api/v2/projects", None),
            (
                Method::POST,
                "/api/v2/flags/p1",
                Some(json!({"key": "x", "name": "X"}).to_string()),
            ),
            (
                Method::PATCH,
                "/api/v2/flags/p1/f1",
                Some(json!([{"op": "replace", "path": "/name", "value": "N"}]).to_string()),
            ),
        ] {
            let before = snapshot(&app).await;
            let mut req = app.raw(method.clone(), path);
            if let Some(t) = token {
                req = req.header("Authorization", t);
            }
            if let Some(b) = body {
                req = req.header("Content-Type", "application/json").body(b);
            }
            let resp = app.send(method.as_str(), path, req).await;
            assert_rejected(
                &app,
                label,
                &before,
                &resp,
                401,
                "unauthorized",
                &["access token"],
            )
            .await;
        }
    }

    // LD-API-Version must be beta or a published yyyymmdd version.
    for version in ["yesterday", "2024-04-15", "20000101"] {
        let before = snapshot(&app).await;
        let req = app
            .raw(Method::POST, "/api/v2/flags/p1")
            .header("Authorization", &app.token)
            .header("LD-API-Version", version)
            .header("Content-Type", "application/json")
            .body(json!({"key": "x", "name": "X"}).to_string());
        let resp = app.send("POST", "/api/v2/flags/p1", req).await;
        assert_rejected(
            &app,
            version,
            &before,
            &resp,
            400,
            "invalid_request",
            &["LD-API-Version", version, "20240415"],
        )
        .await;
    }
    for version in ["beta", "20240415", "20160426"] {
        let req = app
            .raw(Method::GET, "/api/v2/projects/p1")
            .header("Authorization", &app.token)
            .header("LD-API-Version", version);
        app.send("GET", "/api/v2/projects/p1", req)
            .await
            .expect(200);
    }
});

backend_test!(not_found_and_bad_queries, |app| async move {
    setup(&app).await;
    let mut cases = Vec::new();
    for (path, needles) in [
        ("/api/v2/projects/nope", &["project \"nope\""][..]),
        ("/api/v2/flags/nope", &["project \"nope\""]),
        ("/api/v2/flags/p1/nope", &["flag \"nope\"", "\"p1\""]),
        (
            "/api/v2/projects/p1/environments/nope",
            &["environment \"nope\""],
        ),
        ("/api/v2/projects/nope/environments", &["project \"nope\""]),
        ("/api/v2/segments/p1/production/nope", &["segment \"nope\""]),
        ("/api/v2/segments/p1/nope", &["environment \"nope\""]),
        ("/api/v2/auditlog/nope", &["audit log entry \"nope\""]),
        ("/api/v2/no-such-route", &["no such route"]),
    ] {
        cases.push(bad(
            path,
            Method::GET,
            path,
            None,
            404,
            "not_found",
            needles,
        ));
    }
    for (label, method, path, body, needles) in [
        (
            "patch unknown flag",
            Method::PATCH,
            "/api/v2/flags/p1/nope",
            Some(json!([{"op": "replace", "path": "/name", "value": "N"}])),
            &["flag \"nope\""][..],
        ),
        (
            "create flag in unknown project",
            Method::POST,
            "/api/v2/flags/nope",
            Some(json!({"key": "x", "name": "X"})),
            &["project \"nope\""],
        ),
        (
            "create segment in unknown environment",
            Method::POST,
            "/api/v2/segments/p1/nope",
            Some(json!({"key": "x", "name": "X"})),
            &["environment \"nope\""],
        ),
        (
            "create environment in unknown project",
            Method::POST,
            "/api/v2/projects/nope/environments",
            Some(json!({"key": "x", "name": "X", "color": "417505"})),
            &["project \"nope\""],
        ),
        (
            "clone from unknown flag",
            Method::POST,
            "/api/v2/flags/p1?clone=nope",
            Some(json!({"key": "x", "name": "X"})),
            &["flag \"nope\""],
        ),
        (
            "delete unknown flag",
            Method::DELETE,
            "/api/v2/flags/p1/nope",
            None,
            &["flag \"nope\""],
        ),
        (
            "delete unknown segment",
            Method::DELETE,
            "/api/v2/segments/p1/production/nope",
            None,
            &["segment \"nope\""],
        ),
        (
            "delete unknown environment",
            Method::DELETE,
            "/api/v2/projects/p1/environments/nope",
            None,
            &["environment \"nope\""],
        ),
        (
            "delete unknown project",
            Method::DELETE,
            "/api/v2/projects/nope",
            None,
            &["project \"nope\""],
        ),
        (
            "reset key of unknown environment",
            Method::POST,
            "/api/v2/projects/p1/environments/nope/apiKey",
            None,
            &["environment \"nope\""],
        ),
    ] {
        cases.push(bad(
            label,
            method,
            path,
            body.map(|b| b.to_string()),
            404,
            "not_found",
            needles,
        ));
    }
    for (path, needles) in [
        (
            "/api/v2/projects?limit=0",
            &["limit 0 is out of range", "1 to 100"][..],
        ),
        (
            "/api/v2/projects?limit=1000",
            &["limit 1000 is out of range"],
        ),
        (
            "/api/v2/projects?offset=-1",
            &["offset -1 must not be negative"],
        ),
        ("/api/v2/projects?limit=abc", &["limit"]),
        (
            "/api/v2/projects?filter=colour:red",
            &["unsupported filter field \"colour\"", "query"],
        ),
        ("/api/v2/projects?filter=query", &["field:value"]),
        (
            "/api/v2/projects?sort=colour",
            &["unsupported sort \"colour\"", "name"],
        ),
        ("/api/v2/flags/p1?limit=0", &["limit 0 is out of range"]),
        ("/api/v2/flags/p1?offset=-1", &["offset -1"]),
        (
            "/api/v2/flags/p1?filter=colour:red",
            &["unsupported filter field \"colour\""],
        ),
        (
            "/api/v2/flags/p1?sort=colour",
            &["unsupported sort \"colour\""],
        ),
        (
            "/api/v2/flags/p1?filter=state:gone",
            &["state:gone", "live"],
        ),
        ("/api/v2/flags/p1?env=staging", &["env \"staging\""]),
        ("/api/v2/segments/p1/production?limit=1000", &["limit 1000"]),
        (
            "/api/v2/segments/p1/production?filter=colour:red",
            &["unsupported filter field \"colour\""],
        ),
        (
            "/api/v2/projects/p1/environments?sort=colour",
            &["unsupported sort \"colour\""],
        ),
        ("/api/v2/projects/p1/environments?offset=-1", &["offset -1"]),
        (
            "/api/v2/auditlog?limit=0",
            &["limit 0 is out of range", "1 to 20"],
        ),
        ("/api/v2/auditlog?limit=21", &["limit 21 is out of range"]),
        ("/api/v2/auditlog?spec=proj", &["spec", "type/name"]),
    ] {
        cases.push(bad(
            path,
            Method::GET,
            path,
            None,
            400,
            "invalid_request",
            needles,
        ));
    }
    run(&app, cases).await;
});

backend_test!(environment_rules, |app| async move {
    setup(&app).await;
    app.post(
        "/api/v2/projects",
        json!({"key": "solo", "name": "Solo", "environments": [{"key": "only", "name": "Only", "color": "417505"}]}),
    )
    .await
    .expect(201);
    let cases = vec![
        bad(
            "delete the last environment",
            Method::DELETE,
            "/api/v2/projects/solo/environments/only",
            None,
            400,
            "invalid_request",
            &["last environment", "at least one environment"],
        ),
        bad(
            "SDK key reset with an expiry in the past",
            Method::POST,
            "/api/v2/projects/p1/environments/production/apiKey?expiry=1000",
            None,
            400,
            "invalid_request",
            &["expiry 1000 is in the past", "omit it"],
        ),
        bad(
            "SDK key reset with a non-numeric expiry",
            Method::POST,
            "/api/v2/projects/p1/environments/production/apiKey?expiry=tomorrow",
            None,
            400,
            "invalid_request",
            &["expiry"],
        ),
        bad(
            "project with no environments",
            Method::POST,
            "/api/v2/projects",
            Some(json!({"key": "empty", "name": "Empty", "environments": []}).to_string()),
            400,
            "invalid_request",
            &["at least one environment"],
        )
        .absent("/api/v2/projects/empty"),
        bad(
            "environment cloned from an unknown source",
            Method::POST,
            "/api/v2/projects/p1/environments",
            Some(
                json!({"key": "x", "name": "X", "color": "417505", "source": {"key": "nope"}})
                    .to_string(),
            ),
            404,
            "not_found",
            &["environment \"nope\""],
        )
        .absent("/api/v2/projects/p1/environments/x"),
    ];
    run(&app, cases).await;
    app.get("/api/v2/projects/solo/environments/only")
        .await
        .expect(200);
});
