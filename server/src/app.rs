//! Building and running a server: state, background tasks, the listener.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::audit::Audit;
use crate::auth::Auth;
use crate::authz::Authz;
use crate::chat::cache::ChannelCache;
use crate::chat::writer::Writer;
use crate::chat::{Chat, ChatParts};
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
    pub auth: Arc<Auth>,
    pub hub: Arc<Hub>,
    pub writer: Writer,
    pub directory: Arc<Directory>,
    pub channels: Arc<ChannelCache>,
    pub metrics: Arc<Metrics>,
    pub post_limiter: Arc<RateLimiter>,
    /// Every authenticated API request, per user.
    pub request_limiter: RateLimiter,
    /// Frames clients send over WebSockets, per user.
    pub ws_limiter: RateLimiter,
    pub audit: Arc<Audit>,
    pub knowledge: Arc<Knowledge>,
    /// Channels, messages and search.
    pub chat: Chat,
    /// Login, refresh, logout and revocation.
    pub sessions: crate::sessions::Sessions,
    /// Accounts, roles and clearances.
    pub users: crate::users::Users,
    /// The insights job and its digests.
    pub insights: crate::insights::Insights,
    pub agents: Arc<crate::agents::Agents>,
    /// Serialises SQLite write transactions across the writers.
    pub gate: crate::storage::WriteGate,
}

/// Shared application state handle.
pub type App = Arc<AppState>;

impl AppState {
    /// The agent runtime's window on this server: the same services HTTP
    /// requests go through.
    pub fn platform(&self) -> crate::agents::adapter::InProcess {
        crate::agents::adapter::InProcess::new(crate::agents::adapter::InProcessParts {
            directory: self.directory.clone(),
            chat: self.chat.clone(),
            knowledge: self.knowledge.clone(),
            agents: self.agents.clone(),
        })
    }
}

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
        let auth = Arc::new(Auth::new(
            settings.auth.clone(),
            &settings.storage.data_dir,
            metrics.clone(),
        )?);
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
        let post_limiter = Arc::new(RateLimiter::new(
            settings.limits.posts_per_second,
            settings.limits.post_burst,
        ));
        let request_limiter = RateLimiter::new(
            settings.limits.requests_per_second,
            settings.limits.request_burst,
        );
        let ws_limiter = RateLimiter::new(
            settings.limits.ws_frames_per_second,
            settings.limits.ws_frame_burst,
        );
        let audit = Arc::new(Audit::open_with_gate(
            db.clone(),
            &settings.storage.data_dir,
            gate.clone(),
        )?);
        let marks = Arc::new(crate::marks::AgentMarks::default());
        let knowledge = Arc::new(Knowledge::new(
            db.clone(),
            settings.knowledge.clone(),
            settings.storage.data_dir.clone(),
            authz.clone(),
            audit.clone(),
            marks.clone(),
        ));
        let chat = Chat::new(ChatParts {
            db: db.clone(),
            authz: authz.clone(),
            hub: hub.clone(),
            writer: writer.clone(),
            directory: directory.clone(),
            channels: channels.clone(),
            marks,
            audit: audit.clone(),
            knowledge: knowledge.clone(),
            post_limiter: post_limiter.clone(),
            limits: settings.limits.clone(),
        });
        let agents = Arc::new(crate::agents::Agents::new(crate::agents::AgentsParts {
            db: db.clone(),
            settings: settings.agents.clone(),
            chat: chat.clone(),
            knowledge: knowledge.clone(),
            audit: audit.clone(),
            authz: authz.clone(),
            auth: auth.clone(),
            directory: directory.clone(),
            hub: hub.clone(),
            feed,
            gate: gate.clone(),
        }));
        let sessions = crate::sessions::Sessions::new(crate::sessions::SessionsParts {
            db: db.clone(),
            auth: auth.clone(),
            audit: audit.clone(),
            directory: directory.clone(),
            hub: hub.clone(),
            metrics: metrics.clone(),
            gate: gate.clone(),
        });
        let users = crate::users::Users::new(
            db.clone(),
            authz.clone(),
            directory.clone(),
            hub.clone(),
            audit.clone(),
        );
        let model_judge = if settings.insights.summarize_with_model
            && settings.agents.brain == warroom_types::Brain::Openai
        {
            crate::agents::host::openai_brain(&settings)
                .map(crate::insights::judge::ModelJudge::new)
        } else {
            None
        };
        let insights = crate::insights::Insights::new(
            db.clone(),
            settings.insights.clone(),
            knowledge.clone(),
            audit.clone(),
            authz.clone(),
            gate.clone(),
            model_judge,
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
            audit,
            knowledge,
            chat,
            insights,
            users,
            sessions,
            agents,
            gate,
        });
        crate::retention::spawn(app.db.clone(), app.settings.limits.events_kept_per_channel);
        app.insights.spawn_embedder(embed_inbox);

        Ok(app)
    }
}
