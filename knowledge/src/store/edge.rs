//! The in-process vector store: one qdrant-edge shard in a directory.
//!
//! The shard is synchronous, so every call runs on tokio's blocking pool with a shared
//! `Arc<EdgeShard>`. Points are keyed by chunk id and carry [`ChunkPayload`] as their
//! payload; keyword and integer payload indexes on the filtered fields let the engine plan
//! filtered searches (and build filter-aware HNSW links) instead of scanning. The shard
//! flushes its segments when the last handle is dropped.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::{
    AnyVariants, Condition, CountRequest, CreateIndex, Distance, EdgeConfig, EdgeOptimizersConfig,
    EdgeShard, EdgeSparseVectorParams, EdgeVectorParams, FieldCondition, FieldIndexOperations,
    Filter, HnswIndexConfig, JsonPath, Match, MatchAny, MatchExcept, Modifier, NamedQuery,
    OperationError, Payload, PayloadFieldSchema, PayloadOps, PayloadSchemaType, PointId,
    PointInsertOperations, PointOperations, PointStruct, QueryEnum, QueryRequest, Range,
    ScoredPoint, ScoringQuery, SearchParams, SetPayloadOp, UpdateOperation, Vector, VectorInternal,
    Vectors, WithPayloadInterface, WithVector,
};
use uuid::Uuid;

use super::filter::{FilterPlan, COLLECTION, COMPARTMENTS, DEPARTMENT, DOCUMENT_ID, LEVEL, TAGS};
use super::{ChunkFilter, ChunkPoint, Hit, StoreError, StoreResult, VectorStore, DENSE, SPARSE};
use crate::sparse::SparseVector;

/// Points per update operation: keeps each WAL record and segment lock short.
const UPSERT_BATCH: usize = 256;

/// Tuning of the in-process store. The defaults are Qdrant's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeOptions {
    /// HNSW graph degree.
    pub hnsw_m: usize,
    /// HNSW beam width while building the graph.
    pub ef_construct: usize,
    /// HNSW beam width while searching.
    pub ef_search: usize,
    /// A segment with more vector data than this (KiB) gets an HNSW index on `optimize`.
    pub indexing_threshold_kb: usize,
    /// A filtered search expected to touch less vector data than this (KiB) scans the
    /// matching points exactly instead of walking the graph.
    pub full_scan_threshold_kb: usize,
    /// Flush the write-ahead log and segments to disk after every write. qdrant-edge 0.7
    /// does not replay its WAL on load, so without this, writes since the last flush are
    /// lost on a crash. Bulk loaders (benchmarks) turn it off and flush once at the end.
    pub flush_each_write: bool,
}

impl Default for EdgeOptions {
    fn default() -> Self {
        Self {
            hnsw_m: 16,
            ef_construct: 100,
            ef_search: 128,
            indexing_threshold_kb: 10_000,
            full_scan_threshold_kb: 10_000,
            flush_each_write: true,
        }
    }
}

/// How big the shard is, for logs, metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeInfo {
    /// Points stored (approximate until optimized: counts superseded versions).
    pub points: usize,
    pub segments: usize,
    /// Vectors in an index (sparse vectors always; dense vectors once HNSW is built).
    pub indexed_vectors: usize,
}

/// A [`VectorStore`] backed by a qdrant-edge shard in a local directory.
pub struct EdgeStore {
    shard: Arc<EdgeShard>,
    ef_search: usize,
    flush_each_write: bool,
    /// Writes (and the flushes after them) one at a time: the shard's flush expects to
    /// take its WAL lock without waiting.
    writes: Arc<std::sync::Mutex<()>>,
    /// Held for the store's lifetime (an exclusive lock on `<dir>/.lock`).
    _lock: std::fs::File,
}

