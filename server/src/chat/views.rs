//! What the API and the WebSocket show of channels and messages, and the
//! JSON of realtime events.

use serde::Serialize;
use utoipa::ToSchema;

use crate::principal::Principal;
use crate::render;
use crate::storage::entities::{channel, message};

/// The author of a message, as shown next to it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuthorView {
    pub id: String,
    pub handle: String,
    pub display_name: String,
    /// `human` or `agent`.
    pub kind: String,
    pub department: Option<String>,
}

impl From<&Principal> for AuthorView {
    fn from(p: &Principal) -> Self {
        Self {
            id: p.id.clone(),
            handle: p.handle.clone(),
            display_name: p.display_name.clone(),
            kind: p.kind.as_str().into(),
            department: p.department.clone(),
        }
    }
}

/// One emoji's reactions on a message.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct ReactionView {
    pub emoji: String,
    pub count: usize,
    pub user_ids: Vec<String>,
}

/// A message as clients see it. `body_html` is sanitized and safe to insert.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageView {
    pub id: String,
    pub channel_id: String,
    pub seq: i64,
    pub author: AuthorView,
    pub thread_root: Option<String>,
    pub body: String,
    pub body_html: String,
    pub label: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub edited_at: Option<chrono::DateTime<chrono::Utc>>,
    pub deleted: bool,
    pub reactions: Vec<ReactionView>,
    pub reply_count: i64,
    /// Ids of the document chunks the message cites (agents' evidence).
    pub citations: Vec<String>,
    /// Which brain wrote an agent's message: `extractive` (quotes, no model),
    /// `local` or `openai`; absent for people.
    pub brain: Option<String>,
}

impl MessageView {
    /// A view of a stored message (reactions and replies filled in by the caller).
    pub fn new(m: &message::Model, author: &Principal) -> Self {
        let (body, body_html) = if m.deleted {
            (String::new(), String::new())
        } else {
            (m.body.clone(), render::to_html(&m.body))
        };
        Self {
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
}

/// A channel as clients see it; `unread` and `last_read_seq` are the caller's.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChannelView {
    pub id: String,
    pub name: String,
    pub visibility: String,
    pub label: String,
    pub topic: String,
    pub created_by: String,
    pub archived: bool,
    pub last_seq: i64,
    pub is_member: bool,
    pub last_read_seq: Option<i64>,
    pub unread: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl ChannelView {
    /// A view without membership details.
    pub fn new(c: &channel::Model) -> Self {
        Self {
            id: c.id.clone(),
            name: c.name.clone(),
            visibility: c.visibility.clone(),
            label: c.label.clone(),
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
}

/// The JSON of a sequenced channel event: `{"type", "channel_id", "seq", ...fields}`.
pub fn event_json(kind: &str, channel_id: &str, seq: i64, fields: serde_json::Value) -> String {
    let mut obj = serde_json::Map::new();
    obj.insert("type".into(), kind.into());
    obj.insert("channel_id".into(), channel_id.into());
    obj.insert("seq".into(), seq.into());
    if let serde_json::Value::Object(extra) = fields {
        obj.extend(extra);
    }
    serde_json::Value::Object(obj).to_string()
}

/// The JSON of `message.created` or `message.edited` for a view.
pub fn message_event_json(kind: &str, view: &MessageView, seq: i64) -> String {
    event_json(
        kind,
        &view.channel_id,
        seq,
        serde_json::json!({ "message": view }),
    )
}
