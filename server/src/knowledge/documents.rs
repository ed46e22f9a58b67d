//! Stored documents: reading, deleting and reclassifying them (a new label
//! also raises the messages that cite them).

use super::*;
use crate::ids::DocumentId;

/// Raise every message citing `document_id` to at least `label`, inside the
/// caller's transaction; returns how many were raised. Every path that
/// changes a document's label calls this, so old quotes never stay readable
/// at the old label (SECURITY-CASES 25).
pub(super) async fn raise_citing_messages<C: sea_orm::ConnectionTrait>(
    txn: &C,
    document_id: &str,
    label: &Label,
) -> Result<usize, sea_orm::DbErr> {
    let citing: Vec<String> = message_citation::Entity::find()
        .select_only()
        .column(message_citation::Column::MessageId)
        .filter(message_citation::Column::DocumentId.eq(document_id))
        .distinct()
        .into_tuple()
        .all(txn)
        .await?;
    let mut raised = 0usize;
    for ids in citing.chunks(200) {
        let msgs = message::Entity::find()
            .filter(message::Column::Id.is_in(ids.to_vec()))
            .all(txn)
            .await?;
        for m in msgs {
            // An unreadable stored label is treated as the new one, never as lower.
            let current = Label::from_stored(&m.label, label);
            let joined = current.join(label);
            if joined != current {
                let mut am: message::ActiveModel = m.into();
                am.label = Set(joined.to_string());
                am.update(txn).await?;
                raised += 1;
            }
        }
    }
    Ok(raised)
}

impl Knowledge {
    // ---- documents -----------------------------------------------------------------------

    /// A document's row (document managers).
    pub async fn document(
        &self,
        actor: Actor<'_>,
        id: &DocumentId,
    ) -> KnowledgeResult<document::Model> {
        self.authz.permit(actor, SystemAction::DocumentManage)?;
        self.document_row(id).await
    }

    pub(super) async fn document_row(&self, id: &DocumentId) -> KnowledgeResult<document::Model> {
        document::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .map_err(internal)?
            .ok_or_else(|| KnowledgeError::not_found("document"))
    }

    /// Documents, optionally of one collection or department, without their
    /// bodies (document managers).
    pub async fn documents(
        &self,
        actor: Actor<'_>,
        collection: Option<&str>,
        department: Option<&str>,
    ) -> KnowledgeResult<Vec<document::Model>> {
        self.authz.permit(actor, SystemAction::DocumentManage)?;
        self.document_rows(collection, department).await
    }

    pub(super) async fn document_rows(
        &self,
        collection: Option<&str>,
        department: Option<&str>,
    ) -> KnowledgeResult<Vec<document::Model>> {
        let mut q = document::Entity::find()
            .select_only()
            .columns([
                document::Column::Id,
                document::Column::Collection,
                document::Column::Path,
                document::Column::Title,
                document::Column::Format,
                document::Column::Department,
                document::Column::Label,
                document::Column::Level,
                document::Column::Tags,
                document::Column::DocDate,
                document::Column::ContentHash,
                document::Column::Bytes,
                document::Column::ChunkCount,
                document::Column::CreatedBy,
                document::Column::CreatedAt,
                document::Column::UpdatedAt,
            ])
            // The body is not listed.
            .expr_as(sea_orm::sea_query::Expr::val(""), "body")
            .order_by_asc(document::Column::Collection)
            .order_by_asc(document::Column::Path);
        if let Some(c) = collection {
            q = q.filter(document::Column::Collection.eq(c));
        }
        if let Some(d) = department {
            q = q.filter(document::Column::Department.eq(d));
        }
        q.into_model::<document::Model>()
            .all(&self.db)
            .await
            .map_err(internal)
    }

    /// A document's chunks in order (document managers).
    pub async fn chunks_of(
        &self,
        actor: Actor<'_>,
        document_id: &DocumentId,
    ) -> KnowledgeResult<Vec<chunk::Model>> {
        self.authz.permit(actor, SystemAction::DocumentManage)?;
        chunk::Entity::find()
            .filter(chunk::Column::DocumentId.eq(document_id))
            .order_by_asc(chunk::Column::Ord)
            .all(&self.db)
            .await
            .map_err(internal)
    }

    /// Delete a document, its chunks and their vectors.
    pub async fn delete(&self, actor: Actor<'_>, id: &DocumentId) -> KnowledgeResult<()> {
        self.authz.permit(actor, SystemAction::DocumentManage)?;
        let doc = self.document_row(id).await?;
        let engine = self.engine().await?;
        let _write = self.write.lock().await;
        let ids: Vec<String> = chunk::Entity::find()
            .select_only()
            .column(chunk::Column::Id)
            .filter(chunk::Column::DocumentId.eq(id))
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(internal)?;
        let txn = crate::storage::begin_write(&self.db)
            .await
            .map_err(internal)?;
        chunk::Entity::delete_many()
            .filter(chunk::Column::DocumentId.eq(id))
            .exec(&txn)
            .await
            .map_err(internal)?;
        document::Entity::delete_by_id(id)
            .exec(&txn)
            .await
            .map_err(internal)?;
        txn.commit().await.map_err(internal)?;
        let ids: Vec<uuid::Uuid> = ids.iter().filter_map(|s| s.parse().ok()).collect();
        if let Err(e) = engine.store.delete(&ids).await {
            tracing::warn!(error = %e, document = %id, "vectors of a deleted document not removed; they stay invisible");
        }
        self.audit
            .record(
                Some(actor.user_id().as_str()),
                "document.delete",
                id,
                "ok",
                serde_json::json!({"path": doc.path, "collection": doc.collection}),
            )
            .await;
        Ok(())
    }

    /// Give a document a new label. Its chunks follow at once (retrieval reads the label
    /// from the database and re-checks it), the vector store's copy is updated, and
    /// messages that cite the document are raised to at least the new label.
    pub async fn reclassify(
        &self,
        actor: Actor<'_>,
        id: &DocumentId,
        label: &Label,
    ) -> KnowledgeResult<document::Model> {
        self.authz.permit(actor, SystemAction::DocumentManage)?;
        let engine = self.engine().await?;
        let _write = self.write.lock().await;
        let doc = self.document_row(id).await?;
        let old = doc.label.clone();
        let txn = crate::storage::begin_write(&self.db)
            .await
            .map_err(internal)?;
        let mut am: document::ActiveModel = doc.clone().into();
        am.label = Set(label.to_string());
        am.level = Set(label.level.rank());
        am.updated_at = Set(chrono::Utc::now());
        let updated = am.update(&txn).await.map_err(internal)?;
        let raised = raise_citing_messages(&txn, id, label)
            .await
            .map_err(internal)?;
        txn.commit().await.map_err(internal)?;
        let compartments: Vec<String> = label.compartments.iter().cloned().collect();
        if let Err(e) = engine
            .store
            .set_label(id, label.level.rank(), &compartments)
            .await
        {
            tracing::error!(error = %e, document = %id, "vector store label not updated; the policy re-check still applies the new label");
        }
        self.audit
            .record(
                Some(actor.user_id().as_str()),
                "document.reclassify",
                id,
                "ok",
                serde_json::json!({"from": old, "to": label.to_string(), "messages_raised": raised}),
            )
            .await;
        Ok(updated)
    }

    /// Number of stored documents (for readiness and the dashboard).
    pub async fn document_count(&self) -> KnowledgeResult<u64> {
        document::Entity::find()
            .count(&self.db)
            .await
            .map_err(internal)
    }
}
