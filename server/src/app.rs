//! Building and running a server: state, background tasks, the listener.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::audit::Audit;
use crate::auth::Auth;
use crate::authz::Authz;
use crate::chat::cache::ChannelCache;
use crate::chat::writer::Writer;
use crate::config::Settings;
use crate::directory::Directory;
use crate::knowledge::Knowledge;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::realtime::Hub;

/// Everything request handlers share.
pub struct AppState {
    pub settings: Settings,
    pub db: DatabaseConnection,
    pub authz: Arc<Authz>,
    pub auth: Auth,
    pub hub: Arc<Hub>,
    pub writer: Writer,
    pub directory: Arc<Directory>,
    pub channels: Arc<ChannelCache>,
    pub metrics: Arc<Metrics>,
    pub post_limiter: RateLimiter,
    /// Every authenticated API request, per user.
    pub request_limiter: RateLimiter,
    /// Frames clients send over WebSockets, per user.
    pub ws_limiter: RateLimiter,
    /// What each agent retrieved and observed since its last post.
    pub marks: crate::marks::AgentMarks,
    pub audit: Audit,
    pub knowledge: Knowledge,
    pub agents: crate::agents::Agents,
    /// Serialises SQLite write transactions across the writers.
    pub gate: crate::storage::WriteGate,
}

/// Shared application state handle.
pub type App = Arc<AppState>;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("policies: {0}")]
    Policy(#[from] crate::authz::PolicyError),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl AppState {
    /// Connect storage, load policies and keys, start the writer.
    pub async fn build(settings: Settings) -> Result<App, StartError> {
        let metrics = Arc::new(Metrics::default());
        let authz = Arc::new(Authz::load(
            settings.server.policy_dir.as_deref(),
            metrics.clone(),
        )?);
        tracing::info!(
            policies = authz.policy_count(),
            "authorization policies validated"
        );
        let db = crate::storage::connect(&settings).await?;
        let auth = Auth::new(
            settings.auth.clone(),
            &settings.storage.data_dir,
            metrics.clone(),
        )?;
        let hub = Arc::new(Hub::new(
            authz.clone(),
            metrics.clone(),
            settings.limits.ws_send_queue,
        ));
        let directory = Arc::new(Directory::new(db.clone()));
        let channels = Arc::new(ChannelCache::default());
        let feed = crate::agents::ActivityFeed::default();
        let gate = crate::storage::WriteGate::for_db(&db);
        let (embed_queue, embed_inbox) = crate::insights::vectors::EmbedQueue::new();
        let writer = Writer::start(
            db.clone(),
            hub.clone(),
            directory.clone(),
            channels.clone(),
            metrics.clone(),
            // Committed messages flow one way: chat knows these subscribers
            // only as listeners.
            vec![Arc::new(feed.clone()), Arc::new(embed_queue)],
            gate.clone(),
        );
        let agents = crate::agents::Agents::new(db.clone(), feed, gate.clone());
        let post_limiter =
            RateLimiter::new(settings.limits.posts_per_second, settings.limits.post_burst);
        let request_limiter = RateLimiter::new(
            settings.limits.requests_per_second,
            settings.limits.request_burst,
        );
        let ws_limiter = RateLimiter::new(
            settings.limits.ws_frames_per_second,
            settings.limits.ws_frame_burst,
        );
        let audit = Audit::open_with_gate(db.clone(), &settings.storage.data_dir, gate.clone())?;
        let knowledge = Knowledge::new(
            db.clone(),
            settings.knowledge.clone(),
            settings.storage.data_dir.clone(),
            authz.clone(),
        );
        let app = Arc::new(AppState {
            settings,
            db,
            authz,
            auth,
            hub,
            writer,
            directory,
            channels,
            metrics,
            post_limiter,
            request_limiter,
            ws_limiter,
            marks: crate::marks::AgentMarks::default(),
            audit,
            knowledge,
            agents,
            gate,
        });
        crate::retention::spawn(app.clone());
        crate::insights::vectors::spawn_embedder(app.clone(), embed_inbox);

        Ok(app)
    }
}
