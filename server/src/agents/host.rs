//! Hosting the agent runtime inside the server process (the default for one
//! machine, and the demo): brains from the `[agents]` settings, the
//! in-process adapter, and a real-time loop that stops with the server.

use std::sync::Arc;
use std::time::Duration;

use warroom_agent_runtime::brain::local::LocalBrain;
use warroom_agent_runtime::brain::openai::{OpenAiBrain, OpenAiBrainSettings};
use warroom_agent_runtime::platform::Shard;
use warroom_agent_runtime::runtime::{Brains, Runtime, RuntimeConfig};
use warroom_agent_runtime::scheduler::SchedulerConfig;

use super::adapter::InProcess;
use crate::config::Settings;
use warroom_types::Brain;

/// A running in-process agent runtime.
pub struct AgentHost {
    runtime: Arc<Runtime>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// The runtime settings that follow from the server's.
pub fn runtime_config(settings: &Settings) -> RuntimeConfig {
    let a = &settings.agents;
    RuntimeConfig {
        scheduler: SchedulerConfig {
            turns_per_hour: a.turns_per_hour,
            tokens_per_hour: a.tokens_per_hour,
            global_tokens_per_hour: a.global_tokens_per_hour,
            turns_per_minute: a.turns_per_minute,
            ..Default::default()
        },
        max_concurrent_turns: a.concurrency,
        ..Default::default()
    }
}

/// The brains the settings ask for. A brain that cannot load is logged and
/// left out: agents configured for it write extractively (and say so).
pub async fn brains(settings: &Settings, want_local: bool) -> Brains {
    let a = &settings.agents;
    let mut brains = Brains::default();
    if want_local || a.brain == Brain::Local {
        let models_dir = settings.knowledge.models_dir();
        let path = a.local_model.clone();
        let fetch = settings.knowledge.fetch_models;
        let loaded = tokio::task::spawn_blocking(move || match path {
            Some(p) => LocalBrain::load(&p, 7),
            None if fetch => LocalBrain::load_default(&models_dir),
            None => LocalBrain::load(
                &warroom_knowledge::models::model_dir(
                    &models_dir,
                    &warroom_agent_runtime::brain::local::SMOLLM2,
                ),
                7,
            ),
        })
        .await;
        match loaded {
            Ok(Ok(b)) => brains = brains.with(Arc::new(b)),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "local brain unavailable; its agents write extractively")
            }
            Err(e) => tracing::warn!(error = %e, "local brain failed to load"),
        }
    }
    if let Some(b) = openai_brain(settings) {
        brains = brains.with(Arc::new(b));
    }
    brains
}

/// The OpenAI-compatible chat endpoint of `[agents]`, if one is configured.
pub fn openai_brain(settings: &Settings) -> Option<OpenAiBrain> {
    let a = &settings.agents;
    let url = a.openai_base_url.as_ref()?;
    let mut s = OpenAiBrainSettings::new(url.clone(), a.openai_model.clone());
    s.api_key = a.openai_api_key.clone();
    s.timeout = Duration::from_secs(a.openai_timeout_secs);
    s.max_concurrency = a.openai_max_concurrency;
    match OpenAiBrain::new(s) {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::warn!(error = %e, "openai brain unavailable");
            None
        }
    }
}

impl AgentHost {
    /// Load every agent and start taking turns in real time.
    pub async fn start(
        platform: InProcess,
        settings: &Settings,
        brains: Brains,
    ) -> anyhow::Result<Self> {
        let cfg = runtime_config(settings);
        let tick = Duration::from_millis(settings.agents.tick_ms);
        let platform = Arc::new(platform);
        let runtime = Runtime::start(platform, brains, cfg, Shard::ALL, 0)
            .await
            .map_err(|e| anyhow::anyhow!("agent runtime: {e}"))?;
        let (stop, rx) = tokio::sync::watch::channel(false);
        let rt = runtime.clone();
        let task = tokio::spawn(async move {
            rt.run_realtime(0, tick, Duration::from_secs(5), rx).await;
        });
        Ok(Self {
            runtime,
            stop,
            task,
        })
    }

    /// The runtime (for stats).
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Stop taking turns and wait for the ones in flight.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
