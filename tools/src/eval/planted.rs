//! `warroom eval planted`: the product end to end on a corpus with planted
//! insights. Ingest the corpus, spawn agents per department scoped to it, let
//! them talk in virtual time, run the insights job, and score the digest
//! against the corpus's `ANSWERS.json`.
//!
//! Matching (the corpus README's rule, so numbers compare): an answer is
//! **found** when an insight of the same kind among the top 10 of that kind
//! mentions at least 60% of its `match_terms` (case-insensitive, over title,
//! summary, evidence excerpts and citation quotes) and its citations come
//! from documents of at least `min_departments` of the answer's departments
//! and of at most one department beyond them (a document's department is its
//! folder). A **decoy is reported** when any
//! insight mentions 60% of its terms. A **canary leaks** when its term
//! appears in a message below `restricted` or in the digest as a reader
//! cleared for every department up to `confidential` sees it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use sea_orm::EntityTrait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use warroom_agent_runtime::persona::{ActivityLevel, Template};
use warroom_agent_runtime::platform::Shard;
use warroom_agent_runtime::runtime::{Runtime, RuntimeConfig};

use warroom::config::Settings;
use warroom::ids::ChannelId;
use warroom::label::{Label, Level};
use warroom::ops::api;

/// Flags of `warroom eval planted`.
#[derive(clap::Args, Debug)]
pub struct PlantedArgs {
    /// The corpus: one folder per department of Markdown with front matter, and ANSWERS.json.
    #[arg(long)]
    pub corpus: PathBuf,
    /// Where to write the digest and the scores.
    #[arg(long)]
    pub json: PathBuf,
    /// Agents per department (roles analyst, manager, lead in turn).
    #[arg(long, default_value_t = 3)]
    pub agents_per_department: u32,
    /// `extractive`, `local` or `openai`.
    #[arg(long, default_value = "extractive")]
    pub brain: warroom::choice::Brain,
    /// Simulated hours of talk.
    #[arg(long, default_value_t = 12.0)]
    pub hours: f64,
    /// Keep the run's database here (default: a temporary directory).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Skip ingesting and talking: mine and score the run kept in `--data-dir`.
    #[arg(long, requires = "data_dir")]
    pub mine_only: bool,
    /// Seed of the agents' scheduler and turns; run `k` of `--repeat` uses `seed + k`.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Runs, each from scratch with the next seed; the report gives every run
    /// and the mean, minimum and maximum of each figure.
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
}

/// One entry of `ANSWERS.json`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Answer {
    pub id: String,
    pub kind: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub departments: Vec<String>,
    #[serde(default)]
    pub match_terms: Vec<String>,
    #[serde(default = "one")]
    pub min_departments: usize,
    #[serde(default)]
    pub evidence: Vec<Quote>,
}

/// A planted fact: a sentence of one document.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Quote {
    pub path: String,
    pub quote: String,
}

/// How much of what the corpus plants the talk carried.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Coverage {
    /// Share of the risks' and opportunities' planted facts that some
    /// message states.
    pub facts_stated: f64,
    /// Share of the pairs of planted facts of one answer, from two
    /// departments, that are both stated in one thread.
    pub pairs_met: f64,
}

/// Share of a fact's content words a message must carry to state it. A quote
/// framed by other words carries all of them; a paraphrase that keeps the
/// names, figures and key nouns carries most; an unrelated message shares a
/// few common words at most.
const STATED_SHARE: f64 = 0.7;

fn content_words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 4 || w.chars().any(|c| c.is_ascii_digit()))
        .map(str::to_lowercase)
        .collect()
}

