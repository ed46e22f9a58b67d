//! Checking the log: walk the chain in pages, recompute every hash, and
//! compare the head with the signed checkpoint; each break is a [`Problem`].

use super::*;

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
