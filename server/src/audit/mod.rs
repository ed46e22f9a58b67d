//! The audit log: append-only, chained with a keyed hash and anchored by
//! signed checkpoints of its head, so that `warroom audit verify` detects a
//! record rewritten behind the server's back (even with its hash recomputed),
//! a record removed or inserted, and a tail cut off. Logins, denials,
//! retrievals, refresh-token reuse, invitations, user and channel
//! administration and policy reloads are recorded.
//!
//! Invariants:
//! - Every record's `hash` is `hmac:` and the HMAC-SHA256, under the audit
//!   key, of its fields and the previous record's hash; records chain in id
//!   order. The key (`audit-hmac.key` in the data directory, mode 0600,
//!   created at first start like the token signing seed) never enters the
//!   database, so write access to the database alone cannot forge a record.
//!   Every server writing to one database needs the same key file.
//! - Appends are serialised across processes (SQLite `BEGIN IMMEDIATE`, a
//!   PostgreSQL advisory transaction lock), so two writers never read the
//!   same head and fork the chain.
//! - A checkpoint (`audit-checkpoint.json` in the data directory) signs the
//!   id and hash of the head every [`CHECKPOINT_EVERY`] records, at most
//!   200 ms after any record, at shutdown and when a command that wrote
//!   records ends. It only moves forward; a process that finds it contradicted by the
//!   log writes none, so the evidence stays for `verify`.
//! - Records written before the chain was keyed (plain SHA-256, "legacy")
//!   are accepted only as a prefix of the log, and `verify` reports how many
//!   there are. The first keyed record signs the last legacy hash, so that
//!   prefix cannot be rewritten afterwards either. No migration rekeys them:
//!   rewriting history, even to re-sign it, is what the log exists to prevent.
//! - [`Audit::record_required`] fails closed: it returns an error unless the
//!   record is committed, for actions whose guarantee includes their record
//!   (retrieval). [`Audit::record`] logs a failure loudly and lets the action
//!   go on.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::storage::entities::audit;

/// The audit key's file in the data directory.
pub const KEY_FILE: &str = "audit-hmac.key";
/// The checkpoint's file in the data directory.
pub const CHECKPOINT_FILE: &str = "audit-checkpoint.json";
/// Records between checkpoints under sustained load: at most this many
/// records at the tail can be cut off undetected while the server is busy,
/// for one small file write per this many records.
pub const CHECKPOINT_EVERY: i64 = 256;
/// A committed record is covered by a checkpoint at most this long after it
/// (unless checkpoints fail), so a quiet log is anchored in full.
const CHECKPOINT_AFTER: Duration = Duration::from_millis(200);
/// Longest wait between attempts while checkpoints fail (a full disk should
/// not flood the log with errors).
const CHECKPOINT_RETRY_MAX: Duration = Duration::from_secs(30);
/// Records per transaction at most.
const BATCH: usize = 512;
/// Queued records at most before `record` waits (backpressure on callers).
const QUEUE: usize = 8192;
/// Rows read per query by `verify`, so a long log is never held in memory.
const VERIFY_PAGE: u64 = 10_000;
/// The PostgreSQL advisory lock that serialises appends to the chain: any
/// constant no other advisory lock uses ("warroomA" in ASCII).
const PG_CHAIN_LOCK: i64 = 0x7761_7272_6f6f_6d41;
/// What a keyed record's hash starts with; legacy hashes are bare hex.
const KEYED: &str = "hmac:";
/// Domain separation: a record's MAC can never pass for a checkpoint's.
const RECORD_DOMAIN: &str = "warroom.audit.record.v1";
const CHECKPOINT_DOMAIN: &str = "warroom.audit.checkpoint.v1";

/// Why an audit record or checkpoint was not written, or why the log could
/// not be checked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// The writer task is gone (it only stops when the process does).
    #[error("the audit writer has stopped; restart the server (its log says why)")]
    Stopped,
    /// The database refused the record.
    #[error(
        "the audit record was not stored ({0}); check the database's health and free space, then retry"
    )]
    Write(String),
    /// The checkpoint file could not be read or written.
    #[error("audit checkpoint {path}: {detail}")]
    Checkpoint { path: PathBuf, detail: String },
    /// The audit key could not be read.
    #[error("audit key {path}: {detail}")]
    Key { path: PathBuf, detail: String },
    /// The database could not be read.
    #[error("database: {0}")]
    Db(String),
}

impl From<sea_orm::DbErr> for AuditError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Db(e.to_string())
    }
}

