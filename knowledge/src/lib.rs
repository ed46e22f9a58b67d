//! Company knowledge for Warroom.
//!
//! - [`document`]: parsing Markdown (with YAML front matter), plain text, HTML and PDF into
//!   sections, with per-file errors that say what is wrong;
//! - [`chunker`]: heading- and paragraph-aware, token-aware chunking with overlap;
//! - [`sparse`]: BM25 term vectors for the sparse half of hybrid search;
//! - [`embed`]: the [`embed::Embedder`] port, with in-process all-MiniLM-L6-v2 (candle) and
//!   any OpenAI-compatible `/v1/embeddings` endpoint;
//! - [`models`]: fetching and verifying model files from the package registry;
//! - [`store`]: the [`store::VectorStore`] port and its filter model, with qdrant-edge
//!   (in process) and qdrant-client (a Qdrant server) implementations.
//!
//! Nothing here knows about users or policies: the server compiles scopes and clearances into
//! a [`store::ChunkFilter`] and re-checks every returned chunk itself.

pub mod chunker;
pub mod document;
pub mod embed;
pub mod models;
pub mod sparse;
pub mod store;
