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

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use warroom_agent_runtime::brain::extractive::sentences;

use crate::label::{Label, Level};

use super::judge::{self, Class, Facets, Verdict};
use super::vectors::Quantized;

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

/// What a link between two facts is made of.
#[derive(Debug, Clone, Copy, Default)]
struct Parts {
    /// Meetings in the talk (against chance), plus closeness in meaning.
    talk: f32,
    /// Shared rare names and figures (idf-weighted).
    entities: f32,
    meetings: u32,
    /// How well the two complete each other (0-1).
    fit: f32,
}

#[derive(Debug, Clone, Default)]
struct Link {
    /// Sum over meetings in the talk of the two messages' closeness.
    talk: f32,
    meetings: u32,
    author_pairs: HashSet<u64>,
}

#[derive(Debug, Clone)]
struct Ctx {
    facts: Vec<u32>,
    author: u64,
    vector: Option<Quantized>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Risk,
    Opportunity,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Risk => "risk",
            Kind::Opportunity => "opportunity",
        }
    }
}

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
        // Meetings: a reply met its thread; a new post met the channel's last
        // few messages, which its author saw, if they are about the same thing.
        let mut met: Vec<(Vec<u32>, u64, f32)> = Vec::new();
        if m.thread_root.is_some() {
            if let Some((_, entries)) = self.threads.get(&root) {
                for e in entries {
                    met.push((e.facts.clone(), e.author, closeness(&ctx, e, true)));
                }
            }
        } else {
            for e in &self.window {
                met.push((e.facts.clone(), e.author, closeness(&ctx, e, false)));
            }
        }
        for (facts, other_author, w) in met {
            if other_author == author {
                continue;
            }
            let pair = author.min(other_author) ^ author.max(other_author).rotate_left(17);
            for &a in &ctx.facts {
                for &b in &facts {
                    if a == b || self.fact_department(a) == self.fact_department(b) {
                        continue;
                    }
                    let link = self.links.entry((a.min(b), a.max(b))).or_default();
                    // One agent pair repeating itself counts a little, not fully.
                    let w = if link.author_pairs.insert(pair) {
                        w
                    } else {
                        w * 0.25
                    };
                    link.talk += w;
                    link.meetings += 1;
                }
            }
        }
        let entry = self
            .threads
            .entry(root)
            .or_insert_with(|| (m.seq, VecDeque::new()));
        entry.0 = m.seq;
        entry.1.push_back(ctx.clone());
        if entry.1.len() > self.cfg.thread_entries {
            entry.1.pop_front();
        }
        self.window.push_back(ctx);
        if self.window.len() > self.cfg.window {
            self.window.pop_front();
        }
        self.since_evict += 1;
        if self.since_evict > 20_000 {
            // Threads quiet for a long stretch of the channel are done.
            self.since_evict = 0;
            let horizon = m.seq - 20_000;
            self.threads.retain(|_, (last, _)| *last >= horizon);
        }
    }

    fn fact_department(&self, f: u32) -> &str {
        &self.chunks[self.facts[f as usize].chunk as usize].department
    }

    /// The facts a message states: for each cited chunk, its sentences that
    /// appear in the body, or else the one sharing the most words with it.
    fn claims(&mut self, m: &Msg) -> Vec<u32> {
        let mut out = Vec::new();
        let body_lc = m.body.to_lowercase();
        let body_words: HashSet<String> = words(&m.body).into_iter().collect();
        for cid in &m.citations {
            let Some(&ci) = self.chunk_index.get(cid) else {
                continue;
            };
            let sents = &self.chunk_sentences[ci as usize];
            let mut found: Vec<u16> = self.chunk_sentences_lc[ci as usize]
                .iter()
                .enumerate()
                .filter(|(_, s)| body_lc.contains(s.as_str()))
                .map(|(i, _)| i as u16)
                .collect();
            if found.is_empty() {
                let best = sents
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let n = words(s)
                            .into_iter()
                            .filter(|w| body_words.contains(w))
                            .count();
                        (n, i)
                    })
                    .max_by_key(|(n, i)| (*n, usize::MAX - *i));
                if let Some((n, i)) = best {
                    if n >= 3 {
                        found.push(i as u16);
                    }
                }
            }
            for si in found {
                let f = self.fact(ci, si);
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
        out
    }

    fn fact(&mut self, chunk: u32, sentence: u16) -> u32 {
        let quote = &self.chunk_sentences[chunk as usize][sentence as usize];
        let lc = &self.chunk_sentences_lc[chunk as usize][sentence as usize];
        let c = &self.chunks[chunk as usize];
        // One fact per department and sentence, whichever document said it.
        let key = crate::insights::hash64(&format!("{}\n{lc}", c.department));
        if let Some(f) = self.fact_index.get(&key) {
            return *f;
        }
        let docs = self
            .sentence_docs
            .get(&crate::insights::hash64(lc))
            .copied()
            .unwrap_or(1);
        let quote = quote.clone();
        let id = self.facts.len() as u32;
        self.facts.push(Fact {
            chunk,
            key: format!("{}#{:016x}", c.department, key),
            tokens: entity_tokens(&quote),
            // Bylines never get here: `sentences` leaves them out.
            boilerplate: docs >= 2,
            specificity: specificity(&quote),
            quote,
            messages: 0,
            authors: HashSet::new(),
            author_departments: BTreeSet::new(),
            refs: Vec::new(),
            vector: Vec::new(),
        });
        self.fact_index.insert(key, id);
        id
    }

    fn record(&mut self, f: u32, m: &Msg, author: u64) {
        let keep = self.cfg.refs_per_fact;
        let fact = &mut self.facts[f as usize];
        fact.messages += 1;
        let new_voice = fact.authors.insert(author);
        if let Some(d) = &m.author_department {
            fact.author_departments.insert(d.clone());
        }
        if let Some(v) = &m.vector {
            if fact.vector.is_empty() {
                fact.vector = vec![0.0; v.dim()];
            }
            v.add_to(&mut fact.vector);
        }
        if new_voice && fact.refs.len() < keep {
            let excerpt = excerpt_for(&m.body, &fact.quote);
            fact.refs.push(MsgRef {
                message_id: m.id.clone(),
                channel_id: m.channel_id.clone(),
                channel: m.channel.clone(),
                author_id: m.author_id.clone(),
                author: m.author.clone(),
                author_department: m.author_department.clone(),
                is_agent: m.is_agent,
                posted_at: m.created_at,
                label: m.label.to_string(),
                excerpt,
            });
        }
    }

    /// Group facts into scored topics. `seen` maps fact keys of the last
    /// digest's insights to how often they were stated then.
    pub fn topics(&self, seen: &HashMap<String, u32>) -> (Vec<Topic>, usize) {
        let n = self.facts.len();
        let mut strength: HashMap<(u32, u32), Parts> = HashMap::new();
        // Meetings in the talk, against what two facts this common would
        // meet by chance: a sentence every agent repeats meets everything.
        for (&(a, b), l) in &self.links {
            let ma = self.facts[a as usize].messages.max(1) as f32;
            let mb = self.facts[b as usize].messages.max(1) as f32;
            let e = strength.entry((a, b)).or_default();
            // Two facts stated once each that met once prove little: a
            // prior of a couple of statements each keeps that from counting
            // as much as a pairing the talk keeps coming back to.
            e.talk += (3.0 * l.talk / ((ma + TALK_PRIOR) * (mb + TALK_PRIOR)).sqrt()).min(3.0);
            e.meetings += l.meetings;
        }
        // Shared rare names and figures, across departments.
        let mut postings: HashMap<&str, Vec<u32>> = HashMap::new();
        for (i, f) in self.facts.iter().enumerate() {
            for t in &f.tokens {
                postings.entry(t.as_str()).or_default().push(i as u32);
            }
        }
        // Each pair counts its rarest shared name in full and the others at
        // a quarter: one name that only a couple of documents carry says two
        // facts concern one matter; many common words shared by two long
        // sentences say little more than one would.
        let cap = ((n as f32) * 0.06).max(3.0) as usize;
        let docs = self.documents.max(2) as f32;
        let mut shared: HashMap<(u32, u32), (f32, f32)> = HashMap::new();
        for (t, list) in &postings {
            if list.len() < 2 || list.len() > cap {
                continue;
            }
            let df = self.token_docs.get(*t).copied().unwrap_or(1).max(1) as f32;
            let idf = ((docs + 1.0) / df).ln().max(0.0);
            let boost = if t.chars().any(|c| c.is_ascii_digit()) {
                1.2
            } else {
                1.0
            };
            for (x, &a) in list.iter().enumerate() {
                for &b in &list[x + 1..] {
                    if self.fact_department(a) == self.fact_department(b) {
                        continue;
                    }
                    let e = shared.entry((a.min(b), a.max(b))).or_default();
                    e.0 = e.0.max(idf * boost);
                    e.1 += idf * boost;
                }
            }
        }
        for (k, (max, sum)) in shared {
            strength.entry(k).or_default().entities = max + 0.25 * (sum - max);
        }
        // Facts whose messages sit close in vector space.
        let norms: Vec<Option<Vec<f32>>> =
            self.facts.iter().map(|f| normalized(&f.vector)).collect();
        if n <= 6000 {
            for (a, va) in norms.iter().enumerate() {
                let Some(va) = va else { continue };
                for (b, vb) in norms.iter().enumerate().skip(a + 1) {
                    let Some(vb) = vb else { continue };
                    if self.fact_department(a as u32) == self.fact_department(b as u32) {
                        continue;
                    }
                    let c = dot(va, vb);
                    if c > 0.3 {
                        let e = strength.entry((a as u32, b as u32)).or_default();
                        e.talk += (c - 0.3) * 3.0;
                    }
                }
            }
        }
        // Facts that complete each other across departments even if no one
        // put them side by side: a need one team heard and something another
        // team has on hand (an opportunity), or a promise one team made and a
        // practice of another that touches the same thing (a risk). Counted
        // only as far as the two sentences are about the same thing.
        let roles: Vec<Roles> = self.facts.iter().map(|f| roles(&f.quote)).collect();
        let fact_cues: Vec<Cues> = self.facts.iter().map(|f| cues(&f.quote)).collect();
        let departments: Vec<&str> = (0..n as u32).map(|f| self.fact_department(f)).collect();
        let mut completes: HashMap<(u32, u32), Kind> = HashMap::new();
        let cast: Vec<u32> = (0..n as u32)
            .filter(|f| roles[*f as usize].any() && !self.facts[*f as usize].boilerplate)
            .collect();
        for (x, &a) in cast.iter().enumerate() {
            for &b in &cast[x + 1..] {
                if self.fact_department(a) == self.fact_department(b) {
                    continue;
                }
                let (Some(va), Some(vb)) = (&norms[a as usize], &norms[b as usize]) else {
                    continue;
                };
                let cosine = dot(va, vb);
                let (fit, kind) = complement(roles[a as usize], roles[b as usize], cosine);
                tracing::trace!(
                    fit,
                    cosine,
                    a = %self.facts[a as usize].quote,
                    b = %self.facts[b as usize].quote,
                    "complement"
                );
                if let (true, Some(kind)) = (fit > 0.0, kind) {
                    strength.entry((a.min(b), a.max(b))).or_default().fit += fit;
                    completes.insert((a.min(b), a.max(b)), kind);
                }
            }
        }
        let quality = |f: u32| {
            let f = &self.facts[f as usize];
            (if f.boilerplate { 0.35 } else { 1.0 })
                * (if f.quote.starts_with('|') { 0.5 } else { 1.0 })
                * (0.6 + 0.4 * f.specificity)
        };
        let total_of = |(a, b): (u32, u32), p: &Parts| {
            (p.talk + (p.entities / ENTITY_SCALE).min(1.5) + p.fit * COMPLEMENT_WEIGHT)
                * quality(a)
                * quality(b)
        };
        // One sentence found in two departments' documents (a policy
        // paragraph pasted into both) is one text in two places, not two
        // facts that meet.
        let text_of: Vec<String> = self
            .facts
            .iter()
            .map(|f| {
                f.quote
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_lowercase()
            })
            .collect();
        let same_text = |(a, b): (u32, u32)| text_of[a as usize] == text_of[b as usize];
        let mut ranked: Vec<((u32, u32), f32)> = strength
            .iter()
            .filter(|(k, _)| !same_text(**k))
            .map(|(k, v)| (*k, total_of(*k, v)))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        for ((a, b), v) in ranked.iter().take(60) {
            let parts = strength[&(*a, *b)];
            tracing::debug!(
                strength = v,
                talk = parts.talk,
                entities = parts.entities,
                complement = parts.fit,
                a = %self.facts[*a as usize].quote,
                b = %self.facts[*b as usize].quote,
                "link"
            );
        }
        // Every strong link seeds its own topic (a fact may serve several),
        // grown by the facts most strongly linked to it; near-duplicate
        // topics are dropped after scoring.
        // A pair that completes each other starts a topic only from facts
        // no such topic has taken (what is on hand is matched to one need,
        // the strongest first), and does so even below the seed strength.
        let mut groups: Vec<(Vec<u32>, f32, Option<Kind>)> = Vec::new();
        let mut taken: HashSet<u32> = HashSet::new();
        for ((a, b), s) in &ranked {
            if *s < MIN_COMPLEMENT_SEED.min(self.cfg.min_seed) || groups.len() >= 200 {
                break;
            }
            let completes_kind = completes.get(&(*a, *b)).copied();
            let weak = *s < self.cfg.min_seed;
            if (weak && completes_kind.is_none())
                || (completes_kind.is_some() && (taken.contains(a) || taken.contains(b)))
            {
                continue;
            }
            if groups
                .iter()
                .any(|(g, _, _)| g.contains(a) && g.contains(b))
            {
                continue;
            }
            let mut facts = vec![*a, *b];
            for ((x, y), s2) in &ranked {
                if weak
                    || *s2 < *s * self.cfg.join_share
                    || facts.len() >= self.cfg.max_facts_per_topic
                {
                    break;
                }
                // Grown from the seed pair only, so a topic does not drift
                // from fact to fact into another matter.
                let seed = |f: &u32| f == a || f == b;
                let new = match (seed(x), seed(y)) {
                    (true, false) if !facts.contains(y) => *y,
                    (false, true) if !facts.contains(x) => *x,
                    _ => continue,
                };
                // What another pairing already put to use stays there, and
                // a topic does not swallow a stronger one's seed pair.
                let swallows = groups.iter().any(|(g, _, _)| {
                    (g[0] == new && facts.contains(&g[1])) || (g[1] == new && facts.contains(&g[0]))
                });
                // A pairing grows only by more of the same pairing: more of
                // what is on hand for its need (one resource still meets one
                // need), more practices breaking its promise. Other topics
                // grow only by links that are no pairing.
                let same_making = completes.get(&(*x, *y)).copied() == completes_kind
                    && match completes_kind {
                        Some(Kind::Opportunity) => {
                            roles[new as usize].have > 0.0 && roles[new as usize].need == 0.0
                        }
                        Some(Kind::Risk) => roles[new as usize].practice > 0.0,
                        None => true,
                    };
                // A focused insight spans the matter's few departments: a
                // new department joins only while there are fewer than
                // MAX_DEPARTMENTS.
                let widens = !facts
                    .iter()
                    .any(|f| self.fact_department(*f) == self.fact_department(new));
                let depts_now = facts
                    .iter()
                    .map(|f| self.fact_department(*f))
                    .collect::<BTreeSet<_>>()
                    .len();
                if taken.contains(&new)
                    || swallows
                    || !same_making
                    || (widens && depts_now >= MAX_DEPARTMENTS)
                {
                    continue;
                }
                facts.push(new);
            }
            if completes_kind.is_some() {
                taken.extend(&facts);
            }
            groups.push((facts, *s, completes_kind));
        }
        // A matter another department says is resolved: the resolving fact
        // and the one it answers (its strongest pairing) are settled, in
        // every topic. Its weaker pairings are only dismissed below, since
        // the resolving fact is in their seed.
        let mut settled: HashSet<u32> = HashSet::new();
        let mut answered: HashSet<u32> = HashSet::new();
        let reads_settled = |f: u32| match self.facets.get(f as usize) {
            Some(x) => x.class().0 == Class::Settled,
            None => fact_cues[f as usize].resolved,
        };
        for (facts, _, _) in &groups {
            for (i, f) in facts[..2].iter().enumerate() {
                if reads_settled(*f) && answered.insert(*f) {
                    settled.insert(*f);
                    settled.insert(facts[1 - i]);
                }
            }
        }
        let mut topics = Vec::new();
        let mut dismissed = 0;
        for (mut facts, seed, completes) in groups {
            tracing::debug!(
                seed,
                ?completes,
                facts = ?facts
                    .iter()
                    .map(|f| self.facts[*f as usize].quote.chars().take(50).collect::<String>())
                    .collect::<Vec<_>>(),
                settled = facts.iter().filter(|f| settled.contains(f)).count(),
                "group"
            );
            // A settled pair dismisses the topic it seeds; a settled fact that
            // only joined another topic leaves it.
            if facts[..2].iter().any(|f| settled.contains(f)) {
                dismissed += 1;
                continue;
            }
            // A fact that says its matter is resolved leaves a topic it only
            // joined; in the seed pair it dismisses the topic (below).
            let seeds = [facts[0], facts[1]];
            facts.retain(|f| seeds.contains(f) || !(settled.contains(f) || reads_settled(*f)));
            let mut links_in = 0.0f32;
            let mut meetings = 0u32;
            let mut entities = 0.0f32;
            let mut completing = 0.0f32;
            for (x, &a) in facts.iter().enumerate() {
                for &b in &facts[x + 1..] {
                    let k = (a.min(b), a.max(b));
                    if let Some(v) = strength.get(&k) {
                        links_in += total_of(k, v);
                        meetings += v.meetings;
                        entities += v.entities;
                        completing = completing.max(v.fit);
                    }
                }
            }
            let fs: Vec<&Fact> = facts.iter().map(|f| &self.facts[*f as usize]).collect();
            let depts: BTreeSet<&str> = facts.iter().map(|f| self.fact_department(*f)).collect();
            if depts.len() < 2 {
                continue;
            }
            let text: Vec<&str> = fs.iter().map(|f| f.quote.as_str()).collect();
            let cues: Vec<Cues> = facts.iter().map(|f| fact_cues[*f as usize]).collect();
            let risk: f32 = cues.iter().map(|c| c.risk).sum();
            let opp: f32 = cues.iter().map(|c| c.opportunity).sum();
            let seed_risk = cues[0].risk + cues[1].risk;
            let seed_opp = cues[0].opportunity + cues[1].opportunity;
            let (kind, judged) = if self.facets.len() == n {
                // Meaning decides, with the facts that could settle it.
                let j = judge::judge(
                    &facts,
                    &self.facets,
                    &norms,
                    &departments,
                    seed_risk - seed_opp,
                );
                tracing::debug!(verdict = ?j.verdict, confidence = j.confidence, reason = %j.reason, "judged");
                match j.verdict {
                    Verdict::Risk => (Kind::Risk, j),
                    Verdict::Opportunity => (Kind::Opportunity, j),
                    Verdict::Settled(_) | Verdict::Nothing => {
                        dismissed += 1;
                        continue;
                    }
                }
            } else {
                // The word judge: cue words decide, a pairing that completes
                // each other says what it makes, and the seed pair's words
                // outweigh the rest. Its confidence is the links' alone.
                if cues.iter().any(|c| c.resolved) {
                    dismissed += 1;
                    continue;
                }
                let (kind, reason) = match completes {
                    Some(Kind::Opportunity) => (
                        Kind::Opportunity,
                        "a need one department heard meets something another has on hand"
                            .to_string(),
                    ),
                    Some(Kind::Risk) => (
                        Kind::Risk,
                        "a promise one department made meets another's practice on the same thing"
                            .to_string(),
                    ),
                    None if seed_opp > seed_risk || (seed_opp == seed_risk && opp > risk) => (
                        Kind::Opportunity,
                        "its facts speak of demand, capacity or gain".to_string(),
                    ),
                    None => (
                        Kind::Risk,
                        "its facts speak of failure, delay, shortfall or exposure".to_string(),
                    ),
                };
                let verdict = match kind {
                    Kind::Risk => Verdict::Risk,
                    Kind::Opportunity => Verdict::Opportunity,
                };
                (
                    kind,
                    judge::Judgement {
                        verdict,
                        confidence: 1.0,
                        reason,
                    },
                )
            };
            let voices: HashSet<u64> = fs.iter().flat_map(|f| f.authors.iter().copied()).collect();
            let voice_depts: BTreeSet<&String> = fs
                .iter()
                .flat_map(|f| f.author_departments.iter())
                .collect();
            let concreteness =
                text.iter().map(|t| concreteness(t)).sum::<f32>() / text.len() as f32;
            let impact = if self.facets.len() == n {
                judged.confidence
            } else {
                ((risk.max(opp) + cues.iter().map(|c| c.urgency).sum::<f32>()) / 3.0).min(1.0)
            };
            let known: Vec<u32> = fs
                .iter()
                .filter_map(|f| seen.get(&f.key).copied())
                .collect();
            let novelty = if known.is_empty() {
                1.0
            } else {
                1.0 - 0.5 * known.len() as f32 / fs.len() as f32
            };
            let source_strength = fs
                .iter()
                .map(|f| match self.chunk(f).label.level {
                    Level::Restricted => 1.0,
                    Level::Confidential => 0.9,
                    Level::Internal => 0.75,
                    Level::Public => 0.5,
                })
                .sum::<f32>()
                / fs.len() as f32;
            let signals = Signals {
                departments: depts.len(),
                voices: voices.len(),
                voice_departments: voice_depts.len(),
                meetings,
                shared_entities: (entities / 8.0).min(1.0),
                concreteness,
                impact,
                novelty,
                source_strength,
            };
            let specific = fs.iter().map(|f| f.specificity).sum::<f32>() / fs.len() as f32;
            let score = (links_in.ln_1p()) * 1.5
                + specific
                + (depts.len().min(3) as f32 - 1.0) * 0.8
                + (voices.len() as f32).ln_1p() * 0.4
                + (voice_depts.len() as f32).ln_1p() * 0.4
                + concreteness * 0.8
                + impact * 0.8
                + novelty * 0.3
                + source_strength * 0.3
                // Facts that complete each other say why the topic matters,
                // which talk alone (agents near each other) does not.
                + completing * 1.5;
            // How sure: the seed link (how strongly two departments' facts
            // were found to concern one matter), the departments and voices
            // behind it and how concrete its facts are. The sum of all links
            // inside a topic (which ranks it) grows with its size and would
            // read 0.99 for every broad topic.
            let confidence = (1.0
                - (-0.35
                    * (seed
                        + depts.len() as f32 * 0.5
                        + voices.len().min(8) as f32 * 0.2
                        + concreteness))
                    .exp())
            .clamp(0.05, 0.99);
            // Sure only as far as both the links and the judge are.
            let confidence = confidence * judged.confidence;
            topics.push(Topic {
                kind,
                facts,
                score,
                confidence: (confidence * 100.0).round() / 100.0,
                signals,
                reason: judged.reason,
            });
        }
        topics.sort_by(|a, b| b.score.total_cmp(&a.score));
        let mut kept: Vec<Topic> = Vec::new();
        let mut per_kind: HashMap<Kind, usize> = HashMap::new();
        for t in topics {
            let dup = kept.iter().any(|k| {
                let shared = t.facts.iter().filter(|f| k.facts.contains(f)).count();
                shared * 2 > t.facts.len().min(k.facts.len())
            });
            let c = per_kind.entry(t.kind).or_default();
            tracing::debug!(
                score = t.score,
                kind = t.kind.as_str(),
                dup,
                first = %self.facts[t.facts[0] as usize].quote.chars().take(50).collect::<String>(),
                "ranked"
            );
            if dup || *c >= self.cfg.max_per_kind {
                continue;
            }
            *c += 1;
            kept.push(t);
        }
        let topics = kept;
        (topics, dismissed)
    }
}

