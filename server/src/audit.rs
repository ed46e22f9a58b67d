//! The audit log: append-only and hash-chained, so tampering with or removing
//! a record breaks the chain (`warroom audit verify`). Logins, denials,
//! refresh-token reuse, user and channel administration and policy reloads
//! are recorded.

use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, QueryOrder, QuerySelect, Set};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::storage::entities::audit;

/// Appends audit records to the hash chain.
pub struct Audit {
    db: DatabaseConnection,
    head: Mutex<()>,
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

impl Audit {
    /// An audit log over `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            head: Mutex::new(()),
        }
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
        if let Err(e) = self
            .try_record(actor, action, target, outcome, detail)
            .await
        {
            tracing::error!(error = %e, action, target, "AUDIT WRITE FAILED");
        }
    }

    async fn try_record(
        &self,
        actor: Option<&str>,
        action: &str,
        target: &str,
        outcome: &str,
        detail: serde_json::Value,
    ) -> Result<(), sea_orm::DbErr> {
        // Serialize this process's writers, and read the head from storage
        // each time so records written by other processes (the CLI) chain too.
        let _guard = self.head.lock().await;
        let prev = audit::Entity::find()
            .order_by_desc(audit::Column::Id)
            .limit(1)
            .one(&self.db)
            .await?
            .map(|r| r.hash)
            .unwrap_or_default();
        let at = chrono::Utc::now();
        // Stored timestamps round-trip through the database; hash the
        // canonical RFC 3339 text with microseconds.
        let at = at.with_nanosecond_micro();
        let at_s = at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let detail = detail.to_string();
        let hash = digest(
            &prev,
            &at_s,
            actor.unwrap_or(""),
            action,
            target,
            outcome,
            &detail,
        );
        audit::ActiveModel {
            at: Set(at),
            actor_id: Set(actor.map(str::to_string)),
            action: Set(action.into()),
            target: Set(target.into()),
            outcome: Set(outcome.into()),
            detail: Set(detail),
            prev_hash: Set(prev),
            hash: Set(hash.clone()),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        Ok(())
    }
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
