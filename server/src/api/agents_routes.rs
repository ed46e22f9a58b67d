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

use super::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::agents::Status;
use crate::agents::{AgentView, RuntimePage, SpawnOutcome, SpawnRequest};
use crate::api::error::{ApiError, ApiResult};
use crate::app::App;
use crate::authz::Actor;
use crate::chat::views::MessageView;
use crate::ids::AgentId;

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
    Ok(Json(app.agents.templates_for(Actor::Principal(&p))?))
}

/// Spawn agents from a template (admins).
#[utoipa::path(post, path = "/api/v1/agents", request_body = SpawnRequest, responses((status = 201, body = SpawnOutcome), (status = 400, description = "invalid request")), security(("bearer" = [])))]
pub async fn spawn_agents(
    State(app): State<App>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<SpawnRequest>,
) -> ApiResult<(StatusCode, Json<SpawnOutcome>)> {
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
    let (agents, total) = app
        .agents
        .list(
            Actor::Principal(&p),
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
    Ok(Json(app.agents.get(Actor::Principal(&p), &id).await?))
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
    let limit = q.limit.unwrap_or(50).clamp(1, app.settings.limits.max_page);
    Ok(Json(app.agents.messages(&p, &id, limit).await?))
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
    let shard = match &q.shard {
        Some(s) => Shard::parse(s).map_err(ApiError::invalid)?,
        None => Shard::ALL,
    };
    let after = q.after.as_deref().map(AgentId::parse).transpose()?;
    Ok(Json(
        app.agents
            .runtime_page(
                Actor::Principal(&p),
                shard,
                after.as_ref(),
                q.limit.unwrap_or(5000),
            )
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
    Ok(Json(app.agents.issue_token(&p, &id).await?))
}

/// An agent's saved memory (`null` when none).
#[utoipa::path(get, path = "/api/v1/agents/{id}/memory", responses((status = 200, body = Object)), security(("bearer" = [])))]
pub async fn get_memory(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<AgentId>,
) -> ApiResult<Json<Option<Memory>>> {
    Ok(Json(app.agents.memory_for(&p, &id).await?))
}

/// Replace an agent's memory.
#[utoipa::path(put, path = "/api/v1/agents/{id}/memory", request_body = Object, responses((status = 204, description = "saved")), security(("bearer" = [])))]
pub async fn put_memory(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<AgentId>,
    ApiJson(memory): ApiJson<Memory>,
) -> ApiResult<StatusCode> {
    app.agents.replace_memory(&p, &id, &memory).await?;
    Ok(StatusCode::NO_CONTENT)
}
