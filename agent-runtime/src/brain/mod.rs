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

impl Compose {
    /// Whether this is a reply to a person's message: a person who asks is
    /// answered even with what the channel already heard.
    pub fn answers_person(&self) -> bool {
        self.intent == Intent::Reply && self.thread.last().is_some_and(|m| !m.author_is_agent)
    }
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

/// Whether a model-written message rests on what the model was given: in
/// every sentence, at least half of the content words (five letters or
/// more, or carrying a digit: rarely function words) appear in the evidence
/// text, the thread it answers, its topic, its memory or its persona.
/// Document titles and headings do not count: a small model that loses the
/// thread echoes them, then writes greetings, apologies or invented events
/// in words found nowhere in its sources; such a message is not posted as
/// the agent's word. A message with no content word at all says nothing and
/// fails too.
pub fn grounded(text: &str, req: &Compose) -> bool {
    fn content(text: &str) -> impl Iterator<Item = String> + '_ {
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.chars().count() >= 5 || w.chars().any(|c| c.is_ascii_digit()))
            .map(str::to_lowercase)
    }
    let mut sources: HashSet<String> = HashSet::new();
    let persona = &req.persona;
    let mut add = |t: &str| sources.extend(content(t));
    for e in &req.evidence {
        add(&e.text);
    }
    for m in &req.thread {
        add(&m.body);
        add(&m.author_handle);
    }
    add(&req.topic);
    add(&req.memory);
    add(&persona.name);
    add(&persona.department);
    add(&persona.role);
    let mut any = false;
    for sentence in text.split_inclusive(['.', '!', '?', '\n']) {
        let words: Vec<String> = content(sentence).collect();
        if words.is_empty() {
            continue;
        }
        any = true;
        let found = words.iter().filter(|w| sources.contains(*w)).count();
        if found * 2 < words.len() {
            return false;
        }
    }
    any
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persona::template;

    fn req() -> Compose {
        Compose {
            persona: template("operations-analyst")
                .expect("template")
                .persona("Ada Berg"),
            intent: Intent::Reply,
            topic: "What risks do you see this quarter?".into(),
            thread: vec![],
            evidence: vec![Evidence {
                chunk_id: "c1".into(),
                document_title: "Supplier review".into(),
                document_path: "operations/supplier.md".into(),
                heading: String::new(),
                text: "Kaito Micro raised the V4 lens price by 18% from 1 March 2026, and its lead time is 22 weeks.".into(),
                label: "internal".parse().expect("label"),
                score: 0.5,
            }],
            memory: String::new(),
            max_tokens: 80,
            heard: Default::default(),
            said: Default::default(),
        }
    }

    #[test]
    fn a_message_resting_on_its_evidence_is_grounded() {
        let r = req();
        assert!(grounded(
            "The main risk: Kaito Micro raised the lens price by 18% and its lead time is 22 weeks.",
            &r
        ));
        assert!(grounded(
            "Lead time from Kaito Micro is now 22 weeks, a risk for the quarter.",
            &r
        ));
    }

    #[test]
    fn greetings_apologies_and_invented_events_are_not() {
        let r = req();
        for text in [
            "I'm sorry for the confusion.",
            "Hi Kai, I hope you're doing well. It's great to meet you at the conference in New York!",
            "The recent company restructuring has brought a fresh perspective, and the newly appointed CEO is proactive.",
            "",
            "Yes.",
            // Echoes a document title, then invents.
            "@engineering-lead-1 @finance-headline-2026/Supplier review, H2 2026 › Kaito Micro lead time. Someone with your name asked if you wanted to have them as part of your team, and they said yes.",
        ] {
            assert!(!grounded(text, &r), "{text:?}");
        }
    }
}
