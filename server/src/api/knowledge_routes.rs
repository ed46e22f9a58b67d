//! Company knowledge over HTTP: documents (upload, list, get, delete, reclassify), scopes
//! (CRUD, preview, assignment) and scoped retrieval for the calling principal.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::api::error::{ApiError, ApiResult};
use crate::app::App;
use crate::authz::Actor;
use crate::chat::parse_label;
use crate::ids::{DocumentId, ScopeId, UserId};
use crate::knowledge::scope::{parse_slug, Scope, ScopeSpec};
use crate::knowledge::views::DocumentView;
use crate::knowledge::{CitedChunk, IngestMeta, IngestOutcome, Retrieval, ScopePreview};

pub fn routes() -> Router<App> {
    Router::new()
        .route("/documents", get(list_documents).post(upload_document))
        .route("/documents/{id}", get(get_document).delete(delete_document))
        .route("/documents/{id}/label", put(reclassify_document))
        .route("/scopes", get(list_scopes).post(create_scope))
        .route("/scopes/preview", post(preview_spec))
        .route(
            "/scopes/{id}",
            get(get_scope).put(update_scope).delete(delete_scope),
        )
        .route("/scopes/{id}/preview", get(preview_scope))
        .route("/users/{id}/scope", get(get_user_scope).put(assign_scope))
        .route("/retrieve", post(retrieve))
        .route("/messages/{id}/citations", get(message_citations))
}

/// A chunk of a document, as an admin sees it.
#[derive(Serialize, ToSchema)]
pub struct ChunkView {
    pub id: String,
    pub ord: i64,
    pub heading_path: Vec<String>,
    /// `None` when the viewer is not cleared for the document's label.
    pub text: Option<String>,
    pub tokens: i64,
}

/// A document with its chunks.
#[derive(Serialize, ToSchema)]
pub struct DocumentDetail {
    #[serde(flatten)]
    pub document: DocumentView,
    /// True when chunk text is withheld because the viewer is not cleared for the label.
    pub redacted: bool,
    pub chunks: Vec<ChunkView>,
}

/// Filters for listing documents.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DocumentQuery {
    pub collection: Option<String>,
    pub department: Option<String>,
}

/// A refused upload is read on and thrown away up to this many times the limit, so the
/// client reads the 413 instead of a reset connection (a server that answers and closes
/// with the request unread makes the kernel reset it, and the answer may be lost). Larger
/// ones are cut off.
const DRAIN_FACTOR: usize = 8;
/// ... and for at most this long.
const DRAIN_SECS: u64 = 10;

/// Read an upload of at most `max` bytes; `None` when it is larger.
async fn read_upload(mut body: Body, max: usize) -> ApiResult<Option<Bytes>> {
    use http_body_util::BodyExt;
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(DRAIN_SECS);
    loop {
        let next = if seen > max {
            match tokio::time::timeout_at(deadline, body.frame()).await {
                Ok(f) => f,
                Err(_) => return Ok(None),
            }
        } else {
            body.frame().await
        };
        let Some(frame) = next else { break };
        let frame =
            frame.map_err(|e| ApiError::invalid(format!("could not read the upload: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= max {
            buf.extend_from_slice(&data);
        } else {
            buf = bytes::BytesMut::new();
            if seen > max.saturating_mul(DRAIN_FACTOR) {
                return Ok(None);
            }
        }
    }
    Ok((seen <= max).then(|| buf.freeze()))
}

/// Metadata for an upload. The label is a floor: front matter in the file may
/// raise it, never lower it. A department that disagrees with the front
/// matter's is refused (409 `department_conflict`).
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// File name or path; its extension picks the format (md, txt, html, pdf).
    pub path: String,
    pub collection: Option<String>,
    pub label: Option<String>,
    pub department: Option<String>,
    /// Comma-separated tags.
    pub tags: Option<String>,
}

/// Upload a document (admin). The body is the file's bytes.
#[utoipa::path(post, path = "/api/v1/documents", params(UploadQuery), request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = IngestOutcome), (status = 200, body = IngestOutcome, description = "unchanged"), (status = 422, description = "the file is malformed")), security(("bearer" = [])))]
pub async fn upload_document(
    State(app): State<App>,
    Caller(p): Caller,
    ApiQuery(q): ApiQuery<UploadQuery>,
    body: Body,
) -> ApiResult<(StatusCode, Json<IngestOutcome>)> {
    let max = app.settings.knowledge.max_file_bytes;
    let body = read_upload(body, max).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the file is larger than the {max} byte limit (knowledge.max_file_bytes)"),
        )
    })?;
    let meta = IngestMeta {
        collection: q.collection,
        label: q.label,
        department: q.department,
        fallback_department: None,
        tags: q
            .tags
            .as_deref()
            .map(|t| {
                t.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    };
    let outcome = app
        .knowledge
        .ingest(Actor::Principal(&p), &q.path, &body, &meta)
        .await?;
    let status = if outcome.status == "unchanged" {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(outcome)))
}

