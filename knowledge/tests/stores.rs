//! The vector stores against their contract: the in-process store's round trip on disk, the
//! security property that a search returns only chunks the filter permits (security case 2),
//! and, when `WARROOM_TEST_QDRANT_URL` points at a Qdrant server, the round trip there.

use std::collections::HashSet;
use std::path::Path;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use uuid::Uuid;
use warroom_knowledge::sparse::SparseVector;
use warroom_knowledge::store::edge::EdgeOptions;
use warroom_knowledge::store::{
    ChunkFilter, ChunkPayload, ChunkPoint, EdgeStore, ExactStore, QdrantStore, StoreError,
    VectorStore,
};

/// Test data: hand-made points for the round trip, random points and filters (drawn from
/// small alphabets so filters often match and often don't) for the security property.
mod support {
    use super::*;

    /// Dense dimension of the random points.
    pub const DIM: usize = 8;
    const COLLECTIONS: [&str; 3] = ["handbook", "wiki", "archive"];
    const DEPARTMENTS: [&str; 3] = ["sales", "hr", "eng"];
    const TAGS: [&str; 4] = ["pricing", "q3", "draft", "policy"];
    const DOCUMENTS: usize = 12;

    /// A point with the given vectors and label.
    #[allow(clippy::too_many_arguments)]
    pub fn point(
        id: u128,
        dense: Vec<f32>,
        terms: &[(u32, f32)],
        document: &str,
        collection: &str,
        department: &str,
        tags: &[&str],
        level: i64,
        compartments: &[&str],
    ) -> ChunkPoint {
        ChunkPoint {
            dense,
            sparse: sparse_vec(terms),
            payload: ChunkPayload {
                chunk_id: Uuid::from_u128(id),
                document_id: document.into(),
                collection: collection.into(),
                department: department.into(),
                tags: strings(tags),
                level,
                compartments: strings(compartments),
            },
        }
    }

    pub fn sparse_vec(terms: &[(u32, f32)]) -> SparseVector {
        SparseVector {
            indices: terms.iter().map(|t| t.0).collect(),
            values: terms.iter().map(|t| t.1).collect(),
        }
    }

