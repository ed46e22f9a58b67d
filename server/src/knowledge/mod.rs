//! The knowledge service: ingestion, documents, scopes and scoped retrieval.
//!
//! The database is the source of truth for documents, chunk text and labels; the vector
//! store holds vectors and a filterable copy of each chunk's metadata. Ingestion writes new
//! vectors first, then swaps the document's rows in one transaction, then drops the old
//! vectors, so a failure never leaves a half-replaced document visible: retrieval only
//! returns chunks that exist in the database, with the database's current label, and every
//! returned chunk is re-checked by Cedar against the scope and the caller's clearance.

pub mod scope;
pub mod views;

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
use crate::authz::{Authz, ChunkAttrs, ScopeRule};
use crate::config::KnowledgeSettings;
use crate::error::{ServiceError, ServiceResult};
use crate::label::Label;
use crate::principal::Principal;
use crate::storage::entities::{
    chunk, document, message, message_citation, principal_scope, scope as scope_e,
};
use scope::{parse_slug, Scope, ScopeSpec};

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

/// A retrieved chunk with its provenance.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RetrievedChunk {
    pub chunk_id: String,
    pub document_id: String,
    pub document_path: String,
    pub title: String,
    pub heading_path: Vec<String>,
    pub text: String,
    pub collection: String,
    pub department: String,
    pub label: String,
    pub score: f32,
}

impl RetrievedChunk {
    fn new(c: &chunk::Model, d: &document::Model, score: f32) -> Self {
        Self {
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
}

/// A chunk cited by a message, as one reader sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CitedChunk {
    #[serde(flatten)]
    pub chunk: RetrievedChunk,
    /// True when the text is withheld because the reader is not cleared for the label.
    pub redacted: bool,
}

/// The result of a retrieval.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Retrieval {
    pub scope: String,
    pub chunks: Vec<RetrievedChunk>,
    /// Chunks the vector store returned that policy refused (should always be 0).
    pub denied: usize,
}

