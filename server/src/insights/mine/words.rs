//! The word lists and cues the miner reads sentences with: common words,
//! names and figures, cue words for risk, opportunity, urgency and closure,
//! and the roles a sentence can play in a pairing across departments.
//!
//! Every list is plain English of business writing, none naming a product,
//! customer or event of any corpus. A cue matches anywhere in the lower-cased
//! sentence (with a space appended), so a stem ("violat", "penalt") matches
//! every form of its word, and a trailing space ("suit ", "may ") keeps a
//! short cue from matching inside a longer word ("suite", "maybe").

/// Shortest word, in bytes, that can name anything: shorter ones are mostly
/// articles, prepositions and pronouns, which any two sentences share.
const MIN_WORD_LEN: usize = 4;

/// Shortest figure, in bytes, kept as a name: a lone digit (a count, a list
/// number) names nothing in particular, while "Q2" or "4.2" can.
const MIN_FIGURE_LEN: usize = 2;

/// Lower-case words of four letters or more.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= MIN_WORD_LEN)
        .map(|w| w.to_lowercase())
        .collect()
}

/// Words too common in company documents to name a matter: weekdays,
/// function words, and the calendar, team and review vocabulary every
/// department writes. Shared by two facts, they would link any two.
/// (Shorter than [`MIN_WORD_LEN`] ones are dropped before the list is read.)
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

/// Whether a lower-case word is too common to name anything.
pub fn is_stop_word(w: &str) -> bool {
    STOP.contains(&w)
}

/// Names and figures of a sentence: lower-case words that are not common,
/// stemmed, and numbers.
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
            if lc.len() >= MIN_FIGURE_LEN {
                out.push(lc);
            }
            continue;
        }
        if lc.len() < MIN_WORD_LEN || STOP.contains(&lc.as_str()) {
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
pub(super) struct Cues {
    pub(super) risk: f32,
    pub(super) opportunity: f32,
    pub(super) urgency: f32,
    pub(super) resolved: bool,
}

/// Cues of trouble, each weighted by how plainly it means trouble: 1.0 for
/// words that mean little else ("outage", "breach", "overdue"), less for
/// words with other common senses ("late", "drop", "commit", "replaced").
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

/// Cues of gain: demand heard from outside, capacity or work on hand, a
/// right held. Weighted as [`RISK`] is: 1.0 for words that mean little else
/// ("spare", "upsell", "eligible"), less for words with other common senses
/// ("available", "partner", "win"); a question from outside ("asked
/// whether") is the plainest demand and weighs most.
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

/// Cues of time pressure: a month (a date to meet), a deadline, a renewal.
/// Each counts [`URGENCY_PER_CUE`].
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

/// Urgency each [`URGENT`] cue adds: a date or deadline says when a matter
/// bites, not what it is, so it weighs half a plain risk or opportunity cue.
const URGENCY_PER_CUE: f32 = 0.5;

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

/// The word cues of a sentence: risk and opportunity cues summed, urgency
/// per cue, and whether it says the matter is over.
pub(super) fn cues(text: &str) -> Cues {
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
            c.urgency += URGENCY_PER_CUE;
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
pub(super) struct Roles {
    /// Someone wants something: a customer's request, a partner's question.
    pub(super) need: f32,
    /// Something on hand: spare capacity, work already done, a right held.
    pub(super) have: f32,
    /// A promise made outside: a contract term, a guarantee.
    pub(super) promise: f32,
    /// How something is actually done or where it goes: data copied,
    /// stored or sent somewhere, work moved elsewhere.
    pub(super) practice: f32,
}

impl Roles {
    /// Whether the sentence plays any role at all.
    pub(super) fn any(self) -> bool {
        self.need > 0.0 || self.have > 0.0 || self.promise > 0.0 || self.practice > 0.0
    }
}

/// Cues of a need: a question or request from outside, or a willingness to
/// pay. 1.0 for an explicit ask or offer to pay, less for a request or mere
/// interest ("would like", "looking for", "enquir").
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

/// Cues of something on hand: capacity unused, work already done, stock,
/// a right held. 1.0 for words that mean little but spare capacity
/// ("spare", "idle", "surplus"), less for words with other common senses
/// ("already ", "allow ", "is available").
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

/// Cues of a promise made outside: a guarantee, a contract term, a
/// commitment to stay within a limit. 1.0 for guarantees and contract
/// terms, less for phrasing internal rules use too ("must stay", "at all
/// times").
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

/// Cues of a practice: data copied, stored or sent somewhere, work handed
/// elsewhere. 1.0 for copies of data ("replicated", "copied to", "backed
/// up"), less for looser verbs ("sent to", "moved to", "shared with").
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

/// The [`Roles::have`] of a sentence that says capacity sits partly unused:
/// that is something on hand as plainly as "spare" says it.
const IDLE_CAPACITY: f32 = 1.0;

/// Utilisation, in percent, below which capacity reads as partly unused:
/// the figure that "half" or "partly" says in words, with some room.
const IDLE_BELOW_PERCENT: f32 = 60.0;

/// The roles of a sentence: for each, the strongest of its cues present.
pub(super) fn roles(text: &str) -> Roles {
    let t = format!("{} ", text.to_lowercase());
    let strongest = |list: &[(&str, f32)]| {
        list.iter()
            .filter(|(w, _)| t.contains(w))
            .map(|(_, s)| *s)
            .fold(0.0f32, f32::max)
    };
    Roles {
        need: strongest(NEED),
        have: strongest(HAVE).max(if idle_capacity(&t) {
            IDLE_CAPACITY
        } else {
            0.0
        }),
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
                        .is_some_and(|n| n < IDLE_BELOW_PERCENT)
            })
    })
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

/// Names and codes that make a sentence fully specific (1.0): a customer, a
/// product and a version pin one matter; more add nothing.
const FULLY_SPECIFIC: f32 = 3.0;

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
    (n as f32 / FULLY_SPECIFIC).min(1.0)
}

/// Digits that make a sentence's figures count in full: a date and an
/// amount; more add nothing.
const FULLY_CONCRETE_DIGITS: usize = 8;
/// Weight of the digits in [`concreteness`].
const DIGITS_WEIGHT: f32 = 0.6;
/// Weight of a unit in [`concreteness`]: a percentage or a currency sign
/// makes a figure a measure of something.
const UNIT_WEIGHT: f32 = 0.4;

/// Numbers, money, percentages and dates in a sentence (0-1).
pub fn concreteness(s: &str) -> f32 {
    let digits = s
        .chars()
        .filter(|c| c.is_ascii_digit())
        .count()
        .min(FULLY_CONCRETE_DIGITS) as f32
        / FULLY_CONCRETE_DIGITS as f32;
    let money = if s.contains('%') || s.contains('$') || s.contains('€') || s.contains('£') {
        UNIT_WEIGHT
    } else {
        0.0
    };
    (digits * DIGITS_WEIGHT + money).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

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