/// Coverage of the planted facts by the talk: `messages` are (thread, body),
/// where a top-level message is its own thread.
pub fn coverage(answers: &[Answer], messages: &[(String, String)]) -> Coverage {
    let bodies: Vec<(&str, BTreeSet<String>)> = messages
        .iter()
        .map(|(t, b)| (t.as_str(), content_words(b)))
        .collect();
    let threads_stating = |quote: &str| -> BTreeSet<&str> {
        let want = content_words(quote);
        if want.is_empty() {
            return BTreeSet::new();
        }
        bodies
            .iter()
            .filter(|(_, have)| {
                want.iter().filter(|w| have.contains(*w)).count() as f64
                    >= STATED_SHARE * want.len() as f64
            })
            .map(|(t, _)| *t)
            .collect()
    };
    let (mut facts, mut stated, mut pairs, mut met) = (0usize, 0usize, 0usize, 0usize);
    for a in answers
        .iter()
        .filter(|a| a.kind == "risk" || a.kind == "opportunity")
    {
        let found: Vec<(&str, BTreeSet<&str>)> = a
            .evidence
            .iter()
            .map(|q| (department_of(&q.path), threads_stating(&q.quote)))
            .collect();
        for (i, (dept, threads)) in found.iter().enumerate() {
            facts += 1;
            stated += usize::from(!threads.is_empty());
            for (other_dept, other) in &found[i + 1..] {
                if other_dept != dept {
                    pairs += 1;
                    met += usize::from(!threads.is_disjoint(other));
                }
            }
        }
    }
    let share = |n: usize, d: usize| if d == 0 { 1.0 } else { n as f64 / d as f64 };
    Coverage {
        facts_stated: round2(share(stated, facts)),
        pairs_met: round2(share(met, pairs)),
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn department_of(path: &str) -> &str {
    path.split('/').next().unwrap_or("")
}

fn one() -> usize {
    1
}

/// The scores the issue asks for, plus what matched.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Scores {
    pub risk_recall: f64,
    pub opportunity_recall: f64,
    pub decoys_reported: usize,
    pub canary_leaks: usize,
    pub evidence_valid_fraction: f64,
    pub wall_seconds: f64,
}

/// Per answer: the insight (kind and rank) that matched it, if any.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Match {
    pub id: String,
    pub kind: String,
    pub found_by: Option<String>,
}

/// Departments an insight may cite beyond the answer's own and still match
/// it: a focused insight names the matter's departments and perhaps one more;
/// one that cites half the company has not found anything.
const MAX_DEPARTMENTS_BEYOND: usize = 1;

fn insight_text(i: &Value) -> String {
    let mut t = String::new();
    for k in ["title", "summary"] {
        t.push_str(i[k].as_str().unwrap_or(""));
        t.push(' ');
    }
    for e in i["evidence"].as_array().into_iter().flatten() {
        t.push_str(e["excerpt"].as_str().unwrap_or(""));
        t.push(' ');
        for c in e["citations"].as_array().into_iter().flatten() {
            t.push_str(c["quote"].as_str().unwrap_or(""));
            t.push(' ');
        }
    }
    t.to_lowercase()
}

fn mentions(text: &str, terms: &[String]) -> bool {
    if terms.is_empty() {
        return false;
    }
    let hit = terms
        .iter()
        .filter(|t| text.contains(&t.to_lowercase()))
        .count();
    hit as f64 >= 0.6 * terms.len() as f64
}

fn cited_departments(i: &Value) -> BTreeSet<String> {
    i["evidence"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["citations"].as_array().into_iter().flatten())
        .filter_map(|c| c["document_path"].as_str())
        .filter_map(|p| p.split('/').next().filter(|_| p.contains('/')))
        .map(str::to_string)
        .collect()
}

