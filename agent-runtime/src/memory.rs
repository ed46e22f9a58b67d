//! Agent memory: recent context, a rolling summary of older context, read
//! cursors per channel and counters of what the agent did. Saved through the
//! platform after every turn, so a restarted runtime resumes where it left off.

use serde::{Deserialize, Serialize};

/// Notes kept verbatim before they are folded into the summary.
pub const RECENT: usize = 12;
/// Longest summary, in characters.
pub const SUMMARY_CHARS: usize = 800;
/// Quoted sentences remembered per agent, so it prefers what it has not said.
pub const SAID: usize = 256;
/// Longest note, in characters.
const NOTE_CHARS: usize = 240;
/// Sections of the agent's documents it saw in retrieval but has not talked
/// about yet, kept as topics for later posts.
pub const LEADS: usize = 32;
/// Sections the agent already took up as a topic (so it moves on through its
/// documents instead of returning to the first few).
pub const EXPLORED: usize = 256;

/// A section of a document the agent was handed but did not quote: a topic
/// for a later post of its own. It carries the section's label so it is only
/// ever taken up in a channel that may read that section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lead {
    /// Document title and section heading: the retrieval query, and the
    /// topic the post names.
    pub topic: String,
    pub label: crate::label::Label,
}

/// One thing the agent saw or said.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Note {
    pub channel_id: String,
    pub message_id: String,
    pub author: String,
    pub text: String,
    /// The label of what the note came from; memory is context, so it counts
    /// toward the label of the agent's next post in the same channel.
    pub label: crate::label::Label,
}

/// Counters shown to admins ("what each agent did").
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Stats {
    pub turns: u64,
    pub posts: u64,
    pub replies: u64,
    pub reactions: u64,
    pub silent: u64,
    pub refused: u64,
    pub tokens: u64,
    pub retrievals: u64,
}

/// Everything an agent remembers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Memory {
    pub recent: Vec<Note>,
    pub summary: String,
    /// The join of the labels of everything folded into the summary.
    pub summary_label: Option<crate::label::Label>,
    /// Last sequence read, per channel.
    pub cursors: Vec<(String, i64)>,
    pub stats: Stats,
    /// When the agent last took a turn (runtime clock, seconds).
    pub last_turn: Option<u64>,
    /// Keys of the sentences the agent quoted, newest last (at most [`SAID`]).
    pub said: Vec<u64>,
    /// Sections seen but not talked about yet, oldest first (at most [`LEADS`]).
    pub leads: Vec<Lead>,
    /// Keys of the sections already taken up (at most [`EXPLORED`]).
    pub explored: Vec<u64>,
}

impl Memory {
    /// Remember a note, folding the oldest into the summary when full.
    pub fn remember(&mut self, mut note: Note) {
        if self.recent.iter().any(|n| n.message_id == note.message_id) {
            return;
        }
        if note.text.chars().count() > NOTE_CHARS {
            note.text = note.text.chars().take(NOTE_CHARS).collect();
        }
        self.recent.push(note);
        while self.recent.len() > RECENT {
            let old = self.recent.remove(0);
            self.fold(&old);
        }
    }

    /// Remember that the agent quoted these sentences.
    pub fn said(&mut self, keys: impl IntoIterator<Item = u64>) {
        for k in keys {
            self.said.retain(|x| *x != k);
            self.said.push(k);
        }
        keep_newest(&mut self.said, SAID);
    }

    /// Note a section the agent was handed but did not quote, unless it
    /// already took it up or has it noted.
    pub fn lead(&mut self, topic: &str, label: &crate::label::Label) {
        let topic = topic.trim();
        if topic.is_empty() {
            return;
        }
        if self.explored.contains(&lead_key(topic)) || self.leads.iter().any(|l| l.topic == topic) {
            return;
        }
        self.leads.push(Lead {
            topic: topic.to_string(),
            label: label.clone(),
        });
        keep_newest(&mut self.leads, LEADS);
    }

    /// Take up the oldest noted section that a channel under `label` may
    /// read; it is not offered again.
    pub fn take_lead(&mut self, label: &crate::label::Label) -> Option<String> {
        let i = self.leads.iter().position(|l| l.label.within(label))?;
        let lead = self.leads.remove(i);
        self.explored.push(lead_key(&lead.topic));
        keep_newest(&mut self.explored, EXPLORED);
        Some(lead.topic)
    }

