//! Finding messages: mentions of the caller and full-text search, every
//! hit re-checked by policy.

use std::collections::HashSet;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::chat::{ChatError, ChatResult};
use crate::principal::{Principal, Role};
use crate::storage::sql::stmt;

use crate::ids::MessageId;

use super::views::MessageView;
use super::Chat;

impl Chat {
    /// Messages that mention `p`, newest first, that `p` may read.
    pub async fn mentions(&self, p: &Principal, limit: u64) -> ChatResult<Vec<MessageView>> {
        let limit = limit.clamp(1, self.limits.max_page);
        let ids: Vec<String> = crate::storage::entities::mention::Entity::find()
            .filter(crate::storage::entities::mention::Column::UserId.eq(p.id.as_str()))
            .order_by_desc(crate::storage::entities::mention::Column::Seq)
            .limit(limit * 2)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| m.message_id)
            .collect();
        self.readable(p, ids, limit).await
    }

    /// Full-text search over messages `p` may read (FTS5 on SQLite, PostgreSQL
    /// full-text otherwise). Every hit is re-checked by policy.
    pub async fn search(&self, p: &Principal, q: &str, limit: u64) -> ChatResult<Vec<MessageView>> {
        let q = q.trim();
        if q.is_empty() || q.chars().count() > 200 {
            return Err(ChatError::invalid("search query must be 1-200 characters"));
        }
        let limit = limit.clamp(1, self.limits.max_page);
        let backend = self.db.get_database_backend();
        let public = if p.role == Role::Guest {
            ""
        } else {
            " OR m.channel_id IN (SELECT id FROM channels WHERE visibility = 'public')"
        };
        let scope = format!(
            "(m.channel_id IN (SELECT channel_id FROM memberships WHERE user_id = $2){public})"
        );
        let sql = match backend {
            DbBackend::Postgres => format!(
                "SELECT m.id AS id FROM messages m WHERE to_tsvector('simple', m.body) @@ plainto_tsquery('simple', $1) \
                 AND m.deleted = false AND {scope} ORDER BY ts_rank(to_tsvector('simple', m.body), plainto_tsquery('simple', $1)) DESC, m.created_at DESC LIMIT $3"
            ),
            _ => format!(
                "SELECT m.id AS id FROM messages_fts JOIN messages m ON m.rowid = messages_fts.rowid \
                 WHERE messages_fts MATCH $1 AND m.deleted = false AND {scope} ORDER BY bm25(messages_fts), m.created_at DESC LIMIT $3"
            ),
        };
        let query = match backend {
            DbBackend::Postgres => q.to_string(),
            // Quote every word so FTS5 syntax in user input is just text.
            _ => {
                let words: Vec<String> = q
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .map(|w| format!("\"{w}\""))
                    .collect();
                if words.is_empty() {
                    return Ok(Vec::new());
                }
                words.join(" ")
            }
        };
        let rows = self
            .db
            .query_all_raw(stmt(
                backend,
                &sql,
                vec![
                    query.into(),
                    p.id.clone().into(),
                    ((limit * 3) as i64).into(),
                ],
            ))
            .await?;
        let ids: Vec<String> = rows
            .iter()
            .filter_map(|r| r.try_get::<String>("", "id").ok())
            .collect();
        self.readable(p, ids, limit).await
    }

    pub(super) async fn readable(
        &self,
        p: &Principal,
        ids: Vec<String>,
        limit: u64,
    ) -> ChatResult<Vec<MessageView>> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for id in ids {
            if out.len() as u64 >= limit || !seen.insert(id.clone()) {
                continue;
            }
            if let Ok(v) = self
                .get_message(p, &MessageId::from_trusted(id.clone()))
                .await
            {
                if !v.deleted {
                    out.push(v);
                }
            }
        }
        Ok(out)
    }
}