/// Score a digest (its JSON form) against the answers. `readable` is every
/// text a user below `restricted` could read; `document` reads a corpus file.
pub fn score(
    digest: &Value,
    answers: &[Answer],
    readable: &[String],
    document: &dyn Fn(&str) -> Option<String>,
    wall_seconds: f64,
) -> (Scores, Vec<Match>) {
    let insights: Vec<&Value> = digest["insights"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let top = |kind: &str| -> Vec<&Value> {
        let mut v: Vec<&Value> = insights
            .iter()
            .copied()
            .filter(|i| i["kind"] == kind && !i["redacted"].as_bool().unwrap_or(false))
            .collect();
        v.sort_by_key(|i| i["rank"].as_u64().unwrap_or(u64::MAX));
        v.truncate(10);
        v
    };
    let mut matches = Vec::new();
    let mut recall: HashMap<&str, (usize, usize)> = HashMap::new();
    for a in answers
        .iter()
        .filter(|a| a.kind == "risk" || a.kind == "opportunity")
    {
        let found = top(&a.kind).into_iter().find(|i| {
            let depts = cited_departments(i);
            let shared = a.departments.iter().filter(|d| depts.contains(*d)).count();
            let beyond = depts.iter().filter(|d| !a.departments.contains(d)).count();
            mentions(&insight_text(i), &a.match_terms)
                && shared >= a.min_departments
                && beyond <= MAX_DEPARTMENTS_BEYOND
        });
        let e = recall
            .entry(if a.kind == "risk" {
                "risk"
            } else {
                "opportunity"
            })
            .or_default();
        e.1 += 1;
        if found.is_some() {
            e.0 += 1;
        }
        matches.push(Match {
            id: a.id.clone(),
            kind: a.kind.clone(),
            found_by: found.map(|i| format!("{} #{}", a.kind, i["rank"])),
        });
    }
    let decoys = answers
        .iter()
        .filter(|a| a.kind == "decoy")
        .filter(|a| {
            let hit = insights
                .iter()
                .any(|i| mentions(&insight_text(i), &a.match_terms));
            matches.push(Match {
                id: a.id.clone(),
                kind: a.kind.clone(),
                found_by: hit.then(|| "reported".to_string()),
            });
            hit
        })
        .count();
    let canaries = answers
        .iter()
        .filter(|a| a.kind == "canary")
        .filter(|a| {
            a.match_terms.iter().any(|t| {
                let t = t.to_lowercase();
                readable.iter().any(|r| r.to_lowercase().contains(&t))
            })
        })
        .count();
    let mut total = 0usize;
    let mut valid = 0usize;
    let mut cache: HashMap<String, Option<String>> = HashMap::new();
    for i in &insights {
        for e in i["evidence"].as_array().into_iter().flatten() {
            for c in e["citations"].as_array().into_iter().flatten() {
                total += 1;
                let path = c["document_path"].as_str().unwrap_or("");
                let quote = c["quote"].as_str().unwrap_or("");
                let body = cache
                    .entry(path.to_string())
                    .or_insert_with(|| document(path));
                if !quote.is_empty() && body.as_deref().is_some_and(|b| b.contains(quote)) {
                    valid += 1;
                }
            }
        }
    }
    let r = |k: &str| {
        recall
            .get(k)
            .map(|(f, n)| if *n == 0 { 1.0 } else { *f as f64 / *n as f64 })
            .unwrap_or(1.0)
    };
    (
        Scores {
            risk_recall: r("risk"),
            opportunity_recall: r("opportunity"),
            decoys_reported: decoys,
            canary_leaks: canaries,
            evidence_valid_fraction: if total == 0 {
                0.0
            } else {
                valid as f64 / total as f64
            },
            wall_seconds: (wall_seconds * 10.0).round() / 10.0,
        },
        matches,
    )
}

/// Interests of a department: the words its documents use most that other
/// departments' documents use least.
pub fn department_interests(
    docs: &BTreeMap<String, Vec<String>>,
    n: usize,
) -> BTreeMap<String, Vec<String>> {
    let mut tf: BTreeMap<&str, HashMap<String, f64>> = BTreeMap::new();
    let mut df: HashMap<String, usize> = HashMap::new();
    for (dept, texts) in docs {
        let counts = tf.entry(dept.as_str()).or_default();
        for t in texts {
            for w in warroom::insights::mine::entity_tokens(t) {
                if w.chars().any(|c| c.is_ascii_digit()) || w.len() < 5 {
                    continue;
                }
                *counts.entry(w).or_default() += 1.0;
            }
        }
        for w in counts.keys() {
            *df.entry(w.clone()).or_default() += 1;
        }
    }
    let depts = docs.len().max(1) as f64;
    tf.into_iter()
        .map(|(dept, counts)| {
            let mut scored: Vec<(f64, String)> = counts
                .into_iter()
                .filter(|(_, c)| *c >= 2.0)
                .map(|(w, c)| (c * (1.0 + depts / df[&w] as f64).ln(), w))
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            (
                dept.to_string(),
                scored.into_iter().take(n).map(|(_, w)| w).collect(),
            )
        })
        .collect()
}

fn read_corpus(dir: &Path) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let dept = entry.file_name().to_string_lossy().to_lowercase();
        for f in std::fs::read_dir(entry.path())? {
            let f = f?.path();
            if f.extension().and_then(|e| e.to_str()) == Some("md") {
                out.entry(dept.clone())
                    .or_default()
                    .push(std::fs::read_to_string(&f).unwrap_or_default());
            }
        }
    }
    Ok(out)
}

const ROLES: &[(&str, &str, &str)] = &[
    (
        "analyst",
        "junior",
        "precise and factual; quotes numbers and dates",
    ),
    (
        "manager",
        "mid",
        "practical; asks what it means for the team and the customer",
    ),
    (
        "lead",
        "senior",
        "brief and direct; connects facts across teams and flags risks early",
    ),
];