impl From<AuditError> for crate::error::ServiceError {
    fn from(e: AuditError) -> Self {
        tracing::error!(error = %e, "AUDIT WRITE FAILED: the audited action is refused");
        Self::new(
            crate::error::ErrorKind::Unavailable,
            "audit_unavailable",
            "this action is only allowed with an audit record, and the audit log cannot be \
             written right now; retry shortly, and tell an operator if it persists",
        )
    }
}

mod key;
#[cfg(test)]
mod tests;
mod verify;

pub use key::AuditKey;
use key::{canonical_time, now_micros, sync_dir, Fields};
pub use verify::{latest, verify, Problem, Verification};

// ---- checkpoints --------------------------------------------------------------------------

/// A signed statement that record `seq`, with hash `hash`, was the head of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The id of the head record.
    pub seq: i64,
    /// Its hash.
    pub hash: String,
    /// When the checkpoint was signed (RFC 3339).
    pub at: String,
    /// HMAC-SHA256 of the three fields above under the audit key, in hex.
    pub mac: String,
}

impl Checkpoint {
    fn sign(key: &AuditKey, head: &Head) -> Self {
        let at = canonical_time(&chrono::Utc::now());
        let mac =
            hex::encode(key.mac(CHECKPOINT_DOMAIN, &[&head.seq.to_string(), &head.hash, &at]));
        Self {
            seq: head.seq,
            hash: head.hash.clone(),
            at,
            mac,
        }
    }

    fn verifies(&self, key: &AuditKey) -> bool {
        let mac = key.mac(
            CHECKPOINT_DOMAIN,
            &[&self.seq.to_string(), &self.hash, &self.at],
        );
        hex::encode(mac) == self.mac
    }
}

