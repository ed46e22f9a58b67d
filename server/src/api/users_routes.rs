//! Users (self, directory, administration), the audit log and policy reload.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::api::error::ApiResult;
use crate::app::App;
use crate::principal::Principal;
pub use crate::users::{CreateUser, UpdateUser};

/// A user as the API shows them.
#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub handle: String,
    pub display_name: String,
    pub kind: String,
    pub role: String,
    pub department: Option<String>,
    pub clearance: String,
    pub active: bool,
}

impl From<&Principal> for UserView {
    fn from(p: &Principal) -> Self {
        Self {
            id: p.id.to_string(),
            handle: p.handle.clone(),
            display_name: p.display_name.clone(),
            kind: p.kind.as_str().into(),
            role: p.role.as_str().into(),
            department: p.department.clone(),
            clearance: p.clearance.to_string(),
            active: p.active,
        }
    }
}

/// An audit record.
#[derive(Serialize, ToSchema)]
pub struct AuditView {
    pub id: i64,
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor_id: Option<String>,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: serde_json::Value,
}

/// Page size.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    pub limit: Option<u64>,
}

pub fn routes() -> Router<App> {
    Router::new()
        .route("/me", get(me))
        .route("/users", get(list_users).post(create_user))
        .route("/users/{id}", patch(update_user))
        .route("/audit", get(audit))
        .route("/admin/policies/reload", post(reload_policies))
}

/// The caller.
#[utoipa::path(get, path = "/api/v1/me", responses((status = 200, body = UserView)), security(("bearer" = [])))]
pub async fn me(Caller(p): Caller) -> Json<UserView> {
    Json(UserView::from(p.as_ref()))
}

/// The user directory (not for guests).
#[utoipa::path(get, path = "/api/v1/users", responses((status = 200, body = [UserView])), security(("bearer" = [])))]
pub async fn list_users(
    State(app): State<App>,
    Caller(p): Caller,
) -> ApiResult<Json<Vec<UserView>>> {
    let users = app.users.list(&p).await?;
    Ok(Json(users.iter().map(UserView::from).collect()))
}

/// Create a user (admin).
#[utoipa::path(post, path = "/api/v1/users", request_body = CreateUser, responses((status = 201, body = UserView), (status = 409, body = crate::api::error::ErrorBody)), security(("bearer" = [])))]
pub async fn create_user(
    State(app): State<App>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<CreateUser>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    let created = app.users.create(&p, req).await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&created))))
}

/// Change a user (admin). Deactivation revokes refresh tokens and closes sockets.
#[utoipa::path(patch, path = "/api/v1/users/{id}", request_body = UpdateUser, responses((status = 200, body = UserView)), security(("bearer" = [])))]
pub async fn update_user(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<crate::ids::UserId>,
    ApiJson(req): ApiJson<UpdateUser>,
) -> ApiResult<Json<UserView>> {
    let updated = app.users.update(&p, &id, req).await?;
    Ok(Json(UserView::from(&updated)))
}

/// The newest audit records (admin).
#[utoipa::path(get, path = "/api/v1/audit", params(AuditQuery), responses((status = 200, body = [AuditView])), security(("bearer" = [])))]
pub async fn audit(
    State(app): State<App>,
    Caller(p): Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Vec<AuditView>>> {
    let rows = app
        .users
        .audit_log(&p, q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| AuditView {
                id: r.id,
                at: r.at,
                actor_id: r.actor_id,
                action: r.action,
                target: r.target,
                outcome: r.outcome,
                detail: serde_json::from_str(&r.detail).unwrap_or(serde_json::Value::Null),
            })
            .collect(),
    ))
}

/// Result of a policy reload.
#[derive(Serialize, ToSchema)]
pub struct ReloadResult {
    pub policies: usize,
}

/// Re-read and validate the policy directory; on error the active set stays.
#[utoipa::path(post, path = "/api/v1/admin/policies/reload", responses((status = 200, body = ReloadResult), (status = 422, body = crate::api::error::ErrorBody)), security(("bearer" = [])))]
pub async fn reload_policies(
    State(app): State<App>,
    Caller(p): Caller,
) -> ApiResult<Json<ReloadResult>> {
    let policies = app.users.reload_policies(&p).await?;
    Ok(Json(ReloadResult { policies }))
}
