use flagstaff_testkit::backend_test;
use serde_json::json;

backend_test!(project_flag_patch_audit, |app| async move {
    let project = app
        .post("/api/v2/projects", json!({"key": "p1", "name": "P1"}))
        .await
        .expect(201);
    assert_eq!(project["environments"].as_array().unwrap().len(), 2);
    app.post("/api/v2/flags/p1", json!({"key": "f1", "name": "F1"}))
        .await
        .expect(201);
    let flag = app
        .semantic_patch(
            "/api/v2/flags/p1/f1",
            json!({"environmentKey": "production", "instructions": [{"kind": "turnFlagOn"}]}),
        )
        .await
        .expect(200);
    assert_eq!(flag["environments"]["production"]["on"], true);
    assert_eq!(flag["_version"], 2);
    let log = app.get("/api/v2/auditlog").await.expect(200);
    assert_eq!(log["items"][0]["accesses"][0]["action"], "updateOn");
});