fn closeness(a: &Ctx, b: &Ctx, thread: bool) -> f32 {
    let cos = match (&a.vector, &b.vector) {
        (Some(x), Some(y)) => Some(x.cosine(y).max(0.0)),
        _ => None,
    };
    match (thread, cos) {
        (true, Some(c)) => 0.3 + 0.7 * c,
        (true, None) => 0.6,
        (false, Some(c)) => ((c - 0.2) * 1.25).max(0.0),
        (false, None) => 0.1,
    }
}

fn normalized(v: &[f32]) -> Option<Vec<f32>> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    (n > 0.0).then(|| v.iter().map(|x| x / n).collect())
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Lower-case words of four letters or more.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 4)
        .map(|w| w.to_lowercase())
        .collect()
}

const STOP: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "the",
    "and",
    "for",
    "with",
    "that",
    "this",
    "from",
    "have",
    "has",
    "was",
    "were",
    "are",
    "our",
    "their",
    "they",
    "will",
    "into",
    "than",
    "then",
    "which",
    "about",
    "after",
    "before",
    "since",
    "each",
    "every",
    "also",
    "more",
    "most",
    "less",
    "only",
    "over",
    "under",
    "per",
    "team",
    "teams",
    "week",
    "weeks",
    "month",
    "months",
    "year",
    "years",
    "customer",
    "customers",
    "company",
    "new",
    "all",
    "two",
    "three",
    "one",
    "not",
    "but",
    "its",
    "any",
    "there",
    "these",
    "those",
    "what",
    "when",
    "been",
    "being",
    "would",
    "could",
    "should",
    "other",
    "some",
    "such",
    "same",
    "both",
    "asked",
    "whether",
    "second",
    "every",
    "within",
    "during",
    "across",
    "first",
    "last",
    "next",
    "working",
    "review",
    "reviewed",
    "monthly",
    "weekly",
    "quarter",
    "plan",
    "now",
    "still",
    "them",
    "your",
    "open",
    "runs",
    "held",
];

