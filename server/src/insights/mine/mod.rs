//! The insights miner: its types, the streaming [`Miner`] and its public API.
//!
//! Mining a period's transcripts for risks and opportunities.
//!
//! The unit of evidence is a **fact**: one sentence of a cited document chunk
//! that a message stated (extractive messages quote it; model-written ones are
//! matched to the cited chunk's closest sentence). The job streams messages
//! channel by channel, in order, and records:
//!
//! - which facts were stated, by whom (agents and people of which department),
//!   in which messages;
//! - **links** between facts of different departments that met in the talk:
//!   in the same thread, or in the few messages an agent saw before it wrote
//!   (the channel window). Each meeting counts by how close the two messages
//!   are (cosine of the vectors embedded when they were posted);
//! - facts that share rare names and figures (a customer, a firmware version,
//!   a site), and facts whose messages sit close in vector space, even if no
//!   one put them side by side.
//!
//! Topics are grown greedily from the strongest cross-department links. Each
//! is scored from signals that can be read back in the digest (departments
//! converging, independent agents, meetings in the talk, concrete numbers
//! and dates, impact and urgency words, novelty against the last digest, the
//! cited sources' weight), classified as a risk or an opportunity by the
//! language of its facts, and dropped when one department's facts say the
//! matter is already resolved.
//!
//! The parts, by seam: `facts.rs` finds the facts a message states,
//! `links.rs` records and weighs the links between facts of different
//! departments, `topics.rs` grows topics from the links and ranks them, and
//! `words.rs` holds the word lists and cues every step reads sentences with.

mod facts;
mod links;
mod topics;
mod words;

pub use words::{concreteness, entity_tokens, is_stop_word, specificity, word_lean, words, MONTHS};

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use warroom_agent_runtime::brain::extractive::sentences;

use crate::label::{Label, Level};

use super::judge::Facets;
use super::vectors::Quantized;
use links::{Ctx, Link};

/// Tunables of the miner; the defaults are what the evaluation measured.
#[derive(Debug, Clone)]
pub struct MineConfig {
    /// Insights kept per kind.
    pub max_per_kind: usize,
    /// Facts in one topic at most.
    pub max_facts_per_topic: usize,
    /// Messages before a post that count as what its author saw.
    pub window: usize,
    /// Recent entries remembered per thread.
    pub thread_entries: usize,
    /// Least link strength that starts a topic.
    pub min_seed: f32,
    /// A fact joins a topic when its link is at least this share of the seed's.
    pub join_share: f32,
    /// Messages kept as evidence per fact.
    pub refs_per_fact: usize,
}

impl Default for MineConfig {
    fn default() -> Self {
        Self {
            max_per_kind: 10,
            max_facts_per_topic: 6,
            window: 4,
            thread_entries: 8,
            min_seed: 0.4,
            join_share: 0.45,
            refs_per_fact: 3,
        }
    }
}

/// A cited chunk as the miner needs it.
#[derive(Debug, Clone)]
pub struct ChunkInfo {
    pub id: String,
    pub document_path: String,
    pub document_title: String,
    pub department: String,
    pub label: Label,
    pub text: String,
}

/// One message of the transcript.
#[derive(Debug, Clone)]
pub struct Msg {
    pub id: String,
    pub channel_id: String,
    pub channel: String,
    pub seq: i64,
    pub author_id: String,
    pub author: String,
    pub author_department: Option<String>,
    pub is_agent: bool,
    pub thread_root: Option<String>,
    pub created_at: DateTime<Utc>,
    pub body: String,
    pub label: Label,
    pub vector: Option<Quantized>,
    pub citations: Vec<String>,
}

/// A message kept as evidence.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MsgRef {
    pub message_id: String,
    pub channel_id: String,
    pub channel: String,
    pub author_id: String,
    pub author: String,
    pub author_department: Option<String>,
    pub is_agent: bool,
    pub posted_at: DateTime<Utc>,
    pub label: String,
    pub excerpt: String,
}

