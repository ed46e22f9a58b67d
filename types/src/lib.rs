//! The types every Warroom crate shares, at the bottom of the dependency
//! graph: the label lattice ([`label::Label`], [`label::Level`]) with its one
//! parser, and the typed ids ([`id`]) services take and return. It depends on
//! no crate of ours.

pub mod id;
pub mod label;

pub use id::{AgentId, ChannelId, ChunkId, DigestId, DocumentId, MessageId, Seq, UserId};
pub use label::{Label, Level};
