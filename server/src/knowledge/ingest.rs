//! Ingestion: parse, chunk and embed a file, then swap the document's rows;
//! and re-embedding every chunk after an embedder change.

use super::documents::raise_citing_messages;
use super::*;
use crate::ids::DocumentId;

pub(super) fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

pub(super) fn payload(chunk_id: uuid::Uuid, d: &document::Model, label: &Label) -> ChunkPayload {
    ChunkPayload {
        chunk_id,
        document_id: d.id.clone(),
        collection: d.collection.clone(),
        department: d.department.clone(),
        tags: parse_list(&d.tags),
        level: label.level.rank(),
        compartments: label.compartments.iter().cloned().collect(),
    }
}

/// The department of an upload: the uploader's and the front matter's must
/// agree; either decides alone; the fallback applies when neither names one.
pub(super) fn resolve_department(
    path: &str,
    front_matter: Option<&str>,
    given: Option<&str>,
    fallback: Option<&str>,
) -> KnowledgeResult<String> {
    let front_matter = front_matter
        .map(|d| parse_slug("department", d))
        .transpose()?;
    let given = given.map(|d| parse_slug("department", d)).transpose()?;
    match (front_matter, given) {
        (Some(f), Some(g)) if f != g => Err(KnowledgeError::DepartmentConflict(
format!(
                "{path}: the upload says department {g:?} but the file's front matter says {f:?}: fix one of them"
            ),
        )),
        (Some(d), _) | (None, Some(d)) => Ok(d),
        (None, None) => fallback
            .ok_or_else(|| {
                KnowledgeError::invalid(format!(
                    "{path}: no department: add `department:` to the front matter or pass one with the upload (--department)"
                ))
            })
            .and_then(|d| parse_slug("department", d)),
    }
}

/// The label of an upload: the join of the uploader's label (a floor) and the
/// front matter's, so metadata inside a file can raise its label but never
/// lower it (SECURITY-CASES 25). `internal` when neither gives one.
pub(super) fn resolve_label(
    path: &str,
    front_matter: Option<&str>,
    given: Option<&str>,
) -> KnowledgeResult<Label> {
    let parse = |raw: &str, whose: &str| {
        raw.parse::<Label>()
            .map_err(|e| KnowledgeError::invalid(format!("{path}: {whose} label: {e}")))
    };
    let front_matter = front_matter.map(|l| parse(l, "front matter")).transpose()?;
    let given = given.map(|l| parse(l, "upload")).transpose()?;
    Ok(match (front_matter, given) {
        (Some(f), Some(g)) => f.join(&g),
        (Some(l), None) | (None, Some(l)) => l,
        (None, None) => Label::level(crate::label::Level::Internal),
    })
}

/// A file the parser refused, with the parser's code (`invalid_utf8`,
/// `decompression_bomb`, `malformed_pdf`, ...).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct UnreadableFile {
    pub code: &'static str,
    pub message: String,
}

impl crate::error::Failure for UnreadableFile {
    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Unprocessable
    }
    fn code(&self) -> &'static str {
        self.code
    }
}

impl Knowledge {
    // ---- ingestion ---------------------------------------------------------------------