impl Drop for EdgeStore {
    fn drop(&mut self) {
        // The shard flushes itself on drop and panics if its directory is gone (a deleted
        // temporary directory, say). With nothing left to flush to, let it go unflushed.
        if Arc::strong_count(&self.shard) == 1 && !self.shard.path().join("segments").exists() {
            // One extra reference that is never released keeps the shard's drop from running.
            std::mem::forget(Arc::clone(&self.shard));
            tracing::warn!("vector store directory removed before shutdown; nothing flushed");
        }
    }
}

impl std::fmt::Debug for EdgeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeStore")
            .field("path", &self.shard.path())
            .field("ef_search", &self.ef_search)
            .finish()
    }
}

impl EdgeStore {
    /// Opens the shard in `dir`, creating it (and the directory) if there is none.
    ///
    /// Fails with [`StoreError::Invalid`] if the stored dense vectors are not `dim` long:
    /// vectors from another embedding model cannot be compared with the new ones.
    /// Blocking: call it at startup or from `spawn_blocking`.
    pub fn open(dir: &Path, dim: usize, opts: EdgeOptions) -> StoreResult<EdgeStore> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
        // One process at a time: two shards on one directory would corrupt each other.
        let lock = std::fs::File::create(dir.join(".lock")).map_err(|e| {
            StoreError::Unavailable(format!("cannot create the lock in {}: {e}", dir.display()))
        })?;
        if lock.try_lock().is_err() {
            return Err(StoreError::Unavailable(format!(
                "the vector store in {} is in use by another process (a running server?); stop it, or upload through the API instead",
                dir.display()
            )));
        }
        let config = edge_config(dim, &opts);
        let shard = match EdgeConfig::load(dir) {
            None => EdgeShard::new(dir, config),
            Some(stored) => {
                let stored = stored.map_err(|e| {
                    StoreError::Unavailable(format!(
                        "cannot read the vector store configuration in {}: {e}",
                        dir.display()
                    ))
                })?;
                check_dimension(dir, &stored, dim)?;
                // Passing our config persists changed HNSW and optimizer settings; a changed
                // graph configuration is rebuilt by the next `optimize`.
                EdgeShard::load(dir, Some(config))
            }
        }
        .map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot open the vector store in {}: {e}",
                dir.display()
            ))
        })?;
        create_payload_indexes(&shard).map_err(store_error)?;
        Ok(EdgeStore {
            shard: Arc::new(shard),
            ef_search: opts.ef_search,
            flush_each_write: opts.flush_each_write,
            writes: Arc::new(std::sync::Mutex::new(())),
            _lock: lock,
        })
    }

    /// Segment and index counts. Cheap: reads segment metadata only.
    pub fn info(&self) -> EdgeInfo {
        let info = self.shard.info();
        EdgeInfo {
            points: info.points_count,
            segments: info.segments_count,
            indexed_vectors: info.indexed_vectors_count,
        }
    }

    /// Runs `f` with the shard on the blocking pool.
    async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&EdgeShard) -> Result<T, OperationError> + Send + 'static,
    {
        let shard = Arc::clone(&self.shard);
        tokio::task::spawn_blocking(move || f(&shard))
            .await
            .map_err(|e| StoreError::Internal(format!("vector store task failed: {e}")))?
            .map_err(store_error)
    }

    /// Runs a write with the shard on the blocking pool, then flushes it to disk when
    /// configured to.
    async fn write<F>(&self, f: F) -> StoreResult<()>
    where
        F: FnOnce(&EdgeShard) -> Result<(), OperationError> + Send + 'static,
    {
        let writes = Arc::clone(&self.writes);
        let flush = self.flush_each_write;
        self.run(move |shard| {
            let _one_writer = writes.lock().unwrap_or_else(|p| p.into_inner());
            f(shard)?;
            if flush {
                Self::flush_shard(shard);
            }
            Ok(())
        })
        .await
    }

    fn flush_shard(shard: &EdgeShard) {
        // The shard's flush panics instead of waiting when a lock is busy; a missed flush
        // is retried by the next write (and on drop).
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shard.flush())).is_err() {
            tracing::warn!("vector store flush skipped: shard busy; the next write retries");
        }
    }

    /// Flushes everything written so far to disk.
    pub async fn flush(&self) -> StoreResult<()> {
        let writes = Arc::clone(&self.writes);
        self.run(move |shard| {
            let _one_writer = writes.lock().unwrap_or_else(|p| p.into_inner());
            Self::flush_shard(shard);
            Ok(())
        })
        .await
    }

    async fn search(
        &self,
        query: VectorInternal,
        using: &str,
        filter: &ChunkFilter,
        limit: usize,
    ) -> StoreResult<Vec<Hit>> {
        let Some(filter) = compile_filter(filter) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let request = QueryRequest {
            prefetches: Vec::new(),
            query: Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery::new(
                query, using,
            )))),
            filter: Some(filter),
            score_threshold: None,
            limit,
            offset: 0,
            params: Some(SearchParams {
                hnsw_ef: Some(self.ef_search),
                ..SearchParams::default()
            }),
            with_vector: WithVector::Bool(false),
            with_payload: WithPayloadInterface::Bool(false),
        };
        let points = self.run(move |shard| shard.query(request)).await?;
        points.into_iter().map(hit).collect()
    }
}

