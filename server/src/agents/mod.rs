//! Agents as the server knows them: users of kind `agent` with a persona,
//! template, brain, activity level, budgets and a status (active, paused,
//! retired); their saved memory; and the activity feed that wakes them.
//! Spawning creates the principals, assigns their retrieval scope and joins
//! them to their channels through the ordinary, authorized chat service.

pub mod adapter;
pub mod admin;
pub mod host;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};
use utoipa::ToSchema;
use warroom_agent_runtime::memory::Memory;
use warroom_agent_runtime::persona::{self, ActivityLevel, Persona, Template};
use warroom_agent_runtime::platform::{
    match_words, Activity, AgentRecord, InterestMatcher, Shard, WORDS_MATCHED,
};

use crate::audit::Audit;
use crate::auth::Auth;
use crate::authz::{Actor, Authz, SystemAction};
use crate::chat::Chat;
use crate::config::AgentSettings;
use crate::directory::Directory;
use crate::error::Failure;

use crate::ids::{AgentId, UserId};
use crate::knowledge::Knowledge;
use crate::label::Label;
use crate::principal::{Principal, Role, UserKind};
use crate::realtime::Hub;
use crate::storage::entities::{agent, agent_memory, membership, user};
use warroom_types::Brain;

crate::error::service_error! {
    /// Why an agents operation failed.
    pub enum AgentsError / AgentsResult {
        /// A token was asked for an agent cleared beyond the asker.
        ClearanceExceeded => Forbidden, "clearance_exceeded";
    }
    from {
        /// Joining channels and reading the agent's messages.
        Chat(crate::chat::ChatError),
        /// Scopes and retrieval.
        Knowledge(crate::knowledge::KnowledgeError),
    }
}

/// New messages, as metadata, to whoever runs agents (in process or remote).
/// Subscribers get an [`Activity`] cut for them from each [`FeedItem`]: only
/// for messages they may read, and with matches against their own interest
/// words instead of anything derived from the text.
#[derive(Clone)]
pub struct ActivityFeed {
    tx: broadcast::Sender<Arc<FeedItem>>,
    /// Authors and labels of recent top-level messages, so replies can wake them.
    roots: Arc<Mutex<RecentRoots>>,
}

#[derive(Default)]
struct RecentRoots {
    map: HashMap<String, (String, Label)>,
    order: std::collections::VecDeque<String>,
}

const RECENT_ROOTS: usize = 200_000;

/// A committed message as the activity feed holds it inside the server. It
/// never leaves the process as it is: [`FeedItem::for_reader`] makes each
/// subscriber's [`Activity`].
#[derive(Debug)]
pub struct FeedItem {
    /// What every reader of the message may learn (interests still empty).
    activity: Activity,
    /// The label of the thread's first message, when its author is known.
    root_label: Option<Label>,
    /// The message's words for interest matching; they stay in the server.
    words: Vec<String>,
}

impl FeedItem {
    /// The channel the message was posted in.
    pub fn channel_id(&self) -> &str {
        &self.activity.channel_id
    }

    /// The message's label.
    pub fn label(&self) -> &Label {
        &self.activity.label
    }

    /// The item for one subscriber: nothing unless `may_read` allows the
    /// message's label (in its channel), the thread's author only if it also
    /// allows the thread root's label, and the ids of the subscriber's
    /// interest words the message contains.
    pub fn for_reader(
        &self,
        mut may_read: impl FnMut(&Label) -> bool,
        interests: &InterestMatcher,
    ) -> Option<Activity> {
        if !may_read(&self.activity.label) {
            return None;
        }
        let mut a = self.activity.clone();
        if let Some(root) = &self.root_label {
            if !may_read(root) {
                a.thread_author_id = None;
            }
        }
        a.interests = interests.matches(&self.words);
        Some(a)
    }
}

impl Default for ActivityFeed {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(65_536);
        Self {
            tx,
            roots: Arc::default(),
        }
    }
}

