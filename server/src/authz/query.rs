//! Building Cedar requests: the principal, channel, scope and chunk entities
//! and the context the policies read, the same for live decisions and the
//! barrier suite.

use super::*;

/// One authorization request, built the same way for live decisions and
/// for the barrier suite.
pub(super) struct Query {
    principal: EntityUid,
    pub(super) action: &'static str,
    resource: EntityUid,
    context: Context,
    entities: Vec<Entity>,
}

/// What Cedar answered, and which policies made it so.
pub(super) struct Decided {
    pub(super) allowed: bool,
    pub(super) reasons: Vec<cedar_policy::PolicyId>,
}

/// Evaluate `q` under `bundle`; `Err` when the request does not fit the schema.
pub(super) fn evaluate(
    authorizer: &Authorizer,
    bundle: &PolicyBundle,
    q: Query,
) -> Result<Decided, String> {
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
    pub(super) fn channel(
        p: &Principal,
        action: ChannelAction,
        c: &ChannelAttrs,
        ctx: &ChannelCtx,
    ) -> Self {
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

    pub(super) fn system(p: &Principal, action: SystemAction) -> Self {
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

    pub(super) fn retrieve(p: &Principal, scope: &ScopeRule, chunk: &ChunkAttrs) -> Self {
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

    pub(super) fn direct_message(p: &Principal, peer: &Principal) -> Self {
        Query {
            principal: uid("Warroom::User", &p.id),
            action: "dm.create",
            resource: uid("Warroom::User", &peer.id),
            context: Context::empty(),
            entities: vec![user_entity(p), user_entity(peer)],
        }
    }
}
