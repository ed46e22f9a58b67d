//! Agents over HTTP: templates, spawn, list, pause/resume/retire, what each
//! agent did; and what workers need: the shard's agents, per-agent access
//! tokens, and agent memory.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warroom_agent_runtime::memory::Memory;
use warroom_agent_runtime::platform::Shard;
use warroom_types::wire::AgentToken;

use super::users_routes::require_system;
use super::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::agents::Status;
use crate::agents::{AgentView, RuntimePage, SpawnOutcome, SpawnRequest};
use crate::api::error::{ApiError, ApiResult};
use crate::app::App;
use crate::authz::SystemAction;
use crate::chat::views::MessageView;
use crate::ids::AgentId;
use crate::principal::UserKind;

pub fn routes() -> Router<App> {
    Router::new()
        .route("/agents", get(list_agents).post(spawn_agents))
        .route("/agents/templates", get(templates))
        .route("/agents/runtime", get(runtime_agents))
        .route("/agents/{id}", get(get_agent))
        .route("/agents/{id}/status", put(set_status))
        .route("/agents/{id}/messages", get(agent_messages))
        .route("/agents/{id}/token", post(agent_token))
        .route("/agents/{id}/memory", get(get_memory).put(put_memory))
}

/// Templates agents are spawned from.
#[utoipa::path(get, path = "/api/v1/agents/templates", responses((status = 200, body = Vec<Object>)), security(("bearer" = [])))]
pub async fn templates(
    State(app): State<App>,
    Caller(p): Caller,
) -> ApiResult<Json<Vec<warroom_agent_runtime::persona::Template>>> {
    require_system(&app, &p, SystemAction::AgentView)?;
    Ok(Json(app.agents.templates()))
}

/// Spawn agents from a template (admins).
#[utoipa::path(post, path = "/api/v1/agents", request_body = SpawnRequest, responses((status = 201, body = SpawnOutcome), (status = 400, description = "invalid request")), security(("bearer" = [])))]
pub async fn spawn_agents(
    State(app): State<App>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<SpawnRequest>,
) -> ApiResult<(StatusCode, Json<SpawnOutcome>)> {
    require_system(&app, &p, SystemAction::AgentManage)?;
    let max = app.settings.agents.max_spawn;
    let out = app.agents.spawn(&p, req, max, &|_, _| {}).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// Which agents to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListAgents {
    /// `active`, `paused` or `retired`.
    pub status: Option<String>,
    pub template: Option<String>,
    pub offset: Option<u64>,
    /// Page size (default 100, at most 500).
    pub limit: Option<u64>,
}

/// A page of agents.
#[derive(Serialize, ToSchema)]
pub struct AgentList {
    pub agents: Vec<AgentView>,
    pub total: u64,
}

/// List agents (admins and leaders).
#[utoipa::path(get, path = "/api/v1/agents", params(ListAgents), responses((status = 200, body = AgentList)), security(("bearer" = [])))]
pub async fn list_agents(
    State(app): State<App>,
    Caller(p): Caller,
    ApiQuery(q): ApiQuery<ListAgents>,
) -> ApiResult<Json<AgentList>> {
    require_system(&app, &p, SystemAction::AgentView)?;
    let (agents, total) = app
        .agents
        .list(
            q.status.as_deref(),
            q.template.as_deref(),
            q.offset.unwrap_or(0),
            q.limit.unwrap_or(100),
        )
        .await?;
    Ok(Json(AgentList { agents, total }))
}

/// One agent, with its counters.
#[utoipa::path(get, path = "/api/v1/agents/{id}", responses((status = 200, body = AgentView), (status = 404, description = "no such agent")), security(("bearer" = [])))]
pub async fn get_agent(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<AgentId>,
) -> ApiResult<Json<AgentView>> {
    require_system(&app, &p, SystemAction::AgentView)?;
    Ok(Json(app.agents.get(&id).await?))
}

/// A status change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    /// `active` (resume), `paused` or `retired` (final).
    pub status: String,
}

/// Pause, resume or retire an agent (admins).
#[utoipa::path(put, path = "/api/v1/agents/{id}/status", request_body = StatusChange, responses((status = 200, body = AgentView), (status = 409, description = "retired agents stay retired")), security(("bearer" = [])))]
pub async fn set_status(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<AgentId>,
    ApiJson(req): ApiJson<StatusChange>,
) -> ApiResult<Json<AgentView>> {
    require_system(&app, &p, SystemAction::AgentManage)?;
    Ok(Json(
        app.agents
            .set_status(&p, &id, Status::parse(&req.status)?)
            .await?,
    ))
}

/// Paging through an agent's messages.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AgentMessagesQuery {
    /// Page size (default 50).
    pub limit: Option<u64>,
}

/// What an agent posted lately, as far as the caller may read it.
#[utoipa::path(get, path = "/api/v1/agents/{id}/messages", params(AgentMessagesQuery), responses((status = 200, body = Vec<MessageView>)), security(("bearer" = [])))]
pub async fn agent_messages(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<AgentId>,
    ApiQuery(q): ApiQuery<AgentMessagesQuery>,
) -> ApiResult<Json<Vec<MessageView>>> {
    require_system(&app, &p, SystemAction::AgentView)?;
    let limit = q.limit.unwrap_or(50).clamp(1, app.settings.limits.max_page);
    Ok(Json(app.chat.by_author(&p, &id.user(), limit).await?))
}