/// Announces each committed message to the feed (cheap when nobody listens).
/// The label is the one the writer stored with the message, already typed.
impl crate::chat::writer::CommitListener for ActivityFeed {
    fn committed(&self, e: &crate::chat::writer::Committed<'_>) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let (m, author, label) = (e.message, e.author, e.label.clone());
        let thread_author = {
            let mut r = self.roots.lock().expect("roots lock");
            match &m.thread_root {
                Some(root) => r.map.get(root).cloned(),
                None => {
                    r.map
                        .insert(m.id.clone(), (author.id.to_string(), label.clone()));
                    r.order.push_back(m.id.clone());
                    if r.order.len() > RECENT_ROOTS {
                        if let Some(old) = r.order.pop_front() {
                            r.map.remove(&old);
                        }
                    }
                    None
                }
            }
        };
        let (thread_author_id, root_label) = thread_author.unzip();
        let _ = self.tx.send(Arc::new(FeedItem {
            activity: Activity {
                thread_author_id,
                channel_id: m.channel_id.clone(),
                seq: m.seq,
                message_id: m.id.clone(),
                author_id: author.id.to_string(),
                author_is_agent: author.kind == UserKind::Agent,
                thread_root: m.thread_root.clone(),
                label,
                mentions: e.mentions.to_vec(),
                interests: Vec::new(),
            },
            root_label,
            words: match_words(&m.body, WORDS_MATCHED),
        }));
    }
}

impl ActivityFeed {
    /// Listen from now on. Each item must go through
    /// [`FeedItem::for_reader`] before it leaves the process.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<FeedItem>> {
        self.tx.subscribe()
    }

    /// The feed for the in-process agent runtime, matched against its
    /// interest words. The runtime is the server itself and drives every
    /// agent; each agent still reads a message only as itself.
    pub fn in_process(&self, interests: InterestMatcher) -> mpsc::Receiver<Activity> {
        let mut rx = self.subscribe();
        let (tx, out) = mpsc::channel(65_536);
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match rx.recv().await {
                    Ok(item) => {
                        let Some(a) = item.for_reader(|_| true, &interests) else {
                            continue;
                        };
                        if tx.send(a).await.is_err() {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "agent runtime fell behind the activity feed");
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
        out
    }
}

/// An agent's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Paused,
    Retired,
}

impl Status {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Paused => "paused",
            Status::Retired => "retired",
        }
    }

    /// Parse a status from input.
    pub fn parse(raw: &str) -> AgentsResult<Self> {
        match raw {
            "active" => Ok(Status::Active),
            "paused" => Ok(Status::Paused),
            "retired" => Ok(Status::Retired),
            other => Err(AgentsError::invalid(format!(
                "status {other:?} must be active, paused or retired"
            ))),
        }
    }
}

/// A request to spawn agents from a template.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpawnRequest {
    /// A template name, e.g. `sales-analyst` (see `GET /api/v1/agents/templates`).
    pub template: String,
    /// How many agents (1-100000 per request).
    pub count: u32,
    /// The retrieval scope (name or id); default `dept-<department>`.
    pub scope: Option<String>,
    /// `extractive`, `local` or `openai`; default from the server's `[agents]` settings.
    pub brain: Option<Brain>,
    /// `low`, `medium` or `high`; default the template's.
    pub activity: Option<String>,
    /// Channels to join (names); default `war-room` and the department's channel.
    pub channels: Option<Vec<String>>,
    /// Budgets per agent per hour (0 or absent: the runtime default).
    pub tokens_per_hour: Option<u32>,
    pub turns_per_hour: Option<u32>,
}

/// An agent as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentView {
    pub id: String,
    pub handle: String,
    pub template: String,
    #[schema(value_type = Object)]
    pub persona: Persona,
    pub activity: String,
    pub brain: String,
    pub status: String,
    pub clearance: String,
    pub scope: Option<String>,
    pub tokens_per_hour: u32,
    pub turns_per_hour: u32,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// What the agent did so far (from its memory).
    #[schema(value_type = Object)]
    pub stats: Option<warroom_agent_runtime::memory::Stats>,
    pub last_turn: Option<u64>,
}

/// What a spawn produced.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpawnOutcome {
    pub spawned: usize,
    pub template: String,
    pub scope: String,
    pub channels: Vec<String>,
    /// The first few agents (all of them when fewer than 50).
    pub agents: Vec<AgentView>,
}

/// One page of agents for a runtime.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RuntimePage {
    #[schema(value_type = Vec<Object>)]
    pub agents: Vec<AgentRecord>,
    /// Pass as `after` for the next page; absent on the last.
    pub next_after: Option<String>,
}

