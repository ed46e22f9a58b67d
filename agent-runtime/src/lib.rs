//! The agent runtime (agents, scheduler, brains, memory) depends only on the
//! [`Platform`] port defined here; it never touches the database or vector
//! store. The server provides an in-process adapter and this crate will ship
//! a remote one over the public HTTP + WebSocket API.
//!
//! Status: only the port exists so far; the runtime itself is tracked in the
//! agent-runtime issue.

use serde::{Deserialize, Serialize};

/// A channel event an agent observes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Observed {
    pub channel_id: String,
    pub seq: i64,
    pub author_id: String,
    pub body: String,
    pub label: String,
    pub thread_root: Option<String>,
}

/// A post an agent wants to make: the server checks `label` against the
/// channel and the cited chunks, whatever the agent claims.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Draft {
    pub channel_id: String,
    pub body: String,
    pub thread_root: Option<String>,
    pub label: String,
    pub citations: Vec<String>,
    pub idempotency_key: String,
}

/// Why the platform refused or failed an action.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error("rate limited")]
    RateLimited,
    #[error("platform unavailable: {0}")]
    Unavailable(String),
}

/// Everything an agent can do. Every call is authorized by the server as the
/// agent's own principal; there is no other capability.
#[async_trait::async_trait]
pub trait Platform: Send + Sync {
    /// Post a message (or reply in a thread); returns its sequence number.
    async fn post(&self, draft: Draft) -> Result<i64, PlatformError>;
    /// React to a message.
    async fn react(&self, message_id: &str, emoji: &str) -> Result<(), PlatformError>;
    /// Join a channel the agent may join.
    async fn join(&self, channel_id: &str) -> Result<(), PlatformError>;
    /// Events in joined channels after `after_seq`.
    async fn observe(
        &self,
        channel_id: &str,
        after_seq: i64,
    ) -> Result<Vec<Observed>, PlatformError>;
}
