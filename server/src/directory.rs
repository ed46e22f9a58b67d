//! The user directory: creating users and looking them up, with an in-memory
//! cache of principals that is invalidated on every change (so deactivation
//! and role changes take effect on the next request).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};

use crate::error::{ServiceError, ServiceResult};
use crate::ids::UserId;
use crate::label::Label;
use crate::principal::{Principal, Role, UserKind};
use crate::storage::entities::user;

/// A validated request to create a user.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub handle: String,
    pub display_name: String,
    pub kind: UserKind,
    pub role: Role,
    pub department: Option<String>,
    pub clearance: Label,
    /// argon2id hash; `None` for accounts that cannot log in with a password.
    pub password_hash: Option<String>,
}

/// Check a handle: 2-32 characters, lower-case letters, digits, `.`, `_`, `-`.
pub fn parse_handle(raw: &str) -> ServiceResult<String> {
    let h = raw.trim().to_ascii_lowercase();
    let ok = (2..=32).contains(&h.len())
        && h.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && h.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(h)
    } else {
        Err(ServiceError::invalid(
            "handle must be 2-32 characters: a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
        ))
    }
}

/// Users by id, cached.
pub struct Directory {
    db: DatabaseConnection,
    cache: PrincipalCache,
}

/// Cached principals with a generation: a lookup that read the database
/// before a change was invalidated never stores what it read after it, so a
/// deactivation or downgrade cannot be undone by a concurrent request
/// (SECURITY-CASES 26).
#[derive(Default)]
struct PrincipalCache {
    map: RwLock<HashMap<String, Arc<Principal>>>,
    generation: AtomicU64,
}

/// Most principals cached before the cache starts over.
const CACHE_MAX: usize = 200_000;

impl PrincipalCache {
    fn get(&self, id: &str) -> Option<Arc<Principal>> {
        self.map.read().expect("cache lock").get(id).cloned()
    }

    /// The generation to pass to [`PrincipalCache::store`]; read it before
    /// reading the database.
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Cache `p` unless something was invalidated since `generation`.
    fn store(&self, id: &str, p: Arc<Principal>, generation: u64) {
        let mut map = self.map.write().expect("cache lock");
        // Checked under the write lock: an invalidation bumps the generation
        // before it takes the lock, so it is either seen here or runs after.
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if map.len() > CACHE_MAX {
            map.clear();
        }
        map.insert(id.to_string(), p);
    }

    fn invalidate(&self, id: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.map.write().expect("cache lock").remove(id);
    }
}

impl Directory {
    /// A directory over `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            cache: PrincipalCache::default(),
        }
    }

    /// The principal with this id, if any.
    pub async fn get(&self, id: &UserId) -> ServiceResult<Option<Arc<Principal>>> {
        if let Some(p) = self.cache.get(id) {
            return Ok(Some(p));
        }
        let generation = self.cache.generation();
        let Some(row) = user::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let p = Arc::new(Principal::try_from(&row).map_err(ServiceError::internal)?);
        self.cache.store(id, p.clone(), generation);
        Ok(Some(p))
    }

    /// The stored row for a handle (for login).
    pub async fn row_by_handle(&self, handle: &str) -> ServiceResult<Option<user::Model>> {
        Ok(user::Entity::find()
            .filter(user::Column::Handle.eq(handle.to_ascii_lowercase()))
            .one(&self.db)
            .await?)
    }

    /// Principals for a set of handles (unknown handles are skipped).
    pub async fn by_handles(&self, handles: &[String]) -> ServiceResult<Vec<Principal>> {
        if handles.is_empty() {
            return Ok(Vec::new());
        }
        let rows = user::Entity::find()
            .filter(user::Column::Handle.is_in(handles.iter().cloned()))
            .all(&self.db)
            .await?;
        rows.iter()
            .map(|r| Principal::try_from(r).map_err(ServiceError::internal))
            .collect()
    }

    /// Forget a cached principal after it changed.
    pub fn invalidate(&self, id: &UserId) {
        self.cache.invalidate(id);
    }

    /// Insert a user; a taken handle is a 409.
    pub async fn create(&self, new: NewUser) -> ServiceResult<user::Model> {
        if self.row_by_handle(&new.handle).await?.is_some() {
            return Err(ServiceError::conflict(format!(
                "handle {:?} is taken",
                new.handle
            )));
        }
        let row = user::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            handle: Set(new.handle),
            display_name: Set(new.display_name),
            kind: Set(new.kind.as_str().into()),
            role: Set(new.role.as_str().into()),
            department: Set(new.department),
            clearance: Set(new.clearance),
            password_hash: Set(new.password_hash),
            active: Set(true),
            created_at: Set(chrono::Utc::now()),
        };
        row.insert(&self.db).await.map_err(|e| {
            if e.to_string().to_lowercase().contains("unique") {
                ServiceError::conflict("handle is taken")
            } else {
                ServiceError::from(e)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(clearance: &str, active: bool) -> Arc<Principal> {
        Arc::new(Principal {
            id: crate::ids::UserId::from_trusted("u1"),
            handle: "hana".into(),
            display_name: "Hana".into(),
            role: Role::Member,
            kind: UserKind::Human,
            department: None,
            clearance: clearance.parse().unwrap(),
            active,
        })
    }

    /// Finding 4: a lookup that read the row before a deactivation committed
    /// stored it after the invalidation, resurrecting the active account.
    #[test]
    fn finding_04_a_read_from_before_an_invalidation_is_not_cached() {
        let cache = PrincipalCache::default();
        // A request misses the cache and reads the row (still active)...
        let generation = cache.generation();
        let stale = principal("restricted:hr", true);
        // ...meanwhile an admin deactivates and downgrades, commits, invalidates...
        cache.invalidate("u1");
        // ...then the first request stores what it read.
        cache.store("u1", stale, generation);
        assert!(cache.get("u1").is_none(), "stale principal resurrected");
        // A read that started after the change is cached as usual.
        let generation = cache.generation();
        cache.store("u1", principal("internal", false), generation);
        assert!(!cache.get("u1").unwrap().active);
    }
}