/// Saves memories in the background, many per transaction.
#[derive(Clone)]
struct MemoryWriter {
    tx: mpsc::Sender<MemoryOp>,
    pending: Arc<Mutex<HashMap<String, String>>>,
}

enum MemoryOp {
    Save(String),
    Flush(oneshot::Sender<()>),
}

impl MemoryWriter {
    fn start(db: DatabaseConnection, gate: crate::storage::WriteGate) -> Self {
        let (tx, mut rx) = mpsc::channel::<MemoryOp>(65_536);
        let pending: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let p2 = pending.clone();
        // Weak, so the writer still ends when the last sender goes.
        let requeue = tx.downgrade();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut waiters = Vec::new();
                let mut ops = vec![first];
                while let Ok(op) = rx.try_recv() {
                    ops.push(op);
                    if ops.len() >= 4096 {
                        break;
                    }
                }
                let mut ids = Vec::new();
                for op in ops {
                    match op {
                        MemoryOp::Save(id) => ids.push(id),
                        MemoryOp::Flush(w) => waiters.push(w),
                    }
                }
                // Pending memories stay readable until they are stored: a
                // read between taking and committing them would see nothing.
                let batch: Vec<(String, String)> = {
                    let p = p2.lock().expect("memory lock");
                    ids.iter()
                        .filter_map(|id| p.get(id).map(|d| (id.clone(), d.clone())))
                        .collect()
                };
                if !batch.is_empty() {
                    let _gate = gate.enter().await;
                    match write_memories(&db, &batch).await {
                        Ok(()) => {
                            let mut p = p2.lock().expect("memory lock");
                            for (id, data) in &batch {
                                if p.get(id) == Some(data) {
                                    p.remove(id);
                                } else {
                                    // Saved again meanwhile: write the newer one next.
                                    if let Some(tx) = requeue.upgrade() {
                                        let _ = tx.try_send(MemoryOp::Save(id.clone()));
                                    }
                                }
                            }
                        }
                        Err(e) => {
                            let mut p = p2.lock().expect("memory lock");
                            for (id, data) in &batch {
                                if p.get(id) == Some(data) {
                                    p.remove(id);
                                }
                            }
                            tracing::error!(error = %e, n = batch.len(), "agent memories not saved");
                        }
                    }
                }
                for w in waiters {
                    let _ = w.send(());
                }
            }
        });
        Self { tx, pending }
    }
}

async fn write_memories(
    db: &DatabaseConnection,
    batch: &[(String, String)],
) -> Result<(), sea_orm::DbErr> {
    use sea_orm::sea_query::OnConflict;
    let txn = crate::storage::begin_write(db).await?;
    let now = chrono::Utc::now();
    for chunk in batch.chunks(200) {
        let rows = chunk.iter().map(|(id, data)| agent_memory::ActiveModel {
            agent_id: Set(id.clone()),
            data: Set(data.clone()),
            updated_at: Set(now),
        });
        agent_memory::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(agent_memory::Column::AgentId)
                    .update_columns([agent_memory::Column::Data, agent_memory::Column::UpdatedAt])
                    .to_owned(),
            )
            .exec(&txn)
            .await?;
    }
    txn.commit().await
}

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

/// The agents service.
pub struct Agents {
    db: DatabaseConnection,
    settings: AgentSettings,
    chat: Chat,
    knowledge: Arc<Knowledge>,
    audit: Arc<Audit>,
    authz: Arc<Authz>,
    auth: Arc<Auth>,
    directory: Arc<Directory>,
    hub: Arc<Hub>,
    feed: ActivityFeed,
    memory: MemoryWriter,
    /// Templates added at run time (an evaluation corpus's departments);
    /// they take precedence over built-in ones of the same name.
    extra_templates: std::sync::RwLock<Vec<Template>>,
}

/// What [`Agents::new`] is built from.
pub struct AgentsParts {
    pub db: DatabaseConnection,
    pub settings: AgentSettings,
    pub chat: Chat,
    pub knowledge: Arc<Knowledge>,
    pub audit: Arc<Audit>,
    pub authz: Arc<Authz>,
    pub auth: Arc<Auth>,
    pub directory: Arc<Directory>,
    pub hub: Arc<Hub>,
    pub feed: ActivityFeed,
    pub gate: crate::storage::WriteGate,
}

