//! The insights job: mine a period's channel transcripts for risks and
//! opportunities, and keep the digests leadership reads.
//!
//! A run reads the period's messages (never direct messages) with the vectors
//! embedded when they were posted (embedding only those that have none), and
//! the document chunks they cite; [`mine`] groups the stated facts into
//! topics and scores them; this module words them, links every claim to its
//! messages and their citations, labels the digest with the highest label of
//! its evidence, and stores it as a new version for its period. Readers get
//! the digest redacted to their clearance.

pub mod judge;
pub mod mine;
pub mod render;
pub mod vectors;
pub mod wording;

use wording::capitalize;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use sea_orm::{ConnectionTrait, Value};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::App;
use crate::chat::{placeholders, stmt};
use crate::error::{ServiceError, ServiceResult};
use crate::label::{Label, Level};
use crate::principal::Principal;
use mine::{ChunkInfo, Kind, MineConfig, Miner, Msg, MsgRef, Signals};
use vectors::{Quantized, ToEmbed};

/// A 64-bit FNV-1a hash (stable across runs).
pub fn hash64(s: &str) -> u64 {
    warroom_agent_runtime::platform::fnv1a(s.as_bytes())
}

/// A digest's period, `[from, to)`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Period {
    /// The `days` before `to`.
    pub fn ending(to: DateTime<Utc>, days: u32) -> Self {
        Self {
            from: to - Duration::days(days as i64),
            to,
        }
    }

    /// Check a requested period.
    pub fn validate(&self) -> ServiceResult<()> {
        if self.from >= self.to {
            return Err(ServiceError::invalid("period: `from` must be before `to`"));
        }
        if self.to - self.from > Duration::days(366) {
            return Err(ServiceError::invalid("period: at most 366 days"));
        }
        if self.from > Utc::now() {
            return Err(ServiceError::invalid("period: `from` is in the future"));
        }
        Ok(())
    }
}

/// A document chunk a message cited, with the sentence it stated.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Citation {
    pub document_path: String,
    pub document_title: String,
    pub department: String,
    pub chunk_id: String,
    pub quote: String,
    pub label: String,
}

/// A message an insight rests on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Evidence {
    pub message_id: String,
    pub channel: String,
    pub channel_id: String,
    pub author: String,
    pub author_name: String,
    pub author_department: Option<String>,
    pub author_is_agent: bool,
    pub posted_at: DateTime<Utc>,
    pub excerpt: String,
    /// Where the UI shows the message: `#/c/<channel>/m/<message>`.
    pub link: String,
    pub label: String,
    pub citations: Vec<Citation>,
}

/// One risk or opportunity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Insight {
    /// Stable across weeks for the same facts.
    pub id: String,
    pub kind: String,
    pub rank: usize,
    pub title: String,
    pub summary: String,
    pub why: String,
    pub departments: Vec<String>,
    pub confidence: f32,
    /// Why the confidence is what it is: the judge's reading and the talk.
    #[serde(default)]
    pub confidence_reason: String,
    /// `new`, `growing`, `steady` or `fading` against the last digest.
    pub trend: String,
    pub label: String,
    pub score: f32,
    #[schema(value_type = Object)]
    pub signals: Signals,
    /// Set when the insight is above the reader's clearance.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redacted: bool,
    pub evidence: Vec<Evidence>,
    /// Facts (document path and sentence hash) it rests on, for trends.
    #[serde(default)]
    pub fact_keys: Vec<String>,
    /// How often its facts were stated this period.
    #[serde(default)]
    pub mentions: u32,
}

/// Messages per channel and department over the period.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ActivityRow {
    pub channel: String,
    pub department: String,
    pub day: String,
    pub messages: u64,
    pub label: String,
}

/// One digest's counts, for the trend chart.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct WeekRow {
    pub period_to: DateTime<Utc>,
    pub risks: usize,
    pub opportunities: usize,
}

/// An insight of the last digest that is no longer found.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Faded {
    pub kind: String,
    pub title: String,
    pub label: String,
}

/// How much the job read.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct RunStats {
    pub messages: u64,
    pub messages_stating_facts: u64,
    pub threads: u64,
    pub facts: usize,
    pub embedded_now: usize,
    pub dismissed_as_resolved: usize,
    /// Candidates the configured chat model judged, and those whose answer
    /// could not be used (unreachable, or not the asked JSON), which then
    /// kept the in-process judgement.
    #[serde(default)]
    pub model_judged: usize,
    #[serde(default)]
    pub model_unusable: usize,
    pub seconds: f64,
}

/// A digest as stored (and, redacted, as read).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Digest {
    pub id: String,
    pub version: i64,
    pub period: Period,
    pub created_at: DateTime<Utc>,
    /// `schedule`, `api`, `cli`, `demo` or `eval`.
    pub trigger: String,
    /// The highest label of the evidence (of what the reader sees, when redacted).
    pub label: String,
    #[serde(default)]
    pub redacted: bool,
    pub insights: Vec<Insight>,
    #[serde(default)]
    pub faded: Vec<Faded>,
    pub activity: Vec<ActivityRow>,
    pub weeks: Vec<WeekRow>,
    pub stats: RunStats,
    /// Model that wrote the summaries (`extractive` when none).
    pub summarizer: String,
}

/// A digest in a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DigestSummary {
    pub id: String,
    pub version: i64,
    pub period: Period,
    pub created_at: DateTime<Utc>,
    pub label: String,
    pub redacted: bool,
    pub counts: BTreeMap<String, usize>,
}