/// The knowledge service.
pub struct Knowledge {
    db: DatabaseConnection,
    settings: KnowledgeSettings,
    data_dir: PathBuf,
    authz: Arc<Authz>,
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

fn internal(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::internal(e)
}

fn json_list(list: &[String]) -> String {
    serde_json::to_string(list).expect("strings serialise")
}

fn parse_list(raw: &str) -> Vec<String> {
    serde_json::from_str(raw).unwrap_or_default()
}

fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// A chunk's policy attributes from its document row.
fn chunk_attrs(chunk_id: &str, d: &document::Model) -> ServiceResult<ChunkAttrs> {
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

fn payload(chunk_id: uuid::Uuid, d: &document::Model, label: &Label) -> ChunkPayload {
    ChunkPayload {
        chunk_id,
        document_id: d.id.clone(),
        collection: d.collection.clone(),
        department: d.department.clone(),
        tags: parse_list(&d.tags),
        level: label.level.rank(),
        compartments: label.compartments.iter().cloned().collect(),
    }
}

impl Knowledge {
    pub fn new(
        db: DatabaseConnection,
        settings: KnowledgeSettings,
        data_dir: PathBuf,
        authz: Arc<Authz>,
    ) -> Self {
        Self {
            db,
            settings,
            data_dir,
            authz,
            engine: OnceCell::new(),
            write: tokio::sync::Mutex::new(()),
            scope_cache: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn forget_scopes(&self) {
        self.scope_cache.lock().expect("scope cache lock").clear();
    }

    /// Use these parts instead of loading the configured ones (benchmarks, tests).
    pub fn with_engine(self, engine: Engine) -> Self {
        let _ = self.engine.set(engine);
        self
    }

    /// The embedder and vector store, loading them on first use.
    pub async fn engine(&self) -> ServiceResult<&Engine> {
        self.engine
            .get_or_try_init(|| async { self.load_engine().await })
            .await
    }

    /// The embedder: the engine's, or (when the vector store cannot be
    /// opened, e.g. a server holds it) the embedder alone.
    pub async fn embedder(&self) -> ServiceResult<Arc<dyn Embedder>> {
        match self.engine().await {
            Ok(e) => Ok(e.embedder.clone()),
            Err(_) => Ok(self.load_embedder().await?.0),
        }
    }

    /// The engine if something has loaded it already.
    pub fn engine_if_loaded(&self) -> Option<&Engine> {
        self.engine.get()
    }

    async fn load_embedder(&self) -> ServiceResult<(Arc<dyn Embedder>, Arc<dyn TokenCounter>)> {
        let unavailable = |what: &str, e: String| {
            ServiceError::new(
                crate::error::ErrorKind::Unavailable,
                "knowledge_unavailable",
                format!("{what}: {e}"),
            )
        };
        let s = &self.settings;
        let pair: (Arc<dyn Embedder>, Arc<dyn TokenCounter>) = match s.embedder.as_str() {
            "openai" => {
                let e = OpenAiEmbedder::new(OpenAiSettings {
                    base_url: s.openai_base_url.clone(),
                    model: s.openai_model.clone(),
                    api_key: s.openai_api_key.clone(),
                    dim: s.openai_dim,
                    batch: 64,
                    timeout: Duration::from_secs(s.openai_timeout_secs),
                })
                .map_err(|e| unavailable("embedder", e.to_string()))?;
                (Arc::new(e), Arc::new(ApproxTokens))
            }
            _ => {
                let models_dir = s.models_dir();
                let fetch = s.fetch_models;
                let model = tokio::task::spawn_blocking(move || {
                    let dir = if fetch {
                        models::ensure(&models_dir, &models::MINILM).map_err(|e| e.to_string())?
                    } else {
                        models::model_dir(&models_dir, &models::MINILM)
                    };
                    MiniLm::load(&dir).map_err(|e| e.to_string())
                })
                .await
                .map_err(internal)?
                .map_err(|e| unavailable("embedding model", e))?;
                let model = Arc::new(model);
                (model.clone(), model)
            }
        };
        Ok(pair)
    }

    async fn load_engine(&self) -> ServiceResult<Engine> {
        let unavailable = |what: &str, e: String| {
            ServiceError::new(
                crate::error::ErrorKind::Unavailable,
                "knowledge_unavailable",
                format!("{what}: {e}"),
            )
        };
        let s = &self.settings;
        let (embedder, counter) = self.load_embedder().await?;
        let dim = embedder.dim();
        let store: Arc<dyn VectorStore> = match s.vector_store.as_str() {
            "qdrant" => Arc::new(
                warroom_knowledge::store::QdrantStore::connect(
                    &s.qdrant_url,
                    &s.qdrant_collection,
                    dim,
                    s.qdrant_api_key.clone(),
                )
                .await
                .map_err(|e| unavailable("vector store", e.to_string()))?,
            ),
            _ => {
                let dir = self.data_dir.join("vectors");
                let store = tokio::task::spawn_blocking(move || {
                    EdgeStore::open(&dir, dim, Default::default())
                })
                .await
                .map_err(internal)?
                .map_err(|e| unavailable("vector store", e.to_string()))?;
                Arc::new(store)
            }
        };
        tracing::info!(
            embedder = embedder.model_id(),
            dim,
            store = store.backend(),
            "knowledge engine ready"
        );
        Ok(Engine {
            embedder,
            counter,
            store,
        })
    }

    // ---- ingestion ---------------------------------------------------------------------

    /// Ingest one file. Parsing errors carry the parser's code (`invalid_utf8`,
    /// `decompression_bomb`, ...) and leave nothing behind.
    pub async fn ingest(
        &self,
        actor: Option<&str>,
        path: &str,
        bytes: &[u8],
        meta: &IngestMeta,
        audit: &Audit,
    ) -> ServiceResult<IngestOutcome> {
        let path = path.trim();
        if path.is_empty() || path.len() > 512 || path.contains('\0') {
            return Err(ServiceError::invalid("path must be 1-512 characters"));
        }
        let limits = Limits {
            max_bytes: self.settings.max_file_bytes,
            ..Limits::default()
        };
        let owned = bytes.to_vec();
        let p = path.to_string();
        let parsed = tokio::task::spawn_blocking(move || parser::parse(&p, &owned, &limits))
            .await
            .map_err(internal)?
            .map_err(|e| {
                ServiceError::new(
                    crate::error::ErrorKind::Unprocessable,
                    e.code(),
                    format!("{path}: {e}"),
                )
            })?;
        let fm = &parsed.front_matter;
        let collection = parse_slug(
            "collection",
            meta.collection.as_deref().unwrap_or("company"),
        )?;
        let department = resolve_department(
            path,
            fm.department.as_deref(),
            meta.department.as_deref(),
            meta.fallback_department.as_deref(),
        )?;
        let label = resolve_label(path, fm.label.as_deref(), meta.label.as_deref())?;
        let raw_tags = if fm.tags.is_empty() {
            &meta.tags
        } else {
            &fm.tags
        };
        let mut tags = raw_tags
            .iter()
            .map(|t| parse_slug("tag", t))
            .collect::<ServiceResult<Vec<_>>>()?;
        tags.sort();
        tags.dedup();
        let label_s = label.to_string();
        let tags_s = json_list(&tags);
        let hash = sha256_hex(&[
            bytes,
            collection.as_bytes(),
            department.as_bytes(),
            label_s.as_bytes(),
            tags_s.as_bytes(),
        ]);

        let engine = self.engine().await?;
        let _write = self.write.lock().await;
        let existing = document::Entity::find()
            .filter(document::Column::Collection.eq(&collection))
            .filter(document::Column::Path.eq(path))
            .one(&self.db)
            .await
            .map_err(internal)?;
        if let Some(d) = &existing {
            if d.content_hash == hash {
                return Ok(IngestOutcome {
                    path: path.into(),
                    status: "unchanged",
                    document_id: d.id.clone(),
                    chunks: d.chunk_count as usize,
                    label: d.label.clone(),
                });
            }
        }

        let opts = ChunkOptions {
            max_tokens: self.settings.chunk_max_tokens,
            overlap_tokens: self.settings.chunk_overlap_tokens,
        };
        let chunks = chunker::chunk(&parsed, &opts, engine.counter.as_ref());
        if chunks.is_empty() {
            return Err(ServiceError::new(
                crate::error::ErrorKind::Unprocessable,
                "empty",
                format!("{path}: the document has no text to index"),
            ));
        }
        let texts: Vec<String> = chunks.iter().map(|c| c.embed_text(&parsed.title)).collect();
        let vectors = engine.embedder.embed(&texts).await.map_err(|e| {
            ServiceError::new(
                crate::error::ErrorKind::Unavailable,
                "embedder_failed",
                e.to_string(),
            )
        })?;

        let now = chrono::Utc::now();
        let doc_id = existing
            .as_ref()
            .map(|d| d.id.clone())
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let doc = document::Model {
            id: doc_id.clone(),
            collection: collection.clone(),
            path: path.to_string(),
            title: parsed.title.clone(),
            format: serde_json::to_value(parsed.format)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            department,
            label: label_s.clone(),
            level: label.level.rank(),
            tags: tags_s,
            doc_date: fm.date.clone(),
            content_hash: hash,
            bytes: bytes.len() as i64,
            chunk_count: chunks.len() as i64,
            body: parsed.body.clone(),
            created_by: actor.map(str::to_string),
            created_at: existing.as_ref().map(|d| d.created_at).unwrap_or(now),
            updated_at: now,
        };
        let ids: Vec<uuid::Uuid> = chunks.iter().map(|_| uuid::Uuid::new_v4()).collect();
        let points: Vec<ChunkPoint> = chunks
            .iter()
            .zip(&vectors)
            .zip(&ids)
            .map(|((c, v), id)| ChunkPoint {
                dense: v.clone(),
                sparse: sparse::document(&c.embed_text(&parsed.title)),
                payload: payload(*id, &doc, &label),
            })
            .collect();
        // 1. New vectors (invisible until their rows exist).
        engine.store.upsert(points).await.map_err(internal)?;
        // 2. Swap the rows in one transaction.
        let old_ids: Vec<String> = match &existing {
            Some(d) => chunk::Entity::find()
                .select_only()
                .column(chunk::Column::Id)
                .filter(chunk::Column::DocumentId.eq(&d.id))
                .into_tuple()
                .all(&self.db)
                .await
                .map_err(internal)?,
            None => Vec::new(),
        };
        let swap = async {
            let txn = crate::storage::begin_write(&self.db).await?;
            chunk::Entity::delete_many()
                .filter(chunk::Column::DocumentId.eq(&doc_id))
                .exec(&txn)
                .await?;
            if existing.is_some() {
                document::ActiveModel::from(doc.clone())
                    .reset_all()
                    .update(&txn)
                    .await?;
            } else {
                document::ActiveModel::from(doc.clone())
                    .reset_all()
                    .insert(&txn)
                    .await?;
            }
            let rows: Vec<chunk::ActiveModel> = chunks
                .iter()
                .zip(&ids)
                .map(|(c, id)| chunk::ActiveModel {
                    id: Set(id.to_string()),
                    document_id: Set(doc_id.clone()),
                    ord: Set(c.ord as i64),
                    heading_path: Set(json_list(&c.heading_path)),
                    text: Set(c.text.clone()),
                    tokens: Set(c.tokens as i64),
                })
                .collect();
            for batch in rows.chunks(200) {
                chunk::Entity::insert_many(batch.to_vec())
                    .exec(&txn)
                    .await?;
            }
            // A new version at another label: what quotes the old version is
            // raised with it (never lowered), in the same transaction.
            let raised = match &existing {
                Some(d) if d.label != label_s => {
                    raise_citing_messages(&txn, &doc_id, &label).await?
                }
                _ => 0,
            };
            txn.commit().await.map(|_| raised)
        };
        let raised = match swap.await {
            Ok(raised) => raised,
            Err(e) => {
                if let Err(cleanup) = engine.store.delete(&ids).await {
                    tracing::warn!(error = %cleanup, "could not remove vectors of a failed ingestion; they stay invisible");
                }
                return Err(internal(e));
            }
        };
        // 3. Old vectors go; until they do, retrieval ignores them (no rows).
        let old: Vec<uuid::Uuid> = old_ids.iter().filter_map(|s| s.parse().ok()).collect();
        if !old.is_empty() {
            if let Err(e) = engine.store.delete(&old).await {
                tracing::warn!(error = %e, document = %doc_id, "old vectors not deleted; they stay invisible");
            }
        }
        let status = if existing.is_some() {
            "updated"
        } else {
            "created"
        };
        audit
            .record(
                actor,
                "document.ingest",
                &doc_id,
                status,
                serde_json::json!({"path": path, "collection": collection, "label": label_s, "chunks": chunks.len(), "messages_raised": raised}),
            )
            .await;
        Ok(IngestOutcome {
            path: path.into(),
            status,
            document_id: doc_id,
            chunks: chunks.len(),
            label: label_s,
        })
    }

    // ---- documents -----------------------------------------------------------------------

    pub async fn document(&self, id: &str) -> ServiceResult<document::Model> {
        document::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .map_err(internal)?
            .ok_or_else(|| ServiceError::not_found("document"))
    }

    pub async fn documents(
        &self,
        collection: Option<&str>,
        department: Option<&str>,
    ) -> ServiceResult<Vec<document::Model>> {
        let mut q = document::Entity::find()
            .select_only()
            .columns([
                document::Column::Id,
                document::Column::Collection,
                document::Column::Path,
                document::Column::Title,
                document::Column::Format,
                document::Column::Department,
                document::Column::Label,
                document::Column::Level,
                document::Column::Tags,
                document::Column::DocDate,
                document::Column::ContentHash,
                document::Column::Bytes,
                document::Column::ChunkCount,
                document::Column::CreatedBy,
                document::Column::CreatedAt,
                document::Column::UpdatedAt,
            ])
            // The body is not listed.
            .expr_as(sea_orm::sea_query::Expr::val(""), "body")
            .order_by_asc(document::Column::Collection)
            .order_by_asc(document::Column::Path);
        if let Some(c) = collection {
            q = q.filter(document::Column::Collection.eq(c));
        }
        if let Some(d) = department {
            q = q.filter(document::Column::Department.eq(d));
        }
        q.into_model::<document::Model>()
            .all(&self.db)
            .await
            .map_err(internal)
    }

    pub async fn chunks_of(&self, document_id: &str) -> ServiceResult<Vec<chunk::Model>> {
        chunk::Entity::find()
            .filter(chunk::Column::DocumentId.eq(document_id))
            .order_by_asc(chunk::Column::Ord)
            .all(&self.db)
            .await
            .map_err(internal)
    }

    /// Delete a document, its chunks and their vectors.
    pub async fn delete(&self, actor: &str, id: &str, audit: &Audit) -> ServiceResult<()> {
        let doc = self.document(id).await?;
        let engine = self.engine().await?;
        let _write = self.write.lock().await;
        let ids: Vec<String> = chunk::Entity::find()
            .select_only()
            .column(chunk::Column::Id)
            .filter(chunk::Column::DocumentId.eq(id))
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(internal)?;
        let txn = crate::storage::begin_write(&self.db)
            .await
            .map_err(internal)?;
        chunk::Entity::delete_many()
            .filter(chunk::Column::DocumentId.eq(id))
            .exec(&txn)
            .await
            .map_err(internal)?;
        document::Entity::delete_by_id(id)
            .exec(&txn)
            .await
            .map_err(internal)?;
        txn.commit().await.map_err(internal)?;
        let ids: Vec<uuid::Uuid> = ids.iter().filter_map(|s| s.parse().ok()).collect();
        if let Err(e) = engine.store.delete(&ids).await {
            tracing::warn!(error = %e, document = id, "vectors of a deleted document not removed; they stay invisible");
        }
        audit
            .record(
                Some(actor),
                "document.delete",
                id,
                "ok",
                serde_json::json!({"path": doc.path, "collection": doc.collection}),
            )
            .await;
        Ok(())
    }

    /// Give a document a new label. Its chunks follow at once (retrieval reads the label
    /// from the database and re-checks it), the vector store's copy is updated, and
    /// messages that cite the document are raised to at least the new label.
    pub async fn reclassify(
        &self,
        actor: &str,
        id: &str,
        label: &Label,
        audit: &Audit,
    ) -> ServiceResult<document::Model> {
        let engine = self.engine().await?;
        let _write = self.write.lock().await;
        let doc = self.document(id).await?;
        let old = doc.label.clone();
        let txn = crate::storage::begin_write(&self.db)
            .await
            .map_err(internal)?;
        let mut am: document::ActiveModel = doc.clone().into();
        am.label = Set(label.to_string());
        am.level = Set(label.level.rank());
        am.updated_at = Set(chrono::Utc::now());
        let updated = am.update(&txn).await.map_err(internal)?;
        let raised = raise_citing_messages(&txn, id, label)
            .await
            .map_err(internal)?;
        txn.commit().await.map_err(internal)?;
        let compartments: Vec<String> = label.compartments.iter().cloned().collect();
        if let Err(e) = engine
            .store
            .set_label(id, label.level.rank(), &compartments)
            .await
        {
            tracing::error!(error = %e, document = id, "vector store label not updated; the policy re-check still applies the new label");
        }
        audit
            .record(
                Some(actor),
                "document.reclassify",
                id,
                "ok",
                serde_json::json!({"from": old, "to": label.to_string(), "messages_raised": raised}),
            )
            .await;
        Ok(updated)
    }

    // ---- scopes ----------------------------------------------------------------------------

    pub async fn scopes(&self) -> ServiceResult<Vec<Scope>> {
        scope_e::Entity::find()
            .order_by_asc(scope_e::Column::Name)
            .all(&self.db)
            .await
            .map_err(internal)?
            .iter()
            .map(Scope::from_model)
            .collect()
    }

    /// A scope by id or by name.
    pub async fn scope(&self, id_or_name: &str) -> ServiceResult<Scope> {
        let m = scope_e::Entity::find()
            .filter(
                sea_orm::Condition::any()
                    .add(scope_e::Column::Id.eq(id_or_name))
                    .add(scope_e::Column::Name.eq(id_or_name.to_ascii_lowercase())),
            )
            .one(&self.db)
            .await
            .map_err(internal)?
            .ok_or_else(|| ServiceError::not_found("scope"))?;
        Scope::from_model(&m)
    }

    /// Create (`id` None) or replace a scope.
    pub async fn put_scope(
        &self,
        actor: &str,
        id: Option<&str>,
        spec: ScopeSpec,
        audit: &Audit,
    ) -> ServiceResult<Scope> {
        self.forget_scopes();
        let (spec, rule) = spec.validate()?;
        let now = chrono::Utc::now();
        let [collections, departments, tags, exc_c, exc_d, exc_t] = Scope::columns(&spec);
        let (id, created_at) = match id {
            Some(id) => {
                let cur = self.scope(id).await?;
                let m = scope_e::Entity::find_by_id(&cur.id)
                    .one(&self.db)
                    .await
                    .map_err(internal)?
                    .ok_or_else(|| ServiceError::not_found("scope"))?;
                (cur.id, m.created_at)
            }
            None => (uuid::Uuid::now_v7().to_string(), now),
        };
        let model = scope_e::ActiveModel {
            id: Set(id.clone()),
            name: Set(spec.name.clone()),
            description: Set(spec.description.clone()),
            collections: Set(collections),
            departments: Set(departments),
            tags: Set(tags),
            exclude_collections: Set(exc_c.unwrap_or_default()),
            exclude_departments: Set(exc_d.unwrap_or_default()),
            exclude_tags: Set(exc_t.unwrap_or_default()),
            max_label: Set(spec.max_label.clone()),
            created_at: Set(created_at),
            updated_at: Set(now),
        };
        let res = if created_at == now {
            model.insert(&self.db).await
        } else {
            model.update(&self.db).await
        };
        if let Err(e) = res {
            let msg = e.to_string();
            if msg.contains("UNIQUE") || msg.contains("unique") || msg.contains("duplicate") {
                return Err(ServiceError::conflict(format!(
                    "a scope named {:?} already exists",
                    spec.name
                )));
            }
            return Err(internal(e));
        }
        audit
            .record(
                Some(actor),
                "scope.put",
                &id,
                "ok",
                serde_json::to_value(&spec).unwrap_or_default(),
            )
            .await;
        Ok(Scope { id, spec, rule })
    }

    /// Delete a scope that no principal uses.
    pub async fn delete_scope(&self, actor: &str, id: &str, audit: &Audit) -> ServiceResult<()> {
        self.forget_scopes();
        let s = self.scope(id).await?;
        let users = principal_scope::Entity::find()
            .filter(principal_scope::Column::ScopeId.eq(&s.id))
            .count(&self.db)
            .await
            .map_err(internal)?;
        if users > 0 {
            return Err(ServiceError::conflict(format!(
                "scope {:?} is assigned to {users} principal(s); assign them another scope first",
                s.spec.name
            )));
        }
        scope_e::Entity::delete_by_id(&s.id)
            .exec(&self.db)
            .await
            .map_err(internal)?;
        audit
            .record(
                Some(actor),
                "scope.delete",
                &s.id,
                "ok",
                serde_json::json!({"name": s.spec.name}),
            )
            .await;
        Ok(())
    }

    /// Assign (or with `None`, remove) the scope a principal retrieves through.
    pub async fn assign_scope(
        &self,
        actor: &str,
        user_id: &str,
        scope: Option<&str>,
        audit: &Audit,
    ) -> ServiceResult<Option<Scope>> {
        self.forget_scopes();
        let txn = crate::storage::begin_write(&self.db)
            .await
            .map_err(internal)?;
        principal_scope::Entity::delete_by_id(user_id)
            .exec(&txn)
            .await
            .map_err(internal)?;
        let assigned = match scope {
            Some(s) => {
                let s = self.scope(s).await?;
                principal_scope::ActiveModel {
                    user_id: Set(user_id.to_string()),
                    scope_id: Set(s.id.clone()),
                    assigned_at: Set(chrono::Utc::now()),
                }
                .insert(&txn)
                .await
                .map_err(internal)?;
                Some(s)
            }
            None => None,
        };
        txn.commit().await.map_err(internal)?;
        audit
            .record(
                Some(actor),
                "scope.assign",
                user_id,
                "ok",
                serde_json::json!({"scope": assigned.as_ref().map(|s| s.spec.name.clone())}),
            )
            .await;
        Ok(assigned)
    }

    /// Assign one scope to many new principals, inside the caller's transaction
    /// (spawning agents).
    pub async fn assign_scopes_in(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        user_ids: &[String],
        scope_id: &str,
    ) -> ServiceResult<()> {
        self.forget_scopes();
        let now = chrono::Utc::now();
        for chunk in user_ids.chunks(300) {
            principal_scope::Entity::insert_many(chunk.iter().map(|u| {
                principal_scope::ActiveModel {
                    user_id: Set(u.clone()),
                    scope_id: Set(scope_id.to_string()),
                    assigned_at: Set(now),
                }
            }))
            .exec(txn)
            .await
            .map_err(internal)?;
        }
        Ok(())
    }

    /// The names of the scopes assigned to these principals.
    pub async fn scope_names_of(
        &self,
        user_ids: &[String],
    ) -> ServiceResult<HashMap<String, String>> {
        let mut out = HashMap::new();
        let names: HashMap<String, String> = self
            .scopes()
            .await?
            .into_iter()
            .map(|s| (s.id, s.spec.name))
            .collect();
        for chunk in user_ids.chunks(500) {
            for a in principal_scope::Entity::find()
                .filter(principal_scope::Column::UserId.is_in(chunk.iter().cloned()))
                .all(&self.db)
                .await
                .map_err(internal)?
            {
                if let Some(n) = names.get(&a.scope_id) {
                    out.insert(a.user_id, n.clone());
                }
            }
        }
        Ok(out)
    }

    /// The scope a principal retrieves through, if any.
    pub async fn scope_of(&self, user_id: &str) -> ServiceResult<Option<Scope>> {
        if let Some((at, s)) = self
            .scope_cache
            .lock()
            .expect("scope cache lock")
            .get(user_id)
        {
            if at.elapsed() < SCOPE_TTL {
                return Ok(s.clone());
            }
        }
        let s = self.scope_of_uncached(user_id).await?;
        let mut cache = self.scope_cache.lock().expect("scope cache lock");
        if cache.len() > 100_000 {
            cache.clear();
        }
        cache.insert(user_id.to_string(), (std::time::Instant::now(), s.clone()));
        Ok(s)
    }

    async fn scope_of_uncached(&self, user_id: &str) -> ServiceResult<Option<Scope>> {
        let Some(a) = principal_scope::Entity::find_by_id(user_id)
            .one(&self.db)
            .await
            .map_err(internal)?
        else {
            return Ok(None);
        };
        Ok(Some(self.scope(&a.scope_id).await?))
    }

    // ---- retrieval -------------------------------------------------------------------------

    /// Retrieve the `k` best chunks for `query` within the principal's own scope.
    pub async fn retrieve(
        &self,
        p: &Principal,
        query: &str,
        k: usize,
        ceiling: Option<&Label>,
        audit: &Audit,
    ) -> ServiceResult<Retrieval> {
        let scope = self.scope_of(&p.id).await?.ok_or_else(|| {
            ServiceError::forbidden(
                "no retrieval scope is assigned to you; an admin assigns one with PUT /api/v1/users/{id}/scope",
            )
        })?;
        match ceiling {
            // Only material the caller means to use where `ceiling` allows,
            // e.g. an agent retrieving for a channel of that label.
            Some(c) => {
                let bounded = Principal {
                    clearance: p.clearance.meet(c),
                    ..p.clone()
                };
                self.retrieve_in(&bounded, &scope, query, k, audit).await
            }
            None => self.retrieve_in(p, &scope, query, k, audit).await,
        }
    }

    /// Retrieve under an explicit scope (the caller has checked that `p` may use it).
    pub async fn retrieve_in(
        &self,
        p: &Principal,
        scope: &Scope,
        query: &str,
        k: usize,
        audit: &Audit,
    ) -> ServiceResult<Retrieval> {
        let query = query.trim();
        if query.is_empty() || query.chars().count() > 2000 {
            return Err(ServiceError::invalid("query must be 1-2000 characters"));
        }
        if k == 0 || k > self.settings.max_k {
            return Err(ServiceError::invalid(format!(
                "k must be between 1 and {}",
                self.settings.max_k
            )));
        }
        let engine = self.engine().await?;
        let filter = scope::compile(&scope.rule, &p.clearance);
        let dense = engine
            .embedder
            .embed(&[query.to_string()])
            .await
            .map_err(|e| {
                ServiceError::new(
                    crate::error::ErrorKind::Unavailable,
                    "embedder_failed",
                    e.to_string(),
                )
            })?
            .pop()
            .unwrap_or_default();
        let hits = engine
            .store
            .hybrid(&dense, &sparse::query(query), &filter, k + k / 2 + 2)
            .await
            .map_err(internal)?;
        let (chunks, denied) = self.recheck(p, &scope.rule, &hits, k).await?;
        let query_hash = sha256_hex(&[query.as_bytes()]);
        audit
            .record_required(
                Some(&p.id),
                "knowledge.retrieve",
                &scope.spec.name,
                if denied.is_empty() {
                    "ok"
                } else {
                    "denied_some"
                },
                serde_json::json!({
                    "scope_id": scope.id,
                    "query_sha256": query_hash,
                    "filter": filter,
                    "k": k,
                    "returned": chunks.iter().map(|c| c.chunk_id.clone()).collect::<Vec<_>>(),
                    "denied": denied,
                }),
            )
            .await?; // fail closed: no results without their audit record
        Ok(Retrieval {
            scope: scope.spec.name.clone(),
            chunks,
            denied: denied.len(),
        })
    }

    /// Load the hits' rows and keep those Cedar permits, best first, at most `k`.
    async fn recheck(
        &self,
        p: &Principal,
        rule: &ScopeRule,
        hits: &[warroom_knowledge::store::Hit],
        k: usize,
    ) -> ServiceResult<(Vec<RetrievedChunk>, Vec<String>)> {
        let ids: Vec<String> = hits.iter().map(|h| h.chunk_id.to_string()).collect();
        let (rows, docs) = self.chunks_with_documents(&ids).await?;
        let mut out = Vec::new();
        let mut denied = Vec::new();
        for hit in hits {
            let id = hit.chunk_id.to_string();
            // Vectors without rows are leftovers of a replaced or deleted document.
            let Some(c) = rows.get(&id) else { continue };
            let Some(d) = docs.get(&c.document_id) else {
                continue;
            };
            let attrs = chunk_attrs(&id, d)?;
            if !self.authz.retrieve_chunk(p, rule, &attrs) {
                tracing::error!(
                    principal = %p.id,
                    chunk = %id,
                    document = %d.id,
                    label = %d.label,
                    "POLICY MISMATCH: the vector store returned a chunk the policy denies; dropped"
                );
                denied.push(id);
                continue;
            }
            if out.len() < k {
                out.push(RetrievedChunk::new(c, d, hit.score));
            }
        }
        Ok((out, denied))
    }

    /// Chunk rows by id, and their documents' metadata by id.
    async fn chunks_with_documents(
        &self,
        ids: &[String],
    ) -> ServiceResult<(
        HashMap<String, chunk::Model>,
        HashMap<String, document::Model>,
    )> {
        let rows: HashMap<String, chunk::Model> = chunk::Entity::find()
            .filter(chunk::Column::Id.is_in(ids.to_vec()))
            .all(&self.db)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect();
        let doc_ids: Vec<String> = rows.values().map(|c| c.document_id.clone()).collect();
        let docs = self
            .docs_meta(&doc_ids)
            .await?
            .into_iter()
            .map(|d| (d.id.clone(), d))
            .collect();
        Ok((rows, docs))
    }

    /// Documents' metadata without bodies.
    async fn docs_meta(&self, ids: &[String]) -> ServiceResult<Vec<document::Model>> {
        let mut out = Vec::new();
        for batch in ids.chunks(500) {
            let rows = document::Entity::find()
                .filter(document::Column::Id.is_in(batch.to_vec()))
                .all(&self.db)
                .await
                .map_err(internal)?;
            out.extend(rows.into_iter().map(|mut d| {
                d.body.clear();
                d
            }));
        }
        Ok(out)
    }

    /// What a scope can see: chunk counts per collection, department and label, and
    /// sample chunks (only those the viewer is cleared for).
    pub async fn preview(
        &self,
        viewer: &Principal,
        rule: &ScopeRule,
        samples: usize,
    ) -> ServiceResult<ScopePreview> {
        let filter: ChunkFilter = scope::compile(rule, &rule.max_label);
        let docs = self.documents(None, None).await?;
        let mut preview = ScopePreview::default();
        let mut visible_docs = Vec::new();
        for d in &docs {
            let label: Label = match d.label.parse() {
                Ok(l) => l,
                Err(_) => continue,
            };
            let probe = payload(uuid::Uuid::nil(), d, &label);
            if !filter.matches(&probe) {
                continue;
            }
            let n = d.chunk_count as usize;
            preview.documents += 1;
            preview.chunks += n;
            *preview
                .by_collection
                .entry(d.collection.clone())
                .or_default() += n;
            *preview
                .by_department
                .entry(d.department.clone())
                .or_default() += n;
            *preview.by_label.entry(d.label.clone()).or_default() += n;
            if label.within(&viewer.clearance) {
                visible_docs.push(d);
            }
        }
        // Samples: the first chunk of documents spread across the visible set.
        let step = (visible_docs.len() / samples.max(1)).max(1);
        for d in visible_docs.iter().step_by(step).take(samples) {
            if let Some(c) = chunk::Entity::find()
                .filter(chunk::Column::DocumentId.eq(&d.id))
                .order_by_asc(chunk::Column::Ord)
                .one(&self.db)
                .await
                .map_err(internal)?
            {
                preview.samples.push(RetrievedChunk::new(&c, d, 0.0));
            }
        }
        Ok(preview)
    }

    /// Re-embed every chunk from the database and write it to the vector store (after
    /// switching embedder or store, or to repair a store that lost writes). Idempotent:
    /// points are keyed by chunk id. Calls `progress` with (documents done, total).
    pub async fn reindex(&self, progress: impl Fn(usize, usize)) -> ServiceResult<usize> {
        let engine = self.engine().await?;
        let _write = self.write.lock().await;
        let docs = self.documents(None, None).await?;
        let mut total = 0;
        for (i, d) in docs.iter().enumerate() {
            let label: Label = d
                .label
                .parse()
                .map_err(|e| internal(format!("document {} has a bad label: {e}", d.id)))?;
            let rows = self.chunks_of(&d.id).await?;
            let texts: Vec<String> = rows
                .iter()
                .map(|c| {
                    chunker::Chunk {
                        ord: c.ord as usize,
                        heading_path: parse_list(&c.heading_path),
                        text: c.text.clone(),
                        start: 0,
                        end: 0,
                        tokens: c.tokens as usize,
                    }
                    .embed_text(&d.title)
                })
                .collect();
            let vectors = engine.embedder.embed(&texts).await.map_err(|e| {
                ServiceError::new(
                    crate::error::ErrorKind::Unavailable,
                    "embedder_failed",
                    e.to_string(),
                )
            })?;
            let points = rows
                .iter()
                .zip(texts.iter().zip(vectors))
                .filter_map(|(c, (text, dense))| {
                    Some(ChunkPoint {
                        dense,
                        sparse: sparse::document(text),
                        payload: payload(c.id.parse().ok()?, d, &label),
                    })
                })
                .collect::<Vec<_>>();
            total += points.len();
            engine.store.upsert(points).await.map_err(internal)?;
            progress(i + 1, docs.len());
        }
        Ok(total)
    }

    /// Check the chunks a message cites: each must exist, and the poster must be allowed to
    /// retrieve it (cleared for its label and, when the poster has a scope, inside it).
    /// Returns (chunk id, document id) pairs and the join of the cited labels, which the
    /// message's label must reach.
    pub async fn check_citations(
        &self,
        p: &Principal,
        ids: &[String],
        audit: &Audit,
    ) -> ServiceResult<(Vec<(String, String)>, Option<Label>)> {
        if ids.is_empty() {
            return Ok((Vec::new(), None));
        }
        if ids.len() > 20 {
            return Err(ServiceError::invalid("at most 20 citations per message"));
        }
        let mut unique: Vec<String> = Vec::new();
        for id in ids {
            if uuid::Uuid::parse_str(id).is_err() {
                return Err(ServiceError::invalid(format!(
                    "citation {id:?} is not a chunk id"
                )));
            }
            if !unique.contains(id) {
                unique.push(id.clone());
            }
        }
        let (rows, docs) = self.chunks_with_documents(&unique).await?;
        let scope = self.scope_of(&p.id).await?;
        // Without a scope, clearance alone decides: a rule that admits everything.
        let rule = scope.map(|s| s.rule).unwrap_or_else(|| ScopeRule {
            collections: None,
            departments: None,
            tags: None,
            exclude_collections: Vec::new(),
            exclude_departments: Vec::new(),
            exclude_tags: Vec::new(),
            max_label: p.clearance.clone(),
        });
        let mut out = Vec::new();
        let mut join: Option<Label> = None;
        for id in &unique {
            let Some(c) = rows.get(id) else {
                return Err(ServiceError::new(
                    crate::error::ErrorKind::Unprocessable,
                    "unknown_citation",
                    format!("cited chunk {id} does not exist (it may have been replaced by a newer version of its document)"),
                ));
            };
            let d = docs
                .get(&c.document_id)
                .ok_or_else(|| internal("chunk without document"))?;
            let attrs = chunk_attrs(id, d)?;
            if !self.authz.retrieve_chunk(p, &rule, &attrs) {
                audit
                    .record(
                        Some(&p.id),
                        "message.cite",
                        id,
                        "denied",
                        serde_json::json!({"document": d.id, "label": d.label}),
                    )
                    .await;
                return Err(ServiceError::forbidden(format!(
                    "you may not cite chunk {id}: it is outside your scope or clearance"
                )));
            }
            join = Some(match join {
                Some(j) => j.join(&attrs.label),
                None => attrs.label.clone(),
            });
            out.push((id.clone(), d.id.clone()));
        }
        Ok((out, join))
    }

    /// The chunks a message cites, as its reader sees them: each with its document and
    /// label, the text only when the reader is cleared for the chunk's current label (the
    /// reader may already read the message, whose label reaches the cited labels, but a
    /// reclassification can raise a chunk after the fact). Chunks that no longer exist are
    /// left out.
    pub async fn cited_chunks(
        &self,
        reader: &Principal,
        chunk_ids: &[String],
    ) -> ServiceResult<Vec<CitedChunk>> {
        let (rows, docs) = self.chunks_with_documents(chunk_ids).await?;
        let mut out = Vec::new();
        for id in chunk_ids {
            let Some(c) = rows.get(id) else { continue };
            let Some(d) = docs.get(&c.document_id) else {
                continue;
            };
            let cleared = d
                .label
                .parse::<Label>()
                .is_ok_and(|l| l.within(&reader.clearance));
            let mut chunk = RetrievedChunk::new(c, d, 0.0);
            if !cleared {
                chunk.text = String::new();
            }
            out.push(CitedChunk {
                chunk,
                redacted: !cleared,
            });
        }
        Ok(out)
    }

    /// The chunk ids each of `message_ids` cites.
    pub async fn citations_of(
        &self,
        message_ids: &[String],
    ) -> ServiceResult<HashMap<String, Vec<String>>> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for batch in message_ids.chunks(500) {
            for c in message_citation::Entity::find()
                .filter(message_citation::Column::MessageId.is_in(batch.to_vec()))
                .all(&self.db)
                .await
                .map_err(internal)?
            {
                out.entry(c.message_id).or_default().push(c.chunk_id);
            }
        }
        Ok(out)
    }

    /// Number of stored documents (for readiness and the dashboard).
    pub async fn document_count(&self) -> ServiceResult<u64> {
        document::Entity::find()
            .count(&self.db)
            .await
            .map_err(internal)
    }
}

/// What a scope can see.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ScopePreview {
    pub documents: usize,
    pub chunks: usize,
    pub by_collection: BTreeMap<String, usize>,
    pub by_department: BTreeMap<String, usize>,
    pub by_label: BTreeMap<String, usize>,
    /// Sample chunks, only from documents the viewer is cleared for.
    pub samples: Vec<RetrievedChunk>,
}

/// Raise every message citing `document_id` to at least `label`, inside the
/// caller's transaction; returns how many were raised. Every path that
/// changes a document's label calls this, so old quotes never stay readable
/// at the old label (SECURITY-CASES 25).
async fn raise_citing_messages<C: sea_orm::ConnectionTrait>(
    txn: &C,
    document_id: &str,
    label: &Label,
) -> Result<usize, sea_orm::DbErr> {
    let citing: Vec<String> = message_citation::Entity::find()
        .select_only()
        .column(message_citation::Column::MessageId)
        .filter(message_citation::Column::DocumentId.eq(document_id))
        .distinct()
        .into_tuple()
        .all(txn)
        .await?;
    let mut raised = 0usize;
    for ids in citing.chunks(200) {
        let msgs = message::Entity::find()
            .filter(message::Column::Id.is_in(ids.to_vec()))
            .all(txn)
            .await?;
        for m in msgs {
            // An unreadable stored label is treated as the new one, never as lower.
            let current: Label = m.label.parse().unwrap_or_else(|_| label.clone());
            let joined = current.join(label);
            if joined != current {
                let mut am: message::ActiveModel = m.into();
                am.label = Set(joined.to_string());
                am.update(txn).await?;
                raised += 1;
            }
        }
    }
    Ok(raised)
}

/// The department of an upload: the uploader's and the front matter's must
/// agree; either decides alone; the fallback applies when neither names one.
fn resolve_department(
    path: &str,
    front_matter: Option<&str>,
    given: Option<&str>,
    fallback: Option<&str>,
) -> ServiceResult<String> {
    let front_matter = front_matter
        .map(|d| parse_slug("department", d))
        .transpose()?;
    let given = given.map(|d| parse_slug("department", d)).transpose()?;
    match (front_matter, given) {
        (Some(f), Some(g)) if f != g => Err(ServiceError::new(
            crate::error::ErrorKind::Conflict,
            "department_conflict",
            format!(
                "{path}: the upload says department {g:?} but the file's front matter says {f:?}: fix one of them"
            ),
        )),
        (Some(d), _) | (None, Some(d)) => Ok(d),
        (None, None) => fallback
            .ok_or_else(|| {
                ServiceError::invalid(format!(
                    "{path}: no department: add `department:` to the front matter or pass one with the upload (--department)"
                ))
            })
            .and_then(|d| parse_slug("department", d)),
    }
}

/// The label of an upload: the join of the uploader's label (a floor) and the
/// front matter's, so metadata inside a file can raise its label but never
/// lower it (SECURITY-CASES 25). `internal` when neither gives one.
fn resolve_label(
    path: &str,
    front_matter: Option<&str>,
    given: Option<&str>,
) -> ServiceResult<Label> {
    let parse = |raw: &str, whose: &str| {
        raw.parse::<Label>()
            .map_err(|e| ServiceError::invalid(format!("{path}: {whose} label: {e}")))
    };
    let front_matter = front_matter.map(|l| parse(l, "front matter")).transpose()?;
    let given = given.map(|l| parse(l, "upload")).transpose()?;
    Ok(match (front_matter, given) {
        (Some(f), Some(g)) => f.join(&g),
        (Some(l), None) | (None, Some(l)) => l,
        (None, None) => Label::level(crate::label::Level::Internal),
    })
}