#[async_trait]
impl VectorStore for EdgeStore {
    fn backend(&self) -> &'static str {
        "qdrant-edge"
    }

    async fn upsert(&self, points: Vec<ChunkPoint>) -> StoreResult<()> {
        let points = points
            .into_iter()
            .map(point_struct)
            .collect::<StoreResult<Vec<_>>>()?;
        if points.is_empty() {
            return Ok(());
        }
        self.write(move |shard| {
            for batch in points.chunks(UPSERT_BATCH) {
                let batch = batch.iter().cloned().map(Into::into).collect();
                shard.update(UpdateOperation::PointOperation(
                    PointOperations::UpsertPoints(PointInsertOperations::PointsList(batch)),
                ))?;
            }
            Ok(())
        })
        .await
    }

    async fn delete(&self, chunk_ids: &[Uuid]) -> StoreResult<()> {
        if chunk_ids.is_empty() {
            return Ok(());
        }
        let ids = chunk_ids.iter().map(|id| PointId::Uuid(*id)).collect();
        self.write(move |shard| {
            shard.update(UpdateOperation::PointOperation(
                PointOperations::DeletePoints { ids },
            ))
        })
        .await
    }

    async fn set_label(
        &self,
        document_id: &str,
        level: i64,
        compartments: &[String],
    ) -> StoreResult<()> {
        let mut payload = serde_json::Map::new();
        payload.insert(LEVEL.into(), level.into());
        payload.insert(COMPARTMENTS.into(), compartments.into());
        let op = SetPayloadOp {
            payload: Payload(payload),
            points: None,
            filter: Some(Filter::new_must(match_any(
                DOCUMENT_ID,
                &[document_id.to_owned()],
            ))),
            key: None,
        };
        self.write(move |shard| {
            shard.update(UpdateOperation::PayloadOperation(PayloadOps::SetPayload(
                op,
            )))
        })
        .await
    }

    async fn search_dense(
        &self,
        vector: &[f32],
        filter: &ChunkFilter,
        limit: usize,
    ) -> StoreResult<Vec<Hit>> {
        self.search(VectorInternal::Dense(vector.to_vec()), DENSE, filter, limit)
            .await
    }

    async fn search_sparse(
        &self,
        vector: &SparseVector,
        filter: &ChunkFilter,
        limit: usize,
    ) -> StoreResult<Vec<Hit>> {
        if vector.is_empty() {
            return Ok(Vec::new());
        }
        let Vector(query) = sparse_vector(vector)?;
        self.search(query, SPARSE, filter, limit).await
    }

    async fn count(&self, filter: &ChunkFilter) -> StoreResult<usize> {
        let Some(filter) = compile_filter(filter) else {
            return Ok(0);
        };
        let request = CountRequest {
            filter: Some(filter),
            exact: true,
        };
        self.run(move |shard| shard.count(request)).await
    }

    async fn optimize(&self) -> StoreResult<()> {
        let writes = Arc::clone(&self.writes);
        self.run(move |shard| {
            let _one_writer = writes.lock().unwrap_or_else(|p| p.into_inner());
            shard.optimize()?;
            Self::flush_shard(shard);
            Ok(())
        })
        .await
    }
}