/// Who asked for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Schedule,
    Api,
    Cli,
    Demo,
    Eval,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Api => "api",
            Trigger::Cli => "cli",
            Trigger::Demo => "demo",
            Trigger::Eval => "eval",
        }
    }
}

fn db_err(e: sea_orm::DbErr) -> ServiceError {
    ServiceError::internal(e)
}

/// Run the job for `period` and store the digest.
pub async fn run(
    app: &App,
    period: Period,
    trigger: Trigger,
    actor: Option<&str>,
    progress: &(dyn Fn(&str) + Sync),
) -> ServiceResult<Digest> {
    period.validate()?;
    let started = std::time::Instant::now();
    progress("embedding messages without vectors");
    let embedded_now = catch_up(app, period).await?;
    progress("reading cited documents");
    let chunks = cited_chunks(app, period).await?;
    let doc_bodies = document_bodies(app, &chunks).await?;
    let previous = latest_before(app, period).await?;
    let mut seen: HashMap<String, u32> = HashMap::new();
    if let Some(p) = &previous {
        for i in &p.insights {
            for k in &i.fact_keys {
                seen.insert(k.clone(), i.mentions);
            }
        }
    }
    let mut miner = Miner::new(
        MineConfig {
            max_per_kind: app.settings.insights.max_per_kind,
            ..MineConfig::default()
        },
        chunks,
    );
    progress("reading the transcripts");
    stream_messages(app, period, &mut miner, progress).await?;
    // The stated sentences themselves (bounded by the documents, not the
    // talk): what links facts no one put side by side is their meaning.
    progress("embedding the stated facts");
    if !miner.facts.is_empty() {
        match app.knowledge.embedder().await {
            Ok(embedder) => {
                let texts: Vec<String> = miner.facts.iter().map(|f| f.quote.clone()).collect();
                let mut at = 0;
                for part in texts.chunks(256) {
                    match embedder.embed(part).await {
                        Ok(vs) => {
                            for v in vs {
                                miner.facts[at].vector = v;
                                at += 1;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "facts not embedded; linking them by the talk's vectors");
                            break;
                        }
                    }
                }
                // What each fact reads as: judged by meaning when every
                // fact has its sentence's vector.
                if at == miner.facts.len() && app.settings.insights.judge == "meaning" {
                    progress("judging what the facts are about");
                    match judge::Hypotheses::embed(embedder.as_ref()).await {
                        Ok(Some(h)) => {
                            miner.facets =
                                miner.facts.iter().map(|f| h.facets(&f.vector)).collect();
                            judge::standardize(&mut miner.facets);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "hypotheses not embedded; the word cues decide")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e.message, "no embedder for facts"),
        }
    }
    progress("grouping and scoring topics");
    let (topics, mut dismissed) = miner.topics(&seen);
    let model = model_judge(app);
    let vocab = wording::Vocabulary::new(miner.facts.iter().map(|f| f.quote.as_str()));
    let mut insights = Vec::new();
    let mut rank: HashMap<Kind, usize> = HashMap::new();
    let (mut model_judged, mut model_unusable) = (0, 0);
    for (i, topic) in topics.iter().enumerate() {
        let mut t = topic.clone();
        let mut proposed = None;
        if let Some(judge) = &model {
            progress(&format!(
                "judging candidate {} of {} with the model",
                i + 1,
                topics.len()
            ));
            let facts: Vec<(String, String)> = t
                .facts
                .iter()
                .map(|f| {
                    let fact = &miner.facts[*f as usize];
                    (miner.chunk(fact).department.clone(), fact.quote.clone())
                })
                .collect();
            let nearby = nearest_elsewhere(&miner, &t.facts, NEARBY_FACTS);
            match judge.judge(&facts, &nearby).await {
                Ok(m) => {
                    model_judged += 1;
                    match m.verdict {
                        judge::Verdict::Risk => t.kind = Kind::Risk,
                        judge::Verdict::Opportunity => t.kind = Kind::Opportunity,
                        judge::Verdict::Settled(_) | judge::Verdict::Nothing => {
                            tracing::debug!(verdict = ?m.verdict, reason = %m.reason, "model dismissed a candidate");
                            dismissed += 1;
                            continue;
                        }
                    }
                    proposed = Some(m);
                }
                Err(e) => {
                    model_unusable += 1;
                    tracing::warn!(error = %e, "model judge failed; keeping the in-process judgement")
                }
            }
        }
        let r = rank.entry(t.kind).or_default();
        *r += 1;
        let mut ins = word(&miner, &t, *r, &doc_bodies, &vocab);
        if let Some(m) = proposed {
            if !m.headline.is_empty() {
                ins.title = m.headline;
            }
            if !m.why.is_empty() {
                ins.why = m.why;
            }
            if !m.reason.is_empty() {
                ins.confidence_reason = format!(
                    "{} (model); {}",
                    capitalize(m.reason.trim_end_matches('.')),
                    ins.confidence_reason
                );
            }
        }
        insights.push(ins);
    }
    // Trends against the last digest.
    let mut faded = Vec::new();
    if let Some(p) = &previous {
        for ins in insights.iter_mut() {
            ins.trend = trend(ins, &p.insights);
        }
        for old in &p.insights {
            let still = insights
                .iter()
                .any(|n| overlaps(&n.fact_keys, &old.fact_keys));
            if !still && !old.redacted {
                faded.push(Faded {
                    kind: old.kind.clone(),
                    title: old.title.clone(),
                    label: old.label.clone(),
                });
            }
        }
    }
    let mut label = Label::level(Level::Public);
    for i in &insights {
        label = label.join(&parse_label(&i.label));
    }
    for f in &faded {
        label = label.join(&parse_label(&f.label));
    }
    let mut activity: Vec<ActivityRow> = miner
        .activity
        .iter()
        .map(|((channel, department, day), n)| ActivityRow {
            channel: channel.clone(),
            department: department.clone(),
            day: day.clone(),
            messages: *n,
            label: miner
                .channel_labels
                .get(channel)
                .map(|l| l.to_string())
                .unwrap_or_else(|| "public".into()),
        })
        .collect();
    activity.sort_by(|a, b| {
        (&a.channel, &a.department, &a.day).cmp(&(&b.channel, &b.department, &b.day))
    });
    let mut weeks = week_rows(app, 7).await?;
    weeks.push(WeekRow {
        period_to: period.to,
        risks: insights.iter().filter(|i| i.kind == "risk").count(),
        opportunities: insights.iter().filter(|i| i.kind == "opportunity").count(),
    });
    weeks.sort_by_key(|w| w.period_to);
    weeks.dedup_by_key(|w| w.period_to);
    let digest = Digest {
        id: uuid::Uuid::now_v7().to_string(),
        version: 0,
        period,
        created_at: Utc::now(),
        trigger: trigger.as_str().into(),
        label: label.to_string(),
        redacted: false,
        insights,
        faded,
        activity,
        weeks,
        stats: RunStats {
            messages: miner.messages,
            messages_stating_facts: miner.stating,
            threads: miner.thread_count,
            facts: miner.facts.len(),
            embedded_now,
            dismissed_as_resolved: dismissed,
            model_judged,
            model_unusable,
            seconds: started.elapsed().as_secs_f64(),
        },
        summarizer: if model.is_some() {
            "openai".into()
        } else {
            "extractive".into()
        },
    };
    let digest = store(app, digest, actor).await?;
    app.audit
        .record(
            actor,
            "insights.run",
            &digest.id,
            "ok",
            serde_json::json!({
                "period_from": digest.period.from, "period_to": digest.period.to,
                "version": digest.version, "insights": digest.insights.len(),
                "label": digest.label, "trigger": digest.trigger,
            }),
        )
        .await;
    Ok(digest)
}

fn parse_label(s: &str) -> Label {
    s.parse()
        .unwrap_or_else(|_| Label::level(Level::Restricted))
}

fn overlaps(a: &[String], b: &[String]) -> bool {
    let shared = a.iter().filter(|k| b.contains(k)).count();
    shared > 0 && shared * 3 >= a.len().min(b.len()).max(1)
}

fn trend(ins: &Insight, previous: &[Insight]) -> String {
    match previous
        .iter()
        .find(|p| overlaps(&ins.fact_keys, &p.fact_keys))
    {
        None => "new".into(),
        Some(p) if ins.mentions as f32 > p.mentions as f32 * 1.25 => "growing".into(),
        Some(p) if (ins.mentions as f32) < p.mentions as f32 * 0.8 => "fading".into(),
        Some(_) => "steady".into(),
    }
}

/// Turn a topic into a worded insight with its evidence.
fn word(
    miner: &Miner,
    t: &mine::Topic,
    rank: usize,
    doc_bodies: &HashMap<String, String>,
    vocab: &wording::Vocabulary,
) -> Insight {
    let mut facts: Vec<&mine::Fact> = t.facts.iter().map(|f| &miner.facts[*f as usize]).collect();
    facts.sort_by(|a, b| {
        miner
            .chunk(a)
            .department
            .cmp(&miner.chunk(b).department)
            .then(b.messages.cmp(&a.messages))
    });
    let departments: Vec<String> = facts
        .iter()
        .map(|f| miner.chunk(f).department.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut label = Label::level(Level::Public);
    let mut evidence = Vec::new();
    let mut mentions = 0;
    for f in &facts {
        let c = miner.chunk(f);
        label = label.join(&c.label);
        mentions += f.messages;
        // A quote is kept only if it is the document's own words.
        let valid = doc_bodies
            .get(&c.document_path)
            .is_some_and(|body| body.contains(&f.quote));
        let citations = if valid {
            vec![Citation {
                document_path: c.document_path.clone(),
                document_title: c.document_title.clone(),
                department: c.department.clone(),
                chunk_id: c.id.clone(),
                quote: f.quote.clone(),
                label: c.label.to_string(),
            }]
        } else {
            vec![]
        };
        for r in f.refs.iter().take(2) {
            label = label.join(&parse_label(&r.label));
            evidence.push(evidence_of(r, citations.clone()));
        }
    }
    // Each department's lead fact, the one that says most for this kind.
    let mut leads: Vec<(String, String)> = Vec::new();
    for d in &departments {
        if let Some(f) = t
            .facts
            .iter()
            .filter(|f| &miner.chunk(&miner.facts[**f as usize]).department == d)
            .max_by(|a, b| {
                let (qa, qb) = (
                    &miner.facts[**a as usize].quote,
                    &miner.facts[**b as usize].quote,
                );
                lead_score(miner, **a, t.kind)
                    .total_cmp(&lead_score(miner, **b, t.kind))
                    .then(qb.len().cmp(&qa.len()))
            })
        {
            leads.push((d.clone(), miner.facts[*f as usize].quote.clone()));
        }
    }
    let quotes: Vec<&str> = facts.iter().map(|f| f.quote.as_str()).collect();
    let subject = wording::subject(&quotes, vocab);
    let title = wording::headline(t.kind, &subject, &departments);
    let summary = leads
        .iter()
        .map(|(d, q)| format!("{}: {}", capitalize(d), q))
        .collect::<Vec<_>>()
        .join(" ");
    let dates: Vec<String> = facts
        .iter()
        .flat_map(|f| figures(&f.quote))
        .filter(|w| mine::MONTHS.iter().any(|m| w.starts_with(m)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let why = wording::why(t.kind, &leads, &dates);
    let s = &t.signals;
    let talk = if s.meetings > 0 {
        format!(
            "{} voices from {} departments put its facts side by side {} time{}",
            s.voices,
            s.voice_departments.max(1),
            s.meetings,
            if s.meetings == 1 { "" } else { "s" }
        )
    } else {
        format!(
            "{} voices stated its facts, never in one conversation; the link is shared names and close meaning",
            s.voices
        )
    };
    let confidence_reason = format!("{}; {talk}.", capitalize(&t.reason));
    let mut keys: Vec<String> = facts.iter().map(|f| f.key.clone()).collect();
    keys.sort();
    Insight {
        id: format!("{:016x}", hash64(&keys.join("|"))),
        kind: t.kind.as_str().into(),
        rank,
        title,
        summary,
        why,
        departments,
        confidence: t.confidence,
        confidence_reason,
        trend: "new".into(),
        label: label.to_string(),
        score: (t.score * 1000.0).round() / 1000.0,
        signals: t.signals.clone(),
        redacted: false,
        evidence,
        fact_keys: keys,
        mentions,
    }
}

/// How well a fact speaks for its topic's kind: how far it leans to that
/// kind by meaning (the judge's facets, in standard deviations over the run),
/// or by the generic word cues when no sentence model judged, plus how
/// concrete it is.
fn lead_score(miner: &Miner, fact: u32, kind: Kind) -> f32 {
    let f = &miner.facts[fact as usize];
    let lean = match miner.facets.get(fact as usize) {
        Some(x) => match kind {
            Kind::Risk => x.risk,
            Kind::Opportunity => x.opportunity,
        },
        None => {
            let (risk, opportunity, _) = mine::word_lean(&f.quote);
            match kind {
                Kind::Risk => risk,
                Kind::Opportunity => opportunity,
            }
        }
    };
    lean + mine::concreteness(&f.quote)
}

fn evidence_of(r: &MsgRef, citations: Vec<Citation>) -> Evidence {
    Evidence {
        message_id: r.message_id.clone(),
        channel: r.channel.clone(),
        channel_id: r.channel_id.clone(),
        author: r.author_id.clone(),
        author_name: r.author.clone(),
        author_department: r.author_department.clone(),
        author_is_agent: r.is_agent,
        posted_at: r.posted_at,
        excerpt: r.excerpt.clone(),
        link: format!("#/c/{}/m/{}", r.channel_id, r.message_id),
        label: r.label.clone(),
        citations,
    }
}

/// Numbers, amounts, percentages and month names in a sentence.
fn figures(s: &str) -> Vec<String> {
    s.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')' | '"'))
        .map(|w| w.trim_end_matches(['.', ':']))
        .filter(|w| w.chars().any(|c| c.is_ascii_digit()) || mine::MONTHS.contains(w))
        .map(str::to_string)
        .collect()
}

/// Facts of other departments a model judge sees beside a candidate.
const NEARBY_FACTS: usize = 3;

/// The chat-model judge, when the agents' brain is an OpenAI-compatible
/// endpoint and `[insights] summarize_with_model` is on.
fn model_judge(app: &App) -> Option<judge::ModelJudge> {
    let s = &app.settings;
    if !s.insights.summarize_with_model || s.agents.brain != "openai" {
        return None;
    }
    crate::agents::host::openai_brain(s).map(judge::ModelJudge::new)
}

/// The facts of departments outside `facts` closest in meaning to any of
/// them: what could settle the matter, or show it is routine.
fn nearest_elsewhere(miner: &Miner, facts: &[u32], k: usize) -> Vec<(String, String)> {
    let depts: BTreeSet<&str> = facts
        .iter()
        .map(|f| miner.chunk(&miner.facts[*f as usize]).department.as_str())
        .collect();
    let unit = |v: &[f32]| judge::unit(v.to_vec());
    let own: Vec<Vec<f32>> = facts
        .iter()
        .map(|f| &miner.facts[*f as usize].vector)
        .filter(|v| !v.is_empty())
        .map(|v| unit(v))
        .collect();
    let mut scored: Vec<(f32, usize)> = miner
        .facts
        .iter()
        .enumerate()
        .filter(|(_, g)| {
            !g.vector.is_empty() && !depts.contains(miner.chunk(g).department.as_str())
        })
        .map(|(i, g)| {
            let vg = unit(&g.vector);
            let best = own
                .iter()
                .map(|v| v.iter().zip(&vg).map(|(a, b)| a * b).sum::<f32>())
                .fold(f32::NEG_INFINITY, f32::max);
            (best, i)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored
        .into_iter()
        .take(k)
        .map(|(_, i)| {
            let g = &miner.facts[i];
            (miner.chunk(g).department.clone(), g.quote.clone())
        })
        .collect()
}

/// Embed the period's messages that have no vector yet.
async fn catch_up(app: &App, period: Period) -> ServiceResult<usize> {
    let backend = app.db.get_database_backend();
    let mut done = 0;
    loop {
        let rows = app
            .db
            .query_all_raw(stmt(
                backend,
                "SELECT m.id, m.body FROM messages m JOIN channels c ON c.id = m.channel_id \
                 LEFT JOIN message_vectors v ON v.message_id = m.id \
                 WHERE v.message_id IS NULL AND m.deleted = $1 AND c.visibility <> 'direct' \
                 AND m.created_at >= $2 AND m.created_at < $3 LIMIT 512",
                vec![false.into(), period.from.into(), period.to.into()],
            ))
            .await
            .map_err(db_err)?;
        if rows.is_empty() {
            return Ok(done);
        }
        let batch: Vec<ToEmbed> = rows
            .iter()
            .filter_map(|r| {
                Some(ToEmbed {
                    message_id: r.try_get("", "id").ok()?,
                    body: r.try_get("", "body").ok()?,
                })
            })
            .collect();
        let embedder = match app.knowledge.embedder().await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e.message, "no embedder: mining without message vectors");
                return Ok(done);
            }
        };
        let n = vectors::embed_and_store(app, &embedder, &batch)
            .await
            .map_err(|e| {
                ServiceError::new(
                    crate::error::ErrorKind::Unavailable,
                    "embedder_failed",
                    format!("embedding messages failed: {e}; check [knowledge] embedder settings"),
                )
            })?;
        done += n;
        if n < 512 {
            return Ok(done);
        }
    }
}

/// The chunks the period's messages cite, with their documents.
async fn cited_chunks(app: &App, period: Period) -> ServiceResult<Vec<ChunkInfo>> {
    let backend = app.db.get_database_backend();
    let rows = app
        .db
        .query_all_raw(stmt(
            backend,
            "SELECT k.id, k.text, d.path, d.title, d.department, d.label FROM chunks k \
             JOIN documents d ON d.id = k.document_id WHERE k.id IN ( \
             SELECT DISTINCT mc.chunk_id FROM message_citations mc \
             JOIN messages m ON m.id = mc.message_id \
             WHERE m.created_at >= $1 AND m.created_at < $2)",
            vec![period.from.into(), period.to.into()],
        ))
        .await
        .map_err(db_err)?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(ChunkInfo {
                id: r.try_get("", "id").ok()?,
                text: r.try_get("", "text").ok()?,
                document_path: r.try_get("", "path").ok()?,
                document_title: r.try_get("", "title").ok()?,
                department: r.try_get("", "department").ok()?,
                label: parse_label(&r.try_get::<String>("", "label").ok()?),
            })
        })
        .collect())
}

