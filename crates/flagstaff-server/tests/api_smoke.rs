//! The write path's promise: each successful change appends exactly one audit entry and its
//! outbox rows; a failed request appends neither.

use flagstaff_testkit::backend_test;
use serde_json::json;

backend_test!(
    one_audit_entry_and_outbox_row_per_change,
    |app| async move {
        let (audit0, outbox0) = (app.audit_count().await, app.outbox_count().await);
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
        assert_eq!(app.audit_count().await, audit0 + 3);
        assert_eq!(app.outbox_count().await, outbox0 + 3);

        let outbox = app.store.outbox_after(0, 1000).await.unwrap();
        let last: serde_json::Value =
            serde_json::from_str(&outbox.last().unwrap().payload).unwrap();
        assert_eq!(last["flag"], "f1");
        assert_eq!(last["version"], 2);
        assert_eq!(last["environments"], json!(["production"]));
        let log = app.get("/api/v2/auditlog").await.expect(200);
        assert_eq!(log["items"][0]["accesses"][0]["action"], "updateOn");
        assert_eq!(
            last["auditId"], log["items"][0]["_id"],
            "the outbox row points at its audit entry"
        );

        let bad = app
        .semantic_patch("/api/v2/flags/p1/f1", json!({"environmentKey": "production", "instructions": [{"kind": "turnFlagOff"}, {"kind": "nope"}]}))
        .await;
        assert_eq!(bad.status, 400);
        assert_eq!(app.audit_count().await, audit0 + 3);
        assert_eq!(app.outbox_count().await, outbox0 + 3);
    }
);
