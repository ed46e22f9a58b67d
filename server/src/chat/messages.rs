//! Messages: posting (with citations and the agent read mark), listing,
//! threads, edits, deletion and reactions.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::authz::{ChannelAction, ChannelCtx};
use crate::chat::{ChatError, ChatResult};
use crate::principal::{Principal, UserKind, Visibility};
use crate::storage::entities::{message, reaction};

use crate::ids::{ChannelId, MessageId, Seq, UserId};

use super::views::{message_view, MessageView, ReactionView};
use super::writer::{Change, ChannelChange, NewPost, PostOutcome};
use super::{parse_label, stored_label, ChannelFacts, Chat, ListQuery, PostMessage};

fn check_emoji(emoji: &str) -> ChatResult<String> {
    let e = emoji.trim();
    let ok = !e.is_empty()
        && e.chars().count() <= 32
        && e.chars().all(|c| {
            !c.is_whitespace() && !c.is_control() && c != '<' && c != '>' && c != '"' && c != '&'
        });
    if ok {
        Ok(e.to_string())
    } else {
        Err(ChatError::invalid(
            "emoji must be 1-32 visible characters (a name like 'thumbsup' or an emoji)",
        ))
    }
}

impl Chat {
    pub(super) fn check_body(&self, body: &str) -> ChatResult<String> {
        let trimmed = body.trim_end();
        if trimmed.trim().is_empty() {
            return Err(ChatError::invalid("message body is empty"));
        }
        let max = self.limits.max_message_chars;
        if trimmed.chars().count() > max {
            return Err(ChatError::MessageTooLong(format!(
                "message body is longer than {max} characters"
            )));
        }
        if trimmed.contains('\0') {
            return Err(ChatError::invalid("message body contains a NUL character"));
        }
        Ok(trimmed.to_string())
    }

    /// Post a message. Returns the stored message and whether it was created now.
    pub async fn post(
        &self,
        p: &Arc<Principal>,
        channel_id: &ChannelId,
        req: PostMessage,
    ) -> ChatResult<(MessageView, bool)> {
        let (outcome, req_citations) = self.post_stored(p, channel_id, req).await?;
        let author = self
            .directory
            .get(&UserId::from_trusted(outcome.message.author_id.as_str()))
            .await?
            .ok_or_else(|| ChatError::internal("author vanished"))?;
        let mut view = message_view(&outcome.message, &author);
        view.citations = if outcome.created {
            // Just stored: they are the ones checked.
            req_citations
        } else {
            self.knowledge
                .citations_of(&[MessageId::from_trusted(view.id.as_str())])
                .await?
                .remove(&view.id)
                .unwrap_or_default()
        };
        Ok((view, outcome.created))
    }

