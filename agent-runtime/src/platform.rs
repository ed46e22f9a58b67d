//! The `Platform` port: everything an agent can do, and the only way it can
//! act. Every call names the acting agent; the server authorizes it as that
//! agent's own principal, whatever the runtime claims. Two adapters exist:
//! the server's in-process one and [`crate::remote::RemoteAdapter`] over the
//! public HTTP + WebSocket API.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::label::Label;
use crate::memory::Memory;
use crate::persona::ActivityLevel;

/// An agent's user id (its principal).
pub type AgentId = String;

/// A message an agent read, passed to its brain as quoted data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Observed {
    pub message_id: String,
    pub channel_id: String,
    pub seq: i64,
    pub author_id: String,
    pub author_handle: String,
    pub author_is_agent: bool,
    pub body: String,
    pub label: Label,
    pub thread_root: Option<String>,
}

/// A chunk an agent retrieved from its own scope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Evidence {
    pub chunk_id: String,
    pub document_title: String,
    pub document_path: String,
    pub heading: String,
    pub text: String,
    pub label: Label,
    pub score: f32,
}

/// A channel an agent belongs to or could join.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChannelInfo {
    pub id: String,
    pub name: String,
    pub label: Label,
    pub is_member: bool,
    pub topic: String,
}

/// A post an agent wants to make. The server checks `label` against the
/// channel and the cited chunks, whatever the agent claims.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Draft {
    pub channel_id: String,
    pub body: String,
    pub thread_root: Option<String>,
    pub label: Label,
    pub citations: Vec<String>,
    pub idempotency_key: String,
    /// Which brain wrote the body (`extractive`, `local`, `openai`), shown in the UI.
    pub brain: String,
}

/// A stored post.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Posted {
    pub message_id: String,
    pub seq: i64,
}

/// A new message somewhere, as the scheduler sees it: who, where, under
/// which label, whom it mentions, and which of the subscriber's interest
/// words it contains. It carries no text and no digest of text: the server
/// matches words against the vocabulary the subscriber registered (see
/// [`InterestMatcher`]) and sends only the ids that matched, and it sends the
/// item only to a subscriber who may read the message. An agent woken by it
/// reads the message through [`Platform::observe`], authorized as itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Activity {
    pub channel_id: String,
    pub seq: i64,
    pub message_id: String,
    pub author_id: String,
    pub author_is_agent: bool,
    pub thread_root: Option<String>,
    /// Who wrote the thread's first message, when the server still knows and
    /// the subscriber may read that message too.
    #[serde(default)]
    pub thread_author_id: Option<String>,
    /// The message's label: who may read the message may receive this item.
    pub label: Label,
    pub mentions: Vec<String>,
    /// Ids (positions in the registered vocabulary) of the subscriber's
    /// interest words found in the message, in the order they occur.
    #[serde(default)]
    pub interests: Vec<u32>,
}

/// Words of a message looked at for interest matching: the first distinct
/// ones only, so a long post costs no more to match than a short one (the
/// opening of a post says what it is about).
pub const WORDS_MATCHED: usize = 24;

/// Most interest words one feed subscription may register. The built-in
/// templates use under a hundred; a thousand leaves room for custom templates
/// while each subscriber's map stays a few tens of kilobytes on the server.
pub const MAX_INTERESTS: usize = 1024;

/// Longest interest word, in characters: longer strings are not words.
pub const MAX_INTEREST_CHARS: usize = 64;

/// Shortest word that counts, in characters: shorter ones are mostly
/// function words that would match everything.
const MIN_WORD_CHARS: usize = 4;

