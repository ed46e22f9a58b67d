//! Links across departments: facts that met in the talk, share rare names
//! and figures, sit close in meaning or complete each other, and how much
//! each link counts.

use std::collections::{HashMap, HashSet, VecDeque};

use super::super::vectors::Quantized;
use super::words::{cues, roles, Cues, Roles};
use super::{Kind, Miner, Msg};

/// How much a link counts when two facts complete each other.
const COMPLEMENT_WEIGHT: f32 = 1.0;
/// Shared names reach their full weight (1.5, about what a meeting in a
/// thread gives) when the rarest of them is in two of forty documents
/// (idf ln 20.5 = 3.0): the size of a company corpus the evaluation uses.
const ENTITY_SCALE: f32 = 2.0;

/// Statements added to each fact's count when talk meetings are divided
/// by what two facts that common would meet by chance.
const TALK_PRIOR: f32 = 2.0;

/// What a link between two facts is made of.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Parts {
    /// Meetings in the talk (against chance), plus closeness in meaning.
    pub(super) talk: f32,
    /// Shared rare names and figures (idf-weighted).
    pub(super) entities: f32,
    pub(super) meetings: u32,
    /// How well the two complete each other (0-1).
    pub(super) fit: f32,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Link {
    /// Sum over meetings in the talk of the two messages' closeness.
    talk: f32,
    meetings: u32,
    author_pairs: HashSet<u64>,
}

/// A message that stated facts, as remembered by its thread and channel.
#[derive(Debug, Clone)]
pub(super) struct Ctx {
    pub(super) facts: Vec<u32>,
    pub(super) author: u64,
    pub(super) vector: Option<Quantized>,
}

/// The period's links weighed, with what each fact reads as: what topics
/// are grown, judged and scored from.
pub(super) struct LinkGraph<'a> {
    /// Each linked pair `(a, b)` with `a < b`, and what links it.
    pub(super) strength: HashMap<(u32, u32), Parts>,
    /// Pairs that complete each other, and what they make.
    pub(super) completes: HashMap<(u32, u32), Kind>,
    /// Each fact's vector, unit length, if it has one.
    pub(super) norms: Vec<Option<Vec<f32>>>,
    pub(super) roles: Vec<Roles>,
    pub(super) fact_cues: Vec<Cues>,
    pub(super) departments: Vec<&'a str>,
}

impl Miner {
    /// Meetings: a reply met its thread; a new post met the channel's last
    /// few messages, which its author saw, if they are about the same thing.
    pub(super) fn record_meetings(&mut self, m: &Msg, root: &str, ctx: &Ctx) {
        let author = ctx.author;
        let mut met: Vec<(Vec<u32>, u64, f32)> = Vec::new();
        if m.thread_root.is_some() {
            if let Some((_, entries)) = self.threads.get(root) {
                for e in entries {
                    met.push((e.facts.clone(), e.author, closeness(ctx, e, true)));
                }
            }
        } else {
            for e in &self.window {
                met.push((e.facts.clone(), e.author, closeness(ctx, e, false)));
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
    }

    /// Remember a message that stated facts in its thread and in the
    /// channel window, for the messages that will meet it.
    pub(super) fn remember(&mut self, root: String, seq: i64, ctx: Ctx) {
        let entry = self
            .threads
            .entry(root)
            .or_insert_with(|| (seq, VecDeque::new()));
        entry.0 = seq;
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
            let horizon = seq - 20_000;
            self.threads.retain(|_, (last, _)| *last >= horizon);
        }
    }

    /// Weigh every link between facts of different departments: meetings in
    /// the talk, shared names and figures, closeness in meaning, and facts
    /// that complete each other, in that order.
    pub(super) fn weigh_links(&self) -> LinkGraph<'_> {
        let n = self.facts.len();
        let mut strength: HashMap<(u32, u32), Parts> = HashMap::new();
        self.add_talk(&mut strength);
        self.add_shared_entities(&mut strength);
        let norms: Vec<Option<Vec<f32>>> =
            self.facts.iter().map(|f| normalized(&f.vector)).collect();
        self.add_closeness(&norms, &mut strength);
        let roles: Vec<Roles> = self.facts.iter().map(|f| roles(&f.quote)).collect();
        let fact_cues: Vec<Cues> = self.facts.iter().map(|f| cues(&f.quote)).collect();
        let departments: Vec<&str> = (0..n as u32).map(|f| self.fact_department(f)).collect();
        let completes = self.add_complements(&roles, &norms, &mut strength);
        LinkGraph {
            strength,
            completes,
            norms,
            roles,
            fact_cues,
            departments,
        }
    }

    /// Meetings in the talk, against what two facts this common would
    /// meet by chance: a sentence every agent repeats meets everything.
    fn add_talk(&self, strength: &mut HashMap<(u32, u32), Parts>) {
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
    }

    /// Shared rare names and figures, across departments.
    fn add_shared_entities(&self, strength: &mut HashMap<(u32, u32), Parts>) {
        let n = self.facts.len();
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
    }

    /// Facts whose messages sit close in vector space.
    fn add_closeness(&self, norms: &[Option<Vec<f32>>], strength: &mut HashMap<(u32, u32), Parts>) {
        let n = self.facts.len();
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
    }

    /// Facts that complete each other across departments even if no one
    /// put them side by side: a need one team heard and something another
    /// team has on hand (an opportunity), or a promise one team made and a
    /// practice of another that touches the same thing (a risk). Counted
    /// only as far as the two sentences are about the same thing. Returns
    /// the pairs that do and what they make.
    fn add_complements(
        &self,
        roles: &[Roles],
        norms: &[Option<Vec<f32>>],
        strength: &mut HashMap<(u32, u32), Parts>,
    ) -> HashMap<(u32, u32), Kind> {
        let n = self.facts.len();
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
        completes
    }

    /// How much a fact's links count: template text and table rows less,
    /// sentences with names, codes and versions more.
    fn quality(&self, f: u32) -> f32 {
        let f = &self.facts[f as usize];
        (if f.boilerplate { 0.35 } else { 1.0 })
            * (if f.quote.starts_with('|') { 0.5 } else { 1.0 })
            * (0.6 + 0.4 * f.specificity)
    }

    /// The strength of the link `(a, b)`.
    pub(super) fn total_of(&self, (a, b): (u32, u32), p: &Parts) -> f32 {
        (p.talk + (p.entities / ENTITY_SCALE).min(1.5) + p.fit * COMPLEMENT_WEIGHT)
            * self.quality(a)
            * self.quality(b)
    }

    /// The links, strongest first (ties by pair, so the order is stable).
    pub(super) fn rank_links(
        &self,
        strength: &HashMap<(u32, u32), Parts>,
    ) -> Vec<((u32, u32), f32)> {
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
            .map(|(k, v)| (*k, self.total_of(*k, v)))
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
        ranked
    }
}

/// How much a meeting counts, from the cosine of the two messages' vectors:
/// a reply met its thread whatever it says, so it counts at least 0.3; a
/// post that only followed another in the channel counts only as far as the
/// two are close.
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{chunk, msg};
    use super::super::MineConfig;
    use super::*;

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
}
