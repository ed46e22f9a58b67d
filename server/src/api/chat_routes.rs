//! Channels, messages, threads, reactions, mentions, unread state and search.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::api::error::{ApiError, ApiResult};
use crate::app::App;
use crate::chat::{
    views::AuthorView, views::ChannelView, views::MessageView, CreateChannel, ListQuery,
    PostMessage,
};
use crate::directory::parse_handle;
use crate::ids::{ChannelId, MessageId, Seq, UserId};
use crate::principal::Principal;

/// Who to invite or message: a user id or a handle.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserRef {
    pub user_id: Option<String>,
    pub handle: Option<String>,
}

/// A channel change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateChannel {
    pub topic: String,
}

/// New message text.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditMessage {
    pub body: String,
}

/// Read position.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadMark {
    pub seq: i64,
}

/// Search parameters.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct SearchQuery {
    pub q: String,
    pub limit: Option<u64>,
}

/// Page size.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct LimitQuery {
    pub limit: Option<u64>,
}

pub fn routes() -> Router<App> {
    Router::new()
        .route("/channels", get(list_channels).post(create_channel))
        .route("/channels/{id}", get(get_channel).patch(update_channel))
        .route("/channels/{id}/join", post(join))
        .route("/channels/{id}/leave", post(leave))
        .route("/channels/{id}/invite", post(invite))
        .route("/channels/{id}/archive", post(archive))
        .route("/channels/{id}/members", get(members))
        .route("/channels/{id}/presence", get(presence))
        .route("/channels/{id}/read", post(mark_read))
        .route(
            "/channels/{id}/messages",
            get(list_messages).post(post_message),
        )
        .route("/dms", post(open_dm))
        .route(
            "/messages/{id}",
            get(get_message).patch(edit_message).delete(delete_message),
        )
        .route("/messages/{id}/thread", get(thread))
        .route(
            "/messages/{id}/reactions/{emoji}",
            put(add_reaction).delete(remove_reaction),
        )
        .route("/mentions", get(mentions))
        .route("/search", get(search))
}

async fn resolve_user(app: &App, r: &UserRef) -> ApiResult<std::sync::Arc<Principal>> {
    let found = match (&r.user_id, &r.handle) {
        (Some(id), None) => app.directory.get(&UserId::parse(id)?).await?,
        (None, Some(h)) => {
            let h = parse_handle(h)?;
            match app.directory.row_by_handle(&h).await? {
                Some(row) => app.directory.get(&UserId::from_trusted(row.id)).await?,
                None => None,
            }
        }
        _ => return Err(ApiError::invalid("give exactly one of user_id or handle")),
    };
    found.ok_or_else(|| ApiError::not_found("user"))
}

/// Channels the caller belongs to or may browse, with unread counts.
#[utoipa::path(get, path = "/api/v1/channels", responses((status = 200, body = [ChannelView])), security(("bearer" = [])))]
pub async fn list_channels(
    State(app): State<App>,
    Caller(p): Caller,
) -> ApiResult<Json<Vec<ChannelView>>> {
    Ok(Json(app.chat.list_channels(&p).await?))
}

