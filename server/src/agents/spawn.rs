//! Spawning: validate a request against the template, the scope and the
//! channels' labels, write the principals, agent rows and scope assignments
//! in one transaction, then join each agent to its channels as itself.

use std::sync::Arc;

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set};
use warroom_agent_runtime::persona::{self, ActivityLevel, Template};

use super::{Agents, AgentsError, AgentsResult, SpawnOutcome, SpawnRequest, Status};
use crate::authz::{Actor, SystemAction};
use crate::error::Failure;
use crate::ids::AgentId;
use crate::label::Label;
use crate::principal::{Principal, Role, UserKind};
use crate::storage::entities::{agent, user};
use warroom_types::Brain;

/// Label and topic of a channel spawning creates: `dept-<d>` is
/// `confidential:<d>` (only that department's cleared people and agents can
/// join it); any other name is `internal`.
fn new_channel_label(name: &str, template: &Template) -> (Label, String) {
    match name.strip_prefix("dept-") {
        Some(d) => (
            Label {
                level: crate::label::Level::Confidential,
                compartments: [d.to_string()].into_iter().collect(),
            },
            format!("The {d} department: its people and agents"),
        ),
        None => (
            Label::level(crate::label::Level::Internal),
            format!("Cross-department talk ({} and others)", template.department),
        ),
    }
}
impl Agents {
    /// Spawn `req.count` agents as `actor` (an admin). Everything is
    /// validated first; the principals, agent rows and scope assignments are
    /// written in one transaction, then each agent joins its channels through
    /// the chat service (authorized as the agent).
    pub async fn spawn(
        &self,
        actor: &Principal,
        req: SpawnRequest,
        max_count: u32,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> AgentsResult<SpawnOutcome> {
        self.authz
            .permit(Actor::Principal(actor), SystemAction::AgentManage)?;
        let template = self.template(&req.template).ok_or_else(|| {
            AgentsError::invalid(format!(
                "unknown template {:?}; see GET /api/v1/agents/templates",
                req.template
            ))
        })?;
        if req.count == 0 || req.count > max_count {
            return Err(AgentsError::invalid(format!("count must be 1-{max_count}")));
        }
        let brain = req.brain.unwrap_or(self.settings.brain);
        let activity = match &req.activity {
            Some(a) => ActivityLevel::parse(a).map_err(AgentsError::invalid)?,
            None => template.activity,
        };
        let scope_name = req
            .scope
            .clone()
            .unwrap_or_else(|| format!("dept-{}", template.department));
        let scope_ref = crate::ids::ScopeId::parse(&scope_name)?;
        let scope = self.knowledge.find_scope(&scope_ref).await.map_err(|e| match e {
            crate::knowledge::KnowledgeError::NotFound(_) => AgentsError::invalid(format!(
                "scope {scope_name:?} does not exist; create it first (POST /api/v1/scopes) or pass another scope"
            )),
            e => AgentsError::from(e),
        })?;
        // An agent is cleared for exactly what its scope may show it.
        let clearance: Label = crate::chat::stored_label(&scope.spec.max_label)?;
        let channel_names = req.channels.clone().unwrap_or_else(|| {
            vec![
                "war-room".to_string(),
                format!("dept-{}", template.department),
            ]
        });
        if channel_names.len() > 20 {
            return Err(AgentsError::invalid("at most 20 channels"));
        }
        // Existing channels, or the label a missing one will get.
        let mut planned: Vec<(
            String,
            Option<crate::chat::views::ChannelView>,
            Label,
            String,
        )> = Vec::new();
        for name in &channel_names {
            let existing = self.find_channel(name).await?;
            let (label, topic) = match &existing {
                Some(c) => (crate::chat::stored_label(&c.label)?, c.topic.clone()),
                None => new_channel_label(name, &template),
            };
            if !label.within(&clearance) {
                return Err(AgentsError::invalid(format!(
                    "channel {name} is labelled {label}, above what scope {scope_name} clears agents for ({clearance})"
                )));
            }
            planned.push((name.clone(), existing, label, topic));
        }
        let (ids, rows, agent_rows) = self
            .new_rows(
                &template, &req, brain, activity, &clearance, actor, req.count,
            )
            .await?;
        let txn = crate::storage::begin_write(&self.db).await?;
        for chunk in rows.chunks(200) {
            user::Entity::insert_many(chunk.to_vec()).exec(&txn).await?;
        }
        for chunk in agent_rows.chunks(200) {
            agent::Entity::insert_many(chunk.to_vec())
                .exec(&txn)
                .await?;
        }
        self.knowledge
            .assign_scopes_in(
                &txn,
                &ids.iter().map(AgentId::user).collect::<Vec<_>>(),
                &crate::ids::ScopeId::from_trusted(scope.id.as_str()),
            )
            .await?;
        txn.commit().await?;
        self.audit
            .record(
                Some(&actor.id),
                "agent.spawn",
                &scope.id,
                "ok",
                serde_json::json!({"template": template.name, "count": ids.len(), "brain": brain, "scope": scope_name}),
            )
            .await;
        // Missing channels are created by the spawning admin, or, when it is
        // not cleared for their label (a department's compartment), by the
        // first new agent.
        let mut channels = Vec::new();
        for (name, existing, label, topic) in planned {
            let c = match existing {
                Some(c) => c,
                None => {
                    let creator = if label.within(&actor.clearance) {
                        Arc::new(actor.clone())
                    } else {
                        self.directory
                            .get(&ids[0].user())
                            .await?
                            .ok_or_else(|| AgentsError::internal("spawned agent vanished"))?
                    };
                    let req = crate::chat::CreateChannel {
                        name: name.clone(),
                        visibility: "public".into(),
                        label: Some(label.to_string()),
                        topic: Some(topic),
                    };
                    match self.chat.create_channel(&creator, req).await {
                        Ok(c) => c,
                        // Someone created it meanwhile.
                        Err(e) if e.kind() == crate::error::ErrorKind::Conflict => self
                            .find_channel(&name)
                            .await?
                            .ok_or_else(|| AgentsError::internal("channel vanished"))?,
                        Err(e) => return Err(e.into()),
                    }
                }
            };
            channels.push(c);
        }
        self.join_all(&ids, &channels, progress).await?;
        let shown: Vec<AgentId> = ids.iter().take(50).cloned().collect();
        let agents = self.views(&shown).await?;
        Ok(SpawnOutcome {
            spawned: ids.len(),
            template: template.name,
            scope: scope_name,
            channels: channel_names,
            agents,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn new_rows(
        &self,
        template: &Template,
        req: &SpawnRequest,
        brain: Brain,
        activity: ActivityLevel,
        clearance: &Label,
        actor: &Principal,
        count: u32,
    ) -> AgentsResult<(
        Vec<AgentId>,
        Vec<user::ActiveModel>,
        Vec<agent::ActiveModel>,
    )> {
        let existing = agent::Entity::find()
            .filter(agent::Column::Template.eq(template.name.as_str()))
            .count(&self.db)
            .await?;
        let now = chrono::Utc::now();
        let mut users = Vec::with_capacity(count as usize);
        let mut agents = Vec::with_capacity(count as usize);
        let mut ids = Vec::with_capacity(count as usize);
        for i in 0..count as u64 {
            let n = existing + i + 1;
            let id = uuid::Uuid::now_v7().to_string();
            ids.push(AgentId::from_trusted(id.clone()));
            let name = persona::agent_name(&template.name, n);
            let p = template.persona(&name);
            users.push(user::ActiveModel {
                id: Set(id.clone()),
                handle: Set(format!("{}-{n}", template.name)),
                display_name: Set(name),
                kind: Set(UserKind::Agent.as_str().into()),
                role: Set(Role::Agent.as_str().into()),
                department: Set(Some(template.department.clone())),
                clearance: Set(clearance.clone()),
                password_hash: Set(None),
                active: Set(true),
                created_at: Set(now),
            });
            agents.push(agent::ActiveModel {
                user_id: Set(id),
                template: Set(template.name.clone()),
                persona: Set(serde_json::to_string(&p).expect("persona serializes")),
                activity: Set(activity.as_str().into()),
                brain: Set(brain.as_str().to_string()),
                status: Set(Status::Active.as_str().into()),
                tokens_per_hour: Set(req.tokens_per_hour.unwrap_or(0) as i64),
                turns_per_hour: Set(req.turns_per_hour.unwrap_or(0) as i64),
                created_by: Set(actor.id.to_string()),
                created_at: Set(now),
                updated_at: Set(now),
            });
        }
        Ok((ids, users, agents))
    }

    /// A public or private channel by name.
    async fn find_channel(
        &self,
        name: &str,
    ) -> AgentsResult<Option<crate::chat::views::ChannelView>> {
        use crate::storage::entities::channel;
        Ok(channel::Entity::find()
            .filter(channel::Column::Name.eq(name))
            .filter(channel::Column::Visibility.ne("direct"))
            // Names may repeat across channels readers cannot see; the
            // oldest is the one meant.
            .order_by_asc(channel::Column::CreatedAt)
            .one(&self.db)
            .await?
            .map(|c| crate::chat::views::channel_view(&c)))
    }

    async fn join_all(
        &self,
        ids: &[AgentId],
        channels: &[crate::chat::views::ChannelView],
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> AgentsResult<()> {
        use futures_util::stream::{self, StreamExt};
        let total = ids.len();
        let mut done = 0;
        let mut joins = stream::iter(ids.iter().cloned().map(|id| async move {
            let p = self
                .directory
                .get(&id.user())
                .await?
                .ok_or_else(|| AgentsError::internal("spawned agent vanished"))?;
            for c in channels {
                self.chat
                    .join(&p, &crate::ids::ChannelId::from_trusted(c.id.clone()))
                    .await?;
            }
            Ok::<(), AgentsError>(())
        }))
        .buffer_unordered(256);
        while let Some(r) = joins.next().await {
            r?;
            done += 1;
            if done % 1000 == 0 || done == total {
                progress(done, total);
            }
        }
        Ok(())
    }
}