/// The checkpoint in `path`, if there is one.
fn read_checkpoint(path: &Path) -> Result<Option<Checkpoint>, AuditError> {
    let bad = |detail: String| AuditError::Checkpoint {
        path: path.to_path_buf(),
        detail,
    };
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| bad(format!("unreadable ({e})"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(bad(e.to_string())),
    }
}

/// Replace the checkpoint atomically: a crash leaves the old one or the new one.
fn write_checkpoint(path: &Path, cp: &Checkpoint) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let tmp = dir.join(format!(
        ".{CHECKPOINT_FILE}.{}.{}.tmp",
        std::process::id(),
        rand::random::<u32>()
    ));
    let bytes = serde_json::to_vec(cp).map_err(std::io::Error::other)?;
    let written =
        crate::storage::write_private(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    sync_dir(dir);
    Ok(())
}

/// The newest record: its id and hash.
#[derive(Debug, Clone, PartialEq)]
struct Head {
    seq: i64,
    hash: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Trust {
    /// The checkpoint on disk has not been compared with the log yet.
    Unknown,
    /// It matches the log (or there is none): this process may extend it.
    Extends,
    /// It contradicts the log: leave it for `verify` and write no other.
    Contradicted,
}

/// The checkpoint file and what this process knows of the head; shared by the
/// writer task and `Drop`.
struct Anchor {
    key: AuditKey,
    path: PathBuf,
    state: Mutex<AnchorState>,
}

struct AnchorState {
    /// The newest committed head this process knows.
    head: Option<Head>,
    /// The head the checkpoint on disk names, as far as this process knows.
    covered: i64,
    trust: Trust,
}

impl Anchor {
    fn state(&self) -> std::sync::MutexGuard<'_, AnchorState> {
        // The state stays consistent even if a holder panicked: every field
        // is replaced whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn note(&self, head: Head) {
        let mut s = self.state();
        if s.head.as_ref().is_none_or(|h| h.seq < head.seq) {
            s.head = Some(head);
        }
    }

    /// Compare the head an append found with what this process knows was
    /// committed. Behind it means records were removed under the running
    /// server: sign what it knew (so `verify` reports the missing records)
    /// and write no more checkpoints. Blocking, but only on tampering.
    fn check_not_behind(&self, found: Option<&Head>) {
        let Some(known) = self.state().head.clone() else {
            return;
        };
        let behind = match found {
            None => true,
            Some(f) => f.seq < known.seq || (f.seq == known.seq && f.hash != known.hash),
        };
        if !behind {
            return;
        }
        tracing::error!(
            known = known.seq,
            found = found.map(|f| f.seq),
            "the audit log lost records this server committed: its tail was removed or \
             rewritten. Run `warroom audit verify`; no further checkpoints are written"
        );
        if let Err(e) = self.write_now() {
            tracing::error!(error = %e, "audit checkpoint not written");
        }
        self.state().trust = Trust::Contradicted;
    }

    /// Committed records not yet covered by a checkpoint (0 when this process
    /// writes none).
    fn uncovered(&self) -> i64 {
        let s = self.state();
        match (&s.head, s.trust) {
            (Some(h), Trust::Extends | Trust::Unknown) => (h.seq - s.covered).max(0),
            _ => 0,
        }
    }

    /// Compare the checkpoint on disk with the log, once.
    async fn validate(&self, db: &DatabaseConnection) -> Result<(), AuditError> {
        if self.state().trust != Trust::Unknown {
            return Ok(());
        }
        let head = head(db).await?;
        let found = read_checkpoint(&self.path);
        let (trust, covered) = match found {
            Ok(None) => (Trust::Extends, 0),
            Ok(Some(cp)) if !cp.verifies(&self.key) => {
                tracing::error!(
                    path = %self.path.display(),
                    "the audit checkpoint is not signed by this server's audit key: it was \
                     altered, or the key was replaced. Run `warroom audit verify`; no new \
                     checkpoints are written until an operator moves the file aside"
                );
                (Trust::Contradicted, 0)
            }
            Ok(Some(cp)) => {
                let row = audit::Entity::find_by_id(cp.seq).one(db).await?;
                if row.is_some_and(|r| r.hash == cp.hash) {
                    (Trust::Extends, cp.seq)
                } else {
                    tracing::error!(
                        path = %self.path.display(),
                        record = cp.seq,
                        "the audit log contradicts its checkpoint: the record it signs is missing \
                         or different, so records were removed or rewritten. Run `warroom audit \
                         verify`; no new checkpoints are written until an operator moves the \
                         file aside"
                    );
                    (Trust::Contradicted, 0)
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "the audit checkpoint is unreadable; run `warroom audit verify`");
                (Trust::Contradicted, 0)
            }
        };
        let mut s = self.state();
        s.trust = trust;
        s.covered = covered;
        if let Some(h) = head {
            if s.head.as_ref().is_none_or(|x| x.seq < h.seq) {
                s.head = Some(h);
            }
        }
        Ok(())
    }

    /// Sign the known head into the checkpoint file if it moves it forward.
    /// Blocking: one small file write and fsync.
    fn write_now(&self) -> Result<(), AuditError> {
        let mut s = self.state();
        match s.trust {
            Trust::Extends => {}
            Trust::Unknown => return Ok(()),
            Trust::Contradicted => {
                return Err(AuditError::Checkpoint {
                    path: self.path.clone(),
                    detail: "not replaced: it contradicts the log, which lost or changed records; \
                             run `warroom audit verify`, keep the evidence, then move the file aside"
                        .into(),
                })
            }
        }
        let Some(head) = s.head.clone() else {
            return Ok(());
        };
        if head.seq <= s.covered {
            return Ok(());
        }
        // Another process on this data directory may have gone further.
        if let Ok(Some(cp)) = read_checkpoint(&self.path) {
            if cp.seq >= head.seq && cp.verifies(&self.key) {
                s.covered = cp.seq;
                return Ok(());
            }
        }
        write_checkpoint(&self.path, &Checkpoint::sign(&self.key, &head)).map_err(|e| {
            AuditError::Checkpoint {
                path: self.path.clone(),
                detail: format!("{e}; check that the data directory is writable"),
            }
        })?;
        s.covered = head.seq;
        Ok(())
    }
}

// ---- appending ----------------------------------------------------------------------------

/// Appends audit records to the chain. Records are written by one task that
/// commits whatever has queued up in one transaction (group commit), so
/// retrievals audited at thousands per second do not each wait for a disk
/// flush; `record` still returns only after its record is committed.
pub struct Audit {
    tx: mpsc::Sender<Msg>,
    anchor: Arc<Anchor>,
}

/// One record as the caller gives it.
struct Record {
    actor: Option<String>,
    action: String,
    target: String,
    outcome: String,
    detail: String,
}

enum Msg {
    Record { record: Record, done: Waiter },
    Checkpoint(Waiter),
}

impl Audit {
    /// An audit log over `db`, keyed and anchored in `data_dir` (the key is
    /// created there on first start); starts its writer task.
    pub fn open(db: DatabaseConnection, data_dir: &Path) -> std::io::Result<Self> {
        let gate = crate::storage::WriteGate::for_db(&db);
        Self::open_with_gate(db, data_dir, gate)
    }

    /// An audit log sharing the process's write gate.
    pub fn open_with_gate(
        db: DatabaseConnection,
        data_dir: &Path,
        gate: crate::storage::WriteGate,
    ) -> std::io::Result<Self> {
        let key = AuditKey::load_or_create(data_dir)?;
        let anchor = Arc::new(Anchor {
            key,
            path: data_dir.join(CHECKPOINT_FILE),
            state: Mutex::new(AnchorState {
                head: None,
                covered: 0,
                trust: Trust::Unknown,
            }),
        });
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_loop(db, rx, gate, anchor.clone()));
        Ok(Self { tx, anchor })
    }

    /// Append one record. A failure is logged loudly and the caller goes on;
    /// use [`Audit::record_required`] where the action's guarantee includes
    /// its record.
    pub async fn record(
        &self,
        actor: Option<&str>,
        action: &str,
        target: &str,
        outcome: &str,
        detail: serde_json::Value,
    ) {
        if let Err(e) = self
            .record_required(actor, action, target, outcome, detail)
            .await
        {
            tracing::error!(action, target, error = %e, "AUDIT WRITE FAILED");
        }
    }

    /// Append one record and return once it is committed. An error means it
    /// was not, and the caller must not complete the action (fail closed).
    pub async fn record_required(
        &self,
        actor: Option<&str>,
        action: &str,
        target: &str,
        outcome: &str,
        detail: serde_json::Value,
    ) -> Result<(), AuditError> {
        let (done, wait) = oneshot::channel();
        let record = Record {
            actor: actor.map(str::to_string),
            action: action.into(),
            target: target.into(),
            outcome: outcome.into(),
            detail: detail.to_string(),
        };
        self.ask(Msg::Record { record, done }, wait).await
    }

    /// Sign a checkpoint of the head now, after every record queued before
    /// this call (at shutdown, so the whole log is anchored).
    pub async fn checkpoint(&self) -> Result<(), AuditError> {
        let (done, wait) = oneshot::channel();
        self.ask(Msg::Checkpoint(done), wait).await
    }

    /// Hand `msg` to the writer task and wait for its answer.
    async fn ask(
        &self,
        msg: Msg,
        wait: oneshot::Receiver<Result<(), AuditError>>,
    ) -> Result<(), AuditError> {
        self.tx.send(msg).await.map_err(|_| AuditError::Stopped)?;
        wait.await.map_err(|_| AuditError::Stopped)?
    }
}

