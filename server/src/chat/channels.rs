//! Channels and memberships: create, list, join, leave, invite, archive,
//! topics, read positions and direct channels.

use std::collections::HashMap;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};

use crate::authz::{ChannelAction, ChannelCtx};
use crate::chat::{ChatError, ChatResult};
use crate::principal::{ChannelAttrs, Principal, Role, Visibility};
use crate::storage::entities::{channel, membership};
use crate::storage::sql::stmt;

use crate::ids::{ChannelId, Seq, UserId};

use super::views;
use super::views::{channel_view, ChannelView};
use super::writer::{Change, ChannelChange};
use super::{parse_label, Chat, CreateChannel};

fn check_channel_name(name: &str) -> ChatResult<String> {
    let n = name.trim().to_ascii_lowercase();
    let ok = (1..=64).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if ok {
        Ok(n)
    } else {
        Err(ChatError::invalid(
            "channel name must be 1-64 characters: a-z, 0-9, '-', '_' or '.'",
        ))
    }
}

fn check_topic(topic: &str) -> ChatResult<String> {
    if topic.chars().count() > 250 || topic.contains('\0') {
        return Err(ChatError::invalid("topic must be at most 250 characters"));
    }
    Ok(topic.trim().to_string())
}

impl Chat {
    /// Create a public or private channel; the creator becomes its first member.
    pub async fn create_channel(
        &self,
        p: &Principal,
        req: CreateChannel,
    ) -> ChatResult<ChannelView> {
        let name = check_channel_name(&req.name)?;
        let visibility: Visibility = req.visibility.parse()?;
        if visibility == Visibility::Direct {
            return Err(ChatError::invalid(
                "create direct channels with POST /api/v1/dms",
            ));
        }
        let label = parse_label(req.label.as_deref().unwrap_or("internal"))?;
        let topic = check_topic(req.topic.as_deref().unwrap_or(""))?;
        let id = uuid::Uuid::now_v7().to_string();
        let attrs = ChannelAttrs {
            id: id.clone(),
            visibility,
            label: label.clone(),
            archived: false,
            created_by: p.id.to_string(),
        };
        let ctx = ChannelCtx {
            is_owner: true,
            ..Default::default()
        };
        if !self.authz.channel(p, ChannelAction::Create, &attrs, &ctx) {
            self.audit
                .record(
                    Some(&p.id),
                    "channel.create",
                    &format!("channel:{name}"),
                    "denied",
                    serde_json::json!({"label": label.to_string(), "visibility": visibility.as_str()}),
                )
                .await;
            return Err(ChatError::forbidden(
                "not allowed to create this channel (your role, or a label above your clearance)",
            ));
        }
        // Names are unique among the channels the creator can read. A channel
        // they cannot read does not answer "exists": that would reveal hidden
        // names (SECURITY-CASES 24).
        let same_name = channel::Entity::find()
            .filter(channel::Column::Name.eq(name.as_str()))
            .filter(channel::Column::Visibility.ne("direct"))
            .all(&self.db)
            .await?;
        for c in same_name {
            let f = self
                .channel_facts(p, &ChannelId::from_trusted(c.id.clone()))
                .await?;
            if self
                .authz
                .channel(p, ChannelAction::Read, &f.attrs, &f.ctx(p))
            {
                return Err(ChatError::conflict(format!(
                    "a channel named {name:?} exists"
                )));
            }
        }
        let now = chrono::Utc::now();
        let row = channel::Model {
            id: id.clone(),
            name: name.clone(),
            visibility: visibility.as_str().into(),
            label: label.clone(),
            topic,
            created_by: p.id.to_string(),
            archived: false,
            last_seq: 0,
            history_floor: 0,
            dm_key: None,
            created_at: now,
        };
        let txn = crate::storage::begin_write(&self.db).await?;
        channel::ActiveModel::from(row.clone()).insert(&txn).await?;
        membership::ActiveModel {
            channel_id: Set(id.clone()),
            user_id: Set(p.id.to_string()),
            last_read_seq: Set(0),
            joined_at: Set(now),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        self.audit
            .record(
                Some(&p.id),
                "channel.create",
                &format!("channel:{id}"),
                "ok",
                serde_json::json!({"name": name, "label": label.to_string()}),
            )
            .await;
        let mut view = channel_view(&row);
        view.is_member = true;
        view.last_read_seq = Some(0);
        if visibility == Visibility::Public {
            let json =
                serde_json::json!({ "type": "channel.created", "channel": view }).to_string();
            let authz = self.authz.clone();
            self.hub.notify_where(json.into(), |viewer| {
                authz.channel(viewer, ChannelAction::Read, &attrs, &ChannelCtx::default())
            });
        }
        Ok(view)
    }

    /// Channels `p` belongs to, plus (for non-guests) public channels, with unread counts.
    pub async fn list_channels(&self, p: &Principal) -> ChatResult<Vec<ChannelView>> {
        let mine: HashMap<String, membership::Model> = membership::Entity::find()
            .filter(membership::Column::UserId.eq(p.id.as_str()))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| (m.channel_id.clone(), m))
            .collect();
        let mut cond =
            sea_orm::Condition::any().add(channel::Column::Id.is_in(mine.keys().cloned()));
        if p.role != Role::Guest {
            cond = cond.add(channel::Column::Visibility.eq("public"));
        }
        let rows = channel::Entity::find()
            .filter(cond)
            .order_by_asc(channel::Column::Name)
            .all(&self.db)
            .await?;
        let unread = self.unread_counts(p).await?;
        let mut out = Vec::new();
        for row in rows {
            let attrs = ChannelAttrs::try_from(&row).map_err(ChatError::internal)?;
            let m = mine.get(&row.id);
            let ctx = ChannelCtx {
                is_member: m.is_some(),
                is_owner: row.created_by == p.id,
                ..Default::default()
            };
            if !self.authz.channel(p, ChannelAction::Read, &attrs, &ctx) {
                continue;
            }
            let mut v = channel_view(&row);
            v.is_member = m.is_some();
            v.last_read_seq = m.map(|m| m.last_read_seq);
            v.unread = unread.get(&row.id).copied().unwrap_or(0);
            out.push(v);
        }
        Ok(out)
    }