    fn fold(&mut self, note: &Note) {
        let first: String = note
            .text
            .split_inclusive(['.', '!', '?'])
            .next()
            .unwrap_or("")
            .chars()
            .take(120)
            .collect();
        if first.trim().is_empty() {
            return;
        }
        self.summary_label = Some(match &self.summary_label {
            Some(l) => l.join(&note.label),
            None => note.label.clone(),
        });
        if !self.summary.is_empty() {
            self.summary.push(' ');
        }
        self.summary
            .push_str(&format!("{}: {}", note.author, first.trim()));
        let n = self.summary.chars().count();
        if n > SUMMARY_CHARS {
            let drop = n - SUMMARY_CHARS;
            let cut: String = self.summary.chars().skip(drop).collect();
            // Start at a word boundary.
            self.summary = cut
                .split_once(' ')
                .map(|(_, rest)| rest.to_string())
                .unwrap_or(cut);
        }
    }

    /// The last sequence read in a channel (0 if never).
    pub fn cursor(&self, channel_id: &str) -> i64 {
        self.cursors
            .iter()
            .find(|(c, _)| c == channel_id)
            .map(|(_, s)| *s)
            .unwrap_or(0)
    }

    /// Move a channel's cursor forward (never back).
    pub fn advance(&mut self, channel_id: &str, seq: i64) {
        match self.cursors.iter_mut().find(|(c, _)| c == channel_id) {
            Some((_, s)) => *s = (*s).max(seq),
            None => {
                self.cursors.push((channel_id.to_string(), seq));
                if self.cursors.len() > 64 {
                    self.cursors.remove(0);
                }
            }
        }
    }

    /// Notes from one channel.
    pub fn notes_in<'a>(&'a self, channel_id: &'a str) -> impl Iterator<Item = &'a Note> + 'a {
        self.recent
            .iter()
            .filter(move |n| n.channel_id == channel_id)
    }
}

/// The key a section is remembered by once taken up.
fn lead_key(topic: &str) -> u64 {
    crate::platform::fnv1a(topic.to_lowercase().as_bytes())
}

/// Drop the oldest entries of a newest-last list beyond `max`.
fn keep_newest<T>(list: &mut Vec<T>, max: usize) {
    let over = list.len().saturating_sub(max);
    list.drain(..over);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::label::{Label, Level};

    #[test]
    fn leads_are_taken_once_oldest_first_and_only_where_their_label_fits() {
        let mut m = Memory::default();
        let internal = Label::level(Level::Internal);
        let restricted = Label::level(Level::Restricted);
        m.lead("Pricing memo: Discounts", &restricted);
        m.lead("Plant report: Line 3", &internal);
        m.lead("Plant report: Line 3", &internal);
        assert_eq!(m.leads.len(), 2, "a section is noted once");
        // An internal channel never gets the restricted section's title.
        assert_eq!(
            m.take_lead(&internal).as_deref(),
            Some("Plant report: Line 3")
        );
        assert_eq!(m.take_lead(&internal), None);
        // Taken up once: seeing it again in retrieval does not bring it back.
        m.lead("Plant report: Line 3", &internal);
        assert_eq!(m.take_lead(&internal), None);
        assert_eq!(
            m.take_lead(&restricted).as_deref(),
            Some("Pricing memo: Discounts")
        );
        for i in 0..(LEADS + 5) {
            m.lead(&format!("Doc {i}"), &internal);
        }
        assert_eq!(m.leads.len(), LEADS, "bounded");
        assert_eq!(m.leads[0].topic, "Doc 5", "the oldest are dropped first");
        let json = serde_json::to_string(&m).expect("json");
        assert_eq!(serde_json::from_str::<Memory>(&json).expect("parse"), m);
    }

    fn note(i: usize) -> Note {
        Note {
            channel_id: "c".into(),
            message_id: format!("m{i}"),
            author: format!("a{i}"),
            text: format!("Message number {i} says something. And more."),
            label: "internal".parse().expect("label"),
        }
    }

    #[test]
    fn old_notes_fold_into_a_bounded_summary() {
        let mut m = Memory::default();
        for i in 0..200 {
            m.remember(note(i));
        }
        assert_eq!(m.recent.len(), RECENT);
        assert_eq!(m.recent.last().map(|n| n.message_id.as_str()), Some("m199"));
        assert!(m.summary.chars().count() <= SUMMARY_CHARS);
        assert!(m.summary.contains("Message number 187"), "{}", m.summary);
        assert!(!m.summary.contains("And more"));
    }

    #[test]
    fn cursors_only_move_forward_and_round_trip() {
        let mut m = Memory::default();
        m.advance("c", 5);
        m.advance("c", 3);
        assert_eq!(m.cursor("c"), 5);
        assert_eq!(m.cursor("d"), 0);
        let json = serde_json::to_string(&m).expect("json");
        assert_eq!(serde_json::from_str::<Memory>(&json).expect("parse"), m);
    }
}
