//! Authorization: a table-driven matrix of role x action x channel kind, the
//! label lattice on joins, invites and posts (SECURITY-CASES 9), and
//! fail-closed policy loading.

mod common;

use common::{TestApp, User};
use hyper::{Method, StatusCode};
use serde_json::json;

#[derive(Clone, Copy, Debug)]
enum Action {
    Create,
    JoinUninvited,
    ReadAsNonMember,
    PostAsMember,
    PostAsNonMember,
    InviteAsMember,
    ArchiveOthers,
    DeleteOthersMessage,
    EditOthersMessage,
    DirectMessage,
    ListUsers,
    CreateUser,
    ReadAudit,
}

use Action::*;

const ROLES: [&str; 5] = ["admin", "leader", "member", "guest", "agent"];

/// (action, channel kind, allowed for [admin, leader, member, guest, agent])
const MATRIX: &[(Action, &str, [bool; 5])] = &[
    (Create, "public", [true, true, true, false, true]),
    (Create, "private", [true, true, true, false, false]),
    (JoinUninvited, "public", [true, true, true, false, true]),
    (
        JoinUninvited,
        "private",
        [false, false, false, false, false],
    ),
    (ReadAsNonMember, "public", [true, true, true, false, true]),
    (
        ReadAsNonMember,
        "private",
        [false, false, false, false, false],
    ),
    (PostAsMember, "public", [true, true, true, true, true]),
    (PostAsMember, "private", [true, true, true, true, true]),
    (
        PostAsNonMember,
        "public",
        [false, false, false, false, false],
    ),
    (
        PostAsNonMember,
        "private",
        [false, false, false, false, false],
    ),
    (InviteAsMember, "private", [true, true, true, false, false]),
    (ArchiveOthers, "public", [true, false, false, false, false]),
    (ArchiveOthers, "private", [true, false, false, false, false]),
    (
        DeleteOthersMessage,
        "public",
        [true, false, false, false, false],
    ),
    (
        EditOthersMessage,
        "public",
        [false, false, false, false, false],
    ),
    (DirectMessage, "direct", [true, true, true, false, true]),
    (ListUsers, "-", [true, true, true, false, true]),
    (CreateUser, "-", [true, false, false, false, false]),
    (ReadAudit, "-", [true, false, false, false, false]),
];

struct World {
    owner: User,
    target: User,
    n: std::sync::atomic::AtomicUsize,
}

impl World {
    fn name(&self) -> String {
        format!(
            "c{}",
            self.n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        )
    }
}

/// Set up what the action needs, perform it as `actor`, report whether it was allowed.
async fn attempt(app: &TestApp, w: &World, actor: &User, action: Action, kind: &str) -> bool {
    let ok = |s: StatusCode| s.is_success();
    // Matrix channels carry the lowest label so clearance does not interfere.
    let owned =
        |name: String| async move { app.channel(&w.owner, &name, kind, Some("public")).await };
    match action {
        Create => {
            let r = app
                .post(
                    "/api/v1/channels",
                    &actor.token,
                    json!({"name": w.name(), "visibility": kind, "label": "public"}),
                )
                .await;
            ok(r.status)
        }
        JoinUninvited => {
            let ch = owned(w.name()).await;
            ok(app
                .post(
                    &format!("/api/v1/channels/{ch}/join"),
                    &actor.token,
                    json!({}),
                )
                .await
                .status)
        }
        ReadAsNonMember => {
            let ch = owned(w.name()).await;
            app.say(&w.owner, &ch, "hello").await;
            ok(app
                .get(&format!("/api/v1/channels/{ch}/messages"), &actor.token)
                .await
                .status)
        }
        PostAsMember | PostAsNonMember | InviteAsMember | ArchiveOthers | DeleteOthersMessage
        | EditOthersMessage => {
            let ch = owned(w.name()).await;
            if !matches!(action, PostAsNonMember) {
                let r = app
                    .post(
                        &format!("/api/v1/channels/{ch}/invite"),
                        &w.owner.token,
                        json!({"user_id": actor.id}),
                    )
                    .await;
                assert_eq!(
                    r.status,
                    StatusCode::NO_CONTENT,
                    "owner invites {}: {:?}",
                    actor.handle,
                    r.json
                );
            }
            let msg = app.say(&w.owner, &ch, "owner's words").await;
            let mid = msg["id"].as_str().unwrap();
            let r = match action {
                PostAsMember | PostAsNonMember => {
                    app.post(
                        &format!("/api/v1/channels/{ch}/messages"),
                        &actor.token,
                        json!({"body": "hi"}),
                    )
                    .await
                }
                InviteAsMember => {
                    app.post(
                        &format!("/api/v1/channels/{ch}/invite"),
                        &actor.token,
                        json!({"user_id": w.target.id}),
                    )
                    .await
                }
                ArchiveOthers => {
                    app.post(
                        &format!("/api/v1/channels/{ch}/archive"),
                        &actor.token,
                        json!({}),
                    )
                    .await
                }
                DeleteOthersMessage => {
                    app.call(
                        Method::DELETE,
                        &format!("/api/v1/messages/{mid}"),
                        Some(&actor.token),
                        None,
                    )
                    .await
                }
                _ => {
                    app.call(
                        Method::PATCH,
                        &format!("/api/v1/messages/{mid}"),
                        Some(&actor.token),
                        Some(json!({"body": "changed"})),
                    )
                    .await
                }
            };
            ok(r.status)
        }
        DirectMessage => ok(app
            .post("/api/v1/dms", &actor.token, json!({"user_id": w.target.id}))
            .await
            .status),
        ListUsers => ok(app.get("/api/v1/users", &actor.token).await.status),
        CreateUser => {
            let r = app
                .post("/api/v1/users", &actor.token, json!({"handle": w.name(), "role": "member", "password": "a long enough password"}))
                .await;
            ok(r.status)
        }
        ReadAudit => ok(app.get("/api/v1/audit", &actor.token).await.status),
    }
}