async fn document_bodies(
    app: &App,
    chunks: &[ChunkInfo],
) -> ServiceResult<HashMap<String, String>> {
    let backend = app.db.get_database_backend();
    let paths: BTreeSet<&str> = chunks.iter().map(|c| c.document_path.as_str()).collect();
    let mut out = HashMap::new();
    let paths: Vec<&str> = paths.into_iter().collect();
    for part in paths.chunks(500) {
        let rows = app
            .db
            .query_all_raw(stmt(
                backend,
                &format!(
                    "SELECT path, body FROM documents WHERE path IN ({})",
                    placeholders(part.len(), 0)
                ),
                part.iter().map(|p| Value::from(p.to_string())).collect(),
            ))
            .await
            .map_err(db_err)?;
        for r in rows {
            if let (Ok(p), Ok(b)) = (
                r.try_get::<String>("", "path"),
                r.try_get::<String>("", "body"),
            ) {
                out.insert(p, b);
            }
        }
    }
    Ok(out)
}

/// Feed the period's messages to the miner, channel by channel, in pages.
async fn stream_messages(
    app: &App,
    period: Period,
    miner: &mut Miner,
    progress: &(dyn Fn(&str) + Sync),
) -> ServiceResult<()> {
    const PAGE: usize = 5000;
    let backend = app.db.get_database_backend();
    let mut cursor = (String::new(), -1i64);
    let mut read = 0u64;
    loop {
        let rows = app
            .db
            .query_all_raw(stmt(
                backend,
                "SELECT m.id, m.channel_id, c.name AS channel, m.seq, m.author_id, \
                 u.display_name, u.department, u.kind, m.thread_root, m.created_at, m.body, \
                 m.label, v.vector FROM messages m \
                 JOIN channels c ON c.id = m.channel_id JOIN users u ON u.id = m.author_id \
                 LEFT JOIN message_vectors v ON v.message_id = m.id \
                 WHERE m.deleted = $1 AND c.visibility <> 'direct' \
                 AND m.created_at >= $2 AND m.created_at < $3 \
                 AND (m.channel_id > $4 OR (m.channel_id = $5 AND m.seq > $6)) \
                 ORDER BY m.channel_id, m.seq LIMIT 5000",
                vec![
                    false.into(),
                    period.from.into(),
                    period.to.into(),
                    cursor.0.clone().into(),
                    cursor.0.clone().into(),
                    cursor.1.into(),
                ],
            ))
            .await
            .map_err(db_err)?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut page: Vec<Msg> = Vec::with_capacity(rows.len());
        for r in &rows {
            let get = |c: &str| r.try_get::<String>("", c);
            let (Ok(id), Ok(channel_id), Ok(seq)) =
                (get("id"), get("channel_id"), r.try_get::<i64>("", "seq"))
            else {
                continue;
            };
            cursor = (channel_id.clone(), seq);
            page.push(Msg {
                id,
                channel_id,
                channel: get("channel").unwrap_or_default(),
                seq,
                author_id: get("author_id").unwrap_or_default(),
                author: get("display_name").unwrap_or_default(),
                author_department: r.try_get::<Option<String>>("", "department").ok().flatten(),
                is_agent: get("kind").is_ok_and(|k| k == "agent"),
                thread_root: r
                    .try_get::<Option<String>>("", "thread_root")
                    .ok()
                    .flatten(),
                created_at: r
                    .try_get::<DateTime<Utc>>("", "created_at")
                    .unwrap_or_else(|_| Utc::now()),
                body: get("body").unwrap_or_default(),
                label: parse_label(&get("label").unwrap_or_default()),
                vector: r
                    .try_get::<Option<String>>("", "vector")
                    .ok()
                    .flatten()
                    .and_then(|v| Quantized::decode(&v)),
                citations: Vec::new(),
            });
        }
        // Citations of the page.
        let mut cites: HashMap<String, Vec<String>> = HashMap::new();
        for part in page.chunks(900) {
            let crow = app
                .db
                .query_all_raw(stmt(
                    backend,
                    &format!(
                        "SELECT message_id, chunk_id FROM message_citations WHERE message_id IN ({})",
                        placeholders(part.len(), 0)
                    ),
                    part.iter().map(|m| Value::from(m.id.clone())).collect(),
                ))
                .await
                .map_err(db_err)?;
            for r in crow {
                if let (Ok(m), Ok(c)) = (
                    r.try_get::<String>("", "message_id"),
                    r.try_get::<String>("", "chunk_id"),
                ) {
                    cites.entry(m).or_default().push(c);
                }
            }
        }
        let n = page.len();
        for mut m in page {
            if let Some(mut c) = cites.remove(&m.id) {
                c.sort();
                m.citations = c;
            }
            miner.push(m);
        }
        read += n as u64;
        progress(&format!("read {read} messages"));
        if n < PAGE {
            return Ok(());
        }
    }
}