    /// Ingest one file. Parsing errors carry the parser's code (`invalid_utf8`,
    /// `decompression_bomb`, ...) and leave nothing behind.
    pub async fn ingest(
        &self,
        actor: Actor<'_>,
        path: &str,
        bytes: &[u8],
        meta: &IngestMeta,
    ) -> KnowledgeResult<IngestOutcome> {
        self.authz.permit(actor, SystemAction::DocumentManage)?;
        let path = path.trim();
        if path.is_empty() || path.len() > 512 || path.contains('\0') {
            return Err(KnowledgeError::invalid("path must be 1-512 characters"));
        }
        let limits = Limits {
            max_bytes: self.settings.max_file_bytes,
            ..Limits::default()
        };
        let owned = bytes.to_vec();
        let p = path.to_string();
        let parsed = tokio::task::spawn_blocking(move || parser::parse(&p, &owned, &limits))
            .await
            .map_err(internal)?
            .map_err(|e| {
                KnowledgeError::from(UnreadableFile {
                    code: e.code(),
                    message: format!("{path}: {e}"),
                })
            })?;
        let fm = &parsed.front_matter;
        let collection = parse_slug(
            "collection",
            meta.collection.as_deref().unwrap_or("company"),
        )?;
        let department = resolve_department(
            path,
            fm.department.as_deref(),
            meta.department.as_deref(),
            meta.fallback_department.as_deref(),
        )?;
        let label = resolve_label(path, fm.label.as_deref(), meta.label.as_deref())?;
        let raw_tags = if fm.tags.is_empty() {
            &meta.tags
        } else {
            &fm.tags
        };
        let mut tags = raw_tags
            .iter()
            .map(|t| parse_slug("tag", t))
            .collect::<KnowledgeResult<Vec<_>>>()?;
        tags.sort();
        tags.dedup();
        let label_s = label.to_string();
        let tags_s = json_list(&tags);
        let hash = sha256_hex(&[
            bytes,
            collection.as_bytes(),
            department.as_bytes(),
            label_s.as_bytes(),
            tags_s.as_bytes(),
        ]);

        let engine = self.engine().await?;
        let _write = self.write.lock().await;
        let existing = document::Entity::find()
            .filter(document::Column::Collection.eq(&collection))
            .filter(document::Column::Path.eq(path))
            .one(&self.db)
            .await
            .map_err(internal)?;
        if let Some(d) = &existing {
            if d.content_hash == hash {
                return Ok(IngestOutcome {
                    path: path.into(),
                    status: "unchanged",
                    document_id: d.id.clone(),
                    chunks: d.chunk_count as usize,
                    label: d.label.clone(),
                });
            }
        }

        let opts = ChunkOptions {
            max_tokens: self.settings.chunk_max_tokens,
            overlap_tokens: self.settings.chunk_overlap_tokens,
        };
        let chunks = chunker::chunk(&parsed, &opts, engine.counter.as_ref());
        if chunks.is_empty() {
            return Err(KnowledgeError::Empty(format!(
                "{path}: the document has no text to index"
            )));
        }
        let texts: Vec<String> = chunks.iter().map(|c| c.embed_text(&parsed.title)).collect();
        let vectors = engine
            .embedder
            .embed(&texts)
            .await
            .map_err(|e| KnowledgeError::EmbedderFailed(e.to_string()))?;

        let now = chrono::Utc::now();
        let doc_id = existing
            .as_ref()
            .map(|d| d.id.clone())
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let doc = document::Model {
            id: doc_id.clone(),
            collection: collection.clone(),
            path: path.to_string(),
            title: parsed.title.clone(),
            format: serde_json::to_value(parsed.format)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            department,
            label: label_s.clone(),
            level: label.level.rank(),
            tags: tags_s,
            doc_date: fm.date.clone(),
            content_hash: hash,
            bytes: bytes.len() as i64,
            chunk_count: chunks.len() as i64,
            body: parsed.body.clone(),
            created_by: actor.principal().map(|p| p.id.to_string()),
            created_at: existing.as_ref().map(|d| d.created_at).unwrap_or(now),
            updated_at: now,
        };
        let ids: Vec<uuid::Uuid> = chunks.iter().map(|_| uuid::Uuid::new_v4()).collect();
        let points: Vec<ChunkPoint> = chunks
            .iter()
            .zip(&vectors)
            .zip(&ids)
            .map(|((c, v), id)| ChunkPoint {
                dense: v.clone(),
                sparse: sparse::document(&c.embed_text(&parsed.title)),
                payload: payload(*id, &doc, &label),
            })
            .collect();
        // 1. New vectors (invisible until their rows exist).
        engine.store.upsert(points).await.map_err(internal)?;
        // 2. Swap the rows in one transaction.
        let old_ids: Vec<String> = match &existing {
            Some(d) => chunk::Entity::find()
                .select_only()
                .column(chunk::Column::Id)
                .filter(chunk::Column::DocumentId.eq(&d.id))
                .into_tuple()
                .all(&self.db)
                .await
                .map_err(internal)?,
            None => Vec::new(),
        };
        let swap = async {
            let txn = crate::storage::begin_write(&self.db).await?;
            chunk::Entity::delete_many()
                .filter(chunk::Column::DocumentId.eq(&doc_id))
                .exec(&txn)
                .await?;
            if existing.is_some() {
                document::ActiveModel::from(doc.clone())
                    .reset_all()
                    .update(&txn)
                    .await?;
            } else {
                document::ActiveModel::from(doc.clone())
                    .reset_all()
                    .insert(&txn)
                    .await?;
            }
            let rows: Vec<chunk::ActiveModel> = chunks
                .iter()
                .zip(&ids)
                .map(|(c, id)| chunk::ActiveModel {
                    id: Set(id.to_string()),
                    document_id: Set(doc_id.clone()),
                    ord: Set(c.ord as i64),
                    heading_path: Set(json_list(&c.heading_path)),
                    text: Set(c.text.clone()),
                    tokens: Set(c.tokens as i64),
                })
                .collect();
            for batch in rows.chunks(200) {
                chunk::Entity::insert_many(batch.to_vec())
                    .exec(&txn)
                    .await?;
            }
            // A new version at another label: what quotes the old version is
            // raised with it (never lowered), in the same transaction.
            let raised = match &existing {
                Some(d) if d.label != label_s => {
                    raise_citing_messages(&txn, &doc_id, &label).await?
                }
                _ => 0,
            };
            txn.commit().await.map(|_| raised)
        };
        let raised = match swap.await {
            Ok(raised) => raised,
            Err(e) => {
                if let Err(cleanup) = engine.store.delete(&ids).await {
                    tracing::warn!(error = %cleanup, "could not remove vectors of a failed ingestion; they stay invisible");
                }
                return Err(internal(e));
            }
        };
        // 3. Old vectors go; until they do, retrieval ignores them (no rows).
        let old: Vec<uuid::Uuid> = old_ids.iter().filter_map(|s| s.parse().ok()).collect();
        if !old.is_empty() {
            if let Err(e) = engine.store.delete(&old).await {
                tracing::warn!(error = %e, document = %doc_id, "old vectors not deleted; they stay invisible");
            }
        }
        let status = if existing.is_some() {
            "updated"
        } else {
            "created"
        };
        self.audit
            .record(
                actor.principal().map(|p| p.id.as_str()),
                "document.ingest",
                &doc_id,
                status,
                serde_json::json!({"path": path, "collection": collection, "label": label_s, "chunks": chunks.len(), "messages_raised": raised}),
            )
            .await;
        Ok(IngestOutcome {
            path: path.into(),
            status,
            document_id: doc_id,
            chunks: chunks.len(),
            label: label_s,
        })
    }

