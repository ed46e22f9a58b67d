//! Authorization: every API call and every event delivery is a Cedar request
//! against the schema and policies in `policies/`. Policies are validated
//! strictly when loaded, then must deny a fixed suite of requests the label
//! barriers and admin limits forbid (SECURITY-CASES 30); a set failing either
//! is refused and the last good set stays in force (fail closed, never open).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request, RestrictedExpression, Schema, ValidationMode, Validator,
};
use sha2::{Digest, Sha256};

use crate::label::Label;
use crate::metrics::Metrics;
use crate::principal::{ChannelAttrs, Principal};

const EMBEDDED_SCHEMA: &str = include_str!("../../policies/warroom.cedarschema");
const EMBEDDED_POLICIES: &str = include_str!("../../policies/chat.cedar");
const EMBEDDED_KNOWLEDGE_POLICIES: &str = include_str!("../../policies/knowledge.cedar");
const EMBEDDED_AGENT_POLICIES: &str = include_str!("../../policies/agents.cedar");
const EMBEDDED_INSIGHT_POLICIES: &str = include_str!("../../policies/insights.cedar");

/// Why a policy set was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("reading policy files in {dir}: {why}")]
    Io { dir: PathBuf, why: String },
    #[error("the Cedar schema is invalid: {0}")]
    Schema(String),
    #[error("policy file {file} does not parse: {why}")]
    Parse { file: String, why: String },
    #[error("policies fail strict validation against the schema:\n{0}")]
    Validation(String),
    #[error("the policies permit requests that every policy set must deny (label barriers, private channels and DMs, admin limits), so the set is refused:\n{0}\nnarrow or remove the permits named above, or restore the forbids they bypass")]
    Permissive(String),
}

/// Actions on a channel (the resource is a `Channel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelAction {
    Create,
    Read,
    Join,
    Leave,
    Invite,
    Update,
    Archive,
    Post,
    ReadMessage,
    Edit,
    Delete,
    React,
}

impl ChannelAction {
    fn cedar_name(self) -> &'static str {
        match self {
            ChannelAction::Create => "channel.create",
            ChannelAction::Read => "channel.read",
            ChannelAction::Join => "channel.join",
            ChannelAction::Leave => "channel.leave",
            ChannelAction::Invite => "channel.invite",
            ChannelAction::Update => "channel.update",
            ChannelAction::Archive => "channel.archive",
            ChannelAction::Post => "message.post",
            ChannelAction::ReadMessage => "message.read",
            ChannelAction::Edit => "message.edit",
            ChannelAction::Delete => "message.delete",
            ChannelAction::React => "message.react",
        }
    }
}

/// Administrative actions (the resource is the `System`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemAction {
    UserList,
    UserManage,
    AuditRead,
    PolicyReload,
    DocumentManage,
    ScopeManage,
    AgentManage,
    AgentView,
    /// Run agents: list a shard's agents, issue their tokens, stream activity.
    AgentRun,
    InsightsRead,
    InsightsRun,
}

impl SystemAction {
    fn cedar_name(self) -> &'static str {
        match self {
            SystemAction::UserList => "user.list",
            SystemAction::UserManage => "user.manage",
            SystemAction::AuditRead => "audit.read",
            SystemAction::PolicyReload => "policy.reload",
            SystemAction::DocumentManage => "document.manage",
            SystemAction::ScopeManage => "scope.manage",
            SystemAction::AgentManage => "agent.manage",
            SystemAction::AgentView => "agent.view",
            SystemAction::AgentRun => "agent.run",
            SystemAction::InsightsRead => "insights.read",
            SystemAction::InsightsRun => "insights.run",
        }
    }
}

/// A retrieval scope as policy sees it (see `knowledge::scope`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeRule {
    /// `None`: any collection.
    pub collections: Option<Vec<String>>,
    pub departments: Option<Vec<String>>,
    /// `None`: any tags; otherwise a chunk needs one of these.
    pub tags: Option<Vec<String>>,
    pub exclude_collections: Vec<String>,
    pub exclude_departments: Vec<String>,
    pub exclude_tags: Vec<String>,
    pub max_label: Label,
}

/// A chunk as policy sees it: its document's metadata and label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkAttrs {
    pub id: String,
    pub collection: String,
    pub department: String,
    pub tags: Vec<String>,
    pub label: Label,
}

/// Request facts beyond the entities' attributes.
#[derive(Debug, Clone, Default)]
pub struct ChannelCtx {
    pub is_member: bool,
    pub is_owner: bool,
    pub is_author: bool,
    pub invited: bool,
    /// Label of the message posted, edited or read; `None` for channel actions.
    pub msg_label: Option<Label>,
}

struct PolicyBundle {
    schema: Schema,
    policies: PolicySet,
    /// SHA-256 of the schema and policy texts, for the audit log.
    digest: String,
}

/// The Cedar policy engine with its currently active, validated policy set.
pub struct Authz {
    source: Option<PathBuf>,
    active: RwLock<Arc<PolicyBundle>>,
    authorizer: Authorizer,
    metrics: Arc<Metrics>,
    generation: std::sync::atomic::AtomicU64,
}

fn uid(type_name: &str, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(
        EntityTypeName::from_str(type_name).expect("static type names parse"),
        EntityId::new(id),
    )
}

