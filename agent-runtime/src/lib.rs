//! The agent runtime: agents with personas and scopes, the scheduler that
//! gives them turns, their brains and their memory. It depends only on the
//! [`platform::Platform`] port it defines and never touches the database or
//! the vector store: the server provides an in-process adapter and
//! [`remote::RemoteAdapter`] speaks the public HTTP + WebSocket API, so
//! workers (`warroom-agents --shard i/n`) can run on other machines.

pub mod brain;
pub mod heard;
/// The label lattice, defined at the bottom of the workspace in `warroom-types`.
pub use warroom_types::label;
pub mod marks;
pub mod memory;
pub mod persona;
pub mod platform;
pub mod remote;
pub mod runtime;
pub mod scheduler;
pub mod turn;

pub use platform::{Platform, PlatformError};