/// Run the evaluation: `--repeat` runs from scratch, each scored, then the
/// mean, minimum and maximum of every figure.
pub async fn run(settings: Settings, args: PlantedArgs) -> anyhow::Result<()> {
    let answers_path = args.corpus.join("ANSWERS.json");
    let answers: Vec<Answer> =
        serde_json::from_str(&std::fs::read_to_string(&answers_path).with_context(|| {
            format!(
                "reading {}: pass --corpus DIR holding ANSWERS.json",
                answers_path.display()
            )
        })?)
        .with_context(|| {
            format!(
                "{}: expected a list of {{id, kind, match_terms, ...}}",
                answers_path.display()
            )
        })?;
    if !(1..=50).contains(&args.agents_per_department) {
        anyhow::bail!("--agents-per-department must be 1-50");
    }
    if !(args.hours > 0.0 && args.hours <= 24.0 * 14.0) {
        anyhow::bail!("--hours must be more than 0 and at most 336");
    }
    if !(1..=20).contains(&args.repeat) {
        anyhow::bail!("--repeat must be 1-20");
    }
    if args.mine_only && args.repeat > 1 {
        anyhow::bail!("--mine-only scores the one kept run: drop --repeat");
    }
    if let Some(parent) = args.json.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            anyhow::bail!("{}: the folder for --json does not exist", parent.display());
        }
    }
    let corpus = read_corpus(&args.corpus)?;
    if corpus.is_empty() {
        anyhow::bail!(
            "{}: no department folders with Markdown files",
            args.corpus.display()
        );
    }
    let mut runs = Vec::new();
    let mut last = None;
    for k in 0..args.repeat {
        let seed = args.seed.wrapping_add(k as u64);
        if args.repeat > 1 {
            println!("  run {} of {} (seed {seed})", k + 1, args.repeat);
        }
        let data_dir = match &args.data_dir {
            Some(d) if args.repeat > 1 => Some(d.join(format!("run-{}", k + 1))),
            other => other.clone(),
        };
        let one = run_once(settings.clone(), &args, &answers, &corpus, seed, data_dir).await?;
        print_run(&one);
        runs.push(json!({
            "seed": seed,
            "scores": one.scores,
            "coverage": one.coverage,
            "answers": one.matches,
        }));
        last = Some(one);
    }
    let last = last.context("no run")?;
    let summary = summarise(&runs);
    if args.repeat > 1 {
        print_summary(&summary);
    }
    let mut out = last.report;
    out["coverage"] = json!(last.coverage);
    out["runs"] = json!(runs);
    out["summary"] = summary;
    let tmp_out = args.json.with_extension("json.tmp");
    std::fs::write(&tmp_out, serde_json::to_string_pretty(&out)?)?;
    std::fs::rename(&tmp_out, &args.json)?;
    println!("  written to {}", args.json.display());
    Ok(())
}

/// The figures of a run that the summary aggregates, as (name, JSON pointer).
const FIGURES: &[(&str, &str)] = &[
    ("risk_recall", "/scores/risk_recall"),
    ("opportunity_recall", "/scores/opportunity_recall"),
    ("decoys_reported", "/scores/decoys_reported"),
    ("canary_leaks", "/scores/canary_leaks"),
    ("evidence_valid_fraction", "/scores/evidence_valid_fraction"),
    ("facts_stated", "/coverage/facts_stated"),
    ("pairs_met", "/coverage/pairs_met"),
    ("wall_seconds", "/scores/wall_seconds"),
];

/// Mean, minimum and maximum of each figure over the runs.
fn summarise(runs: &[Value]) -> Value {
    let mut out = serde_json::Map::new();
    for (name, ptr) in FIGURES {
        let xs: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.pointer(ptr).and_then(Value::as_f64))
            .collect();
        if xs.is_empty() {
            continue;
        }
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        out.insert(
            name.to_string(),
            json!({"mean": round2(mean), "min": min, "max": max}),
        );
    }
    Value::Object(out)
}

fn print_run(one: &Once) {
    let s = &one.scores;
    println!(
        "  risk recall {:.2}, opportunity recall {:.2}, decoys reported {}, canary leaks {}, evidence valid {:.2}, facts stated {:.2}, pairs met {:.2}, {:.0} s",
        s.risk_recall,
        s.opportunity_recall,
        s.decoys_reported,
        s.canary_leaks,
        s.evidence_valid_fraction,
        one.coverage.facts_stated,
        one.coverage.pairs_met,
        s.wall_seconds
    );
    for m in &one.matches {
        println!(
            "    {:<14} {:<12} {}",
            m.id,
            m.kind,
            m.found_by.as_deref().unwrap_or("-")
        );
    }
}