fn action_uid(name: &str) -> EntityUid {
    uid("Warroom::Action", name)
}

fn string_set(items: &std::collections::BTreeSet<String>) -> RestrictedExpression {
    RestrictedExpression::new_set(
        items
            .iter()
            .map(|c| RestrictedExpression::new_string(c.clone())),
    )
}

fn compile(schema_src: &str, files: &[(String, String)]) -> Result<PolicyBundle, PolicyError> {
    let (schema, _warnings) =
        Schema::from_cedarschema_str(schema_src).map_err(|e| PolicyError::Schema(e.to_string()))?;
    let mut all = String::new();
    for (name, text) in files {
        PolicySet::from_str(text).map_err(|e| PolicyError::Parse {
            file: name.clone(),
            why: format!("{e}: {}", diagnostics(&e)),
        })?;
        all.push_str(text);
        all.push('\n');
    }
    let policies = PolicySet::from_str(&all).map_err(|e| PolicyError::Parse {
        file: "(all files)".into(),
        why: e.to_string(),
    })?;
    let result = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
    if !result.validation_passed() {
        let errors: Vec<String> = result
            .validation_errors()
            .map(|e| format!("  - {e}"))
            .collect();
        return Err(PolicyError::Validation(errors.join("\n")));
    }
    let bundle = PolicyBundle {
        schema,
        policies,
        digest: digest(schema_src, files),
    };
    barriers::check(&bundle)?;
    Ok(bundle)
}

/// SHA-256 over the schema and the policy texts in load order (not their
/// paths, so the same set hashes the same wherever it is installed).
fn digest(schema_src: &str, files: &[(String, String)]) -> String {
    let mut h = Sha256::new();
    h.update(schema_src.as_bytes());
    for (_, text) in files {
        h.update([0u8]);
        h.update(text.as_bytes());
    }
    hex::encode(h.finalize())
}

