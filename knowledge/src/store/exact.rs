//! The brute-force reference store: exact answers, in memory.
//!
//! Benchmarks measure the engines' recall and speed against it, and property tests check the
//! engines' filtering against it. Dense search is exact cosine (vectors are normalized on
//! insert and stored in one contiguous row-major `Vec<f32>`, so a scan is a run of dot
//! products); sparse search is the dot product with the query weights multiplied by the IDF
//! Qdrant applies for `Modifier::Idf`, computed from this store's own document frequencies.
//! Filtering is [`ChunkFilter::matches`] itself.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use uuid::Uuid;

use super::{ChunkFilter, ChunkPayload, ChunkPoint, Hit, StoreError, StoreResult, VectorStore};
use crate::sparse::SparseVector;

/// An exact, in-memory [`VectorStore`].
#[derive(Debug, Default, Clone)]
pub struct ExactStore {
    inner: Arc<RwLock<Points>>,
}

/// Point data in parallel columns; slot `i` is row `i` of every column.
#[derive(Debug, Default)]
struct Points {
    /// Set by the first upsert.
    dim: Option<usize>,
    /// Normalized dense vectors, `dim` floats per slot.
    dense: Vec<f32>,
    /// Sparse vectors sorted by term id.
    sparse: Vec<SparseVector>,
    payloads: Vec<ChunkPayload>,
    slots: HashMap<Uuid, usize>,
    /// Points per term id.
    doc_freq: HashMap<u32, usize>,
    /// Points with a non-empty sparse vector (IDF's N).
    sparse_docs: usize,
}

impl ExactStore {
    /// An empty store; the dense dimension is fixed by the first upsert.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of stored points.
    pub fn len(&self) -> usize {
        self.read().payloads.len()
    }

    /// True if no point is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Points> {
        // Nothing between a row's column pushes can panic, so a poisoned lock still guards
        // consistent columns.
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a scan on the blocking pool: at a million points it takes tens of milliseconds.
    async fn scan<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Points) -> StoreResult<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            f(&inner.read().unwrap_or_else(PoisonError::into_inner))
        })
        .await
        .map_err(|e| StoreError::Internal(format!("exact store task failed: {e}")))?
    }

    fn write(&self, f: impl FnOnce(&mut Points) -> StoreResult<()>) -> StoreResult<()> {
        f(&mut self.inner.write().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Points {
    fn upsert(&mut self, point: ChunkPoint) -> StoreResult<()> {
        let dim = *self.dim.get_or_insert(point.dense.len());
        if point.dense.len() != dim {
            return Err(StoreError::Invalid(format!(
                "dense vector has {} dimensions, the store holds {dim}",
                point.dense.len()
            )));
        }
        let id = point.payload.chunk_id;
        self.remove(id);
        let mut dense = point.dense;
        normalize(&mut dense);
        let mut sparse = point.sparse;
        sort_sparse(&mut sparse);
        for term in &sparse.indices {
            *self.doc_freq.entry(*term).or_default() += 1;
        }
        if !sparse.is_empty() {
            self.sparse_docs += 1;
        }
        self.slots.insert(id, self.payloads.len());
        self.dense.extend_from_slice(&dense);
        self.sparse.push(sparse);
        self.payloads.push(point.payload);
        Ok(())
    }

    /// Removes a point by moving the last row into its slot.
    fn remove(&mut self, id: Uuid) {
        let Some(slot) = self.slots.remove(&id) else {
            return;
        };
        let sparse = self.sparse.swap_remove(slot);
        for term in &sparse.indices {
            if let Some(n) = self.doc_freq.get_mut(term) {
                *n -= 1;
                if *n == 0 {
                    self.doc_freq.remove(term);
                }
            }
        }
        if !sparse.is_empty() {
            self.sparse_docs -= 1;
        }
        self.payloads.swap_remove(slot);
        let dim = self.dim.unwrap_or(0);
        let last = self.payloads.len();
        if slot != last {
            self.dense
                .copy_within(last * dim..(last + 1) * dim, slot * dim);
            self.slots.insert(self.payloads[slot].chunk_id, slot);
        }
        self.dense.truncate(last * dim);
    }

    /// The IDF Qdrant applies with `Modifier::Idf`.
    fn idf(&self, term: u32) -> f32 {
        let n = self.sparse_docs as f32;
        let df = self.doc_freq.get(&term).copied().unwrap_or(0) as f32;
        ((n - df + 0.5) / (df + 0.5) + 1.0).ln()
    }

    fn search_dense(
        &self,
        query: &[f32],
        filter: &ChunkFilter,
        limit: usize,
    ) -> StoreResult<Vec<Hit>> {
        let Some(dim) = self.dim else {
            return Ok(Vec::new());
        };
        if query.len() != dim {
            return Err(StoreError::Invalid(format!(
                "query has {} dimensions, the store holds {dim}",
                query.len()
            )));
        }
        let mut query = query.to_vec();
        normalize(&mut query);
        let mut top = TopK::new(limit);
        for (slot, row) in self.dense.chunks_exact(dim).enumerate() {
            let score = dot(row, &query);
            // The filter is the costlier test; most points never beat the current top-k.
            if top.admits(score) && filter.matches(&self.payloads[slot]) {
                top.push(score, slot);
            }
        }
        Ok(self.hits(top))
    }

    fn search_sparse(&self, query: &SparseVector, filter: &ChunkFilter, limit: usize) -> Vec<Hit> {
        let mut query = query.clone();
        sort_sparse(&mut query);
        for (term, weight) in query.indices.iter().zip(query.values.iter_mut()) {
            *weight *= self.idf(*term);
        }
        let mut top = TopK::new(limit);
        for (slot, doc) in self.sparse.iter().enumerate() {
            // Like Qdrant, a point sharing no term with the query is not a result.
            if let Some(score) = sparse_dot(&query, doc) {
                if top.admits(score) && filter.matches(&self.payloads[slot]) {
                    top.push(score, slot);
                }
            }
        }
        self.hits(top)
    }

    fn hits(&self, top: TopK) -> Vec<Hit> {
        let mut hits: Vec<Hit> = top
            .into_vec()
            .into_iter()
            .map(|(score, slot)| Hit {
                chunk_id: self.payloads[slot].chunk_id,
                score,
            })
            .collect();
        hits.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.chunk_id.cmp(&b.chunk_id))
        });
        hits
    }
}