impl Drop for Audit {
    /// One-shot commands (`users create`, `ingest`) end without a shutdown:
    /// anchor what they wrote. Blocking, but only one small file write.
    fn drop(&mut self) {
        if self.anchor.uncovered() > 0 {
            if let Err(e) = self.anchor.write_now() {
                tracing::warn!(error = %e, "audit checkpoint not written at exit");
            }
        }
    }
}

async fn write_loop(
    db: DatabaseConnection,
    mut rx: mpsc::Receiver<Msg>,
    gate: crate::storage::WriteGate,
    anchor: Arc<Anchor>,
) {
    // Anchor the head found at start: on the first start after an upgrade,
    // this signs the legacy records too.
    let _ = checkpoint(&db, &anchor).await;
    // When the oldest record not covered by a checkpoint must be, and the
    // wait to use for the next one.
    let mut due: Option<tokio::time::Instant> = None;
    let mut wait = CHECKPOINT_AFTER;
    loop {
        if due.is_none() && anchor.uncovered() > 0 {
            due = Some(tokio::time::Instant::now() + wait);
        }
        let next = match due {
            Some(at) => match tokio::time::timeout_at(at, rx.recv()).await {
                Ok(m) => m,
                Err(_) => {
                    wait = next_wait(checkpoint(&db, &anchor).await.is_ok(), wait);
                    due = None;
                    continue;
                }
            },
            None => rx.recv().await,
        };
        let Some(first) = next else {
            let _ = checkpoint(&db, &anchor).await;
            return;
        };
        let mut batch = Vec::new();
        let mut waiters = Vec::new();
        sort(first, &mut batch, &mut waiters);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(m) => sort(m, &mut batch, &mut waiters),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            commit(&db, &gate, &anchor, batch).await;
        }
        // While checkpoints fail, only the timer retries them.
        let backing_off = wait > CHECKPOINT_AFTER;
        if !waiters.is_empty() || (anchor.uncovered() >= CHECKPOINT_EVERY && !backing_off) {
            let r = checkpoint(&db, &anchor).await;
            wait = next_wait(r.is_ok(), wait);
            due = None;
            for w in waiters {
                let _ = w.send(r.clone());
            }
        }
    }
}

/// The wait before the next checkpoint: the usual one after a success,
/// doubling after each failure up to [`CHECKPOINT_RETRY_MAX`].
fn next_wait(ok: bool, wait: Duration) -> Duration {
    if ok {
        CHECKPOINT_AFTER
    } else {
        (wait * 2).min(CHECKPOINT_RETRY_MAX)
    }
}

