//! Agents as the server knows them: users of kind `agent` with a persona,
//! template, brain, activity level, budgets and a status (active, paused,
//! retired); their saved memory; and the activity feed that wakes them.
//! Spawning creates the principals, assigns their retrieval scope and joins
//! them to their channels through the ordinary, authorized chat service.

pub mod adapter;
pub mod admin;
mod feed;
pub mod host;
mod memory;
mod spawn;

pub use feed::{ActivityFeed, ActivityReader, FeedItem};
use memory::MemoryWriter;

use std::collections::HashMap;
use std::sync::Arc;

use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warroom_agent_runtime::memory::Memory;
use warroom_agent_runtime::persona::{self, ActivityLevel, Persona, Template};
use warroom_agent_runtime::platform::{AgentRecord, Shard};

use crate::audit::Audit;
use crate::auth::Auth;
use crate::authz::{Actor, Authz, SystemAction};
use crate::chat::Chat;
use crate::config::AgentSettings;
use crate::directory::Directory;

use crate::ids::{AgentId, UserId};
use crate::knowledge::Knowledge;
use crate::principal::Principal;
use crate::realtime::Hub;
use crate::storage::entities::{agent, agent_memory, membership, user};
use warroom_types::Brain;

crate::error::service_error! {
    /// Why an agents operation failed.
    pub enum AgentsError / AgentsResult {
        /// A token was asked for an agent cleared beyond the asker.
        ClearanceExceeded => Forbidden, "clearance_exceeded";
    }
    from {
        /// Joining channels and reading the agent's messages.
        Chat(crate::chat::ChatError),
        /// Scopes and retrieval.
        Knowledge(crate::knowledge::KnowledgeError),
    }
}

/// An agent's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Paused,
    Retired,
}

impl Status {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Paused => "paused",
            Status::Retired => "retired",
        }
    }

    /// Parse a status from input.
    pub fn parse(raw: &str) -> AgentsResult<Self> {
        match raw {
            "active" => Ok(Status::Active),
            "paused" => Ok(Status::Paused),
            "retired" => Ok(Status::Retired),
            other => Err(AgentsError::invalid(format!(
                "status {other:?} must be active, paused or retired"
            ))),
        }
    }
}

/// A request to spawn agents from a template.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpawnRequest {
    /// A template name, e.g. `sales-analyst` (see `GET /api/v1/agents/templates`).
    pub template: String,
    /// How many agents (1-100000 per request).
    pub count: u32,
    /// The retrieval scope (name or id); default `dept-<department>`.
    pub scope: Option<String>,
    /// `extractive`, `local` or `openai`; default from the server's `[agents]` settings.
    pub brain: Option<Brain>,
    /// `low`, `medium` or `high`; default the template's.
    pub activity: Option<String>,
    /// Channels to join (names); default `war-room` and the department's channel.
    pub channels: Option<Vec<String>>,
    /// Budgets per agent per hour (0 or absent: the runtime default).
    pub tokens_per_hour: Option<u32>,
    pub turns_per_hour: Option<u32>,
}

/// An agent as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentView {
    pub id: String,
    pub handle: String,
    pub template: String,
    #[schema(value_type = Object)]
    pub persona: Persona,
    pub activity: String,
    pub brain: String,
    pub status: String,
    pub clearance: String,
    pub scope: Option<String>,
    pub tokens_per_hour: u32,
    pub turns_per_hour: u32,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// What the agent did so far (from its memory).
    #[schema(value_type = Object)]
    pub stats: Option<warroom_agent_runtime::memory::Stats>,
    pub last_turn: Option<u64>,
}

/// What a spawn produced.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpawnOutcome {
    pub spawned: usize,
    pub template: String,
    pub scope: String,
    pub channels: Vec<String>,
    /// The first few agents (all of them when fewer than 50).
    pub agents: Vec<AgentView>,
}

/// One page of agents for a runtime.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuntimePage {
    #[schema(value_type = Vec<Object>)]
    pub agents: Vec<AgentRecord>,
    /// Pass as `after` for the next page; absent on the last.
    pub next_after: Option<String>,
}

/// The agents service.
pub struct Agents {
    db: DatabaseConnection,
    settings: AgentSettings,
    chat: Chat,
    knowledge: Arc<Knowledge>,
    audit: Arc<Audit>,
    authz: Arc<Authz>,
    auth: Arc<Auth>,
    directory: Arc<Directory>,
    hub: Arc<Hub>,
    feed: ActivityFeed,
    memory: MemoryWriter,
    /// Templates added at run time (an evaluation corpus's departments);
    /// they take precedence over built-in ones of the same name.
    extra_templates: std::sync::RwLock<Vec<Template>>,
}

/// What [`Agents::new`] is built from.
pub struct AgentsParts {
    pub db: DatabaseConnection,
    pub settings: AgentSettings,
    pub chat: Chat,
    pub knowledge: Arc<Knowledge>,
    pub audit: Arc<Audit>,
    pub authz: Arc<Authz>,
    pub auth: Arc<Auth>,
    pub directory: Arc<Directory>,
    pub hub: Arc<Hub>,
    pub feed: ActivityFeed,
    pub gate: crate::storage::WriteGate,
}