    pub fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn subset<const N: usize>(alphabet: [&'static str; N]) -> impl Strategy<Value = Vec<String>> {
        prop::sample::subsequence(alphabet.to_vec(), 0..=N)
            .prop_map(|l| l.into_iter().map(String::from).collect())
    }

    /// `None` two times in three, otherwise any subset, the empty one included.
    fn inclusion<const N: usize>(
        alphabet: [&'static str; N],
    ) -> impl Strategy<Value = Option<Vec<String>>> {
        prop_oneof![2 => Just(None), 1 => subset(alphabet).prop_map(Some)]
    }

    /// An exclusion list, empty three times in four.
    fn exclusion<const N: usize>(
        alphabet: [&'static str; N],
    ) -> impl Strategy<Value = Vec<String>> {
        prop_oneof![3 => Just(Vec::new()), 1 => subset(alphabet)]
    }

    pub fn dense() -> impl Strategy<Value = Vec<f32>> {
        prop::collection::vec(-1.0f32..1.0, DIM)
    }

    /// One to five distinct terms out of 24, in random order.
    pub fn terms() -> impl Strategy<Value = SparseVector> {
        prop::collection::hash_map(0u32..24, 0.1f32..2.0, 1..=5).prop_map(|m| SparseVector {
            indices: m.keys().copied().collect(),
            values: m.values().copied().collect(),
        })
    }

    fn payload() -> impl Strategy<Value = ChunkPayload> {
        (
            0..DOCUMENTS,
            prop::sample::select(COLLECTIONS.to_vec()),
            prop::sample::select(DEPARTMENTS.to_vec()),
            prop::sample::subsequence(TAGS.to_vec(), 0..=2),
            0i64..=3,
            prop::sample::subsequence(DEPARTMENTS.to_vec(), 0..=2),
        )
            .prop_map(|(doc, collection, department, tags, level, compartments)| {
                ChunkPayload {
                    chunk_id: Uuid::nil(),
                    document_id: format!("doc-{doc}"),
                    collection: collection.into(),
                    department: department.into(),
                    tags: strings(&tags),
                    level,
                    compartments: strings(&compartments),
                }
            })
    }

    /// `n` random points with distinct ids.
    pub fn random_points(
        n: impl Into<prop::collection::SizeRange>,
    ) -> impl Strategy<Value = Vec<ChunkPoint>> {
        prop::collection::vec((dense(), terms(), payload()), n).prop_map(|points| {
            points
                .into_iter()
                .enumerate()
                .map(|(i, (dense, sparse, mut payload))| {
                    payload.chunk_id = Uuid::from_u128(i as u128 + 1);
                    ChunkPoint {
                        dense,
                        sparse,
                        payload,
                    }
                })
                .collect()
        })
    }

    pub fn random_filter() -> impl Strategy<Value = ChunkFilter> {
        (
            (
                inclusion(COLLECTIONS),
                inclusion(DEPARTMENTS),
                inclusion(TAGS),
            ),
            prop::option::weighted(
                0.2,
                prop::sample::subsequence((0..DOCUMENTS).collect::<Vec<_>>(), 0..=6),
            ),
            (
                exclusion(COLLECTIONS),
                exclusion(DEPARTMENTS),
                exclusion(TAGS),
            ),
            prop_oneof![1 => Just(-1i64), 6 => 0i64..=3],
            subset(DEPARTMENTS),
        )
            .prop_map(
                |(incl, docs, excl, max_level, allowed_compartments)| ChunkFilter {
                    collections: incl.0,
                    departments: incl.1,
                    tags_any: incl.2,
                    exclude_collections: excl.0,
                    exclude_departments: excl.1,
                    exclude_tags: excl.2,
                    max_level,
                    allowed_compartments,
                    document_ids: docs.map(|d| d.iter().map(|i| format!("doc-{i}")).collect()),
                },
            )
    }

    /// A search to run: a filter and query vectors.
    #[derive(Debug, Clone)]
    pub struct Search {
        pub filter: ChunkFilter,
        pub dense: Vec<f32>,
        pub sparse: SparseVector,
        pub limit: usize,
    }

    pub fn random_search() -> impl Strategy<Value = Search> {
        (random_filter(), dense(), terms(), 1usize..=25).prop_map(
            |(filter, dense, sparse, limit)| Search {
                filter,
                dense,
                sparse,
                limit,
            },
        )
    }

    /// Whether the store must fill the top-k from permitted chunks exactly (true for exact
    /// scans; an HNSW walk may stop short).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Fill {
        Exact,
        AtMost,
    }

    /// Checks one search on `store`: every returned chunk is permitted by the filter, the
    /// count is exact, and (with `Fill::Exact`) no permitted chunk was crowded out.
    pub async fn check_only_permitted(
        store: &dyn VectorStore,
        points: &[ChunkPoint],
        search: &Search,
        fill: Fill,
    ) -> Result<(), TestCaseError> {
        let backend = store.backend();
        let permitted: HashSet<Uuid> = points
            .iter()
            .filter(|p| search.filter.matches(&p.payload))
            .map(|p| p.payload.chunk_id)
            .collect();
        let sparse_candidates = points
            .iter()
            .filter(|p| permitted.contains(&p.payload.chunk_id))
            .filter(|p| {
                p.sparse
                    .indices
                    .iter()
                    .any(|t| search.sparse.indices.contains(t))
            })
            .count();

        let dense = store
            .search_dense(&search.dense, &search.filter, search.limit)
            .await
            .map_err(|e| TestCaseError::fail(format!("{backend} dense: {e}")))?;
        let sparse = store
            .search_sparse(&search.sparse, &search.filter, search.limit)
            .await
            .map_err(|e| TestCaseError::fail(format!("{backend} sparse: {e}")))?;
        let hybrid = store
            .hybrid(&search.dense, &search.sparse, &search.filter, search.limit)
            .await
            .map_err(|e| TestCaseError::fail(format!("{backend} hybrid: {e}")))?;
        for (kind, hits) in [("dense", &dense), ("sparse", &sparse), ("hybrid", &hybrid)] {
            for hit in hits.iter() {
                prop_assert!(
                    permitted.contains(&hit.chunk_id),
                    "{backend} {kind} search returned {} which {:?} does not permit",
                    hit.chunk_id,
                    search.filter
                );
            }
            prop_assert!(hits.len() <= search.limit);
        }
        if fill == Fill::Exact {
            prop_assert_eq!(
                dense.len(),
                search.limit.min(permitted.len()),
                "{} dense fill",
                backend
            );
            prop_assert_eq!(
                sparse.len(),
                search.limit.min(sparse_candidates),
                "{} sparse fill",
                backend
            );
        }
        let count = store
            .count(&search.filter)
            .await
            .map_err(|e| TestCaseError::fail(format!("{backend} count: {e}")))?;
        prop_assert_eq!(
            count,
            permitted.len(),
            "{} count under {:?}",
            backend,
            search.filter
        );
        Ok(())
    }

    /// A runtime for driving the async stores from proptest's synchronous test bodies.
    pub fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime builds")
    }

    /// Opens an in-process store in `dir` with test-sized thresholds when `hnsw` is set, so
    /// a few thousand 8-dimensional points get a graph and filtered searches walk it.
    pub fn open_edge(dir: &Path, dim: usize, hnsw: bool) -> EdgeStore {
        let opts = if hnsw {
            EdgeOptions {
                indexing_threshold_kb: 1,
                full_scan_threshold_kb: 1,
                ..EdgeOptions::default()
            }
        } else {
            EdgeOptions::default()
        };
        EdgeStore::open(dir, dim, opts).expect("store opens")
    }
}

use support::*;

fn round_trip_points() -> Vec<ChunkPoint> {
    vec![
        point(
            1,
            vec![1.0, 0.0, 0.0, 0.0],
            &[(1, 1.0), (2, 1.0)],
            "d1",
            "handbook",
            "sales",
            &["pricing"],
            0,
            &[],
        ),
        point(
            2,
            vec![0.0, 1.0, 0.0, 0.0],
            &[(2, 1.0), (3, 1.0)],
            "d2",
            "handbook",
            "hr",
            &[],
            1,
            &["hr"],
        ),
        point(
            3,
            vec![0.9, 0.1, 0.0, 0.0],
            &[(1, 1.0)],
            "d3",
            "wiki",
            "sales",
            &["q3"],
            2,
            &["sales"],
        ),
    ]
}

fn ids(hits: &[warroom_knowledge::store::Hit]) -> Vec<u128> {
    hits.iter().map(|h| h.chunk_id.as_u128()).collect()
}

/// Upsert, the three searches, count, set_label and delete on any store.
async fn round_trip(store: &dyn VectorStore) {
    store.upsert(round_trip_points()).await.unwrap();
    let all = ChunkFilter::clearance(3, strings(&["hr", "sales"]));

    let dense = store
        .search_dense(&[1.0, 0.0, 0.0, 0.0], &all, 2)
        .await
        .unwrap();
    assert_eq!(ids(&dense), vec![1, 3]);
    assert!(
        (dense[0].score - 1.0).abs() < 1e-5,
        "cosine of identical vectors"
    );
    let sparse = store
        .search_sparse(&sparse_vec(&[(3, 1.0)]), &all, 10)
        .await
        .unwrap();
    assert_eq!(ids(&sparse), vec![2], "only chunk 2 has term 3");
    let hybrid = store
        .hybrid(&[0.0, 1.0, 0.0, 0.0], &sparse_vec(&[(3, 1.0)]), &all, 3)
        .await
        .unwrap();
    assert_eq!(hybrid[0].chunk_id.as_u128(), 2, "first in both rankings");

    assert_eq!(store.count(&all).await.unwrap(), 3);
    assert_eq!(
        store
            .count(&ChunkFilter::clearance(3, Vec::new()))
            .await
            .unwrap(),
        1,
        "only the uncompartmented chunk"
    );
    assert_eq!(
        store
            .count(&ChunkFilter::clearance(0, strings(&["hr", "sales"])))
            .await
            .unwrap(),
        1
    );
    let mut wiki = all.clone();
    wiki.collections = Some(strings(&["wiki"]));
    assert_eq!(
        ids(&store
            .search_dense(&[1.0, 0.0, 0.0, 0.0], &wiki, 10)
            .await
            .unwrap()),
        vec![3]
    );
    wiki.collections = Some(Vec::new());
    assert!(store
        .search_dense(&[1.0, 0.0, 0.0, 0.0], &wiki, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.count(&wiki).await.unwrap(), 0);

    store
        .set_label("d1", 2, &strings(&["sales"]))
        .await
        .unwrap();
    let internal = ChunkFilter::clearance(1, strings(&["hr", "sales"]));
    let hits = store
        .search_dense(&[1.0, 0.0, 0.0, 0.0], &internal, 10)
        .await
        .unwrap();
    assert_eq!(ids(&hits), vec![2], "chunk 1 is now confidential");
    assert_eq!(store.count(&internal).await.unwrap(), 1);

    store
        .delete(&[Uuid::from_u128(3), Uuid::from_u128(99)])
        .await
        .unwrap();
    assert_eq!(store.count(&all).await.unwrap(), 2);
    let hits = store
        .search_dense(&[1.0, 0.0, 0.0, 0.0], &all, 10)
        .await
        .unwrap();
    assert_eq!(ids(&hits), vec![1, 2]);
}

#[tokio::test]
async fn edge_store_round_trip_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_edge(dir.path(), 4, false);
    round_trip(&store).await;
    drop(store);

    let store = open_edge(dir.path(), 4, false);
    let all = ChunkFilter::clearance(3, strings(&["hr", "sales"]));
    assert_eq!(store.count(&all).await.unwrap(), 2, "points kept");
    let internal = ChunkFilter::clearance(1, strings(&["hr", "sales"]));
    assert_eq!(store.count(&internal).await.unwrap(), 1, "label kept");
    let hits = store
        .search_sparse(&sparse_vec(&[(1, 1.0)]), &all, 10)
        .await
        .unwrap();
    assert_eq!(ids(&hits), vec![1], "sparse index kept");
}

#[tokio::test]
async fn edge_store_refuses_another_dimension() {
    let dir = tempfile::tempdir().unwrap();
    drop(open_edge(dir.path(), 4, false));
    match EdgeStore::open(dir.path(), 8, EdgeOptions::default()) {
        Err(StoreError::Invalid(message)) => {
            assert!(message.contains("4-dimensional"), "{message}")
        }
        other => panic!("expected a dimension error, got {other:?}"),
    }
}

#[tokio::test]
async fn exact_store_round_trip() {
    round_trip(&ExactStore::new()).await;
}

#[tokio::test]
async fn edge_and_exact_sparse_scores_agree() {
    let dir = tempfile::tempdir().unwrap();
    let edge = open_edge(dir.path(), 4, false);
    let exact = ExactStore::new();
    for store in [&edge as &dyn VectorStore, &exact] {
        store.upsert(round_trip_points()).await.unwrap();
    }
    let all = ChunkFilter::clearance(3, strings(&["hr", "sales"]));
    let query = sparse_vec(&[(2, 0.7), (1, 1.3)]);
    let from_edge = edge.search_sparse(&query, &all, 10).await.unwrap();
    let from_exact = exact.search_sparse(&query, &all, 10).await.unwrap();
    assert_eq!(ids(&from_edge), ids(&from_exact));
    for (a, b) in from_edge.iter().zip(&from_exact) {
        assert!(
            (a.score - b.score).abs() < 1e-4,
            "{a:?} vs {b:?}: same IDF formula"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Security case 2: whatever the filter, a store returns only chunks the filter permits,
    /// fills the top-k from permitted chunks, and counts exactly.
    #[test]
    fn security_case_2_returned_chunks_subset_of_permitted(
        points in random_points(150..400),
        searches in prop::collection::vec(random_search(), 6),
    ) {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        let edge = open_edge(dir.path(), DIM, false);
        let exact = ExactStore::new();
        rt.block_on(async {
            edge.upsert(points.clone()).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            exact.upsert(points.clone()).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            for search in &searches {
                check_only_permitted(&edge, &points, search, Fill::Exact).await?;
                check_only_permitted(&exact, &points, search, Fill::Exact).await?;
            }
            Ok::<(), TestCaseError>(())
        })?;
    }
}

/// Security case 2 with the HNSW graph built and walked under filters: a few thousand
/// points, test-sized indexing and full-scan thresholds, many random filters.
#[test]
fn security_case_2_returned_chunks_subset_of_permitted_with_hnsw() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let edge = open_edge(dir.path(), DIM, true);
    let mut runner = TestRunner::new(Config::with_cases(1));
    let points = random_points(3000).new_tree(&mut runner).unwrap().current();
    rt.block_on(async {
        edge.upsert(points.clone()).await.unwrap();
        let before = edge.info();
        edge.optimize().await.unwrap();
        let after = edge.info();
        assert!(
            after.indexed_vectors >= before.indexed_vectors + points.len(),
            "dense vectors indexed: {before:?} -> {after:?}"
        );
    });
    let mut runner = TestRunner::new(Config::with_cases(64));
    runner
        .run(&random_search(), |search| {
            rt.block_on(check_only_permitted(&edge, &points, &search, Fill::AtMost))
        })
        .unwrap();
}

/// The round trip against a real Qdrant server, when one is configured.
#[tokio::test]
async fn qdrant_store_round_trip() {
    let Ok(url) = std::env::var("WARROOM_TEST_QDRANT_URL") else {
        eprintln!("skipped: set WARROOM_TEST_QDRANT_URL (gRPC, e.g. http://localhost:6334) to run");
        return;
    };
    let api_key = std::env::var("WARROOM_TEST_QDRANT_API_KEY").ok();
    let collection = format!("warroom_test_{}", Uuid::new_v4().simple());
    let store = QdrantStore::connect(&url, &collection, 4, api_key.clone())
        .await
        .unwrap();
    round_trip(&store).await;
    store.optimize().await.unwrap();
    match QdrantStore::connect(&url, &collection, 8, api_key.clone()).await {
        Err(StoreError::Invalid(message)) => {
            assert!(message.contains("4-dimensional"), "{message}")
        }
        other => panic!("expected a dimension error, got {other:?}"),
    }
    let client = qdrant_client::Qdrant::from_url(&url)
        .api_key(api_key)
        .skip_compatibility_check()
        .build()
        .unwrap();
    client.delete_collection(collection).await.unwrap();
}

/// Two processes (or two stores) on one directory would corrupt each other: the second
/// open is refused with a reason, and succeeds once the first is gone.
#[test]
fn edge_store_directory_is_locked_while_open() {
    let dir = tempfile::tempdir().unwrap();
    let first =
        warroom_knowledge::store::EdgeStore::open(dir.path(), 8, Default::default()).unwrap();
    let err =
        warroom_knowledge::store::EdgeStore::open(dir.path(), 8, Default::default()).unwrap_err();
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
    drop(first);
    warroom_knowledge::store::EdgeStore::open(dir.path(), 8, Default::default()).unwrap();
}