/// Names and figures of a sentence: words that are not common, and numbers.
/// Whether a lower-case word is too common to name anything.
pub fn is_stop_word(w: &str) -> bool {
    STOP.contains(&w)
}

/// Lower-case names, figures and rare words of a sentence, stemmed.
pub fn entity_tokens(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for raw in
        text.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | ':' | '(' | ')' | '"'))
    {
        let t = raw.trim_matches(|c: char| !c.is_alphanumeric() && c != '%' && c != '$');
        if t.is_empty() {
            continue;
        }
        let lc = t.to_lowercase();
        let has_digit = lc.chars().any(|c| c.is_ascii_digit());
        if has_digit {
            if lc.len() >= 2 {
                out.push(lc);
            }
            continue;
        }
        if lc.len() < 4 || STOP.contains(&lc.as_str()) {
            continue;
        }
        let stem = lc.trim_end_matches('s').to_string();
        if !out.contains(&stem) {
            out.push(stem);
        }
    }
    out
}

/// Word cues: common English words and phrases for trouble, gain, urgency
/// and closure, none naming a product, customer or event of any corpus.
/// With a sentence model they are only a weak prior (the seed pair's lean
/// breaks a tie between risk and opportunity); without one they are the
/// fallback judge.
#[derive(Debug, Default, Clone, Copy)]
struct Cues {
    risk: f32,
    opportunity: f32,
    urgency: f32,
    resolved: bool,
}

