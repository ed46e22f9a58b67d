//! The `warroom` command line: serve, demo, users, migrate, audit, bench.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app;
use crate::config::Settings;

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
        command: UsersCommand,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Benchmarks (not tests): print product figures beside a reference.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create a user; the password is read from standard input.
    Create {
        #[arg(long)]
        handle: String,
        #[arg(long, default_value = "member")]
        role: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        department: Option<String>,
        /// Clearance label, e.g. `confidential:hr,finance` (default by role).
        #[arg(long)]
        clearance: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the audit log's hash chain.
    Verify,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// WebSocket fan-out and durable posting against a bare relay.
    Chat(crate::bench::ChatBenchArgs),
}

fn init_tracing(settings: &Settings) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| settings.log.clone())
        .unwrap_or_else(|| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_target(false)
        .try_init();
}

/// Parse arguments, run the command, map failures to an exit code.
pub fn main() -> ExitCode {
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
        Command::Serve => serve(settings, false).await,
        Command::Demo => serve(settings, true).await,
        Command::Migrate => {
            crate::storage::connect(&settings).await?;
            println!("migrations applied to {}", redact(&settings.database_url()));
            Ok(())
        }
        Command::Users {
            command:
                UsersCommand::Create {
                    handle,
                    role,
                    display_name,
                    department,
                    clearance,
                    password_stdin,
                },
        } => {
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                Some(line.trim_end_matches(['\r', '\n']).to_string())
            } else {
                None
            };
            let db = crate::storage::connect(&settings).await?;
            let req = crate::api::users_create_request(
                handle,
                role,
                display_name,
                department,
                clearance,
                password,
            );
            let new = crate::api::new_user_from(req)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            let dir = crate::directory::Directory::new(db.clone());
            let row = dir
                .create(new)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            crate::audit::Audit::new(db)
                .record(
                    None,
                    "user.create",
                    &format!("user:{}", row.id),
                    "ok",
                    serde_json::json!({"handle": row.handle, "role": row.role, "via": "cli"}),
                )
                .await;
            println!(
                "created {} ({}, clearance {}) id {}",
                row.handle, row.role, row.clearance, row.id
            );
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            let db = crate::storage::connect(&settings).await?;
            match crate::audit::verify_chain(&db).await? {
                Ok(n) => {
                    println!("audit chain intact: {n} records");
                    Ok(())
                }
                Err(id) => anyhow::bail!("audit chain broken at record {id}: the log was altered"),
            }
        }
        Command::Bench {
            command: BenchCommand::Chat(args),
        } => crate::bench::chat(args).await,
    }
}

fn redact(url: &str) -> String {
    match url.split_once('@') {
        Some((left, right)) if left.contains("://") => {
            let scheme = left.split("://").next().unwrap_or("");
            format!("{scheme}://***@{right}")
        }
        _ => url.to_string(),
    }
}

async fn serve(settings: Settings, demo: bool) -> anyhow::Result<()> {
    let data_dir = settings.storage.data_dir.clone();
    let running = app::start(settings)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let url = format!("http://{}", running.addr);
    if demo {
        let login = crate::api::ensure_first_admin(&running.app, &data_dir).await?;
        println!();
        println!("  Warroom is running at {url}");
        println!("  API reference:        {url}/api/v1/openapi.json");
        println!("  {login}");
        println!(
            "  Log in:  curl -s {url}/api/v1/auth/login -H 'content-type: application/json' \\"
        );
        println!("             -d '{{\"handle\":\"admin\",\"password\":\"<password above>\"}}'");
        println!("  Stop with Ctrl-C.");
        println!();
    } else {
        println!("warroom listening on {url}");
    }
    shutdown_signal().await?;
    tracing::info!("shutting down");
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
