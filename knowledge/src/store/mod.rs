//! The vector-store port and its filter model.
//!
//! A chunk is stored as a point with a dense vector (the embedding), a sparse vector (BM25
//! term weights; the engine applies IDF) and a payload ([`ChunkPayload`]). Both backends
//! compile the same [`ChunkFilter`] into their own filter language, and
//! [`ChunkFilter::matches`] is the reference semantics they must agree with: it is what the
//! exact scan in benchmarks and the property tests use.
//!
//! Hybrid search runs a dense and a sparse search under the same filter and fuses the two
//! rankings with reciprocal rank fusion ([`rrf`]), the same code for every backend.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::sparse::SparseVector;

pub mod edge;
pub mod exact;
mod filter;
pub mod qdrant;

pub use edge::EdgeStore;
pub use exact::ExactStore;
pub use qdrant::QdrantStore;

/// The name of the dense vector in every backend.
pub const DENSE: &str = "dense";
/// The name of the sparse (BM25) vector in every backend.
pub const SPARSE: &str = "bm25";

/// What the store keeps beside each chunk's vectors: enough to filter on, nothing secret
/// (chunk text lives in the database, which is the source of truth).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkPayload {
    pub chunk_id: Uuid,
    pub document_id: String,
    pub collection: String,
    pub department: String,
    pub tags: Vec<String>,
    /// Label level rank: public 0, internal 1, confidential 2, restricted 3.
    pub level: i64,
    /// Label compartments (departments), lower-case.
    pub compartments: Vec<String>,
}

/// One chunk to index.
#[derive(Debug, Clone)]
pub struct ChunkPoint {
    pub dense: Vec<f32>,
    pub sparse: SparseVector,
    pub payload: ChunkPayload,
}

/// Which chunks a search may see. `None` on an inclusion list means "any"; an empty
/// `Some(vec![])` matches nothing. The label condition is always applied: a chunk matches
/// only if `level <= max_level` and its compartments are a subset of `allowed_compartments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkFilter {
    pub collections: Option<Vec<String>>,
    pub departments: Option<Vec<String>>,
    /// A chunk matches when it has at least one of these tags.
    pub tags_any: Option<Vec<String>>,
    pub exclude_collections: Vec<String>,
    pub exclude_departments: Vec<String>,
    /// A chunk with any of these tags is excluded.
    pub exclude_tags: Vec<String>,
    pub max_level: i64,
    pub allowed_compartments: Vec<String>,
    /// Restrict to these documents (used by previews and tests).
    pub document_ids: Option<Vec<String>>,
}

impl ChunkFilter {
    /// A filter that sees every chunk up to `max_level` with the given compartments.
    pub fn clearance(max_level: i64, allowed_compartments: Vec<String>) -> Self {
        Self {
            collections: None,
            departments: None,
            tags_any: None,
            exclude_collections: Vec::new(),
            exclude_departments: Vec::new(),
            exclude_tags: Vec::new(),
            max_level,
            allowed_compartments,
            document_ids: None,
        }
    }

    /// The reference semantics every backend's compiled filter must agree with.
    pub fn matches(&self, p: &ChunkPayload) -> bool {
        fn any_of(list: &Option<Vec<String>>, value: &str) -> bool {
            list.as_ref().is_none_or(|l| l.iter().any(|v| v == value))
        }
        any_of(&self.collections, &p.collection)
            && any_of(&self.departments, &p.department)
            && any_of(&self.document_ids, &p.document_id)
            && self
                .tags_any
                .as_ref()
                .is_none_or(|want| p.tags.iter().any(|t| want.contains(t)))
            && !self.exclude_collections.contains(&p.collection)
            && !self.exclude_departments.contains(&p.department)
            && !p.tags.iter().any(|t| self.exclude_tags.contains(t))
            && p.level <= self.max_level
            && p.compartments
                .iter()
                .all(|c| self.allowed_compartments.contains(c))
    }
}

/// A search result: the chunk id and its score (fused score for hybrid search).
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub chunk_id: Uuid,
    pub score: f32,
}

/// Errors from a vector store, with what the operator should do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("vector store unavailable: {0}")]
    Unavailable(String),
    #[error("vector store rejected the request: {0}")]
    Invalid(String),
    #[error("vector store failed: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The vector-store port. Implementations must apply `filter` inside the engine (never
/// post-filter a truncated list), so that the top-k is filled from permitted chunks only.
#[async_trait]
pub trait VectorStore: Send + Sync {
    /// A short name for logs and metrics ("qdrant-edge", "qdrant").
    fn backend(&self) -> &'static str;

    /// Inserts or replaces points (by `payload.chunk_id`).
    async fn upsert(&self, points: Vec<ChunkPoint>) -> StoreResult<()>;

