//! The vector store on a Qdrant server, over gRPC with qdrant-client.
//!
//! The collection mirrors the in-process shard: a named cosine dense vector, a named sparse
//! vector with `Modifier::Idf`, and the same payload indexes. Requests are built by pure
//! functions (tested below without a server); the store methods only send them and map
//! responses and errors. Writes wait for the server to apply them, so a search right after
//! an upsert sees it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::r#match::MatchValue;
use qdrant_client::qdrant::value::Kind;
use qdrant_client::qdrant::vectors_config::Config;
use qdrant_client::qdrant::{
    CollectionInfo, CollectionStatus, Condition, CountPoints, CountPointsBuilder, CreateCollection,
    CreateCollectionBuilder, CreateFieldIndexCollection, CreateFieldIndexCollectionBuilder,
    DeletePoints, DeletePointsBuilder, Distance, FieldType, Filter, HnswConfigDiffBuilder,
    ListValue, Modifier, NamedVectors, OptimizersConfigDiffBuilder, PointId, PointStruct,
    PointsIdsList, Query, QueryPoints, QueryPointsBuilder, Range, RepeatedStrings, ScoredPoint,
    SearchParamsBuilder, SetPayloadPoints, SetPayloadPointsBuilder, SparseVectorParamsBuilder,
    SparseVectorsConfigBuilder, Struct, UpdateCollectionBuilder, UpsertPoints, UpsertPointsBuilder,
    Value, Vector, VectorInput, VectorParamsBuilder, VectorsConfigBuilder,
};
use qdrant_client::{Qdrant, QdrantError};
use uuid::Uuid;

use super::filter::{FilterPlan, COLLECTION, COMPARTMENTS, DEPARTMENT, DOCUMENT_ID, LEVEL, TAGS};
use super::{
    ChunkFilter, ChunkPayload, ChunkPoint, Hit, StoreError, StoreResult, VectorStore, DENSE, SPARSE,
};
use crate::sparse::SparseVector;

/// The payload indexes, as for the in-process store.
const PAYLOAD_INDEXES: [(&str, FieldType); 6] = [
    (COLLECTION, FieldType::Keyword),
    (DEPARTMENT, FieldType::Keyword),
    (TAGS, FieldType::Keyword),
    (COMPARTMENTS, FieldType::Keyword),
    (DOCUMENT_ID, FieldType::Keyword),
    (LEVEL, FieldType::Integer),
];

/// Points per upsert request, well under gRPC's message size limit at 384 dimensions.
const UPSERT_BATCH: usize = 256;
/// HNSW beam width while searching; the same default as the in-process store.
const DEFAULT_EF_SEARCH: usize = 128;
/// How long `optimize` waits for the server to finish indexing.
const OPTIMIZE_TIMEOUT: Duration = Duration::from_secs(3600);
const OPTIMIZE_POLL: Duration = Duration::from_millis(500);

/// gRPC status codes that say the request, not the server, is at fault.
const GRPC_INVALID_ARGUMENT: i32 = 3;
const GRPC_NOT_FOUND: i32 = 5;
const GRPC_FAILED_PRECONDITION: i32 = 9;
/// gRPC status codes that say the server is unreachable or overloaded.
const GRPC_DEADLINE_EXCEEDED: i32 = 4;
const GRPC_RESOURCE_EXHAUSTED: i32 = 8;
const GRPC_UNAVAILABLE: i32 = 14;

/// A [`VectorStore`] backed by a collection on a Qdrant server.
pub struct QdrantStore {
    client: Qdrant,
    collection: String,
    ef_search: usize,
}

impl std::fmt::Debug for QdrantStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QdrantStore")
            .field("collection", &self.collection)
            .field("ef_search", &self.ef_search)
            .finish()
    }
}

impl QdrantStore {
    /// Connects to the server at `url` (the gRPC port, usually 6334) and creates the
    /// collection if it is missing.
    ///
    /// Fails with [`StoreError::Invalid`] if the collection exists with dense vectors that
    /// are not `dim` long, and with [`StoreError::Unavailable`] if the server cannot be
    /// reached.
    pub async fn connect(
        url: &str,
        collection: &str,
        dim: usize,
        api_key: Option<String>,
    ) -> StoreResult<QdrantStore> {
        // The compatibility check blocks on a private runtime; the health check below
        // reaches the server without blocking ours.
        let client = Qdrant::from_url(url)
            .api_key(api_key)
            .skip_compatibility_check()
            .build()
            .map_err(|e| StoreError::Invalid(format!("bad Qdrant URL {url}: {e}")))?;
        client
            .health_check()
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot reach Qdrant at {url}: {e}")))?;
        let store = QdrantStore {
            client,
            collection: collection.to_owned(),
            ef_search: DEFAULT_EF_SEARCH,
        };
        store.ensure_collection(dim).await?;
        Ok(store)
    }