/// The shard configuration: named dense (cosine) and sparse (IDF) vectors, our HNSW and
/// optimizer settings.
fn edge_config(dim: usize, opts: &EdgeOptions) -> EdgeConfig {
    let hnsw = HnswIndexConfig {
        m: opts.hnsw_m,
        ef_construct: opts.ef_construct,
        full_scan_threshold: opts.full_scan_threshold_kb,
        ..HnswIndexConfig::default()
    };
    let optimizers = EdgeOptimizersConfig {
        indexing_threshold: Some(opts.indexing_threshold_kb),
        ..EdgeOptimizersConfig::default()
    };
    EdgeConfig::builder()
        .vector(
            DENSE,
            EdgeVectorParams::builder(dim, Distance::Cosine).build(),
        )
        .sparse_vector(
            SPARSE,
            EdgeSparseVectorParams::builder()
                .modifier(Modifier::Idf)
                .build(),
        )
        .hnsw_config(hnsw)
        .optimizers(optimizers)
        .build()
}

fn check_dimension(dir: &Path, stored: &EdgeConfig, dim: usize) -> StoreResult<()> {
    match stored.vectors.get(DENSE) {
        Some(params) if params.size == dim => Ok(()),
        Some(params) => Err(StoreError::Invalid(format!(
            "the vector store in {} holds {}-dimensional vectors but the embedding model \
             produces {dim}; re-index into a new directory after changing the model",
            dir.display(),
            params.size
        ))),
        None => Err(StoreError::Invalid(format!(
            "{} holds a Qdrant shard without a `{DENSE}` vector; it is not a Warroom store",
            dir.display()
        ))),
    }
}

/// Creates the payload indexes; indexes that already exist are left alone.
fn create_payload_indexes(shard: &EdgeShard) -> Result<(), OperationError> {
    let fields = [
        (COLLECTION, PayloadSchemaType::Keyword),
        (DEPARTMENT, PayloadSchemaType::Keyword),
        (TAGS, PayloadSchemaType::Keyword),
        (COMPARTMENTS, PayloadSchemaType::Keyword),
        (DOCUMENT_ID, PayloadSchemaType::Keyword),
        (LEVEL, PayloadSchemaType::Integer),
    ];
    for (field, schema) in fields {
        shard.update(UpdateOperation::FieldIndexOperation(
            FieldIndexOperations::CreateIndex(CreateIndex {
                field_name: key(field),
                field_schema: Some(PayloadFieldSchema::FieldType(schema)),
            }),
        ))?;
    }
    Ok(())
}

/// Compiles a filter into the engine's language; `None` when nothing can match.
fn compile_filter(filter: &ChunkFilter) -> Option<Filter> {
    let plan = FilterPlan::new(filter)?;
    let mut must: Vec<_> = plan
        .any_of
        .iter()
        .map(|(field, values)| match_any(field, values))
        .collect();
    must.push(Condition::Field(FieldCondition::new_range(
        key(LEVEL),
        Range {
            lte: Some(OrderedFloat(plan.max_level as f64)),
            ..Range::default()
        },
    )));
    let mut must_not: Vec<_> = plan
        .none_of
        .iter()
        .map(|(field, values)| match_any(field, values))
        .collect();
    // On an array, MatchExcept holds when *some* element is outside the list, so its
    // negation says every compartment is allowed; an empty array has no such element.
    must_not.push(Condition::Field(FieldCondition::new_match(
        key(COMPARTMENTS),
        Match::Except(MatchExcept {
            except: strings(plan.allowed_compartments),
        }),
    )));
    Some(Filter {
        should: None,
        min_should: None,
        must: Some(must),
        must_not: Some(must_not),
    })
}