/// Create a public or private channel.
#[utoipa::path(post, path = "/api/v1/channels", request_body = CreateChannel,
    responses((status = 201, body = ChannelView), (status = 400, body = crate::api::error::ErrorBody), (status = 403, body = crate::api::error::ErrorBody), (status = 409, body = crate::api::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_channel(
    State(app): State<App>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<CreateChannel>,
) -> ApiResult<(StatusCode, Json<ChannelView>)> {
    Ok((
        StatusCode::CREATED,
        Json(app.chat.create_channel(&p, req).await?),
    ))
}

/// One channel.
#[utoipa::path(get, path = "/api/v1/channels/{id}", responses((status = 200, body = ChannelView), (status = 404, body = crate::api::error::ErrorBody)), security(("bearer" = [])))]
pub async fn get_channel(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<ChannelId>,
) -> ApiResult<Json<ChannelView>> {
    Ok(Json(app.chat.get_channel(&p, &id).await?))
}

/// Change a channel's topic (owner or admin).
#[utoipa::path(patch, path = "/api/v1/channels/{id}", request_body = UpdateChannel, responses((status = 200, body = ChannelView)), security(("bearer" = [])))]
pub async fn update_channel(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<ChannelId>,
    ApiJson(req): ApiJson<UpdateChannel>,
) -> ApiResult<Json<ChannelView>> {
    Ok(Json(app.chat.set_topic(&p, &id, &req.topic).await?))
}

/// Join a channel.
#[utoipa::path(post, path = "/api/v1/channels/{id}/join", responses((status = 200, body = ChannelView), (status = 403, body = crate::api::error::ErrorBody)), security(("bearer" = [])))]
pub async fn join(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<ChannelId>,
) -> ApiResult<Json<ChannelView>> {
    Ok(Json(app.chat.join(&p, &id).await?))
}

/// Leave a channel.
#[utoipa::path(post, path = "/api/v1/channels/{id}/leave", responses((status = 204)), security(("bearer" = [])))]
pub async fn leave(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<ChannelId>,
) -> ApiResult<StatusCode> {
    app.chat.leave(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a user to a channel; refused if they are not cleared for its label.
#[utoipa::path(post, path = "/api/v1/channels/{id}/invite", request_body = UserRef, responses((status = 204), (status = 403, body = crate::api::error::ErrorBody)), security(("bearer" = [])))]
pub async fn invite(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<ChannelId>,
    ApiJson(req): ApiJson<UserRef>,
) -> ApiResult<StatusCode> {
    let invitee = resolve_user(&app, &req).await?;
    app.chat.invite(&p, &id, &invitee).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Archive a channel (owner or admin).
#[utoipa::path(post, path = "/api/v1/channels/{id}/archive", responses((status = 204)), security(("bearer" = [])))]
pub async fn archive(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<ChannelId>,
) -> ApiResult<StatusCode> {
    app.chat.archive(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Members of a channel.
#[utoipa::path(get, path = "/api/v1/channels/{id}/members", responses((status = 200, body = [AuthorView])), security(("bearer" = [])))]
pub async fn members(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<ChannelId>,
) -> ApiResult<Json<Vec<AuthorView>>> {
    Ok(Json(app.chat.members(&p, &id).await?))
}

/// Who of a channel's members is connected now.
#[derive(Serialize, ToSchema)]
pub struct Presence {
    /// Ids of members with an open WebSocket.
    pub online: Vec<String>,
}

/// Members of a channel who are connected now (presence), for those who may read it.
#[utoipa::path(get, path = "/api/v1/channels/{id}/presence", responses((status = 200, body = Presence)), security(("bearer" = [])))]
pub async fn presence(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<ChannelId>,
) -> ApiResult<Json<Presence>> {
    let ids: Vec<UserId> = app
        .chat
        .members(&p, &id)
        .await?
        .into_iter()
        .map(|m| UserId::from_trusted(m.id))
        .collect::<Vec<UserId>>();
    Ok(Json(Presence {
        online: app.hub.online(&ids).into_iter().map(String::from).collect(),
    }))
}

/// Mark the channel read up to `seq`.
#[utoipa::path(post, path = "/api/v1/channels/{id}/read", request_body = ReadMark, responses((status = 200, body = ReadMark)), security(("bearer" = [])))]
pub async fn mark_read(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<ChannelId>,
    ApiJson(req): ApiJson<ReadMark>,
) -> ApiResult<Json<ReadMark>> {
    let seq = app.chat.mark_read(&p, &id, Seq(req.seq)).await?;
    Ok(Json(ReadMark { seq: seq.get() }))
}

/// Open a direct conversation (201 when new, 200 when it existed).
#[utoipa::path(post, path = "/api/v1/dms", request_body = UserRef, responses((status = 201, body = ChannelView), (status = 200, body = ChannelView)), security(("bearer" = [])))]
pub async fn open_dm(
    State(app): State<App>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<UserRef>,
) -> ApiResult<(StatusCode, Json<ChannelView>)> {
    let peer = resolve_user(&app, &req).await?;
    let (v, created) = app.chat.open_direct(&p, &peer).await?;
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(v),
    ))
}

/// Post a message (201; 200 when an idempotency key repeats an earlier post).
#[utoipa::path(post, path = "/api/v1/channels/{id}/messages", request_body = PostMessage,
    responses((status = 201, body = MessageView), (status = 200, body = MessageView), (status = 403, body = crate::api::error::ErrorBody), (status = 429, body = crate::api::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn post_message(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<ChannelId>,
    ApiJson(req): ApiJson<PostMessage>,
) -> ApiResult<(StatusCode, Json<MessageView>)> {
    let (v, created) = app.chat.post(&p, &id, req).await?;
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(v),
    ))
}

/// A page of messages, oldest first.
#[utoipa::path(get, path = "/api/v1/channels/{id}/messages", params(ListQuery), responses((status = 200, body = [MessageView])), security(("bearer" = [])))]
pub async fn list_messages(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<ChannelId>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<MessageView>>> {
    Ok(Json(app.chat.list_messages(&p, &id, q).await?))
}

/// One message.
#[utoipa::path(get, path = "/api/v1/messages/{id}", responses((status = 200, body = MessageView), (status = 404, body = crate::api::error::ErrorBody)), security(("bearer" = [])))]
pub async fn get_message(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<MessageId>,
) -> ApiResult<Json<MessageView>> {
    Ok(Json(app.chat.get_message(&p, &id).await?))
}

/// Edit one's own message.
#[utoipa::path(patch, path = "/api/v1/messages/{id}", request_body = EditMessage, responses((status = 200, body = MessageView)), security(("bearer" = [])))]
pub async fn edit_message(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<MessageId>,
    ApiJson(req): ApiJson<EditMessage>,
) -> ApiResult<Json<MessageView>> {
    Ok(Json(app.chat.edit(&p, &id, &req.body).await?))
}

/// Delete a message (author or admin).
#[utoipa::path(delete, path = "/api/v1/messages/{id}", responses((status = 204)), security(("bearer" = [])))]
pub async fn delete_message(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<MessageId>,
) -> ApiResult<StatusCode> {
    app.chat.delete(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A thread: root first, then replies.
#[utoipa::path(get, path = "/api/v1/messages/{id}/thread", responses((status = 200, body = [MessageView])), security(("bearer" = [])))]
pub async fn thread(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<MessageId>,
) -> ApiResult<Json<Vec<MessageView>>> {
    Ok(Json(app.chat.thread(&p, &id).await?))
}

/// React to a message.
#[utoipa::path(put, path = "/api/v1/messages/{id}/reactions/{emoji}", responses((status = 204)), security(("bearer" = [])))]
pub async fn add_reaction(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath((id, emoji)): ApiPath<(MessageId, String)>,
) -> ApiResult<StatusCode> {
    app.chat.react(&p, &id, &emoji, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove one's reaction.
#[utoipa::path(delete, path = "/api/v1/messages/{id}/reactions/{emoji}", responses((status = 204)), security(("bearer" = [])))]
pub async fn remove_reaction(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath((id, emoji)): ApiPath<(MessageId, String)>,
) -> ApiResult<StatusCode> {
    app.chat.react(&p, &id, &emoji, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Messages mentioning the caller.
#[utoipa::path(get, path = "/api/v1/mentions", params(LimitQuery), responses((status = 200, body = [MessageView])), security(("bearer" = [])))]
pub async fn mentions(
    State(app): State<App>,
    Caller(p): Caller,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> ApiResult<Json<Vec<MessageView>>> {
    Ok(Json(app.chat.mentions(&p, q.limit.unwrap_or(50)).await?))
}

/// Full-text search over messages the caller may read.
#[utoipa::path(get, path = "/api/v1/search", params(SearchQuery), responses((status = 200, body = [MessageView])), security(("bearer" = [])))]
pub async fn search(
    State(app): State<App>,
    Caller(p): Caller,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> ApiResult<Json<Vec<MessageView>>> {
    Ok(Json(
        app.chat.search(&p, &q.q, q.limit.unwrap_or(20)).await?,
    ))
}
