//! Projections are pure folds of the log: drop them, replay, get the same
//! bytes, also after voiding and StatementRefs that arrive before their target.

use lrs_core::envelope::seal;
use lrs_core::events::OriginV1;
use lrs_core::facts::extract;
use lrs_store::vault::VaultKeys;
use lrs_store::{MasterKey, PreparedStatement, Scope, StatementQuery, Store, StoreConfig};
use serde_json::{json, Value};
use uuid::Uuid;

fn prepare(store: &Store, id: Uuid, statement: Value) -> PreparedStatement {
    let sealed = seal(&statement, &[], &mut VaultKeys(store.vault())).unwrap();
    let facts = extract(&sealed.skeleton, &sealed.tokens, None);
    let context = lrs_core::facts::extract_context(&sealed.skeleton);
    let names = lrs_core::facts::extract_names(&sealed.skeleton);
    let mut comparison_digest = [0u8; 32];
    comparison_digest[..16].copy_from_slice(id.as_bytes());
    PreparedStatement {
        statement_id: id,
        comparison_digest,
        facts,
        sealed: sealed.sealed,
        // Two libraries, by the id's first byte.
        origin: OriginV1 {
            app: Some("app".into()),
            library: Some(library_of(&id).into()),
        },
        context,
        names,
    }
}

fn library_of(id: &Uuid) -> &'static str {
    if id.as_bytes()[0].is_multiple_of(2) {
        "NL-0000000001"
    } else {
        "NL-0000000002"
    }
}

fn learner(n: usize, verb: &str, object: Value) -> Value {
    json!({
        "actor": {"mbox": format!("mailto:learner{n}@example.nl")},
        "verb": {"id": format!("http://adlnet.gov/expapi/verbs/{verb}")},
        "object": object,
        "context": {"contextActivities": {"parent": [{"id": format!("https://c.example/course{}", n % 3)}]}}
    })
}

