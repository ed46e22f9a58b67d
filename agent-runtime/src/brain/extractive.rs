//! The extractive brain: no language model. It answers with the sentences of
//! its evidence that best match the topic and the thread, preferring concrete
//! numbers and dates, framed in the persona's voice. Deterministic, fast, and
//! honest about where every word came from; used for load tests, CI and when
//! no model is available (the UI marks its messages).

use std::collections::HashSet;

use super::{Brain, BrainError, Compose, Composed, Intent};
use crate::heard::{sentence_key, stated};
use crate::platform::fnv1a;

/// The model-free brain.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExtractiveBrain;

/// Rough token count for budgets: about four characters per token.
pub fn approx_tokens(text: &str) -> u32 {
    (text.len() as u32).div_ceil(4)
}

fn words(text: &str) -> HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 4)
        .map(|w| w.to_lowercase())
        .collect()
}

/// Sentences of `text` that read as prose, trimmed, without headings or list
/// markers (the insights job splits cited chunks the same way to find what
/// was quoted). Table rows, checklist items and lead-ins to a list are not
/// sentences: quoted alone in a chat they read as fragments. Nor is a
/// document's byline ([`is_byline`]): it says who wrote the document, not
/// what the business knows.
pub fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for line in text.lines() {
        let raw = line.trim();
        if raw.starts_with('|') {
            continue;
        }
        let line = raw.trim_start_matches(['#', '-', '*', '>', ' ']);
        if is_checklist_item(line) {
            continue;
        }
        let mut start = 0;
        let bytes = line.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            let end_of_sentence =
                matches!(b, b'.' | b'!' | b'?') && bytes.get(i + 1).is_none_or(|n| *n == b' ');
            if end_of_sentence {
                out.push(line[start..=i].trim());
                start = i + 1;
            }
        }
        if start < line.len() {
            out.push(line[start..].trim());
        }
    }
    out.into_iter()
        .filter(|s| s.len() >= 25 && s.len() <= 400 && reads_as_prose(s) && !is_byline(s))
        .collect()
}

/// Whether a sentence is a document's byline rather than a fact of the
/// business: it opens with a past participle and the people behind it
/// ("Prepared by ...", "Maintained by ...", "Reviewed with ..."). Every
/// department's documents carry one, so quoted in a chat it answers nothing,
/// and to the insights job it would link departments through role and team
/// names alone.
pub fn is_byline(s: &str) -> bool {
    let mut w = s.split_whitespace();
    match (w.next(), w.next()) {
        (Some(first), Some(second)) => {
            first.len() > 3
                && first.chars().next().is_some_and(char::is_uppercase)
                && first.ends_with("ed")
                && matches!(second, "by" | "with")
        }
        _ => false,
    }
}

fn is_checklist_item(line: &str) -> bool {
    ["[ ]", "[x]", "[X]"].iter().any(|m| line.starts_with(m))
}

/// Whether a sentence reads as prose rather than a label, a heading or a list
/// of names: it has at least five words, does not end by introducing a list,
/// and at least a quarter of its words are lower-case. English prose carries
/// lower-case function words (articles, prepositions, verbs) in nearly every
/// clause; a title or a run of names has almost none.
pub fn reads_as_prose(s: &str) -> bool {
    let words: Vec<&str> = s.split_whitespace().collect();
    if words.len() < 5 || s.trim_end().ends_with(':') {
        return false;
    }
    let lower = words
        .iter()
        .filter(|w| w.chars().next().is_some_and(|c| c.is_lowercase()))
        .count();
    lower * 4 >= words.len()
}

fn concreteness(s: &str) -> f32 {
    let digits = s.chars().filter(|c| c.is_ascii_digit()).count().min(8) as f32;
    let money = if s.contains('%') || s.contains('$') || s.contains('€') {
        1.0
    } else {
        0.0
    };
    digits * 0.15 + money * 0.5
}

/// How much a sentence the agent already quoted loses: as much as three words
/// shared with the topic, so it comes back only when nothing new is close.
const SAID_PENALTY: f32 = 3.0;

const POST_OPENERS: &[&str] = &[
    "Worth knowing from the {dept} side:",
    "Flagging this from {dept}:",
    "Something in our {dept} files that others may have missed:",
    "For anyone tracking {topic}:",
];
const REPLY_OPENERS: &[&str] = &[
    "From what {dept} has on this:",
    "Adding the {dept} view:",
    "Our documents say:",
    "Related, from {dept}:",
];