const RISK: &[(&str, f32)] = &[
    ("outage", 1.0),
    ("fail", 1.0),
    ("defect", 1.0),
    ("complain", 1.0),
    ("churn", 1.0),
    ("delay", 1.0),
    ("late", 0.6),
    ("overdue", 1.0),
    ("breach", 1.0),
    ("violat", 1.0),
    ("penalt", 1.0),
    ("lawsuit", 1.0),
    ("litigation", 0.8),
    ("suit ", 0.6),
    ("shortage", 1.0),
    ("% of capacity", 1.0),
    ("at capacity", 1.0),
    ("cannot", 0.8),
    ("can't", 0.8),
    ("could not", 0.6),
    ("no budget", 1.0),
    ("not planned", 1.0),
    ("risk", 0.8),
    ("exposure", 0.8),
    ("expir", 0.6),
    ("declin", 0.8),
    ("drop", 0.6),
    ("loss", 0.8),
    ("lost", 0.6),
    ("miss", 0.6),
    ("single supplier", 1.0),
    ("sole supplier", 1.0),
    ("attrition", 1.0),
    ("resign", 1.0),
    ("frozen", 0.8),
    ("recall", 1.0),
    ("escalat", 0.8),
    ("regress", 1.0),
    ("incident", 0.6),
    ("deadline", 0.6),
    ("guarantee", 0.8),
    ("commit", 0.5),
    ("price increase", 0.8),
    ("raised prices", 0.8),
    ("over budget", 1.0),
    ("overrun", 1.0),
    ("false ", 0.6),
    ("error", 0.6),
    ("warning", 0.6),
    ("replaced", 0.4),
    ("service credit", 1.0),
    ("terminat", 0.8),
];