/// A stated sentence of a document.
#[derive(Debug, Clone)]
pub struct Fact {
    pub chunk: u32,
    pub quote: String,
    pub key: String,
    pub messages: u32,
    pub authors: HashSet<u64>,
    pub author_departments: BTreeSet<String>,
    pub refs: Vec<MsgRef>,
    pub vector: Vec<f32>,
    pub tokens: Vec<String>,
    /// The sentence appears in more than one document: template text.
    pub boilerplate: bool,
    /// Names, codes and versions in it (0-1).
    pub specificity: f32,
}

/// What the miner found: candidate insights before ranking and wording.
#[derive(Debug, Clone)]
pub struct Topic {
    pub kind: Kind,
    pub facts: Vec<u32>,
    pub score: f32,
    pub confidence: f32,
    pub signals: Signals,
    /// Why the judge called it a risk or an opportunity.
    pub reason: String,
}

/// Risk or opportunity.
pub use warroom_types::InsightKind as Kind;

/// The signals behind a score, shown in the digest.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Signals {
    /// Departments whose documents the topic's facts come from.
    pub departments: usize,
    /// Distinct agents and people who stated them.
    pub voices: usize,
    /// Departments of the voices.
    pub voice_departments: usize,
    /// Times the facts met in a thread or a reply window.
    pub meetings: u32,
    /// Shared names and figures across departments (0-1).
    pub shared_entities: f32,
    /// Numbers, money, percentages and dates (0-1).
    pub concreteness: f32,
    /// Impact and urgency language (0-1).
    pub impact: f32,
    /// 1 for new against the last digest, less as it repeats.
    pub novelty: f32,
    /// Weight of the cited sources (0-1).
    pub source_strength: f32,
}

/// Activity per channel, department and day, for the digest's chart.
pub type ActivityKey = (String, String, String);

/// The streaming miner.
pub struct Miner {
    cfg: MineConfig,
    chunks: Vec<ChunkInfo>,
    chunk_sentences: Vec<Vec<String>>,
    /// The same, lower-cased once (every message is matched against them).
    chunk_sentences_lc: Vec<Vec<String>>,
    chunk_index: HashMap<String, u32>,
    pub facts: Vec<Fact>,
    fact_index: HashMap<u64, u32>,
    /// Documents each sentence (lower-cased) appears in.
    sentence_docs: HashMap<u64, u32>,
    /// Documents (of the cited chunks) each name or figure appears in, and
    /// how many documents there are: a name few documents carry marks one
    /// matter; one most documents carry (the company, its main product)
    /// marks nothing in particular.
    token_docs: HashMap<String, u32>,
    documents: u32,
    links: HashMap<(u32, u32), Link>,
    channel: Option<String>,
    threads: HashMap<String, (i64, VecDeque<Ctx>)>,
    window: VecDeque<Ctx>,
    since_evict: u64,
    /// Messages seen, and those that stated at least one fact.
    pub messages: u64,
    pub stating: u64,
    pub thread_count: u64,
    seen_threads: HashSet<u64>,
    pub activity: HashMap<ActivityKey, u64>,
    /// Highest label of each channel's messages in the period.
    pub channel_labels: HashMap<String, Label>,
    /// What each fact reads as, from its meaning ([`super::judge`]); set
    /// after the facts are embedded when `[insights] judge = "meaning"`.
    /// Empty otherwise: then the word cues decide.
    pub facets: Vec<Facets>,
}