fn reopen_when_released(dir: &std::path::Path) -> std::sync::Arc<Store> {
    for _ in 0..100 {
        if let Ok(store) = Store::open(StoreConfig::new(dir, MasterKey([3; 32]))) {
            return store;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the data directory stayed locked");
}

#[tokio::test]
async fn dropping_and_replaying_every_projection_gives_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path(), MasterKey([3; 32]))).unwrap();
    let ids: Vec<Uuid> = (0..40).map(|_| Uuid::new_v4()).collect();
    // A reference and a voiding that arrive before their targets.
    let early_ref = prepare(
        &store,
        Uuid::new_v4(),
        learner(
            99,
            "commented",
            json!({"objectType": "StatementRef", "id": ids[30]}),
        ),
    );
    let early_void = prepare(
        &store,
        Uuid::new_v4(),
        learner(
            98,
            "voided",
            json!({"objectType": "StatementRef", "id": ids[31]}),
        ),
    );
    store
        .append_statements("t1".into(), "k".into(), vec![early_ref, early_void])
        .await
        .unwrap();
    for (i, id) in ids.iter().enumerate() {
        let mut statement = learner(
            i,
            if i % 2 == 0 { "completed" } else { "attempted" },
            json!({"id": format!("https://c.example/module{}", i % 5)}),
        );
        // Modules of two courses (the progress read model), and after the
        // tenant's own course model (below) a declared course.
        statement["context"] = json!({"contextActivities": {"grouping": [{
            "id": format!("https://c.example/course{}", i % 2),
            "definition": {"type": "https://w3id.org/xapi/cmi5/activitytype/course"}
        }]}});
        if i == 20 {
            let model = lrs_core::events::CourseModelDefinedV1 {
                tenant: "t1".into(),
                model: r#"{"courses":[{"id":"https://c.example/declared","modules":[{"id":"https://c.example/module1"}]}]}"#.into(),
                defined_micros: 1,
                by: "test".into(),
            };
            store
                .append_event(lrs_core::Event::CourseModelDefinedV1(model))
                .await
                .unwrap();
            let assigned = lrs_core::events::ModulesAssignedV1 {
                tenant: "t1".into(),
                library: Some("NL-0000000001".into()),
                learners: vec![lrs_core::token::Token([1; 16])],
                course: "https://c.example/course0".into(),
                modules: vec!["https://c.example/module0".into()],
                ready: true,
                assigned_micros: 2,
                by: "test".into(),
            };
            store
                .append_event(lrs_core::Event::ModulesAssignedV1(assigned))
                .await
                .unwrap();
        }
        let tenant = if i % 4 == 0 { "t2" } else { "t1" };
        store
            .append_statements(
                tenant.into(),
                "k".into(),
                vec![prepare(&store, *id, statement)],
            )
            .await
            .unwrap();
    }
    let void_later = prepare(
        &store,
        Uuid::new_v4(),
        learner(
            97,
            "voided",
            json!({"objectType": "StatementRef", "id": ids[5]}),
        ),
    );
    store
        .append_statements("t1".into(), "k".into(), vec![void_later])
        .await
        .unwrap();
    // Privacy: learner 3 erased (progress, documents and the privacy read
    // model drop them; the counters stay), a retention period set.
    let erased = store
        .vault()
        .token_of(&xapi::agent::ifi_of(&json!({"mbox": "mailto:learner3@example.nl"})).unwrap())
        .unwrap();
    store
        .append_event(lrs_core::Event::PersonErasedV1(
            lrs_core::events::PersonErasedV1 {
                token: erased,
                time_micros: 3,
                reason: lrs_core::events::ErasureReasonV1::Request {
                    request_id: "test".into(),
                },
                who: "test".into(),
            },
        ))
        .await
        .unwrap();
    store.vault().destroy(&erased).unwrap();
    store
        .append_event(lrs_core::Event::RetentionPolicySetV1(
            lrs_core::events::RetentionPolicySetV1 {
                tenant: "t1".into(),
                kind: lrs_core::events::RetentionKindV1::Statements,
                days: Some(365),
                time_micros: 4,
                who: "test".into(),
            },
        ))
        .await
        .unwrap();
    assert!(store.is_erased(&erased).unwrap());
    assert!(store.progress_records(&erased, None).unwrap().is_empty());

    let query_in = |store: &Store, scope: Scope| {
        store
            .query_statements(&StatementQuery {
                scope,
                terms: vec![],
                since_micros: None,
                until_micros: None,
                ascending: true,
                limit: 1000,
                after: None,
                ceiling: store.head(),
            })
            .unwrap()
            .positions
    };
    let query = |store: &Store| query_in(store, Scope::Tenant("t1".into()));
    let library = |store: &Store| query_in(store, Scope::Library("NL-0000000001".into()));
    // The newest statement's month (the log ends with the privacy events).
    let newest_statement = (1..=store.head())
        .rev()
        .find_map(|position| store.statement_at(position).unwrap())
        .unwrap();
    let this_month = lrs_projections::progress::month_key(newest_statement.statement.stored_micros);
    let hits = |store: &Store| {
        store
            .figure(
                this_month,
                b"*",
                lrs_projections::progress::figure::HITS,
                None,
            )
            .unwrap()
    };
    // 40 statements, one voided later, one voided before it arrived; the
    // StatementRef and voiding statements are no hits... except the
    // StatementRef, which is a statement about learning like any other.
    assert_eq!(hits(&store), 40 - 2 + 1);
    let before = store.projections_digest().unwrap();
    let listed_before = query(&store);
    assert!(!listed_before.is_empty());
    let library_before = library(&store);
    assert!(!library_before.is_empty());
    // A library sees its statements of both writing tenants, and only those.
    for position in &library_before {
        let stored = store.statement_at(*position).unwrap().unwrap();
        assert_eq!(
            stored.origin.library.as_deref(),
            Some("NL-0000000001"),
            "position {position}"
        );
    }
    let library_ids = |store: &Store, positions: &[u64]| {
        let mut tenants: Vec<String> = positions
            .iter()
            .map(|p| store.statement_at(*p).unwrap().unwrap().statement.tenant)
            .collect();
        tenants.sort();
        tenants.dedup();
        tenants
    };
    assert_eq!(library_ids(&store, &library_before), ["t1", "t2"]);
    // By id: a library finds its own statement, not another library's.
    let other_library = ids
        .iter()
        .find(|id| library_of(id) == "NL-0000000002")
        .unwrap();
    assert!(store
        .find_statement(&Scope::Library("NL-0000000001".into()), other_library)
        .unwrap()
        .is_none());
    assert!(store
        .find_statement(&Scope::Library("NL-0000000002".into()), other_library)
        .unwrap()
        .is_some());
    let voided = store
        .find_statement(&Scope::Tenant("t1".into()), &ids[5])
        .unwrap()
        .unwrap();
    assert!(voided.voided, "voiding after the target hides it");
    let voided_early = store
        .find_statement(&Scope::Tenant("t1".into()), &ids[31])
        .unwrap()
        .unwrap();
    assert!(
        voided_early.voided,
        "voiding before the target hides it too"
    );
    assert!(!listed_before.contains(&voided.position));

    store.rebuild_projections().await.unwrap();
    assert_eq!(
        store.projections_digest().unwrap(),
        before,
        "rebuilt read models differ"
    );
    assert_eq!(query(&store), listed_before);
    assert_eq!(library(&store), library_before);
    assert_eq!(hits(&store), 40 - 2 + 1);
    store.close().await.unwrap();
    drop(store);

    // And again after a restart, from the files (posting lists from the
    // snapshot saved on close).
    assert!(
        dir.path().join("log/postings.snapshot").exists(),
        "close saves the posting lists"
    );
    assert!(
        dir.path().join("log/resident.snapshot").exists(),
        "close saves the statement ids and members kept in memory"
    );
    let store = Store::open(StoreConfig::new(dir.path(), MasterKey([3; 32]))).unwrap();
    assert!(
        store.refolded_on_open().is_empty(),
        "after a clean close the ids come from the snapshot"
    );
    assert_eq!(store.projections_digest().unwrap(), before);
    // 45 events of statements and voiding, then the erasure and the retention policy.
    assert!(matches!(store.verify_chain(|_| {}).unwrap(), Ok(47)));

    // More writes, including a voiding of an old statement and a reference,
    // then a "crash": the store is dropped without close, so the snapshot on
    // disk is older than the log. Opening replays the tail after it and must
    // give what a rebuild from scratch gives.
    let (void_old_id, refer_old_id) = (Uuid::new_v4(), Uuid::new_v4());
    let void_old = prepare(
        &store,
        void_old_id,
        learner(
            96,
            "voided",
            json!({"objectType": "StatementRef", "id": ids[9]}),
        ),
    );
    let refer_old = prepare(
        &store,
        refer_old_id,
        learner(
            95,
            "commented",
            json!({"objectType": "StatementRef", "id": ids[13]}),
        ),
    );
    store
        .append_statements("t1".into(), "k".into(), vec![void_old, refer_old])
        .await
        .unwrap();
    drop(store);
    // The writer thread lets go of the database once it sees the channel close.
    let store = reopen_when_released(dir.path());
    assert!(
        store.refolded_on_open().is_empty(),
        "the snapshot and the journal of the commits since reach the checkpoints"
    );
    for id in [ids[9], void_old_id, refer_old_id] {
        assert!(store
            .find_statement(&Scope::Tenant("t1".into()), &id)
            .unwrap()
            .is_some());
    }
    let from_stale_snapshot = store.projections_digest().unwrap();
    assert_ne!(
        from_stale_snapshot, before,
        "the new statements are indexed"
    );
    store.rebuild_projections().await.unwrap();
    assert_eq!(
        store.projections_digest().unwrap(),
        from_stale_snapshot,
        "tail replay equals a full rebuild"
    );
    assert!(
        store
            .find_statement(&Scope::Tenant("t1".into()), &ids[9])
            .unwrap()
            .unwrap()
            .voided
    );
    let before_loss = store.projections_digest().unwrap();
    store.close().await.unwrap();
    drop(store);
    let journal = dir.path().join("log/resident.journal");
    let header = 48;
    assert_eq!(
        std::fs::metadata(&journal).unwrap().len(),
        header,
        "close saves a snapshot and starts a new journal"
    );

    // A power loss: the journal (not synced) loses what the last commit
    // wrote to it, sled (synced) keeps it. Opening sees the journal end
    // before the checkpoints and folds both projections again.
    let store = Store::open(StoreConfig::new(dir.path(), MasterKey([3; 32]))).unwrap();
    assert!(store.refolded_on_open().is_empty(), "a clean close before");
    let lost_id = Uuid::new_v4();
    store
        .append_statements(
            "t1".into(),
            "k".into(),
            vec![prepare(
                &store,
                lost_id,
                learner(92, "completed", json!({"id": "https://c.example/module3"})),
            )],
        )
        .await
        .unwrap();
    let with_lost = store.projections_digest().unwrap();
    assert_ne!(with_lost, before_loss);
    drop(store);
    // Once the writer has let go (an open that replays the journal and is
    // dropped), the journal is cut back as the power loss would.
    drop(reopen_when_released(dir.path()));
    assert!(std::fs::metadata(&journal).unwrap().len() > header);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap()
        .set_len(header)
        .unwrap();
    let store = reopen_when_released(dir.path());
    assert_eq!(store.refolded_on_open(), ["statement_index", "progress"]);
    assert_eq!(store.projections_digest().unwrap(), with_lost);
    assert!(store
        .find_statement(&Scope::Tenant("t1".into()), &lost_id)
        .unwrap()
        .is_some());
    store.rebuild_projections().await.unwrap();
    assert_eq!(store.projections_digest().unwrap(), with_lost);
    store.close().await.unwrap();
}