    /// Re-embed every chunk from the database and write it to the vector store (after
    /// switching embedder or store, or to repair a store that lost writes). Idempotent:
    /// points are keyed by chunk id. Calls `progress` with (documents done, total).
    pub async fn reindex(&self, progress: impl Fn(usize, usize)) -> KnowledgeResult<usize> {
        let engine = self.engine().await?;
        let _write = self.write.lock().await;
        let docs = self.document_rows(None, None).await?;
        let mut total = 0;
        for (i, d) in docs.iter().enumerate() {
            let label: Label = d
                .label
                .parse()
                .map_err(|e| internal(format!("document {} has a bad label: {e}", d.id)))?;
            let rows = self
                .chunks_of(Actor::Server, &DocumentId::from_trusted(d.id.clone()))
                .await?;
            let texts: Vec<String> = rows
                .iter()
                .map(|c| {
                    chunker::Chunk {
                        ord: c.ord as usize,
                        heading_path: parse_list(&c.heading_path),
                        text: c.text.clone(),
                        start: 0,
                        end: 0,
                        tokens: c.tokens as usize,
                    }
                    .embed_text(&d.title)
                })
                .collect();
            let vectors = engine
                .embedder
                .embed(&texts)
                .await
                .map_err(|e| KnowledgeError::EmbedderFailed(e.to_string()))?;
            let points = rows
                .iter()
                .zip(texts.iter().zip(vectors))
                .filter_map(|(c, (text, dense))| {
                    Some(ChunkPoint {
                        dense,
                        sparse: sparse::document(text),
                        payload: payload(c.id.parse().ok()?, d, &label),
                    })
                })
                .collect::<Vec<_>>();
            total += points.len();
            engine.store.upsert(points).await.map_err(internal)?;
            progress(i + 1, docs.len());
        }
        Ok(total)
    }
}
