//! Grouping facts into topics and ranking them: topics grown from the
//! strongest links, dismissed when a department says the matter is resolved,
//! judged a risk or an opportunity, scored, and the best of each kind kept.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::label::Level;

use super::super::judge::{self, Class, Judgement, Verdict};
use super::links::{LinkGraph, Parts};
use super::words::{concreteness, Cues};
use super::{Fact, Kind, Miner, Signals, Topic};

/// Departments one insight spans at most: a matter's own two, and one more
/// that adds a fact (the digest's reader acts with these few teams).
const MAX_DEPARTMENTS: usize = 3;

/// Least strength of a link made by a complement alone (no talk) that
/// starts a topic; such a topic takes facts no stronger topic has.
const MIN_COMPLEMENT_SEED: f32 = 0.2;

/// A topic before scoring: its facts (the seed pair first), the seed link's
/// strength, and what the seed pair makes when the two complete each other.
type Group = (Vec<u32>, f32, Option<Kind>);

/// A link that starts a topic.
struct Seed {
    a: u32,
    b: u32,
    /// The link's strength.
    s: f32,
    /// Below the seed strength: started only because the pair completes
    /// each other, so it is not grown.
    weak: bool,
    /// What the pair makes when the two complete each other.
    completes_kind: Option<Kind>,
}

/// What became of a group.
enum Scored {
    Kept(Topic),
    /// Settled, or judged nothing to report: counted as dismissed.
    Dismissed,
    /// Left with facts of one department: dropped without counting.
    Dropped,
}

/// The links among a topic's facts.
struct Inside {
    /// Sum of their strengths.
    links_in: f32,
    meetings: u32,
    entities: f32,
    /// The best fit of two facts that complete each other.
    completing: f32,
}

/// The word cues of a topic's facts, summed over all of them and over the
/// seed pair.
#[derive(Clone, Copy)]
struct Lean {
    risk: f32,
    opp: f32,
    seed_risk: f32,
    seed_opp: f32,
}

impl Lean {
    fn of(cues: &[Cues]) -> Self {
        Self {
            risk: cues.iter().map(|c| c.risk).sum(),
            opp: cues.iter().map(|c| c.opportunity).sum(),
            seed_risk: cues[0].risk + cues[1].risk,
            seed_opp: cues[0].opportunity + cues[1].opportunity,
        }
    }
}

impl Miner {
    /// Group facts into scored topics. `seen` maps fact keys of the last
    /// digest's insights to how often they were stated then.
    pub fn topics(&self, seen: &HashMap<String, u32>) -> (Vec<Topic>, usize) {
        let graph = self.weigh_links();
        let ranked = self.rank_links(&graph.strength);
        let groups = self.grow_groups(&ranked, &graph);
        let settled = self.settled(&groups, &graph);
        let mut topics = Vec::new();
        let mut dismissed = 0;
        for group in groups {
            match self.score_group(group, &graph, &settled, seen) {
                Scored::Kept(t) => topics.push(t),
                Scored::Dismissed => dismissed += 1,
                Scored::Dropped => {}
            }
        }
        let topics = self.keep_best(topics);
        (topics, dismissed)
    }

    /// Every strong link seeds its own topic (a fact may serve several),
    /// grown by the facts most strongly linked to it; near-duplicate
    /// topics are dropped after scoring.
    /// A pair that completes each other starts a topic only from facts
    /// no such topic has taken (what is on hand is matched to one need,
    /// the strongest first), and does so even below the seed strength.
    fn grow_groups(&self, ranked: &[((u32, u32), f32)], graph: &LinkGraph) -> Vec<Group> {
        let mut groups: Vec<Group> = Vec::new();
        let mut taken: HashSet<u32> = HashSet::new();
        for ((a, b), s) in ranked {
            if *s < MIN_COMPLEMENT_SEED.min(self.cfg.min_seed) || groups.len() >= 200 {
                break;
            }
            let completes_kind = graph.completes.get(&(*a, *b)).copied();
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
            let start = Seed {
                a: *a,
                b: *b,
                s: *s,
                weak,
                completes_kind,
            };
            let facts = self.grow(&start, ranked, &groups, &taken, graph);
            if completes_kind.is_some() {
                taken.extend(&facts);
            }
            groups.push((facts, *s, completes_kind));
        }
        groups
    }

