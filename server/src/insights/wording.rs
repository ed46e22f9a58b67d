//! Wording an insight for a leader without a language model: a headline
//! under 100 characters named for the matter, two or three sentences of what
//! the facts say together and what to do, and the reason behind the
//! confidence. Composed from templates over the judged parts: the kind, the
//! departments, each department's lead fact, the dates and figures, and the
//! matter's subject.
//!
//! The subject is what the facts share: names and codes that appear in two
//! of them, or else the words that set this topic's facts apart from all the
//! run's facts (class-based TF-IDF, as BERTopic describes clusters).

use std::collections::{BTreeSet, HashMap};

use super::mine::Kind;

/// Longest headline, in characters.
pub const HEADLINE_CHARS: usize = 100;

/// Words that open an English sentence without being a name: articles,
/// pronouns, determiners and prepositions. A sentence starting with one can
/// follow "reports that" in lower case; any other first word is kept as is.
const OPENERS: &[&str] = &[
    "a", "an", "the", "our", "we", "this", "these", "that", "those", "all", "each", "every",
    "most", "some", "many", "no", "none", "one", "two", "three", "several", "from", "in", "on",
    "at", "for", "by", "with", "since", "after", "before", "during", "until", "its", "their",
    "his", "her", "there", "it", "they", "about", "over", "under", "nearly", "only", "both",
];

/// Document frequency of words over all of a run's facts.
pub struct Vocabulary {
    df: HashMap<String, u32>,
    facts: u32,
}

impl Vocabulary {
    /// Count each word once per fact.
    pub fn new<'a>(facts: impl IntoIterator<Item = &'a str>) -> Self {
        let mut df: HashMap<String, u32> = HashMap::new();
        let mut n = 0;
        for f in facts {
            n += 1;
            for w in content_words(f).into_iter().collect::<BTreeSet<_>>() {
                *df.entry(w).or_default() += 1;
            }
        }
        Self { df, facts: n }
    }

    /// Whether a word is in so many of the run's facts that it names
    /// nothing in particular (more than one in twenty, and at least three):
    /// the company's own name, its parent organisation, its main product.
    fn common(&self, w: &str) -> bool {
        let df = self.df.get(w).copied().unwrap_or(0);
        df >= 3 && df * 20 > self.facts
    }

    fn idf(&self, w: &str) -> f32 {
        let df = self.df.get(w).copied().unwrap_or(1).max(1) as f32;
        (1.0 + self.facts.max(1) as f32 / df).ln()
    }
}

fn content_words(s: &str) -> Vec<String> {
    s.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '.'))
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|w| {
            w.chars().count() >= 4
                || w.chars().any(|c| c.is_ascii_digit())
                || (w.len() >= 2 && w.chars().all(|c| c.is_ascii_uppercase()))
        })
        .map(str::to_lowercase)
        .filter(|w| !super::mine::is_stop_word(w))
        .collect()
}

