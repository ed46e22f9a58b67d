//! `/auth`: login, refresh (rotating, with reuse detection), logout, keys.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiJson, Caller};
use crate::app::App;
use crate::auth::{new_refresh_token, refresh_hash};
use crate::error::{ApiError, ApiResult};
use crate::storage::entities::refresh_token;

/// Credentials.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub handle: String,
    pub password: String,
}

/// A refresh token presented for rotation or logout.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Optional refresh token to revoke on logout (default: all of the caller's).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    pub refresh_token: Option<String>,
}

/// Tokens issued at login and refresh.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub token_type: &'static str,
}

/// The public key that verifies access tokens.
#[derive(Serialize, ToSchema)]
pub struct KeysResponse {
    pub alg: &'static str,
    /// Ed25519 public key, base64url.
    pub x: String,
}

pub fn routes() -> Router<App> {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/auth/keys", get(keys))
}

async fn issue(app: &App, user_id: &str, family: Option<String>) -> ApiResult<TokenResponse> {
    let (token, hash) = new_refresh_token();
    let now = chrono::Utc::now();
    refresh_token::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        user_id: Set(user_id.into()),
        family_id: Set(family.unwrap_or_else(|| uuid::Uuid::new_v4().to_string())),
        token_hash: Set(hash),
        expires_at: Set(now + app.auth.refresh_ttl()),
        used: Set(false),
        revoked: Set(false),
        created_at: Set(now),
    }
    .insert(&app.db)
    .await?;
    Ok(TokenResponse {
        access_token: app.auth.issue_access(user_id),
        refresh_token: token,
        expires_in: app.auth.access_ttl(),
        token_type: "Bearer",
    })
}

/// Log in with a handle and password.
#[utoipa::path(post, path = "/api/v1/auth/login", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
pub async fn login(
    State(app): State<App>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Response {
    match login_inner(&app, addr, req).await {
        Ok(t) => Json(t).into_response(),
        Err((e, retry)) => {
            let mut resp = e.into_response();
            if let Some(secs) = retry {
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    resp.headers_mut().insert("retry-after", v);
                }
            }
            resp
        }
    }
}

async fn login_inner(
    app: &App,
    addr: SocketAddr,
    req: LoginRequest,
) -> Result<TokenResponse, (ApiError, Option<u64>)> {
    if req.handle.len() > 64 || req.password.len() > 1024 {
        return Err((ApiError::invalid("handle or password too long"), None));
    }
    if let Err(wait) = app.auth.throttle_login(&req.handle, &addr.ip().to_string()) {
        app.metrics.logins.with_label_values(&["throttled"]).inc();
        return Err((
            ApiError::rate_limited("too many login attempts; wait and retry"),
            Some(wait.as_secs().max(1)),
        ));
    }
    let row = app
        .directory
        .row_by_handle(&req.handle)
        .await
        .map_err(|e| (e, None))?;
    let stored = row.as_ref().and_then(|r| r.password_hash.clone());
    let password = req.password;
    let app2 = app.clone();
    // argon2id is CPU-heavy: off the async runtime. Unknown users pay the same cost.
    let ok =
        tokio::task::spawn_blocking(move || app2.auth.check_password(&password, stored.as_deref()))
            .await
            .map_err(|e| (ApiError::internal(e), None))?;
    let user = match row {
        Some(u) if ok && u.active => u,
        _ => {
            app.metrics.logins.with_label_values(&["failed"]).inc();
            app.audit
                .record(
                    None,
                    "auth.login",
                    &format!("handle:{}", req.handle.to_lowercase()),
                    "failed",
                    serde_json::json!({"ip": addr.ip().to_string()}),
                )
                .await;
            return Err((ApiError::unauthenticated("wrong handle or password"), None));
        }
    };
    app.metrics.logins.with_label_values(&["ok"]).inc();
    app.audit
        .record(
            Some(&user.id),
            "auth.login",
            &format!("user:{}", user.id),
            "ok",
            serde_json::json!({}),
        )
        .await;
    issue(app, &user.id, None).await.map_err(|e| (e, None))
}