const OPPORTUNITY: &[(&str, f32)] = &[
    ("asked whether", 1.2),
    ("asked for", 1.0),
    ("asked us", 1.0),
    ("request", 0.8),
    ("demand", 0.8),
    ("want", 0.8),
    ("interest", 0.8),
    ("could buy", 1.0),
    ("would pay", 1.0),
    ("willing to", 1.0),
    ("opportunit", 1.0),
    ("spare", 1.0),
    ("idle", 1.0),
    ("unused", 1.0),
    ("underused", 1.0),
    ("available", 0.6),
    ("already", 0.8),
    ("prototype", 1.0),
    ("grant", 1.0),
    ("partner", 0.6),
    ("resell", 0.8),
    ("upsell", 1.0),
    ("expand", 0.6),
    ("win", 0.5),
    ("saving", 0.8),
    ("surplus", 1.0),
    ("allow", 0.8),
    ("reuse", 0.8),
    ("eligible", 1.0),
];

const URGENT: &[&str] = &[
    "january",
    "february",
    "march",
    "april",
    "may ",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "deadline",
    "by the end",
    "next week",
    "this quarter",
    "renewal",
    "due ",
];

/// Verbs that say a matter has ended, as whole words in any tense they are
/// written in ("the team withdrew the field", "the advisory was closed"):
/// the ordinary English of closing an incident, a claim, a case or a request.
/// Words with another common sense in business text ("fixed costs",
/// "completed", "replaced", "can be restored") are left out or kept only
/// as phrases below.
const CLOSED_WORDS: &[&str] = &[
    "resolved",
    "withdrawn",
    "withdrew",
    "rescinded",
    "revoked",
    "retracted",
    "cancelled",
    "canceled",
    "superseded",
    "settled",
    "reimbursed",
    "dismissed",
    "closed",
    "waived",
];