async fn latest_before(app: &App, period: Period) -> ServiceResult<Option<Digest>> {
    let backend = app.db.get_database_backend();
    let row = app
        .db
        .query_one_raw(stmt(
            backend,
            "SELECT data FROM digests WHERE period_to <= $1 OR (period_from = $2 AND period_to = $3) \
             ORDER BY created_at DESC LIMIT 1",
            vec![period.from.into(), period.from.into(), period.to.into()],
        ))
        .await
        .map_err(db_err)?;
    Ok(row
        .and_then(|r| r.try_get::<String>("", "data").ok())
        .and_then(|d| serde_json::from_str(&d).ok()))
}

async fn week_rows(app: &App, n: u64) -> ServiceResult<Vec<WeekRow>> {
    let backend = app.db.get_database_backend();
    let rows = app
        .db
        .query_all_raw(stmt(
            backend,
            "SELECT period_to, risks, opportunities FROM digests ORDER BY created_at DESC LIMIT $1",
            vec![(n as i64 * 4).into()],
        ))
        .await
        .map_err(db_err)?;
    let mut out: Vec<WeekRow> = Vec::new();
    for r in rows {
        let (Ok(to), Ok(risks), Ok(opps)) = (
            r.try_get::<DateTime<Utc>>("", "period_to"),
            r.try_get::<i64>("", "risks"),
            r.try_get::<i64>("", "opportunities"),
        ) else {
            continue;
        };
        // The newest version of each period.
        if out.iter().any(|w| w.period_to == to) {
            continue;
        }
        out.push(WeekRow {
            period_to: to,
            risks: risks as usize,
            opportunities: opps as usize,
        });
        if out.len() as u64 >= n {
            break;
        }
    }
    Ok(out)
}