/// A follower (how projections outside the writer and exports catch up):
/// read from a position, then wait for the head to move and read the rest.
#[tokio::test]
async fn followers_read_from_a_position_and_follow_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path(), MasterKey([5; 32]))).unwrap();
    let first = prepare(
        &store,
        Uuid::new_v4(),
        learner(1, "launched", json!({"id": "https://c.example/a"})),
    );
    store
        .append_statements("t".into(), "k".into(), vec![first])
        .await
        .unwrap();
    let mut follow = store.follow();
    let mut seen: Vec<u64> = store.read_from(1).map(|e| e.unwrap().position).collect();
    assert_eq!(seen, vec![1]);

    let writer = {
        let later: Vec<_> = (2..=4)
            .map(|n| {
                prepare(
                    &store,
                    Uuid::new_v4(),
                    learner(n, "completed", json!({"id": "https://c.example/a"})),
                )
            })
            .collect();
        let store = store.clone();
        tokio::spawn(async move {
            store
                .append_statements("t".into(), "k".into(), later)
                .await
                .unwrap()
        })
    };
    while seen.len() < 4 {
        tokio::time::timeout(std::time::Duration::from_secs(5), follow.changed())
            .await
            .unwrap()
            .unwrap();
        let next = seen.last().copied().unwrap() + 1;
        seen.extend(store.read_from(next).map(|e| e.unwrap().position));
    }
    writer.await.unwrap();
    assert_eq!(seen, vec![1, 2, 3, 4], "every entry once, in order");
    assert_eq!(*follow.borrow(), 4);
    store.close().await.unwrap();
}

