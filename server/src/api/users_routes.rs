//! Users (self, directory, administration), the audit log and policy reload.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use sea_orm::{ActiveModelTrait, EntityTrait, QueryOrder, QuerySelect, Set};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{check_id, ApiJson, ApiQuery, Caller};
use crate::app::App;
use crate::auth::check_password_strength;
use crate::authz::SystemAction;
use crate::chat::parse_label;
use crate::directory::{parse_handle, NewUser};
use crate::error::{ApiError, ApiResult};
use crate::principal::{Principal, Role, UserKind};
use crate::realtime::{CloseReason, CLOSE_REVOKED};
use crate::storage::entities::user;

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
            id: p.id.clone(),
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

/// Request to create a user (admin).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub handle: String,
    pub display_name: Option<String>,
    pub role: String,
    /// `human` (default) or `agent`.
    pub kind: Option<String>,
    pub department: Option<String>,
    /// Clearance label; default by role.
    pub clearance: Option<String>,
    /// Required for humans; at least 12 characters.
    pub password: Option<String>,
}

/// Changes to a user (admin).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    pub active: Option<bool>,
    pub role: Option<String>,
    pub clearance: Option<String>,
    pub department: Option<String>,
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

pub(crate) fn require_system(app: &App, p: &Principal, action: SystemAction) -> ApiResult<()> {
    if app.authz.system(p, action) {
        Ok(())
    } else {
        Err(ApiError::forbidden("your role does not allow this"))
    }
}

/// Default clearance for a role when none is given.
pub fn default_clearance(role: Role) -> &'static str {
    match role {
        Role::Admin => "restricted",
        Role::Leader => "confidential",
        Role::Member | Role::Agent | Role::Worker => "internal",
        Role::Guest => "public",
    }
}

/// Validate a create-user request into a [`NewUser`] (hashing the password).
pub async fn new_user(req: CreateUser) -> ApiResult<NewUser> {
    let handle = parse_handle(&req.handle)?;
    let role: Role = req.role.parse().map_err(ApiError::invalid)?;
    let kind: UserKind = req
        .kind
        .as_deref()
        .unwrap_or("human")
        .parse()
        .map_err(ApiError::invalid)?;
    if (kind == UserKind::Agent) != (role == Role::Agent) {
        return Err(ApiError::invalid(
            "agents have kind agent and role agent; humans never have role agent",
        ));
    }
    let clearance = parse_label(req.clearance.as_deref().unwrap_or(default_clearance(role)))?;
    let department = req
        .department
        .as_deref()
        .map(parse_department)
        .transpose()?;
    let display_name = req.display_name.unwrap_or_else(|| handle.clone());
    if display_name.trim().is_empty() || display_name.chars().count() > 80 {
        return Err(ApiError::invalid("display_name must be 1-80 characters"));
    }
    let password_hash = match (kind, req.password) {
        (_, Some(pw)) => {
            check_password_strength(&pw).map_err(ApiError::invalid)?;
            Some(
                tokio::task::spawn_blocking(move || crate::auth::hash_password(&pw))
                    .await
                    .map_err(ApiError::internal)?,
            )
        }
        (UserKind::Human, None) => {
            return Err(ApiError::invalid("a password is required for human users"))
        }
        (UserKind::Agent, None) => None,
    };
    Ok(NewUser {
        handle,
        display_name: display_name.trim().to_string(),
        kind,
        role,
        department,
        clearance,
        password_hash,
    })
}

/// Check a department name: 1-32 characters a-z, 0-9, '-' or '_' (lower-cased).
pub fn parse_department(raw: &str) -> ApiResult<String> {
    let d = raw.trim().to_ascii_lowercase();
    let ok = (1..=32).contains(&d.len())
        && d.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(d)
    } else {
        Err(ApiError::invalid(
            "department must be 1-32 characters a-z, 0-9, '-' or '_'",
        ))
    }
}

/// An admin grants only clearance they hold themselves (SECURITY-CASES 27):
/// anything wider is granted by someone cleared for it, or by the operator
/// with `warroom users create|update` on the server.
fn grantable(granter: &Principal, clearance: &crate::label::Label) -> ApiResult<()> {
    if clearance.within(&granter.clearance) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "clearance_exceeded",
        format!(
            "clearance {clearance} is beyond your own ({}): ask someone cleared for it",
            granter.clearance
        ),
    ))
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
    require_system(&app, &p, SystemAction::UserList)?;
    let rows = user::Entity::find()
        .order_by_asc(user::Column::Handle)
        .limit(5000)
        .all(&app.db)
        .await?;
    let mut out = Vec::new();
    for r in &rows {
        out.push(UserView::from(
            &Principal::try_from(r).map_err(ApiError::internal)?,
        ));
    }
    Ok(Json(out))
}

