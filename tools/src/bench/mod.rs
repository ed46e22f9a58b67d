//! Benchmarks (not tests): product figures beside a reference, in one run.

pub mod agents;
pub mod chat;
pub mod insights;
pub mod retrieval;
