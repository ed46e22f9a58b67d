//! The chat service: channels, memberships, messages, threads, reactions,
//! mentions, unread counts and search. Every operation is authorized by Cedar
//! before it touches storage; sequenced writes go through the [`writer`].
//!
//! [`Chat`] holds the handles it needs; its operations are split by concern:
//! [`access`] (policy facts and decisions), [`channels`], [`messages`] and
//! [`search`].

pub mod access;
pub mod cache;
pub mod channels;
pub mod events;
pub mod messages;
pub mod search;
pub mod views;
pub mod writer;

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::audit::Audit;
use crate::authz::Authz;
use crate::config::Limits;
use crate::directory::Directory;

use crate::ids::ChunkId;
use crate::knowledge::Knowledge;
use crate::label::Label;
use crate::marks::AgentMarks;
use crate::ratelimit::RateLimiter;
use crate::realtime::Hub;
pub use access::ChannelFacts;
use cache::ChannelCache;
use warroom_types::Brain;
use writer::Writer;

crate::error::service_error! {
    /// Why a chat operation failed.
    pub enum ChatError / ChatResult {
        /// A message body above the configured length.
        MessageTooLong => TooLarge, "message_too_long";
        /// A message labelled below the label of what it cites.
        LabelBelowCitations => Unprocessable, "label_below_citations";
    }
    from {
        /// Checking what a message cites.
        Knowledge(crate::knowledge::KnowledgeError),
    }
}

/// The chat service and the handles it works with. Cloning is cheap: every
/// handle is shared.
#[derive(Clone)]
pub struct Chat {
    db: DatabaseConnection,
    authz: Arc<Authz>,
    hub: Arc<Hub>,
    writer: Writer,
    directory: Arc<Directory>,
    channels: Arc<ChannelCache>,
    marks: Arc<AgentMarks>,
    audit: Arc<Audit>,
    knowledge: Arc<Knowledge>,
    post_limiter: Arc<RateLimiter>,
    limits: Limits,
}

/// What [`Chat::new`] is built from.
pub struct ChatParts {
    pub db: DatabaseConnection,
    pub authz: Arc<Authz>,
    pub hub: Arc<Hub>,
    pub writer: Writer,
    pub directory: Arc<Directory>,
    pub channels: Arc<ChannelCache>,
    pub marks: Arc<AgentMarks>,
    pub audit: Arc<Audit>,
    pub knowledge: Arc<Knowledge>,
    pub post_limiter: Arc<RateLimiter>,
    pub limits: Limits,
}

impl Chat {
    /// A chat service over these handles.
    pub fn new(p: ChatParts) -> Self {
        Self {
            db: p.db,
            authz: p.authz,
            hub: p.hub,
            writer: p.writer,
            directory: p.directory,
            channels: p.channels,
            marks: p.marks,
            audit: p.audit,
            knowledge: p.knowledge,
            post_limiter: p.post_limiter,
            limits: p.limits,
        }
    }
}

/// Request to create a channel.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    /// 1-64 characters: a-z, 0-9, '-', '_' or '.'.
    pub name: String,
    /// `public` or `private` (direct channels are made with `POST /dms`).
    pub visibility: String,
    /// Highest label messages may carry; default `internal`.
    pub label: Option<String>,
    pub topic: Option<String>,
}

/// Request to post a message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    pub body: String,
    /// Reply in the thread of this top-level message.
    pub thread_root: Option<String>,
    /// Retrying with the same key returns the original message.
    pub idempotency_key: Option<String>,
    /// The message's label; default the channel's label. Must be within it, and at
    /// least the label of every cited chunk.
    pub label: Option<String>,
    /// Ids of document chunks the message cites (at most 20). The poster must be allowed
    /// to retrieve each one.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub citations: Vec<ChunkId>,
    /// Agents only: which brain wrote the body (`extractive`, `local` or `openai`).
    pub brain: Option<Brain>,
}

/// Which messages to list.
#[derive(Debug, Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only messages with a greater sequence (oldest first).
    pub after_seq: Option<i64>,
    /// Only messages with a smaller sequence (newest page, returned oldest first).
    pub before_seq: Option<i64>,
    /// Page size (default 50).
    pub limit: Option<u64>,
    /// Leave out thread replies.
    pub top_level: Option<bool>,
}

/// A label of a stored row that a check depends on. Stored labels were
/// checked when written, so an unreadable one is an internal error and the
/// check fails closed (see `Label::from_stored` where a fallback is safe).
pub fn stored_label(raw: &str) -> crate::error::ServiceResult<Label> {
    raw.parse()
        .map_err(|e| crate::error::ServiceError::internal(format!("stored label {raw:?}: {e}")))
}

/// Parse a label from input, with a 400 on error.
pub fn parse_label(raw: &str) -> crate::error::ServiceResult<Label> {
    raw.parse()
        .map_err(|e| crate::error::ServiceError::invalid(format!("label: {e}")))
}
