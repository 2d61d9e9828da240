//! The synced-segment membership contract, on SQLite and (when FLAGSTAFF_TEST_DATABASE_URL is
//! set) Postgres: batches written with a change set, tombstones, a database-wide rising `seq`
//! for incremental readers, keyset pages, and clean-up with the segment or environment.

use std::sync::Arc;

use flagstaff_store::{
    ChangeSet, EntityKind, EntityRef, EntityWrite, PgStore, SegmentMemberChange,
    SegmentMembersWrite, SqliteStore, Store,
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
        let schema = format!("members_{}", uuid::Uuid::new_v4().simple());
        let pg: Arc<dyn Store> = Arc::new(PgStore::connect(&url, Some(&schema)).await.unwrap());
        out.push((pg, Some((url, schema)), tempfile::tempdir().unwrap()));
    }
    out
}

fn upsert(env: &str, segment: &str, members: &[(&str, bool)]) -> EntityWrite {
    EntityWrite::SegmentMembers(SegmentMembersWrite::Upsert {
        environment_id: env.into(),
        segment_key: segment.into(),
        members: members.iter().map(|(k, b)| (k.to_string(), *b)).collect(),
    })
}

async fn commit(store: &dyn Store, writes: Vec<EntityWrite>) -> Result<(), String> {
    store
        .commit(ChangeSet {
            writes,
            created_at: 1,
            ..ChangeSet::default()
        })
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn all_members(store: &dyn Store, env: &str, segment: &str, page: i64) -> Vec<String> {
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let rows = store
            .segment_members_page(env, segment, &after, page)
            .await
            .unwrap();
        let Some(last) = rows.last().cloned() else {
            return out;
        };
        assert!(rows.len() as i64 <= page);
        out.extend(rows);
        after = last;
    }
}

#[tokio::test]
async fn membership_rows_follow_batches_with_a_rising_seq() {
    for (store, pg, _dir) in stores().await {
        let store = store.as_ref();
        commit(
            store,
            vec![upsert(
                "env1",
                "s",
                &[("a", true), ("b", true), ("c", true)],
            )],
        )
        .await
        .unwrap();
        commit(store, vec![upsert("env2", "s", &[("a", true)])])
            .await
            .unwrap();
        commit(
            store,
            vec![upsert("env1", "s", &[("b", false), ("d", true)])],
        )
        .await
        .unwrap();

        // Current members only, in key order, page by page.
        assert_eq!(all_members(store, "env1", "s", 2).await, ["a", "c", "d"]);
        assert_eq!(all_members(store, "env2", "s", 10).await, ["a"]);
        let states = store
            .segment_member_states("env1", "s", &["b".into(), "c".into(), "zz".into()])
            .await
            .unwrap();
        let mut states = states;
        states.sort();
        assert_eq!(states, vec![("b".into(), false), ("c".into(), true)]);

        // Every insert and update got a new, larger seq; the removal is a tombstone.
        let changes = store.segment_member_changes("env1", 0, 100).await.unwrap();
        let keys: Vec<(&str, bool)> = changes
            .iter()
            .map(|c| (c.context_key.as_str(), c.included))
            .collect();
        assert_eq!(keys, [("a", true), ("c", true), ("b", false), ("d", true)]);
        assert!(changes.windows(2).all(|w| w[0].seq < w[1].seq));
        let env2 = store.segment_member_changes("env2", 0, 100).await.unwrap();
        assert!(
            env2[0].seq > changes[1].seq && env2[0].seq < changes[2].seq,
            "seq is database-wide: {env2:?} {changes:?}"
        );
        // A cursor resumes after what it has read.
        let rest = store
            .segment_member_changes("env1", changes[1].seq, 1)
            .await
            .unwrap();
        assert_eq!(
            rest,
            vec![SegmentMemberChange {
                segment_key: "s".into(),
                context_key: "b".into(),
                included: false,
                seq: changes[2].seq,
            }]
        );

        // Flagstaff's evaluation question: which segments include these keys?
        commit(store, vec![upsert("env1", "t", &[("a", true)])])
            .await
            .unwrap();
        let mut including = store
            .segments_including("env1", &["a".into(), "b".into()])
            .await
            .unwrap();
        including.sort();
        assert_eq!(
            including,
            vec![("a".into(), "s".into()), ("a".into(), "t".into())]
        );

        // A failed change set writes no members.
        let missing = EntityRef::new(EntityKind::Segment, "p/e", "nope");
        let failed = commit(
            store,
            vec![
                upsert("env1", "s", &[("x", true)]),
                EntityWrite::Delete {
                    target: missing,
                    expected_version: 1,
                },
            ],
        )
        .await;
        assert!(failed.is_err());
        assert_eq!(all_members(store, "env1", "s", 10).await, ["a", "c", "d"]);

        // Deleting a segment or an environment forgets its rows.
        commit(
            store,
            vec![EntityWrite::SegmentMembers(
                SegmentMembersWrite::DeleteSegment {
                    environment_id: "env1".into(),
                    segment_key: "s".into(),
                },
            )],
        )
        .await
        .unwrap();
        assert!(all_members(store, "env1", "s", 10).await.is_empty());
        assert_eq!(all_members(store, "env1", "t", 10).await, ["a"]);
        commit(
            store,
            vec![EntityWrite::SegmentMembers(
                SegmentMembersWrite::DeleteEnvironment {
                    environment_id: "env1".into(),
                },
            )],
        )
        .await
        .unwrap();
        assert!(
            store
                .segment_member_changes("env1", 0, 100)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(all_members(store, "env2", "s", 10).await, ["a"]);

        // Batches larger than one statement's rows.
        let many: Vec<(String, bool)> = (0..2500).map(|i| (format!("m{i:05}"), true)).collect();
        store
            .commit(ChangeSet {
                writes: vec![EntityWrite::SegmentMembers(SegmentMembersWrite::Upsert {
                    environment_id: "env3".into(),
                    segment_key: "big".into(),
                    members: many.clone(),
                })],
                created_at: 1,
                ..ChangeSet::default()
            })
            .await
            .unwrap();
        let listed = all_members(store, "env3", "big", 1000).await;
        assert_eq!(listed.len(), 2500);
        assert_eq!(listed[0], "m00000");
        let states = store
            .segment_member_states(
                "env3",
                "big",
                &many.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            )
            .await
            .unwrap();
        assert_eq!(states.len(), 2500);

        if let Some((url, schema)) = pg {
            PgStore::drop_schema(&url, &schema).await.unwrap();
        }
    }
}