impl Miner {
    /// A miner over the chunks a period's messages cite.
    pub fn new(cfg: MineConfig, chunks: Vec<ChunkInfo>) -> Self {
        let chunk_sentences: Vec<Vec<String>> = chunks
            .iter()
            .map(|c| sentences(&c.text).into_iter().map(str::to_string).collect())
            .collect();
        let chunk_sentences_lc: Vec<Vec<String>> = chunk_sentences
            .iter()
            .map(|v| v.iter().map(|s| s.to_lowercase()).collect())
            .collect();
        let chunk_index = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i as u32))
            .collect();
        let mut seen: HashSet<(u64, u64)> = HashSet::new();
        let mut sentence_docs: HashMap<u64, u32> = HashMap::new();
        let mut doc_tokens: HashSet<(u64, String)> = HashSet::new();
        let mut docs_seen: HashSet<u64> = HashSet::new();
        for ((c, sents), sents_lc) in chunks.iter().zip(&chunk_sentences).zip(&chunk_sentences_lc) {
            let doc = crate::insights::hash64(&c.document_path);
            docs_seen.insert(doc);
            for s in sents {
                for t in entity_tokens(s) {
                    doc_tokens.insert((doc, t));
                }
            }
            for s in sents_lc.iter() {
                let h = crate::insights::hash64(s);
                if seen.insert((doc, h)) {
                    *sentence_docs.entry(h).or_default() += 1;
                }
            }
        }
        let mut token_docs: HashMap<String, u32> = HashMap::new();
        for (_, t) in doc_tokens {
            *token_docs.entry(t).or_default() += 1;
        }
        Self {
            cfg,
            chunks,
            chunk_sentences,
            chunk_sentences_lc,
            chunk_index,
            facts: Vec::new(),
            fact_index: HashMap::new(),
            sentence_docs,
            token_docs,
            documents: docs_seen.len() as u32,
            links: HashMap::new(),
            channel: None,
            threads: HashMap::new(),
            window: VecDeque::new(),
            since_evict: 0,
            messages: 0,
            stating: 0,
            thread_count: 0,
            seen_threads: HashSet::new(),
            activity: HashMap::new(),
            channel_labels: HashMap::new(),
            facets: Vec::new(),
        }
    }

    /// The chunk a fact quotes.
    pub fn chunk(&self, fact: &Fact) -> &ChunkInfo {
        &self.chunks[fact.chunk as usize]
    }

    /// Feed one message; messages of a channel must come together, in order.
    pub fn push(&mut self, m: Msg) {
        if self.channel.as_deref() != Some(m.channel_id.as_str()) {
            self.channel = Some(m.channel_id.clone());
            self.threads.clear();
            self.window.clear();
        }
        self.messages += 1;
        let dept = m
            .author_department
            .clone()
            .unwrap_or_else(|| "people".into());
        *self
            .activity
            .entry((
                m.channel.clone(),
                dept.clone(),
                m.created_at.format("%Y-%m-%d").to_string(),
            ))
            .or_default() += 1;
        let cl = self
            .channel_labels
            .entry(m.channel.clone())
            .or_insert_with(|| Label::level(Level::Public));
        *cl = cl.join(&m.label);
        let root = m.thread_root.clone().unwrap_or_else(|| m.id.clone());
        if self.seen_threads.insert(crate::insights::hash64(&root)) {
            self.thread_count += 1;
        }
        let stated = self.claims(&m);
        if stated.is_empty() {
            return;
        }
        self.stating += 1;
        let author = crate::insights::hash64(&m.author_id);
        for &f in &stated {
            self.record(f, &m, author);
        }
        let ctx = Ctx {
            facts: stated,
            author,
            vector: m.vector.clone(),
        };
        self.record_meetings(&m, &root, &ctx);
        self.remember(root, m.seq, ctx);
    }

    fn fact_department(&self, f: u32) -> &str {
        &self.chunks[self.facts[f as usize].chunk as usize].department
    }
}

/// Chunks and messages for the unit tests beside each part.
#[cfg(test)]
mod test_support {
    use super::*;

    pub(super) fn chunk(id: &str, dept: &str, text: &str) -> ChunkInfo {
        ChunkInfo {
            id: id.into(),
            document_path: format!("{dept}/{id}.md"),
            document_title: id.into(),
            department: dept.into(),
            label: "internal".parse().expect("label"),
            text: text.into(),
        }
    }

    pub(super) fn msg(
        i: usize,
        author: &str,
        dept: &str,
        root: Option<&str>,
        body: &str,
        cites: &[&str],
    ) -> Msg {
        Msg {
            id: format!("m{i}"),
            channel_id: "c1".into(),
            channel: "war-room".into(),
            seq: i as i64,
            author_id: author.into(),
            author: author.into(),
            author_department: Some(dept.into()),
            is_agent: true,
            thread_root: root.map(str::to_string),
            created_at: Utc::now(),
            body: body.into(),
            label: "internal".parse().expect("label"),
            vector: None,
            citations: cites.iter().map(|s| s.to_string()).collect(),
        }
    }
}
