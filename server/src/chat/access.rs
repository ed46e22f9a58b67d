//! Who may do what to a channel or message: loading the facts Cedar
//! decides on, the audited decision, and filtering rows by label.

use std::collections::HashMap;

use sea_orm::EntityTrait;

use crate::authz::{ChannelAction, ChannelCtx};
use crate::chat::{ChatError, ChatResult};
use crate::principal::{ChannelAttrs, Principal};
use crate::storage::entities::{channel, membership, message};

use crate::ids::{ChannelId, MessageId};

use super::{stored_label, Chat};

/// A channel with its policy view and the caller's relation to it.
pub struct ChannelFacts {
    pub row: channel::Model,
    pub attrs: ChannelAttrs,
    pub membership: Option<membership::Model>,
}

impl ChannelFacts {
    /// The Cedar context for `p` acting on this channel.
    pub fn ctx(&self, p: &Principal) -> ChannelCtx {
        ChannelCtx {
            is_member: self.membership.is_some(),
            is_owner: self.row.created_by == p.id,
            ..Default::default()
        }
    }
}

fn action_words(a: ChannelAction) -> &'static str {
    match a {
        ChannelAction::Create => "create this channel",
        ChannelAction::Read => "read this channel",
        ChannelAction::Join => {
            "join this channel (check your clearance and the channel's visibility)"
        }
        ChannelAction::Leave => "leave this channel",
        ChannelAction::Invite => "invite to this channel",
        ChannelAction::Update => "change this channel",
        ChannelAction::Archive => "archive this channel",
        ChannelAction::Post => "post this message here (membership, archive state or label)",
        ChannelAction::ReadMessage => "read this message",
        ChannelAction::Edit => "edit this message",
        ChannelAction::Delete => "delete this message",
        ChannelAction::React => "react here",
    }
}

impl Chat {
    /// Load a channel and `p`'s membership; 404 if it does not exist.
    pub async fn channel_facts(&self, p: &Principal, id: &ChannelId) -> ChatResult<ChannelFacts> {
        let Some(row) = channel::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
        else {
            return Err(ChatError::not_found("channel"));
        };
        let attrs = ChannelAttrs::try_from(&row).map_err(ChatError::internal)?;
        let membership = membership::Entity::find_by_id((id.to_string(), p.id.to_string()))
            .one(&self.db)
            .await?;
        Ok(ChannelFacts {
            row,
            attrs,
            membership,
        })
    }

    /// A channel's policy facts and members from the cache (filled from
    /// storage on a miss); `None` if it does not exist.
    pub async fn cached_channel(
        &self,
        id: &ChannelId,
    ) -> ChatResult<Option<std::sync::Arc<crate::chat::cache::CachedChannel>>> {
        self.channels.get(&self.db, id).await
    }

    /// Decide with Cedar; a denial is audited and becomes a 403, or a 404 when
    /// the caller may not even know the channel exists.
    pub async fn require(
        &self,
        p: &Principal,
        action: ChannelAction,
        f: &ChannelFacts,
        ctx: &ChannelCtx,
    ) -> ChatResult<()> {
        if self.authz.channel(p, action, &f.attrs, ctx) {
            return Ok(());
        }
        self.audit
            .record(
                Some(&p.id),
                &format!("{action:?}"),
                &format!("channel:{}", f.row.id),
                "denied",
                serde_json::json!({ "msg_label": ctx.msg_label.as_ref().map(|l| l.to_string()) }),
            )
            .await;
        let visible = action != ChannelAction::Read
            && self
                .authz
                .channel(p, ChannelAction::Read, &f.attrs, &f.ctx(p));
        if visible {
            Err(ChatError::forbidden(format!(
                "not allowed to {}",
                action_words(action)
            )))
        } else {
            Err(ChatError::not_found("channel"))
        }
    }

    /// An agent was handed these messages: their labels count toward its next
    /// post, as what it retrieves does (SECURITY-CASES 28). A no-op for people.
    pub(super) fn observed(&self, p: &Principal, rows: &[message::Model]) {
        self.marks
            .raise_stored(p, rows.iter().map(|m| m.label.as_str()));
    }

    /// The messages whose label `p` may read.
    pub(super) fn readable_in(
        &self,
        p: &Principal,
        attrs: &ChannelAttrs,
        base: &ChannelCtx,
        rows: Vec<message::Model>,
    ) -> ChatResult<Vec<message::Model>> {
        let mut decisions: HashMap<String, bool> = HashMap::new();
        let mut kept = Vec::new();
        for m in rows {
            let allowed = match decisions.get(&m.label) {
                Some(d) => *d,
                None => {
                    let label = stored_label(&m.label)?;
                    let ctx = ChannelCtx {
                        msg_label: Some(label),
                        ..base.clone()
                    };
                    let d = self
                        .authz
                        .channel(p, ChannelAction::ReadMessage, attrs, &ctx);
                    decisions.insert(m.label.clone(), d);
                    d
                }
            };
            if allowed {
                kept.push(m);
            }
        }
        Ok(kept)
    }

    /// Load a message and its channel facts for `p`.
    pub async fn message_facts(
        &self,
        p: &Principal,
        message_id: &MessageId,
    ) -> ChatResult<(message::Model, ChannelFacts)> {
        let Some(m) = message::Entity::find_by_id(message_id.to_string())
            .one(&self.db)
            .await?
        else {
            return Err(ChatError::not_found("message"));
        };
        let f = self
            .channel_facts(p, &ChannelId::from_trusted(m.channel_id.clone()))
            .await?;
        let ctx = ChannelCtx {
            msg_label: Some(stored_label(&m.label)?),
            ..f.ctx(p)
        };
        if !self
            .authz
            .channel(p, ChannelAction::ReadMessage, &f.attrs, &ctx)
        {
            return Err(ChatError::not_found("message"));
        }
        Ok((m, f))
    }
}
