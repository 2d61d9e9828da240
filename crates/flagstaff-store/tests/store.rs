//! The Store contract, on SQLite and (when FLAGSTAFF_TEST_DATABASE_URL is set) Postgres:
//! atomic change sets, version guards, unique aliases, scope deletes, audit queries, outbox.

use std::sync::Arc;

use flagstaff_store::{
    AuditQuery, AuditRow, ChangeSet, EntityKind, EntityRef, EntityWrite, OutboxRow, PgStore,
    SqliteStore, Store, StoreError,
};

async fn stores() -> Vec<(Arc<dyn Store>, Option<(String, String)>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite: Arc<dyn Store> = Arc::new(
        SqliteStore::connect(&format!("sqlite://{}", dir.path().join("s.db").display()))
            .await
            .unwrap(),
    );
    let mut out = vec![(sqlite, None, dir)];
    if let Ok(url) = std::env::var("FLAGSTAFF_TEST_DATABASE_URL") {
        let schema = format!("store_{}", uuid::Uuid::new_v4().simple());
        let pg: Arc<dyn Store> = Arc::new(PgStore::connect(&url, Some(&schema)).await.unwrap());
        out.push((pg, Some((url, schema)), tempfile::tempdir().unwrap()));
    }
    out
}

async fn cleanup(pg: Option<(String, String)>) {
    if let Some((url, schema)) = pg {
        PgStore::drop_schema(&url, &schema).await.unwrap();
    }
}

fn flag(key: &str) -> EntityRef {
    EntityRef::new(EntityKind::Flag, "proj", key)
}

fn audit(id: &str, date: i64, text: &str) -> AuditRow {
    AuditRow {
        id: id.into(),
        date,
        kind: "flag".into(),
        search: text.into(),
        doc: format!("{{\"id\":\"{id}\"}}"),
    }
}

fn change(writes: Vec<EntityWrite>, audit_row: AuditRow) -> ChangeSet {
    ChangeSet {
        writes,
        audit: vec![audit_row],
        outbox: vec![OutboxRow {
            topic: "flag".into(),
            payload: "{}".into(),
        }],
        deliveries: Vec::new(),
        created_at: 1,
    }
}

