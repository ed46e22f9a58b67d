//! The types every Warroom crate shares, at the bottom of the dependency
//! graph: today the label lattice ([`label::Label`], [`label::Level`]) and
//! its one parser. It depends on no crate of ours.

pub mod label;

pub use label::{Label, Level};
