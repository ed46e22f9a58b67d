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

// ---- the key and the MAC ------------------------------------------------------------------

/// The secret that keys the chain and signs checkpoints. Never printed.
#[derive(Clone)]
pub struct AuditKey([u8; 32]);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

impl AuditKey {
    /// The key in `data_dir`, created on first use: mode 0600 from the moment
    /// the file exists, and published whole (a concurrent first start of
    /// another process reads the same key, never half of one).
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join(KEY_FILE);
        if !path.exists() {
            create_key_file(data_dir, &path).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot create the audit key {}: {e}; check that the data directory is writable",
                        path.display()
                    ),
                )
            })?;
        }
        Self::read(&path).map_err(|e| std::io::Error::other(e.to_string()))
    }

    /// The key in `data_dir`, if there is one (verification never creates one).
    pub fn load(data_dir: &Path) -> Result<Option<Self>, AuditError> {
        let path = data_dir.join(KEY_FILE);
        if !path.exists() {
            return Ok(None);
        }
        Self::read(&path).map(Some)
    }

    fn read(path: &Path) -> Result<Self, AuditError> {
        let bad = |detail: String| AuditError::Key {
            path: path.to_path_buf(),
            detail,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let bytes = hex::decode(text.trim()).map_err(|e| {
            bad(format!(
                "not hex ({e}); restore the file from a backup of the data directory"
            ))
        })?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| {
            bad("expected 32 bytes; restore the file from a backup of the data directory".into())
        })?;
        warn_if_shared(path);
        Ok(Self(key))
    }

    fn mac(&self, domain: &str, parts: &[&str]) -> [u8; 32] {
        let mut all = Vec::with_capacity(parts.len() + 1);
        all.push(domain);
        all.extend_from_slice(parts);
        hmac_sha256(&self.0, &encode(&all))
    }
}

fn create_key_file(dir: &Path, path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let tmp = dir.join(format!(".{KEY_FILE}.{}.tmp", std::process::id()));
    crate::storage::write_private(&tmp, hex::encode(key).as_bytes())?;
    // A hard link publishes the finished file and fails if another process
    // published its key first; then that key is the one.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(dir);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn sync_dir(dir: &Path) {
    // Makes a rename or link durable; some platforms cannot open a directory.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path) {
            if m.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    "the audit key is readable by other users: run chmod 600 on it"
                );
            }
        }
    }
}

/// HMAC-SHA256 (RFC 2104, the `hmac` crate), checked against RFC 4231's
/// test vectors below.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use hmac::Mac;
    let mut mac =
        hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Length-prefixed parts, so no two different field lists encode alike.
fn encode(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 8).sum());
    for p in parts {
        out.extend_from_slice(&(p.len() as u64).to_le_bytes());
        out.extend_from_slice(p.as_bytes());
    }
    out
}

/// The hashed fields of one record.
struct Fields<'a> {
    prev: &'a str,
    at: &'a str,
    actor: &'a str,
    action: &'a str,
    target: &'a str,
    outcome: &'a str,
    detail: &'a str,
}

impl<'a> Fields<'a> {
    fn of(r: &'a audit::Model, prev: &'a str, at: &'a str) -> Self {
        Self {
            prev,
            at,
            actor: r.actor_id.as_deref().unwrap_or(""),
            action: &r.action,
            target: &r.target,
            outcome: &r.outcome,
            detail: &r.detail,
        }
    }

    fn parts(&self) -> [&str; 7] {
        [
            self.prev,
            self.at,
            self.actor,
            self.action,
            self.target,
            self.outcome,
            self.detail,
        ]
    }

    fn keyed_hash(&self, key: &AuditKey) -> String {
        format!(
            "{KEYED}{}",
            hex::encode(key.mac(RECORD_DOMAIN, &self.parts()))
        )
    }

    /// The unkeyed hash records had before the chain was keyed.
    fn legacy_hash(&self) -> String {
        hex::encode(Sha256::digest(encode(&self.parts())))
    }
}

/// Stored timestamps round-trip through the database; hash the canonical
/// RFC 3339 text with microseconds.
fn canonical_time(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn now_micros() -> chrono::DateTime<chrono::Utc> {
    use chrono::Timelike;
    let now = chrono::Utc::now();
    let micros = now.nanosecond() / 1000 * 1000;
    now.with_nanosecond(micros)
        .expect("rounding nanoseconds down stays in range")
}

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

// ---- verifying ----------------------------------------------------------------------------

/// Something `verify` found wrong.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// A record's hash does not verify, or it does not link to the one before.
    Broken {
        /// The record's id.
        id: i64,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The log ends before the record a signed checkpoint names: its tail was cut off.
    Truncated {
        /// The record the checkpoint signs.
        checkpoint: i64,
        /// The last record left, if any.
        last: Option<i64>,
    },
    /// The record a signed checkpoint names is missing or differs from what was signed.
    CheckpointMismatch {
        /// The record the checkpoint signs.
        seq: i64,
    },
    /// The checkpoint file is unreadable or not signed by the audit key.
    CheckpointForged {
        /// Why.
        detail: String,
    },
    /// Keyed records or a checkpoint exist, but the audit key does not.
    NoKey {
        /// Where the key was looked for.
        path: PathBuf,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Broken { id, why } => write!(f, "audit chain broken at record {id}: {why}"),
            Self::Truncated { checkpoint, last } => {
                let end = last.map_or("its start (it is empty)".to_string(), |l| {
                    format!("record {l}")
                });
                write!(
                    f,
                    "audit log truncated: a signed checkpoint covers record {checkpoint}, but \
                     the log ends at {end}; records were removed from its tail"
                )
            }
            Self::CheckpointMismatch { seq } => write!(
                f,
                "audit log contradicts its signed checkpoint: record {seq} is missing or differs \
                 from what was signed"
            ),
            Self::CheckpointForged { detail } => write!(
                f,
                "audit checkpoint rejected: {detail}; it was altered or replaced"
            ),
            Self::NoKey { path } => write!(
                f,
                "cannot check the keyed records: no audit key at {}; run verify with the \
                 server's data directory (--config or WARROOM_STORAGE__DATA_DIR)",
                path.display()
            ),
        }
    }
}

