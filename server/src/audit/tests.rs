//! The audit log's unit tests: the MAC against RFC 4231, the chain, checkpoints and verify.

use super::key::*;
use super::*;

/// RFC 4231 test cases 1, 2 and 6 (a key longer than a block).
#[test]
fn audit_hmac_matches_rfc_4231() {
    let cases: [(&[u8], &[u8], &str); 3] = [
        (
            &[0x0b; 20],
            b"Hi There",
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        ),
        (
            b"Jefe",
            b"what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
    ];
    for (key, msg, want) in cases {
        assert_eq!(hex::encode(hmac_sha256(key, msg)), want);
    }
}

#[test]
fn audit_key_is_private_from_creation_and_reused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let a = AuditKey::load_or_create(dir.path()).expect("key created");
    let b = AuditKey::load_or_create(dir.path()).expect("key read");
    assert_eq!(a.0, b.0);
    assert_eq!(
        AuditKey::load(dir.path()).expect("key read").map(|k| k.0),
        Some(a.0)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(format!("{a:?}").contains(".."), "the key is never printed");
}

#[test]
fn audit_checkpoint_signature_covers_every_field() {
    let key = AuditKey([7; 32]);
    let cp = Checkpoint::sign(
        &key,
        &Head {
            seq: 42,
            hash: "hmac:ab".into(),
        },
    );
    assert!(cp.verifies(&key));
    assert!(!cp.verifies(&AuditKey([8; 32])));
    for tampered in [
        Checkpoint {
            seq: 41,
            ..cp.clone()
        },
        Checkpoint {
            hash: "hmac:cd".into(),
            ..cp.clone()
        },
        Checkpoint {
            at: "2020-01-01T00:00:00.000000Z".into(),
            ..cp.clone()
        },
    ] {
        assert!(!tampered.verifies(&key), "{tampered:?}");
    }
}

async fn sqlite(dir: &Path) -> DatabaseConnection {
    let mut settings = crate::config::Settings::default();
    settings.storage.data_dir = dir.to_path_buf();
    crate::storage::connect(&settings)
        .await
        .expect("database opens")
}

/// A fresh SQLite database in a temporary data directory, and its audit log.
async fn fresh() -> (tempfile::TempDir, DatabaseConnection, Audit) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sqlite(dir.path()).await;
    let audit = Audit::open(db.clone(), dir.path()).expect("audit opens");
    (dir, db, audit)
}