/// Which agents a worker asks for.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RuntimeQuery {
    /// `i/n`: agents whose id hashes to i modulo n (default `0/1`, all).
    pub shard: Option<String>,
    /// The last id of the previous page.
    pub after: Option<String>,
    /// Page size (default 5000, at most 10000).
    pub limit: Option<u64>,
}

/// The agents a worker shard runs (admins and worker accounts).
#[utoipa::path(get, path = "/api/v1/agents/runtime", params(RuntimeQuery), responses((status = 200, body = RuntimePage)), security(("bearer" = [])))]
pub async fn runtime_agents(
    State(app): State<App>,
    Caller(p): Caller,
    ApiQuery(q): ApiQuery<RuntimeQuery>,
) -> ApiResult<Json<RuntimePage>> {
    require_system(&app, &p, SystemAction::AgentRun)?;
    let shard = match &q.shard {
        Some(s) => Shard::parse(s).map_err(ApiError::invalid)?,
        None => Shard::ALL,
    };
    let after = q.after.as_deref().map(AgentId::parse).transpose()?;
    Ok(Json(
        app.agents
            .runtime_page(shard, after.as_ref(), q.limit.unwrap_or(5000))
            .await?,
    ))
}

/// Issue an access token for an active agent, for a worker to act as it (admins and
/// worker accounts, for agents within their clearance).
#[utoipa::path(post, path = "/api/v1/agents/{id}/token", responses((status = 200, body = AgentToken), (status = 404, description = "no such active agent")), security(("bearer" = [])))]
pub async fn agent_token(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<AgentId>,
) -> ApiResult<Json<AgentToken>> {
    require_system(&app, &p, SystemAction::AgentRun)?;
    let agent = app
        .directory
        .get(&id)
        .await?
        .filter(|a| a.kind == UserKind::Agent && a.active)
        .ok_or_else(|| ApiError::not_found("active agent"))?;
    // Nobody acts through an agent with more than they are cleared for.
    if !agent.clearance.within(&p.clearance) {
        app.audit
            .record(
                Some(&p.id),
                "agent.token",
                &agent.id,
                "denied",
                serde_json::json!({"reason": "clearance_exceeded", "agent_clearance": agent.clearance.to_string()}),
            )
            .await;
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "clearance_exceeded",
            format!(
                "agent {} is cleared for {}, beyond your clearance {}: a token must be issued by someone cleared for it",
                agent.handle, agent.clearance, p.clearance
            ),
        ));
    }
    app.audit
        .record(
            Some(&p.id),
            "agent.token",
            &agent.id,
            "ok",
            serde_json::json!({"agent_clearance": agent.clearance.to_string()}),
        )
        .await;
    Ok(Json(AgentToken {
        access_token: app.auth.issue_agent_access(&agent.id, &p.id),
        expires_in: app.auth.access_ttl(),
    }))
}

/// The agent itself, or an admin, may read and write its memory.
fn require_self_or_admin(
    app: &App,
    p: &crate::principal::Principal,
    id: &AgentId,
) -> ApiResult<()> {
    if p.id == *id && p.kind == UserKind::Agent {
        return Ok(());
    }
    require_system(app, p, SystemAction::AgentManage)
}

/// An agent's saved memory (`null` when none).
#[utoipa::path(get, path = "/api/v1/agents/{id}/memory", responses((status = 200, body = Object)), security(("bearer" = [])))]
pub async fn get_memory(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<AgentId>,
) -> ApiResult<Json<Option<Memory>>> {
    require_self_or_admin(&app, &p, &id)?;
    let memory = app.agents.memory(&id).await?;
    if p.id == id {
        return Ok(Json(memory));
    }
    let agent_clearance = app
        .directory
        .get(&id)
        .await?
        .map(|a| a.clearance.clone())
        .ok_or_else(|| ApiError::not_found("agent"))?;
    let Some(memory) = memory else {
        return Ok(Json(None));
    };
    let memory = app.agents.labelled_memory(memory, &agent_clearance).await?;
    Ok(Json(Some(redact_memory(
        memory,
        &p.clearance,
        &agent_clearance,
    ))))
}

/// What of an agent's memory a reader other than the agent may see: notes
/// and the summary only within the reader's clearance (a summary of unknown
/// label counts as the agent's clearance), never the sentence keys.
fn redact_memory(
    mut m: Memory,
    reader: &crate::label::Label,
    agent_clearance: &crate::label::Label,
) -> Memory {
    for n in &mut m.recent {
        if !n.label.within(reader) {
            n.text = REDACTED.into();
            n.author = REDACTED.into();
            n.channel_id = REDACTED.into();
            n.message_id = REDACTED.into();
        }
    }
    let summary_label = m.summary_label.as_ref().unwrap_or(agent_clearance);
    if !m.summary.is_empty() && !summary_label.within(reader) {
        m.summary = REDACTED.into();
    }
    m.said.clear();
    m
}

/// What replaces memory a reader is not cleared for.
const REDACTED: &str = "[redacted: above your clearance]";

/// Replace an agent's memory.
#[utoipa::path(put, path = "/api/v1/agents/{id}/memory", request_body = Object, responses((status = 204, description = "saved")), security(("bearer" = [])))]
pub async fn put_memory(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<AgentId>,
    ApiJson(memory): ApiJson<Memory>,
) -> ApiResult<StatusCode> {
    require_self_or_admin(&app, &p, &id)?;
    if !app.agents.exists(&id).await? {
        return Err(ApiError::not_found("agent"));
    }
    app.agents.save_memory(&id, &memory).await?;
    Ok(StatusCode::NO_CONTENT)
}
