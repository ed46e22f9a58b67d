//! The HTTP API under `/api/v1`, plus `/healthz`, `/readyz`, `/metrics` and
//! the OpenAPI document. Routes only parse input and call the services.

pub mod agents_routes;
pub mod auth_routes;
pub mod chat_routes;
pub mod error;
pub mod insights_routes;
pub mod knowledge_routes;
pub mod users_routes;
pub mod web;
pub mod ws;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use utoipa::OpenApi;

use crate::api::error::ApiError;
use crate::app::App;
use crate::ids::UserId;
use crate::principal::Principal;

/// The authenticated caller of a request.
pub struct Caller(pub Arc<Principal>);

/// Pull a bearer token from `Authorization`.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Verify an access token and load its (active) principal.
pub async fn authenticate(app: &App, token: &str) -> Result<Arc<Principal>, ApiError> {
    Ok(authenticate_acting(app, token).await?.0)
}

/// Verify an access token; also return who minted it when it is an agent
/// token (`act`). Such a token stays valid only while its minter is active
/// and cleared for everything the agent is cleared for (SECURITY-CASES 27).
pub async fn authenticate_acting(
    app: &App,
    token: &str,
) -> Result<(Arc<Principal>, Option<Arc<Principal>>), ApiError> {
    let claims = app.auth.verify_access(token).map_err(|e| {
        tracing::debug!(error = %e, "access token refused");
        ApiError::unauthenticated("invalid or expired access token; log in or refresh")
    })?;
    let p = match app.directory.get(&UserId::parse(&claims.sub)?).await? {
        Some(p) if p.active => p,
        _ => return Err(ApiError::unauthenticated("account is not active")),
    };
    let Some(minter) = &claims.act else {
        return Ok((p, None));
    };
    match app.directory.get(&UserId::parse(minter)?).await? {
        Some(m) if m.active && p.clearance.within(&m.clearance) => Ok((p, Some(m))),
        _ => Err(ApiError::unauthenticated(
            "the account that issued this agent token is no longer active or cleared for the agent; issue a new token",
        )),
    }
}

/// The routes a worker account may call; policy forbids it everything else too.
fn worker_route(parts: &axum::http::request::Parts) -> bool {
    const ALLOWED: [(&str, &str); 3] = [
        ("GET", "/api/v1/agents/runtime"),
        ("POST", "/api/v1/agents/{id}/token"),
        ("POST", "/api/v1/auth/logout"),
    ];
    let Some(path) = parts.extensions.get::<axum::extract::MatchedPath>() else {
        return false;
    };
    ALLOWED
        .iter()
        .any(|(m, p)| parts.method.as_str() == *m && path.as_str() == *p)
}

impl FromRequestParts<App> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &App,
    ) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::unauthenticated("missing bearer token (Authorization: Bearer ...)")
        })?;
        let (p, minter) = authenticate_acting(app, token).await?;
        if p.role == crate::principal::Role::Worker && !worker_route(parts) {
            return Err(ApiError::forbidden(
                "a worker account only runs agents (GET /api/v1/agents/runtime, POST /api/v1/agents/{id}/token, the activity feed on /api/v1/ws)",
            ));
        }
        // One keyed limit for every authenticated request (SECURITY-CASES 16).
        if !app.request_limiter.allow(&p.id) {
            return Err(ApiError::rate_limited(
                "too many requests; slow down and retry (limits.requests_per_second)",
            ));
        }
        if let Some(m) = minter {
            // Everything done under a minted agent token names both.
            if !matches!(
                parts.method,
                axum::http::Method::GET | axum::http::Method::HEAD
            ) {
                app.audit
                    .record(
                        Some(&p.id),
                        "agent.act",
                        parts.uri.path(),
                        "ok",
                        serde_json::json!({"method": parts.method.as_str(), "minted_by": m.id, "minted_by_handle": m.handle}),
                    )
                    .await;
            }
        }
        Ok(Caller(p))
    }
}

/// JSON body whose rejections use the API's error format.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send JSON with Content-Type: application/json",
            )),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "request body is larger than the server accepts",
                ))
            }
            Err(e) => Err(ApiError::invalid(format!(
                "invalid JSON body: {}",
                e.body_text()
            ))),
        }
    }
}