/// Store `digest` as the next version of its period.
async fn store(app: &App, mut digest: Digest, actor: Option<&str>) -> ServiceResult<Digest> {
    let backend = app.db.get_database_backend();
    let _gate = app.gate.enter().await;
    let txn = crate::storage::begin_write(&app.db).await.map_err(db_err)?;
    let row = txn
        .query_one_raw(stmt(
            backend,
            "SELECT MAX(version) AS v FROM digests WHERE period_from = $1 AND period_to = $2",
            vec![digest.period.from.into(), digest.period.to.into()],
        ))
        .await
        .map_err(db_err)?;
    let last: i64 = row
        .and_then(|r| r.try_get::<Option<i64>>("", "v").ok().flatten())
        .unwrap_or(0);
    digest.version = last + 1;
    let data = serde_json::to_string(&digest).map_err(ServiceError::internal)?;
    txn.execute_raw(stmt(
        backend,
        "INSERT INTO digests (id, period_from, period_to, version, label, risks, opportunities, \
         trigger_kind, created_by, created_at, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        vec![
            digest.id.clone().into(),
            digest.period.from.into(),
            digest.period.to.into(),
            digest.version.into(),
            digest.label.clone().into(),
            (digest.insights.iter().filter(|i| i.kind == "risk").count() as i64).into(),
            (digest.insights.iter().filter(|i| i.kind == "opportunity").count() as i64).into(),
            digest.trigger.clone().into(),
            actor.map(str::to_string).into(),
            digest.created_at.into(),
            data.into(),
        ],
    ))
    .await
    .map_err(db_err)?;
    txn.commit().await.map_err(db_err)?;
    Ok(digest)
}