/// The words of `text` that interest matching looks at: lower-cased, at
/// least four letters, deduplicated, the first `max` in order. They stay on
/// the side that holds the text; only matched interest ids travel.
pub fn match_words(text: &str, max: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in text.split(|c: char| !c.is_alphanumeric()) {
        if out.len() >= max {
            break;
        }
        if w.chars().count() < MIN_WORD_CHARS {
            continue;
        }
        let w = w.to_lowercase();
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// Whether `word` can ever match a message word (one word of at least four
/// letters, no longer than [`MAX_INTEREST_CHARS`]).
pub fn is_matchable(word: &str) -> bool {
    word.chars().count() <= MAX_INTEREST_CHARS && match_words(word, 2) == [word.to_lowercase()]
}

/// Why a feed subscriber's interest words were refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum InterestError {
    #[error("{count} interest words: register at most {max} (drop rare words, or split the templates across workers)")]
    TooMany { count: usize, max: usize },
    #[error("interest word {index} is empty or longer than {max} characters: send single words")]
    BadWord { index: usize, max: usize },
    #[error("interest word {word:?} appears at {first} and {again}: send each word once (its position is its id)")]
    Duplicate {
        word: String,
        first: u32,
        again: u32,
    },
}

/// A feed subscriber's interest vocabulary: word `i` has id `i`. The side
/// that holds the text (the server) matches each message's words against it
/// and passes on only the ids that matched, so nothing reversible about the
/// text leaves it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InterestMatcher {
    ids: HashMap<String, u32>,
}

impl InterestMatcher {
    /// A matcher for `words` (case-insensitive), refusing more than
    /// [`MAX_INTERESTS`], empty or overlong words, and repeats.
    pub fn new(words: &[String]) -> Result<Self, InterestError> {
        if words.len() > MAX_INTERESTS {
            return Err(InterestError::TooMany {
                count: words.len(),
                max: MAX_INTERESTS,
            });
        }
        let mut ids = HashMap::with_capacity(words.len());
        for (i, w) in words.iter().enumerate() {
            if w.is_empty() || w.chars().count() > MAX_INTEREST_CHARS {
                return Err(InterestError::BadWord {
                    index: i,
                    max: MAX_INTEREST_CHARS,
                });
            }
            let id = i as u32;
            if let Some(first) = ids.insert(w.to_lowercase(), id) {
                return Err(InterestError::Duplicate {
                    word: w.clone(),
                    first,
                    again: id,
                });
            }
        }
        Ok(Self { ids })
    }

    /// Whether no word is registered (then nothing is ever matched).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Ids of the registered words among `words` (as [`match_words`] gives
    /// them), in the order they occur.
    pub fn matches<S: AsRef<str>>(&self, words: &[S]) -> Vec<u32> {
        if self.ids.is_empty() {
            return Vec::new();
        }
        words
            .iter()
            .filter_map(|w| self.ids.get(w.as_ref()).copied())
            .collect()
    }

    /// Ids of the registered words in `text`.
    pub fn match_text(&self, text: &str) -> Vec<u32> {
        self.matches(&match_words(text, WORDS_MATCHED))
    }
}

/// A registered agent as the runtime needs it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentRecord {
    pub id: AgentId,
    pub handle: String,
    pub name: String,
    pub template: String,
    pub activity: ActivityLevel,
    pub brain: String,
    pub paused: bool,
    /// Tokens per hour this agent may spend (0: the runtime default).
    pub tokens_per_hour: u32,
    /// Turns per hour this agent may take (0: the runtime default).
    pub turns_per_hour: u32,
    /// Channels the agent belongs to.
    pub channels: Vec<String>,
}

/// Which agents a worker drives: agent `id` belongs to shard
/// `hash(id) % count == index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Every agent.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Parse `i/n` (0 ≤ i < n).
    pub fn parse(raw: &str) -> Result<Shard, String> {
        let (i, n) = raw
            .split_once('/')
            .ok_or_else(|| format!("shard {raw:?} must look like i/n, e.g. 0/4"))?;
        let index: u32 = i
            .trim()
            .parse()
            .map_err(|_| format!("shard index {i:?} is not a number"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("shard count {n:?} is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!("shard {raw:?}: need 0 <= i < n"));
        }
        Ok(Shard { index, count })
    }

    /// Whether this shard drives `agent_id` (FNV-1a, stable across machines).
    pub fn owns(&self, agent_id: &str) -> bool {
        self.count <= 1 || fnv1a(agent_id.as_bytes()) % self.count as u64 == self.index as u64
    }
}

/// FNV-1a 64: a stable hash for sharding (not a secret: never for text).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Why the platform refused or failed an action.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum PlatformError {
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error("rejected: {code}: {message}")]
    Rejected { code: String, message: String },
    #[error("rate limited")]
    RateLimited,
    #[error("not found: {0}")]
    NotFound(String),
    #[error("platform unavailable: {0}")]
    Unavailable(String),
}

