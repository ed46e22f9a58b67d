//! `warroom-agents`: a worker that runs one shard of the agents against a
//! remote Warroom server over its public API.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use warroom_agent_runtime::brain::local::LocalBrain;
use warroom_agent_runtime::brain::openai::{OpenAiBrain, OpenAiBrainSettings};
use warroom_agent_runtime::platform::Shard;
use warroom_agent_runtime::remote::{Operator, RemoteAdapter};
use warroom_agent_runtime::runtime::{Brains, Runtime, RuntimeConfig};

/// Run a shard of Warroom's agents against a server.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The server's base URL.
    #[arg(long, env = "WARROOM_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Which shard to run: `i/n` runs the agents whose id hashes to i modulo n.
    #[arg(long, default_value = "0/1", value_parser = Shard::parse)]
    shard: Shard,
    /// Operator handle used to obtain the agents' tokens: a worker account
    /// (role `worker`, which may only run agents) or an admin.
    #[arg(long, env = "WARROOM_OPERATOR", default_value = "admin")]
    operator: String,
    /// The operator's password (a worker account's key).
    #[arg(long, env = "WARROOM_OPERATOR_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Or a file holding it (first line), so it stays out of the process list.
    #[arg(long, conflicts_with = "password")]
    password_file: Option<PathBuf>,
    /// Or a ready access token instead of a password.
    #[arg(long, env = "WARROOM_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Turns in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Load the local GGUF model (for agents whose brain is `local`).
    #[arg(long)]
    local_model: Option<PathBuf>,
    /// An OpenAI-compatible endpoint (for agents whose brain is `openai`).
    #[arg(long, env = "WARROOM_OPENAI_BASE_URL")]
    openai_base_url: Option<String>,
    /// The model name at that endpoint.
    #[arg(long, env = "WARROOM_OPENAI_MODEL", default_value = "gpt-4o-mini")]
    openai_model: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let password = match &args.password_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| {
                    anyhow::anyhow!("cannot read --password-file {}: {e}", path.display())
                })?
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
        ),
        None => args.password,
    };
    let operator = match (args.token, password) {
        (Some(t), _) => Operator::Token(t),
        (None, Some(p)) => Operator::Password {
            handle: args.operator.clone(),
            password: p,
        },
        (None, None) => anyhow::bail!(
            "give the operator's password (--password-file, --password or WARROOM_OPERATOR_PASSWORD) or a token (--token or WARROOM_TOKEN)"
        ),
    };
    let platform = Arc::new(RemoteAdapter::new(&args.server, operator)?);
    let mut brains = Brains::default();
    if let Some(path) = &args.local_model {
        brains = brains.with(Arc::new(LocalBrain::load(path, 7)?));
    }
    if let Some(url) = &args.openai_base_url {
        let mut settings = OpenAiBrainSettings::new(url.clone(), args.openai_model.clone());
        settings.api_key = std::env::var("WARROOM_OPENAI_API_KEY").ok();
        brains = brains.with(Arc::new(OpenAiBrain::new(settings)?));
    }
    let cfg = RuntimeConfig {
        max_concurrent_turns: args.concurrency.max(1),
        ..Default::default()
    };
    let rt = Runtime::start(platform, brains, cfg, args.shard, 0)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "{e}; is the server at {} running and the operator an admin?",
                args.server
            )
        })?;
    println!(
        "warroom-agents: shard {}/{} runs {} agents against {}",
        args.shard.index,
        args.shard.count,
        rt.stats().agents,
        args.server
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let runner = {
        let rt = rt.clone();
        tokio::spawn(async move {
            rt.run_realtime(
                0,
                Duration::from_millis(250),
                Duration::from_secs(15),
                stop_rx,
            )
            .await
        })
    };
    tokio::signal::ctrl_c().await?;
    let _ = stop_tx.send(true);
    let _ = runner.await;
    println!("{}", serde_json::to_string_pretty(&rt.stats())?);
    Ok(())
}
