//! Insights over HTTP: digests for leadership and admins (redacted to the
//! reader's clearance), their exports, and running the job on demand.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{ApiQuery, Caller};
use crate::api::error::{ApiError, ApiResult};
use crate::app::App;
use crate::authz::Actor;
use crate::insights::render::{self, Format};
use crate::insights::DigestRef;
use crate::insights::{DigestSummary, Period, Trigger};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/insights/digests", get(list_digests))
        .route("/insights/digests/{id}", get(get_digest))
        .route("/insights/digests/{id}/export", get(export_digest))
        .route("/insights/run", post(run_insights))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// At most this many (1-500, default 52).
    pub limit: Option<u64>,
}

#[derive(serde::Serialize, ToSchema)]
pub struct DigestList {
    pub digests: Vec<DigestSummary>,
}

/// Stored digests, newest first (leaders and admins).
#[utoipa::path(get, path = "/api/v1/insights/digests", params(ListQuery), responses((status = 200, body = DigestList), (status = 403, description = "not a leader or admin")), security(("bearer" = [])))]
pub async fn list_digests(
    State(app): State<App>,
    Caller(p): Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<DigestList>> {
    Ok(Json(DigestList {
        digests: app.insights.list(&p, q.limit.unwrap_or(52)).await?,
    }))
}

/// One digest (or `latest`), redacted to the reader's clearance, with its charts.
#[utoipa::path(get, path = "/api/v1/insights/digests/{id}", responses((status = 200, body = Object), (status = 404, description = "no such digest")), security(("bearer" = [])))]
pub async fn get_digest(
    State(app): State<App>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let d = app.insights.get(&p, &id.parse::<DigestRef>()?).await?;
    Ok(Json(render::json(&d)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `md`, `html` or `json`.
    pub format: String,
}

/// A digest as Markdown, self-contained HTML or JSON (as a download).
#[utoipa::path(get, path = "/api/v1/insights/digests/{id}/export", params(ExportQuery), responses((status = 200, description = "the export"), (status = 400, description = "unknown format")), security(("bearer" = [])))]
pub async fn export_digest(
    State(app): State<App>,
    Caller(p): Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> ApiResult<Response> {
    let format = Format::parse(&q.format)
        .ok_or_else(|| ApiError::invalid("format must be md, html or json"))?;
    let d = app.insights.get(&p, &id.parse::<DigestRef>()?).await?;
    let body = render::render(&d, format);
    let name = format!(
        "attachment; filename=\"warroom-digest-{}-v{}.{}\"",
        d.period.to.format("%Y-%m-%d"),
        d.version,
        format.extension()
    );
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    Ok(resp)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// Start of the period (RFC 3339); default `to` minus the configured period.
    pub from: Option<DateTime<Utc>>,
    /// End of the period (RFC 3339); default now.
    pub to: Option<DateTime<Utc>>,
}

/// Run the insights job now and store a new digest version (leaders and admins).
#[utoipa::path(post, path = "/api/v1/insights/run", request_body = RunRequest, responses((status = 201, body = Object), (status = 400, description = "invalid period")), security(("bearer" = [])))]
pub async fn run_insights(
    State(app): State<App>,
    Caller(p): Caller,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let req: RunRequest = if body.iter().all(|b| b.is_ascii_whitespace()) {
        RunRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::invalid(format!(
                "invalid request: {e}; send {{\"from\"?: RFC 3339, \"to\"?: RFC 3339}}"
            ))
        })?
    };
    let period = resolve_period(&app, req.from, req.to);
    let d = app
        .insights
        .run(period, Trigger::Api, Actor::Principal(&p), &|_| {})
        .await?;
    let d = app.insights.redact_now(d, &p).await?;
    Ok((StatusCode::CREATED, Json(render::json(&d))))
}

/// The period for optional bounds: `to` defaults to now, `from` to `to` minus
/// the configured period.
pub fn resolve_period(app: &App, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Period {
    let to = to.unwrap_or_else(Utc::now);
    match from {
        Some(from) => Period { from, to },
        None => Period::ending(to, app.settings.insights.period_days),
    }
}