fn parse_persona(raw: &str) -> Persona {
    serde_json::from_str(raw).unwrap_or_else(|_| Persona {
        name: "unknown".into(),
        department: String::new(),
        role: String::new(),
        seniority: String::new(),
        interests: vec![],
        voice: String::new(),
    })
}

fn view(
    a: &agent::Model,
    u: &user::Model,
    scope: Option<String>,
    memory: Option<&Memory>,
) -> AgentView {
    AgentView {
        id: u.id.clone(),
        handle: u.handle.clone(),
        template: a.template.clone(),
        persona: parse_persona(&a.persona),
        activity: a.activity.clone(),
        brain: a.brain.clone(),
        status: a.status.clone(),
        clearance: u.clearance.clone(),
        scope,
        tokens_per_hour: a.tokens_per_hour as u32,
        turns_per_hour: a.turns_per_hour as u32,
        created_at: a.created_at,
        stats: memory.map(|m| m.stats.clone()),
        last_turn: memory.and_then(|m| m.last_turn),
    }
}

impl Agents {
    /// The service over `p.db`, publishing to `p.feed`.
    pub fn new(p: AgentsParts) -> Self {
        Self {
            memory: MemoryWriter::start(p.db.clone(), p.gate),
            db: p.db,
            settings: p.settings,
            chat: p.chat,
            knowledge: p.knowledge,
            audit: p.audit,
            authz: p.authz,
            auth: p.auth,
            directory: p.directory,
            hub: p.hub,
            feed: p.feed,
            extra_templates: Default::default(),
        }
    }

    /// The activity feed.
    pub fn feed(&self) -> &ActivityFeed {
        &self.feed
    }

    /// The templates agents can be spawned from.
    pub fn templates(&self) -> Vec<Template> {
        let extra = self.extra_templates.read().expect("templates lock").clone();
        let mut all: Vec<Template> = persona::builtin_templates()
            .into_iter()
            .filter(|t| !extra.iter().any(|e| e.name == t.name))
            .collect();
        all.extend(extra);
        all
    }

    /// A template by name.
    pub fn template(&self, name: &str) -> Option<Template> {
        self.templates().into_iter().find(|t| t.name == name)
    }

    /// Add (or replace) templates for this process.
    pub fn register_templates(&self, templates: Vec<Template>) {
        let mut extra = self.extra_templates.write().expect("templates lock");
        for t in templates {
            extra.retain(|e| e.name != t.name);
            extra.push(t);
        }
    }

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
                clearance: Set(clearance.to_string()),
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

    async fn scope_names(&self, ids: &[AgentId]) -> AgentsResult<HashMap<String, String>> {
        let ids: Vec<UserId> = ids.iter().map(AgentId::user).collect();
        Ok(self.knowledge.scope_names_of(&ids).await?)
    }