fn diagnostics(e: &cedar_policy::ParseErrors) -> String {
    e.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

fn read_dir(dir: &Path) -> Result<(String, Vec<(String, String)>), PolicyError> {
    let io = |why: String| PolicyError::Io {
        dir: dir.to_path_buf(),
        why,
    };
    let schema = std::fs::read_to_string(dir.join("warroom.cedarschema"))
        .map_err(|e| io(format!("warroom.cedarschema: {e}")))?;
    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| io(e.to_string()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cedar"))
        .collect();
    entries.sort();
    for path in entries {
        let text =
            std::fs::read_to_string(&path).map_err(|e| io(format!("{}: {e}", path.display())))?;
        files.push((path.display().to_string(), text));
    }
    if files.is_empty() {
        return Err(io("no .cedar policy files".into()));
    }
    Ok((schema, files))
}

impl Authz {
    /// Load and strictly validate the policies from `dir`, or the set built
    /// into the binary when `dir` is `None`.
    pub fn load(dir: Option<&Path>, metrics: Arc<Metrics>) -> Result<Self, PolicyError> {
        let bundle = match dir {
            Some(dir) => {
                let (schema, files) = read_dir(dir)?;
                compile(&schema, &files)?
            }
            None => compile(
                EMBEDDED_SCHEMA,
                &[
                    (
                        "policies/chat.cedar (built in)".into(),
                        EMBEDDED_POLICIES.into(),
                    ),
                    (
                        "policies/knowledge.cedar (built in)".into(),
                        EMBEDDED_KNOWLEDGE_POLICIES.into(),
                    ),
                    (
                        "policies/agents.cedar (built in)".into(),
                        EMBEDDED_AGENT_POLICIES.into(),
                    ),
                    (
                        "policies/insights.cedar (built in)".into(),
                        EMBEDDED_INSIGHT_POLICIES.into(),
                    ),
                ],
            )?,
        };
        tracing::info!(
            policies = bundle.policies.policies().count(),
            sha256 = %bundle.digest,
            "policy set validated and checked against the barrier suite"
        );
        Ok(Self {
            source: dir.map(Path::to_path_buf),
            active: RwLock::new(Arc::new(bundle)),
            authorizer: Authorizer::new(),
            metrics,
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Re-read the policy directory. On any error (including a set that
    /// permits a request of the barrier suite) the active set is kept and
    /// the error returned; policies never fail open.
    pub fn reload(&self) -> Result<usize, PolicyError> {
        let Some(dir) = &self.source else {
            return Err(PolicyError::Io {
                dir: PathBuf::from("(built in)"),
                why: "the server runs the policies built into the binary; set server.policy_dir to reload from files".into(),
            });
        };
        let (schema, files) = read_dir(dir)?;
        let bundle = compile(&schema, &files)?;
        let n = bundle.policies.policies().count();
        tracing::info!(policies = n, sha256 = %bundle.digest, "policy set reloaded");
        *self.active.write().expect("policy lock poisoned") = Arc::new(bundle);
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(n)
    }

    /// Changes whenever a new policy set becomes active (for decision caches).
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many policies are active.
    pub fn policy_count(&self) -> usize {
        self.bundle().policies.policies().count()
    }

    /// SHA-256 (hex) of the active schema and policy texts, for the audit log.
    pub fn digest(&self) -> String {
        self.bundle().digest.clone()
    }

    fn bundle(&self) -> Arc<PolicyBundle> {
        self.active.read().expect("policy lock poisoned").clone()
    }

    /// Decide `q` under the active set; a request that cannot be evaluated is denied.
    fn decide(&self, q: Query) -> bool {
        let action = q.action;
        match evaluate(&self.authorizer, &self.bundle(), q) {
            Ok(decision) => {
                self.metrics.authz_decision(decision.allowed);
                decision.allowed
            }
            Err(e) => {
                tracing::error!(action, error = %e, "authorization request could not be evaluated; denying");
                false
            }
        }
    }

    /// May `p` perform `action` on channel `c` given `ctx`?
    pub fn channel(
        &self,
        p: &Principal,
        action: ChannelAction,
        c: &ChannelAttrs,
        ctx: &ChannelCtx,
    ) -> bool {
        self.decide(Query::channel(p, action, c, ctx))
    }

    /// May `p` perform an administrative `action`?
    pub fn system(&self, p: &Principal, action: SystemAction) -> bool {
        self.decide(Query::system(p, action))
    }

    /// A service's check of an administrative act: the server itself may;
    /// a principal may when the policy allows `action` (else `forbidden`).
    pub fn permit(
        &self,
        actor: Actor<'_>,
        action: SystemAction,
    ) -> crate::error::ServiceResult<()> {
        match actor {
            Actor::Server => Ok(()),
            Actor::Principal(p) => self.require_system(p, action),
        }
    }

    /// [`Authz::system`] as a service's check: refused with `forbidden`.
    pub fn require_system(
        &self,
        p: &Principal,
        action: SystemAction,
    ) -> crate::error::ServiceResult<()> {
        if self.system(p, action) {
            Ok(())
        } else {
            Err(crate::error::ServiceError::forbidden(
                "your role does not allow this",
            ))
        }
    }

    /// May `p` receive `chunk` when retrieving under `scope`? The re-check behind the
    /// vector store's filter: scope and clearance are evaluated again, independently.
    pub fn retrieve_chunk(&self, p: &Principal, scope: &ScopeRule, chunk: &ChunkAttrs) -> bool {
        self.decide(Query::retrieve(p, scope, chunk))
    }

    /// May `p` open a direct conversation with `peer`?
    pub fn direct_message(&self, p: &Principal, peer: &Principal) -> bool {
        if p.id == peer.id {
            return false;
        }
        self.decide(Query::direct_message(p, peer))
    }
}

/// Who asks a service for an administrative act (managing documents,
/// scopes, agents, digests).
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// A signed-in person or agent; the policy decides.
    Principal(&'a Principal),
    /// The server itself: seeding at start-up, scheduled runs, the
    /// operator's CLI on the host. No request can present it: the API only
    /// builds [`Actor::Principal`] (checked by the layering test).
    Server,
}

impl Actor<'_> {
    /// The principal, unless the server acts itself.
    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Actor::Principal(p) => Some(p),
            Actor::Server => None,
        }
    }

    /// The id the audit log records (`system` for the server).
    pub fn user_id(&self) -> crate::ids::UserId {
        match self {
            Actor::Principal(p) => p.user_id(),
            Actor::Server => crate::ids::UserId::system(),
        }
    }
}

/// One authorization request, built the same way for live decisions and
/// for the barrier suite.
struct Query {
    principal: EntityUid,
    action: &'static str,
    resource: EntityUid,
    context: Context,
    entities: Vec<Entity>,
}

/// What Cedar answered, and which policies made it so.
struct Decided {
    allowed: bool,
    reasons: Vec<cedar_policy::PolicyId>,
}

/// Evaluate `q` under `bundle`; `Err` when the request does not fit the schema.
fn evaluate(authorizer: &Authorizer, bundle: &PolicyBundle, q: Query) -> Result<Decided, String> {
    let request = Request::new(
        q.principal,
        action_uid(q.action),
        q.resource,
        q.context,
        Some(&bundle.schema),
    )
    .map_err(|e| format!("the request does not match the schema: {e}"))?;
    let entities = Entities::from_entities(q.entities, None)
        .map_err(|e| format!("the request's entities are invalid: {e}"))?;
    let response = authorizer.is_authorized(&request, &bundle.policies, &entities);
    Ok(Decided {
        allowed: response.decision() == Decision::Allow,
        reasons: response.diagnostics().reason().cloned().collect(),
    })
}

fn user_entity(p: &Principal) -> Entity {
    let attrs = HashMap::from([
        (
            "role".to_string(),
            RestrictedExpression::new_string(p.role.as_str().into()),
        ),
        (
            "kind".to_string(),
            RestrictedExpression::new_string(p.kind.as_str().into()),
        ),
        (
            "level".to_string(),
            RestrictedExpression::new_long(p.clearance.level.rank()),
        ),
        (
            "compartments".to_string(),
            string_set(&p.clearance.compartments),
        ),
        (
            "active".to_string(),
            RestrictedExpression::new_bool(p.active),
        ),
    ]);
    Entity::new(uid("Warroom::User", &p.id), attrs, HashSet::new())
        .expect("user attributes are plain values")
}

fn channel_entity(c: &ChannelAttrs) -> Entity {
    let attrs = HashMap::from([
        (
            "visibility".to_string(),
            RestrictedExpression::new_string(c.visibility.as_str().into()),
        ),
        (
            "level".to_string(),
            RestrictedExpression::new_long(c.label.level.rank()),
        ),
        (
            "compartments".to_string(),
            string_set(&c.label.compartments),
        ),
        (
            "archived".to_string(),
            RestrictedExpression::new_bool(c.archived),
        ),
    ]);
    Entity::new(uid("Warroom::Channel", &c.id), attrs, HashSet::new())
        .expect("channel attributes are plain values")
}

impl Query {
    fn channel(p: &Principal, action: ChannelAction, c: &ChannelAttrs, ctx: &ChannelCtx) -> Self {
        let msg = ctx
            .msg_label
            .clone()
            .unwrap_or_else(|| Label::level(crate::label::Level::Public));
        let context = Context::from_pairs([
            (
                "is_member".to_string(),
                RestrictedExpression::new_bool(ctx.is_member),
            ),
            (
                "is_owner".to_string(),
                RestrictedExpression::new_bool(ctx.is_owner),
            ),
            (
                "is_author".to_string(),
                RestrictedExpression::new_bool(ctx.is_author),
            ),
            (
                "invited".to_string(),
                RestrictedExpression::new_bool(ctx.invited),
            ),
            (
                "msg_level".to_string(),
                RestrictedExpression::new_long(msg.level.rank()),
            ),
            (
                "msg_compartments".to_string(),
                string_set(&msg.compartments),
            ),
        ])
        .expect("context keys are unique");
        Query {
            principal: uid("Warroom::User", &p.id),
            action: action.cedar_name(),
            resource: uid("Warroom::Channel", &c.id),
            context,
            entities: vec![user_entity(p), channel_entity(c)],
        }
    }

    fn system(p: &Principal, action: SystemAction) -> Self {
        Query {
            principal: uid("Warroom::User", &p.id),
            action: action.cedar_name(),
            resource: uid("Warroom::System", "warroom"),
            context: Context::empty(),
            entities: vec![
                user_entity(p),
                Entity::new_no_attrs(uid("Warroom::System", "warroom"), HashSet::new()),
            ],
        }
    }

    fn retrieve(p: &Principal, scope: &ScopeRule, chunk: &ChunkAttrs) -> Self {
        let set = |items: &[String]| {
            RestrictedExpression::new_set(
                items
                    .iter()
                    .map(|c| RestrictedExpression::new_string(c.clone())),
            )
        };
        let opt = |items: &Option<Vec<String>>| {
            (
                RestrictedExpression::new_bool(items.is_none()),
                set(items.as_deref().unwrap_or_default()),
            )
        };
        let (any_collection, collections) = opt(&scope.collections);
        let (any_department, departments) = opt(&scope.departments);
        let (any_tag, tags) = opt(&scope.tags);
        let context = Context::from_pairs([
            ("any_collection".to_string(), any_collection),
            ("collections".to_string(), collections),
            ("any_department".to_string(), any_department),
            ("departments".to_string(), departments),
            ("any_tag".to_string(), any_tag),
            ("tags".to_string(), tags),
            (
                "excluded_collections".to_string(),
                set(&scope.exclude_collections),
            ),
            (
                "excluded_departments".to_string(),
                set(&scope.exclude_departments),
            ),
            ("excluded_tags".to_string(), set(&scope.exclude_tags)),
            (
                "max_level".to_string(),
                RestrictedExpression::new_long(scope.max_label.level.rank()),
            ),
            (
                "max_compartments".to_string(),
                string_set(&scope.max_label.compartments),
            ),
        ])
        .expect("context keys are unique");
        let attrs = HashMap::from([
            (
                "collection".to_string(),
                RestrictedExpression::new_string(chunk.collection.clone()),
            ),
            (
                "department".to_string(),
                RestrictedExpression::new_string(chunk.department.clone()),
            ),
            ("tags".to_string(), set(&chunk.tags)),
            (
                "level".to_string(),
                RestrictedExpression::new_long(chunk.label.level.rank()),
            ),
            (
                "compartments".to_string(),
                string_set(&chunk.label.compartments),
            ),
        ]);
        let resource = uid("Warroom::Chunk", &chunk.id);
        let entity = Entity::new(resource.clone(), attrs, HashSet::new())
            .expect("chunk attributes are plain values");
        Query {
            principal: uid("Warroom::User", &p.id),
            action: "knowledge.retrieve",
            resource,
            context,
            entities: vec![user_entity(p), entity],
        }
    }

    fn direct_message(p: &Principal, peer: &Principal) -> Self {
        Query {
            principal: uid("Warroom::User", &p.id),
            action: "dm.create",
            resource: uid("Warroom::User", &peer.id),
            context: Context::empty(),
            entities: vec![user_entity(p), user_entity(peer)],
        }
    }
}

/// The requests every policy set must deny, whatever else it permits
/// (SECURITY-CASES 30). Strict validation proves a set well-typed; this
/// proves it keeps the label barriers, private channels and DMs, and the
/// admin limits of the shipped policies. A set that permits any of these is
/// refused at start and at reload, naming the request and the permit.
mod barriers {
    use super::*;
    use crate::principal::{Role, UserKind, Visibility};

    /// A request that must be denied, described for whoever deploys policies.
    struct MustDeny {
        what: &'static str,
        query: Query,
    }

    /// Refuse `bundle` if it permits any request of the suite, or cannot
    /// evaluate one (a schema that lost an attribute the server sends).
    pub(super) fn check(bundle: &PolicyBundle) -> Result<(), PolicyError> {
        let authorizer = Authorizer::new();
        let mut wrong = Vec::new();
        for probe in suite() {
            match evaluate(&authorizer, bundle, probe.query) {
                Ok(d) if d.allowed => wrong.push(format!(
                    "  - {} (permitted by {})",
                    probe.what,
                    describe(bundle, &d.reasons)
                )),
                Ok(_) => {}
                Err(e) => wrong.push(format!(
                    "  - {}: cannot be evaluated, {e}; the schema must keep what the server sends",
                    probe.what
                )),
            }
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(PolicyError::Permissive(wrong.join("\n")))
        }
    }

    /// Name policies by their `@id`, or by their text when they have none.
    fn describe(bundle: &PolicyBundle, ids: &[cedar_policy::PolicyId]) -> String {
        if ids.is_empty() {
            return "no policy Cedar could name".into();
        }
        ids.iter()
            .map(|id| match bundle.policies.policy(id) {
                Some(p) => match p.annotation("id") {
                    Some(name) => format!("@id(\"{name}\")"),
                    None => format!("`{}`", one_line(&p.to_string(), 120)),
                },
                None => id.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn one_line(text: &str, max: usize) -> String {
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        match flat.char_indices().nth(max) {
            Some((cut, _)) => format!("{}...", &flat[..cut]),
            None => flat,
        }
    }

    fn user(name: &str, role: Role, clearance: &str) -> Principal {
        Principal {
            id: crate::ids::UserId::from_trusted(format!("barrier-probe-{name}")),
            handle: name.into(),
            display_name: name.into(),
            role,
            kind: if role == Role::Agent {
                UserKind::Agent
            } else {
                UserKind::Human
            },
            department: None,
            clearance: clearance.parse().expect("probe labels are valid"),
            active: true,
        }
    }

    fn deactivated(p: Principal) -> Principal {
        Principal { active: false, ..p }
    }

    fn chan(name: &str, visibility: Visibility, label: &str, archived: bool) -> ChannelAttrs {
        ChannelAttrs {
            id: format!("barrier-probe-{name}"),
            visibility,
            label: label.parse().expect("probe labels are valid"),
            archived,
            created_by: "barrier-probe-owner".into(),
        }
    }

    fn outsider() -> ChannelCtx {
        ChannelCtx::default()
    }

    fn member() -> ChannelCtx {
        ChannelCtx {
            is_member: true,
            ..Default::default()
        }
    }

    fn with_msg(ctx: ChannelCtx, label: &str) -> ChannelCtx {
        ChannelCtx {
            msg_label: Some(label.parse().expect("probe labels are valid")),
            ..ctx
        }
    }

    fn broad_scope(max: &str) -> ScopeRule {
        ScopeRule {
            collections: None,
            departments: None,
            tags: None,
            exclude_collections: Vec::new(),
            exclude_departments: Vec::new(),
            exclude_tags: Vec::new(),
            max_label: max.parse().expect("probe labels are valid"),
        }
    }

    fn chunk(collection: &str, department: &str, label: &str) -> ChunkAttrs {
        ChunkAttrs {
            id: format!("barrier-probe-{collection}-{department}"),
            collection: collection.into(),
            department: department.into(),
            tags: vec!["probe".into()],
            label: label.parse().expect("probe labels are valid"),
        }
    }

    fn suite() -> Vec<MustDeny> {
        use ChannelAction as A;
        use SystemAction as S;
        let member_internal = user("member", Role::Member, "internal");
        let member_sales = user("sales", Role::Member, "confidential:sales");
        let member_top = user("top", Role::Member, "restricted:hr,sales");
        let admin_internal = user("admin", Role::Admin, "internal");
        let admin_sales = user("admin-sales", Role::Admin, "confidential:sales");
        let admin_top = user("admin-top", Role::Admin, "restricted:hr,sales");
        let guest = user("guest", Role::Guest, "public");
        let agent = user("agent", Role::Agent, "internal");
        let worker = user("worker", Role::Worker, "restricted:hr,sales");
        let public_internal = chan("public", Visibility::Public, "internal", false);
        let public_confidential = chan("public-conf", Visibility::Public, "confidential", false);
        let hr_room = chan("hr", Visibility::Private, "confidential:hr", false);
        let private_internal = chan("private", Visibility::Private, "internal", false);
        let dm = chan("dm", Visibility::Direct, "internal", false);
        let archived = chan("archived", Visibility::Public, "internal", true);
        let q = |what, query| MustDeny { what, query };
        let ch = Query::channel;
        vec![
            // The label lattice, admins included.
            q(
                "a member reads a message above their clearance level",
                ch(
                    &member_internal,
                    A::ReadMessage,
                    &public_confidential,
                    &with_msg(member(), "confidential"),
                ),
            ),
            q(
                "an admin reads a message above their clearance level",
                ch(
                    &admin_internal,
                    A::ReadMessage,
                    &public_confidential,
                    &with_msg(member(), "confidential"),
                ),
            ),
            q(
                "a member reads a message in a compartment they are not cleared for",
                ch(
                    &member_sales,
                    A::ReadMessage,
                    &hr_room,
                    &with_msg(member(), "confidential:hr"),
                ),
            ),
            q(
                "an admin reads a message in a compartment they are not cleared for",
                ch(
                    &admin_sales,
                    A::ReadMessage,
                    &hr_room,
                    &with_msg(member(), "confidential:hr"),
                ),
            ),
            q(
                "a message above its channel's label is delivered",
                ch(
                    &member_top,
                    A::ReadMessage,
                    &public_internal,
                    &with_msg(member(), "confidential"),
                ),
            ),
            q(
                "a member posts a message above its channel's label",
                ch(
                    &member_top,
                    A::Post,
                    &public_internal,
                    &with_msg(member(), "confidential"),
                ),
            ),
            q(
                "an author edits a message up above its channel's label",
                ch(
                    &member_top,
                    A::Edit,
                    &public_internal,
                    &with_msg(
                        ChannelCtx {
                            is_author: true,
                            ..member()
                        },
                        "confidential:hr",
                    ),
                ),
            ),
            q(
                "a member reads a public channel above their clearance",
                ch(&member_internal, A::Read, &public_confidential, &outsider()),
            ),
            q(
                "a member joins a public channel above their clearance",
                ch(&member_internal, A::Join, &public_confidential, &outsider()),
            ),
            q(
                "an uncleared user joins a channel they were invited to",
                ch(
                    &member_sales,
                    A::Join,
                    &hr_room,
                    &ChannelCtx {
                        invited: true,
                        ..outsider()
                    },
                ),
            ),
            q(
                "an admin invites into a channel above their clearance",
                ch(&admin_internal, A::Invite, &hr_room, &outsider()),
            ),
            q(
                "a member creates a channel above their clearance",
                ch(
                    &member_internal,
                    A::Create,
                    &public_confidential,
                    &outsider(),
                ),
            ),
            q(
                "an admin posts in a channel above their clearance",
                ch(
                    &admin_sales,
                    A::Post,
                    &hr_room,
                    &with_msg(member(), "internal"),
                ),
            ),
            // Private channels and DMs are for their members only.
            q(
                "a member who is not in a private channel reads the private channel",
                ch(&member_top, A::Read, &private_internal, &outsider()),
            ),
            q(
                "a member who is not in a private channel reads its messages",
                ch(
                    &member_top,
                    A::ReadMessage,
                    &private_internal,
                    &with_msg(outsider(), "internal"),
                ),
            ),
            q(
                "an admin who is not in a private channel reads its messages",
                ch(
                    &admin_top,
                    A::ReadMessage,
                    &private_internal,
                    &with_msg(outsider(), "internal"),
                ),
            ),
            q(
                "a member who is not in a private channel posts to it",
                ch(
                    &member_top,
                    A::Post,
                    &private_internal,
                    &with_msg(outsider(), "internal"),
                ),
            ),
            q(
                "a member joins a private channel uninvited",
                ch(&member_top, A::Join, &private_internal, &outsider()),
            ),
            q(
                "a member invites into a private channel they are not in",
                ch(&member_top, A::Invite, &private_internal, &outsider()),
            ),
            q(
                "a non-member reacts in a private channel",
                ch(
                    &member_top,
                    A::React,
                    &private_internal,
                    &with_msg(outsider(), "internal"),
                ),
            ),
            q(
                "an admin who is not in a direct conversation reads it",
                ch(&admin_top, A::Read, &dm, &outsider()),
            ),
            q(
                "an admin who is not in a direct conversation reads its messages",
                ch(
                    &admin_top,
                    A::ReadMessage,
                    &dm,
                    &with_msg(outsider(), "internal"),
                ),
            ),
            q(
                "someone joins a direct conversation, even invited",
                ch(
                    &admin_top,
                    A::Join,
                    &dm,
                    &ChannelCtx {
                        invited: true,
                        ..outsider()
                    },
                ),
            ),
            q(
                "a participant invites a third person into a direct conversation",
                ch(&member_top, A::Invite, &dm, &member()),
            ),
            q(
                "an admin archives a direct conversation",
                ch(&admin_top, A::Archive, &dm, &outsider()),
            ),
            q(
                "a guest reads a public channel they are not in",
                ch(
                    &guest,
                    A::Read,
                    &chan("public-open", Visibility::Public, "public", false),
                    &outsider(),
                ),
            ),
            q(
                "a guest reads messages of a public channel they are not in",
                ch(
                    &guest,
                    A::ReadMessage,
                    &chan("public-open", Visibility::Public, "public", false),
                    &with_msg(outsider(), "public"),
                ),
            ),
            // Authors, owners and archives.
            q(
                "a member edits someone else's message",
                ch(
                    &member_top,
                    A::Edit,
                    &public_internal,
                    &with_msg(member(), "internal"),
                ),
            ),
            q(
                "a member deletes someone else's message",
                ch(
                    &member_top,
                    A::Delete,
                    &public_internal,
                    &with_msg(member(), "internal"),
                ),
            ),
            q(
                "a member renames a channel they do not own",
                ch(&member_top, A::Update, &public_internal, &member()),
            ),
            q(
                "a member posts to an archived channel",
                ch(
                    &member_top,
                    A::Post,
                    &archived,
                    &with_msg(member(), "internal"),
                ),
            ),
            q(
                "a guest creates a channel",
                ch(
                    &guest,
                    A::Create,
                    &chan("guest-made", Visibility::Public, "public", false),
                    &outsider(),
                ),
            ),
            q(
                "an agent creates a private channel",
                ch(
                    &agent,
                    A::Create,
                    &chan("agent-made", Visibility::Private, "internal", false),
                    &outsider(),
                ),
            ),
            // A worker account runs agents and does nothing else.
            q(
                "a worker account reads a public channel",
                ch(
                    &worker,
                    A::ReadMessage,
                    &public_internal,
                    &with_msg(member(), "internal"),
                ),
            ),
            q(
                "a worker account posts in a channel it is a member of",
                ch(
                    &worker,
                    A::Post,
                    &public_internal,
                    &with_msg(member(), "internal"),
                ),
            ),
            q(
                "a worker account retrieves knowledge",
                Query::retrieve(
                    &worker,
                    &broad_scope("restricted:hr,sales"),
                    &chunk("handbook", "hr", "internal"),
                ),
            ),
            q(
                "a worker account manages agents",
                Query::system(&worker, S::AgentManage),
            ),
            q(
                "a worker account manages users",
                Query::system(&worker, S::UserManage),
            ),
            // Deactivated principals do nothing.
            q(
                "a deactivated admin manages users",
                Query::system(&deactivated(admin_top.clone()), S::UserManage),
            ),
            q(
                "a deactivated member reads their own channel",
                ch(
                    &deactivated(member_top.clone()),
                    A::ReadMessage,
                    &public_internal,
                    &with_msg(member(), "internal"),
                ),
            ),
            q(
                "a deactivated principal retrieves knowledge",
                Query::retrieve(
                    &deactivated(admin_top.clone()),
                    &broad_scope("restricted:hr,sales"),
                    &chunk("handbook", "hr", "internal"),
                ),
            ),
            // Administration stays with admins (and leaders where shipped).
            q(
                "a member manages users",
                Query::system(&member_top, S::UserManage),
            ),
            q(
                "a member reads the audit log",
                Query::system(&member_top, S::AuditRead),
            ),
            q(
                "a member reloads the policies",
                Query::system(&member_top, S::PolicyReload),
            ),
            q(
                "a member manages documents",
                Query::system(&member_top, S::DocumentManage),
            ),
            q(
                "a member manages retrieval scopes",
                Query::system(&member_top, S::ScopeManage),
            ),
            q(
                "a member manages agents",
                Query::system(&member_top, S::AgentManage),
            ),
            q(
                "an agent manages agents",
                Query::system(&agent, S::AgentManage),
            ),
            q(
                "a member reads insight digests",
                Query::system(&member_top, S::InsightsRead),
            ),
            q(
                "a guest lists the directory",
                Query::system(&guest, S::UserList),
            ),
            // Direct messages.
            q(
                "a guest opens a direct conversation",
                Query::direct_message(&guest, &member_internal),
            ),
            q(
                "someone opens a direct conversation with a guest",
                Query::direct_message(&admin_top, &guest),
            ),
            q(
                "someone opens a direct conversation with a deactivated user",
                Query::direct_message(&member_internal, &deactivated(member_sales.clone())),
            ),
            // Retrieval: within clearance and within scope, admins included.
            q(
                "an agent retrieves a chunk above its clearance, whatever its scope",
                Query::retrieve(
                    &agent,
                    &broad_scope("restricted:hr,sales"),
                    &chunk("handbook", "hr", "confidential:hr"),
                ),
            ),
            q(
                "an admin retrieves a chunk in a compartment they are not cleared for",
                Query::retrieve(
                    &admin_sales,
                    &broad_scope("restricted:hr,sales"),
                    &chunk("payroll", "hr", "confidential:hr"),
                ),
            ),
            q(
                "a retrieval returns a chunk above its scope's label",
                Query::retrieve(
                    &member_top,
                    &broad_scope("internal"),
                    &chunk("payroll", "hr", "confidential:hr"),
                ),
            ),
            q(
                "a retrieval returns a chunk from a collection outside its scope",
                Query::retrieve(
                    &member_top,
                    &ScopeRule {
                        collections: Some(vec!["sales".into()]),
                        ..broad_scope("restricted:hr,sales")
                    },
                    &chunk("payroll", "hr", "internal"),
                ),
            ),
            q(
                "a retrieval returns a chunk from an excluded department",
                Query::retrieve(
                    &member_top,
                    &ScopeRule {
                        exclude_departments: vec!["hr".into()],
                        ..broad_scope("restricted:hr,sales")
                    },
                    &chunk("payroll", "hr", "internal"),
                ),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_policies_validate_strictly() {
        let authz = Authz::load(None, Arc::default()).expect("built-in policies are valid");
        assert!(authz.policy_count() > 10);
    }

    #[test]
    fn policy_with_type_error_is_refused_with_a_readable_reason() {
        let bad = vec![(
            "bad.cedar".to_string(),
            r#"permit(principal, action == Warroom::Action::"channel.read", resource) when { principal.levle > 1 };"#
                .to_string(),
        )];
        let err = compile(EMBEDDED_SCHEMA, &bad)
            .err()
            .expect("must be refused");
        assert!(matches!(err, PolicyError::Validation(_)), "{err}");
        assert!(err.to_string().contains("levle"), "{err}");
    }

    #[test]
    fn policy_syntax_error_names_the_file() {
        let bad = vec![(
            "oops.cedar".to_string(),
            "permit(principal, action, resource".to_string(),
        )];
        let err = compile(EMBEDDED_SCHEMA, &bad)
            .err()
            .expect("must be refused");
        assert!(err.to_string().contains("oops.cedar"), "{err}");
    }

    fn shipped_files() -> Vec<(String, String)> {
        [
            ("chat.cedar", EMBEDDED_POLICIES),
            ("knowledge.cedar", EMBEDDED_KNOWLEDGE_POLICIES),
            ("agents.cedar", EMBEDDED_AGENT_POLICIES),
            ("insights.cedar", EMBEDDED_INSIGHT_POLICIES),
        ]
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
    }

    const PERMIT_EVERYTHING: &str = "permit(principal, action, resource);";

    #[test]
    fn the_shipped_policies_pass_the_barrier_suite() {
        let bundle = compile(EMBEDDED_SCHEMA, &shipped_files()).expect("shipped set is accepted");
        barriers::check(&bundle).expect("and denies every request of the suite");
        assert_eq!(bundle.digest.len(), 64);
        let authz = Authz::load(None, Arc::default()).unwrap();
        assert_eq!(authz.digest(), bundle.digest, "same texts, same hash");
    }

    #[test]
    fn a_blanket_permit_is_refused_naming_what_it_would_allow() {
        let mut files = shipped_files();
        files.push(("zz-open.cedar".into(), PERMIT_EVERYTHING.into()));
        let err = compile(EMBEDDED_SCHEMA, &files)
            .err()
            .expect("valid Cedar, but permissive: must be refused");
        assert!(matches!(err, PolicyError::Permissive(_)), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("must deny"), "{msg}");
        assert!(
            msg.contains("a member who is not in a private channel reads its messages"),
            "{msg}"
        );
        assert!(
            msg.contains("permitted by `permit(principal, action, resource);`"),
            "names the culprit: {msg}"
        );
    }

    #[test]
    fn dropping_a_label_forbid_is_refused() {
        let mut files = shipped_files();
        let chat = &mut files[0].1;
        let start = chat
            .find("@id(\"clearance-covers-channel\")")
            .expect("the shipped chat policies have this forbid");
        let end = start + chat[start..].find("};").expect("the forbid ends") + 2;
        chat.replace_range(start..end, "");
        let err = compile(EMBEDDED_SCHEMA, &files)
            .err()
            .expect("a set without the clearance forbid must be refused");
        let msg = err.to_string();
        assert!(
            msg.contains("a member joins a public channel above their clearance")
                && msg.contains("@id(\"join-public\")"),
            "{msg}"
        );
    }

    #[test]
    fn a_reload_with_a_permissive_set_keeps_the_old_set_active() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("warroom.cedarschema"), EMBEDDED_SCHEMA).unwrap();
        for (name, text) in shipped_files() {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let authz = Authz::load(Some(dir.path()), Arc::default()).unwrap();
        let (count, digest, generation) =
            (authz.policy_count(), authz.digest(), authz.generation());
        std::fs::write(dir.path().join("zz-open.cedar"), PERMIT_EVERYTHING).unwrap();
        let err = authz.reload().expect_err("refused");
        assert!(matches!(err, PolicyError::Permissive(_)), "{err}");
        assert_eq!(authz.policy_count(), count);
        assert_eq!(authz.digest(), digest, "the last good set stays active");
        assert_eq!(authz.generation(), generation);
        let outsider = Principal {
            id: crate::ids::UserId::from_trusted("u-out"),
            handle: "out".into(),
            display_name: "out".into(),
            role: crate::principal::Role::Member,
            kind: crate::principal::UserKind::Human,
            department: None,
            clearance: "restricted".parse().unwrap(),
            active: true,
        };
        let board = ChannelAttrs {
            id: "c-board".into(),
            visibility: crate::principal::Visibility::Private,
            label: "internal".parse().unwrap(),
            archived: false,
            created_by: "u-in".into(),
        };
        assert!(!authz.channel(
            &outsider,
            ChannelAction::Read,
            &board,
            &ChannelCtx::default()
        ));
        assert!(
            Authz::load(Some(dir.path()), Arc::default()).is_err(),
            "nor does a fresh start accept it"
        );
        std::fs::remove_file(dir.path().join("zz-open.cedar")).unwrap();
        assert_eq!(authz.reload().unwrap(), count);
        assert_eq!(authz.digest(), digest);
    }

    #[test]
    fn reload_keeps_last_good_set_when_new_one_is_invalid() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("warroom.cedarschema"), EMBEDDED_SCHEMA).unwrap();
        std::fs::write(dir.path().join("chat.cedar"), EMBEDDED_POLICIES).unwrap();
        std::fs::write(
            dir.path().join("knowledge.cedar"),
            EMBEDDED_KNOWLEDGE_POLICIES,
        )
        .unwrap();
        let authz = Authz::load(Some(dir.path()), Arc::default()).unwrap();
        let before = authz.policy_count();
        std::fs::write(
            dir.path().join("chat.cedar"),
            "permit(principal, action, resource) when { 1 };",
        )
        .unwrap();
        assert!(authz.reload().is_err());
        assert_eq!(
            authz.policy_count(),
            before,
            "the last good set stays active"
        );
        assert!(
            Authz::load(Some(dir.path()), Arc::default()).is_err(),
            "a fresh start with bad policies refuses to load"
        );
    }
}
