//! The audit log: append-only and hash-chained, so tampering with or removing
//! a record breaks the chain (`warroom audit verify`). Logins, denials,
//! refresh-token reuse, user and channel administration and policy reloads
//! are recorded.

use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, QueryOrder, QuerySelect, Set};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::storage::entities::audit;

/// Appends audit records to the hash chain. Records are written by one task
/// that commits whatever has queued up in one transaction (group commit), so
/// retrievals audited at thousands per second do not each wait for a disk
/// flush; `record` still returns only after its record is committed.
pub struct Audit {
    tx: mpsc::Sender<Pending>,
}

struct Pending {
    actor: Option<String>,
    action: String,
    target: String,
    outcome: String,
    detail: String,
    done: oneshot::Sender<()>,
}

fn digest(
    prev: &str,
    at: &str,
    actor: &str,
    action: &str,
    target: &str,
    outcome: &str,
    detail: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [prev, at, actor, action, target, outcome, detail] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Records per transaction at most.
const BATCH: usize = 512;

impl Audit {
    /// An audit log over `db` (starts its writer task).
    pub fn new(db: DatabaseConnection) -> Self {
        let gate = crate::storage::WriteGate::for_db(&db);
        Self::with_gate(db, gate)
    }

    /// An audit log sharing the process's write gate.
    pub fn with_gate(db: DatabaseConnection, gate: crate::storage::WriteGate) -> Self {
        let (tx, rx) = mpsc::channel(8192);
        tokio::spawn(write_loop(db, rx, gate));
        Self { tx }
    }

    /// Append one record. Failures are logged loudly, never silently dropped.
    pub async fn record(
        &self,
        actor: Option<&str>,
        action: &str,
        target: &str,
        outcome: &str,
        detail: serde_json::Value,
    ) {
        let (done, wait) = oneshot::channel();
        let pending = Pending {
            actor: actor.map(str::to_string),
            action: action.into(),
            target: target.into(),
            outcome: outcome.into(),
            detail: detail.to_string(),
            done,
        };
        if self.tx.send(pending).await.is_err() {
            tracing::error!(
                action,
                target,
                "AUDIT WRITE FAILED: the audit writer stopped"
            );
            return;
        }
        let _ = wait.await;
    }
}

async fn write_loop(
    db: DatabaseConnection,
    mut rx: mpsc::Receiver<Pending>,
    gate: crate::storage::WriteGate,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let result = {
            let _gate = gate.enter().await;
            write_batch(&db, &batch).await
        };
        if let Err(e) = result {
            for p in &batch {
                tracing::error!(error = %e, action = %p.action, target = %p.target, "AUDIT WRITE FAILED");
            }
        }
        for p in batch {
            let _ = p.done.send(());
        }
    }
}

async fn write_batch(db: &DatabaseConnection, batch: &[Pending]) -> Result<(), sea_orm::DbErr> {
    let txn = crate::storage::begin_write(db).await?;
    // Read the head inside the transaction each time, so records written by
    // other processes (the CLI) chain too.
    let mut prev = audit::Entity::find()
        .order_by_desc(audit::Column::Id)
        .limit(1)
        .one(&txn)
        .await?
        .map(|r| r.hash)
        .unwrap_or_default();
    for p in batch {
        // Stored timestamps round-trip through the database; hash the
        // canonical RFC 3339 text with microseconds.
        let at = chrono::Utc::now().with_nanosecond_micro();
        let at_s = at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let hash = digest(
            &prev,
            &at_s,
            p.actor.as_deref().unwrap_or(""),
            &p.action,
            &p.target,
            &p.outcome,
            &p.detail,
        );
        audit::ActiveModel {
            at: Set(at),
            actor_id: Set(p.actor.clone()),
            action: Set(p.action.clone()),
            target: Set(p.target.clone()),
            outcome: Set(p.outcome.clone()),
            detail: Set(p.detail.clone()),
            prev_hash: Set(prev.clone()),
            hash: Set(hash.clone()),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        prev = hash;
    }
    txn.commit().await
}

trait MicroPrecision {
    fn with_nanosecond_micro(self) -> Self;
}

impl MicroPrecision for chrono::DateTime<chrono::Utc> {
    fn with_nanosecond_micro(self) -> Self {
        use chrono::Timelike;
        let micros = self.nanosecond() / 1000 * 1000;
        self.with_nanosecond(micros).expect("valid nanosecond")
    }
}

/// Check every record's hash and link; returns the number of records, or the
/// id of the first record that does not verify.
pub async fn verify_chain(db: &DatabaseConnection) -> Result<Result<u64, i64>, sea_orm::DbErr> {
    let rows = audit::Entity::find()
        .order_by_asc(audit::Column::Id)
        .all(db)
        .await?;
    let mut prev = String::new();
    for r in &rows {
        let at_s = r.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let expect = digest(
            &prev,
            &at_s,
            r.actor_id.as_deref().unwrap_or(""),
            &r.action,
            &r.target,
            &r.outcome,
            &r.detail,
        );
        if r.prev_hash != prev || r.hash != expect {
            return Ok(Err(r.id));
        }
        prev = r.hash.clone();
    }
    Ok(Ok(rows.len() as u64))
}

/// The latest records, newest first.
pub async fn latest(
    db: &DatabaseConnection,
    limit: u64,
) -> Result<Vec<audit::Model>, sea_orm::DbErr> {
    audit::Entity::find()
        .order_by_desc(audit::Column::Id)
        .limit(limit)
        .all(db)
        .await
}