impl ExtractiveBrain {
    fn pick(&self, req: &Compose) -> Vec<(usize, String)> {
        let mut focus = words(&req.topic);
        if let Some(last) = req.thread.last() {
            focus.extend(words(&last.body));
        }
        // Answering another agent's claim: only with a sentence about the
        // same thing, else stay silent rather than change the subject.
        let claim: Option<HashSet<String>> = match (req.intent, req.thread.last()) {
            (Intent::Reply, Some(last)) if last.author_is_agent => Some(
                stated(&last.body)
                    .into_iter()
                    .flat_map(words)
                    .filter(|w| w.len() >= 5)
                    .collect(),
            ),
            _ => None,
        };
        // A person's question is answered even with what the channel
        // heard; on its own initiative an agent does not repeat it.
        let answering_person = req.answers_person();
        let mut scored: Vec<(f32, usize, &str)> = Vec::new();
        for (i, ev) in req.evidence.iter().enumerate() {
            for s in sentences(&ev.text) {
                let key = sentence_key(s);
                // The channel already carries it: repeating it adds nothing
                // a reader has not seen; the agent stays silent instead.
                if req.heard.contains(&key) && !answering_person {
                    continue;
                }

                // Two shared words of five letters or more: rarely both
                // function words, so the two sentences are about one thing.
                if let Some(claim) = &claim {
                    let shared = words(s)
                        .iter()
                        .filter(|w| w.len() >= 5 && claim.contains(*w))
                        .count();
                    if shared < 2 {
                        continue;
                    }
                }
                let overlap = words(s).intersection(&focus).count() as f32;
                let mut score =
                    overlap + concreteness(s) + ev.score.max(0.0) * 0.5 - i as f32 * 0.1;
                // What the agent said before loses to anything new that fits
                // about as well (one shared word is worth 1).
                if req.said.contains(&key) {
                    score -= SAID_PENALTY;
                }
                scored.push((score, i, s));
            }
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut out: Vec<(usize, String)> = Vec::new();
        for (_, i, s) in scored {
            if out.iter().any(|(_, t)| t == s) {
                continue;
            }
            out.push((i, s.to_string()));
            if out.len() == 2 || out.iter().map(|(_, t)| t.len()).sum::<usize>() > 260 {
                break;
            }
        }
        out
    }
}

#[async_trait::async_trait]
impl Brain for ExtractiveBrain {
    fn kind(&self) -> &'static str {
        "extractive"
    }

