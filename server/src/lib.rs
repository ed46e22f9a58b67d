//! Warroom server library: configuration, storage, authentication, Cedar
//! authorization, the chat service, the realtime hub and the HTTP API.
//! See `ARCHITECTURE.md` at the repository root for the map.

pub mod agents;
pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod authz;
pub mod bench;
pub mod bench_agents;
pub mod bench_insights;
pub mod bench_retrieval;
pub mod chat;
pub mod cli;
pub mod config;
pub mod directory;
pub mod error;
pub mod eval_judge;
pub mod eval_planted;
pub mod insights;
pub mod knowledge;
pub mod loopback_embed;
pub mod marks;
pub use warroom_agent_runtime::label;
pub mod metrics;
pub mod principal;
pub mod ratelimit;
pub mod realtime;
pub mod render;
pub mod retention;
pub mod storage;
