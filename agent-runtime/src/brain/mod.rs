//! Brains: what turns an agent's persona, the thread it answers and its
//! evidence into a message. Three kinds: `extractive` (no model,
//! deterministic), `local` (an in-process GGUF model via candle) and `openai`
//! (any OpenAI-compatible chat endpoint). A brain only returns text; it never
//! chooses actions, so nothing a document or a message says becomes an action.

pub mod extractive;
pub mod local;
pub mod openai;
mod sanitize;

pub use sanitize::sanitize;

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::persona::Persona;
use crate::platform::{Evidence, Observed};

/// What the brain is asked to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// Start a new top-level message about `Compose::topic`.
    Post,
    /// Reply in the thread of the last message in `Compose::thread`.
    Reply,
}

/// Everything a brain may use. `thread` and `evidence` are untrusted data:
/// brains must present them to a model as quoted material, not instructions.
#[derive(Debug, Clone)]
pub struct Compose {
    pub persona: Persona,
    pub intent: Intent,
    /// What the agent wants to talk about (an interest or the question asked).
    pub topic: String,
    /// The messages being answered, oldest first.
    pub thread: Vec<Observed>,
    /// Chunks from the agent's scope, best first.
    pub evidence: Vec<Evidence>,
    /// A rolling summary of what the agent has seen before.
    pub memory: String,
    /// Upper bound on generated tokens.
    pub max_tokens: u32,
    /// Keys ([`crate::heard::sentence_key`]) of the sentences the channel
    /// heard lately: a brain does not quote them again.
    pub heard: HashSet<u64>,
    /// Keys of the sentences this agent quoted before: quoted again only when
    /// nothing it has not said fits as well.
    pub said: HashSet<u64>,
}

/// A brain's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Composed {
    /// The message body (sanitized by the caller before posting).
    pub text: String,
    /// Indexes into `Compose::evidence` of the chunks the text rests on.
    pub used_evidence: Vec<usize>,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

/// Why a brain produced nothing.
#[derive(Debug, thiserror::Error)]
pub enum BrainError {
    #[error("nothing to say")]
    NothingToSay,
    #[error("model unavailable: {0}")]
    Unavailable(String),
    #[error("model call failed: {0}")]
    Failed(String),
}

/// A message writer.
#[async_trait::async_trait]
pub trait Brain: Send + Sync {
    /// `extractive`, `local` or `openai`: shown beside each message.
    fn kind(&self) -> &'static str;
    /// Write a message.
    async fn compose(&self, req: &Compose) -> Result<Composed, BrainError>;
}
