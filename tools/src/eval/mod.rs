//! Evaluations of the insights job against corpora with answer keys.

pub mod judge;
pub mod planted;
