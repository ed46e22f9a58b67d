//! Scopes: which documents a principal may retrieve, their assignment to
//! users, and previews of what a scope grants.

use super::ingest::payload;
use super::*;
use crate::ids::UserId;

/// What a scope can see.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ScopePreview {
    pub documents: usize,
    pub chunks: usize,
    pub by_collection: BTreeMap<String, usize>,
    pub by_department: BTreeMap<String, usize>,
    pub by_label: BTreeMap<String, usize>,
    /// Sample chunks, only from documents the viewer is cleared for.
    pub samples: Vec<RetrievedChunk>,
}

impl Knowledge {
    // ---- scopes ----------------------------------------------------------------------------

    /// Every scope, by name (scope managers).
    pub async fn scopes(&self, actor: Actor<'_>) -> KnowledgeResult<Vec<Scope>> {
        self.authz.permit(actor, SystemAction::ScopeManage)?;
        self.scope_rows().await
    }

    async fn scope_rows(&self) -> KnowledgeResult<Vec<Scope>> {
        scope_e::Entity::find()
            .order_by_asc(scope_e::Column::Name)
            .all(&self.db)
            .await
            .map_err(internal)?
            .iter()
            .map(Scope::from_model)
            .collect()
    }

    /// A scope by id or by name (scope managers).
    pub async fn scope(&self, actor: Actor<'_>, id_or_name: &ScopeId) -> KnowledgeResult<Scope> {
        self.authz.permit(actor, SystemAction::ScopeManage)?;
        self.find_scope(id_or_name).await
    }

    /// A scope by id or by name, for a service acting on a request it has
    /// already authorized (spawning agents into a scope).
    pub async fn find_scope(&self, id_or_name: &ScopeId) -> KnowledgeResult<Scope> {
        let m = scope_e::Entity::find()
            .filter(
                sea_orm::Condition::any()
                    .add(scope_e::Column::Id.eq(id_or_name.as_str()))
                    .add(scope_e::Column::Name.eq(id_or_name.to_ascii_lowercase())),
            )
            .one(&self.db)
            .await
            .map_err(internal)?
            .ok_or_else(|| KnowledgeError::not_found("scope"))?;
        Scope::from_model(&m)
    }

    /// Create (`id` None) or replace a scope.
    pub async fn put_scope(
        &self,
        actor: Actor<'_>,
        id: Option<&ScopeId>,
        spec: ScopeSpec,
    ) -> KnowledgeResult<Scope> {
        self.authz.permit(actor, SystemAction::ScopeManage)?;
        self.forget_scopes();
        let (spec, rule) = spec.validate()?;
        let now = chrono::Utc::now();
        let [collections, departments, tags, exc_c, exc_d, exc_t] = Scope::columns(&spec);
        let (id, created_at) = match id {
            Some(id) => {
                let cur = self.find_scope(id).await?;
                let m = scope_e::Entity::find_by_id(&cur.id)
                    .one(&self.db)
                    .await
                    .map_err(internal)?
                    .ok_or_else(|| KnowledgeError::not_found("scope"))?;
                (cur.id, m.created_at)
            }
            None => (uuid::Uuid::now_v7().to_string(), now),
        };
        let model = scope_e::ActiveModel {
            id: Set(id.clone()),
            name: Set(spec.name.clone()),
            description: Set(spec.description.clone()),
            collections: Set(collections),
            departments: Set(departments),
            tags: Set(tags),
            exclude_collections: Set(exc_c.unwrap_or_default()),
            exclude_departments: Set(exc_d.unwrap_or_default()),
            exclude_tags: Set(exc_t.unwrap_or_default()),
            max_label: Set(spec.max_label.clone()),
            created_at: Set(created_at),
            updated_at: Set(now),
        };
        let res = if created_at == now {
            model.insert(&self.db).await
        } else {
            model.update(&self.db).await
        };
        if let Err(e) = res {
            let msg = e.to_string();
            if msg.contains("UNIQUE") || msg.contains("unique") || msg.contains("duplicate") {
                return Err(KnowledgeError::conflict(format!(
                    "a scope named {:?} already exists",
                    spec.name
                )));
            }
            return Err(internal(e));
        }
        self.audit
            .record(
                Some(actor.user_id().as_str()),
                "scope.put",
                &id,
                "ok",
                serde_json::to_value(&spec).unwrap_or_default(),
            )
            .await;
        Ok(Scope { id, spec, rule })
    }