fn key(field: &str) -> JsonPath {
    JsonPath {
        first_key: field.to_owned(),
        rest: Vec::new(),
    }
}

fn strings(values: &[String]) -> AnyVariants {
    AnyVariants::Strings(values.iter().cloned().collect())
}

/// Matches a point whose `field` (or any element of it, for arrays) is in `values`.
fn match_any(field: &str, values: &[String]) -> Condition {
    Condition::Field(FieldCondition::new_match(
        key(field),
        Match::Any(MatchAny {
            any: strings(values),
        }),
    ))
}

fn sparse_vector(v: &SparseVector) -> StoreResult<Vector> {
    Vector::new_sparse(v.indices.clone(), v.values.clone())
        .map_err(|e| StoreError::Invalid(format!("bad sparse vector: {e}")))
}

fn point_struct(p: ChunkPoint) -> StoreResult<PointStruct> {
    let id = PointId::Uuid(p.payload.chunk_id);
    let vectors = Vectors::new_named([
        (DENSE, Vector::new_dense(p.dense)),
        (SPARSE, sparse_vector(&p.sparse)?),
    ]);
    let payload = serde_json::to_value(&p.payload)
        .map_err(|e| StoreError::Internal(format!("cannot serialize a chunk payload: {e}")))?;
    Ok(PointStruct::new(id, vectors, payload))
}

fn hit(point: ScoredPoint) -> StoreResult<Hit> {
    match point.id {
        PointId::Uuid(chunk_id) => Ok(Hit {
            chunk_id,
            score: point.score,
        }),
        PointId::NumId(n) => Err(StoreError::Internal(format!(
            "the vector store holds a point with numeric id {n}; Warroom writes chunk UUIDs only"
        ))),
    }
}

fn store_error(e: OperationError) -> StoreError {
    match e {
        OperationError::WrongVectorDimension { .. }
        | OperationError::VectorNameNotExists { .. }
        | OperationError::ValidationError { .. }
        | OperationError::WrongSparse
        | OperationError::WrongMulti
        | OperationError::TypeError { .. } => StoreError::Invalid(e.to_string()),
        other => StoreError::Internal(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ChunkPayload;

    fn payload() -> ChunkPayload {
        ChunkPayload {
            chunk_id: Uuid::from_u128(7),
            document_id: "doc".into(),
            collection: "handbook".into(),
            department: "sales".into(),
            tags: vec!["pricing".into()],
            level: 1,
            compartments: vec!["sales".into()],
        }
    }

    #[test]
    fn payload_keys_are_the_serialized_field_names() {
        let value = serde_json::to_value(payload()).expect("payload serializes");
        for field in [
            COLLECTION,
            DEPARTMENT,
            TAGS,
            COMPARTMENTS,
            DOCUMENT_ID,
            LEVEL,
        ] {
            assert!(value.get(field).is_some(), "{field} missing from {value}");
        }
    }

    #[test]
    fn empty_inclusion_list_compiles_to_nothing() {
        let mut f = ChunkFilter::clearance(3, vec![]);
        assert!(compile_filter(&f).is_some());
        f.tags_any = Some(vec![]);
        assert!(compile_filter(&f).is_none());
    }

    #[test]
    fn clearance_compiles_to_level_and_compartment_conditions() {
        let f = ChunkFilter::clearance(2, vec!["hr".into()]);
        let compiled = compile_filter(&f).expect("satisfiable");
        assert_eq!(compiled.must.as_ref().map(Vec::len), Some(1));
        assert_eq!(compiled.must_not.as_ref().map(Vec::len), Some(1));
    }
}