/// What `verify` found.
#[derive(Debug, Clone, Default)]
pub struct Verification {
    /// Records in the log.
    pub records: u64,
    /// Of those, records from before the chain was keyed (plain SHA-256).
    pub legacy: u64,
    /// The record the checkpoint signs, when a checkpoint was found and verified.
    pub checkpoint: Option<i64>,
    /// Everything found wrong: records in log order, and the checkpoint's.
    pub problems: Vec<Problem>,
}

/// Check every record's hash and link, and the log's head against the signed
/// checkpoint in `data_dir`.
pub async fn verify(db: &DatabaseConnection, data_dir: &Path) -> Result<Verification, AuditError> {
    let key = AuditKey::load(data_dir)?;
    let key_path = data_dir.join(KEY_FILE);
    let cp_path = data_dir.join(CHECKPOINT_FILE);
    let mut out = Verification::default();
    let checkpoint = match read_checkpoint(&cp_path) {
        Ok(cp) => cp,
        Err(e) => {
            out.problems.push(Problem::CheckpointForged {
                detail: e.to_string(),
            });
            None
        }
    };
    let mut prev = String::new();
    let mut keyed_seen = false;
    let mut last_id: Option<i64> = None;
    let mut signed_row_hash: Option<String> = None;
    loop {
        let mut q = audit::Entity::find().order_by_asc(audit::Column::Id);
        if let Some(id) = last_id {
            q = q.filter(audit::Column::Id.gt(id));
        }
        let rows = q.limit(VERIFY_PAGE).all(db).await?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            out.records += 1;
            if let Some(why) = check_record(r, &prev, key.as_ref(), &mut keyed_seen) {
                out.problems.push(Problem::Broken { id: r.id, why });
            }
            if r.hash.starts_with(KEYED) && key.is_none() && !has_no_key(&out) {
                out.problems.push(Problem::NoKey {
                    path: key_path.clone(),
                });
            }
            if !keyed_seen {
                out.legacy += 1;
            }
            if checkpoint.as_ref().is_some_and(|c| c.seq == r.id) {
                signed_row_hash = Some(r.hash.clone());
            }
            prev.clone_from(&r.hash);
            last_id = Some(r.id);
        }
    }
    if let Some(cp) = checkpoint {
        match &key {
            None if !has_no_key(&out) => out.problems.push(Problem::NoKey { path: key_path }),
            None => {}
            Some(k) if !cp.verifies(k) => out.problems.push(Problem::CheckpointForged {
                detail: format!("{} is not signed by the audit key", cp_path.display()),
            }),
            Some(_) if last_id.is_none_or(|l| l < cp.seq) => {
                out.problems.push(Problem::Truncated {
                    checkpoint: cp.seq,
                    last: last_id,
                })
            }
            Some(_) if signed_row_hash.as_deref() != Some(cp.hash.as_str()) => out
                .problems
                .push(Problem::CheckpointMismatch { seq: cp.seq }),
            Some(_) => out.checkpoint = Some(cp.seq),
        }
    }
    Ok(out)
}

fn has_no_key(v: &Verification) -> bool {
    v.problems
        .iter()
        .any(|p| matches!(p, Problem::NoKey { .. }))
}

/// What is wrong with record `r` following a record whose hash is `prev`, if anything.
fn check_record(
    r: &audit::Model,
    prev: &str,
    key: Option<&AuditKey>,
    keyed_seen: &mut bool,
) -> Option<&'static str> {
    if r.prev_hash != prev {
        return Some(
            "it does not link to the record before it: records were removed, inserted or rewritten",
        );
    }
    let at = canonical_time(&r.at);
    let fields = Fields::of(r, prev, &at);
    if r.hash.starts_with(KEYED) {
        *keyed_seen = true;
        // Without the key a keyed record cannot be checked; `verify` reports
        // the missing key once instead of every record.
        let key = key?;
        return (fields.keyed_hash(key) != r.hash).then_some(
            "its signature does not match its contents under the audit key: the record was \
             altered (or written by a server with another audit key; servers sharing a \
             database must share its audit-hmac.key)",
        );
    }
    if *keyed_seen {
        return Some(
            "it has a plain, unkeyed hash after keyed records: it was rewritten and its hash \
             recomputed",
        );
    }
    (fields.legacy_hash() != r.hash)
        .then_some("its hash does not match its contents: the record was altered")
}

/// The latest records, newest first.
pub async fn latest(
    db: &DatabaseConnection,
    limit: u64,
) -> crate::error::ServiceResult<Vec<audit::Model>> {
    Ok(audit::Entity::find()
        .order_by_desc(audit::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

#[cfg(test)]
mod tests {
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
}