/// Create a user (admin).
#[utoipa::path(post, path = "/api/v1/users", request_body = CreateUser, responses((status = 201, body = UserView), (status = 409, body = crate::error::ErrorBody)), security(("bearer" = [])))]
pub async fn create_user(
    State(app): State<App>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<CreateUser>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    require_system(&app, &p, SystemAction::UserManage)?;
    let new = new_user(req).await?;
    grantable(&p, &new.clearance)?;
    let row = app.directory.create(new).await?;
    let created = Principal::try_from(&row).map_err(ApiError::internal)?;
    app.audit
        .record(
            Some(&p.id),
            "user.create",
            &format!("user:{}", row.id),
            "ok",
            serde_json::json!({"handle": row.handle, "role": row.role, "clearance": row.clearance}),
        )
        .await;
    Ok((StatusCode::CREATED, Json(UserView::from(&created))))
}

/// Change a user (admin). Deactivation revokes refresh tokens and closes sockets.
#[utoipa::path(patch, path = "/api/v1/users/{id}", request_body = UpdateUser, responses((status = 200, body = UserView)), security(("bearer" = [])))]
pub async fn update_user(
    State(app): State<App>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateUser>,
) -> ApiResult<Json<UserView>> {
    require_system(&app, &p, SystemAction::UserManage)?;
    let id = check_id(&id)?.to_string();
    let Some(row) = user::Entity::find_by_id(id.clone()).one(&app.db).await? else {
        return Err(ApiError::not_found("user"));
    };
    if id == p.id && (req.role.is_some() || req.clearance.is_some()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "own_permissions",
            "nobody changes their own role or clearance: ask another admin",
        ));
    }
    let mut am: user::ActiveModel = row.clone().into();
    if let Some(role) = &req.role {
        let r: Role = role.parse().map_err(ApiError::invalid)?;
        if (r == Role::Agent) != (row.kind == "agent") {
            return Err(ApiError::invalid("only agents have role agent"));
        }
        am.role = Set(r.as_str().into());
    }
    if let Some(c) = &req.clearance {
        let clearance = parse_label(c)?;
        grantable(&p, &clearance)?;
        am.clearance = Set(clearance.to_string());
    }
    if let Some(d) = &req.department {
        am.department = Set(Some(parse_department(d)?));
    }
    if let Some(active) = req.active {
        if !active && id == p.id {
            return Err(ApiError::invalid("you cannot deactivate yourself"));
        }
        am.active = Set(active);
    }
    let updated = am.update(&app.db).await?;
    app.directory.invalidate(&id);
    // Any change to who someone is invalidates their sessions' view of them.
    if req.active == Some(false) {
        super::auth_routes::revoke_user(&app, &id).await?;
        app.hub.close_user(
            &id,
            CloseReason {
                code: CLOSE_REVOKED,
                reason: "account deactivated".into(),
            },
        );
    } else if req.role.is_some() || req.clearance.is_some() {
        app.hub.close_user(
            &id,
            CloseReason {
                code: CLOSE_REVOKED,
                reason: "permissions changed: reconnect".into(),
            },
        );
    }
    app.audit
        .record(
            Some(&p.id),
            "user.update",
            &format!("user:{id}"),
            "ok",
            serde_json::json!({"active": req.active, "role": req.role, "clearance": req.clearance}),
        )
        .await;
    Ok(Json(UserView::from(
        &Principal::try_from(&updated).map_err(ApiError::internal)?,
    )))
}

/// The newest audit records (admin).
#[utoipa::path(get, path = "/api/v1/audit", params(AuditQuery), responses((status = 200, body = [AuditView])), security(("bearer" = [])))]
pub async fn audit(
    State(app): State<App>,
    Caller(p): Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Vec<AuditView>>> {
    require_system(&app, &p, SystemAction::AuditRead)?;
    let rows = crate::audit::latest(&app.db, q.limit.unwrap_or(100).clamp(1, 1000)).await?;
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
#[utoipa::path(post, path = "/api/v1/admin/policies/reload", responses((status = 200, body = ReloadResult), (status = 422, body = crate::error::ErrorBody)), security(("bearer" = [])))]
pub async fn reload_policies(
    State(app): State<App>,
    Caller(p): Caller,
) -> ApiResult<Json<ReloadResult>> {
    require_system(&app, &p, SystemAction::PolicyReload)?;
    match app.authz.reload() {
        Ok(n) => {
            app.audit
                .record(
                    Some(&p.id),
                    "policy.reload",
                    "policies",
                    "ok",
                    serde_json::json!({"policies": n, "sha256": app.authz.digest()}),
                )
                .await;
            Ok(Json(ReloadResult { policies: n }))
        }
        Err(e) => {
            app.audit
                .record(
                    Some(&p.id),
                    "policy.reload",
                    "policies",
                    "rejected",
                    serde_json::json!({"error": e.to_string()}),
                )
                .await;
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_policies",
                format!("{e}; the previous policies stay active"),
            ))
        }
    }
}