/// Exchange a refresh token for new tokens. Each refresh token works once;
/// presenting a used one revokes its whole family.
#[utoipa::path(post, path = "/api/v1/auth/refresh", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = crate::error::ErrorBody)))]
pub async fn refresh(
    State(app): State<App>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let bad = || ApiError::unauthenticated("invalid refresh token; log in again");
    if req.refresh_token.len() > 256 {
        return Err(bad());
    }
    let hash = refresh_hash(&req.refresh_token);
    let Some(row) = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash))
        .one(&app.db)
        .await?
    else {
        return Err(bad());
    };
    if row.used || row.revoked {
        revoke_family(&app, &row.family_id).await?;
        app.audit
            .record(
                Some(&row.user_id),
                "auth.refresh_reuse",
                &format!("family:{}", row.family_id),
                "revoked",
                serde_json::json!({}),
            )
            .await;
        tracing::warn!(user = %row.user_id, family = %row.family_id, "refresh token reuse: family revoked");
        return Err(bad());
    }
    if row.expires_at < chrono::Utc::now() {
        return Err(bad());
    }
    // Claim the token atomically: only one concurrent refresh can win.
    let claimed = refresh_token::Entity::update_many()
        .col_expr(
            refresh_token::Column::Used,
            sea_orm::sea_query::Expr::value(true),
        )
        .filter(refresh_token::Column::Id.eq(row.id.as_str()))
        .filter(refresh_token::Column::Used.eq(false))
        .filter(refresh_token::Column::Revoked.eq(false))
        .exec(&app.db)
        .await?;
    if claimed.rows_affected != 1 {
        revoke_family(&app, &row.family_id).await?;
        return Err(bad());
    }
    match app.directory.get(&row.user_id).await? {
        Some(p) if p.active => {}
        _ => return Err(ApiError::unauthenticated("account is not active")),
    }
    Ok(Json(issue(&app, &row.user_id, Some(row.family_id)).await?))
}

async fn revoke_family(app: &App, family: &str) -> ApiResult<()> {
    revoke_where(app, refresh_token::Column::FamilyId.eq(family)).await
}

/// Revoke every refresh token of a user.
pub async fn revoke_user(app: &App, user_id: &str) -> ApiResult<()> {
    revoke_where(app, refresh_token::Column::UserId.eq(user_id)).await
}

async fn revoke_where(app: &App, which: sea_orm::sea_query::SimpleExpr) -> ApiResult<()> {
    refresh_token::Entity::update_many()
        .col_expr(
            refresh_token::Column::Revoked,
            sea_orm::sea_query::Expr::value(true),
        )
        .filter(which)
        .exec(&app.db)
        .await?;
    Ok(())
}

/// Log out: revoke the given refresh token's family, or all of the caller's.
#[utoipa::path(post, path = "/api/v1/auth/logout", request_body = LogoutRequest,
    responses((status = 204), (status = 401, body = crate::error::ErrorBody)), security(("bearer" = [])))]
pub async fn logout(
    State(app): State<App>,
    Caller(p): Caller,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let req: LogoutRequest = if body.iter().all(u8::is_ascii_whitespace) {
        LogoutRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))?
    };
    match req.refresh_token {
        Some(t) => {
            let row = refresh_token::Entity::find()
                .filter(refresh_token::Column::TokenHash.eq(refresh_hash(&t)))
                .one(&app.db)
                .await?;
            if let Some(row) = row.filter(|r| r.user_id == p.id) {
                revoke_family(&app, &row.family_id).await?;
            }
        }
        None => revoke_user(&app, &p.id).await?,
    }
    app.audit
        .record(
            Some(&p.id),
            "auth.logout",
            &format!("user:{}", p.id),
            "ok",
            serde_json::json!({}),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// The public key for verifying access tokens (EdDSA).
#[utoipa::path(get, path = "/api/v1/auth/keys", responses((status = 200, body = KeysResponse)))]
pub async fn keys(State(app): State<App>) -> Json<KeysResponse> {
    Json(KeysResponse {
        alg: "EdDSA",
        x: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(app.auth.public_key()),
    })
}