/// Phrases that say a matter has ended or had no effect.
const RESOLVED: &[&str] = &[
    "no impact",
    "no action needed",
    "no action is needed",
    "already fixed",
    "has been fixed",
    "was fixed",
    "were fixed",
    "was restored",
    "were restored",
    "been restored",
    "no longer",
    "not affected",
    "paid in full",
];

/// The word cues of a sentence: (risk, opportunity, says it is resolved).
/// Only a weak prior for the judge, and the fallback without a sentence model.
pub fn word_lean(text: &str) -> (f32, f32, bool) {
    let c = cues(text);
    (c.risk, c.opportunity, c.resolved)
}

fn cues(text: &str) -> Cues {
    let t = format!("{} ", text.to_lowercase());
    let mut c = Cues::default();
    for (w, s) in RISK {
        if t.contains(w) {
            c.risk += s;
        }
    }
    for (w, s) in OPPORTUNITY {
        if t.contains(w) {
            c.opportunity += s;
        }
    }
    for w in URGENT {
        if t.contains(w) {
            c.urgency += 0.5;
        }
    }
    let words: Vec<&str> = t
        .split(|c: char| !(c.is_alphanumeric() || c == '-'))
        .filter(|w| !w.is_empty())
        .collect();
    // "no employee was affected", "nobody was affected": no one was hit.
    let unaffected = words.windows(2).enumerate().any(|(i, w)| {
        matches!(w[0], "was" | "were")
            && w[1] == "affected"
            && words[i.saturating_sub(3)..i]
                .iter()
                .any(|x| matches!(*x, "no" | "nobody" | "none"))
    });
    c.resolved = unaffected
        || RESOLVED.iter().any(|w| t.contains(w))
        || words.iter().any(|w| CLOSED_WORDS.contains(w));
    c.risk = c.risk.max(0.0);
    c
}

/// What a sentence can bring to a pairing with another department's, each
/// 0-1 by how plainly it says so.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Roles {
    /// Someone wants something: a customer's request, a partner's question.
    need: f32,
    /// Something on hand: spare capacity, work already done, a right held.
    have: f32,
    /// A promise made outside: a contract term, a guarantee.
    promise: f32,
    /// How something is actually done or where it goes: data copied,
    /// stored or sent somewhere, work moved elsewhere.
    practice: f32,
}

impl Roles {
    fn any(self) -> bool {
        self.need > 0.0 || self.have > 0.0 || self.promise > 0.0 || self.practice > 0.0
    }
}

const NEED: &[(&str, f32)] = &[
    ("asked whether", 1.0),
    ("asked if", 1.0),
    ("asked for", 1.0),
    ("asked us", 1.0),
    ("asking for", 1.0),
    ("asking whether", 1.0),
    ("requested", 0.8),
    ("request for", 0.8),
    ("requests for", 0.8),
    ("would like", 0.7),
    ("would pay", 1.0),
    ("willing to pay", 1.0),
    ("looking for", 0.7),
    ("interested in", 0.7),
    ("demand for", 0.8),
    ("want to buy", 1.0),
    ("could buy", 1.0),
    ("enquir", 0.7),
    ("inquir", 0.7),
];

const HAVE: &[(&str, f32)] = &[
    ("spare", 1.0),
    ("idle", 1.0),
    ("underused", 1.0),
    ("under-used", 1.0),
    ("surplus", 1.0),
    ("excess capacity", 1.0),
    ("free capacity", 1.0),
    ("unused", 0.6),
    ("prototype", 0.8),
    ("already ", 0.7),
    ("in stock", 0.7),
    ("on hand", 0.7),
    ("is available", 0.6),
    ("are available", 0.6),
    ("allow ", 0.6),
    ("allows ", 0.6),
    ("eligible", 0.7),
];

const PROMISE: &[(&str, f32)] = &[
    ("guarantee", 1.0),
    ("promised", 1.0),
    ("committed to", 0.8),
    ("commits to", 0.8),
    ("contract requires", 1.0),
    ("contractually", 1.0),
    ("stays within", 0.8),
    ("stay within", 0.8),
    ("must remain", 0.8),
    ("must stay", 0.8),
    ("at all times", 0.6),
];

const PRACTICE: &[(&str, f32)] = &[
    ("replicated", 1.0),
    ("copied to", 1.0),
    ("backed up", 1.0),
    ("stored in", 0.8),
    ("stored on", 0.8),
    ("hosted in", 0.8),
    ("hosted on", 0.8),
    ("transferred to", 0.8),
    ("sent to", 0.6),
    ("moved to", 0.6),
    ("processed in", 0.8),
    ("routed through", 0.8),
    ("shared with", 0.6),
    ("outsourced", 0.8),
    ("subcontract", 0.8),
];

fn roles(text: &str) -> Roles {
    let t = format!("{} ", text.to_lowercase());
    let strongest = |list: &[(&str, f32)]| {
        list.iter()
            .filter(|(w, _)| t.contains(w))
            .map(|(_, s)| *s)
            .fold(0.0f32, f32::max)
    };
    Roles {
        need: strongest(NEED),
        have: strongest(HAVE).max(if idle_capacity(&t) { 1.0 } else { 0.0 }),
        promise: strongest(PROMISE),
        practice: strongest(PRACTICE),
    }
}