/// List documents (admin).
#[utoipa::path(get, path = "/api/v1/documents", params(DocumentQuery), responses((status = 200, body = [DocumentView])), security(("bearer" = [])))]
pub async fn list_documents(
    State(app): State<App>,
    Caller(p): Caller,
    ApiQuery(q): ApiQuery<DocumentQuery>,
) -> ApiResult<Json<Vec<DocumentView>>> {
    let collection = q
        .collection
        .as_deref()
        .map(|c| parse_slug("collection", c))
        .transpose()?;
    let department = q
        .department
        .as_deref()
        .map(|d| parse_slug("department", d))
        .transpose()?;
    let docs = app
        .knowledge
        .documents(
            Actor::Principal(&p),
            collection.as_deref(),
            department.as_deref(),
        )
        .await?;
    Ok(Json(docs.iter().map(DocumentView::from).collect()))
}

/// One document with its chunks (admin; chunk text only within the admin's clearance).
#[utoipa::path(get, path = "/api/v1/documents/{id}", responses((status = 200, body = DocumentDetail)), security(("bearer" = [])))]
pub async fn get_document(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<DocumentId>,
) -> ApiResult<Json<DocumentDetail>> {
    let d = app.knowledge.document(Actor::Principal(&p), &id).await?;
    let cleared = d
        .label
        .parse::<crate::label::Label>()
        .is_ok_and(|l| l.within(&p.clearance));
    let chunks = app.knowledge.chunks_of(Actor::Principal(&p), &id).await?;
    Ok(Json(DocumentDetail {
        document: DocumentView::from(&d),
        redacted: !cleared,
        chunks: chunks
            .into_iter()
            .map(|c| ChunkView {
                id: c.id,
                ord: c.ord,
                heading_path: serde_json::from_str(&c.heading_path).unwrap_or_default(),
                text: cleared.then_some(c.text),
                tokens: c.tokens,
            })
            .collect(),
    }))
}

