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

const EMBEDDED_SCHEMA: &str = include_str!("../../../policies/warroom.cedarschema");
const EMBEDDED_POLICIES: &str = include_str!("../../../policies/chat.cedar");
const EMBEDDED_KNOWLEDGE_POLICIES: &str = include_str!("../../../policies/knowledge.cedar");
const EMBEDDED_AGENT_POLICIES: &str = include_str!("../../../policies/agents.cedar");
const EMBEDDED_INSIGHT_POLICIES: &str = include_str!("../../../policies/insights.cedar");

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

impl ScopeRule {
    /// A rule that admits every collection, department and tag: only
    /// `max_label` limits what it shows.
    pub fn within(max_label: Label) -> Self {
        Self {
            collections: None,
            departments: None,
            tags: None,
            exclude_collections: Vec::new(),
            exclude_departments: Vec::new(),
            exclude_tags: Vec::new(),
            max_label,
        }
    }
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

mod barriers;
mod query;
#[cfg(test)]
mod tests;

use query::{evaluate, Query};