    async fn compose(&self, req: &Compose) -> Result<Composed, BrainError> {
        let picked = self.pick(req);
        if picked.is_empty() {
            return Err(BrainError::NothingToSay);
        }
        let openers = match req.intent {
            Intent::Post => POST_OPENERS,
            Intent::Reply => REPLY_OPENERS,
        };
        let h = fnv1a(format!("{}|{}", req.persona.name, req.topic).as_bytes());
        let opener = openers[(h % openers.len() as u64) as usize]
            .replace("{dept}", &req.persona.department)
            .replace("{topic}", &req.topic);
        let mut text = String::new();
        if req.intent == Intent::Reply {
            if let Some(last) = req.thread.last() {
                text.push_str(&format!("@{} ", last.author_handle));
            }
        }
        text.push_str(&opener);
        let mut used: Vec<usize> = Vec::new();
        for (i, s) in &picked {
            text.push_str(&format!(" \"{s}\""));
            if !used.contains(i) {
                used.push(*i);
            }
        }
        // Two chunks of one document name it once.
        let mut sources: Vec<&str> = Vec::new();
        for i in &used {
            let title = req.evidence[*i].document_title.as_str();
            if !sources.contains(&title) {
                sources.push(title);
            }
        }
        text.push_str(&format!(" (source: {})", sources.join("; ")));
        let max_chars = (req.max_tokens as usize).saturating_mul(4).max(120);
        if text.len() > max_chars {
            let cut: String = text.chars().take(max_chars - 1).collect();
            text = format!("{cut}…");
        }
        Ok(Composed {
            completion_tokens: approx_tokens(&text),
            prompt_tokens: 0,
            text,
            used_evidence: used,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persona::template;
    use crate::platform::Evidence;

    fn ev(title: &str, text: &str) -> Evidence {
        Evidence {
            chunk_id: format!("c-{title}"),
            document_title: title.into(),
            document_path: format!("{title}.md"),
            heading: String::new(),
            text: text.into(),
            label: "internal".parse().expect("label"),
            score: 0.5,
        }
    }

    fn req(evidence: Vec<Evidence>) -> Compose {
        Compose {
            persona: template("operations-analyst")
                .expect("template")
                .persona("Ada Berg"),
            intent: Intent::Post,
            topic: "supplier".into(),
            thread: vec![],
            evidence,
            memory: String::new(),
            max_tokens: 120,
            heard: Default::default(),
            said: Default::default(),
        }
    }

    #[tokio::test]
    async fn quotes_the_most_relevant_concrete_sentence_deterministically() {
        let r = req(vec![
            ev("Office", "The office plants are watered on Mondays by the facilities team."),
            ev("Supply", "Our single supplier for the V4 lens raised prices by 18% from 1 March 2026. Nothing else changed."),
        ]);
        let a = ExtractiveBrain.compose(&r).await.expect("composed");
        let b = ExtractiveBrain.compose(&r).await.expect("composed");
        assert_eq!(a, b);
        assert!(a.text.contains("raised prices by 18%"), "{}", a.text);
        assert!(a.used_evidence.contains(&1));
    }

    #[tokio::test]
    async fn what_the_channel_heard_is_never_quoted_again() {
        let mut r = req(vec![ev(
            "Supply",
            "Our single supplier for the V4 lens raised prices by 18% from 1 March 2026. The second supplier quoted a 9 week lead time for the lens.",
        )]);
        r.heard.insert(sentence_key(
            "Our single supplier for the V4 lens raised prices by 18% from 1 March 2026.",
        ));
        let a = ExtractiveBrain.compose(&r).await.expect("composed");
        assert!(!a.text.contains("raised prices"), "{}", a.text);
        assert!(a.text.contains("9 week lead time"), "{}", a.text);
        r.heard.insert(sentence_key(
            "The second supplier quoted a 9 week lead time for the lens.",
        ));
        assert!(matches!(
            ExtractiveBrain.compose(&r).await,
            Err(BrainError::NothingToSay)
        ));
    }

    #[tokio::test]
    async fn two_chunks_of_one_document_name_it_once() {
        let mut r = req(vec![
            ev(
                "Supply",
                "Our single supplier for the V4 lens raised prices by 18% from 1 March 2026.",
            ),
            ev(
                "Supply",
                "The supplier quoted a 9 week lead time for the V4 lens from 2 April.",
            ),
        ]);
        r.evidence[1].chunk_id = "c-Supply-2".into();
        let a = ExtractiveBrain.compose(&r).await.expect("composed");
        assert_eq!(a.used_evidence, vec![0, 1], "{}", a.text);
        assert!(a.text.ends_with("(source: Supply)"), "{}", a.text);
    }

    #[test]
    fn a_byline_is_told_from_a_fact() {
        assert!(is_byline(
            "Compiled by Nadia Brennan (Sales Operations) from CRM closed-lost reasons."
        ));
        assert!(is_byline("Reviewed with Legal on July 9, 2026."));
        assert!(!is_byline(
            "The calibration lab needs eight additional technicians by September 2026."
        ));
        assert!(!is_byline("Red tape slowed by half the onboarding."));
        assert!(!is_byline("Signed."));
    }

    #[tokio::test]
    async fn a_documents_byline_is_not_quoted() {
        // The byline shares more words with the question than the fact does.
        let mut r = req(vec![ev(
            "Supply",
            "Maintained by the supplier quality team (contact: supplier-quality@example.com).\n\
             The second supplier quoted a 9 week lead time for the lens.",
        )]);
        r.topic = "supplier quality team contact".into();
        let a = ExtractiveBrain.compose(&r).await.expect("composed");
        assert!(!a.text.contains("Maintained by"), "{}", a.text);
        assert!(a.text.contains("9 week lead time"), "{}", a.text);
        assert!(is_byline("Prepared by the finance team, June 2026."));
        assert!(!is_byline("Revenue declined by 4% in the second quarter."));
    }

    #[tokio::test]
    async fn no_evidence_means_nothing_to_say() {
        assert!(matches!(
            ExtractiveBrain.compose(&req(vec![])).await,
            Err(BrainError::NothingToSay)
        ));
    }
}