async fn rbac_matrix(app: &TestApp) {
    let w = World {
        owner: app.user("owner", "member", Some("public")).await,
        target: app.user("target", "member", Some("public")).await,
        n: Default::default(),
    };
    let mut actors = Vec::new();
    for role in ROLES {
        // Everyone is cleared for the matrix channels' label; the admin also
        // for the clearance a new member gets (nobody grants beyond their own).
        let clearance = if role == "admin" {
            "restricted"
        } else {
            "public"
        };
        actors.push(
            app.user(&format!("{role}-actor"), role, Some(clearance))
                .await,
        );
    }
    let mut failures = Vec::new();
    for (action, kind, expected) in MATRIX {
        for (i, role) in ROLES.iter().enumerate() {
            let allowed = attempt(app, &w, &actors[i], *action, kind).await;
            if allowed != expected[i] {
                failures.push(format!(
                    "{role} {action:?} on {kind}: allowed={allowed}, expected {}",
                    expected[i]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "RBAC matrix mismatches:\n{}",
        failures.join("\n")
    );
}

async fn uncleared_users_cannot_join_or_be_added(app: &TestApp) {
    let admin = app
        .user("admin1", "admin", Some("restricted:hr,finance"))
        .await;
    let hr = app.user("hr-lead", "member", Some("confidential:hr")).await;
    let plain = app.user("plain", "member", Some("internal")).await;
    let secret = app
        .channel(&admin, "hr-private", "private", Some("confidential:hr"))
        .await;
    let open = app
        .channel(
            &admin,
            "finance-open",
            "public",
            Some("confidential:finance"),
        )
        .await;

    // SECURITY-CASES 9: adding an uncleared employee is refused.
    let r = app
        .post(
            &format!("/api/v1/channels/{secret}/invite"),
            &admin.token,
            json!({"user_id": plain.id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.json);
    assert!(r.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not cleared"));
    let members = app
        .get(&format!("/api/v1/channels/{secret}/members"), &admin.token)
        .await;
    assert_eq!(
        members.json.as_array().unwrap().len(),
        1,
        "nothing half-written"
    );
    // Cleared for the compartment: allowed.
    let r = app
        .post(
            &format!("/api/v1/channels/{secret}/invite"),
            &admin.token,
            json!({"handle": "hr-lead"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.json);
    // Joining a public channel above one's clearance is refused, and so is reading it.
    let r = app
        .post(
            &format!("/api/v1/channels/{open}/join"),
            &plain.token,
            json!({}),
        )
        .await;
    assert!(
        r.status == StatusCode::FORBIDDEN || r.status == StatusCode::NOT_FOUND,
        "{:?}",
        r.status
    );
    assert_eq!(
        app.get(&format!("/api/v1/channels/{open}/messages"), &plain.token)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // A high level without the compartment is not enough.
    let r = app
        .post(
            &format!("/api/v1/channels/{open}/join"),
            &hr.token,
            json!({}),
        )
        .await;
    assert!(
        !r.status.is_success(),
        "confidential:hr is not cleared for confidential:finance"
    );
    // Nobody creates a channel above their own clearance.
    let r = app
        .post(
            "/api/v1/channels",
            &plain.token,
            json!({"name": "too-high", "visibility": "public", "label": "restricted"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

async fn message_labels_must_fit_the_channel(app: &TestApp) {
    let admin = app.user("admin2", "admin", Some("restricted:hr")).await;
    let ch = app
        .channel(&admin, "general", "public", Some("internal"))
        .await;
    let post = |label: &'static str| {
        let token = admin.token.clone();
        let path = format!("/api/v1/channels/{ch}/messages");
        async move {
            app.post(&path, &token, json!({"body": "numbers", "label": label}))
                .await
        }
    };
    assert_eq!(post("public").await.status, StatusCode::CREATED);
    assert_eq!(post("internal").await.status, StatusCode::CREATED);
    assert_eq!(post("confidential").await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        post("internal:hr").await.status,
        StatusCode::FORBIDDEN,
        "a compartment is above an uncompartmented channel"
    );
    let bad = post("top-secret").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.code(), "invalid_input");
    let msgs = app
        .get(&format!("/api/v1/channels/{ch}/messages"), &admin.token)
        .await;
    assert_eq!(
        msgs.json.as_array().unwrap().len(),
        2,
        "refused posts leave nothing behind"
    );
    // Denials are audited.
    let audit = app.get("/api/v1/audit?limit=50", &admin.token).await;
    assert!(audit
        .json
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["outcome"] == "denied" && r["action"] == "Post"));
}

async fn direct_channels_carry_the_meet_of_both_clearances(app: &TestApp) {
    let hr = app.user("hr-agent", "agent", Some("confidential:hr")).await;
    let sales = app
        .user("sales-agent", "agent", Some("confidential:sales"))
        .await;
    let r = app
        .post("/api/v1/dms", &hr.token, json!({"user_id": sales.id}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    assert_eq!(r.json["label"], "confidential");
    let dm = r.json["id"].as_str().unwrap().to_string();
    // HR-derived text cannot cross into the sales agent's context.
    let leak = app
        .post(
            &format!("/api/v1/channels/{dm}/messages"),
            &hr.token,
            json!({"body": "salary table", "label": "confidential:hr"}),
        )
        .await;
    assert_eq!(leak.status, StatusCode::FORBIDDEN);
    let ok = app
        .post(
            &format!("/api/v1/channels/{dm}/messages"),
            &hr.token,
            json!({"body": "hello"}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED);
    let again = app
        .post("/api/v1/dms", &sales.token, json!({"handle": "hr-agent"}))
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json["id"], dm.as_str());
    let seen = app
        .get(&format!("/api/v1/channels/{dm}/messages"), &sales.token)
        .await;
    assert_eq!(seen.json.as_array().unwrap().len(), 1);
}

on_both_backends!(
    rbac_matrix,
    uncleared_users_cannot_join_or_be_added,
    message_labels_must_fit_the_channel,
    direct_channels_carry_the_meet_of_both_clearances,
);

#[tokio::test]
async fn invalid_policies_refuse_to_start_with_a_readable_error() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    std::fs::copy(
        src.join("warroom.cedarschema"),
        dir.path().join("warroom.cedarschema"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("chat.cedar"),
        "permit(principal, action == Warroom::Action::\"channel.read\", resource) when { resource.labell == 1 };",
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut s = warroom::config::Settings::default();
    s.server.bind = "127.0.0.1:0".into();
    s.server.policy_dir = Some(dir.path().to_path_buf());
    s.storage.data_dir = data.path().to_path_buf();
    let err = warroom::startup::start(s)
        .await
        .err()
        .expect("must refuse to start");
    let msg = err.to_string();
    assert!(
        msg.contains("strict validation") && msg.contains("labell"),
        "{msg}"
    );
}

#[tokio::test]
async fn the_shipped_policy_directory_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let authz =
        warroom::authz::Authz::load(Some(&dir), Default::default()).expect("policies/ is valid");
    assert!(authz.policy_count() > 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_reload_refuses_a_bad_set_and_keeps_the_last_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    for f in ["warroom.cedarschema", "chat.cedar"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let policy_dir = dir.path().to_path_buf();
    let app = TestApp::start(common::Backend::Sqlite, |s| {
        s.server.policy_dir = Some(policy_dir)
    })
    .await;
    let admin = app.user("admin", "admin", None).await;
    let member = app.user("member", "member", None).await;
    let ok = app
        .post("/api/v1/admin/policies/reload", &admin.token, json!({}))
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.json);
    assert_eq!(
        app.post("/api/v1/admin/policies/reload", &member.token, json!({}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // A deploy with an error: permits everything if it were loaded.
    std::fs::write(
        dir.path().join("chat.cedar"),
        "permit(principal, action, resource) when { principal.nope };",
    )
    .unwrap();
    let bad = app
        .post("/api/v1/admin/policies/reload", &admin.token, json!({}))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.code(), "invalid_policies");
    assert!(bad.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nope"));
    // The last good set is still in force: guests still cannot create channels, members can.
    let guest = app.user("guest", "guest", None).await;
    let r = app
        .post(
            "/api/v1/channels",
            &guest.token,
            json!({"name": "nope", "visibility": "public", "label": "public"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "never fail open");
    app.channel(&member, "still-works", "public", None).await;
    let audit = app.get("/api/v1/audit?limit=20", &admin.token).await.json;
    assert!(audit
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["action"] == "policy.reload" && r["outcome"] == "rejected"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_policies_cannot_be_reloaded_and_say_why() {
    let app = TestApp::start(common::Backend::Sqlite, |_| {}).await;
    let admin = app.user("admin", "admin", None).await;
    let r = app
        .post("/api/v1/admin/policies/reload", &admin.token, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("policy_dir"));
    app.stop().await;
}
