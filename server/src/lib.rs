//! Warroom server library: configuration, storage, authentication, Cedar
//! authorization, the chat service, the realtime hub and the HTTP API.
//! See `ARCHITECTURE.md` at the repository root for the map.

pub mod agents;
pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod authz;
pub mod chat;
pub mod config;
pub mod demo;
pub mod directory;
pub mod error;
pub mod insights;
pub mod knowledge;
pub mod marks;
pub use warroom_types::choice;
pub use warroom_types::id as ids;
pub use warroom_types::label;
pub mod metrics;
pub mod ops;
pub mod principal;
pub mod ratelimit;
pub mod realtime;
pub mod render;
pub mod retention;
pub mod sessions;
pub mod startup;
pub mod storage;
pub mod users;