#[tokio::test]
async fn warming_reads_every_read_model_entry_and_stops_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::new(dir.path(), MasterKey([6; 32]))).unwrap();
    let statements: Vec<_> = (0..40)
        .map(|n| {
            prepare(
                &store,
                Uuid::new_v4(),
                learner(
                    n,
                    "completed",
                    json!({"id": format!("https://c.example/m{n}")}),
                ),
            )
        })
        .collect();
    store
        .append_statements("t".into(), "k".into(), statements)
        .await
        .unwrap();
    let running = std::sync::atomic::AtomicBool::new(false);
    let warmed = store.warm_read_models(&running).unwrap();
    // Every sled tree but the log's own and the store's bookkeeping is a
    // read model; the resident ones are in memory already.
    let sizes: Vec<_> = store
        .tree_sizes()
        .unwrap()
        .into_iter()
        .filter(|tree| !["log", "meta", "checkpoints"].contains(&tree.name.as_str()))
        .filter(|tree| !tree.in_memory)
        .collect();
    let resident: Vec<_> = store.resident_sizes();
    assert_eq!(
        resident
            .iter()
            .map(|tree| tree.name.as_str())
            .collect::<Vec<_>>(),
        ["progress.counters", "progress.members", "statements.by_id"]
    );
    assert_eq!(resident[2].entries, 40, "one id per statement");
    assert_eq!(resident[2].key_bytes + resident[2].value_bytes, 40 * 33);
    assert!(resident[1].entries > 0, "{resident:?}");
    assert_eq!(
        resident[1].key_bytes,
        resident[1].entries * 16,
        "key digests"
    );
    // The counters keep their keys whole (a month, a scope, a figure, at
    // least 9 bytes), each with a u64.
    assert!(resident[0].entries > 0, "{resident:?}");
    assert!(resident[0].key_bytes >= resident[0].entries * 9);
    assert_eq!(resident[0].value_bytes, resident[0].entries * 8);
    assert_eq!(warmed.trees, sizes.len() as u64, "{sizes:?}");
    assert_eq!(
        warmed.entries,
        sizes.iter().map(|tree| tree.entries).sum::<u64>()
    );
    assert_eq!(
        warmed.bytes,
        sizes
            .iter()
            .map(|tree| tree.key_bytes + tree.value_bytes)
            .sum::<u64>()
    );
    assert!(warmed.entries > 40, "{warmed:?}");
    let stopped = std::sync::atomic::AtomicBool::new(true);
    assert_eq!(store.warm_read_models(&stopped).unwrap().entries, 0);
    store.close().await.unwrap();
}