fn parse_persona(raw: &str) -> Persona {
    serde_json::from_str(raw).unwrap_or_else(|_| Persona {
        name: "unknown".into(),
        department: String::new(),
        role: String::new(),
        seniority: String::new(),
        interests: vec![],
        voice: String::new(),
    })
}

fn view(
    a: &agent::Model,
    u: &user::Model,
    scope: Option<String>,
    memory: Option<&Memory>,
) -> AgentView {
    AgentView {
        id: u.id.clone(),
        handle: u.handle.clone(),
        template: a.template.clone(),
        persona: parse_persona(&a.persona),
        activity: a.activity.clone(),
        brain: a.brain.clone(),
        status: a.status.clone(),
        clearance: u.clearance.to_string(),
        scope,
        tokens_per_hour: a.tokens_per_hour as u32,
        turns_per_hour: a.turns_per_hour as u32,
        created_at: a.created_at,
        stats: memory.map(|m| m.stats.clone()),
        last_turn: memory.and_then(|m| m.last_turn),
    }
}

impl Agents {
    /// The service over `p.db`, publishing to `p.feed`.
    pub fn new(p: AgentsParts) -> Self {
        Self {
            memory: MemoryWriter::start(p.db.clone(), p.gate),
            db: p.db,
            settings: p.settings,
            chat: p.chat,
            knowledge: p.knowledge,
            audit: p.audit,
            authz: p.authz,
            auth: p.auth,
            directory: p.directory,
            hub: p.hub,
            feed: p.feed,
            extra_templates: Default::default(),
        }
    }

    /// The activity feed.
    pub fn feed(&self) -> &ActivityFeed {
        &self.feed
    }

    /// The templates agents can be spawned from.
    pub fn templates(&self) -> Vec<Template> {
        let extra = self.extra_templates.read().expect("templates lock").clone();
        let mut all: Vec<Template> = persona::builtin_templates()
            .into_iter()
            .filter(|t| !extra.iter().any(|e| e.name == t.name))
            .collect();
        all.extend(extra);
        all
    }

    /// A template by name.
    pub fn template(&self, name: &str) -> Option<Template> {
        self.templates().into_iter().find(|t| t.name == name)
    }

    /// Add (or replace) templates for this process.
    pub fn register_templates(&self, templates: Vec<Template>) {
        let mut extra = self.extra_templates.write().expect("templates lock");
        for t in templates {
            extra.retain(|e| e.name != t.name);
            extra.push(t);
        }
    }

    async fn scope_names(&self, ids: &[AgentId]) -> AgentsResult<HashMap<String, String>> {
        let ids: Vec<UserId> = ids.iter().map(AgentId::user).collect();
        Ok(self.knowledge.scope_names_of(&ids).await?)
    }