    /// Sets the HNSW beam width for searches.
    pub fn with_ef_search(mut self, ef_search: usize) -> Self {
        self.ef_search = ef_search;
        self
    }

    async fn ensure_collection(&self, dim: usize) -> StoreResult<()> {
        let exists = self
            .client
            .collection_exists(self.collection.as_str())
            .await
            .map_err(store_error)?;
        if exists {
            let info = self.info().await?;
            match stored_dimension(&info) {
                Some(stored) if stored == dim as u64 => {}
                stored => {
                    return Err(StoreError::Invalid(format!(
                        "Qdrant collection `{}` holds {} dense vectors but the embedding \
                         model produces {dim} dimensions; use a new collection after \
                         changing the model",
                        self.collection,
                        stored.map_or_else(
                            || format!("no `{DENSE}`"),
                            |d| format!("{d}-dimensional")
                        ),
                    )))
                }
            }
        } else {
            self.client
                .create_collection(create_collection_request(&self.collection, dim))
                .await
                .map_err(store_error)?;
        }
        // Creating an index that exists is a no-op on the server.
        for request in field_index_requests(&self.collection) {
            self.client
                .create_field_index(request)
                .await
                .map_err(store_error)?;
        }
        Ok(())
    }

    async fn info(&self) -> StoreResult<CollectionInfo> {
        self.client
            .collection_info(self.collection.as_str())
            .await
            .map_err(store_error)?
            .result
            .ok_or_else(|| StoreError::Internal("Qdrant returned no collection info".into()))
    }

    async fn query(&self, request: Option<QueryPoints>) -> StoreResult<Vec<Hit>> {
        let Some(request) = request else {
            return Ok(Vec::new());
        };
        let response = self.client.query(request).await.map_err(store_error)?;
        response.result.into_iter().map(hit).collect()
    }
}