/// Whether a sentence says capacity sits partly unused: "capacity" or
/// "utilization" with "half", "partly" or "under", or a share below 60%,
/// in the three words before it ("runs at about half capacity", "ran at
/// 41% utilization").
fn idle_capacity(t: &str) -> bool {
    let words: Vec<&str> = t.split_whitespace().collect();
    words.iter().enumerate().any(|(i, w)| {
        let w = w.trim_matches(|c: char| !c.is_alphanumeric());
        matches!(w, "capacity" | "utilization" | "utilisation")
            && words[i.saturating_sub(3)..i].iter().any(|x| {
                let x = x.trim_matches(|c: char| !(c.is_alphanumeric() || c == '%'));
                matches!(x, "half" | "partly" | "partially" | "under")
                    || x.strip_suffix('%')
                        .and_then(|n| n.parse::<f32>().ok())
                        .is_some_and(|n| n < 60.0)
            })
    })
}

/// How much a link counts when two facts complete each other.
const COMPLEMENT_WEIGHT: f32 = 1.0;
/// Shared names reach their full weight (1.5, about what a meeting in a
/// thread gives) when the rarest of them is in two of forty documents
/// (idf ln 20.5 = 3.0): the size of a company corpus the evaluation uses.
const ENTITY_SCALE: f32 = 2.0;

/// Departments one insight spans at most: a matter's own two, and one more
/// that adds a fact (the digest's reader acts with these few teams).
const MAX_DEPARTMENTS: usize = 3;

/// Statements added to each fact's count when talk meetings are divided
/// by what two facts that common would meet by chance.
const TALK_PRIOR: f32 = 2.0;

/// Least strength of a link made by a complement alone (no talk) that
/// starts a topic; such a topic takes facts no stronger topic has.
const MIN_COMPLEMENT_SEED: f32 = 0.2;

/// How well two facts complete each other (0-1) and what they make, from
/// their roles and the cosine of their sentences. A need met by something
/// on hand rarely shares words with it, so meaning only adds; a promise and
/// the practice that breaks it must be about the same thing.
fn complement(a: Roles, b: Roles, cosine: f32) -> (f32, Option<Kind>) {
    let ramp = |lo: f32, hi: f32| ((cosine - lo) / (hi - lo)).clamp(0.0, 1.0);
    let mut best = (0.0f32, None);
    let need_have = (a.need * b.have * (1.0 - b.need)).max(b.need * a.have * (1.0 - a.need));
    if need_have > 0.0 {
        let fit = need_have * (0.5 + 0.5 * ramp(0.0, 0.3));
        if fit > best.0 {
            best = (fit, Some(Kind::Opportunity));
        }
    }
    let promised = (a.promise * b.practice * (1.0 - b.promise))
        .max(b.promise * a.practice * (1.0 - a.promise));
    if promised > 0.0 {
        let fit = promised * ramp(0.1, 0.3);
        if fit > best.0 {
            best = (fit, Some(Kind::Risk));
        }
    }
    best
}