    /// Check, authorize and store a post; returns the stored row (not rendered)
    /// and the ids of the chunks it cites. Agents post through this.
    pub async fn post_stored(
        &self,
        p: &Arc<Principal>,
        channel_id: &ChannelId,
        req: PostMessage,
    ) -> ChatResult<(PostOutcome, Vec<String>)> {
        // Every post attempt spends the agent's read mark, whatever becomes of
        // it, exactly as the runtime counts (SECURITY-CASES 28).
        let mark = self.marks.take(&p.id);
        let body = self.check_body(&req.body)?;
        if let Some(k) = &req.idempotency_key {
            if k.is_empty() || k.len() > 128 || !k.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ChatError::invalid(
                    "idempotency_key must be 1-128 printable ASCII characters",
                ));
            }
        }
        if req.brain.is_some() && p.kind != UserKind::Agent {
            return Err(ChatError::invalid(
                "only agents say which brain wrote a message",
            ));
        }
        if !self.post_limiter.allow(&p.id) {
            return Err(ChatError::rate_limited(
                "posting too fast; slow down and retry",
            ));
        }
        // Hot path: policy facts from the channel cache; the full (audited)
        // decision path runs only when the cached facts deny.
        let cached = self
            .cached_channel(channel_id)
            .await?
            .ok_or_else(|| ChatError::not_found("channel"))?;
        let mut label = match &req.label {
            Some(l) => parse_label(l)?,
            None => cached.attrs.label.clone(),
        };
        // An agent's post carries at least what the server saw it read since its
        // last post, whatever label it claims (SECURITY-CASES 28).
        if let Some(mark) = mark {
            if !mark.within(&label) {
                tracing::debug!(agent = %p.id, claimed = %label, mark = %mark, "post label raised to what the agent read");
                label = label.join(&mark);
            }
        }
        let (citations, cited) = self.knowledge.check_citations(p, &req.citations).await?;
        let req_citations: Vec<String> = citations.iter().map(|(c, _)| c.clone()).collect();
        if let Some(cited) = &cited {
            if !cited.within(&label) {
                self.audit
                    .record(
                        Some(&p.id),
                        "Post",
                        &format!("channel:{channel_id}"),
                        "denied",
                        serde_json::json!({"reason": "label_below_citations", "label": label.to_string(), "cited": cited.to_string()}),
                    )
                    .await;
                return Err(ChatError::LabelBelowCitations(format!(
                    "the message cites material labelled {cited}; label it at least {cited}"
                )));
            }
        }
        let ctx = ChannelCtx {
            is_member: cached.members.contains(p.id.as_str()),
            is_owner: cached.attrs.created_by == p.id,
            msg_label: Some(label.clone()),
            ..Default::default()
        };
        if !self
            .authz
            .channel(p, ChannelAction::Post, &cached.attrs, &ctx)
        {
            let f = self.channel_facts(p, channel_id).await?;
            let ctx = ChannelCtx {
                msg_label: Some(label.clone()),
                ..f.ctx(p)
            };
            self.require(p, ChannelAction::Post, &f, &ctx).await?;
        }
        if let Some(root) = &req.thread_root {
            let ok = message::Entity::find_by_id(root.clone())
                .one(&self.db)
                .await?
                .is_some_and(|m| {
                    m.channel_id == channel_id && m.thread_root.is_none() && !m.deleted
                });
            if !ok {
                return Err(ChatError::invalid(
                    "thread_root must be a top-level message of this channel",
                ));
            }
        }
        let mention_ids = self.mention_ids(&body).await?;
        let outcome: PostOutcome = self
            .writer
            .post(NewPost {
                id: uuid::Uuid::now_v7().to_string(),
                channel_id: channel_id.into(),
                author: p.clone(),
                thread_root: req.thread_root,
                body,
                label,
                idempotency_key: req.idempotency_key,
                mention_ids,
                citations,
                brain: req.brain.map(|b| b.as_str().to_string()),
                direct: cached.attrs.visibility == Visibility::Direct,
            })
            .await?;
        if outcome.message.channel_id != channel_id {
            return Err(ChatError::conflict(
                "idempotency_key was already used for a message in another channel",
            ));
        }
        Ok((outcome, req_citations))
    }

    pub(super) async fn mention_ids(&self, body: &str) -> ChatResult<Vec<String>> {
        let handles = crate::render::mentions(body);
        if handles.is_empty() {
            return Ok(Vec::new());
        }
        let handles: Vec<String> = handles.into_iter().take(50).collect();
        Ok(self
            .directory
            .by_handles(&handles)
            .await?
            .into_iter()
            .map(|u| u.id.into_string())
            .collect())
    }

    /// Fill in authors, reactions and reply counts, dropping messages whose label
    /// `p` may not read.
    pub async fn views_for(
        &self,
        p: &Principal,
        f: &ChannelFacts,
        rows: Vec<message::Model>,
    ) -> ChatResult<Vec<MessageView>> {
        let rows = self.readable_in(p, &f.attrs, &f.ctx(p), rows)?;
        self.observed(p, &rows);
        self.decorate(rows).await
    }

    /// The newest `limit` messages after `after_seq` that `p` may read, oldest
    /// first, without reactions or reply counts: what an agent reads in a turn.
    pub async fn read_recent(
        &self,
        p: &Principal,
        channel_id: &ChannelId,
        after_seq: Seq,
        limit: u64,
    ) -> ChatResult<Vec<message::Model>> {
        // Hot path: policy facts from the channel cache, as posting does; the
        // full (audited) decision runs only when the cached facts deny.
        let cached = self
            .cached_channel(channel_id)
            .await?
            .ok_or_else(|| ChatError::not_found("channel"))?;
        let mut ctx = ChannelCtx {
            is_member: cached.members.contains(p.id.as_str()),
            is_owner: cached.attrs.created_by == p.id,
            ..Default::default()
        };
        let mut attrs = cached.attrs.clone();
        if !self.authz.channel(p, ChannelAction::Read, &attrs, &ctx) {
            let f = self.channel_facts(p, channel_id).await?;
            self.require(p, ChannelAction::Read, &f, &f.ctx(p)).await?;
            ctx = f.ctx(p);
            attrs = f.attrs;
        }
        let mut rows = message::Entity::find()
            .filter(message::Column::ChannelId.eq(channel_id.as_str()))
            .filter(message::Column::Seq.gt(after_seq.get()))
            .filter(message::Column::Deleted.eq(false))
            .order_by_desc(message::Column::Seq)
            .limit(limit.clamp(1, self.limits.max_page))
            .all(&self.db)
            .await?;
        rows.reverse();
        let rows = self.readable_in(p, &attrs, &ctx, rows)?;
        self.observed(p, &rows);
        Ok(rows)
    }

    pub(super) async fn decorate(&self, rows: Vec<message::Model>) -> ChatResult<Vec<MessageView>> {
        let ids: Vec<String> = rows.iter().map(|m| m.id.clone()).collect();
        let mut reactions: HashMap<String, BTreeMap<String, Vec<String>>> = HashMap::new();
        let mut replies: HashMap<String, i64> = HashMap::new();
        if !ids.is_empty() {
            for r in reaction::Entity::find()
                .filter(reaction::Column::MessageId.is_in(ids.clone()))
                .order_by_asc(reaction::Column::CreatedAt)
                .all(&self.db)
                .await?
            {
                reactions
                    .entry(r.message_id)
                    .or_default()
                    .entry(r.emoji)
                    .or_default()
                    .push(r.user_id);
            }
            let counts: Vec<(Option<String>, i64)> = message::Entity::find()
                .select_only()
                .column(message::Column::ThreadRoot)
                .column_as(message::Column::Id.count(), "n")
                .filter(message::Column::ThreadRoot.is_in(ids.clone()))
                .filter(message::Column::Deleted.eq(false))
                .group_by(message::Column::ThreadRoot)
                .into_tuple()
                .all(&self.db)
                .await?;
            for (root, n) in counts {
                if let Some(root) = root {
                    replies.insert(root, n);
                }
            }
        }
        let message_ids: Vec<MessageId> = ids.iter().map(MessageId::from_trusted).collect();
        let mut citations = self.knowledge.citations_of(&message_ids).await?;
        let mut out = Vec::with_capacity(rows.len());
        for m in rows {
            let Some(author) = self
                .directory
                .get(&UserId::from_trusted(m.author_id.as_str()))
                .await?
            else {
                continue;
            };
            let mut v = message_view(&m, &author);
            v.citations = citations.remove(&m.id).unwrap_or_default();
            if let Some(r) = reactions.remove(&m.id) {
                v.reactions = r
                    .into_iter()
                    .map(|(emoji, user_ids)| ReactionView {
                        emoji,
                        count: user_ids.len(),
                        user_ids,
                    })
                    .collect();
            }
            v.reply_count = replies.get(&m.id).copied().unwrap_or(0);
            out.push(v);
        }
        Ok(out)
    }

    /// A page of a channel's messages, oldest first.
    pub async fn list_messages(
        &self,
        p: &Principal,
        channel_id: &ChannelId,
        q: ListQuery,
    ) -> ChatResult<Vec<MessageView>> {
        let f = self.channel_facts(p, channel_id).await?;
        self.require(p, ChannelAction::Read, &f, &f.ctx(p)).await?;
        let limit = q.limit.unwrap_or(50).clamp(1, self.limits.max_page);
        let mut find =
            message::Entity::find().filter(message::Column::ChannelId.eq(channel_id.as_str()));
        if q.top_level.unwrap_or(false) {
            find = find.filter(message::Column::ThreadRoot.is_null());
        }
        let rows = match (q.after_seq, q.before_seq) {
            (Some(_), Some(_)) => {
                return Err(ChatError::invalid("give after_seq or before_seq, not both"))
            }
            (Some(after), None) => {
                find.filter(message::Column::Seq.gt(after))
                    .order_by_asc(message::Column::Seq)
                    .limit(limit)
                    .all(&self.db)
                    .await?
            }
            (None, before) => {
                let mut f2 = find;
                if let Some(b) = before {
                    f2 = f2.filter(message::Column::Seq.lt(b));
                }
                let mut rows = f2
                    .order_by_desc(message::Column::Seq)
                    .limit(limit)
                    .all(&self.db)
                    .await?;
                rows.reverse();
                rows
            }
        };
        self.views_for(p, &f, rows).await
    }

    /// One message as stored, if `p` may read it (404 otherwise), decided on
    /// the cached channel facts: what an agent reads when it is woken.
    pub async fn read_message(
        &self,
        p: &Principal,
        message_id: &MessageId,
    ) -> ChatResult<message::Model> {
        let Some(m) = message::Entity::find_by_id(message_id.to_string())
            .one(&self.db)
            .await?
        else {
            return Err(ChatError::not_found("message"));
        };
        let cached = self
            .cached_channel(&ChannelId::from_trusted(m.channel_id.as_str()))
            .await?
            .ok_or_else(|| ChatError::not_found("message"))?;
        let ctx = ChannelCtx {
            is_member: cached.members.contains(p.id.as_str()),
            is_owner: cached.attrs.created_by == p.id,
            msg_label: Some(stored_label(&m.label)?),
            ..Default::default()
        };
        if m.deleted
            || !self
                .authz
                .channel(p, ChannelAction::ReadMessage, &cached.attrs, &ctx)
        {
            return Err(ChatError::not_found("message"));
        }
        self.observed(p, std::slice::from_ref(&m));
        Ok(m)
    }

    /// One message.
    pub async fn get_message(
        &self,
        p: &Principal,
        message_id: &MessageId,
    ) -> ChatResult<MessageView> {
        let (m, _f) = self.message_facts(p, message_id).await?;
        self.observed(p, std::slice::from_ref(&m));
        self.decorate(vec![m])
            .await?
            .pop()
            .ok_or_else(|| ChatError::not_found("message"))
    }

    /// A thread: its root and replies, oldest first.
    pub async fn thread(&self, p: &Principal, root_id: &MessageId) -> ChatResult<Vec<MessageView>> {
        let (root, f) = self.message_facts(p, root_id).await?;
        let root = match root.thread_root.clone() {
            Some(r) => self.message_facts(p, &MessageId::from_trusted(r)).await?.0,
            None => root,
        };
        let mut rows = vec![root.clone()];
        rows.extend(
            message::Entity::find()
                .filter(message::Column::ThreadRoot.eq(root.id.as_str()))
                .order_by_asc(message::Column::Seq)
                .limit(1000)
                .all(&self.db)
                .await?,
        );
        self.views_for(p, &f, rows).await
    }

    /// Edit one's own message.
    pub async fn edit(
        &self,
        p: &Principal,
        message_id: &MessageId,
        body: &str,
    ) -> ChatResult<MessageView> {
        let body = self.check_body(body)?;
        let (m, f) = self.message_facts(p, message_id).await?;
        if m.deleted {
            return Err(ChatError::not_found("message"));
        }
        let ctx = ChannelCtx {
            is_author: m.author_id == p.id,
            msg_label: Some(stored_label(&m.label)?),
            ..f.ctx(p)
        };
        self.require(p, ChannelAction::Edit, &f, &ctx).await?;
        let mention_ids = self.mention_ids(&body).await?;
        self.writer
            .change(ChannelChange {
                channel_id: m.channel_id.clone(),
                actor_id: p.id.to_string(),
                change: Change::Edit {
                    message_id: m.id.clone(),
                    body,
                    mention_ids,
                },
            })
            .await?;
        self.get_message(p, message_id).await
    }

    /// Delete a message (its author, or an admin). The body is erased.
    pub async fn delete(&self, p: &Principal, message_id: &MessageId) -> ChatResult<()> {
        let (m, f) = self.message_facts(p, message_id).await?;
        if m.deleted {
            return Ok(());
        }
        let ctx = ChannelCtx {
            is_author: m.author_id == p.id,
            msg_label: Some(stored_label(&m.label)?),
            ..f.ctx(p)
        };
        self.require(p, ChannelAction::Delete, &f, &ctx).await?;
        self.writer
            .change(ChannelChange {
                channel_id: m.channel_id.clone(),
                actor_id: p.id.to_string(),
                change: Change::Delete {
                    message_id: m.id.clone(),
                },
            })
            .await?;
        Ok(())
    }

    /// Add or remove `p`'s reaction.
    pub async fn react(
        &self,
        p: &Principal,
        message_id: &MessageId,
        emoji: &str,
        add: bool,
    ) -> ChatResult<()> {
        // A reaction ends an agent's turn as a post attempt does: it spends what
        // the agent read for it (SECURITY-CASES 28).
        self.marks.take(&p.id);
        let emoji = check_emoji(emoji)?;
        let (m, f) = self.message_facts(p, message_id).await?;
        let ctx = ChannelCtx {
            msg_label: Some(stored_label(&m.label)?),
            ..f.ctx(p)
        };
        self.require(p, ChannelAction::React, &f, &ctx).await?;
        let change = if add {
            Change::ReactionAdd {
                message_id: m.id.clone(),
                emoji,
            }
        } else {
            Change::ReactionRemove {
                message_id: m.id.clone(),
                emoji,
            }
        };
        self.writer
            .change(ChannelChange {
                channel_id: m.channel_id.clone(),
                actor_id: p.id.to_string(),
                change,
            })
            .await?;
        Ok(())
    }

    /// What one author posted lately, newest first, as far as `p` may read it:
    /// only channels `p` may read, and only messages cleared for them.
    pub async fn by_author(
        &self,
        p: &Principal,
        author_id: &UserId,
        limit: u64,
    ) -> ChatResult<Vec<MessageView>> {
        let rows = message::Entity::find()
            .filter(message::Column::AuthorId.eq(author_id.as_str()))
            .order_by_desc(message::Column::CreatedAt)
            .limit(limit)
            .all(&self.db)
            .await?;
        let mut by_channel: BTreeMap<String, Vec<message::Model>> = BTreeMap::new();
        for r in rows {
            by_channel.entry(r.channel_id.clone()).or_default().push(r);
        }
        let mut out = Vec::new();
        for (channel_id, rows) in by_channel {
            let f = self
                .channel_facts(p, &ChannelId::from_trusted(channel_id))
                .await?;
            let ctx = f.ctx(p);
            if !self.authz.channel(p, ChannelAction::Read, &f.attrs, &ctx) {
                continue;
            }
            out.extend(self.views_for(p, &f, rows).await?);
        }
        out.sort_by_key(|m| std::cmp::Reverse(m.created_at));
        Ok(out)
    }
}
