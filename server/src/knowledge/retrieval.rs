//! Scoped retrieval and citations: every chunk returned or cited is
//! re-checked against the database and by Cedar.

use super::ingest::sha256_hex;
use super::*;

impl Knowledge {
    // ---- retrieval -------------------------------------------------------------------------

    /// Retrieve the `k` best chunks for `query` within the principal's own scope.
    pub async fn retrieve(
        &self,
        p: &Principal,
        query: &str,
        k: usize,
        ceiling: Option<&Label>,
    ) -> KnowledgeResult<Retrieval> {
        let scope = self.scope_of(&p.user_id()).await?.ok_or_else(|| {
            KnowledgeError::forbidden(
                "no retrieval scope is assigned to you; an admin assigns one with PUT /api/v1/users/{id}/scope",
            )
        })?;
        match ceiling {
            // Only material the caller means to use where `ceiling` allows,
            // e.g. an agent retrieving for a channel of that label.
            Some(c) => {
                let bounded = Principal {
                    clearance: p.clearance.meet(c),
                    ..p.clone()
                };
                self.retrieve_in(&bounded, &scope, query, k).await
            }
            None => self.retrieve_in(p, &scope, query, k).await,
        }
    }

    /// Retrieve under an explicit scope (the caller has checked that `p` may use it).
    pub async fn retrieve_in(
        &self,
        p: &Principal,
        scope: &Scope,
        query: &str,
        k: usize,
    ) -> KnowledgeResult<Retrieval> {
        let query = query.trim();
        if query.is_empty() || query.chars().count() > 2000 {
            return Err(KnowledgeError::invalid("query must be 1-2000 characters"));
        }
        if k == 0 || k > self.settings.max_k {
            return Err(KnowledgeError::invalid(format!(
                "k must be between 1 and {}",
                self.settings.max_k
            )));
        }
        let engine = self.engine().await?;
        let filter = scope::compile(&scope.rule, &p.clearance);
        let dense = engine
            .embedder
            .embed(&[query.to_string()])
            .await
            .map_err(|e| KnowledgeError::EmbedderFailed(e.to_string()))?
            .pop()
            .unwrap_or_default();
        let hits = engine
            .store
            .hybrid(&dense, &sparse::query(query), &filter, k + k / 2 + 2)
            .await
            .map_err(internal)?;
        let (chunks, denied) = self.recheck(p, &scope.rule, &hits, k).await?;
        let query_hash = sha256_hex(&[query.as_bytes()]);
        self.audit
            .record_required(
                Some(&p.id),
                "knowledge.retrieve",
                &scope.spec.name,
                if denied.is_empty() {
                    "ok"
                } else {
                    "denied_some"
                },
                serde_json::json!({
                    "scope_id": scope.id,
                    "query_sha256": query_hash,
                    "filter": filter,
                    "k": k,
                    "returned": chunks.iter().map(|c| c.chunk_id.clone()).collect::<Vec<_>>(),
                    "denied": denied,
                }),
            )
            .await
            .map_err(crate::error::ServiceError::from)?; // fail closed: no results without their audit record

        // What an agent retrieves counts toward its next post (SECURITY-CASES 28).
        self.marks
            .raise_stored(p, chunks.iter().map(|c| c.label.as_str()));
        Ok(Retrieval {
            scope: scope.spec.name.clone(),
            chunks,
            denied: denied.len(),
        })
    }

    /// Load the hits' rows and keep those Cedar permits, best first, at most `k`.
    pub(super) async fn recheck(
        &self,
        p: &Principal,
        rule: &ScopeRule,
        hits: &[warroom_knowledge::store::Hit],
        k: usize,
    ) -> KnowledgeResult<(Vec<RetrievedChunk>, Vec<String>)> {
        let ids: Vec<String> = hits.iter().map(|h| h.chunk_id.to_string()).collect();
        let (rows, docs) = self.chunks_with_documents(&ids).await?;
        let mut out = Vec::new();
        let mut denied = Vec::new();
        for hit in hits {
            let id = hit.chunk_id.to_string();
            // Vectors without rows are leftovers of a replaced or deleted document.
            let Some(c) = rows.get(&id) else { continue };
            let Some(d) = docs.get(&c.document_id) else {
                continue;
            };
            let attrs = chunk_attrs(&id, d)?;
            if !self.authz.retrieve_chunk(p, rule, &attrs) {
                tracing::error!(
                    principal = %p.id,
                    chunk = %id,
                    document = %d.id,
                    label = %d.label,
                    "POLICY MISMATCH: the vector store returned a chunk the policy denies; dropped"
                );
                denied.push(id);
                continue;
            }
            if out.len() < k {
                out.push(retrieved_chunk(c, d, hit.score));
            }
        }
        Ok((out, denied))
    }

    /// Chunk rows by id, and their documents' metadata by id.
    pub(super) async fn chunks_with_documents(
        &self,
        ids: &[String],
    ) -> KnowledgeResult<(
        HashMap<String, chunk::Model>,
        HashMap<String, document::Model>,
    )> {
        let rows: HashMap<String, chunk::Model> = chunk::Entity::find()
            .filter(chunk::Column::Id.is_in(ids.to_vec()))
            .all(&self.db)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect();
        let doc_ids: Vec<String> = rows.values().map(|c| c.document_id.clone()).collect();
        let docs = self
            .docs_meta(&doc_ids)
            .await?
            .into_iter()
            .map(|d| (d.id.clone(), d))
            .collect();
        Ok((rows, docs))
    }

