//! Committed channel events as subscribers receive them: one encoder for
//! live delivery (the writer's publisher) and for replay to a socket that
//! resumes from a `seq` (read back from storage here), and where a socket's
//! subscription starts.

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};

use crate::authz::ChannelAction;
use crate::chat::stored_label;
use crate::chat::views::{event_json, message_event_json, message_view};
use crate::chat::{Chat, ChatError, ChatResult};
use crate::directory::Directory;
use crate::ids::{ChannelId, Seq, UserId};
use crate::label::Label;
use crate::principal::{ChannelAttrs, Principal, UserKind};
use crate::realtime::{Effect, Published};
use crate::storage::entities::{channel_event, message};

/// `message.created` for a stored message.
pub fn message_created(m: &message::Model, author: &Principal, label: Label) -> Published {
    let view = message_view(m, author);
    Published {
        channel_id: m.channel_id.clone(),
        seq: Some(m.seq),
        label,
        json: message_event_json("message.created", &view, Seq(m.seq)).into(),
        effect: Effect::None,
    }
}

/// Any other sequenced channel event (edits, deletions, reactions, members,
/// channel changes), with what it does to the hub's subscriptions.
pub fn channel_event(
    kind: &str,
    channel_id: &ChannelId,
    seq: Seq,
    label: Label,
    payload: serde_json::Value,
    effect: Effect,
) -> Published {
    Published {
        channel_id: channel_id.to_string(),
        seq: Some(seq.get()),
        label,
        json: event_json(kind, channel_id, seq, payload).into(),
        effect,
    }
}

/// Where a socket's subscription to a channel starts, decided for its subscriber.
pub struct Subscription {
    /// The channel as the hub filters its live events.
    pub attrs: ChannelAttrs,
    /// Whether the subscriber is a member.
    pub member: bool,
    /// The channel's last sequence when the subscription was decided.
    pub latest: Seq,
    /// Replay covers `from < seq <= latest`.
    pub from: Seq,
    /// Why the client must refetch over REST instead of resuming, if it must.
    pub resync: Option<&'static str>,
}

impl Chat {
    /// Decide whether `p` may subscribe to `channel_id` on a socket, and from
    /// where: after `last_seq` when the server still holds everything since,
    /// otherwise from now, with the reason the client must refetch.
    pub async fn subscription(
        &self,
        p: &Principal,
        channel_id: &ChannelId,
        last_seq: Option<Seq>,
    ) -> ChatResult<Subscription> {
        if p.kind == UserKind::Agent {
            // What a socket delivers cannot be counted toward the agent's next
            // post (SECURITY-CASES 28); agents read over the REST API.
            return Err(ChatError::forbidden(
                "agents read channels over the REST API, not by subscribing; see GET /api/v1/channels/{id}/messages",
            ));
        }
        let f = self.channel_facts(p, channel_id).await?;
        if !self
            .authz
            .channel(p, ChannelAction::Read, &f.attrs, &f.ctx(p))
        {
            // Non-members of a private channel learn nothing, not even that it exists.
            return Err(ChatError::not_found("channel"));
        }
        let latest = f.row.last_seq;
        let last_seq = last_seq.map(Seq::get);
        let resync = match last_seq {
            None => None,
            Some(s) if s < 0 || s > latest => Some("ahead_of_server"),
            Some(s) if s < f.row.history_floor => Some("history_pruned"),
            Some(s) if latest - s > self.limits.replay_max => Some("too_far_behind"),
            Some(_) => None,
        };
        let from = match (last_seq, resync) {
            (Some(s), None) => s,
            _ => latest,
        };
        Ok(Subscription {
            attrs: f.attrs,
            member: f.membership.is_some(),
            latest: Seq(latest),
            from: Seq(from),
            resync,
        })
    }

    /// The events a subscription missed, to replay before it goes live.
    pub async fn missed(
        &self,
        channel_id: &ChannelId,
        sub: &Subscription,
    ) -> ChatResult<Vec<Published>> {
        if sub.from >= sub.latest {
            return Ok(Vec::new());
        }
        replay(
            &self.db,
            &self.directory,
            &sub.attrs.label,
            channel_id,
            sub.from,
            sub.latest,
        )
        .await
    }
}

/// Stored events of a channel with `after < seq <= through`, in order.
/// Replay builds each event with the same encoder as live delivery.
pub async fn replay(
    db: &DatabaseConnection,
    directory: &Directory,
    channel_label: &Label,
    channel_id: &ChannelId,
    after: Seq,
    through: Seq,
) -> ChatResult<Vec<Published>> {
    let msgs = message::Entity::find()
        .filter(message::Column::ChannelId.eq(channel_id))
        .filter(message::Column::Seq.gt(after.get()))
        .filter(message::Column::Seq.lte(through.get()))
        .all(db)
        .await?;
    let events = channel_event::Entity::find()
        .filter(channel_event::Column::ChannelId.eq(channel_id))
        .filter(channel_event::Column::Seq.gt(after.get()))
        .filter(channel_event::Column::Seq.lte(through.get()))
        .order_by_asc(channel_event::Column::Seq)
        .all(db)
        .await?;
    let mut by_id = std::collections::HashMap::new();
    let mut out: Vec<Published> = Vec::with_capacity(msgs.len() + events.len());
    for m in &msgs {
        by_id.insert(m.id.clone(), m.clone());
    }
    for m in msgs {
        let Some(author) = directory
            .get(&UserId::from_trusted(m.author_id.as_str()))
            .await?
        else {
            continue;
        };
        let label = stored_label(&m.label)?;
        out.push(message_created(&m, &author, label));
    }
    for e in events {
        let msg = match &e.message_id {
            Some(id) => match by_id.get(id) {
                Some(m) => Some(m.clone()),
                None => message::Entity::find_by_id(id.clone()).one(db).await?,
            },
            None => None,
        };
        let label: Label = match &msg {
            Some(m) => stored_label(&m.label)?,
            None => channel_label.clone(),
        };
        let payload: serde_json::Value =
            serde_json::from_str(&e.payload).unwrap_or(serde_json::Value::Null);
        let payload = match (e.kind.as_str(), &msg) {
            // Edits replay the message as it is now (a later deletion blanks it).
            ("message.edited", Some(m)) => {
                let author = directory
                    .get(&UserId::from_trusted(m.author_id.as_str()))
                    .await?;
                let view = author.map(|a| message_view(m, &a));
                serde_json::json!({ "message": view })
            }
            _ => payload,
        };
        let user = payload
            .get("user_id")
            .and_then(|u| u.as_str())
            .map(str::to_string);
        let effect = match (e.kind.as_str(), user) {
            ("member.joined", Some(u)) => Effect::MemberJoined(u),
            ("member.left", Some(u)) => Effect::MemberLeft(u),
            _ => Effect::None,
        };
        out.push(channel_event(
            &e.kind,
            channel_id,
            Seq(e.seq),
            label,
            payload,
            effect,
        ));
    }
    out.sort_by_key(|p| p.seq);
    Ok(out)
}