impl PlatformError {
    /// The error for an HTTP status with the server's error code and message,
    /// the same mapping for the in-process and the remote adapter.
    pub fn from_status(status: u16, code: &str, message: String) -> Self {
        match status {
            401 | 403 => PlatformError::Forbidden(message),
            404 => PlatformError::NotFound(message),
            429 => PlatformError::RateLimited,
            500..=599 => PlatformError::Unavailable(format!("{status}: {message}")),
            _ => PlatformError::Rejected {
                code: code.to_string(),
                message,
            },
        }
    }
}

impl From<InterestError> for PlatformError {
    fn from(e: InterestError) -> Self {
        PlatformError::Rejected {
            code: "invalid_input".into(),
            message: e.to_string(),
        }
    }
}

/// Parse a label the server sent (a bad one means the server is broken).
pub fn server_label(raw: &str) -> Result<Label, PlatformError> {
    raw.parse()
        .map_err(|e| PlatformError::Unavailable(format!("server sent a bad label {raw:?}: {e}")))
}

// What the server's API sends, read as the port's types; both adapters use
// these, so the in-process and the remote runtime see the same thing.

impl TryFrom<warroom_types::wire::MessageView> for Observed {
    type Error = PlatformError;
    fn try_from(m: warroom_types::wire::MessageView) -> Result<Self, PlatformError> {
        Ok(Observed {
            label: server_label(&m.label)?,
            message_id: m.id,
            channel_id: m.channel_id,
            seq: m.seq,
            author_is_agent: m.author.kind == "agent",
            author_id: m.author.id,
            author_handle: m.author.handle,
            body: m.body,
            thread_root: m.thread_root,
        })
    }
}

impl TryFrom<warroom_types::wire::RetrievedChunk> for Evidence {
    type Error = PlatformError;
    fn try_from(c: warroom_types::wire::RetrievedChunk) -> Result<Self, PlatformError> {
        Ok(Evidence {
            label: server_label(&c.label)?,
            chunk_id: c.chunk_id,
            document_title: c.title,
            document_path: c.document_path,
            heading: c.heading_path.join(" › "),
            text: c.text,
            score: c.score,
        })
    }
}

impl TryFrom<warroom_types::wire::ChannelView> for ChannelInfo {
    type Error = PlatformError;
    fn try_from(c: warroom_types::wire::ChannelView) -> Result<Self, PlatformError> {
        Ok(ChannelInfo {
            label: server_label(&c.label)?,
            id: c.id,
            name: c.name,
            is_member: c.is_member,
            topic: c.topic,
        })
    }
}

