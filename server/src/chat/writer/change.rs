//! Applying one sequenced change inside the writer's transaction: edits,
//! deletions, reactions, membership and channel updates, each checked
//! against the live row and given the channel's next sequence number.

use super::*;

impl WriterTask {
    pub(super) async fn apply_change(
        &self,
        txn: &DatabaseTransaction,
        c: &ChannelChange,
        events: &mut Vec<Pending>,
    ) -> Result<ChatResult<Option<i64>>, sea_orm::DbErr> {
        let Some(ch) = channel::Entity::find_by_id(c.channel_id.clone())
            .one(txn)
            .await?
        else {
            return Ok(Err(ChatError::not_found("channel")));
        };
        let attrs = match ChannelAttrs::try_from(&ch) {
            Ok(a) => a,
            Err(e) => return Ok(Err(ChatError::internal(e))),
        };
        let channel_label = attrs.label.clone();
        let now = chrono::Utc::now();
        // Check the change applies, and work out the event it produces.
        let (kind, message_id, label, payload, effect): (
            &str,
            Option<String>,
            Label,
            serde_json::Value,
            Effect,
        ) = match &c.change {
            Change::Edit {
                message_id,
                body,
                mention_ids,
            } => {
                let Some(m) = live_message(txn, &c.channel_id, message_id).await? else {
                    return Ok(Err(ChatError::not_found("message")));
                };
                let mut am: message::ActiveModel = m.clone().into();
                am.body = Set(body.clone());
                am.edited_at = Set(Some(now));
                let updated = am.update(txn).await?;
                mention::Entity::delete_many()
                    .filter(mention::Column::MessageId.eq(message_id.as_str()))
                    .exec(txn)
                    .await?;
                for uid in mention_ids {
                    mention::ActiveModel {
                        message_id: Set(message_id.clone()),
                        user_id: Set(uid.clone()),
                        channel_id: Set(c.channel_id.clone()),
                        seq: Set(m.seq),
                    }
                    .insert(txn)
                    .await?;
                }
                let author = self.author(&updated.author_id).await;
                let view = author.map(|a| crate::chat::views::message_view(&updated, &a));
                let label = Label::from_stored(&updated.label, &channel_label);
                (
                    "message.edited",
                    Some(message_id.clone()),
                    label,
                    serde_json::json!({ "message": view }),
                    Effect::None,
                )
            }
            Change::Delete { message_id } => {
                let Some(m) = live_message(txn, &c.channel_id, message_id).await? else {
                    return Ok(Err(ChatError::not_found("message")));
                };
                let mut am: message::ActiveModel = m.clone().into();
                // The body is blanked, not kept: deleted text must not stay searchable.
                am.body = Set(String::new());
                am.deleted = Set(true);
                am.update(txn).await?;
                reaction::Entity::delete_many()
                    .filter(reaction::Column::MessageId.eq(message_id.as_str()))
                    .exec(txn)
                    .await?;
                let label = Label::from_stored(&m.label, &channel_label);
                (
                    "message.deleted",
                    Some(message_id.clone()),
                    label,
                    serde_json::json!({ "message_id": message_id }),
                    Effect::None,
                )
            }
            Change::ReactionAdd { message_id, emoji }
            | Change::ReactionRemove { message_id, emoji } => {
                let Some(m) = live_message(txn, &c.channel_id, message_id).await? else {
                    return Ok(Err(ChatError::not_found("message")));
                };
                let key = (message_id.clone(), c.actor_id.clone(), emoji.clone());
                let exists = reaction::Entity::find_by_id(key.clone())
                    .one(txn)
                    .await?
                    .is_some();
                let adding = matches!(c.change, Change::ReactionAdd { .. });
                if exists == adding {
                    return Ok(Ok(None));
                }
                if adding {
                    reaction::ActiveModel {
                        message_id: Set(key.0),
                        user_id: Set(key.1),
                        emoji: Set(key.2),
                        created_at: Set(now),
                    }
                    .insert(txn)
                    .await?;
                } else {
                    reaction::Entity::delete_by_id(key).exec(txn).await?;
                }
                let label = Label::from_stored(&m.label, &channel_label);
                (
                    if adding {
                        "reaction.added"
                    } else {
                        "reaction.removed"
                    },
                    Some(message_id.clone()),
                    label,
                    serde_json::json!({ "message_id": message_id, "user_id": c.actor_id, "emoji": emoji }),
                    Effect::None,
                )
            }
            Change::Join { user_id } => {
                let key = (c.channel_id.clone(), user_id.clone());
                if membership::Entity::find_by_id(key)
                    .one(txn)
                    .await?
                    .is_some()
                {
                    return Ok(Ok(None));
                }
                membership::ActiveModel {
                    channel_id: Set(c.channel_id.clone()),
                    user_id: Set(user_id.clone()),
                    last_read_seq: Set(ch.last_seq),
                    joined_at: Set(now),
                }
                .insert(txn)
                .await?;
                (
                    "member.joined",
                    None,
                    channel_label,
                    serde_json::json!({ "user_id": user_id, "by": c.actor_id }),
                    Effect::MemberJoined(user_id.clone()),
                )
            }
            Change::Leave { user_id } => {
                let key = (c.channel_id.clone(), user_id.clone());
                let res = membership::Entity::delete_by_id(key).exec(txn).await?;
                if res.rows_affected == 0 {
                    return Ok(Ok(None));
                }
                (
                    "member.left",
                    None,
                    channel_label,
                    serde_json::json!({ "user_id": user_id }),
                    Effect::MemberLeft(user_id.clone()),
                )
            }
            Change::Update { topic } => {
                let mut am: channel::ActiveModel = ch.clone().into();
                am.topic = Set(topic.clone());
                am.update(txn).await?;
                (
                    "channel.updated",
                    None,
                    channel_label,
                    serde_json::json!({ "topic": topic }),
                    Effect::None,
                )
            }
            Change::Archive => {
                if ch.archived {
                    return Ok(Ok(None));
                }
                let mut am: channel::ActiveModel = ch.clone().into();
                am.archived = Set(true);
                am.update(txn).await?;
                let mut a = attrs.clone();
                a.archived = true;
                (
                    "channel.archived",
                    None,
                    channel_label,
                    serde_json::json!({}),
                    Effect::ChannelChanged(a),
                )
            }
        };
        let Some(seq) = crate::storage::sequence::next_seq(txn, &c.channel_id).await? else {
            return Ok(Err(ChatError::not_found("channel")));
        };
        channel_event::ActiveModel {
            channel_id: Set(c.channel_id.clone()),
            seq: Set(seq),
            kind: Set(kind.to_string()),
            message_id: Set(message_id),
            payload: Set(payload.to_string()),
            created_at: Set(now),
        }
        .insert(txn)
        .await?;
        events.push(Pending::Ready(Arc::new(
            crate::chat::events::channel_event(
                kind,
                &ChannelId::from_trusted(c.channel_id.as_str()),
                Seq(seq),
                label,
                payload,
                effect,
            ),
        )));
        Ok(Ok(Some(seq)))
    }
}

async fn live_message(
    txn: &DatabaseTransaction,
    channel_id: &str,
    message_id: &str,
) -> Result<Option<message::Model>, sea_orm::DbErr> {
    Ok(message::Entity::find_by_id(message_id.to_string())
        .one(txn)
        .await?
        .filter(|m| m.channel_id == channel_id && !m.deleted))
}