/// Month names, as written in documents.
pub const MONTHS: &[&str] = &[
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Capitalised words that are not names (months are too).
const COMMON_CAPS: &[&str] = &[
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "The",
    "Our",
    "We",
    "All",
    "Each",
    "From",
    "At",
    "No",
];

/// Names, codes and versions in a sentence (0-1): capitalised words past
/// the first, and tokens mixing letters with digits or dots.
pub fn specificity(s: &str) -> f32 {
    let mut n = 0;
    for (i, raw) in s.split_whitespace().enumerate() {
        let w = raw.trim_matches(|c: char| !c.is_alphanumeric());
        if w.is_empty() {
            continue;
        }
        let code = w.chars().any(|c| c.is_ascii_digit())
            && (w.chars().any(|c| c.is_alphabetic()) || w.contains('.'));
        let name = i > 0
            && w.chars().next().is_some_and(|c| c.is_uppercase())
            && !MONTHS.contains(&w)
            && !COMMON_CAPS.contains(&w);
        if code || name {
            n += 1;
        }
    }
    (n as f32 / 3.0).min(1.0)
}

/// Numbers, money, percentages and dates in a sentence (0-1).
pub fn concreteness(s: &str) -> f32 {
    let digits = s.chars().filter(|c| c.is_ascii_digit()).count().min(8) as f32 / 8.0;
    let money = if s.contains('%') || s.contains('$') || s.contains('€') || s.contains('£') {
        0.4
    } else {
        0.0
    };
    (digits * 0.6 + money).min(1.0)
}

/// The part of a message that states `quote`: the quote itself when the
/// message contains it, else the message's opening.
fn excerpt_for(body: &str, quote: &str) -> String {
    if body.to_lowercase().contains(&quote.to_lowercase()) {
        return quote.to_string();
    }
    let mut s: String = body.chars().take(280).collect();
    if body.chars().count() > 280 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(id: &str, dept: &str, text: &str) -> ChunkInfo {
        ChunkInfo {
            id: id.into(),
            document_path: format!("{dept}/{id}.md"),
            document_title: id.into(),
            department: dept.into(),
            label: "internal".parse().expect("label"),
            text: text.into(),
        }
    }

    fn msg(
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

    #[test]
    fn cross_department_facts_that_meet_become_a_risk_and_resolved_ones_are_dropped() {
        let chunks = vec![
            chunk("s1", "support", "Acme Freight reported GPS drift of 300 metres since firmware 4.2 shipped. The kitchen was repainted."),
            chunk("e1", "engineering", "Firmware 4.2 replaced the antenna driver in March."),
            chunk("h1", "hr", "The payroll provider had an outage on the 28th and payroll could not be submitted."),
            chunk("f1", "finance", "Salaries were paid on time through the backup payroll run; no employee was affected."),
        ];
        let mut m = Miner::new(MineConfig::default(), chunks);
        let mut i = 0;
        for round in 0..3 {
            i += 1;
            let root = format!("m{i}");
            m.push(msg(i, &format!("sup{round}"), "support", None, "Flagging: \"Acme Freight reported GPS drift of 300 metres since firmware 4.2 shipped.\"", &["s1"]));
            i += 1;
            m.push(msg(
                i,
                &format!("eng{round}"),
                "engineering",
                Some(&root),
                "Our documents say: \"Firmware 4.2 replaced the antenna driver in March.\"",
                &["e1"],
            ));
            i += 1;
            let root = format!("m{i}");
            m.push(msg(i, &format!("hr{round}"), "hr", None, "\"The payroll provider had an outage on the 28th and payroll could not be submitted.\"", &["h1"]));
            i += 1;
            m.push(msg(i, &format!("fin{round}"), "finance", Some(&root), "\"Salaries were paid on time through the backup payroll run; no employee was affected.\"", &["f1"]));
        }
        let (topics, dismissed) = m.topics(&HashMap::new());
        assert_eq!(dismissed, 1, "the payroll outage is resolved by finance");
        assert_eq!(topics.len(), 1, "{topics:?}");
        let t = &topics[0];
        assert_eq!(t.kind, Kind::Risk);
        assert_eq!(t.signals.departments, 2);
        assert!(t.signals.voices >= 4);
        let quotes: Vec<&str> = t
            .facts
            .iter()
            .map(|f| m.facts[*f as usize].quote.as_str())
            .collect();
        assert!(quotes.iter().any(|q| q.contains("antenna")));
        assert!(
            quotes.iter().all(|q| !q.contains("kitchen")),
            "unquoted sentences are not facts"
        );
    }

    #[test]
    fn a_need_and_spare_capacity_in_two_departments_pair_up_without_meeting() {
        let chunks = vec![
            chunk(
                "s1",
                "sales",
                "The Dunmore reseller asked whether we could ship pre-assembled starter kits.",
            ),
            chunk(
                "o1",
                "operations",
                "The Leeds night shift runs at about half capacity on weekdays.",
            ),
            chunk(
                "m1",
                "marketing",
                "The spring catalogue goes to print in the first week of April.",
            ),
        ];
        let mut m = Miner::new(MineConfig::default(), chunks);
        // Each fact stated in its own thread, by its own department: no meeting.
        for (i, (c, body)) in [
            (
                "s1",
                "\"The Dunmore reseller asked whether we could ship pre-assembled starter kits.\"",
            ),
            (
                "o1",
                "\"The Leeds night shift runs at about half capacity on weekdays.\"",
            ),
            (
                "m1",
                "\"The spring catalogue goes to print in the first week of April.\"",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let dept = &m.chunks[i].department.clone();
            m.push(msg(i * 10, &format!("{c}-agent"), dept, None, body, &[c]));
        }
        assert_eq!(m.facts.len(), 3);
        let none = m.topics(&HashMap::new()).0;
        assert!(none.is_empty(), "no vectors, no meeting: {none:?}");
        // Sentence vectors that say the kits and the shift are loosely related
        // (a need and what is on hand rarely share words), the catalogue not.
        let vectors = [[1.0, 0.0, 0.0], [0.3, 0.95, 0.0], [0.25, 0.0, 0.97]];
        for (f, v) in m.facts.iter_mut().zip(vectors) {
            f.vector = v.to_vec();
        }
        let (topics, _) = m.topics(&HashMap::new());
        assert_eq!(topics.len(), 1, "{topics:?}");
        assert_eq!(topics[0].kind, Kind::Opportunity);
        let quotes: Vec<&str> = topics[0]
            .facts
            .iter()
            .map(|f| m.facts[*f as usize].quote.as_str())
            .collect();
        assert!(quotes.iter().any(|q| q.contains("Dunmore")), "{quotes:?}");
        assert!(quotes.iter().any(|q| q.contains("Leeds")), "{quotes:?}");
        // A promise and a practice need to be about the same thing.
        let promise = roles("The Vannen contract guarantees that all data stays within Norway.");
        let practice = roles("Nightly backups are copied to a bucket in Ohio.");
        assert!(promise.promise > 0.0 && practice.practice > 0.0 && practice.promise == 0.0);
        assert_eq!(complement(promise, practice, 0.05).0, 0.0);
        assert_eq!(
            complement(promise, practice, 0.4),
            (1.0, Some(Kind::Risk)),
            "a promise broken by a practice about the same thing"
        );
        let ask = roles("Two clinics asked whether we could host their archives.");
        let spare = roles("The Leeds rack room has spare capacity for forty servers.");
        assert_eq!(complement(ask, spare, -0.1).1, Some(Kind::Opportunity));
        assert_eq!(
            complement(ask, ask, 0.9).0,
            0.0,
            "two needs do not meet each other"
        );
        assert_eq!(
            roles("Travel is reviewed against the per-team allowance."),
            Roles::default()
        );
    }

    #[test]
    fn language_decides_the_kind() {
        assert!(
            cues("Two insurers asked whether they could buy anonymised statistics.").opportunity
                > 1.0
        );
        assert!(cues("The support team is running at 95% of capacity.").risk >= 1.0);
        assert!(cues("Salaries were paid on time; no employee was affected.").resolved);
        assert!(cues("The payroll error has been settled with the bank.").resolved);
        assert!(!cues("The payroll run is due on Friday.").resolved);
        assert!(idle_capacity("the line ran at 41% utilization in q2."));
        assert!(idle_capacity(
            "the night shift runs at about half capacity."
        ));
        assert!(!idle_capacity(
            "the support team is running at 95% of capacity."
        ));
        assert!(cues("The outage lasted an hour and no customer was affected.").resolved);
        assert!(!cues("Three customers were affected by the outage.").resolved);
        assert!(cues("The team withdrew the field in the August redesign.").resolved);
        assert!(!cues("Sales reported 14 closed-lost deals in Q2.").resolved);
        assert!(entity_tokens("Halvorsen renews in March for $2.1M.")
            .contains(&"halvorsen".to_string()));
        assert!(
            entity_tokens("Halvorsen renews in March for $2.1M.").contains(&"$2.1m".to_string())
        );
    }
}