    /// Deletes points by chunk id; unknown ids are ignored.
    async fn delete(&self, chunk_ids: &[Uuid]) -> StoreResult<()>;

    /// Sets the label of every chunk of a document.
    async fn set_label(
        &self,
        document_id: &str,
        level: i64,
        compartments: &[String],
    ) -> StoreResult<()>;

    /// Nearest chunks by the dense vector (cosine), best first.
    async fn search_dense(
        &self,
        vector: &[f32],
        filter: &ChunkFilter,
        limit: usize,
    ) -> StoreResult<Vec<Hit>>;

    /// Best chunks by BM25 over the sparse vector, best first.
    async fn search_sparse(
        &self,
        vector: &SparseVector,
        filter: &ChunkFilter,
        limit: usize,
    ) -> StoreResult<Vec<Hit>>;

    /// How many chunks match.
    async fn count(&self, filter: &ChunkFilter) -> StoreResult<usize>;

    /// Builds indexes after bulk loading (HNSW for the in-process store). May be slow.
    async fn optimize(&self) -> StoreResult<()>;

    /// Hybrid search: dense and sparse under the same filter, fused with RRF.
    async fn hybrid(
        &self,
        dense: &[f32],
        sparse: &SparseVector,
        filter: &ChunkFilter,
        limit: usize,
    ) -> StoreResult<Vec<Hit>> {
        let depth = (limit * 4).max(20);
        let d = self.search_dense(dense, filter, depth).await?;
        let s = if sparse.is_empty() {
            Vec::new()
        } else {
            self.search_sparse(sparse, filter, depth).await?
        };
        Ok(rrf(&[d, s], limit))
    }
}

/// The constant in reciprocal rank fusion: a document at rank `r` (0-based) in a list
/// contributes `1 / (RRF_K + r + 1)`.
pub const RRF_K: f32 = 60.0;

/// Fuses several rankings with reciprocal rank fusion and keeps the best `limit`.
/// Ties are broken by chunk id so the result is deterministic.
pub fn rrf(lists: &[Vec<Hit>], limit: usize) -> Vec<Hit> {
    let mut scores: HashMap<Uuid, f32> = HashMap::new();
    for list in lists {
        for (rank, hit) in list.iter().enumerate() {
            *scores.entry(hit.chunk_id).or_default() += 1.0 / (RRF_K + rank as f32 + 1.0);
        }
    }
    let mut fused: Vec<Hit> = scores
        .into_iter()
        .map(|(chunk_id, score)| Hit { chunk_id, score })
        .collect();
    fused.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.chunk_id.cmp(&b.chunk_id))
    });
    fused.truncate(limit);
    fused
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(
        collection: &str,
        dept: &str,
        tags: &[&str],
        level: i64,
        comps: &[&str],
    ) -> ChunkPayload {
        ChunkPayload {
            chunk_id: Uuid::new_v4(),
            document_id: "d".into(),
            collection: collection.into(),
            department: dept.into(),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            level,
            compartments: comps.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn filter_semantics() {
        let mut f = ChunkFilter::clearance(1, vec!["sales".into()]);
        assert!(f.matches(&payload("c", "sales", &[], 1, &["sales"])));
        assert!(
            !f.matches(&payload("c", "sales", &[], 2, &[])),
            "level above max"
        );
        assert!(
            !f.matches(&payload("c", "hr", &[], 0, &["hr"])),
            "foreign compartment"
        );
        f.departments = Some(vec!["sales".into()]);
        assert!(!f.matches(&payload("c", "hr", &[], 0, &[])));
        f.departments = Some(vec![]);
        assert!(
            !f.matches(&payload("c", "sales", &[], 0, &[])),
            "empty list matches nothing"
        );
        f.departments = None;
        f.tags_any = Some(vec!["pricing".into()]);
        assert!(f.matches(&payload("c", "sales", &["pricing", "q3"], 0, &[])));
        assert!(!f.matches(&payload("c", "sales", &["q3"], 0, &[])));
        f.exclude_tags = vec!["q3".into()];
        assert!(!f.matches(&payload("c", "sales", &["pricing", "q3"], 0, &[])));
    }

    #[test]
    fn rrf_prefers_agreement_and_is_deterministic() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let c = Uuid::from_u128(3);
        let h = |id| Hit {
            chunk_id: id,
            score: 0.0,
        };
        let fused = rrf(&[vec![h(a), h(b)], vec![h(b), h(c)]], 3);
        assert_eq!(fused[0].chunk_id, b, "found by both lists");
        assert_eq!(fused.len(), 3);
        assert_eq!(fused, rrf(&[vec![h(a), h(b)], vec![h(b), h(c)]], 3));
    }
}