fn print_summary(summary: &Value) {
    println!("  over all runs (mean / min / max):");
    for (name, _) in FIGURES {
        let f = &summary[*name];
        println!(
            "    {:<24} {:>7.2} {:>7.2} {:>7.2}",
            name,
            f["mean"].as_f64().unwrap_or(0.0),
            f["min"].as_f64().unwrap_or(0.0),
            f["max"].as_f64().unwrap_or(0.0)
        );
    }
}

/// One scored run.
struct Once {
    report: Value,
    scores: Scores,
    coverage: Coverage,
    matches: Vec<Match>,
}

async fn run_once(
    mut settings: Settings,
    args: &PlantedArgs,
    answers: &[Answer],
    corpus: &BTreeMap<String, Vec<String>>,
    seed: u64,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<Once> {
    let started = Instant::now();
    let tmp;
    let data_dir = match data_dir {
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            d
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    settings.storage.data_dir = data_dir.clone();
    settings.storage.database_url = None;
    settings.insights.schedule = false;
    let app = warroom::app::AppState::build(settings)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (departments, sim) = if args.mine_only {
        reuse(&app).await?
    } else {
        app.users.ensure_first_admin(&data_dir).await?;
        let departments = warroom::demo::load_corpus(&app, &args.corpus).await?;
        let sim = simulate(&app, args, corpus, &departments, seed).await?;
        (departments, sim)
    };
    let admin = app
        .directory
        .get(&warroom::ids::UserId::from_trusted(sim.admin_id.as_str()))
        .await
        .map_err(api)?
        .context("the evaluation's admin account is gone")?;
    let period = warroom::insights::Period {
        from: sim.period_start,
        to: chrono::Utc::now() + chrono::Duration::seconds(1),
    };
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let digest = app
        .insights
        .run(
            period,
            warroom::insights::Trigger::Eval,
            warroom::authz::Actor::Principal(&admin),
            &|m| spinner.set_message(m.to_string()),
        )
        .await
        .map_err(api)?;
    spinner.finish_and_clear();
    let digest_json = warroom::insights::render::json(&digest);

    let messages = warroom::storage::entities::message::Entity::find()
        .all(&app.db)
        .await?;
    let talk: Vec<(String, String)> = messages
        .iter()
        .map(|m| {
            (
                m.thread_root.clone().unwrap_or_else(|| m.id.clone()),
                m.body.clone(),
            )
        })
        .collect();
    let coverage = coverage(answers, &talk);
    // What a reader below `restricted` can read: messages and the digest.
    let mut readable: Vec<String> = messages
        .into_iter()
        .filter(|m| {
            m.label
                .parse::<Label>()
                .map(|l| l.level < Level::Restricted)
                .unwrap_or(false)
        })
        .map(|m| m.body)
        .collect();
    let mut below = Label::level(Level::Confidential);
    below.compartments = departments.iter().cloned().collect();
    let redacted = warroom::insights::redact(digest.clone(), &below);
    readable.push(serde_json::to_string(&warroom::insights::render::json(
        &redacted,
    ))?);
    let corpus_dir = args.corpus.clone();
    let read_doc = move |p: &str| -> Option<String> {
        if p.contains("..") {
            return None;
        }
        std::fs::read_to_string(corpus_dir.join(p)).ok()
    };
    let (scores, matches) = score(
        &digest_json,
        answers,
        &readable,
        &read_doc,
        started.elapsed().as_secs_f64(),
    );
    let report = json!({
        "digest": digest_json,
        "scores": scores,
        "answers": matches,
        "run": {
            "corpus": args.corpus.display().to_string(),
            "departments": departments,
            "agents": departments.len() as u32 * args.agents_per_department,
            "brain": args.brain,
            "simulated_hours": args.hours,
            "seed": seed,
            "posts": sim.posts,
            "replies": sim.replies,
            "retrievals": sim.retrievals,
            "turns": sim.turns,
            "silent": sim.silent,
            "refused": sim.refused,
        }
    });
    Ok(Once {
        report,
        scores,
        coverage,
        matches,
    })
}

/// What the simulation did.
struct Sim {
    admin_id: String,
    period_start: chrono::DateTime<chrono::Utc>,
    posts: u64,
    replies: u64,
    retrievals: u64,
    /// Agent turns, and those that ended without a post or a reaction.
    turns: u64,
    silent: u64,
    /// Acts the server refused (a label above the channel, a policy).
    refused: u64,
}

/// A kept run (`--mine-only`): its departments and the whole span of its talk.
async fn reuse(app: &warroom::app::App) -> anyhow::Result<(BTreeSet<String>, Sim)> {
    use sea_orm::QueryOrder;
    let departments: BTreeSet<String> = app
        .knowledge
        .scopes(warroom::authz::Actor::Server)
        .await
        .map_err(api)?
        .into_iter()
        .filter_map(|s| s.spec.name.strip_prefix("dept-").map(str::to_string))
        .collect();
    let first = warroom::storage::entities::message::Entity::find()
        .order_by_asc(warroom::storage::entities::message::Column::CreatedAt)
        .one(&app.db)
        .await?
        .context("--mine-only: the data dir has no messages; run without it first")?;
    let admin = app
        .directory
        .row_by_handle("admin")
        .await
        .map_err(api)?
        .context("--mine-only: no admin in the data dir")?;
    Ok((
        departments,
        Sim {
            admin_id: admin.id,
            period_start: first.created_at - chrono::Duration::seconds(1),
            posts: 0,
            replies: 0,
            retrievals: 0,
            turns: 0,
            silent: 0,
            refused: 0,
        },
    ))
}

/// Spawn the agents and let them talk for `args.hours` of virtual time.
async fn simulate(
    app: &warroom::app::App,
    args: &PlantedArgs,
    corpus: &BTreeMap<String, Vec<String>>,
    departments: &BTreeSet<String>,
    seed: u64,
) -> anyhow::Result<Sim> {
    let started = Instant::now();
    // Templates from the corpus: each department's own vocabulary as interests.
    let interests = department_interests(corpus, 12);
    let mut templates = Vec::new();
    for d in departments {
        for (role, seniority, voice) in ROLES {
            templates.push(Template {
                name: format!("{d}-{role}"),
                department: d.clone(),
                role: role.to_string(),
                seniority: seniority.to_string(),
                interests: interests.get(d).cloned().unwrap_or_default(),
                voice: voice.to_string(),
                activity: ActivityLevel::High,
            });
        }
    }
    app.agents.register_templates(templates.clone());
    let admin = warroom::ops::admin(app, "admin").await?;
    let shared = app
        .chat
        .create_channel(
            &admin,
            warroom::chat::CreateChannel {
                name: "war-room-confidential".into(),
                visibility: "public".into(),
                label: Some("confidential".into()),
                topic: Some("Cross-department talk up to confidential".into()),
            },
        )
        .await
        .map_err(api)?;
    let bar =
        indicatif::ProgressBar::new((departments.len() as u64) * args.agents_per_department as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("  spawning agents {bar:30} {pos}/{len}")
            .expect("static template"),
    );
    let mut leads = Vec::new();
    for d in departments {
        for k in 0..args.agents_per_department {
            let (role, _, _) = ROLES[k as usize % ROLES.len()];
            let req = warroom::agents::SpawnRequest {
                template: format!("{d}-{role}"),
                count: 1,
                scope: Some(format!("dept-{d}")),
                brain: Some(args.brain),
                activity: Some("high".into()),
                // As a spawn by default: the war room and the department's
                // own channel (confidential to it, where what its
                // compartment's documents say can be said), plus the war
                // room for what is confidential without a compartment.
                channels: Some(vec![
                    "war-room".into(),
                    shared.name.clone(),
                    format!("dept-{d}"),
                ]),
                tokens_per_hour: None,
                turns_per_hour: None,
            };
            let out = app
                .agents
                .spawn(&admin, req, 10, &|_, _| {})
                .await
                .map_err(api)?;
            if role == "lead" {
                leads.extend(out.agents.iter().map(|a| a.handle.clone()));
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let brains =
        warroom::agents::host::brains(&app.settings, args.brain == warroom::choice::Brain::Local)
            .await;
    if !brains.names().iter().any(|n| n == args.brain.as_str()) {
        anyhow::bail!(
            "the {} brain is not available: check [agents] settings (openai_base_url, local_model)",
            args.brain
        );
    }
    let platform = Arc::new(app.platform());
    let mut cfg = RuntimeConfig {
        max_concurrent_turns: 8,
        ..warroom::agents::host::runtime_config(&app.settings)
    };
    cfg.scheduler.seed = seed;
    let rt =
        Runtime::start_with_templates(platform, brains, cfg, Shard::ALL, app.agents.templates(), 0)
            .await
            .map_err(|e| anyhow::anyhow!("agent runtime: {e}"))?;
    // A leader opens the conversation in both shared rooms.
    let period_start = chrono::Utc::now() - chrono::Duration::minutes(1);
    let leader = warroom::users::new_user_from(warroom::users::users_create_request(
        "eval-leader".into(),
        "leader".into(),
        Some("Eval Leader".into()),
        None,
        Some("confidential".into()),
        Some(warroom::auth::random_password(16)),
    ))
    .await
    .map_err(api)?;
    let leader = app.directory.create(leader).await.map_err(api)?;
    let leader = app
        .directory
        .get(&warroom::ids::UserId::from_trusted(leader.id))
        .await
        .map_err(api)?
        .context("leader")?;
    let rooms: Vec<ChannelId> = app
        .chat
        .list_channels(&leader)
        .await
        .map_err(api)?
        .into_iter()
        .filter(|c| c.name == "war-room" || c.name == shared.name)
        .map(|c| ChannelId::from_trusted(c.id))
        .collect();
    for room in &rooms {
        app.chat.join(&leader, room).await.map_err(api)?;
        let asked: Vec<String> = leads.iter().map(|h| format!("@{h}")).collect();
        app.chat.post(&leader,
            room,
            warroom::chat::PostMessage {
                body: format!(
                    "{} What risks and opportunities do you see across our teams? Numbers and dates, please.",
                    asked.join(" ")
                ),
                thread_root: None,
                idempotency_key: Some(format!("eval-kickoff-{room}")),
                label: None,
                citations: vec![],
                brain: None,
            },
        )
        .await
        .map_err(api)?;
    }
    let hours_ms = (args.hours * 3_600_000.0) as u64;
    let sim = indicatif::ProgressBar::new(hours_ms / 3_600_000);
    sim.set_style(
        indicatif::ProgressStyle::with_template("  simulating {bar:30} {pos}/{len} hours {msg}")
            .expect("static template"),
    );
    let mut now = 0u64;
    while now < hours_ms {
        let next = (now + 3_600_000).min(hours_ms);
        rt.run_virtual(now, next, 60_000).await;
        now = next;
        let s = rt.stats();
        sim.set_position(now / 3_600_000);
        sim.set_message(format!("{} posts, {} replies", s.posts, s.replies));
        if sim.is_hidden() {
            println!(
                "  simulated {:.1} of {} hours: {} posts, {} replies ({:.0} s)",
                now as f64 / 3_600_000.0,
                args.hours,
                s.posts,
                s.replies,
                started.elapsed().as_secs_f64()
            );
        }
    }
    sim.finish_and_clear();
    let stats = rt.stats();
    app.agents.flush_memory().await;
    println!(
        "  Simulated {} hours: {} posts, {} replies, {} retrievals by {} agents ({} of {} turns silent, {} refused).",
        args.hours,
        stats.posts,
        stats.replies,
        stats.retrievals,
        departments.len() as u32 * args.agents_per_department,
        stats.silent,
        stats.turns,
        stats.refused
    );
    Ok(Sim {
        admin_id: admin.id.to_string(),
        period_start,
        posts: stats.posts,
        replies: stats.replies,
        retrievals: stats.retrievals,
        turns: stats.turns,
        silent: stats.silent,
        refused: stats.refused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(id: &str, kind: &str, depts: &[&str], terms: &[&str], min: usize) -> Answer {
        Answer {
            id: id.into(),
            kind: kind.into(),
            title: String::new(),
            departments: depts.iter().map(|s| s.to_string()).collect(),
            match_terms: terms.iter().map(|s| s.to_string()).collect(),
            min_departments: min,
            evidence: vec![],
        }
    }

    fn cites(depts: &[&str]) -> Value {
        let evidence: Vec<Value> = depts
            .iter()
            .map(|d| json!({"excerpt": "", "citations": [{"document_path": format!("{d}/x.md"), "quote": "q"}]}))
            .collect();
        json!({"insights": [{"kind": "risk", "rank": 1, "title": "Vandersloot residency", "summary": "us-east-1 backups", "evidence": evidence}]})
    }

    #[test]
    fn an_insight_citing_two_departments_beyond_the_answer_does_not_match_it() {
        let a = vec![answer(
            "r",
            "risk",
            &["legal", "engineering"],
            &["Vandersloot", "residency", "us-east-1"],
            2,
        )];
        let found = |depts: &[&str]| score(&cites(depts), &a, &[], &|_| None, 0.0).0.risk_recall;
        assert_eq!(found(&["legal", "engineering"]), 1.0);
        assert_eq!(found(&["legal", "engineering", "finance"]), 1.0);
        assert_eq!(found(&["legal", "engineering", "finance", "sales"]), 0.0);
    }

    #[test]
    fn coverage_counts_facts_stated_and_pairs_that_meet_in_a_thread() {
        let mut a = answer("r", "risk", &["legal", "engineering"], &["x"], 2);
        a.evidence = vec![
            Quote {
                path: "legal/c.md".into(),
                quote: "The Vandersloot contract keeps telemetry in the European Union.".into(),
            },
            Quote {
                path: "engineering/p.md".into(),
                quote: "Nightly backups are replicated to the us-east-1 bucket.".into(),
            },
        ];
        let m = |t: &str, b: &str| (t.to_string(), b.to_string());
        let apart = [
            m(
                "t1",
                "Legal: \"The Vandersloot contract keeps telemetry in the European Union.\"",
            ),
            m(
                "t2",
                "From engineering: nightly backups are replicated to the us-east-1 bucket",
            ),
        ];
        let c = coverage(std::slice::from_ref(&a), &apart);
        assert_eq!((c.facts_stated, c.pairs_met), (1.0, 0.0));
        let together = [apart[0].clone(), m("t1", &apart[1].1)];
        let c = coverage(std::slice::from_ref(&a), &together);
        assert_eq!((c.facts_stated, c.pairs_met), (1.0, 1.0));
        let vague = [m("t1", "Backups and contracts matter to us all.")];
        assert_eq!(coverage(&[a], &vague).facts_stated, 0.0);
    }

    #[test]
    fn the_summary_gives_mean_min_and_max_of_each_figure() {
        let runs = vec![
            json!({"scores": {"risk_recall": 1.0, "decoys_reported": 0}, "coverage": {"pairs_met": 0.5}}),
            json!({"scores": {"risk_recall": 0.5, "decoys_reported": 2}, "coverage": {"pairs_met": 0.25}}),
        ];
        let s = summarise(&runs);
        assert_eq!(
            s["risk_recall"],
            json!({"mean": 0.75, "min": 0.5, "max": 1.0})
        );
        assert_eq!(s["decoys_reported"]["max"], 2.0);
        assert_eq!(s["pairs_met"]["min"], 0.25);
    }

    #[test]
    fn scoring_follows_the_corpus_rule() {
        let digest = json!({"insights": [
            {"kind": "risk", "rank": 1, "title": "GPS drift after firmware 4.2", "summary": "Halvorsen renews in March",
             "evidence": [
                {"excerpt": "x", "citations": [{"document_path": "support/a.md", "quote": "GPS drift at Halvorsen."}]},
                {"excerpt": "y", "citations": [{"document_path": "sales/b.md", "quote": "Made up."}]}]},
            {"kind": "opportunity", "rank": 1, "title": "payroll outage", "summary": "", "evidence": []}
        ]});
        let answers = vec![
            answer(
                "r1",
                "risk",
                &["support", "sales", "engineering"],
                &["firmware 4.2", "GPS drift", "Halvorsen", "antenna", "March"],
                2,
            ),
            answer(
                "r2",
                "risk",
                &["support", "legal"],
                &["GPS drift", "Halvorsen", "March"],
                2,
            ),
            answer("o1", "opportunity", &["hr"], &["interns"], 1),
            answer("d1", "decoy", &["hr"], &["payroll", "outage", "backup"], 1),
            answer("c1", "canary", &["hr"], &["CANARY-X1"], 1),
        ];
        let docs = |p: &str| match p {
            "support/a.md" => Some("text GPS drift at Halvorsen. more".to_string()),
            "sales/b.md" => Some("other".to_string()),
            _ => None,
        };
        let (s, m) = score(
            &digest,
            &answers,
            &["hello canary-x1".to_string()],
            &docs,
            1.0,
        );
        assert_eq!(s.risk_recall, 0.5, "r2 lacks a second department: {m:?}");
        assert_eq!(s.opportunity_recall, 0.0);
        assert_eq!(s.decoys_reported, 1);
        assert_eq!(s.canary_leaks, 1);
        assert_eq!(s.evidence_valid_fraction, 0.5);
    }

    #[test]
    fn interests_are_each_departments_own_words() {
        let mut docs = BTreeMap::new();
        let texts = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        docs.insert(
            "sales".to_string(),
            texts(&["renewal quota meeting", "renewal quota meeting"]),
        );
        docs.insert(
            "legal".to_string(),
            texts(&["contract clause meeting", "contract clause meeting"]),
        );
        let i = department_interests(&docs, 2);
        assert_eq!(i["sales"], vec!["quota".to_string(), "renewal".to_string()]);
        assert_eq!(
            i["legal"],
            vec!["clause".to_string(), "contract".to_string()]
        );
    }
}