    /// Documents' metadata without bodies.
    pub(super) async fn docs_meta(&self, ids: &[String]) -> KnowledgeResult<Vec<document::Model>> {
        let mut out = Vec::new();
        for batch in ids.chunks(500) {
            let rows = document::Entity::find()
                .filter(document::Column::Id.is_in(batch.to_vec()))
                .all(&self.db)
                .await
                .map_err(internal)?;
            out.extend(rows.into_iter().map(|mut d| {
                d.body.clear();
                d
            }));
        }
        Ok(out)
    }

    /// Check the chunks a message cites: each must exist, and the poster must be allowed to
    /// retrieve it (cleared for its label and, when the poster has a scope, inside it).
    /// Returns (chunk id, document id) pairs and the join of the cited labels, which the
    /// message's label must reach.
    pub async fn check_citations(
        &self,
        p: &Principal,
        ids: &[ChunkId],
    ) -> KnowledgeResult<(Vec<(String, String)>, Option<Label>)> {
        if ids.is_empty() {
            return Ok((Vec::new(), None));
        }
        if ids.len() > 20 {
            return Err(KnowledgeError::invalid("at most 20 citations per message"));
        }
        let mut unique: Vec<String> = Vec::new();
        for id in ids {
            if uuid::Uuid::parse_str(id).is_err() {
                return Err(KnowledgeError::invalid(format!(
                    "citation {id:?} is not a chunk id"
                )));
            }
            if !unique.iter().any(|u| u == id) {
                unique.push(id.to_string());
            }
        }
        let (rows, docs) = self.chunks_with_documents(&unique).await?;
        let scope = self.scope_of(&p.user_id()).await?;
        // Without a scope, clearance alone decides: a rule that admits everything.
        let rule = scope
            .map(|s| s.rule)
            .unwrap_or_else(|| ScopeRule::within(p.clearance.clone()));
        let mut out = Vec::new();
        let mut join: Option<Label> = None;
        for id in &unique {
            let Some(c) = rows.get(id) else {
                return Err(KnowledgeError::UnknownCitation(
format!("cited chunk {id} does not exist (it may have been replaced by a newer version of its document)"),
                ));
            };
            let d = docs
                .get(&c.document_id)
                .ok_or_else(|| internal("chunk without document"))?;
            let attrs = chunk_attrs(id, d)?;
            if !self.authz.retrieve_chunk(p, &rule, &attrs) {
                self.audit
                    .record(
                        Some(&p.id),
                        "message.cite",
                        id,
                        "denied",
                        serde_json::json!({"document": d.id, "label": d.label}),
                    )
                    .await;
                return Err(KnowledgeError::forbidden(format!(
                    "you may not cite chunk {id}: it is outside your scope or clearance"
                )));
            }
            join = Some(match join {
                Some(j) => j.join(&attrs.label),
                None => attrs.label.clone(),
            });
            out.push((id.clone(), d.id.clone()));
        }
        Ok((out, join))
    }

    /// The chunks a message cites, as its reader sees them: each with its document and
    /// label, the text only when the reader is cleared for the chunk's current label (the
    /// reader may already read the message, whose label reaches the cited labels, but a
    /// reclassification can raise a chunk after the fact). Chunks that no longer exist are
    /// left out.
    pub async fn cited_chunks(
        &self,
        reader: &Principal,
        chunk_ids: &[ChunkId],
    ) -> KnowledgeResult<Vec<CitedChunk>> {
        let ids: Vec<String> = chunk_ids.iter().map(String::from).collect();
        let (rows, docs) = self.chunks_with_documents(&ids).await?;
        let mut out = Vec::new();
        for id in &ids {
            let Some(c) = rows.get(id) else { continue };
            let Some(d) = docs.get(&c.document_id) else {
                continue;
            };
            let cleared = d
                .label
                .parse::<Label>()
                .is_ok_and(|l| l.within(&reader.clearance));
            let mut chunk = retrieved_chunk(c, d, 0.0);
            if !cleared {
                chunk.text = String::new();
            }
            out.push(CitedChunk {
                chunk,
                redacted: !cleared,
            });
        }
        // Cited text an agent is handed counts toward its next post, as
        // retrieved text does (SECURITY-CASES 28).
        self.marks.raise_stored(
            reader,
            out.iter()
                .filter(|c| !c.redacted)
                .map(|c| c.chunk.label.as_str()),
        );
        Ok(out)
    }

    /// The chunk ids each of `message_ids` cites.
    pub async fn citations_of(
        &self,
        message_ids: &[MessageId],
    ) -> KnowledgeResult<HashMap<String, Vec<String>>> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for batch in message_ids.chunks(500) {
            for c in message_citation::Entity::find()
                .filter(message_citation::Column::MessageId.is_in(batch.iter().map(String::from)))
                .all(&self.db)
                .await
                .map_err(internal)?
            {
                out.entry(c.message_id).or_default().push(c.chunk_id);
            }
        }
        Ok(out)
    }
}
