//! An in-process cache of channel attributes and member sets for the hot
//! posting path. The writer invalidates a channel after every committed
//! membership or channel change, before acknowledging it; a load that raced
//! with an invalidation is not cached. (One server process per database: with
//! several nodes on PostgreSQL the invalidation has to travel between nodes.)

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};

use crate::chat::{ChatError, ChatResult};
use crate::ids::ChannelId;
use crate::principal::ChannelAttrs;
use crate::storage::entities::{channel, membership};

/// A channel's policy attributes and members.
#[derive(Debug)]
pub struct CachedChannel {
    pub attrs: ChannelAttrs,
    pub members: HashSet<String>,
}

/// Channels by id.
#[derive(Default)]
pub struct ChannelCache {
    epoch: AtomicU64,
    map: RwLock<HashMap<String, Arc<CachedChannel>>>,
}

const MAX_CACHED: usize = 50_000;

impl ChannelCache {
    /// The channel, from cache or storage; `None` if it does not exist.
    pub async fn get(
        &self,
        db: &DatabaseConnection,
        id: &ChannelId,
    ) -> ChatResult<Option<Arc<CachedChannel>>> {
        if let Some(c) = self.map.read().expect("cache lock").get(id.as_str()) {
            return Ok(Some(c.clone()));
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        let Some(row) = channel::Entity::find_by_id(id.to_string()).one(db).await? else {
            return Ok(None);
        };
        let members: Vec<String> = membership::Entity::find()
            .select_only()
            .column(membership::Column::UserId)
            .filter(membership::Column::ChannelId.eq(id))
            .into_tuple()
            .all(db)
            .await?;
        let cached = Arc::new(CachedChannel {
            attrs: ChannelAttrs::try_from(&row).map_err(ChatError::internal)?,
            members: members.into_iter().collect(),
        });
        let mut map = self.map.write().expect("cache lock");
        if self.epoch.load(Ordering::SeqCst) == epoch {
            if map.len() >= MAX_CACHED {
                map.clear();
            }
            map.insert(id.to_string(), cached.clone());
        }
        Ok(Some(cached))
    }

    /// Forget a channel after it changed.
    pub fn invalidate(&self, id: &ChannelId) {
        let mut map = self.map.write().expect("cache lock");
        self.epoch.fetch_add(1, Ordering::SeqCst);
        map.remove(id.as_str());
    }
}