    /// Delete a scope that no principal uses.
    pub async fn delete_scope(&self, actor: Actor<'_>, id: &ScopeId) -> KnowledgeResult<()> {
        self.authz.permit(actor, SystemAction::ScopeManage)?;
        self.forget_scopes();
        let s = self.find_scope(id).await?;
        let users = principal_scope::Entity::find()
            .filter(principal_scope::Column::ScopeId.eq(&s.id))
            .count(&self.db)
            .await
            .map_err(internal)?;
        if users > 0 {
            return Err(KnowledgeError::conflict(format!(
                "scope {:?} is assigned to {users} principal(s); assign them another scope first",
                s.spec.name
            )));
        }
        scope_e::Entity::delete_by_id(&s.id)
            .exec(&self.db)
            .await
            .map_err(internal)?;
        self.audit
            .record(
                Some(actor.user_id().as_str()),
                "scope.delete",
                &s.id,
                "ok",
                serde_json::json!({"name": s.spec.name}),
            )
            .await;
        Ok(())
    }

    /// Assign (or with `None`, remove) the scope a principal retrieves through.
    pub async fn assign_scope(
        &self,
        actor: Actor<'_>,
        user_id: &UserId,
        scope: Option<&ScopeId>,
    ) -> KnowledgeResult<Option<Scope>> {
        self.authz.permit(actor, SystemAction::ScopeManage)?;
        self.forget_scopes();
        let txn = crate::storage::begin_write(&self.db)
            .await
            .map_err(internal)?;
        principal_scope::Entity::delete_by_id(user_id)
            .exec(&txn)
            .await
            .map_err(internal)?;
        let assigned = match scope {
            Some(s) => {
                let s = self.find_scope(s).await?;
                principal_scope::ActiveModel {
                    user_id: Set(user_id.to_string()),
                    scope_id: Set(s.id.clone()),
                    assigned_at: Set(chrono::Utc::now()),
                }
                .insert(&txn)
                .await
                .map_err(internal)?;
                Some(s)
            }
            None => None,
        };
        txn.commit().await.map_err(internal)?;
        self.audit
            .record(
                Some(actor.user_id().as_str()),
                "scope.assign",
                user_id,
                "ok",
                serde_json::json!({"scope": assigned.as_ref().map(|s| s.spec.name.clone())}),
            )
            .await;
        Ok(assigned)
    }

    /// Assign one scope to many new principals, inside the caller's transaction
    /// (spawning agents).
    pub async fn assign_scopes_in(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        user_ids: &[UserId],
        scope_id: &ScopeId,
    ) -> KnowledgeResult<()> {
        self.forget_scopes();
        let now = chrono::Utc::now();
        for chunk in user_ids.chunks(300) {
            principal_scope::Entity::insert_many(chunk.iter().map(|u| {
                principal_scope::ActiveModel {
                    user_id: Set(u.to_string()),
                    scope_id: Set(scope_id.to_string()),
                    assigned_at: Set(now),
                }
            }))
            .exec(txn)
            .await
            .map_err(internal)?;
        }
        Ok(())
    }

    /// The names of the scopes assigned to these principals.
    pub async fn scope_names_of(
        &self,
        user_ids: &[UserId],
    ) -> KnowledgeResult<HashMap<String, String>> {
        let mut out = HashMap::new();
        let names: HashMap<String, String> = self
            .scope_rows()
            .await?
            .into_iter()
            .map(|s| (s.id, s.spec.name))
            .collect();
        for chunk in user_ids.chunks(500) {
            for a in principal_scope::Entity::find()
                .filter(principal_scope::Column::UserId.is_in(chunk.iter().map(String::from)))
                .all(&self.db)
                .await
                .map_err(internal)?
            {
                if let Some(n) = names.get(&a.scope_id) {
                    out.insert(a.user_id, n.clone());
                }
            }
        }
        Ok(out)
    }

