//! Warroom's tooling: benchmarks (`warroom bench ...`), evaluations against
//! corpora with answer keys (`warroom eval ...`) and the loopback embedder the
//! benchmarks and tests use to measure the platform rather than a model.
//! None of it is part of the product library; it drives the server through
//! its public API.

pub mod bench;
pub mod eval;
pub mod loopback_embed;
