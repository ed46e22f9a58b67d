//! The user directory: creating users and looking them up, with an in-memory
//! cache of principals that is invalidated on every change (so deactivation
//! and role changes take effect on the next request).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};

use crate::error::{ApiError, ApiResult};
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
pub fn parse_handle(raw: &str) -> ApiResult<String> {
    let h = raw.trim().to_ascii_lowercase();
    let ok = (2..=32).contains(&h.len())
        && h.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && h.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(h)
    } else {
        Err(ApiError::invalid(
            "handle must be 2-32 characters: a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
        ))
    }
}

/// Users by id, cached.
pub struct Directory {
    db: DatabaseConnection,
    cache: RwLock<HashMap<String, Arc<Principal>>>,
}

impl Directory {
    /// A directory over `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The principal with this id, if any.
    pub async fn get(&self, id: &str) -> ApiResult<Option<Arc<Principal>>> {
        if let Some(p) = self.cache.read().expect("cache lock").get(id) {
            return Ok(Some(p.clone()));
        }
        let Some(row) = user::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let p = Arc::new(Principal::try_from(&row).map_err(ApiError::internal)?);
        let mut cache = self.cache.write().expect("cache lock");
        if cache.len() > 200_000 {
            cache.clear();
        }
        cache.insert(id.to_string(), p.clone());
        Ok(Some(p))
    }

    /// The stored row for a handle (for login).
    pub async fn row_by_handle(&self, handle: &str) -> ApiResult<Option<user::Model>> {
        Ok(user::Entity::find()
            .filter(user::Column::Handle.eq(handle.to_ascii_lowercase()))
            .one(&self.db)
            .await?)
    }

    /// Principals for a set of handles (unknown handles are skipped).
    pub async fn by_handles(&self, handles: &[String]) -> ApiResult<Vec<Principal>> {
        if handles.is_empty() {
            return Ok(Vec::new());
        }
        let rows = user::Entity::find()
            .filter(user::Column::Handle.is_in(handles.iter().cloned()))
            .all(&self.db)
            .await?;
        rows.iter()
            .map(|r| Principal::try_from(r).map_err(ApiError::internal))
            .collect()
    }

    /// Forget a cached principal after it changed.
    pub fn invalidate(&self, id: &str) {
        self.cache.write().expect("cache lock").remove(id);
    }

    /// Insert a user; a taken handle is a 409.
    pub async fn create(&self, new: NewUser) -> ApiResult<user::Model> {
        if self.row_by_handle(&new.handle).await?.is_some() {
            return Err(ApiError::conflict(format!(
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
            clearance: Set(new.clearance.to_string()),
            password_hash: Set(new.password_hash),
            active: Set(true),
            created_at: Set(chrono::Utc::now()),
        };
        row.insert(&self.db).await.map_err(|e| {
            if e.to_string().to_lowercase().contains("unique") {
                ApiError::conflict("handle is taken")
            } else {
                ApiError::from(e)
            }
        })
    }
}