    /// Views of these agents, in order, with their stats.
    pub async fn views(&self, ids: &[AgentId]) -> AgentsResult<Vec<AgentView>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let raw: Vec<String> = ids.iter().map(String::from).collect();
        let agents: HashMap<String, agent::Model> = agent::Entity::find()
            .filter(agent::Column::UserId.is_in(raw.iter().cloned()))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|a| (a.user_id.clone(), a))
            .collect();
        let users: HashMap<String, user::Model> = user::Entity::find()
            .filter(user::Column::Id.is_in(raw.iter().cloned()))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|u| (u.id.clone(), u))
            .collect();
        let memories: HashMap<String, Memory> = agent_memory::Entity::find()
            .filter(agent_memory::Column::AgentId.is_in(raw.iter().cloned()))
            .all(&self.db)
            .await?
            .into_iter()
            .filter_map(|m| serde_json::from_str(&m.data).ok().map(|d| (m.agent_id, d)))
            .collect();
        let scopes = self.scope_names(ids).await?;
        Ok(ids
            .iter()
            .filter_map(|id| {
                let id = id.as_str();
                let (a, u) = (agents.get(id)?, users.get(id)?);
                Some(view(a, u, scopes.get(id).cloned(), memories.get(id)))
            })
            .collect())
    }

    /// A page of agents, newest first, optionally by status and template.
    pub async fn list(
        &self,
        actor: Actor<'_>,
        status: Option<&str>,
        template: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> AgentsResult<(Vec<AgentView>, u64)> {
        self.authz.permit(actor, SystemAction::AgentView)?;
        let mut q = agent::Entity::find();
        if let Some(s) = status {
            q = q.filter(agent::Column::Status.eq(Status::parse(s)?.as_str()));
        }
        if let Some(t) = template {
            q = q.filter(agent::Column::Template.eq(t));
        }
        let total = q.clone().count(&self.db).await?;
        let ids: Vec<AgentId> = q
            .order_by_desc(agent::Column::CreatedAt)
            .order_by_asc(agent::Column::UserId)
            .offset(offset)
            .limit(limit.clamp(1, 500))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|a| AgentId::from_trusted(a.user_id))
            .collect();
        Ok((self.views(&ids).await?, total))
    }

    /// One agent.
    pub async fn get(&self, actor: Actor<'_>, id: &AgentId) -> AgentsResult<AgentView> {
        self.authz.permit(actor, SystemAction::AgentView)?;
        self.view_of(id).await
    }

    async fn view_of(&self, id: &AgentId) -> AgentsResult<AgentView> {
        self.views(std::slice::from_ref(id))
            .await?
            .pop()
            .ok_or_else(|| AgentsError::not_found("agent"))
    }

    /// Pause, resume or retire an agent. Retiring deactivates its principal
    /// (it can no longer act, and its sockets close) and cannot be undone.
    pub async fn set_status(
        &self,
        actor: &Principal,
        id: &AgentId,
        status: Status,
    ) -> AgentsResult<AgentView> {
        self.authz
            .permit(Actor::Principal(actor), SystemAction::AgentManage)?;
        let row = agent::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .ok_or_else(|| AgentsError::not_found("agent"))?;
        if row.status == Status::Retired.as_str() && status != Status::Retired {
            return Err(AgentsError::conflict(
                "a retired agent cannot come back; spawn a new one",
            ));
        }
        let txn = crate::storage::begin_write(&self.db).await?;
        agent::Entity::update_many()
            .col_expr(
                agent::Column::Status,
                sea_orm::sea_query::Expr::value(status.as_str()),
            )
            .col_expr(
                agent::Column::UpdatedAt,
                sea_orm::sea_query::Expr::value(chrono::Utc::now()),
            )
            .filter(agent::Column::UserId.eq(id.as_str()))
            .exec(&txn)
            .await?;
        // The server enforces the status, not the worker: a paused or retired
        // agent's account is inactive, so its tokens, posts, retrievals and
        // sockets stop working at once (SECURITY-CASES 27); resuming
        // reactivates it.
        user::Entity::update_many()
            .col_expr(
                user::Column::Active,
                sea_orm::sea_query::Expr::value(status == Status::Active),
            )
            .filter(user::Column::Id.eq(id.as_str()))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        self.directory.invalidate(&id.user());
        if status != Status::Active {
            self.hub.close_user(
                &id.user(),
                crate::realtime::CloseReason {
                    code: crate::realtime::CLOSE_REVOKED,
                    reason: format!("agent {}", status.as_str()),
                },
            );
        }
        self.audit
            .record(
                Some(&actor.id),
                &format!("agent.{}", status.as_str()),
                id,
                "ok",
                serde_json::json!({}),
            )
            .await;
        self.view_of(id).await
    }

    /// Agents a runtime shard drives (active and paused), a page at a time, by id.
    pub async fn runtime_page(
        &self,
        actor: Actor<'_>,
        shard: Shard,
        after: Option<&AgentId>,
        limit: u64,
    ) -> AgentsResult<RuntimePage> {
        self.authz.permit(actor, SystemAction::AgentRun)?;
        let limit = limit.clamp(1, 10_000);
        let mut q = agent::Entity::find()
            .filter(agent::Column::Status.ne(Status::Retired.as_str()))
            .order_by_asc(agent::Column::UserId)
            .limit(limit);
        if let Some(a) = after {
            q = q.filter(agent::Column::UserId.gt(a.as_str()));
        }
        let rows = q.all(&self.db).await?;
        let next_after = (rows.len() as u64 == limit)
            .then(|| rows.last().map(|r| r.user_id.clone()))
            .flatten();
        let rows: Vec<agent::Model> = rows
            .into_iter()
            .filter(|r| shard.owns(&r.user_id))
            .collect();
        let ids: Vec<String> = rows.iter().map(|r| r.user_id.clone()).collect();
        let mut channels: HashMap<String, Vec<String>> = HashMap::new();
        let mut handles: HashMap<String, (String, String)> = HashMap::new();
        for chunk in ids.chunks(500) {
            for m in membership::Entity::find()
                .filter(membership::Column::UserId.is_in(chunk.iter().cloned()))
                .all(&self.db)
                .await?
            {
                channels.entry(m.user_id).or_default().push(m.channel_id);
            }
            for u in user::Entity::find()
                .filter(user::Column::Id.is_in(chunk.iter().cloned()))
                .all(&self.db)
                .await?
            {
                handles.insert(u.id, (u.handle, u.display_name));
            }
        }
        let agents = rows
            .into_iter()
            .filter_map(|r| {
                let (handle, name) = handles.remove(&r.user_id)?;
                Some(AgentRecord {
                    channels: channels.remove(&r.user_id).unwrap_or_default(),
                    activity: ActivityLevel::parse(&r.activity).unwrap_or(ActivityLevel::Low),
                    paused: r.status == Status::Paused.as_str(),
                    tokens_per_hour: r.tokens_per_hour as u32,
                    turns_per_hour: r.turns_per_hour as u32,
                    template: r.template,
                    brain: r.brain,
                    id: r.user_id,
                    handle,
                    name,
                })
            })
            .collect();
        Ok(RuntimePage { agents, next_after })
    }

    /// An agent's saved memory.
    pub async fn memory(&self, id: &AgentId) -> AgentsResult<Option<Memory>> {
        if let Some(d) = self
            .memory
            .pending
            .lock()
            .expect("memory lock")
            .get(id.as_str())
        {
            return Ok(serde_json::from_str(d).ok());
        }
        Ok(agent_memory::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .and_then(|m| serde_json::from_str(&m.data).ok()))
    }

    /// Memory as the server labels it for readers other than the agent: each
    /// note at least the current label of the message it came from (the
    /// agent's clearance when that message is unknown), the summary at least
    /// the agent's clearance, since the server cannot see what went into it.
    /// An agent cannot lower the label its memory is shown at.
    pub async fn labelled_memory(
        &self,
        mut m: Memory,
        agent_clearance: &Label,
    ) -> AgentsResult<Memory> {
        use crate::storage::entities::message;
        let ids: Vec<String> = m.recent.iter().map(|n| n.message_id.clone()).collect();
        let mut current: HashMap<String, Label> = HashMap::new();
        for chunk in ids.chunks(500) {
            let rows: Vec<(String, String)> = message::Entity::find()
                .select_only()
                .column(message::Column::Id)
                .column(message::Column::Label)
                .filter(message::Column::Id.is_in(chunk.to_vec()))
                .into_tuple()
                .all(&self.db)
                .await?;
            for (id, label) in rows {
                let label = Label::from_stored(&label, agent_clearance);
                current.insert(id, label);
            }
        }
        for n in &mut m.recent {
            let source = current.get(&n.message_id).unwrap_or(agent_clearance);
            n.label = n.label.join(source);
        }
        if !m.summary.is_empty() {
            m.summary_label = Some(match &m.summary_label {
                Some(l) => l.join(agent_clearance),
                None => agent_clearance.clone(),
            });
        }
        Ok(m)
    }

    /// Save an agent's memory (written in the background, batched).
    pub async fn save_memory(&self, id: &AgentId, memory: &Memory) -> AgentsResult<()> {
        let data = serde_json::to_string(memory).map_err(AgentsError::internal)?;
        if data.len() > 64 * 1024 {
            return Err(AgentsError::invalid("agent memory is limited to 64 KiB"));
        }
        let fresh = self
            .memory
            .pending
            .lock()
            .expect("memory lock")
            .insert(id.to_string(), data)
            .is_none();
        if fresh {
            self.memory
                .tx
                .send(MemoryOp::Save(id.to_string()))
                .await
                .map_err(|_| AgentsError::internal("memory writer stopped"))?;
        }
        Ok(())
    }

    /// Wait until every memory saved so far is written.
    pub async fn flush_memory(&self) {
        let (tx, rx) = oneshot::channel();
        if self.memory.tx.send(MemoryOp::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Whether `id` is an agent (retired or not).
    pub async fn exists(&self, id: &AgentId) -> AgentsResult<bool> {
        Ok(agent::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .is_some())
    }
}