    /// Views of these agents, in order, with their stats.
    pub async fn views(&self, ids: &[AgentId]) -> AgentsResult<Vec<AgentView>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let raw: Vec<String> = ids.iter().map(String::from).collect();
        let agents: HashMap<String, agent::Model> = agent::Entity::find()
            .filter(agent::Column::UserId.is_in(raw.iter().cloned()))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|a| (a.user_id.clone(), a))
            .collect();
        let users: HashMap<String, user::Model> = user::Entity::find()
            .filter(user::Column::Id.is_in(raw.iter().cloned()))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|u| (u.id.clone(), u))
            .collect();
        let memories: HashMap<String, Memory> = agent_memory::Entity::find()
            .filter(agent_memory::Column::AgentId.is_in(raw.iter().cloned()))
            .all(&self.db)
            .await?
            .into_iter()
            .filter_map(|m| serde_json::from_str(&m.data).ok().map(|d| (m.agent_id, d)))
            .collect();
        let scopes = self.scope_names(ids).await?;
        Ok(ids
            .iter()
            .filter_map(|id| {
                let id = id.as_str();
                let (a, u) = (agents.get(id)?, users.get(id)?);
                Some(view(a, u, scopes.get(id).cloned(), memories.get(id)))
            })
            .collect())
    }

    /// A page of agents, newest first, optionally by status and template.
    pub async fn list(
        &self,
        actor: Actor<'_>,
        status: Option<&str>,
        template: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> AgentsResult<(Vec<AgentView>, u64)> {
        self.authz.permit(actor, SystemAction::AgentView)?;
        let mut q = agent::Entity::find();
        if let Some(s) = status {
            q = q.filter(agent::Column::Status.eq(Status::parse(s)?.as_str()));
        }
        if let Some(t) = template {
            q = q.filter(agent::Column::Template.eq(t));
        }
        let total = q.clone().count(&self.db).await?;
        let ids: Vec<AgentId> = q
            .order_by_desc(agent::Column::CreatedAt)
            .order_by_asc(agent::Column::UserId)
            .offset(offset)
            .limit(limit.clamp(1, 500))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|a| AgentId::from_trusted(a.user_id))
            .collect();
        Ok((self.views(&ids).await?, total))
    }

    /// One agent.
    pub async fn get(&self, actor: Actor<'_>, id: &AgentId) -> AgentsResult<AgentView> {
        self.authz.permit(actor, SystemAction::AgentView)?;
        self.view_of(id).await
    }

    async fn view_of(&self, id: &AgentId) -> AgentsResult<AgentView> {
        self.views(std::slice::from_ref(id))
            .await?
            .pop()
            .ok_or_else(|| AgentsError::not_found("agent"))
    }

    /// Pause, resume or retire an agent. Retiring deactivates its principal
    /// (it can no longer act, and its sockets close) and cannot be undone.
    pub async fn set_status(
        &self,
        actor: &Principal,
        id: &AgentId,
        status: Status,
    ) -> AgentsResult<AgentView> {
        self.authz
            .permit(Actor::Principal(actor), SystemAction::AgentManage)?;
        let row = agent::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .ok_or_else(|| AgentsError::not_found("agent"))?;
        if row.status == Status::Retired.as_str() && status != Status::Retired {
            return Err(AgentsError::conflict(
                "a retired agent cannot come back; spawn a new one",
            ));
        }
        let txn = crate::storage::begin_write(&self.db).await?;
        agent::Entity::update_many()
            .col_expr(
                agent::Column::Status,
                sea_orm::sea_query::Expr::value(status.as_str()),
            )
            .col_expr(
                agent::Column::UpdatedAt,
                sea_orm::sea_query::Expr::value(chrono::Utc::now()),
            )
            .filter(agent::Column::UserId.eq(id.as_str()))
            .exec(&txn)
            .await?;
        // The server enforces the status, not the worker: a paused or retired
        // agent's account is inactive, so its tokens, posts, retrievals and
        // sockets stop working at once (SECURITY-CASES 27); resuming
        // reactivates it.
        user::Entity::update_many()
            .col_expr(
                user::Column::Active,
                sea_orm::sea_query::Expr::value(status == Status::Active),
            )
            .filter(user::Column::Id.eq(id.as_str()))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        self.directory.invalidate(&id.user());
        if status != Status::Active {
            self.hub.close_user(
                &id.user(),
                crate::realtime::CloseReason {
                    code: crate::realtime::CLOSE_REVOKED,
                    reason: format!("agent {}", status.as_str()),
                },
            );
        }
        self.audit
            .record(
                Some(&actor.id),
                &format!("agent.{}", status.as_str()),
                id,
                "ok",
                serde_json::json!({}),
            )
            .await;
        self.view_of(id).await
    }

    /// Agents a runtime shard drives (active and paused), a page at a time, by id.
    pub async fn runtime_page(
        &self,
        actor: Actor<'_>,
        shard: Shard,
        after: Option<&AgentId>,
        limit: u64,
    ) -> AgentsResult<RuntimePage> {
        self.authz.permit(actor, SystemAction::AgentRun)?;
        let limit = limit.clamp(1, 10_000);
        let mut q = agent::Entity::find()
            .filter(agent::Column::Status.ne(Status::Retired.as_str()))
            .order_by_asc(agent::Column::UserId)
            .limit(limit);
        if let Some(a) = after {
            q = q.filter(agent::Column::UserId.gt(a.as_str()));
        }
        let rows = q.all(&self.db).await?;
        let next_after = (rows.len() as u64 == limit)
            .then(|| rows.last().map(|r| r.user_id.clone()))
            .flatten();
        let rows: Vec<agent::Model> = rows
            .into_iter()
            .filter(|r| shard.owns(&r.user_id))
            .collect();
        let ids: Vec<String> = rows.iter().map(|r| r.user_id.clone()).collect();
        let mut channels: HashMap<String, Vec<String>> = HashMap::new();
        let mut handles: HashMap<String, (String, String)> = HashMap::new();
        for chunk in ids.chunks(500) {
            for m in membership::Entity::find()
                .filter(membership::Column::UserId.is_in(chunk.iter().cloned()))
                .all(&self.db)
                .await?
            {
                channels.entry(m.user_id).or_default().push(m.channel_id);
            }
            for u in user::Entity::find()
                .filter(user::Column::Id.is_in(chunk.iter().cloned()))
                .all(&self.db)
                .await?
            {
                handles.insert(u.id, (u.handle, u.display_name));
            }
        }
        let agents = rows
            .into_iter()
            .filter_map(|r| {
                let (handle, name) = handles.remove(&r.user_id)?;
                Some(AgentRecord {
                    channels: channels.remove(&r.user_id).unwrap_or_default(),
                    activity: ActivityLevel::parse(&r.activity).unwrap_or(ActivityLevel::Low),
                    paused: r.status == Status::Paused.as_str(),
                    tokens_per_hour: r.tokens_per_hour as u32,
                    turns_per_hour: r.turns_per_hour as u32,
                    template: r.template,
                    brain: r.brain,
                    id: r.user_id,
                    handle,
                    name,
                })
            })
            .collect();
        Ok(RuntimePage { agents, next_after })
    }

    /// Whether `id` is an agent (retired or not).
    pub async fn exists(&self, id: &AgentId) -> AgentsResult<bool> {
        Ok(agent::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .is_some())
    }
}