/// Delete a document and its chunks (admin).
#[utoipa::path(delete, path = "/api/v1/documents/{id}", responses((status = 204)), security(("bearer" = [])))]
pub async fn delete_document(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<DocumentId>,
) -> ApiResult<StatusCode> {
    app.knowledge.delete(Actor::Principal(&p), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new label for a document.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reclassify {
    pub label: String,
}

/// Reclassify a document (admin): its chunks follow at once.
#[utoipa::path(put, path = "/api/v1/documents/{id}/label", request_body = Reclassify, responses((status = 200, body = DocumentView)), security(("bearer" = [])))]
pub async fn reclassify_document(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<DocumentId>,
    ApiJson(req): ApiJson<Reclassify>,
) -> ApiResult<Json<DocumentView>> {
    let label = parse_label(&req.label)?;
    let d = app
        .knowledge
        .reclassify(Actor::Principal(&p), &id, &label)
        .await?;
    Ok(Json(DocumentView::from(&d)))
}

/// A scope as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct ScopeView {
    pub id: String,
    #[serde(flatten)]
    pub spec: ScopeSpec,
}

impl From<Scope> for ScopeView {
    fn from(s: Scope) -> Self {
        Self {
            id: s.id,
            spec: s.spec,
        }
    }
}

/// All scopes (admin).
#[utoipa::path(get, path = "/api/v1/scopes", responses((status = 200, body = [ScopeView])), security(("bearer" = [])))]
pub async fn list_scopes(
    State(app): State<App>,
    Caller(p): Caller,
) -> ApiResult<Json<Vec<ScopeView>>> {
    Ok(Json(
        app.knowledge
            .scopes(Actor::Principal(&p))
            .await?
            .into_iter()
            .map(ScopeView::from)
            .collect(),
    ))
}

/// Create a scope (admin).
#[utoipa::path(post, path = "/api/v1/scopes", request_body = ScopeSpec, responses((status = 201, body = ScopeView)), security(("bearer" = [])))]
pub async fn create_scope(
    State(app): State<App>,
    Caller(p): Caller,
    ApiJson(spec): ApiJson<ScopeSpec>,
) -> ApiResult<(StatusCode, Json<ScopeView>)> {
    let s = app
        .knowledge
        .put_scope(Actor::Principal(&p), None, spec)
        .await?;
    Ok((StatusCode::CREATED, Json(s.into())))
}

/// One scope, by id or name (admin).
#[utoipa::path(get, path = "/api/v1/scopes/{id}", responses((status = 200, body = ScopeView)), security(("bearer" = [])))]
pub async fn get_scope(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<ScopeId>,
) -> ApiResult<Json<ScopeView>> {
    Ok(Json(
        app.knowledge.scope(Actor::Principal(&p), &id).await?.into(),
    ))
}

/// Replace a scope (admin); retrievals use the new definition at once.
#[utoipa::path(put, path = "/api/v1/scopes/{id}", request_body = ScopeSpec, responses((status = 200, body = ScopeView)), security(("bearer" = [])))]
pub async fn update_scope(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<ScopeId>,
    ApiJson(spec): ApiJson<ScopeSpec>,
) -> ApiResult<Json<ScopeView>> {
    let s = app
        .knowledge
        .put_scope(Actor::Principal(&p), Some(&id), spec)
        .await?;
    Ok(Json(s.into()))
}

/// Delete a scope no principal uses (admin).
#[utoipa::path(delete, path = "/api/v1/scopes/{id}", responses((status = 204), (status = 409, description = "still assigned")), security(("bearer" = [])))]
pub async fn delete_scope(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<ScopeId>,
) -> ApiResult<StatusCode> {
    app.knowledge
        .delete_scope(Actor::Principal(&p), &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How many samples a preview shows.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PreviewQuery {
    pub samples: Option<usize>,
}

/// What a stored scope can see (admin).
#[utoipa::path(get, path = "/api/v1/scopes/{id}/preview", params(PreviewQuery), responses((status = 200, body = ScopePreview)), security(("bearer" = [])))]
pub async fn preview_scope(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<ScopeId>,
    ApiQuery(q): ApiQuery<PreviewQuery>,
) -> ApiResult<Json<ScopePreview>> {
    let s = app.knowledge.scope(Actor::Principal(&p), &id).await?;
    let samples = q.samples.unwrap_or(5).min(20);
    Ok(Json(app.knowledge.preview(&p, &s.rule, samples).await?))
}

/// What an unsaved scope definition would see (admin; the UI's live preview).
#[utoipa::path(post, path = "/api/v1/scopes/preview", request_body = ScopeSpec, responses((status = 200, body = ScopePreview)), security(("bearer" = [])))]
pub async fn preview_spec(
    State(app): State<App>,
    Caller(p): Caller,
    ApiQuery(q): ApiQuery<PreviewQuery>,
    ApiJson(spec): ApiJson<ScopeSpec>,
) -> ApiResult<Json<ScopePreview>> {
    let samples = q.samples.unwrap_or(5).min(20);
    Ok(Json(app.knowledge.preview_spec(&p, spec, samples).await?))
}

/// A principal's scope assignment.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeAssignment {
    /// Scope id or name; `null` removes the assignment.
    pub scope: Option<String>,
}

/// The scope a user or agent retrieves through (admin, or the user themself).
#[utoipa::path(get, path = "/api/v1/users/{id}/scope", responses((status = 200, body = Option<ScopeView>)), security(("bearer" = [])))]
pub async fn get_user_scope(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult<Json<Option<ScopeView>>> {
    Ok(Json(
        app.knowledge
            .scope_of_user(&p, &id)
            .await?
            .map(ScopeView::from),
    ))
}

/// Assign the scope a user or agent retrieves through (admin).
#[utoipa::path(put, path = "/api/v1/users/{id}/scope", request_body = ScopeAssignment, responses((status = 200, body = Option<ScopeView>)), security(("bearer" = [])))]
pub async fn assign_scope(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(req): ApiJson<ScopeAssignment>,
) -> ApiResult<Json<Option<ScopeView>>> {
    app.directory
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let scope = req.scope.as_deref().map(ScopeId::parse).transpose()?;
    let s = app
        .knowledge
        .assign_scope(Actor::Principal(&p), &id, scope.as_ref())
        .await?;
    Ok(Json(s.map(ScopeView::from)))
}

/// A retrieval request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrieveRequest {
    pub query: String,
    /// How many chunks (default 5).
    pub k: Option<usize>,
    /// Only chunks within this label, e.g. the label of the channel an agent
    /// retrieves for. What an agent retrieves counts toward the label of its
    /// next post, so an agent asks only for what it may use there.
    pub max_label: Option<String>,
}

/// Retrieve chunks within the caller's own scope and clearance.
#[utoipa::path(post, path = "/api/v1/retrieve", request_body = RetrieveRequest, responses((status = 200, body = Retrieval), (status = 403, description = "no scope assigned")), security(("bearer" = [])))]
pub async fn retrieve(
    State(app): State<App>,
    Caller(p): Caller,
    ApiJson(req): ApiJson<RetrieveRequest>,
) -> ApiResult<Json<Retrieval>> {
    let ceiling = req.max_label.as_deref().map(parse_label).transpose()?;
    let r = app
        .knowledge
        .retrieve(&p, &req.query, req.k.unwrap_or(5), ceiling.as_ref())
        .await?;
    Ok(Json(r))
}

/// The document chunks a message cites, for anyone who may read the message: document,
/// heading and label always; the text only within the reader's clearance.
#[utoipa::path(get, path = "/api/v1/messages/{id}/citations", responses((status = 200, body = [CitedChunk]), (status = 404, body = crate::api::error::ErrorBody)), security(("bearer" = [])))]
pub async fn message_citations(
    State(app): State<App>,
    Caller(p): Caller,
    ApiPath(id): ApiPath<crate::ids::MessageId>,
) -> ApiResult<Json<Vec<CitedChunk>>> {
    let m = app.chat.get_message(&p, &id).await?;
    let cited_ids: Vec<crate::ids::ChunkId> = m
        .citations
        .iter()
        .map(crate::ids::ChunkId::from_trusted)
        .collect();
    let cited = app.knowledge.cited_chunks(&p, &cited_ids).await?;
    Ok(Json(cited))
}
