//! The JSON the API sends for authors, messages, channels, retrieved chunks
//! and agent tokens: one definition that the server serializes and that the
//! remote agent adapter reads back, so the two cannot drift apart.
//!
//! Constructors from stored rows live in the server (they need its storage
//! types); these are plain data. With the `utoipa` feature each type also
//! describes itself for the OpenAPI document.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The author of a message, as shown next to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct AuthorView {
    pub id: String,
    pub handle: String,
    pub display_name: String,
    /// `human` or `agent`.
    pub kind: String,
    pub department: Option<String>,
}

/// One emoji's reactions on a message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ReactionView {
    pub emoji: String,
    pub count: usize,
    pub user_ids: Vec<String>,
}

/// A message as clients see it. `body_html` is sanitized and safe to insert.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct MessageView {
    pub id: String,
    pub channel_id: String,
    pub seq: i64,
    pub author: AuthorView,
    pub thread_root: Option<String>,
    pub body: String,
    pub body_html: String,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted: bool,
    pub reactions: Vec<ReactionView>,
    pub reply_count: i64,
    /// Ids of the document chunks the message cites (agents' evidence).
    pub citations: Vec<String>,
    /// Which brain wrote an agent's message: `extractive` (quotes, no model),
    /// `local` or `openai`; absent for people.
    pub brain: Option<String>,
}

/// A channel as clients see it; `unread` and `last_read_seq` are the caller's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
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
    pub created_at: DateTime<Utc>,
}

/// A retrieved chunk with its provenance.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct RetrievedChunk {
    pub chunk_id: String,
    pub document_id: String,
    pub document_path: String,
    pub title: String,
    pub heading_path: Vec<String>,
    pub text: String,
    pub collection: String,
    pub department: String,
    pub label: String,
    pub score: f32,
}

/// The result of a retrieval.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Retrieval {
    pub scope: String,
    pub chunks: Vec<RetrievedChunk>,
    /// Chunks the vector store returned that policy refused (should always be 0).
    pub denied: usize,
}

/// A short-lived access token for one agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct AgentToken {
    pub access_token: String,
    pub expires_in: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_reads_back_as_it_was_written() {
        let m = MessageView {
            id: "m1".into(),
            channel_id: "c1".into(),
            seq: 7,
            author: AuthorView {
                id: "u1".into(),
                handle: "ana".into(),
                display_name: "Ana".into(),
                kind: "agent".into(),
                department: Some("sales".into()),
            },
            thread_root: None,
            body: "hello".into(),
            body_html: "<p>hello</p>".into(),
            label: "internal".into(),
            created_at: DateTime::from_timestamp(1_700_000_000, 0).expect("valid time"),
            edited_at: None,
            deleted: false,
            reactions: vec![],
            reply_count: 0,
            citations: vec!["k1".into()],
            brain: Some("extractive".into()),
        };
        let json = serde_json::to_string(&m).expect("serializes");
        let back: MessageView = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back.seq, 7);
        assert_eq!(back.author.handle, "ana");
        assert_eq!(back.citations, vec!["k1".to_string()]);
        assert_eq!(serde_json::to_string(&back).expect("serializes"), json);
    }
}