type Waiter = oneshot::Sender<Result<(), AuditError>>;

fn sort(m: Msg, batch: &mut Vec<Queued>, waiters: &mut Vec<Waiter>) {
    match m {
        Msg::Record { record, done } => batch.push((record, done)),
        Msg::Checkpoint(done) => waiters.push(done),
    }
}

async fn checkpoint(db: &DatabaseConnection, anchor: &Arc<Anchor>) -> Result<(), AuditError> {
    let result = async {
        anchor.validate(db).await?;
        let a = anchor.clone();
        tokio::task::spawn_blocking(move || a.write_now())
            .await
            .map_err(|e| AuditError::Checkpoint {
                path: anchor.path.clone(),
                detail: e.to_string(),
            })?
    }
    .await;
    if let Err(e) = &result {
        tracing::error!(error = %e, "audit checkpoint not written");
    }
    result
}

type Queued = (Record, Waiter);

/// Commit a batch; when it fails, retry its records one by one, so one bad
/// record does not fail the others.
async fn commit(
    db: &DatabaseConnection,
    gate: &crate::storage::WriteGate,
    anchor: &Anchor,
    batch: Vec<Queued>,
) {
    let result = {
        let _gate = gate.enter().await;
        let records: Vec<&Record> = batch.iter().map(|(r, _)| r).collect();
        append(db, &anchor.key, &records).await
    };
    let error = match result {
        Ok(appended) => {
            appended.tell(anchor);
            for (_, done) in batch {
                let _ = done.send(Ok(()));
            }
            return;
        }
        Err(e) => e,
    };
    if batch.len() == 1 {
        fail(batch, &error);
        return;
    }
    for (record, done) in batch {
        let result = {
            let _gate = gate.enter().await;
            append(db, &anchor.key, &[&record]).await
        };
        match result {
            Ok(appended) => {
                appended.tell(anchor);
                let _ = done.send(Ok(()));
            }
            Err(e) => fail(vec![(record, done)], &e),
        }
    }
}

fn fail(batch: Vec<Queued>, e: &sea_orm::DbErr) {
    for (r, done) in batch {
        tracing::error!(error = %e, action = %r.action, target = %r.target, "AUDIT WRITE FAILED");
        let _ = done.send(Err(AuditError::Write(e.to_string())));
    }
}

/// The head before and after an append.
struct Appended {
    before: Option<Head>,
    after: Option<Head>,
}

impl Appended {
    fn tell(self, anchor: &Anchor) {
        anchor.check_not_behind(self.before.as_ref());
        if let Some(h) = self.after {
            anchor.note(h);
        }
    }
}

/// Append `records` in one transaction.
async fn append(
    db: &DatabaseConnection,
    key: &AuditKey,
    records: &[&Record],
) -> Result<Appended, sea_orm::DbErr> {
    let txn = crate::storage::begin_write(db).await?;
    // One chain, one writer at a time, across processes: SQLite's BEGIN
    // IMMEDIATE already holds the database's write lock; PostgreSQL takes
    // this lock (released at commit) before reading the head.
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({PG_CHAIN_LOCK})"))
            .await?;
    }
    // Read the head inside the transaction each time, so records written by
    // other processes (the CLI, other servers) chain too.
    let before = head(&txn).await?;
    let mut prev = before.as_ref().map(|h| h.hash.clone()).unwrap_or_default();
    let mut last = None;
    for r in records {
        let at = now_micros();
        let at_s = canonical_time(&at);
        let hash = Fields {
            prev: &prev,
            at: &at_s,
            actor: r.actor.as_deref().unwrap_or(""),
            action: &r.action,
            target: &r.target,
            outcome: &r.outcome,
            detail: &r.detail,
        }
        .keyed_hash(key);
        let row = audit::ActiveModel {
            at: Set(at),
            actor_id: Set(r.actor.clone()),
            action: Set(r.action.clone()),
            target: Set(r.target.clone()),
            outcome: Set(r.outcome.clone()),
            detail: Set(r.detail.clone()),
            prev_hash: Set(prev.clone()),
            hash: Set(hash.clone()),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        last = Some(Head {
            seq: row.id,
            hash: hash.clone(),
        });
        prev = hash;
    }
    txn.commit().await?;
    Ok(Appended {
        before,
        after: last,
    })
}

async fn head<C: ConnectionTrait>(db: &C) -> Result<Option<Head>, sea_orm::DbErr> {
    Ok(audit::Entity::find()
        .order_by_desc(audit::Column::Id)
        .limit(1)
        .one(db)
        .await?
        .map(|r| Head {
            seq: r.id,
            hash: r.hash,
        }))
}