    /// The facts of the topic `start` seeds: its pair, then the facts most
    /// strongly linked to either of the two.
    fn grow(
        &self,
        start: &Seed,
        ranked: &[((u32, u32), f32)],
        groups: &[Group],
        taken: &HashSet<u32>,
        graph: &LinkGraph,
    ) -> Vec<u32> {
        let (a, b, s) = (&start.a, &start.b, &start.s);
        let (weak, completes_kind) = (start.weak, start.completes_kind);
        let roles = &graph.roles;
        let mut facts = vec![*a, *b];
        for ((x, y), s2) in ranked {
            if weak || *s2 < *s * self.cfg.join_share || facts.len() >= self.cfg.max_facts_per_topic
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
            let same_making = graph.completes.get(&(*x, *y)).copied() == completes_kind
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
        facts
    }

    /// A matter another department says is resolved: the resolving fact
    /// and the one it answers (its strongest pairing) are settled, in
    /// every topic. Its weaker pairings are only dismissed in
    /// `score_group`, since the resolving fact is in their seed.
    fn settled(&self, groups: &[Group], graph: &LinkGraph) -> HashSet<u32> {
        let mut settled: HashSet<u32> = HashSet::new();
        let mut answered: HashSet<u32> = HashSet::new();
        for (facts, _, _) in groups {
            for (i, f) in facts[..2].iter().enumerate() {
                if self.reads_settled(*f, graph) && answered.insert(*f) {
                    settled.insert(*f);
                    settled.insert(facts[1 - i]);
                }
            }
        }
        settled
    }

    /// Whether a fact says its matter is over: by its meaning when the
    /// facts were judged by meaning, else by its words.
    fn reads_settled(&self, f: u32, graph: &LinkGraph) -> bool {
        match self.facets.get(f as usize) {
            Some(x) => x.class().0 == Class::Settled,
            None => graph.fact_cues[f as usize].resolved,
        }
    }

    /// Whether every fact has its facets, so meaning judges rather than words.
    fn judges_by_meaning(&self) -> bool {
        self.facets.len() == self.facts.len()
    }

    /// Settle, judge and score one group.
    fn score_group(
        &self,
        (mut facts, seed, completes): Group,
        graph: &LinkGraph,
        settled: &HashSet<u32>,
        seen: &HashMap<String, u32>,
    ) -> Scored {
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
            return Scored::Dismissed;
        }
        // A fact that says its matter is resolved leaves a topic it only
        // joined; in the seed pair it dismisses the topic (below).
        let seeds = [facts[0], facts[1]];
        facts.retain(|f| {
            seeds.contains(f) || !(settled.contains(f) || self.reads_settled(*f, graph))
        });
        let inside = self.inside(&facts, &graph.strength);
        let fs: Vec<&Fact> = facts.iter().map(|f| &self.facts[*f as usize]).collect();
        let depts: BTreeSet<&str> = facts.iter().map(|f| self.fact_department(*f)).collect();
        if depts.len() < 2 {
            return Scored::Dropped;
        }
        let text: Vec<&str> = fs.iter().map(|f| f.quote.as_str()).collect();
        let cues: Vec<Cues> = facts.iter().map(|f| graph.fact_cues[*f as usize]).collect();
        let lean = Lean::of(&cues);
        let Some((kind, judged)) = self.judge_group(&facts, completes, &cues, &lean, graph) else {
            return Scored::Dismissed;
        };
        let voices: HashSet<u64> = fs.iter().flat_map(|f| f.authors.iter().copied()).collect();
        let voice_depts: BTreeSet<&String> = fs
            .iter()
            .flat_map(|f| f.author_departments.iter())
            .collect();
        let concreteness = text.iter().map(|t| concreteness(t)).sum::<f32>() / text.len() as f32;
        let impact = if self.judges_by_meaning() {
            judged.confidence
        } else {
            ((lean.risk.max(lean.opp) + cues.iter().map(|c| c.urgency).sum::<f32>()) / 3.0).min(1.0)
        };
        let signals = Signals {
            departments: depts.len(),
            voices: voices.len(),
            voice_departments: voice_depts.len(),
            meetings: inside.meetings,
            shared_entities: (inside.entities / 8.0).min(1.0),
            concreteness,
            impact,
            novelty: novelty(&fs, seen),
            source_strength: self.source_strength(&fs),
        };
        let specific = fs.iter().map(|f| f.specificity).sum::<f32>() / fs.len() as f32;
        let score = score(&signals, inside.links_in, specific, inside.completing);
        // Sure only as far as both the links and the judge are.
        let confidence = confidence(seed, &signals) * judged.confidence;
        Scored::Kept(Topic {
            kind,
            facts,
            score,
            confidence: (confidence * 100.0).round() / 100.0,
            signals,
            reason: judged.reason,
        })
    }

    /// The links among `facts`, summed.
    fn inside(&self, facts: &[u32], strength: &HashMap<(u32, u32), Parts>) -> Inside {
        let mut links_in = 0.0f32;
        let mut meetings = 0u32;
        let mut entities = 0.0f32;
        let mut completing = 0.0f32;
        for (x, &a) in facts.iter().enumerate() {
            for &b in &facts[x + 1..] {
                let k = (a.min(b), a.max(b));
                if let Some(v) = strength.get(&k) {
                    links_in += self.total_of(k, v);
                    meetings += v.meetings;
                    entities += v.entities;
                    completing = completing.max(v.fit);
                }
            }
        }
        Inside {
            links_in,
            meetings,
            entities,
            completing,
        }
    }

