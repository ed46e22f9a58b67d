//! The knowledge service: ingestion, documents, scopes and scoped retrieval.
//!
//! The database is the source of truth for documents, chunk text and labels; the vector
//! store holds vectors and a filterable copy of each chunk's metadata. Ingestion writes new
//! vectors first, then swaps the document's rows in one transaction, then drops the old
//! vectors, so a failure never leaves a half-replaced document visible: retrieval only
//! returns chunks that exist in the database, with the database's current label, and every
//! returned chunk is re-checked by Cedar against the scope and the caller's clearance.

pub mod documents;
pub mod engine;
pub mod ingest;
pub mod retrieval;
pub mod scope;
pub mod scopes;
pub mod views;

pub use scopes::ScopePreview;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use utoipa::ToSchema;
use warroom_knowledge::chunker::{self, ApproxTokens, ChunkOptions, TokenCounter};
use warroom_knowledge::document::{self as parser, Limits};
use warroom_knowledge::embed::{Embedder, MiniLm, OpenAiEmbedder, OpenAiSettings};
use warroom_knowledge::store::{ChunkFilter, ChunkPayload, ChunkPoint, EdgeStore, VectorStore};
use warroom_knowledge::{models, sparse};

use crate::audit::Audit;
use crate::authz::{Actor, Authz, ChunkAttrs, ScopeRule, SystemAction};
use crate::config::KnowledgeSettings;

use crate::ids::{ChunkId, MessageId, ScopeId};
use crate::label::Label;
use crate::principal::Principal;
use crate::storage::entities::{
    chunk, document, message, message_citation, principal_scope, scope as scope_e,
};
use scope::{parse_slug, Scope, ScopeSpec};

crate::error::service_error! {
    /// Why a knowledge operation failed.
    pub enum KnowledgeError / KnowledgeResult {
        /// The embedder or the vector store could not be loaded.
        Unavailable => Unavailable, "knowledge_unavailable";
        /// The given department disagrees with the file's front matter.
        DepartmentConflict => Conflict, "department_conflict";
        /// The file holds no text to index.
        Empty => Unprocessable, "empty";
        /// The embedder failed on this text.
        EmbedderFailed => Unavailable, "embedder_failed";
        /// A cited chunk does not exist (any more).
        UnknownCitation => Unprocessable, "unknown_citation";
    }
    from {
        /// The file could not be parsed; the code is the parser's.
        Unreadable(ingest::UnreadableFile),
    }
}

/// What one ingested file became.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IngestOutcome {
    pub path: String,
    /// `created`, `updated` or `unchanged`.
    pub status: &'static str,
    pub document_id: String,
    pub chunks: usize,
    pub label: String,
}

/// Metadata given with a file by whoever uploads it.
///
/// The given label is a floor: front matter may raise it but never lower it
/// (the stored label is the join of both). A given department must agree with
/// the front matter's; `fallback_department` (e.g. the folder a file sits in)
/// applies only when neither names one.
#[derive(Debug, Clone, Default)]
pub struct IngestMeta {
    pub collection: Option<String>,
    pub label: Option<String>,
    pub department: Option<String>,
    pub fallback_department: Option<String>,
    pub tags: Vec<String>,
}

pub use warroom_types::wire::{Retrieval, RetrievedChunk};

/// A retrieved chunk from its rows.
fn retrieved_chunk(c: &chunk::Model, d: &document::Model, score: f32) -> RetrievedChunk {
    RetrievedChunk {
        chunk_id: c.id.clone(),
        document_id: d.id.clone(),
        document_path: d.path.clone(),
        title: d.title.clone(),
        heading_path: parse_list(&c.heading_path),
        text: c.text.clone(),
        collection: d.collection.clone(),
        department: d.department.clone(),
        label: d.label.clone(),
        score,
    }
}

/// A chunk cited by a message, as one reader sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CitedChunk {
    #[serde(flatten)]
    pub chunk: RetrievedChunk,
    /// True when the text is withheld because the reader is not cleared for the label.
    pub redacted: bool,
}

/// The knowledge service.
pub struct Knowledge {
    db: DatabaseConnection,
    settings: KnowledgeSettings,
    data_dir: PathBuf,
    authz: Arc<Authz>,
    audit: Arc<Audit>,
    /// What an agent retrieves or is handed from documents counts toward
    /// the label of its next post (SECURITY-CASES 28).
    marks: Arc<crate::marks::AgentMarks>,
    engine: OnceCell<Engine>,
    /// One ingestion or reclassification at a time per process: keeps the
    /// vectors-then-rows swap of a document from interleaving with another.
    write: tokio::sync::Mutex<()>,
    /// Who retrieves through which scope, for at most [`SCOPE_TTL`]; cleared
    /// by every scope edit or assignment in this process.
    scope_cache: std::sync::Mutex<HashMap<String, (std::time::Instant, Option<Scope>)>>,
}

/// How long a principal's scope is reused before it is read again. Edits made
/// through this process apply at once; edits made elsewhere within this time.
const SCOPE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// The embedder, token counter and vector store, loaded on first use.
#[derive(Clone)]
pub struct Engine {
    pub embedder: Arc<dyn Embedder>,
    pub counter: Arc<dyn TokenCounter>,
    pub store: Arc<dyn VectorStore>,
}

fn internal(e: impl std::fmt::Display) -> KnowledgeError {
    KnowledgeError::internal(e)
}

fn json_list(list: &[String]) -> String {
    serde_json::to_string(list).expect("strings serialise")
}

fn parse_list(raw: &str) -> Vec<String> {
    serde_json::from_str(raw).unwrap_or_default()
}

/// A chunk's policy attributes from its document row.
fn chunk_attrs(chunk_id: &str, d: &document::Model) -> KnowledgeResult<ChunkAttrs> {
    Ok(ChunkAttrs {
        id: chunk_id.to_string(),
        collection: d.collection.clone(),
        department: d.department.clone(),
        tags: parse_list(&d.tags),
        label: d
            .label
            .parse()
            .map_err(|e| internal(format!("document {} has a bad label: {e}", d.id)))?,
    })
}

impl Knowledge {
    pub fn new(
        db: DatabaseConnection,
        settings: KnowledgeSettings,
        data_dir: PathBuf,
        authz: Arc<Authz>,
        audit: Arc<Audit>,
        marks: Arc<crate::marks::AgentMarks>,
    ) -> Self {
        Self {
            db,
            settings,
            data_dir,
            authz,
            audit,
            marks,
            engine: OnceCell::new(),
            write: tokio::sync::Mutex::new(()),
            scope_cache: std::sync::Mutex::new(HashMap::new()),
        }
    }
}
