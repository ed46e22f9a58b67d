//! `/auth`: login (throttled per handle and client address), refresh
//! (rotating in one transaction, with reuse detection per family), logout
//! (ending sessions and their sockets), keys.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{bearer, ApiJson, Caller};
use crate::api::error::{ApiError, ApiResult};
use crate::app::App;

pub use crate::sessions::{LoginRequest, TokenResponse};

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

/// All `X-Forwarded-For` values as one list; a value that is not text
/// becomes a hop nobody can parse, which stops the walk at the proxy.
fn forwarded_for(headers: &HeaderMap) -> Option<String> {
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or("?"))
        .collect();
    (!hops.is_empty()).then(|| hops.join(","))
}

/// Log in with a handle and password.
#[utoipa::path(post, path = "/api/v1/auth/login", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = crate::api::error::ErrorBody), (status = 429, body = crate::api::error::ErrorBody)))]
pub async fn login(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Response {
    let client = app
        .auth
        .client_addr(peer.ip(), forwarded_for(&headers).as_deref());
    match app.sessions.login(client, req).await {
        Ok(t) => Json(t).into_response(),
        Err((e, retry)) => {
            let mut resp = ApiError::from(e).into_response();
            if let Some(secs) = retry {
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    resp.headers_mut().insert("retry-after", v);
                }
            }
            resp
        }
    }
}

/// Exchange a refresh token for new tokens. Each refresh token works once;
/// presenting a used one revokes its whole family and ends its session.
#[utoipa::path(post, path = "/api/v1/auth/refresh", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = crate::api::error::ErrorBody)))]
pub async fn refresh(
    State(app): State<App>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> ApiResult<Json<TokenResponse>> {
    Ok(Json(app.sessions.refresh(&req.refresh_token).await?))
}

/// Log out: end the caller's session (the one its access token belongs to)
/// and the given refresh token's, or every session of the caller when no
/// refresh token is given. Ended sessions lose their refresh and access
/// tokens at once, and their sockets close with code 4003.
#[utoipa::path(post, path = "/api/v1/auth/logout", request_body = LogoutRequest,
    responses((status = 204), (status = 401, body = crate::api::error::ErrorBody)), security(("bearer" = [])))]
pub async fn logout(
    State(app): State<App>,
    Caller(p): Caller,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let req: LogoutRequest = if body.iter().all(u8::is_ascii_whitespace) {
        LogoutRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))?
    };
    let own = bearer(&headers)
        .and_then(|t| app.auth.verify_access(t).ok())
        .and_then(|c| c.sid);
    app.sessions.logout(&p, own, req.refresh_token).await?;
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
