//! How documents are shown to API clients.

use serde::Serialize;
use utoipa::ToSchema;

use crate::storage::entities::document;

/// A document as listed.
#[derive(Serialize, ToSchema)]
pub struct DocumentView {
    pub id: String,
    pub collection: String,
    pub path: String,
    pub title: String,
    pub format: String,
    pub department: String,
    pub label: String,
    pub tags: Vec<String>,
    pub date: Option<String>,
    pub bytes: i64,
    pub chunks: i64,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<&document::Model> for DocumentView {
    fn from(d: &document::Model) -> Self {
        Self {
            id: d.id.clone(),
            collection: d.collection.clone(),
            path: d.path.clone(),
            title: d.title.clone(),
            format: d.format.clone(),
            department: d.department.clone(),
            label: d.label.clone(),
            tags: serde_json::from_str(&d.tags).unwrap_or_default(),
            date: d.doc_date.clone(),
            bytes: d.bytes,
            chunks: d.chunk_count,
            updated_at: d.updated_at,
        }
    }
}