/// How many digests and message vectors are stored.
pub async fn stored_counts(app: &App) -> ServiceResult<(u64, u64)> {
    let backend = app.db.get_database_backend();
    let mut out = [0u64; 2];
    for (i, table) in ["digests", "message_vectors"].iter().enumerate() {
        let row = app
            .db
            .query_one_raw(stmt(
                backend,
                &format!("SELECT COUNT(*) AS n FROM {table}"),
                vec![],
            ))
            .await
            .map_err(db_err)?;
        out[i] = row
            .and_then(|r| r.try_get::<i64>("", "n").ok())
            .unwrap_or(0) as u64;
    }
    Ok((out[0], out[1]))
}

/// Stored digests, newest first, as `reader` may see them.
pub async fn list(app: &App, reader: &Principal, limit: u64) -> ServiceResult<Vec<DigestSummary>> {
    let backend = app.db.get_database_backend();
    let rows = app
        .db
        .query_all_raw(stmt(
            backend,
            "SELECT id, version, period_from, period_to, created_at, label, risks, opportunities \
             FROM digests ORDER BY period_to DESC, version DESC LIMIT $1",
            vec![(limit.clamp(1, 500) as i64).into()],
        ))
        .await
        .map_err(db_err)?;
    let mut out = Vec::new();
    for r in rows {
        let label: String = r.try_get("", "label").map_err(db_err)?;
        let cleared = parse_label(&label).within(&reader.clearance);
        let mut counts = BTreeMap::new();
        counts.insert(
            "risk".to_string(),
            r.try_get::<i64>("", "risks").map_err(db_err)? as usize,
        );
        counts.insert(
            "opportunity".to_string(),
            r.try_get::<i64>("", "opportunities").map_err(db_err)? as usize,
        );
        out.push(DigestSummary {
            id: r.try_get("", "id").map_err(db_err)?,
            version: r.try_get("", "version").map_err(db_err)?,
            period: Period {
                from: r.try_get("", "period_from").map_err(db_err)?,
                to: r.try_get("", "period_to").map_err(db_err)?,
            },
            created_at: r.try_get("", "created_at").map_err(db_err)?,
            label: if cleared {
                label
            } else {
                reader.clearance.to_string()
            },
            redacted: !cleared,
            counts,
        });
    }
    Ok(out)
}

