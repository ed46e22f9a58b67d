//! What the API and the WebSocket show of channels and messages, and the
//! JSON of realtime events.

use crate::ids::{ChannelId, Seq};
use crate::principal::Principal;
use crate::render;
use crate::storage::entities::{channel, message};

pub use warroom_types::wire::{AuthorView, ChannelView, MessageView, ReactionView};

impl From<&Principal> for AuthorView {
    fn from(p: &Principal) -> Self {
        Self {
            id: p.id.to_string(),
            handle: p.handle.clone(),
            display_name: p.display_name.clone(),
            kind: p.kind.as_str().into(),
            department: p.department.clone(),
        }
    }
}

/// A view of a stored message (reactions and replies filled in by the caller).
pub fn message_view(m: &message::Model, author: &Principal) -> MessageView {
    let (body, body_html) = if m.deleted {
        (String::new(), String::new())
    } else {
        (m.body.clone(), render::to_html(&m.body))
    };
    MessageView {
        id: m.id.clone(),
        channel_id: m.channel_id.clone(),
        seq: m.seq,
        author: author.into(),
        thread_root: m.thread_root.clone(),
        body,
        body_html,
        label: m.label.clone(),
        created_at: m.created_at,
        edited_at: m.edited_at,
        deleted: m.deleted,
        reactions: Vec::new(),
        citations: Vec::new(),
        reply_count: 0,
        brain: m.brain.clone(),
    }
}

/// A view of a stored channel, without the caller's membership details.
pub fn channel_view(c: &channel::Model) -> ChannelView {
    ChannelView {
        id: c.id.clone(),
        name: c.name.clone(),
        visibility: c.visibility.clone(),
        label: c.label.to_string(),
        topic: c.topic.clone(),
        created_by: c.created_by.clone(),
        archived: c.archived,
        last_seq: c.last_seq,
        is_member: false,
        last_read_seq: None,
        unread: 0,
        created_at: c.created_at,
    }
}

/// The JSON of a sequenced channel event: `{"type", "channel_id", "seq", ...fields}`.
pub fn event_json(
    kind: &str,
    channel_id: &ChannelId,
    seq: Seq,
    fields: serde_json::Value,
) -> String {
    let mut obj = serde_json::Map::new();
    obj.insert("type".into(), kind.into());
    obj.insert("channel_id".into(), channel_id.as_str().into());
    obj.insert("seq".into(), seq.get().into());
    if let serde_json::Value::Object(extra) = fields {
        obj.extend(extra);
    }
    serde_json::Value::Object(obj).to_string()
}

/// The JSON of `message.created` or `message.edited` for a view.
pub fn message_event_json(kind: &str, view: &MessageView, seq: Seq) -> String {
    event_json(
        kind,
        &ChannelId::from_trusted(view.channel_id.as_str()),
        seq,
        serde_json::json!({ "message": view }),
    )
}