/// Everything an agent can do, and the runtime's access to its own agents'
/// records and memory. There is no other capability: no files, no network,
/// no shell.
#[async_trait::async_trait]
pub trait Platform: Send + Sync + 'static {
    /// The agents of one shard (active and paused; not retired).
    async fn agents(&self, shard: Shard) -> Result<Vec<AgentRecord>, PlatformError>;
    /// The feed of new messages, from now on, with matches against the
    /// interest `words` (word `i` is reported as id `i`; see [`InterestMatcher`]).
    async fn activity(&self, words: &[String]) -> Result<mpsc::Receiver<Activity>, PlatformError>;
    /// Channels the agent belongs to or may join.
    async fn channels(&self, agent: &str) -> Result<Vec<ChannelInfo>, PlatformError>;
    /// Messages in a channel after `after_seq`, oldest first, as the agent may read them.
    async fn observe(
        &self,
        agent: &str,
        channel_id: &str,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<Observed>, PlatformError>;
    /// One message (with its thread root if it is a reply), as the agent may read it.
    async fn message(&self, agent: &str, message_id: &str) -> Result<Observed, PlatformError>;
    /// Chunks from the agent's own scope, at most `ceiling` (the label of
    /// the channel it writes for): the server counts what it hands out
    /// toward the label of the agent's next post.
    async fn retrieve(
        &self,
        agent: &str,
        query: &str,
        k: usize,
        ceiling: &Label,
    ) -> Result<Vec<Evidence>, PlatformError>;
    /// Post a message or a thread reply.
    async fn post(&self, agent: &str, draft: Draft) -> Result<Posted, PlatformError>;
    /// React to a message.
    async fn react(&self, agent: &str, message_id: &str, emoji: &str) -> Result<(), PlatformError>;
    /// Join a channel.
    async fn join(&self, agent: &str, channel_id: &str) -> Result<(), PlatformError>;
    /// Create a public channel (the agent becomes its first member).
    async fn create_channel(
        &self,
        agent: &str,
        name: &str,
        topic: &str,
        label: &Label,
    ) -> Result<ChannelInfo, PlatformError>;
    /// The agent's saved memory, if any.
    async fn load_memory(&self, agent: &str) -> Result<Option<Memory>, PlatformError>;
    /// Save the agent's memory (replaces the previous one).
    async fn save_memory(&self, agent: &str, memory: &Memory) -> Result<(), PlatformError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_agents() {
        let ids: Vec<String> = (0..1000).map(|i| format!("agent-{i}")).collect();
        let shards: Vec<Shard> = (0..3).map(|i| Shard { index: i, count: 3 }).collect();
        for id in &ids {
            assert_eq!(shards.iter().filter(|s| s.owns(id)).count(), 1);
        }
        assert!(Shard::parse("3/3").is_err());
        assert!(Shard::parse("x").is_err());
        assert_eq!(Shard::parse("1/4"), Ok(Shard { index: 1, count: 4 }));
    }

    #[test]
    fn match_words_are_case_insensitive_and_skip_short_words() {
        let w = match_words("The Supplier delay on the supplier of LIDAR", 10);
        assert_eq!(w, ["supplier", "delay", "lidar"]);
        assert_eq!(match_words("alpha beta gamma delta", 2), ["alpha", "beta"]);
    }

    #[test]
    fn the_matcher_reports_ids_of_registered_words_only() {
        let vocab: Vec<String> = ["forecast", "Margin", "salary"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let m = InterestMatcher::new(&vocab).expect("valid vocabulary");
        assert_eq!(
            m.match_text("The MARGIN and the forecast look thin"),
            [1, 0]
        );
        assert!(m.match_text("Nothing of interest here").is_empty());
        assert!(InterestMatcher::default()
            .match_text("forecast margin")
            .is_empty());
    }

    #[test]
    fn the_matcher_refuses_oversized_and_ambiguous_vocabularies() {
        let many: Vec<String> = (0..=MAX_INTERESTS).map(|i| format!("word{i}")).collect();
        assert!(matches!(
            InterestMatcher::new(&many),
            Err(InterestError::TooMany { .. })
        ));
        let twice = vec!["forecast".to_string(), "Forecast".to_string()];
        assert!(matches!(
            InterestMatcher::new(&twice),
            Err(InterestError::Duplicate {
                first: 0,
                again: 1,
                ..
            })
        ));
        let long = vec!["x".repeat(MAX_INTEREST_CHARS + 1)];
        assert!(matches!(
            InterestMatcher::new(&long),
            Err(InterestError::BadWord { index: 0, .. })
        ));
        assert!(is_matchable("Forecast"));
        assert!(!is_matchable("AI"));
        assert!(!is_matchable("cash flow"));
    }
}