/// One digest (`latest` for the newest), redacted to `reader`'s clearance.
pub async fn get(app: &App, reader: &Principal, id: &str) -> ServiceResult<Digest> {
    let backend = app.db.get_database_backend();
    let row = if id == "latest" {
        app.db
            .query_one_raw(stmt(
                backend,
                "SELECT data FROM digests ORDER BY period_to DESC, version DESC LIMIT 1",
                vec![],
            ))
            .await
    } else {
        if id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(ServiceError::invalid(
                "digest id must be a UUID or `latest`",
            ));
        }
        app.db
            .query_one_raw(stmt(
                backend,
                "SELECT data FROM digests WHERE id = $1",
                vec![id.to_string().into()],
            ))
            .await
    }
    .map_err(db_err)?
    .ok_or_else(|| ServiceError::not_found("digest"))?;
    let data: String = row.try_get("", "data").map_err(db_err)?;
    let digest: Digest = serde_json::from_str(&data).map_err(ServiceError::internal)?;
    redact_now(app, digest, reader).await
}

/// What a reader cleared for `clearance` may see of `d`: insights above it
/// keep only their kind and rank; channels above it leave the activity chart.
pub fn redact(mut d: Digest, clearance: &Label) -> Digest {
    if parse_label(&d.label).within(clearance) {
        return d;
    }
    d.redacted = true;
    let mut label = Label::level(Level::Public);
    for i in d.insights.iter_mut() {
        let l = parse_label(&i.label);
        if l.within(clearance) {
            label = label.join(&l);
            continue;
        }
        *i = redacted_insight(i);
    }
    d.faded.retain(|f| parse_label(&f.label).within(clearance));
    d.activity
        .retain(|a| parse_label(&a.label).within(clearance));
    d.label = label.to_string();
    d
}

/// What is left of an insight a reader may not see: its kind, rank and trend.
fn redacted_insight(i: &Insight) -> Insight {
    Insight {
        id: i.id.clone(),
        kind: i.kind.clone(),
        rank: i.rank,
        title: "Redacted: above your clearance".into(),
        summary: String::new(),
        why: String::new(),
        departments: vec![],
        confidence: 0.0,
        confidence_reason: String::new(),
        trend: i.trend.clone(),
        label: "redacted".into(),
        score: 0.0,
        signals: Signals::default(),
        redacted: true,
        evidence: vec![],
        fact_keys: vec![],
        mentions: 0,
    }
}

