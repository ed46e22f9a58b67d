//! The requests every policy set must deny, whatever else it permits
//! (SECURITY-CASES 30). Strict validation proves a set well-typed; this
//! proves it keeps the label barriers, private channels and DMs, and the
//! admin limits of the shipped policies. A set that permits any of these is
//! refused at start and at reload, naming the request and the permit.

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
    ScopeRule::within(max.parse().expect("probe labels are valid"))
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