async fn write(audit: &Audit, n: usize, tag: &str) {
    for i in 0..n {
        audit
            .record_required(
                Some("u1"),
                "test.event",
                &format!("{tag}:{i}"),
                "ok",
                serde_json::json!({"i": i}),
            )
            .await
            .expect("record stored");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_chain_verifies_and_its_checkpoint_covers_the_head() {
    let (dir, db, audit) = fresh().await;
    write(&audit, 5, "a").await;
    audit.checkpoint().await.expect("checkpoint written");
    let v = verify(&db, dir.path()).await.expect("verify runs");
    assert_eq!(v.problems, Vec::new());
    assert_eq!((v.records, v.legacy, v.checkpoint), (5, 0, Some(5)));
    let rows = latest(&db, 10).await.expect("rows");
    assert!(rows.iter().all(|r| r.hash.starts_with(KEYED)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_legacy_prefix_is_accepted_and_reported_but_not_after_keyed_records() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sqlite(dir.path()).await;
    // Two records as an older version wrote them: plain SHA-256, no key.
    let mut prev = String::new();
    for i in 0..2 {
        let at = now_micros();
        let at_s = canonical_time(&at);
        let target = format!("old:{i}");
        let hash = Fields {
            prev: &prev,
            at: &at_s,
            actor: "",
            action: "user.create",
            target: &target,
            outcome: "ok",
            detail: "{}",
        }
        .legacy_hash();
        audit::ActiveModel {
            at: Set(at),
            actor_id: Set(None),
            action: Set("user.create".into()),
            target: Set(target),
            outcome: Set("ok".into()),
            detail: Set("{}".into()),
            prev_hash: Set(prev.clone()),
            hash: Set(hash.clone()),
            ..Default::default()
        }
        .insert(&db)
        .await
        .expect("legacy row");
        prev = hash;
    }
    let audit = Audit::open(db.clone(), dir.path()).expect("audit opens");
    write(&audit, 3, "new").await;
    audit.checkpoint().await.expect("checkpoint written");
    let v = verify(&db, dir.path()).await.expect("verify runs");
    assert_eq!(v.problems, Vec::new());
    assert_eq!((v.records, v.legacy, v.checkpoint), (5, 2, Some(5)));

    // A keyed record turned into a plain one with a recomputed hash.
    let row = audit::Entity::find_by_id(4)
        .one(&db)
        .await
        .expect("query")
        .expect("row 4");
    let at = canonical_time(&row.at);
    let plain = Fields::of(&row, &row.prev_hash, &at).legacy_hash();
    db.execute_unprepared(&format!(
        "UPDATE audit_log SET hash = '{plain}' WHERE id = 4"
    ))
    .await
    .expect("tamper");
    let v = verify(&db, dir.path()).await.expect("verify runs");
    assert!(
        v.problems
            .iter()
            .any(|p| matches!(p, Problem::Broken { id: 4, .. })),
        "{:?}",
        v.problems
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_record_required_fails_closed_and_record_does_not_panic() {
    let (dir, db, audit) = fresh().await;
    write(&audit, 1, "before").await;
    db.execute_unprepared(
        "CREATE TRIGGER audit_full BEFORE INSERT ON audit_log \
         BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
    )
    .await
    .expect("trigger");
    let e = audit
        .record_required(None, "x", "y", "ok", serde_json::json!({}))
        .await
        .expect_err("the record cannot be stored");
    assert!(matches!(e, AuditError::Write(_)), "{e:?}");
    audit
        .record(None, "x", "y", "ok", serde_json::json!({}))
        .await;
    db.execute_unprepared("DROP TRIGGER audit_full")
        .await
        .expect("drop trigger");
    write(&audit, 1, "after").await;
    let v = verify(&db, dir.path()).await.expect("verify runs");
    assert_eq!((v.records, v.problems.len()), (2, 0), "{:?}", v.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_tail_removed_under_a_running_server_stays_detectable() {
    let (dir, db, audit) = fresh().await;
    write(&audit, 10, "a").await;
    audit.checkpoint().await.expect("checkpoint written");
    write(&audit, 5, "b").await;
    db.execute_unprepared("DELETE FROM audit_log WHERE id > 12")
        .await
        .expect("tamper");
    // The next append finds the head behind what this server committed.
    write(&audit, 1, "c").await;
    assert!(
        audit.checkpoint().await.is_err(),
        "no checkpoint over a log that lost records"
    );
    let v = verify(&db, dir.path()).await.expect("verify runs");
    assert!(
        v.problems
            .contains(&Problem::CheckpointMismatch { seq: 15 }),
        "{:?}",
        v.problems
    );
}

/// Two writers (two processes, say a server and the CLI) appending at
/// once keep one chain. On PostgreSQL (`WARROOM_TEST_DATABASE_URL`) this
/// exercises the advisory lock; on SQLite, `BEGIN IMMEDIATE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_two_writers_do_not_fork_the_chain() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = crate::config::Settings::default();
    settings.storage.data_dir = dir.path().to_path_buf();
    let pg = std::env::var("WARROOM_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    if let Some(url) = &pg {
        settings.storage.database_url = Some(url.clone());
        settings.storage.postgres_schema = Some(schema.clone());
    }
    let a_db = crate::storage::connect(&settings).await.expect("db a");
    let b_db = crate::storage::connect(&settings).await.expect("db b");
    // Separate write gates: as if in separate processes.
    let a = Audit::open(a_db.clone(), dir.path()).expect("audit a");
    let b = Audit::open(b_db, dir.path()).expect("audit b");
    let mut tasks = Vec::new();
    for (name, audit) in [("a", Arc::new(a)), ("b", Arc::new(b))] {
        for t in 0..4 {
            let audit = audit.clone();
            tasks.push(tokio::spawn(async move {
                write(&audit, 25, &format!("{name}{t}")).await;
            }));
        }
    }
    for t in tasks {
        t.await.expect("writer task");
    }
    let v = verify(&a_db, dir.path()).await.expect("verify runs");
    if let Some(url) = &pg {
        let _ = crate::storage::drop_postgres_schema(url, &schema).await;
    }
    assert_eq!(v.records, 200);
    assert_eq!(v.problems, Vec::new());
}