/// What `reader` may see of a stored digest *now*: labels frozen when it was
/// written are raised to the current labels of its evidence (a message
/// reclassified since is redacted at once), an insight resting on a message
/// of a private channel the reader is not a member of, or on one deleted or
/// gone, is redacted, and so are activity rows of channels they cannot read.
/// Then [`redact`] applies the reader's clearance (SECURITY-CASES 10, 25).
pub async fn redact_now(app: &App, mut d: Digest, reader: &Principal) -> ServiceResult<Digest> {
    use crate::storage::entities::{channel, membership, message};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let ids: BTreeSet<String> = d
        .insights
        .iter()
        .flat_map(|i| i.evidence.iter().map(|e| e.message_id.clone()))
        .collect();
    let mut current: HashMap<String, message::Model> = HashMap::new();
    let ids: Vec<String> = ids.into_iter().collect();
    for chunk in ids.chunks(500) {
        for m in message::Entity::find()
            .filter(message::Column::Id.is_in(chunk.to_vec()))
            .all(&app.db)
            .await?
        {
            current.insert(m.id.clone(), m);
        }
    }
    let channel_ids: BTreeSet<String> = current.values().map(|m| m.channel_id.clone()).collect();
    let names: BTreeSet<String> = d.activity.iter().map(|a| a.channel.clone()).collect();
    let mut channels: Vec<channel::Model> = Vec::new();
    let channel_ids: Vec<String> = channel_ids.into_iter().collect();
    for chunk in channel_ids.chunks(500) {
        channels.extend(
            channel::Entity::find()
                .filter(channel::Column::Id.is_in(chunk.to_vec()))
                .all(&app.db)
                .await?,
        );
    }
    let names: Vec<String> = names.into_iter().collect();
    for chunk in names.chunks(500) {
        channels.extend(
            channel::Entity::find()
                .filter(channel::Column::Name.is_in(chunk.to_vec()))
                .all(&app.db)
                .await?,
        );
    }
    let member_of: BTreeSet<String> = membership::Entity::find()
        .filter(membership::Column::UserId.eq(reader.id.as_str()))
        .filter(
            membership::Column::ChannelId
                .is_in(channels.iter().map(|c| c.id.clone()).collect::<Vec<_>>()),
        )
        .all(&app.db)
        .await?
        .into_iter()
        .map(|m| m.channel_id)
        .collect();
    // A channel is readable when it is public, or private with the reader a
    // member; direct channels never are (the job does not mine them).
    let readable = |c: &channel::Model| match c.visibility.as_str() {
        "public" => true,
        "private" => member_of.contains(&c.id),
        _ => false,
    };
    let by_id: HashMap<&str, &channel::Model> =
        channels.iter().map(|c| (c.id.as_str(), c)).collect();
    for i in d.insights.iter_mut() {
        if i.redacted {
            continue;
        }
        let mut label = parse_label(&i.label);
        let mut ok = true;
        for e in i.evidence.iter_mut() {
            let Some(m) = current.get(&e.message_id).filter(|m| !m.deleted) else {
                ok = false;
                break;
            };
            if !by_id
                .get(m.channel_id.as_str())
                .is_some_and(|c| readable(c))
            {
                ok = false;
                break;
            }
            let now = parse_label(&m.label).join(&parse_label(&e.label));
            e.label = now.to_string();
            label = label.join(&now);
        }
        if ok {
            i.label = label.to_string();
        } else {
            *i = redacted_insight(i);
        }
    }
    d.activity
        .retain(|a| channels.iter().any(|c| c.name == a.channel && readable(c)));
    // The digest's label is the join of what it still shows.
    let mut label = Label::level(Level::Public);
    for i in d.insights.iter().filter(|i| !i.redacted) {
        label = label.join(&parse_label(&i.label));
    }
    for a in &d.activity {
        label = label.join(&parse_label(&a.label));
    }
    for f in &d.faded {
        label = label.join(&parse_label(&f.label));
    }
    let was_redacted = d.insights.iter().any(|i| i.redacted);
    d.label = label.to_string();
    let mut d = redact(d, &reader.clearance);
    d.redacted |= was_redacted;
    Ok(d)
}

/// The scheduled run: once per period, on the configured weekday and hour.
pub fn spawn_schedule(app: App) {
    if !app.settings.insights.schedule {
        return;
    }
    tokio::spawn(async move {
        loop {
            let now = Utc::now();
            if let Some(period) = due_period(&app, now) {
                let exists = latest_before(&app, period)
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|d| d.period == period);
                if !exists {
                    match run(&app, period, Trigger::Schedule, None, &|_| {}).await {
                        Ok(d) => {
                            tracing::info!(digest = %d.id, insights = d.insights.len(), "scheduled digest written")
                        }
                        Err(e) => {
                            tracing::warn!(error = %e.message, "scheduled insights run failed")
                        }
                    }
                }
            }
            tokio::time::sleep(std::time::Duration::from_secs(300)).await;
        }
    });
}

/// The period the schedule owes a digest for at `now`: the `period_days`
/// ending at the most recent configured weekday and hour.
pub fn due_period(app: &App, now: DateTime<Utc>) -> Option<Period> {
    let s = &app.settings.insights;
    let weekday = crate::config::parse_weekday(&s.weekday)?;
    let mut day = now.date_naive();
    for _ in 0..8 {
        if day.weekday() == weekday {
            let at = Utc.from_utc_datetime(&day.and_hms_opt(s.hour, 0, 0)?);
            if at <= now {
                return Some(Period::ending(at, s.period_days));
            }
        }
        day = day.pred_opt()?;
    }
    None
}