    /// The scope `user_id` retrieves through, as `asker` may see it: their
    /// own, or anyone's for scope managers.
    pub async fn scope_of_user(
        &self,
        asker: &Principal,
        user_id: &UserId,
    ) -> KnowledgeResult<Option<Scope>> {
        if asker.id != *user_id {
            self.authz
                .permit(Actor::Principal(asker), SystemAction::ScopeManage)?;
        }
        self.scope_of_uncached(user_id).await
    }

    /// The scope a principal retrieves through, if any.
    pub async fn scope_of(&self, user_id: &UserId) -> KnowledgeResult<Option<Scope>> {
        if let Some((at, s)) = self
            .scope_cache
            .lock()
            .expect("scope cache lock")
            .get(user_id.as_str())
        {
            if at.elapsed() < SCOPE_TTL {
                return Ok(s.clone());
            }
        }
        let s = self.scope_of_uncached(user_id).await?;
        let mut cache = self.scope_cache.lock().expect("scope cache lock");
        if cache.len() > 100_000 {
            cache.clear();
        }
        cache.insert(user_id.to_string(), (std::time::Instant::now(), s.clone()));
        Ok(s)
    }

    pub(super) async fn scope_of_uncached(
        &self,
        user_id: &UserId,
    ) -> KnowledgeResult<Option<Scope>> {
        let Some(a) = principal_scope::Entity::find_by_id(user_id)
            .one(&self.db)
            .await
            .map_err(internal)?
        else {
            return Ok(None);
        };
        Ok(Some(
            self.find_scope(&ScopeId::from_trusted(a.scope_id.as_str()))
                .await?,
        ))
    }

    /// What an unsaved scope definition would see (see [`Knowledge::preview`]). The
    /// permission is decided before the definition is read.
    pub async fn preview_spec(
        &self,
        viewer: &Principal,
        spec: ScopeSpec,
        samples: usize,
    ) -> KnowledgeResult<ScopePreview> {
        self.authz
            .permit(Actor::Principal(viewer), SystemAction::ScopeManage)?;
        let (_, rule) = spec.validate()?;
        self.preview(viewer, &rule, samples).await
    }

    /// What a scope can see: chunk counts per collection, department and label, and
    /// sample chunks (only those the viewer is cleared for).
    pub async fn preview(
        &self,
        viewer: &Principal,
        rule: &ScopeRule,
        samples: usize,
    ) -> KnowledgeResult<ScopePreview> {
        self.authz
            .permit(Actor::Principal(viewer), SystemAction::ScopeManage)?;
        let filter: ChunkFilter = scope::compile(rule, &rule.max_label);
        let docs = self.document_rows(None, None).await?;
        let mut preview = ScopePreview::default();
        let mut visible_docs = Vec::new();
        for d in &docs {
            let label: Label = match d.label.parse() {
                Ok(l) => l,
                Err(_) => continue,
            };
            let probe = payload(uuid::Uuid::nil(), d, &label);
            if !filter.matches(&probe) {
                continue;
            }
            let n = d.chunk_count as usize;
            preview.documents += 1;
            preview.chunks += n;
            *preview
                .by_collection
                .entry(d.collection.clone())
                .or_default() += n;
            *preview
                .by_department
                .entry(d.department.clone())
                .or_default() += n;
            *preview.by_label.entry(d.label.clone()).or_default() += n;
            if label.within(&viewer.clearance) {
                visible_docs.push(d);
            }
        }
        // Samples: the first chunk of documents spread across the visible set.
        let step = (visible_docs.len() / samples.max(1)).max(1);
        for d in visible_docs.iter().step_by(step).take(samples) {
            if let Some(c) = chunk::Entity::find()
                .filter(chunk::Column::DocumentId.eq(&d.id))
                .order_by_asc(chunk::Column::Ord)
                .one(&self.db)
                .await
                .map_err(internal)?
            {
                preview.samples.push(retrieved_chunk(&c, d, 0.0));
            }
        }
        Ok(preview)
    }
}
