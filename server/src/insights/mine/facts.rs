//! Facts stated in the talk: which sentences of its cited chunks a message
//! states, and who stated each fact, where, and in which messages.

use std::collections::{BTreeSet, HashSet};

use super::words::{entity_tokens, specificity, words};
use super::{Fact, Miner, Msg, MsgRef};

impl Miner {
    /// The facts a message states: for each cited chunk, its sentences that
    /// appear in the body, or else the one sharing the most words with it.
    pub(super) fn claims(&mut self, m: &Msg) -> Vec<u32> {
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
                // The earliest sentence wins a tie.
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

    /// The fact of a chunk's sentence, made on first sight.
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

    /// Count a message that stated fact `f`: its author, its department and
    /// its vector, and keep it as evidence while the fact has few.
    pub(super) fn record(&mut self, f: u32, m: &Msg, author: u64) {
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
        // Evidence from different voices says more than one voice repeated.
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
