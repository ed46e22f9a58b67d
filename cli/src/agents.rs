//! `warroom agents`.

use clap::Subcommand;
use warroom::agents::Status;
use warroom::authz::Actor;
use warroom::config::Settings;
use warroom::ids::AgentId;
use warroom::ops::{admin, api, offline_app};

#[derive(Subcommand)]
pub enum AgentsCommand {
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
        brain: Option<warroom::choice::Brain>,
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

/// An agent id from an id or a handle.
async fn agent_id(app: &warroom::app::App, raw: &str) -> anyhow::Result<AgentId> {
    if let Some(row) = app.directory.row_by_handle(raw).await.map_err(api)? {
        return Ok(AgentId::from_trusted(row.id));
    }
    AgentId::parse(raw)
        .map_err(|e| anyhow::anyhow!("{raw:?} is neither an agent handle nor an id ({e})"))
}

pub async fn run(settings: Settings, command: AgentsCommand) -> anyhow::Result<()> {
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
            let req = warroom::agents::SpawnRequest {
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
                .spawn(&p, req, 1_000_000, &|done, _| bar.set_position(done as u64))
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
                .list(
                    Actor::Server,
                    status.as_deref(),
                    template.as_deref(),
                    0,
                    limit,
                )
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
            let v = app.agents.get(Actor::Server, &id).await.map_err(api)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        AgentsCommand::Pause { agent, actor } => {
            status(&app, &agent, &actor, Status::Paused).await?
        }
        AgentsCommand::Resume { agent, actor } => {
            status(&app, &agent, &actor, Status::Active).await?
        }
        AgentsCommand::Retire { agent, actor } => {
            status(&app, &agent, &actor, Status::Retired).await?
        }
    }
    app.agents.flush_memory().await;
    Ok(())
}

async fn status(
    app: &warroom::app::App,
    agent: &str,
    actor: &str,
    to: Status,
) -> anyhow::Result<()> {
    let p = admin(app, actor).await?;
    let id = agent_id(app, agent).await?;
    let v = app.agents.set_status(&p, &id, to).await.map_err(api)?;
    println!("{} is {}", v.handle, v.status);
    Ok(())
}
