//! Authorization: every API call and every event delivery is a Cedar request
//! against the schema and policies in `policies/`. Policies are validated
//! strictly when loaded; an invalid set is refused and the last good set stays
//! in force (fail closed, never open).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request, RestrictedExpression, Schema, ValidationMode, Validator,
};

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
    Ok(PolicyBundle { schema, policies })
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
        Ok(Self {
            source: dir.map(Path::to_path_buf),
            active: RwLock::new(Arc::new(bundle)),
            authorizer: Authorizer::new(),
            metrics,
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Re-read the policy directory. On any error the active set is kept and
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

    fn bundle(&self) -> Arc<PolicyBundle> {
        self.active.read().expect("policy lock poisoned").clone()
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

    fn decide(
        &self,
        principal: EntityUid,
        action: &str,
        resource: EntityUid,
        context: Context,
        entities: Vec<Entity>,
    ) -> bool {
        let bundle = self.bundle();
        let request = match Request::new(
            principal,
            action_uid(action),
            resource,
            context,
            Some(&bundle.schema),
        ) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(action, error = %e, "authorization request does not match the schema; denying");
                return false;
            }
        };
        let entities = match Entities::from_entities(entities, None) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(action, error = %e, "authorization entities invalid; denying");
                return false;
            }
        };
        let allowed = self
            .authorizer
            .is_authorized(&request, &bundle.policies, &entities)
            .decision()
            == Decision::Allow;
        self.metrics.authz_decision(allowed);
        allowed
    }

    /// May `p` perform `action` on channel `c` given `ctx`?
    pub fn channel(
        &self,
        p: &Principal,
        action: ChannelAction,
        c: &ChannelAttrs,
        ctx: &ChannelCtx,
    ) -> bool {
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
        self.decide(
            uid("Warroom::User", &p.id),
            action.cedar_name(),
            uid("Warroom::Channel", &c.id),
            context,
            vec![Self::user_entity(p), Self::channel_entity(c)],
        )
    }

    /// May `p` perform an administrative `action`?
    pub fn system(&self, p: &Principal, action: SystemAction) -> bool {
        self.decide(
            uid("Warroom::User", &p.id),
            action.cedar_name(),
            uid("Warroom::System", "warroom"),
            Context::empty(),
            vec![
                Self::user_entity(p),
                Entity::new_no_attrs(uid("Warroom::System", "warroom"), HashSet::new()),
            ],
        )
    }

    /// May `p` receive `chunk` when retrieving under `scope`? The re-check behind the
    /// vector store's filter: scope and clearance are evaluated again, independently.
    pub fn retrieve_chunk(&self, p: &Principal, scope: &ScopeRule, chunk: &ChunkAttrs) -> bool {
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
        self.decide(
            uid("Warroom::User", &p.id),
            "knowledge.retrieve",
            resource,
            context,
            vec![Self::user_entity(p), entity],
        )
    }

    /// May `p` open a direct conversation with `peer`?
    pub fn direct_message(&self, p: &Principal, peer: &Principal) -> bool {
        if p.id == peer.id {
            return false;
        }
        self.decide(
            uid("Warroom::User", &p.id),
            "dm.create",
            uid("Warroom::User", &peer.id),
            Context::empty(),
            vec![Self::user_entity(p), Self::user_entity(peer)],
        )
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