/// The best `limit` (score, slot) pairs seen so far, as a min-heap.
struct TopK {
    limit: usize,
    heap: BinaryHeap<Reverse<Scored>>,
}

struct Scored(f32, usize);

impl PartialEq for Scored {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .total_cmp(&other.0)
            .then_with(|| other.1.cmp(&self.1))
    }
}

impl TopK {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            heap: BinaryHeap::with_capacity(limit + 1),
        }
    }

    /// Whether a point with this score would enter the top-k.
    fn admits(&self, score: f32) -> bool {
        if self.heap.len() < self.limit {
            return true;
        }
        self.heap
            .peek()
            .is_some_and(|Reverse(worst)| score > worst.0)
    }

    fn push(&mut self, score: f32, slot: usize) {
        self.heap.push(Reverse(Scored(score, slot)));
        if self.heap.len() > self.limit {
            self.heap.pop();
        }
    }

    fn into_vec(self) -> Vec<(f32, usize)> {
        self.heap
            .into_iter()
            .map(|Reverse(Scored(score, slot))| (score, slot))
            .collect()
    }
}

fn normalize(v: &mut [f32]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Dot product with eight independent accumulators, so the compiler can vectorize it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (a8, a_rest) = a.split_at(a.len() - a.len() % 8);
    let (b8, b_rest) = b.split_at(a8.len());
    for (x, y) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

fn sort_sparse(v: &mut SparseVector) {
    if v.indices.is_sorted() {
        return;
    }
    let mut pairs: Vec<(u32, f32)> = v
        .indices
        .iter()
        .copied()
        .zip(v.values.iter().copied())
        .collect();
    pairs.sort_by_key(|(term, _)| *term);
    (v.indices, v.values) = pairs.into_iter().unzip();
}

/// Dot product of two sparse vectors sorted by term id; `None` if they share no term.
fn sparse_dot(a: &SparseVector, b: &SparseVector) -> Option<f32> {
    let (mut i, mut j) = (0, 0);
    let mut score = None;
    while i < a.indices.len() && j < b.indices.len() {
        match a.indices[i].cmp(&b.indices[j]) {
            Ordering::Less => i += 1,
            Ordering::Greater => j += 1,
            Ordering::Equal => {
                *score.get_or_insert(0.0) += a.values[i] * b.values[j];
                i += 1;
                j += 1;
            }
        }
    }
    score
}

#[async_trait]
impl VectorStore for ExactStore {
    fn backend(&self) -> &'static str {
        "exact"
    }

    async fn upsert(&self, points: Vec<ChunkPoint>) -> StoreResult<()> {
        self.write(|store| points.into_iter().try_for_each(|p| store.upsert(p)))
    }

    async fn delete(&self, chunk_ids: &[Uuid]) -> StoreResult<()> {
        self.write(|store| {
            chunk_ids.iter().for_each(|id| store.remove(*id));
            Ok(())
        })
    }

    async fn set_label(
        &self,
        document_id: &str,
        level: i64,
        compartments: &[String],
    ) -> StoreResult<()> {
        self.write(|store| {
            for p in store
                .payloads
                .iter_mut()
                .filter(|p| p.document_id == document_id)
            {
                p.level = level;
                p.compartments = compartments.to_vec();
            }
            Ok(())
        })
    }

    async fn search_dense(
        &self,
        vector: &[f32],
        filter: &ChunkFilter,
        limit: usize,
    ) -> StoreResult<Vec<Hit>> {
        let (vector, filter) = (vector.to_vec(), filter.clone());
        self.scan(move |store| store.search_dense(&vector, &filter, limit))
            .await
    }

    async fn search_sparse(
        &self,
        vector: &SparseVector,
        filter: &ChunkFilter,
        limit: usize,
    ) -> StoreResult<Vec<Hit>> {
        let (vector, filter) = (vector.clone(), filter.clone());
        self.scan(move |store| Ok(store.search_sparse(&vector, &filter, limit)))
            .await
    }

    async fn count(&self, filter: &ChunkFilter) -> StoreResult<usize> {
        let filter = filter.clone();
        self.scan(move |store| Ok(store.payloads.iter().filter(|p| filter.matches(p)).count()))
            .await
    }

    async fn optimize(&self) -> StoreResult<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(id: u128, dense: Vec<f32>, terms: &[(u32, f32)], doc: &str) -> ChunkPoint {
        ChunkPoint {
            dense,
            sparse: SparseVector {
                indices: terms.iter().map(|t| t.0).collect(),
                values: terms.iter().map(|t| t.1).collect(),
            },
            payload: ChunkPayload {
                chunk_id: Uuid::from_u128(id),
                document_id: doc.into(),
                collection: "c".into(),
                department: "d".into(),
                tags: Vec::new(),
                level: 0,
                compartments: Vec::new(),
            },
        }
    }

    fn all() -> ChunkFilter {
        ChunkFilter::clearance(3, Vec::new())
    }

    #[test]
    fn dot_matches_naive_sum_for_odd_lengths() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| 1.0 - i as f32 * 0.1).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-4);
    }

    #[tokio::test]
    async fn dense_search_is_cosine_and_delete_moves_rows() {
        let store = ExactStore::new();
        store
            .upsert(vec![
                point(1, vec![1.0, 0.0, 0.0], &[], "a"),
                point(2, vec![0.0, 2.0, 0.0], &[], "a"),
                point(3, vec![1.0, 1.0, 0.0], &[], "b"),
            ])
            .await
            .unwrap();
        let hits = store
            .search_dense(&[0.0, 5.0, 0.0], &all(), 2)
            .await
            .unwrap();
        assert_eq!(hits[0].chunk_id, Uuid::from_u128(2));
        assert!((hits[0].score - 1.0).abs() < 1e-6, "cosine, not dot");
        assert_eq!(hits[1].chunk_id, Uuid::from_u128(3));

        store.delete(&[Uuid::from_u128(1)]).await.unwrap();
        let hits = store
            .search_dense(&[1.0, 0.0, 0.0], &all(), 1)
            .await
            .unwrap();
        assert_eq!(
            hits[0].chunk_id,
            Uuid::from_u128(3),
            "row 3 moved into slot 0"
        );
        assert_eq!(store.len(), 2);
        assert!(store.search_dense(&[1.0, 0.0], &all(), 1).await.is_err());
    }

    #[tokio::test]
    async fn sparse_search_weights_rare_terms_up() {
        let store = ExactStore::new();
        store
            .upsert(vec![
                point(1, vec![1.0], &[(7, 1.0), (1, 1.0)], "a"),
                point(2, vec![1.0], &[(7, 1.0)], "a"),
                point(3, vec![1.0], &[(7, 1.0), (9, 1.0)], "a"),
                point(4, vec![1.0], &[(5, 1.0)], "a"),
            ])
            .await
            .unwrap();
        let query = SparseVector {
            indices: vec![9, 7],
            values: vec![1.0, 1.0],
        };
        let hits = store.search_sparse(&query, &all(), 10).await.unwrap();
        assert_eq!(hits.len(), 3, "point 4 shares no term");
        assert_eq!(hits[0].chunk_id, Uuid::from_u128(3));
        let idf_7 = (1.0f32 + 1.5 / 3.5).ln(); // N = 4, df = 3
        assert!((hits[1].score - idf_7).abs() < 1e-6);
    }

    #[tokio::test]
    async fn set_label_applies_to_the_whole_document() {
        let store = ExactStore::new();
        store
            .upsert(vec![
                point(1, vec![1.0], &[], "a"),
                point(2, vec![1.0], &[], "a"),
                point(3, vec![1.0], &[], "b"),
            ])
            .await
            .unwrap();
        store.set_label("a", 2, &["hr".into()]).await.unwrap();
        let cleared = ChunkFilter::clearance(1, vec!["hr".into()]);
        assert_eq!(store.count(&cleared).await.unwrap(), 1);
        assert_eq!(
            store
                .count(&ChunkFilter::clearance(2, vec!["hr".into()]))
                .await
                .unwrap(),
            3
        );
    }
}