    pub(super) async fn unread_counts(&self, p: &Principal) -> ChatResult<HashMap<String, i64>> {
        let backend = self.db.get_database_backend();
        let rows = self
            .db
            .query_all_raw(stmt(
                backend,
                "SELECT m.channel_id AS channel_id, COUNT(*) AS n FROM messages m \
                 JOIN memberships mb ON mb.channel_id = m.channel_id AND mb.user_id = $1 \
                 WHERE m.seq > mb.last_read_seq AND m.author_id <> $1 AND m.deleted = false \
                 GROUP BY m.channel_id",
                vec![p.id.clone().into()],
            ))
            .await?;
        let mut out = HashMap::new();
        for r in rows {
            out.insert(
                r.try_get::<String>("", "channel_id")?,
                r.try_get::<i64>("", "n")?,
            );
        }
        Ok(out)
    }

    /// One channel, if `p` may read it.
    pub async fn get_channel(&self, p: &Principal, id: &ChannelId) -> ChatResult<ChannelView> {
        let f = self.channel_facts(p, id).await?;
        self.require(p, ChannelAction::Read, &f, &f.ctx(p)).await?;
        let mut v = channel_view(&f.row);
        v.is_member = f.membership.is_some();
        v.last_read_seq = f.membership.as_ref().map(|m| m.last_read_seq);
        Ok(v)
    }

    /// Join a channel (public channels; private ones need an invitation).
    pub async fn join(&self, p: &Principal, id: &ChannelId) -> ChatResult<ChannelView> {
        let f = self.channel_facts(p, id).await?;
        if f.membership.is_none() {
            self.require(p, ChannelAction::Join, &f, &f.ctx(p)).await?;
            self.writer
                .change(ChannelChange {
                    channel_id: id.into(),
                    actor_id: p.id.to_string(),
                    change: Change::Join {
                        user_id: p.id.to_string(),
                    },
                })
                .await?;
        }
        self.get_channel(p, id).await
    }

    /// Leave a channel.
    pub async fn leave(&self, p: &Principal, id: &ChannelId) -> ChatResult<()> {
        let f = self.channel_facts(p, id).await?;
        self.require(p, ChannelAction::Leave, &f, &f.ctx(p)).await?;
        self.writer
            .change(ChannelChange {
                channel_id: id.into(),
                actor_id: p.id.to_string(),
                change: Change::Leave {
                    user_id: p.id.to_string(),
                },
            })
            .await?;
        Ok(())
    }

    /// Add another user to a channel. Both the inviter's right to invite and the
    /// invitee's clearance for the channel are checked.
    pub async fn invite(
        &self,
        p: &Principal,
        id: &ChannelId,
        invitee: &Principal,
    ) -> ChatResult<()> {
        let f = self.channel_facts(p, id).await?;
        self.require(p, ChannelAction::Invite, &f, &f.ctx(p))
            .await?;
        let ctx = ChannelCtx {
            invited: true,
            ..Default::default()
        };
        if !self
            .authz
            .channel(invitee, ChannelAction::Join, &f.attrs, &ctx)
        {
            self.audit
                .record(
                    Some(&p.id),
                    "channel.invite",
                    &format!("channel:{id}"),
                    "denied",
                    serde_json::json!({"invitee": invitee.id, "reason": "invitee not cleared"}),
                )
                .await;
            return Err(ChatError::forbidden(format!(
                "{} is not cleared for this channel's label {} (or cannot join it)",
                invitee.handle, f.attrs.label
            )));
        }
        let seq = self
            .writer
            .change(ChannelChange {
                channel_id: id.into(),
                actor_id: p.id.to_string(),
                change: Change::Join {
                    user_id: invitee.id.to_string(),
                },
            })
            .await?;
        self.audit
            .record(
                Some(&p.id),
                "channel.invite",
                &format!("channel:{id}"),
                "ok",
                serde_json::json!({"invitee": invitee.id, "added": seq.is_some()}),
            )
            .await;
        if seq.is_some() {
            let mut view = channel_view(&f.row);
            view.is_member = true;
            let json = serde_json::json!({ "type": "channel.added", "channel": view }).to_string();
            self.hub.notify_user(&invitee.id, json.into());
        }
        Ok(())
    }

