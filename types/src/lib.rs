//! The types every Warroom crate shares, at the bottom of the dependency
//! graph: the label lattice ([`label::Label`], [`label::Level`]) with its one
//! parser, the typed ids ([`id`]) services take and return, and the JSON the
//! API sends ([`wire`]). It depends on no crate of ours.

pub mod id;
pub mod label;
pub mod wire;

pub use id::{AgentId, ChannelId, ChunkId, DigestId, DocumentId, MessageId, Seq, UserId};
pub use label::{Label, Level};