#[tokio::test]
async fn change_sets_are_atomic_and_version_guarded() {
    for (store, pg, _dir) in stores().await {
        let insert = |key: &str, alias: &str| EntityWrite::Insert {
            target: flag(key),
            version: 1,
            doc: "{}".into(),
            aliases: vec![alias.into()],
        };
        let seqs = store
            .commit(change(
                vec![insert("a", "alias-a")],
                audit("e1", 10, "created a"),
            ))
            .await
            .unwrap();
        assert_eq!(seqs.len(), 1);
        assert_eq!(
            store.resolve_alias("alias-a").await.unwrap(),
            Some(flag("a"))
        );

        // A duplicate alias in the second write rolls back the first write, the audit row and the outbox row.
        let err = store
            .commit(change(
                vec![insert("b", "alias-b"), insert("c", "alias-a")],
                audit("e2", 20, "created b and c"),
            ))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
        assert!(store.get(&flag("b")).await.unwrap().is_none());
        assert!(store.audit_get("e2").await.unwrap().is_none());
        assert_eq!(store.outbox_after(0, 100).await.unwrap().len(), 1);

        // Updates need the version that was read.
        let update = |expected: i64| EntityWrite::Update {
            target: flag("a"),
            expected_version: expected,
            version: expected + 1,
            doc: "{\"v\":2}".into(),
            aliases: None,
        };
        store
            .commit(change(vec![update(1)], audit("e3", 30, "updated a")))
            .await
            .unwrap();
        let stale = store
            .commit(change(vec![update(1)], audit("e4", 40, "stale")))
            .await
            .unwrap_err();
        assert!(matches!(stale, StoreError::Conflict(_)), "{stale:?}");
        assert_eq!(store.get(&flag("a")).await.unwrap().unwrap().version, 2);

        // Scope deletes take everything inside a project, aliases included, and nothing outside.
        let seg = EntityRef::new(EntityKind::Segment, "proj/production", "s");
        let other = EntityRef::new(EntityKind::Flag, "proj2", "x");
        store
            .commit(change(
                vec![
                    EntityWrite::Insert {
                        target: seg.clone(),
                        version: 1,
                        doc: "{}".into(),
                        aliases: vec![],
                    },
                    EntityWrite::Insert {
                        target: other.clone(),
                        version: 1,
                        doc: "{}".into(),
                        aliases: vec!["alias-x".into()],
                    },
                ],
                audit("e5", 50, "more"),
            ))
            .await
            .unwrap();
        // One kind across every scope, ordered by scope then key; other kinds left out.
        let flags: Vec<(String, String)> = store
            .list_kind(EntityKind::Flag)
            .await
            .unwrap()
            .into_iter()
            .map(|(scope, e)| (scope, e.key))
            .collect();
        assert_eq!(
            flags,
            vec![("proj".into(), "a".into()), ("proj2".into(), "x".into())]
        );
        let segments = store.list_kind(EntityKind::Segment).await.unwrap();
        assert_eq!(segments.len(), 1);
        assert_eq!(segments[0].0, "proj/production");
        store
            .commit(change(
                vec![EntityWrite::DeleteScope {
                    scope: "proj".into(),
                }],
                audit("e6", 60, "deleted proj"),
            ))
            .await
            .unwrap();
        assert!(store.get(&flag("a")).await.unwrap().is_none());
        assert!(store.get(&seg).await.unwrap().is_none());
        assert!(store.resolve_alias("alias-a").await.unwrap().is_none());
        assert!(store.get(&other).await.unwrap().is_some());
        assert_eq!(store.resolve_alias("alias-x").await.unwrap(), Some(other));

        // Audit queries: newest first, before/after, substring search.
        let ids = |docs: Vec<String>| docs.iter().map(|d| d[7..9].to_string()).collect::<Vec<_>>();
        let all = store
            .audit_list(&AuditQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(ids(all), vec!["e6", "e5", "e3", "e1"]);
        let window = store
            .audit_list(&AuditQuery {
                before: Some(60),
                after: Some(10),
                limit: 10,
                q: None,
            })
            .await
            .unwrap();
        assert_eq!(ids(window), vec!["e5", "e3"]);
        let search = store
            .audit_list(&AuditQuery {
                q: Some("updated".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(ids(search), vec!["e3"]);
        let outbox = store.outbox_after(0, 100).await.unwrap();
        assert_eq!(outbox.len(), 4);
        assert!(outbox.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(
            store.outbox_after(outbox[1].seq, 100).await.unwrap().len(),
            2
        );
        cleanup(pg).await;
    }
}

fn delivery(id: &str, destination: &str, audit_id: &str) -> flagstaff_store::NewDelivery {
    flagstaff_store::NewDelivery {
        id: id.into(),
        destination: destination.into(),
        audit_id: audit_id.into(),
        lease_until: 0,
    }
}

#[tokio::test]
async fn deliveries_commit_with_the_change_and_are_leased_once() {
    use flagstaff_store::{DeliveryNext, DeliveryOutcome};
    for (store, pg, _dir) in stores().await {
        // A change whose entity write fails writes no deliveries either.
        store
            .commit(ChangeSet {
                writes: vec![EntityWrite::Insert {
                    target: flag("f"),
                    version: 1,
                    doc: "{}".into(),
                    aliases: vec![],
                }],
                ..Default::default()
            })
            .await
            .unwrap();
        let failed = store
            .commit(ChangeSet {
                writes: vec![EntityWrite::Insert {
                    target: flag("f"),
                    version: 1,
                    doc: "{}".into(),
                    aliases: vec![],
                }],
                audit: vec![audit("a0", 5, "x")],
                deliveries: vec![delivery("d0", "webhook/w1", "a0")],
                created_at: 5,
                ..Default::default()
            })
            .await;
        assert!(failed.is_err());
        assert!(store.delivery_get("d0").await.unwrap().is_none());

        store
            .commit(ChangeSet {
                audit: vec![audit("a1", 10, "x")],
                deliveries: vec![
                    delivery("d1", "webhook/w1", "a1"),
                    delivery("d2", "webhook/w2", "a1"),
                ],
                created_at: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        // Not due before its creation time; due at it.
        assert!(
            store
                .deliveries_claim(9, 100, 10, &[])
                .await
                .unwrap()
                .is_empty()
        );
        let claimed = store.deliveries_claim(10, 100, 10, &[]).await.unwrap();
        assert_eq!(
            claimed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            vec!["d1", "d2"]
        );
        // Leased: nobody else gets them until the lease ends.
        assert!(
            store
                .deliveries_claim(50, 150, 10, &[])
                .await
                .unwrap()
                .is_empty()
        );
        // An expired lease makes them claimable again (a worker died), but excluded
        // destinations are skipped.
        let again = store
            .deliveries_claim(101, 200, 10, &["webhook/w2".to_string()])
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].id, "d1");

        store
            .deliveries_record(&[
                DeliveryOutcome {
                    id: "d1".into(),
                    attempt: 1,
                    at: 120,
                    status: Some(500),
                    latency_ms: 3,
                    error: Some("HTTP 500".into()),
                    response_body: None,
                    next: DeliveryNext::RetryAt(1000),
                },
                DeliveryOutcome {
                    id: "d2".into(),
                    attempt: 1,
                    at: 121,
                    status: Some(200),
                    latency_ms: 2,
                    error: None,
                    response_body: None,
                    next: DeliveryNext::Delivered,
                },
            ])
            .await
            .unwrap();
        let d1 = store.delivery_get("d1").await.unwrap().unwrap();
        assert_eq!(
            (d1.state.as_str(), d1.attempts, d1.next_attempt_at),
            ("pending", 1, 1000)
        );
        assert_eq!(d1.last_status, Some(500));
        let d2 = store.delivery_get("d2").await.unwrap().unwrap();
        assert_eq!(d2.state, "delivered");
        assert!(
            store
                .deliveries_claim(999, 2000, 10, &[])
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .deliveries_claim(1000, 2000, 10, &[])
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(store.deliveries_pending("webhook/w1").await.unwrap(), 1);

        assert!(store.delivery_requeue("d2", 3000).await.unwrap());
        assert!(!store.delivery_requeue("nope", 3000).await.unwrap());
        let listed = store
            .deliveries_list("webhook/w2", i64::MAX, 10)
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].state, "pending");
        let attempts = store.delivery_attempts("d1").await.unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].error.as_deref(), Some("HTTP 500"));
        cleanup(pg).await;
    }
}

#[tokio::test]
async fn deliveries_leased_at_commit_wait_for_their_lease_and_batches_record_in_one_go() {
    use flagstaff_store::{DeliveryNext, DeliveryOutcome};
    for (store, pg, _dir) in stores().await {
        // More rows than one statement takes, to cover the chunking.
        let count = 1_203;
        let deliveries: Vec<_> = (0..count)
            .map(|i| flagstaff_store::NewDelivery {
                lease_until: if i % 2 == 0 { 500 } else { 0 },
                ..delivery(&format!("d{i:04}"), "webhook/w", "a1")
            })
            .collect();
        store
            .commit(ChangeSet {
                audit: vec![audit("a1", 10, "x")],
                deliveries,
                created_at: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        // The committing node holds the even rows until their lease ends; the odd ones are
        // due for anyone at once. Once every lease has ended, all are due again.
        let due = store.deliveries_claim(10, 100, 2_000, &[]).await.unwrap();
        assert_eq!(due.len(), count / 2);
        assert!(
            due.iter()
                .all(|d| d.id[1..].parse::<usize>().unwrap() % 2 == 1)
        );
        assert!(
            store
                .deliveries_claim(99, 600, 2_000, &[])
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .deliveries_claim(500, 600, 2_000, &[])
                .await
                .unwrap()
                .len(),
            count
        );

        let outcomes: Vec<DeliveryOutcome> = (0..count)
            .map(|i| DeliveryOutcome {
                id: format!("d{i:04}"),
                attempt: 1,
                at: 700 + i as i64,
                status: if i % 3 == 0 { None } else { Some(200) },
                latency_ms: 1,
                error: (i % 3 == 0).then(|| format!("refused {i}")),
                response_body: None,
                next: if i % 3 == 0 {
                    DeliveryNext::RetryAt(5_000 + i as i64)
                } else {
                    DeliveryNext::Delivered
                },
            })
            .collect();
        store.deliveries_record(&outcomes).await.unwrap();
        let retried = store.delivery_get("d1200").await.unwrap().unwrap();
        assert_eq!(
            (
                retried.state.as_str(),
                retried.attempts,
                retried.next_attempt_at,
                retried.updated_at,
                retried.last_status,
                retried.last_error.as_deref()
            ),
            ("pending", 1, 6_200, 1_900, None, Some("refused 1200"))
        );
        let delivered = store.delivery_get("d0601").await.unwrap().unwrap();
        assert_eq!(
            (delivered.state.as_str(), delivered.last_status),
            ("delivered", Some(200))
        );
        let attempts = store.delivery_attempts("d0601").await.unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!((attempts[0].at, attempts[0].status), (1_301, Some(200)));
        assert_eq!(
            store.deliveries_pending("webhook/w").await.unwrap(),
            (count as i64 + 2) / 3
        );
        // The leases ended with the record: the retries are due at their own time.
        assert!(
            store
                .deliveries_claim(4_999, 9_000, 2_000, &[])
                .await
                .unwrap()
                .is_empty()
        );
        cleanup(pg).await;
    }
}

async fn pushed_version(store: &dyn Store, config_id: &str) -> i64 {
    let state = store.store_sync_get(config_id).await.unwrap();
    state.expect("a sync row").pushed_version
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_sync_leases_go_to_one_owner_at_a_time() {
    for (store, pg, _dir) in stores().await {
        let id = "config-1";
        assert!(store.store_sync_lease(id, "a", 1_000, 2_000).await.unwrap());
        assert!(!store.store_sync_lease(id, "b", 1_500, 2_500).await.unwrap());
        // The holder renews; the other node is still refused until the renewed lease lapses.
        assert!(store.store_sync_lease(id, "a", 1_900, 3_000).await.unwrap());
        assert!(!store.store_sync_renew(id, "b", 3_000).await.unwrap());
        assert!(store.store_sync_renew(id, "a", 3_000).await.unwrap());
        assert!(!store.store_sync_lease(id, "b", 2_500, 3_500).await.unwrap());
        // Recording sync state leaves the lease alone.
        let state = flagstaff_store::StoreSyncState {
            config_id: id.into(),
            pushed_version: 7,
            failures: 0,
            ..Default::default()
        };
        store.store_sync_put(&state).await.unwrap();
        assert!(!store.store_sync_lease(id, "b", 2_600, 3_600).await.unwrap());
        assert_eq!(pushed_version(store.as_ref(), id).await, 7);
        // Lapsed: the other node takes it, and the old holder is refused.
        assert!(store.store_sync_lease(id, "b", 3_001, 4_000).await.unwrap());
        assert!(!store.store_sync_lease(id, "a", 3_100, 4_100).await.unwrap());
        // Taking a lease keeps where the sync stands.
        assert_eq!(pushed_version(store.as_ref(), id).await, 7);
        // Released at shutdown: free at once, whatever its expiry.
        assert_eq!(store.store_sync_release("b").await.unwrap(), 1);
        assert_eq!(store.store_sync_release("b").await.unwrap(), 0);
        assert!(store.store_sync_lease(id, "a", 3_200, 4_200).await.unwrap());
        // A deleted configuration's lease cannot be renewed (renewing creates no row).
        store.store_sync_delete(id).await.unwrap();
        assert!(!store.store_sync_renew(id, "a", 5_000).await.unwrap());
        assert!(store.store_sync_get(id).await.unwrap().is_none());

        // Many nodes asking at once for a fresh configuration: exactly one gets it.
        let mut attempts = tokio::task::JoinSet::new();
        for n in 0..16 {
            let store = store.clone();
            attempts.spawn(async move {
                store
                    .store_sync_lease("config-2", &format!("node-{n}"), 10, 20)
                    .await
                    .unwrap()
            });
        }
        let granted = attempts.join_all().await;
        assert_eq!(granted.iter().filter(|g| **g).count(), 1, "{granted:?}");
        cleanup(pg).await;
    }
}