/// Names and codes in a sentence, as written: runs of capitalised words
/// ("Halvorsen Cold Chain"), each kept whole, and tokens mixing letters with
/// digits or dots (versions, regions). A sentence's first word counts only
/// inside a longer run, and a common opener ("The") is dropped from a run.
fn names(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    // (position in the sentence, word, whether it is a code)
    let mut run: Vec<(usize, String, bool)> = Vec::new();
    let flush = |run: &mut Vec<(usize, String, bool)>, out: &mut Vec<String>| {
        while run
            .first()
            .is_some_and(|(_, w, _)| OPENERS.contains(&w.to_lowercase().as_str()))
        {
            run.remove(0);
        }
        // A capitalised first word alone may be no name ("Support logged..."); a code is one.
        let alone_first = run.len() == 1 && run[0].0 == 0 && !run[0].2;
        if !run.is_empty() && !alone_first {
            out.push(
                run.iter()
                    .map(|(_, w, _)| w.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        run.clear();
    };
    for (i, raw) in s.split_whitespace().enumerate() {
        let w = raw.trim_matches(|c: char| !c.is_alphanumeric());
        let w = w
            .strip_suffix("'s")
            .or_else(|| w.strip_suffix("’s"))
            .unwrap_or(w);
        let code = w.chars().count() >= 2
            && w.chars().any(|c| c.is_ascii_digit())
            && w.chars().any(|c| c.is_alphabetic())
            && !is_period_or_amount(w);
        let capital = w.chars().count() >= 2
            && w.chars().next().is_some_and(char::is_uppercase)
            && !super::mine::MONTHS.contains(&w)
            && !is_period_or_amount(w);
        if code || capital {
            // A model or version code belongs to the name before it:
            // "Sentra V4", "ThermaLink T2".
            run.push((i, w.to_string(), code));
        } else {
            flush(&mut run, &mut out);
        }
        // Punctuation after a word ends its run: "Halvorsen, Legal said".
        if raw.ends_with([',', ';', ':', '.', ')', '!', '?']) {
            flush(&mut run, &mut out);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Calendar periods (Q3, H2, FY2026) and amounts (11.5M, $40k, 12%) are
/// dates and figures, not names of a matter.
fn is_period_or_amount(w: &str) -> bool {
    let u = w.to_uppercase();
    let period = (u.len() == 2 && (u.starts_with('Q') || u.starts_with('H')))
        || (u.starts_with("FY") && u[2..].chars().all(|c| c.is_ascii_digit()));
    let amount = w.chars().next().is_some_and(|c| c.is_ascii_digit())
        && w.trim_end_matches(|c: char| c.is_alphabetic() || c == '%')
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == ',')
        && w.chars().filter(|c| c.is_alphabetic()).count() <= 2;
    period || amount
}

/// Whether name phrase `short` is `long` or a whole-word part of it.
fn part_of(short: &str, long: &str) -> bool {
    let (s, l) = (short.to_lowercase(), long.to_lowercase());
    let sw: Vec<&str> = s.split(' ').collect();
    let lw: Vec<&str> = l.split(' ').collect();
    lw.windows(sw.len()).any(|w| w == sw.as_slice())
}

/// What a topic is about, in at most three words or names.
pub fn subject(quotes: &[&str], vocab: &Vocabulary) -> Vec<String> {
    // Names two facts share say most plainly what links them. Two facts
    // share a name when one names it whole and the other names it or
    // something longer containing it ("Halvorsen" and "Halvorsen Cold
    // Chain" share "Halvorsen").
    let phrases: Vec<Vec<String>> = quotes.iter().map(|q| names(q)).collect();
    let mut candidates: BTreeSet<String> = BTreeSet::new();
    for (i, a) in phrases.iter().enumerate() {
        for b in &phrases[i + 1..] {
            for p in a {
                for q in b {
                    if part_of(p, q) {
                        candidates.insert(p.clone());
                    } else if part_of(q, p) {
                        candidates.insert(q.clone());
                    }
                }
            }
        }
    }
    let words_of = |p: &str| -> Vec<String> { p.split(' ').map(str::to_lowercase).collect() };
    let mut shared: Vec<(f32, String)> = candidates
        .into_iter()
        .filter(|p| !words_of(p).iter().all(|w| vocab.common(w)))
        .map(|p| {
            let idf = words_of(&p)
                .iter()
                .map(|w| vocab.idf(w))
                .fold(0.0f32, f32::max);
            (idf, p)
        })
        .collect();
    // The rarest first, and of equally rare ones the longest (the whole name).
    shared.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(b.1.len().cmp(&a.1.len()))
            .then(a.1.cmp(&b.1))
    });
    let mut out: Vec<String> = Vec::new();
    for (_, p) in shared {
        if out.len() >= 2 {
            break;
        }
        if !out.iter().any(|o| part_of(&p, o) || part_of(o, &p)) {
            out.push(p);
        }
    }
    if out.len() < 2 {
        // Otherwise the words that set these facts apart (class TF-IDF),
        // names first, each shown as the whole name it is part of.
        let mut tf: HashMap<String, f32> = HashMap::new();
        for q in quotes {
            for w in content_words(q) {
                *tf.entry(w).or_default() += 1.0;
            }
        }
        let as_written: HashMap<String, String> = phrases
            .iter()
            .flatten()
            .flat_map(|p| words_of(p).into_iter().map(move |w| (w, p.clone())))
            .collect();
        let mut ranked: Vec<(f32, String)> = tf
            .into_iter()
            .filter(|(w, _)| !vocab.common(w))
            .map(|(w, c)| {
                let name_bonus = if as_written.contains_key(&w) {
                    2.0
                } else {
                    1.0
                };
                (c * vocab.idf(&w) * name_bonus, w)
            })
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, w) in ranked {
            if out.len() >= 2 {
                break;
            }
            let shown = as_written.get(&w).cloned().unwrap_or(w);
            if !out.iter().any(|o| part_of(&shown, o) || part_of(o, &shown)) {
                out.push(shown);
            }
        }
    }
    out
}

/// The headline: the subject, the kind and the departments it spans.
pub fn headline(kind: Kind, subject: &[String], departments: &[String]) -> String {
    let what = match kind {
        Kind::Risk => "a risk",
        Kind::Opportunity => "an opening",
    };
    let depts = join_words(departments);
    let mut subj = subject.to_vec();
    loop {
        let lead = if subj.is_empty() {
            capitalize(what)
        } else {
            format!("{}: {what}", capitalize(&subj.join(" and ")))
        };
        let h = format!("{lead} only {depts} see together");
        if h.chars().count() <= HEADLINE_CHARS || subj.is_empty() {
            return cut(&h, HEADLINE_CHARS);
        }
        subj.pop();
    }
}

/// Two or three sentences: what each department's lead fact says, what they
/// mean together, and what to do next.
pub fn why(kind: Kind, leads: &[(String, String)], dates: &[String]) -> String {
    let mut out = String::new();
    let said: Vec<String> = leads
        .iter()
        .take(3)
        .enumerate()
        .map(|(i, (dept, quote))| {
            let dept = if i == 0 {
                capitalize(dept)
            } else {
                dept.clone()
            };
            format!("{dept} reports that {}", clause(quote))
        })
        .collect();
    match said.len() {
        0 => {}
        1 => out.push_str(&format!("{}.", said[0])),
        _ => {
            let (last, rest) = said.split_last().expect("two or more");
            let last = last.replacen(" reports that ", " that ", 1);
            out.push_str(&format!("{}, and {}.", rest.join("; "), last));
        }
    }
    let depts: Vec<String> = leads.iter().map(|(d, _)| capitalize(d)).collect();
    let when = dates
        .first()
        .map(|d| format!(" before {d}"))
        .unwrap_or_default();
    match kind {
        Kind::Risk => out.push_str(&format!(
            " No one team holds both facts, and together they describe something that can go wrong. Next step: {} check the two against each other and agree who acts{when}.",
            join_words(&depts)
        )),
        Kind::Opportunity => out.push_str(&format!(
            " No one team holds both facts, and together they describe something the company could gain. Next step: {} size it together and name an owner{when}.",
            join_words(&depts)
        )),
    }
    out
}

/// A sentence as a clause after "reports that": without its final stop,
/// lower-cased only when it opens with a common word rather than a name.
fn clause(quote: &str) -> String {
    let q = quote.trim().trim_end_matches(['.', '!', '?']);
    let first = q.split_whitespace().next().unwrap_or("");
    if OPENERS.contains(&first.to_lowercase().as_str()) {
        let mut c = q.chars();
        match c.next() {
            Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
            None => String::new(),
        }
    } else {
        q.to_string()
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    if let Some(i) = out.rfind(' ') {
        out.truncate(i);
    }
    format!("{out}…")
}

/// `s` with its first letter upper-cased.
pub(crate) fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn join_words(items: &[String]) -> String {
    match items.len() {
        0 => String::new(),
        1 => items[0].clone(),
        n => format!("{} and {}", items[..n - 1].join(", "), items[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEGAL: &str =
        "The Vandersloot Transport contract guarantees that all telemetry data stays within the European Union.";
    const ENG: &str =
        "Nightly database backups for every region are replicated to the us-east-1 bucket for disaster recovery.";

    #[test]
    fn the_headline_names_the_matter_and_stays_short() {
        let vocab = Vocabulary::new([LEGAL, ENG, "The office plants are watered on Mondays."]);
        let subj = subject(&[LEGAL, ENG], &vocab);
        assert!(!subj.is_empty());
        let h = headline(
            Kind::Risk,
            &subj,
            &["engineering".to_string(), "legal".to_string()],
        );
        assert!(h.chars().count() <= HEADLINE_CHARS, "{h}");
        assert!(h.contains("engineering and legal"), "{h}");
        assert!(!h.contains('…'), "{h}");
    }

    #[test]
    fn a_shared_name_is_the_subject() {
        let a = "Halvorsen Cold Chain reported GPS drift since firmware 4.2.";
        let b = "Halvorsen Cold Chain renews in March for $2.1M.";
        let vocab = Vocabulary::new([a, b, LEGAL, ENG]);
        let subj = subject(&[a, b], &vocab);
        assert_eq!(
            subj.first().map(String::as_str),
            Some("Halvorsen Cold Chain"),
            "{subj:?}"
        );
    }

    #[test]
    fn names_are_kept_whole_and_openers_dropped() {
        assert_eq!(
            names("The Vandersloot Transport contract moved to eu-west-1 after the Q3 review."),
            vec!["Vandersloot Transport", "eu-west-1"]
        );
        assert_eq!(
            names("False alarms on Sentra V4 units cost 11.5M in H2 2026."),
            vec!["Sentra V4"]
        );
        assert_eq!(names("Halvorsen renews, Legal said."), vec!["Legal"]);
        assert_eq!(names("V4 units failed."), vec!["V4"]);
        assert_eq!(
            names("Halvorsen Cold Chain renews in March."),
            vec!["Halvorsen Cold Chain"]
        );
        let a = "Halvorsen asked for a discount.";
        let b = "Support logged twelve tickets from Halvorsen Cold Chain last week.";
        let vocab = Vocabulary::new([a, b, LEGAL, ENG]);
        // A sentence's lone first word may be no name ("Support"), so the
        // shared name is found from the words, shown as the whole name.
        assert_eq!(
            subject(&[a, b], &vocab).first().map(String::as_str),
            Some("Halvorsen Cold Chain")
        );
    }

    #[test]
    fn why_reads_as_one_thought_with_a_next_step() {
        let w = why(
            Kind::Risk,
            &[
                ("legal".to_string(), LEGAL.to_string()),
                ("engineering".to_string(), ENG.to_string()),
            ],
            &[],
        );
        assert!(w.starts_with("Legal reports that the Vandersloot"), "{w}");
        // "Nightly" might be a name: only common openers are lower-cased.
        assert!(
            w.contains("and engineering that Nightly database backups"),
            "{w}"
        );
        assert!(w.contains("Next step: Legal and Engineering check"), "{w}");
        assert_eq!(w.matches(". ").count() + 1, 3, "three sentences: {w}");
    }
}
