//! The `warroom` command: parses the command line and runs the command.
//! Each command group lives in its own module; the server, the demo and the
//! tooling live in their libraries.

mod agents;
mod audit;
mod insights;
mod knowledge;
mod models;
mod users;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use warroom::config::Settings;

// glibc's allocator contends between the runtime's threads under load;
// mimalloc keeps per-thread heaps.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "warroom",
    version,
    about = "Warroom: a private chat server for people and scoped AI agents"
)]
struct Cli {
    /// Configuration file (TOML); `WARROOM_*` environment variables override it.
    #[arg(long, global = true, env = "WARROOM_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Run the server for a first look: creates an admin on first start and
    /// prints the URL and how to log in.
    Demo,
    /// Manage users.
    Users {
        #[command(subcommand)]
        command: users::UsersCommand,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Ingest documents (Markdown with front matter, text, HTML, PDF) into company
    /// knowledge. Directories are walked; files already ingested unchanged are skipped.
    /// Run it while the server is stopped, or upload through the API instead.
    Ingest(knowledge::IngestArgs),
    /// Re-embed and re-index every stored chunk (after changing the embedder or the
    /// vector store, or to repair a vector store). Run it while the server is stopped.
    Reindex,
    /// Agents: templates, spawn, list, pause, resume, retire. Run it while the
    /// server is stopped, or use the API (`/api/v1/agents`).
    Agents {
        #[command(subcommand)]
        command: agents::AgentsCommand,
    },
    /// Model files.
    Models {
        #[command(subcommand)]
        command: models::ModelsCommand,
    },
    /// Insights: run the job now, list digests, export one. Run it while the
    /// server is stopped, or use the API (`/api/v1/insights`).
    Insights {
        #[command(subcommand)]
        command: insights::InsightsCommand,
    },
    /// Evaluations against corpora with answer keys.
    Eval {
        #[command(subcommand)]
        command: EvalCommand,
    },
    /// Benchmarks (not tests): print product figures beside a reference.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Ingest a corpus with planted insights, run agents on it in virtual time,
    /// run the insights job and score the digest against `DIR/ANSWERS.json`.
    Planted(warroom_tools::eval::planted::PlantedArgs),
    /// Judge each planted matter of corpora from its evidence sentences
    /// alone (no agents, seconds), beside the word cues, and report how many
    /// read right.
    Judge(warroom_tools::eval::judge::JudgeArgs),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// WebSocket fan-out and durable posting against a bare relay.
    Chat(warroom_tools::bench::chat::ChatBenchArgs),
    /// Embedding and ingest throughput; scoped query latency and recall against an exact scan.
    Retrieval(warroom_tools::bench::retrieval::RetrievalBenchArgs),
    /// Agent turns per second, overhead per turn and memory per agent; the local brain beside llama.cpp.
    Agents(warroom_tools::bench::agents::AgentsBenchArgs),
    /// Insights job time and peak memory for 10k, 100k and 1M messages.
    Insights(warroom_tools::bench::insights::InsightsBenchArgs),
}

fn init_tracing(settings: &Settings) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| settings.log.clone())
        .unwrap_or_else(|| "info".into());
    // qdrant-edge logs every WAL it opens and warns about feature flags it does not use;
    // keep its errors only unless the operator asked for it by name.
    let filter = if filter.contains("qdrant_edge") {
        filter
    } else {
        format!("{filter},qdrant_edge=error")
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_target(false)
        .try_init();
}

/// Parse arguments, run the command, map failures to an exit code.
fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "error: {e}\nhint: check the file given with --config and WARROOM_* variables"
            );
            return ExitCode::from(2);
        }
    };
    init_tracing(&settings);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => warroom::startup::serve(settings, false).await,
        Command::Demo => warroom::startup::serve(settings, true).await,
        Command::Migrate => {
            warroom::storage::connect(&settings).await?;
            println!(
                "migrations applied to {}",
                warroom::ops::redact(&settings.database_url())
            );
            Ok(())
        }
        Command::Users { command } => users::run(settings, command).await,
        Command::Audit { command } => audit::run(settings, command).await,
        Command::Bench { command } => match command {
            BenchCommand::Chat(args) => warroom_tools::bench::chat::chat(args).await,
            BenchCommand::Retrieval(args) => warroom_tools::bench::retrieval::run(args).await,
            BenchCommand::Agents(args) => warroom_tools::bench::agents::run(args).await,
            BenchCommand::Insights(args) => warroom_tools::bench::insights::run(args).await,
        },
        Command::Eval { command } => match command {
            EvalCommand::Planted(args) => warroom_tools::eval::planted::run(settings, args).await,
            EvalCommand::Judge(args) => warroom_tools::eval::judge::run(settings, args).await,
        },
        Command::Insights { command } => insights::run(settings, command).await,
        Command::Agents { command } => agents::run(settings, command).await,
        Command::Ingest(args) => knowledge::ingest(settings, args).await,
        Command::Reindex => knowledge::reindex(settings).await,
        Command::Models { command } => models::run(settings, command).await,
    }
}
