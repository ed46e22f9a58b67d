//! The types every Warroom crate shares, at the bottom of the dependency
//! graph: the label lattice ([`label::Label`], [`label::Level`]) with its one
//! parser, the named choices ([`choice`]), the typed ids ([`id`]) services take and return, and the JSON the
//! API sends ([`wire`]). It depends on no crate of ours.

pub mod choice;
pub mod id;
pub mod label;
pub mod wire;

pub use choice::{
    Brain, ChoiceError, EmbedderKind, InsightKind, JudgeKind, Role, UserKind, VectorStoreKind,
    Visibility,
};
pub use id::{AgentId, ChannelId, ChunkId, DigestId, DocumentId, MessageId, ScopeId, Seq, UserId};
pub use label::{Label, Level};
