//! BM25 term vectors for the sparse half of hybrid search.
//!
//! Documents and queries are turned into sparse vectors with the same tokenizer pipeline as
//! the Qdrant server's BM25 (lower-casing, English stop words, Snowball stemming, hashed term
//! ids), so both store backends see identical vectors. The term-frequency part of BM25 is in
//! the document vector; the engine applies IDF at query time (`Modifier::Idf`).

use std::sync::OnceLock;

use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};
use serde::{Deserialize, Serialize};

/// A sparse vector: parallel lists of term ids and weights, ids unique.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SparseVector {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl SparseVector {
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The dot product with another sparse vector (for exact reference scans).
    pub fn dot(&self, other: &SparseVector) -> f32 {
        let mut sum = 0.0;
        for (i, v) in self.indices.iter().zip(&self.values) {
            if let Some(pos) = other.indices.iter().position(|j| j == i) {
                sum += v * other.values[pos];
            }
        }
        sum
    }
}

/// Average chunk length in tokens that BM25 normalises against; chunks are about 200
/// word-piece tokens, which is about 150 words.
const AVG_LEN: f64 = 150.0;

fn model() -> &'static EdgeBm25 {
    static MODEL: OnceLock<EdgeBm25> = OnceLock::new();
    MODEL.get_or_init(|| {
        let config = EdgeBm25Config {
            avg_len: AVG_LEN.try_into().expect("constant is not NaN"),
            ..EdgeBm25Config::default()
        };
        EdgeBm25::new(config).expect("constant BM25 configuration is valid")
    })
}

fn convert(v: qdrant_edge::SparseVector) -> SparseVector {
    SparseVector {
        indices: v.indices,
        values: v.values,
    }
}

/// The BM25 vector of a chunk's text.
pub fn document(text: &str) -> SparseVector {
    convert(model().embed_document(text))
}

/// The BM25 vector of a query.
pub fn query(text: &str) -> SparseVector {
    convert(model().embed_query(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_stemmed_terms_overlap() {
        let d = document("Quarterly churn rose among enterprise customers");
        let q = query("customer churn");
        assert!(!d.is_empty() && !q.is_empty());
        assert!(q.dot(&d) > 0.0, "stemmed terms should match");
        let other = document("The cafeteria menu changes on Mondays");
        assert_eq!(q.dot(&other), 0.0);
        assert!(query("the and of").is_empty(), "stop words only");
    }
}
