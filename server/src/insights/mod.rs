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

pub mod digests;
pub mod job;
pub mod judge;
pub mod mine;
pub mod render;
pub mod schedule;
pub mod vectors;
pub mod wording;

pub use digests::{redact, DigestRef};

use wording::capitalize;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use sea_orm::{ConnectionTrait, Value};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use std::sync::Arc;

use crate::audit::Audit;
use crate::config::InsightSettings;

use crate::knowledge::Knowledge;
use crate::label::{Label, Level};
use crate::principal::Principal;
use crate::storage::sql::{placeholders, stmt};
use crate::storage::WriteGate;
use mine::{ChunkInfo, Kind, MineConfig, Miner, Msg, MsgRef, Signals};
use sea_orm::DatabaseConnection;
use vectors::{Quantized, ToEmbed};
pub use warroom_types::InsightKind;

crate::error::service_error! {
    /// Why an insights operation failed.
    pub enum InsightsError / InsightsResult {
        /// The embedder failed on the facts or messages.
        EmbedderFailed => Unavailable, "embedder_failed";
    }
    from {
        /// Reading cited chunks and the embedder.
        Knowledge(crate::knowledge::KnowledgeError),
    }
}

/// The insights service: the job, the stored digests and the schedule, with
/// the handles they need. Cloning is cheap: every handle is shared.
#[derive(Clone)]
pub struct Insights {
    db: DatabaseConnection,
    settings: InsightSettings,
    knowledge: Arc<Knowledge>,
    audit: Arc<Audit>,
    authz: Arc<crate::authz::Authz>,
    gate: WriteGate,
    /// The chat-model judge, when the agents' brain is an OpenAI-compatible
    /// endpoint and `[insights] summarize_with_model` is on.
    model_judge: Option<Arc<judge::ModelJudge>>,
}

impl Insights {
    /// An insights service over these handles.
    pub fn new(
        db: DatabaseConnection,
        settings: InsightSettings,
        knowledge: Arc<Knowledge>,
        audit: Arc<Audit>,
        authz: Arc<crate::authz::Authz>,
        gate: WriteGate,
        model_judge: Option<judge::ModelJudge>,
    ) -> Self {
        Self {
            db,
            settings,
            knowledge,
            audit,
            authz,
            gate,
            model_judge: model_judge.map(Arc::new),
        }
    }
}

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
    pub fn validate(&self) -> InsightsResult<()> {
        if self.from >= self.to {
            return Err(InsightsError::invalid("period: `from` must be before `to`"));
        }
        if self.to - self.from > Duration::days(366) {
            return Err(InsightsError::invalid("period: at most 366 days"));
        }
        if self.from > Utc::now() {
            return Err(InsightsError::invalid("period: `from` is in the future"));
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
    pub kind: InsightKind,
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
    pub kind: InsightKind,
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

fn db_err(e: sea_orm::DbErr) -> InsightsError {
    InsightsError::internal(e)
}

/// A stored label of a digest's part; unreadable counts as `restricted`.
fn parse_label(s: &str) -> Label {
    Label::from_stored(s, &Label::level(Level::Restricted))
}