/// Query string whose rejections use the API's error format.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::invalid(format!("invalid query string: {}", e.body_text())))
    }
}

/// Path parameters whose rejections use the API's error format. With a
/// typed id (`ApiPath<ChannelId>`) a malformed id is refused here, before
/// any handler runs.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| ApiError::invalid(format!("invalid path: {}", e.body_text())))
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Warroom API", description = "Chat server for people and scoped agents."),
    paths(
        auth_routes::login, auth_routes::refresh, auth_routes::logout, auth_routes::keys,
        chat_routes::list_channels, chat_routes::create_channel, chat_routes::get_channel,
        chat_routes::join, chat_routes::leave, chat_routes::invite, chat_routes::archive,
        chat_routes::update_channel, chat_routes::members, chat_routes::presence, chat_routes::mark_read, chat_routes::open_dm,
        chat_routes::post_message, chat_routes::list_messages, chat_routes::get_message,
        chat_routes::edit_message, chat_routes::delete_message, chat_routes::thread,
        chat_routes::add_reaction, chat_routes::remove_reaction, chat_routes::mentions, chat_routes::search,
        users_routes::me, users_routes::list_users, users_routes::create_user, users_routes::update_user,
        users_routes::audit, users_routes::reload_policies,
        knowledge_routes::upload_document, knowledge_routes::list_documents, knowledge_routes::get_document,
        knowledge_routes::delete_document, knowledge_routes::reclassify_document,
        knowledge_routes::list_scopes, knowledge_routes::create_scope, knowledge_routes::get_scope,
        knowledge_routes::update_scope, knowledge_routes::delete_scope, knowledge_routes::preview_scope,
        knowledge_routes::preview_spec, knowledge_routes::get_user_scope, knowledge_routes::assign_scope,
        knowledge_routes::retrieve, knowledge_routes::message_citations,
        agents_routes::templates, agents_routes::spawn_agents, agents_routes::list_agents,
        agents_routes::get_agent, agents_routes::set_status, agents_routes::agent_messages,
        agents_routes::runtime_agents, agents_routes::agent_token, agents_routes::get_memory,
        agents_routes::put_memory,
        insights_routes::list_digests, insights_routes::get_digest, insights_routes::export_digest,
        insights_routes::run_insights,
        ws::ws_upgrade,
    ),
    components(schemas(crate::api::error::ErrorBody, crate::api::error::ErrorDetail)),
    modifiers(&BearerScheme)
)]
struct ApiDoc;

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document, generated from the route annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(app): State<App>) -> Response {
    match app.db.ping().await {
        Ok(()) => "ready".into_response(),
        Err(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("database: {e}"),
        )
        .into_response(),
    }
}

/// Prometheus metrics, only for a scraper holding `server.metrics_token`.
async fn metrics(State(app): State<App>, headers: axum::http::HeaderMap) -> Response {
    let Some(expected) = app.settings.server.metrics_token.as_deref() else {
        return ApiError::not_found("route").into_response();
    };
    let given = bearer(&headers).unwrap_or_default();
    // Compare in constant time: the token is a secret.
    let same = given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same {
        return ApiError::unauthenticated(
            "send the metrics token (server.metrics_token) as a bearer token",
        )
        .into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

async fn openapi_json() -> Response {
    Json(openapi()).into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

async fn observe(State(app): State<App>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    app.metrics
        .http_requests
        .with_label_values(&[&method, &route, resp.status().as_str()])
        .inc();
    app.metrics
        .http_latency
        .with_label_values(&[&method, &route])
        .observe(start.elapsed().as_secs_f64());
    resp
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    // A handler may set a stricter policy of its own (digest exports do).
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

/// The whole HTTP surface.
pub fn router(app: App) -> Router {
    let body_limit = app.settings.limits.max_body_bytes;
    let api = Router::new()
        .merge(auth_routes::routes())
        .merge(chat_routes::routes())
        .merge(users_routes::routes())
        .merge(agents_routes::routes())
        .merge(insights_routes::routes())
        .merge(knowledge_routes::routes())
        .route("/ws", get(ws::ws_upgrade))
        .route("/openapi.json", get(openapi_json));
    Router::new()
        .merge(web::routes())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .nest("/api/v1", api)
        .route_layer(middleware::from_fn_with_state(app.clone(), observe))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(security_headers))
        .with_state(app)
}