    /// Archive a channel: it stays readable, and nothing more can be posted.
    pub async fn archive(&self, p: &Principal, id: &ChannelId) -> ChatResult<()> {
        let f = self.channel_facts(p, id).await?;
        self.require(p, ChannelAction::Archive, &f, &f.ctx(p))
            .await?;
        self.writer
            .change(ChannelChange {
                channel_id: id.into(),
                actor_id: p.id.to_string(),
                change: Change::Archive,
            })
            .await?;
        self.audit
            .record(
                Some(&p.id),
                "channel.archive",
                &format!("channel:{id}"),
                "ok",
                serde_json::json!({}),
            )
            .await;
        Ok(())
    }

    /// Change a channel's topic.
    pub async fn set_topic(
        &self,
        p: &Principal,
        id: &ChannelId,
        topic: &str,
    ) -> ChatResult<ChannelView> {
        let topic = check_topic(topic)?;
        let f = self.channel_facts(p, id).await?;
        self.require(p, ChannelAction::Update, &f, &f.ctx(p))
            .await?;
        self.writer
            .change(ChannelChange {
                channel_id: id.into(),
                actor_id: p.id.to_string(),
                change: Change::Update { topic },
            })
            .await?;
        self.get_channel(p, id).await
    }

    /// Members of a channel `p` may read.
    pub async fn members(
        &self,
        p: &Principal,
        id: &ChannelId,
    ) -> ChatResult<Vec<views::AuthorView>> {
        let f = self.channel_facts(p, id).await?;
        self.require(p, ChannelAction::Read, &f, &f.ctx(p)).await?;
        let rows = membership::Entity::find()
            .filter(membership::Column::ChannelId.eq(id.as_str()))
            .all(&self.db)
            .await?;
        let mut out = Vec::new();
        for m in rows {
            if let Some(u) = self
                .directory
                .get(&UserId::from_trusted(m.user_id.as_str()))
                .await?
            {
                out.push(views::AuthorView::from(u.as_ref()));
            }
        }
        Ok(out)
    }

    /// Record that `p` has read up to `seq`.
    pub async fn mark_read(&self, p: &Principal, id: &ChannelId, seq: Seq) -> ChatResult<Seq> {
        let f = self.channel_facts(p, id).await?;
        self.require(p, ChannelAction::Read, &f, &f.ctx(p)).await?;
        let Some(m) = f.membership else {
            return Err(ChatError::forbidden("only members track read position"));
        };
        let seq = seq.get().clamp(0, f.row.last_seq).max(m.last_read_seq);
        let mut am: membership::ActiveModel = m.into();
        am.last_read_seq = Set(seq);
        am.update(&self.db).await?;
        Ok(Seq(seq))
    }

    /// Open (or return) the direct channel between `p` and `peer`. Its label is
    /// the meet of both clearances, so neither can receive what they are not
    /// cleared for.
    pub async fn open_direct(
        &self,
        p: &Principal,
        peer: &Principal,
    ) -> ChatResult<(ChannelView, bool)> {
        if !self.authz.direct_message(p, peer) {
            return Err(ChatError::forbidden(
                "not allowed to message this user directly",
            ));
        }
        let mut pair = [p.id.clone(), peer.id.clone()];
        pair.sort();
        let key = pair.join(":");
        if let Some(row) = channel::Entity::find()
            .filter(channel::Column::DmKey.eq(key.as_str()))
            .one(&self.db)
            .await?
        {
            let mut v = channel_view(&row);
            v.is_member = true;
            return Ok((v, false));
        }
        let now = chrono::Utc::now();
        let mut handles = [p.handle.clone(), peer.handle.clone()];
        handles.sort();
        let row = channel::Model {
            id: uuid::Uuid::now_v7().to_string(),
            name: format!("dm:{}", handles.join(",")),
            visibility: "direct".into(),
            label: p.clearance.meet(&peer.clearance),
            topic: String::new(),
            created_by: p.id.to_string(),
            archived: false,
            last_seq: 0,
            history_floor: 0,
            dm_key: Some(key),
            created_at: now,
        };
        let txn = crate::storage::begin_write(&self.db).await?;
        channel::ActiveModel::from(row.clone()).insert(&txn).await?;
        for uid in [&p.id, &peer.id] {
            membership::ActiveModel {
                channel_id: Set(row.id.clone()),
                user_id: Set(uid.to_string()),
                last_read_seq: Set(0),
                joined_at: Set(now),
            }
            .insert(&txn)
            .await?;
        }
        txn.commit().await?;
        let mut v = channel_view(&row);
        v.is_member = true;
        let json = serde_json::json!({ "type": "channel.added", "channel": v }).to_string();
        self.hub.notify_user(&peer.id, json.into());
        Ok((v, true))
    }
}