#[async_trait]
impl VectorStore for QdrantStore {
    fn backend(&self) -> &'static str {
        "qdrant"
    }

    async fn upsert(&self, points: Vec<ChunkPoint>) -> StoreResult<()> {
        for batch in points.chunks(UPSERT_BATCH) {
            self.client
                .upsert_points(upsert_request(&self.collection, batch)?)
                .await
                .map_err(store_error)?;
        }
        Ok(())
    }

    async fn delete(&self, chunk_ids: &[Uuid]) -> StoreResult<()> {
        if chunk_ids.is_empty() {
            return Ok(());
        }
        self.client
            .delete_points(delete_request(&self.collection, chunk_ids))
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn set_label(
        &self,
        document_id: &str,
        level: i64,
        compartments: &[String],
    ) -> StoreResult<()> {
        let request = set_label_request(&self.collection, document_id, level, compartments);
        self.client
            .set_payload(request)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn search_dense(
        &self,
        vector: &[f32],
        filter: &ChunkFilter,
        limit: usize,
    ) -> StoreResult<Vec<Hit>> {
        self.query(dense_query(
            &self.collection,
            vector,
            filter,
            limit,
            self.ef_search,
        ))
        .await
    }

    async fn search_sparse(
        &self,
        vector: &SparseVector,
        filter: &ChunkFilter,
        limit: usize,
    ) -> StoreResult<Vec<Hit>> {
        self.query(sparse_query(&self.collection, vector, filter, limit))
            .await
    }

    async fn count(&self, filter: &ChunkFilter) -> StoreResult<usize> {
        let Some(request) = count_request(&self.collection, filter) else {
            return Ok(0);
        };
        let response = self.client.count(request).await.map_err(store_error)?;
        Ok(response.result.map_or(0, |r| r.count as usize))
    }

    /// The server indexes in the background; this waits until it is done.
    async fn optimize(&self) -> StoreResult<()> {
        let deadline = Instant::now() + OPTIMIZE_TIMEOUT;
        loop {
            let status = CollectionStatus::try_from(self.info().await?.status)
                .unwrap_or(CollectionStatus::UnknownCollectionStatus);
            match status {
                CollectionStatus::Green => return Ok(()),
                CollectionStatus::Red => {
                    return Err(StoreError::Internal(format!(
                        "Qdrant collection `{}` is red: see the server log",
                        self.collection
                    )))
                }
                // Pending optimizations start on the next collection update.
                CollectionStatus::Grey => {
                    self.client
                        .update_collection(
                            UpdateCollectionBuilder::new(self.collection.as_str())
                                .optimizers_config(OptimizersConfigDiffBuilder::default()),
                        )
                        .await
                        .map_err(store_error)?;
                }
                CollectionStatus::Yellow | CollectionStatus::UnknownCollectionStatus => {}
            }
            if Instant::now() > deadline {
                return Err(StoreError::Unavailable(format!(
                    "Qdrant collection `{}` still indexing after {OPTIMIZE_TIMEOUT:?}",
                    self.collection
                )));
            }
            tokio::time::sleep(OPTIMIZE_POLL).await;
        }
    }
}

/// The collection: named dense (cosine) and sparse (IDF) vectors.
fn create_collection_request(collection: &str, dim: usize) -> CreateCollection {
    let mut dense = VectorsConfigBuilder::default();
    dense.add_named_vector_params(
        DENSE,
        VectorParamsBuilder::new(dim as u64, Distance::Cosine),
    );
    let mut sparse = SparseVectorsConfigBuilder::default();
    sparse.add_named_vector_params(
        SPARSE,
        SparseVectorParamsBuilder::default().modifier(Modifier::Idf),
    );
    CreateCollectionBuilder::new(collection)
        .vectors_config(dense)
        .sparse_vectors_config(sparse)
        .hnsw_config(HnswConfigDiffBuilder::default().m(16).ef_construct(100))
        .build()
}

fn field_index_requests(collection: &str) -> Vec<CreateFieldIndexCollection> {
    PAYLOAD_INDEXES
        .iter()
        .map(|(field, kind)| {
            CreateFieldIndexCollectionBuilder::new(collection, *field, *kind)
                .wait(true)
                .build()
        })
        .collect()
}

/// The dense vector size of an existing collection, if it has our dense vector.
fn stored_dimension(info: &CollectionInfo) -> Option<u64> {
    let config = info
        .config
        .as_ref()?
        .params
        .as_ref()?
        .vectors_config
        .as_ref()?
        .config
        .as_ref()?;
    match config {
        Config::ParamsMap(map) => map.map.get(DENSE).map(|p| p.size),
        Config::Params(_) => None,
    }
}

/// Compiles a filter (see [`FilterPlan`]); `None` when nothing can match, so no request is
/// sent.
fn compile_filter(filter: &ChunkFilter) -> Option<Filter> {
    let plan = FilterPlan::new(filter)?;
    let mut must: Vec<_> = plan
        .any_of
        .iter()
        .map(|(field, values)| Condition::matches(*field, values.to_vec()))
        .collect();
    must.push(Condition::range(
        LEVEL,
        Range {
            lte: Some(plan.max_level as f64),
            ..Range::default()
        },
    ));
    let mut must_not: Vec<_> = plan
        .none_of
        .iter()
        .map(|(field, values)| Condition::matches(*field, values.to_vec()))
        .collect();
    // On an array, "except" holds when *some* element is outside the list, so its negation
    // says every compartment is allowed; an empty array has no such element.
    must_not.push(Condition::matches(
        COMPARTMENTS,
        MatchValue::ExceptKeywords(RepeatedStrings {
            strings: plan.allowed_compartments.to_vec(),
        }),
    ));
    Some(Filter {
        must,
        must_not,
        ..Filter::default()
    })
}

fn point_id(id: Uuid) -> PointId {
    PointId::from(id.to_string())
}

fn payload(p: &ChunkPayload) -> StoreResult<HashMap<String, Value>> {
    match serde_json::to_value(p) {
        Ok(serde_json::Value::Object(map)) => {
            Ok(map.into_iter().map(|(k, v)| (k, json_value(v))).collect())
        }
        Ok(other) => Err(StoreError::Internal(format!(
            "chunk payload is not an object: {other}"
        ))),
        Err(e) => Err(StoreError::Internal(format!(
            "cannot serialize a chunk payload: {e}"
        ))),
    }
}

/// JSON to Qdrant's payload value (qdrant-client's own conversion needs its `serde` feature).
fn json_value(v: serde_json::Value) -> Value {
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Kind::IntegerValue(i),
            None => Kind::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(items) => Kind::ListValue(ListValue {
            values: items.into_iter().map(json_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(Struct {
            fields: map.into_iter().map(|(k, v)| (k, json_value(v))).collect(),
        }),
    };
    Value { kind: Some(kind) }
}

fn point_struct(p: &ChunkPoint) -> StoreResult<PointStruct> {
    let vectors = NamedVectors::default()
        .add_vector(DENSE, Vector::new_dense(p.dense.clone()))
        .add_vector(
            SPARSE,
            Vector::new_sparse(p.sparse.indices.clone(), p.sparse.values.clone()),
        );
    Ok(PointStruct::new(
        point_id(p.payload.chunk_id),
        vectors,
        payload(&p.payload)?,
    ))
}

fn upsert_request(collection: &str, points: &[ChunkPoint]) -> StoreResult<UpsertPoints> {
    let points = points
        .iter()
        .map(point_struct)
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(UpsertPointsBuilder::new(collection, points)
        .wait(true)
        .build())
}

fn delete_request(collection: &str, chunk_ids: &[Uuid]) -> DeletePoints {
    DeletePointsBuilder::new(collection)
        .points(PointsIdsList {
            ids: chunk_ids.iter().copied().map(point_id).collect(),
        })
        .wait(true)
        .build()
}

fn set_label_request(
    collection: &str,
    document_id: &str,
    level: i64,
    compartments: &[String],
) -> SetPayloadPoints {
    let payload = HashMap::from([
        (LEVEL.to_owned(), Value::from(level)),
        (COMPARTMENTS.to_owned(), Value::from(compartments.to_vec())),
    ]);
    SetPayloadPointsBuilder::new(collection, payload)
        .points_selector(Filter::must([Condition::matches(
            DOCUMENT_ID,
            document_id.to_owned(),
        )]))
        .wait(true)
        .build()
}

/// A nearest-neighbour query on the dense vector; `None` when nothing can match.
fn dense_query(
    collection: &str,
    vector: &[f32],
    filter: &ChunkFilter,
    limit: usize,
    ef_search: usize,
) -> Option<QueryPoints> {
    let filter = compile_filter(filter)?;
    if limit == 0 {
        return None;
    }
    Some(
        QueryPointsBuilder::new(collection)
            .query(Query::new_nearest(VectorInput::new_dense(vector.to_vec())))
            .using(DENSE)
            .filter(filter)
            .limit(limit as u64)
            .params(SearchParamsBuilder::default().hnsw_ef(ef_search as u64))
            .build(),
    )
}

/// A BM25 query on the sparse vector (the server applies IDF); `None` when nothing can
/// match.
fn sparse_query(
    collection: &str,
    vector: &SparseVector,
    filter: &ChunkFilter,
    limit: usize,
) -> Option<QueryPoints> {
    let filter = compile_filter(filter)?;
    if limit == 0 || vector.is_empty() {
        return None;
    }
    Some(
        QueryPointsBuilder::new(collection)
            .query(Query::new_nearest(VectorInput::new_sparse(
                vector.indices.clone(),
                vector.values.clone(),
            )))
            .using(SPARSE)
            .filter(filter)
            .limit(limit as u64)
            .build(),
    )
}

/// An exact count; `None` when nothing can match.
fn count_request(collection: &str, filter: &ChunkFilter) -> Option<CountPoints> {
    let filter = compile_filter(filter)?;
    Some(
        CountPointsBuilder::new(collection)
            .filter(filter)
            .exact(true)
            .build(),
    )
}

fn hit(point: ScoredPoint) -> StoreResult<Hit> {
    let id = point.id.and_then(|id| id.point_id_options);
    match id {
        Some(PointIdOptions::Uuid(s)) => Uuid::parse_str(&s)
            .map(|chunk_id| Hit {
                chunk_id,
                score: point.score,
            })
            .map_err(|e| StoreError::Internal(format!("Qdrant returned a bad point id {s}: {e}"))),
        other => Err(StoreError::Internal(format!(
            "Qdrant returned point id {other:?}; Warroom writes chunk UUIDs only"
        ))),
    }
}

fn store_error(e: QdrantError) -> StoreError {
    match &e {
        QdrantError::ResponseError { status } => match i32::from(status.code()) {
            GRPC_INVALID_ARGUMENT | GRPC_NOT_FOUND | GRPC_FAILED_PRECONDITION => {
                StoreError::Invalid(e.to_string())
            }
            GRPC_DEADLINE_EXCEEDED | GRPC_UNAVAILABLE => StoreError::Unavailable(e.to_string()),
            GRPC_RESOURCE_EXHAUSTED => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Internal(e.to_string()),
        },
        QdrantError::ResourceExhaustedError { .. } => StoreError::Unavailable(e.to_string()),
        QdrantError::InvalidUri(_) | QdrantError::ConversionError(_) => {
            StoreError::Invalid(e.to_string())
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use qdrant_client::qdrant::condition::ConditionOneOf;
    use qdrant_client::qdrant::vector_input::Variant;
    use qdrant_client::qdrant::{query, vector, FieldCondition};

    use super::*;

    fn field(c: &Condition) -> &FieldCondition {
        match &c.condition_one_of {
            Some(ConditionOneOf::Field(f)) => f,
            other => panic!("not a field condition: {other:?}"),
        }
    }

    fn keywords(c: &Condition) -> (&str, Vec<String>) {
        let f = field(c);
        match f.r#match.as_ref().and_then(|m| m.match_value.clone()) {
            Some(MatchValue::Keywords(k)) => (f.key.as_str(), k.strings),
            Some(MatchValue::Keyword(k)) => (f.key.as_str(), vec![k]),
            other => panic!("{} is not a keyword match: {other:?}", f.key),
        }
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn chunk() -> ChunkPoint {
        ChunkPoint {
            dense: vec![0.5, 0.25],
            sparse: SparseVector {
                indices: vec![3, 11],
                values: vec![1.0, 2.0],
            },
            payload: ChunkPayload {
                chunk_id: Uuid::from_u128(42),
                document_id: "doc-1".into(),
                collection: "handbook".into(),
                department: "sales".into(),
                tags: strings(&["pricing"]),
                level: 2,
                compartments: strings(&["sales"]),
            },
        }
    }

    #[test]
    fn clearance_only_filter_has_level_and_compartment_conditions() {
        let f = compile_filter(&ChunkFilter::clearance(1, strings(&["hr", "it"]))).unwrap();
        assert_eq!(f.must.len(), 1);
        let level = field(&f.must[0]);
        assert_eq!(level.key, LEVEL);
        assert_eq!(level.range.as_ref().and_then(|r| r.lte), Some(1.0));
        assert_eq!(f.must_not.len(), 1);
        let comps = field(&f.must_not[0]);
        assert_eq!(comps.key, COMPARTMENTS);
        match comps.r#match.as_ref().and_then(|m| m.match_value.clone()) {
            Some(MatchValue::ExceptKeywords(k)) => assert_eq!(k.strings, strings(&["hr", "it"])),
            other => panic!("expected except-keywords, got {other:?}"),
        }
    }

    #[test]
    fn inclusion_lists_become_must_any_and_exclusions_must_not_any() {
        let mut f = ChunkFilter::clearance(3, Vec::new());
        f.collections = Some(strings(&["handbook"]));
        f.departments = Some(strings(&["sales", "hr"]));
        f.tags_any = Some(strings(&["pricing"]));
        f.document_ids = Some(strings(&["doc-1"]));
        f.exclude_collections = strings(&["archive"]);
        f.exclude_departments = strings(&["legal"]);
        f.exclude_tags = strings(&["draft"]);
        let compiled = compile_filter(&f).unwrap();
        let must: Vec<_> = compiled.must[..4].iter().map(keywords).collect();
        assert_eq!(
            must,
            vec![
                (COLLECTION, strings(&["handbook"])),
                (DEPARTMENT, strings(&["sales", "hr"])),
                (TAGS, strings(&["pricing"])),
                (DOCUMENT_ID, strings(&["doc-1"])),
            ]
        );
        let must_not: Vec<_> = compiled.must_not[..3].iter().map(keywords).collect();
        assert_eq!(
            must_not,
            vec![
                (COLLECTION, strings(&["archive"])),
                (DEPARTMENT, strings(&["legal"])),
                (TAGS, strings(&["draft"])),
            ]
        );
    }

    #[test]
    fn empty_inclusion_list_sends_no_request() {
        for set in [
            |f: &mut ChunkFilter| f.collections = Some(Vec::new()),
            |f: &mut ChunkFilter| f.departments = Some(Vec::new()),
            |f: &mut ChunkFilter| f.tags_any = Some(Vec::new()),
            |f: &mut ChunkFilter| f.document_ids = Some(Vec::new()),
        ] {
            let mut f = ChunkFilter::clearance(3, Vec::new());
            set(&mut f);
            assert!(compile_filter(&f).is_none());
            assert!(dense_query("c", &[1.0], &f, 10, 64).is_none());
            assert!(count_request("c", &f).is_none());
        }
    }

    #[test]
    fn points_carry_uuid_string_ids_both_vectors_and_the_payload() {
        let request = upsert_request("chunks", &[chunk()]).unwrap();
        assert_eq!(request.collection_name, "chunks");
        assert_eq!(request.wait, Some(true));
        let point = &request.points[0];
        assert_eq!(
            point.id.as_ref().and_then(|id| id.point_id_options.clone()),
            Some(PointIdOptions::Uuid(Uuid::from_u128(42).to_string()))
        );
        let named = match point
            .vectors
            .as_ref()
            .and_then(|v| v.vectors_options.clone())
        {
            Some(qdrant_client::qdrant::vectors::VectorsOptions::Vectors(named)) => named,
            other => panic!("expected named vectors, got {other:?}"),
        };
        match named.vectors[DENSE].vector.clone() {
            Some(vector::Vector::Dense(d)) => assert_eq!(d.data, vec![0.5, 0.25]),
            other => panic!("dense vector: {other:?}"),
        }
        match named.vectors[SPARSE].vector.clone() {
            Some(vector::Vector::Sparse(s)) => {
                assert_eq!(s.indices, vec![3, 11]);
                assert_eq!(s.values, vec![1.0, 2.0]);
            }
            other => panic!("sparse vector: {other:?}"),
        }
        assert_eq!(point.payload["level"], Value::from(2i64));
        assert_eq!(point.payload["department"], Value::from("sales"));
        assert_eq!(point.payload["tags"], Value::from(strings(&["pricing"])));
        assert_eq!(
            point.payload["chunk_id"],
            Value::from(Uuid::from_u128(42).to_string())
        );
    }

    #[test]
    fn queries_name_their_vector_and_carry_the_filter() {
        let filter = ChunkFilter::clearance(0, Vec::new());
        let dense = dense_query("chunks", &[1.0, 0.0], &filter, 5, 77).unwrap();
        assert_eq!(dense.using.as_deref(), Some(DENSE));
        assert_eq!(dense.limit, Some(5));
        assert_eq!(dense.params.and_then(|p| p.hnsw_ef), Some(77));
        assert!(dense.filter.is_some());
        let sparse = SparseVector {
            indices: vec![4],
            values: vec![0.5],
        };
        let q = sparse_query("chunks", &sparse, &filter, 5).unwrap();
        assert_eq!(q.using.as_deref(), Some(SPARSE));
        let input = q.query.and_then(|q| q.variant);
        match input {
            Some(query::Variant::Nearest(VectorInput {
                variant: Some(Variant::Sparse(s)),
            })) => assert_eq!(s.indices, vec![4]),
            other => panic!("expected a sparse nearest query, got {other:?}"),
        }
        assert!(sparse_query("chunks", &SparseVector::default(), &filter, 5).is_none());
    }

    #[test]
    fn collection_has_named_cosine_dense_and_idf_sparse_vectors() {
        let request = create_collection_request("chunks", 384);
        let config = request.vectors_config.and_then(|v| v.config);
        match config {
            Some(Config::ParamsMap(map)) => {
                assert_eq!(map.map[DENSE].size, 384);
                assert_eq!(map.map[DENSE].distance, Distance::Cosine as i32);
            }
            other => panic!("expected named vectors, got {other:?}"),
        }
        let sparse = request.sparse_vectors_config.expect("sparse vectors");
        assert_eq!(sparse.map[SPARSE].modifier, Some(Modifier::Idf as i32));
        let fields: Vec<_> = field_index_requests("chunks")
            .into_iter()
            .map(|r| (r.field_name, r.field_type))
            .collect();
        assert!(fields.contains(&(COMPARTMENTS.to_owned(), Some(FieldType::Keyword as i32))));
        assert!(fields.contains(&(LEVEL.to_owned(), Some(FieldType::Integer as i32))));
    }

    #[test]
    fn set_label_targets_the_document_and_deletes_by_uuid() {
        let request = set_label_request("chunks", "doc-1", 3, &strings(&["hr"]));
        assert_eq!(request.payload["level"], Value::from(3i64));
        assert_eq!(
            request.payload["compartments"],
            Value::from(strings(&["hr"]))
        );
        assert!(request.points_selector.is_some());
        let delete = delete_request("chunks", &[Uuid::from_u128(1)]);
        assert!(format!("{:?}", delete.points).contains(&Uuid::from_u128(1).to_string()));
    }
}
