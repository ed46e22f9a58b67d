//! The audit key and the record MAC: the key file (created once, mode 0600,
//! published whole), HMAC-SHA256 and the canonical encoding of a record's
//! fields that the chain signs.

use super::*;

/// The secret that keys the chain and signs checkpoints. Never printed.
#[derive(Clone)]
pub struct AuditKey(pub(super) [u8; 32]);

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

    pub(super) fn mac(&self, domain: &str, parts: &[&str]) -> [u8; 32] {
        let mut all = Vec::with_capacity(parts.len() + 1);
        all.push(domain);
        all.extend_from_slice(parts);
        hmac_sha256(&self.0, &encode(&all))
    }
}

pub(super) fn create_key_file(dir: &Path, path: &Path) -> std::io::Result<()> {
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

pub(super) fn sync_dir(dir: &Path) {
    // Makes a rename or link durable; some platforms cannot open a directory.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

pub(super) fn warn_if_shared(path: &Path) {
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
pub(super) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use hmac::Mac;
    let mut mac =
        hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Length-prefixed parts, so no two different field lists encode alike.
pub(super) fn encode(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 8).sum());
    for p in parts {
        out.extend_from_slice(&(p.len() as u64).to_le_bytes());
        out.extend_from_slice(p.as_bytes());
    }
    out
}

/// The hashed fields of one record.
pub(super) struct Fields<'a> {
    pub(super) prev: &'a str,
    pub(super) at: &'a str,
    pub(super) actor: &'a str,
    pub(super) action: &'a str,
    pub(super) target: &'a str,
    pub(super) outcome: &'a str,
    pub(super) detail: &'a str,
}

impl<'a> Fields<'a> {
    pub(super) fn of(r: &'a audit::Model, prev: &'a str, at: &'a str) -> Self {
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

    pub(super) fn parts(&self) -> [&str; 7] {
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

    pub(super) fn keyed_hash(&self, key: &AuditKey) -> String {
        format!(
            "{KEYED}{}",
            hex::encode(key.mac(RECORD_DOMAIN, &self.parts()))
        )
    }

    /// The unkeyed hash records had before the chain was keyed.
    pub(super) fn legacy_hash(&self) -> String {
        hex::encode(Sha256::digest(encode(&self.parts())))
    }
}

/// Stored timestamps round-trip through the database; hash the canonical
/// RFC 3339 text with microseconds.
pub(super) fn canonical_time(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub(super) fn now_micros() -> chrono::DateTime<chrono::Utc> {
    use chrono::Timelike;
    let now = chrono::Utc::now();
    let micros = now.nanosecond() / 1000 * 1000;
    now.with_nanosecond(micros)
        .expect("rounding nanoseconds down stays in range")
}