    /// Risk or opportunity, and why; `None` when the topic is dismissed.
    fn judge_group(
        &self,
        facts: &[u32],
        completes: Option<Kind>,
        cues: &[Cues],
        lean: &Lean,
        graph: &LinkGraph,
    ) -> Option<(Kind, Judgement)> {
        if self.judges_by_meaning() {
            // Meaning decides, with the facts that could settle it.
            let j = judge::judge(
                facts,
                &self.facets,
                &graph.norms,
                &graph.departments,
                lean.seed_risk - lean.seed_opp,
            );
            tracing::debug!(verdict = ?j.verdict, confidence = j.confidence, reason = %j.reason, "judged");
            match j.verdict {
                Verdict::Risk => Some((Kind::Risk, j)),
                Verdict::Opportunity => Some((Kind::Opportunity, j)),
                Verdict::Settled(_) | Verdict::Nothing => None,
            }
        } else {
            word_judgement(completes, cues, lean)
        }
    }

    /// Weight of the cited sources (0-1), by their labels.
    fn source_strength(&self, fs: &[&Fact]) -> f32 {
        fs.iter()
            .map(|f| match self.chunk(f).label.level {
                Level::Restricted => 1.0,
                Level::Confidential => 0.9,
                Level::Internal => 0.75,
                Level::Public => 0.5,
            })
            .sum::<f32>()
            / fs.len() as f32
    }

    /// The best topics, highest score first: at most `max_per_kind` of each
    /// kind, none sharing most of its facts with a better one.
    fn keep_best(&self, mut topics: Vec<Topic>) -> Vec<Topic> {
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
        kept
    }
}

/// The word judge: cue words decide, a pairing that completes each other
/// says what it makes, and the seed pair's words outweigh the rest. Its
/// confidence is the links' alone. `None` when a fact says the matter is
/// resolved.
fn word_judgement(
    completes: Option<Kind>,
    cues: &[Cues],
    lean: &Lean,
) -> Option<(Kind, Judgement)> {
    if cues.iter().any(|c| c.resolved) {
        return None;
    }
    let Lean {
        risk,
        opp,
        seed_risk,
        seed_opp,
    } = *lean;
    let (kind, reason) = match completes {
        Some(Kind::Opportunity) => (
            Kind::Opportunity,
            "a need one department heard meets something another has on hand".to_string(),
        ),
        Some(Kind::Risk) => (
            Kind::Risk,
            "a promise one department made meets another's practice on the same thing".to_string(),
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
    Some((
        kind,
        Judgement {
            verdict,
            confidence: 1.0,
            reason,
        },
    ))
}

/// 1 for facts new against the last digest, down to 0.5 when all repeat.
fn novelty(fs: &[&Fact], seen: &HashMap<String, u32>) -> f32 {
    let known: Vec<u32> = fs
        .iter()
        .filter_map(|f| seen.get(&f.key).copied())
        .collect();
    if known.is_empty() {
        1.0
    } else {
        1.0 - 0.5 * known.len() as f32 / fs.len() as f32
    }
}

/// A topic's rank: the links inside it, how specific and concrete its
/// facts are, the departments and voices behind it, what it says and how
/// new it is.
fn score(signals: &Signals, links_in: f32, specific: f32, completing: f32) -> f32 {
    (links_in.ln_1p()) * 1.5
        + specific
        + (signals.departments.min(3) as f32 - 1.0) * 0.8
        + (signals.voices as f32).ln_1p() * 0.4
        + (signals.voice_departments as f32).ln_1p() * 0.4
        + signals.concreteness * 0.8
        + signals.impact * 0.8
        + signals.novelty * 0.3
        + signals.source_strength * 0.3
        // Facts that complete each other say why the topic matters,
        // which talk alone (agents near each other) does not.
        + completing * 1.5
}

/// How sure the links make a topic: the seed link (how strongly two
/// departments' facts were found to concern one matter), the departments
/// and voices behind it and how concrete its facts are. The sum of all
/// links inside a topic (which ranks it) grows with its size and would
/// read 0.99 for every broad topic.
fn confidence(seed: f32, signals: &Signals) -> f32 {
    (1.0 - (-0.35
        * (seed
            + signals.departments as f32 * 0.5
            + signals.voices.min(8) as f32 * 0.2
            + signals.concreteness))
        .exp())
    .clamp(0.05, 0.99)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{chunk, msg};
    use super::super::MineConfig;
    use super::*;

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
}
