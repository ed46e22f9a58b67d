//! Findings of the outside security review (issue 15) on labels, agents and
//! accounts, each proved over the public API: SECURITY-CASES 24, 25 and 27.
//! Every test here fails on the behaviour the review found.

mod common;

use common::{TestApp, User, ALL_DEPARTMENTS};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

async fn start() -> TestApp {
    TestApp::with_loopback_embedder(|_| {}).await
}

fn hr_doc(label: &str, extra: &str) -> String {
    format!(
        "---\ntitle: Compensation review\ndepartment: hr\nlabel: {label}\n---\n## Bands\n\n\
         The salary bands for senior engineers rise by 6 percent in April. {extra}\n"
    )
}

async fn search_hits(app: &TestApp, u: &User, q: &str) -> usize {
    let r = app.get(&format!("/api/v1/search?q={q}"), &u.token).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    r.json["messages"]
        .as_array()
        .or(r.json.as_array())
        .map(|a| a.len())
        .unwrap_or(0)
}

/// An HR document (internal), an HR agent scoped to it, a member cleared for
/// internal, and a message in a public channel quoting the document with
/// `word` in it, which the member can find.
struct HrQuote {
    admin: User,
    reader: User,
    doc: String,
    channel: String,
    message_id: String,
}

async fn hr_quote(app: &TestApp, word: &str) -> HrQuote {
    let admin = app.user("admin", "admin", Some(ALL_DEPARTMENTS)).await;
    let agent = app.user("hr-bot", "agent", Some("confidential:hr")).await;
    let reader = app.user("rita", "member", Some("internal")).await;
    let r = app
        .upload(&admin, "path=hr/comp.md", &hr_doc("internal", ""))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    let doc = r.json["document_id"].as_str().unwrap().to_string();
    hr_desk_scope(app, &admin, &agent).await;
    let chunk = app
        .get(&format!("/api/v1/documents/{doc}"), &admin.token)
        .await
        .json["chunks"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let channel = app.channel(&agent, "desk", "public", None).await;
    app.join(&reader.token, &channel).await;
    let r = app
        .post(
            &format!("/api/v1/channels/{channel}/messages"),
            &agent.token,
            json!({"body": format!("Bands rise 6% in April {word}"), "citations": [chunk]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    assert_eq!(search_hits(app, &reader, word).await, 1);
    HrQuote {
        admin,
        reader,
        doc,
        channel,
        message_id: r.json["id"].as_str().unwrap().to_string(),
    }
}

/// Scope `agent` to HR documents up to confidential:hr.
async fn hr_desk_scope(app: &TestApp, admin: &User, agent: &User) {
    let r = app
        .post(
            "/api/v1/scopes",
            &admin.token,
            json!({"name": "hr-desk", "departments": ["hr"], "max_label": "confidential:hr"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    let r = app.assign_scope(admin, &agent.id, Some("hr-desk")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
}

/// Finding 2: a file saying `label: public` uploaded with
/// `label=restricted:hr` was stored public. The given label is a floor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_02_front_matter_cannot_lower_the_uploaded_label() {
    let app = start().await;
    let admin = app.user("admin", "admin", Some(ALL_DEPARTMENTS)).await;
    let r = app
        .upload(
            &admin,
            "path=hr/secret.md&label=restricted:hr",
            &hr_doc("public", ""),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    assert_eq!(r.json["label"], "restricted:hr", "{:?}", r.json);
    let docs = app
        .get("/api/v1/documents?department=hr", &admin.token)
        .await;
    assert_eq!(docs.json[0]["label"], "restricted:hr", "{:?}", docs.json);
    // Front matter may still raise a label given lower: the join is kept.
    let r = app
        .upload(
            &admin,
            "path=hr/raised.md&label=internal",
            &hr_doc("confidential:hr", ""),
        )
        .await;
    assert_eq!(r.json["label"], "confidential:hr", "{:?}", r.json);
    // And a member below the floor retrieves nothing of the secret.
    let member = app.user("mia", "member", Some("internal")).await;
    let found = app
        .post(
            "/api/v1/retrieve",
            &member.token,
            json!({"query": "salary bands senior engineers", "k": 5}),
        )
        .await;
    assert!(
        !found.json.to_string().contains("secret.md"),
        "{:?}",
        found.json
    );
    app.stop().await;
}

/// Finding 2, department: an upload naming one department for a file whose
/// front matter names another is refused, not silently moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_02_a_department_conflicting_with_the_front_matter_is_refused() {
    let app = start().await;
    let admin = app.user("admin", "admin", Some(ALL_DEPARTMENTS)).await;
    let r = app
        .upload(
            &admin,
            "path=sales/notes.md&department=sales",
            &hr_doc("internal", ""),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.json);
    assert_eq!(r.code(), "department_conflict");
    let docs = app.get("/api/v1/documents", &admin.token).await;
    assert_eq!(docs.json, json!([]), "nothing stored");
    app.stop().await;
}

/// Finding 3: re-uploading a document at a higher label left the messages
/// quoting it at the old label, still searchable by people no longer cleared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_03_reupload_at_a_higher_label_raises_citing_messages() {
    let app = start().await;
    let q = hr_quote(&app, "zebrafish").await;
    let (admin, reader, ch) = (&q.admin, &q.reader, &q.channel);
    // The same path again, now confidential:hr.
    let r = app
        .upload(
            admin,
            "path=hr/comp.md",
            &hr_doc("confidential:hr", "Now confidential."),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    assert_eq!(r.json["status"], "updated");
    assert_eq!(
        search_hits(&app, reader, "zebrafish").await,
        0,
        "the quote followed its document's new label"
    );
    let listed = app
        .get(&format!("/api/v1/channels/{ch}/messages"), &reader.token)
        .await;
    assert!(
        !listed.json.to_string().contains("zebrafish"),
        "{:?}",
        listed.json
    );
    app.stop().await;
}

async fn spawn_one(app: &TestApp, admin: &User, dept: &str, max_label: &str) -> String {
    let r = app
        .post(
            "/api/v1/scopes",
            &admin.token,
            json!({"name": format!("dept-{dept}"), "departments": [dept], "max_label": max_label}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    let r = app
        .post(
            "/api/v1/agents",
            &admin.token,
            json!({"template": format!("{dept}-analyst"), "count": 1, "brain": "extractive"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    r.json["agents"][0]["id"].as_str().unwrap().to_string()
}

async fn mint(app: &TestApp, minter: &User, agent: &str) -> common::Resp {
    app.call(
        Method::POST,
        &format!("/api/v1/agents/{agent}/token"),
        Some(&minter.token),
        None,
    )
    .await
}

async fn set_status(app: &TestApp, admin: &User, agent: &str, status: &str) {
    let r = app
        .put(
            &format!("/api/v1/agents/{agent}/status"),
            &admin.token,
            json!({ "status": status }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{status}: {:?}", r.json);
}

/// Finding 5: a paused agent still got tokens and still posted. The server
/// enforces pause: no token, and a token minted before cannot act.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_05_a_paused_agent_cannot_get_tokens_or_post() {
    let app = start().await;
    let admin = app.user("admin", "admin", Some(ALL_DEPARTMENTS)).await;
    let agent = spawn_one(&app, &admin, "sales", "confidential:sales").await;
    let ch = app.channel(&admin, "floor", "public", None).await;
    let token = mint(&app, &admin, &agent).await.json["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app.join(&token, &ch).await;
    assert!(r.status.is_success(), "{:?}", r.json);
    set_status(&app, &admin, &agent, "paused").await;
    assert_eq!(
        mint(&app, &admin, &agent).await.status,
        StatusCode::NOT_FOUND
    );
    let r = app
        .post(
            &format!("/api/v1/channels/{ch}/messages"),
            &token,
            json!({"body": "still here"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.json);
    let r = app
        .post(
            "/api/v1/retrieve",
            &token,
            json!({"query": "pipeline", "k": 3}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.json);
    // Resumed, it acts again.
    set_status(&app, &admin, &agent, "active").await;
    let token = mint(&app, &admin, &agent).await.json["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .post(
            &format!("/api/v1/channels/{ch}/messages"),
            &token,
            json!({"body": "back"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    app.stop().await;
}

/// Finding 7: an admin raised their own clearance to `restricted:hr` (200).
/// Nobody changes their own role or clearance, and nobody grants clearance
/// they do not hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_07_nobody_raises_their_own_clearance_or_grants_beyond_it() {
    let app = start().await;
    let admin = app.user("admin", "admin", Some("internal")).await;
    let other = app.user("olga", "admin", Some(ALL_DEPARTMENTS)).await;
    let r = app
        .patch(
            &format!("/api/v1/users/{}", admin.id),
            &admin.token,
            json!({"clearance": "restricted:hr"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.json);
    assert_eq!(r.code(), "own_permissions");
    let r = app
        .patch(
            &format!("/api/v1/users/{}", other.id),
            &other.token,
            json!({"role": "leader"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.json);
    // Granting someone else more than you hold: refused, nothing changed.
    let mia = app.user("mia", "member", Some("internal")).await;
    let r = app
        .patch(
            &format!("/api/v1/users/{}", mia.id),
            &admin.token,
            json!({"clearance": "restricted:hr"}),
        )
        .await;
    assert_eq!(r.code(), "clearance_exceeded", "{:?}", r.json);
    let r = app
        .post(
            "/api/v1/users",
            &admin.token,
            json!({"handle": "sidekick", "role": "member", "password": "long enough password", "clearance": "confidential"}),
        )
        .await;
    assert_eq!(r.code(), "clearance_exceeded", "{:?}", r.json);
    let me = app.get("/api/v1/me", &admin.token).await;
    assert_eq!(me.json["clearance"], "internal");
    // Someone cleared for it may grant it.
    let r = app
        .patch(
            &format!("/api/v1/users/{}", mia.id),
            &other.token,
            json!({"clearance": "confidential:hr"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    app.stop().await;
}

/// Finding 7: an admin without the `hr` compartment minted a token for an HR
/// agent and retrieved as it. Tokens cannot exceed the minter's clearance,
/// name the minter, and every act under them is audited with both names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_07_agent_tokens_stay_within_the_minters_clearance_and_name_the_minter() {
    let app = start().await;
    let operator = app.user("root", "admin", Some(ALL_DEPARTMENTS)).await;
    let admin = app.user("admin", "admin", Some("restricted")).await;
    let hr_agent = spawn_one(&app, &operator, "hr", "restricted:hr").await;
    let r = mint(&app, &admin, &hr_agent).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.json);
    assert_eq!(r.code(), "clearance_exceeded");
    let r = mint(&app, &operator, &hr_agent).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    let token = r.json["access_token"].as_str().unwrap().to_string();
    // The token names its minter (`act`).
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["act"], operator.id.as_str());
    let ch = app.channel(&operator, "hr-room", "public", None).await;
    let r = app.join(&token, &ch).await;
    assert!(r.status.is_success(), "{:?}", r.json);
    let audit = app.get("/api/v1/audit?limit=100", &operator.token).await;
    let acted = audit
        .json
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "agent.act")
        .unwrap_or_else(|| panic!("no agent.act entry in {:?}", audit.json));
    assert_eq!(acted["actor_id"], hr_agent.as_str());
    assert_eq!(acted["detail"]["minted_by"], operator.id.as_str());
    // Once the minter loses the clearance, tokens they minted stop working.
    let r = app
        .patch(
            &format!("/api/v1/users/{}", operator.id),
            &app.user("boss", "admin", Some(ALL_DEPARTMENTS)).await.token,
            json!({"clearance": "restricted"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    let r = app.get("/api/v1/channels", &token).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.json);
    app.stop().await;
}

/// Finding 7: `GET /agents/{id}/memory` returned labelled notes unredacted to
/// any admin. Notes above the reader's clearance are redacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_07_agent_memory_is_redacted_by_the_readers_clearance() {
    let app = start().await;
    let operator = app.user("root", "admin", Some(ALL_DEPARTMENTS)).await;
    let admin = app.user("admin", "admin", Some("restricted")).await;
    let hr_agent = spawn_one(&app, &operator, "hr", "restricted:hr").await;
    let ch = app.channel(&operator, "lobby", "public", None).await;
    let lunch = app.say(&operator, &ch, "Lunch is at noon").await;
    let memory = json!({
        "recent": [
            {"channel_id": "c1", "message_id": "m1", "author": "hana", "text": "Band for staff engineers is 171 thousand", "label": "restricted:hr"},
            {"channel_id": ch, "message_id": lunch["id"], "author": "root", "text": "Lunch is at noon", "label": "internal"}
        ],
        "summary": "Salary table discussed",
        "summary_label": "restricted:hr"
    });
    let r = app
        .put(
            &format!("/api/v1/agents/{hr_agent}/memory"),
            &operator.token,
            memory,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.json);
    let seen = app
        .get(&format!("/api/v1/agents/{hr_agent}/memory"), &admin.token)
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{:?}", seen.json);
    let text = seen.json.to_string();
    assert!(!text.contains("171 thousand"), "{text}");
    assert!(!text.contains("Salary table"), "{text}");
    assert!(text.contains("Lunch is at noon"), "{text}");
    let cleared = app
        .get(
            &format!("/api/v1/agents/{hr_agent}/memory"),
            &operator.token,
        )
        .await;
    assert!(cleared.json.to_string().contains("171 thousand"));
    app.stop().await;
}

/// Finding 15: creating a channel named like a private one answered 409, an
/// oracle for hidden names. Now it answers as for a free name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_15_a_hidden_channel_name_answers_like_a_free_one() {
    let app = start().await;
    let hr = app.user("hana", "member", Some("internal")).await;
    let outsider = app.user("otto", "member", Some("internal")).await;
    app.channel(&hr, "layoffs-2027", "private", None).await;
    let r = app
        .post(
            "/api/v1/channels",
            &outsider.token,
            json!({"name": "layoffs-2027", "visibility": "public"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    // A name the creator can see is still taken.
    let r = app
        .post(
            "/api/v1/channels",
            &hr.token,
            json!({"name": "layoffs-2027", "visibility": "private"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.json);
    app.stop().await;
}

/// Finding 15: `/metrics` needed no login. It is off without a configured
/// token and refuses a wrong one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_15_metrics_need_the_configured_token() {
    let app = start().await;
    let r = app
        .raw(Method::GET, "/metrics", None, None, Vec::new())
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .raw(
            Method::GET,
            "/metrics",
            Some("wrong-token-wrong-token"),
            None,
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .raw(
            Method::GET,
            "/metrics",
            Some(common::METRICS_TOKEN),
            None,
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    app.stop().await;
    let off = TestApp::start(common::Backend::Sqlite, |s| s.server.metrics_token = None).await;
    let r = off
        .raw(
            Method::GET,
            "/metrics",
            Some(common::METRICS_TOKEN),
            None,
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    off.stop().await;
}

/// Finding 15: the first admin's password file was written before its
/// chmod. Secrets are created owner-only.
#[cfg(unix)]
#[test]
fn finding_15_secret_files_are_created_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret.txt");
    std::fs::write(&file, "old").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    warroom::storage::write_private(&file, b"new secret\n").unwrap();
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "new secret\n");
}

/// Finding 14: only posts were rate-limited; edits, reactions, retrievals
/// and searches were not. One keyed limit now covers every request, and one
/// user spending theirs leaves others unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_14_edits_reactions_and_searches_are_rate_limited_per_user() {
    let app = TestApp::start(common::Backend::Sqlite, |s| {
        s.limits.requests_per_second = 0.2;
        s.limits.request_burst = 6.0;
    })
    .await;
    let flooder = app.user("flo", "member", None).await;
    let other = app.user("otto", "member", None).await;
    let ch = app.channel(&other, "floor", "public", None).await;
    let m = app.say(&other, &ch, "hello").await;
    let id = m["id"].as_str().unwrap();
    let mut limited = 0;
    for i in 0..12 {
        let r = match i % 3 {
            0 => {
                app.call(
                    Method::PUT,
                    &format!("/api/v1/messages/{id}/reactions/%F0%9F%91%8D"),
                    Some(&flooder.token),
                    None,
                )
                .await
            }
            1 => {
                app.call(
                    Method::DELETE,
                    &format!("/api/v1/messages/{id}/reactions/%F0%9F%91%8D"),
                    Some(&flooder.token),
                    None,
                )
                .await
            }
            _ => app.get("/api/v1/search?q=hello", &flooder.token).await,
        };
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(r.code(), "rate_limited");
            limited += 1;
        }
    }
    assert!(limited >= 5, "only {limited} of 12 refused");
    let r = app.get("/api/v1/channels", &other.token).await;
    assert_eq!(r.status, StatusCode::OK, "others keep their budget");
    app.stop().await;
}

// ---- Attacks of our own (issue 15): what we would try against a war-room to
// read what we should not, or to act as someone else. Each names what must
// hold.

/// Attack: reuse another user's idempotency key in a shared channel, hoping
/// the dedupe hands back their original message. Keys are per author.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_someone_elses_idempotency_key_returns_nothing_of_theirs() {
    let app = start().await;
    let alice = app.user("alice", "member", None).await;
    let mallory = app.user("mallory", "member", None).await;
    let private = app.channel(&alice, "plans", "private", None).await;
    let shared = app.channel(&mallory, "lobby", "public", None).await;
    app.join(&alice.token, &shared).await;
    let r = app
        .post(
            &format!("/api/v1/channels/{private}/messages"),
            &alice.token,
            json!({"body": "The acquisition closes on Friday", "idempotency_key": "k-1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = app
        .post(
            &format!("/api/v1/channels/{shared}/messages"),
            &mallory.token,
            json!({"body": "hi", "idempotency_key": "k-1"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    assert_eq!(r.json["body"], "hi");
    assert!(!r.json.to_string().contains("acquisition"));
    app.stop().await;
}

/// Attack: mention someone who is not a member of a private channel, hoping
/// the mention delivers the text to them. It does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_mentioning_a_non_member_in_a_private_channel_reveals_nothing() {
    let app = start().await;
    let alice = app.user("alice", "member", None).await;
    let bob = app.user("bob", "member", None).await;
    let mut bob_ws = app.ws(&bob).await;
    let private = app.channel(&alice, "plans", "private", None).await;
    app.say(&alice, &private, "@bob the layoffs list is final")
        .await;
    let r = app.get("/api/v1/mentions", &bob.token).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.json.to_string().contains("layoffs"), "{:?}", r.json);
    let frames = bob_ws.drain(std::time::Duration::from_millis(500)).await;
    assert!(!format!("{frames:?}").contains("layoffs"), "{frames:?}");
    app.stop().await;
}

/// Attack: probe message ids of a private channel from outside (read,
/// thread, react): the answers are the same as for an id that does not
/// exist, so not even existence leaks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_probing_private_message_ids_answers_as_for_unknown_ids() {
    let app = start().await;
    let alice = app.user("alice", "member", None).await;
    let mallory = app.user("mallory", "member", None).await;
    let private = app.channel(&alice, "plans", "private", None).await;
    let m = app.say(&alice, &private, "Board meets on the 9th").await;
    let real = m["id"].as_str().unwrap().to_string();
    let fake = uuid::Uuid::now_v7().to_string();
    for path in ["", "/thread", "/reactions/%F0%9F%91%8D"] {
        let method = if path.starts_with("/reactions") {
            Method::PUT
        } else {
            Method::GET
        };
        let a = app
            .call(
                method.clone(),
                &format!("/api/v1/messages/{real}{path}"),
                Some(&mallory.token),
                None,
            )
            .await;
        let b = app
            .call(
                method,
                &format!("/api/v1/messages/{fake}{path}"),
                Some(&mallory.token),
                None,
            )
            .await;
        assert_eq!((a.status, a.code()), (b.status, b.code()), "{path}");
        assert!(
            !a.json.to_string().contains("Board"),
            "{path}: {:?}",
            a.json
        );
    }
    app.stop().await;
}

/// Attack: present a refresh token as an access token (it is long-lived).
/// Refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_a_refresh_token_is_not_an_access_token() {
    let app = start().await;
    let u = app.user("alice", "member", None).await;
    let r = app.get("/api/v1/channels", &u.refresh).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

/// Attack: after a document is raised above a channel member's clearance,
/// search for a word of a message quoting it, and read the message and its
/// thread directly by id. Nothing comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_a_quote_raised_above_a_member_is_unreadable_every_way() {
    let app = start().await;
    let q = hr_quote(&app, "platypus").await;
    let (admin, reader, doc, id) = (&q.admin, &q.reader, &q.doc, &q.message_id);
    app.put(
        &format!("/api/v1/documents/{doc}/label"),
        &admin.token,
        json!({"label": "confidential:hr"}),
    )
    .await;
    assert_eq!(search_hits(&app, reader, "platypus").await, 0);
    for path in [
        format!("/api/v1/messages/{id}"),
        format!("/api/v1/messages/{id}/thread"),
    ] {
        let r = app.get(&path, &reader.token).await;
        assert!(
            !r.json.to_string().contains("platypus"),
            "{path}: {:?}",
            r.json
        );
    }
    app.stop().await;
}

/// Attack (case 24's other side channels): ask who is online in, or who is a
/// member of, a private channel from outside. Same answer as for a channel
/// that does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_presence_and_members_of_a_private_channel_reveal_nothing() {
    let app = start().await;
    let alice = app.user("alice", "member", None).await;
    let mallory = app.user("mallory", "member", None).await;
    let _alice_ws = app.ws(&alice).await;
    let private = app.channel(&alice, "plans", "private", None).await;
    let fake = uuid::Uuid::now_v7().to_string();
    for what in ["presence", "members"] {
        let a = app
            .get(
                &format!("/api/v1/channels/{private}/{what}"),
                &mallory.token,
            )
            .await;
        let b = app
            .get(&format!("/api/v1/channels/{fake}/{what}"), &mallory.token)
            .await;
        assert_eq!((a.status, a.code()), (b.status, b.code()), "{what}");
        assert!(
            !a.json.to_string().contains(&alice.id),
            "{what}: {:?}",
            a.json
        );
    }
    app.stop().await;
}

/// Finding 14, WebSocket side: resubscribes, typing and repeated
/// `agent_activity` frames were not limited. Frames share one keyed limit,
/// and a connection streams the activity feed at most once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_14_websocket_frames_are_rate_limited_and_activity_streams_once() {
    let app = TestApp::start(common::Backend::Sqlite, |s| {
        s.limits.ws_frames_per_second = 0.2;
        s.limits.ws_frame_burst = 5.0;
    })
    .await;
    let admin = app.user("admin", "admin", None).await;
    let ch = app.channel(&admin, "floor", "public", None).await;
    let mut ws = app.ws(&admin).await;
    ws.send(json!({"type": "agent_activity", "interests": ["pipeline"]}))
        .await;
    ws.expect("activity_subscribed").await;
    ws.send(json!({"type": "agent_activity", "interests": ["pipeline"]}))
        .await;
    let again = ws.expect("error").await;
    assert_eq!(again["code"], "conflict", "{again}");
    for _ in 0..10 {
        ws.subscribe(&ch, None).await;
    }
    let frames = ws.drain(std::time::Duration::from_millis(500)).await;
    let limited = frames
        .iter()
        .filter(|f| f["type"] == "error" && f["code"] == "rate_limited")
        .count();
    assert!(limited >= 5, "{limited} refused: {frames:?}");
    app.stop().await;
}

/// Finding 6 (case 28): the server trusted the label an agent claimed. An
/// agent that retrieved HR material and then posts to an internal channel,
/// claiming `internal` and citing nothing, is refused; asking only for what
/// the channel allows (`max_label`) keeps it free to post.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_06_a_post_carries_at_least_what_the_agent_retrieved() {
    let app = start().await;
    let admin = app.user("admin", "admin", Some(ALL_DEPARTMENTS)).await;
    let agent = app.user("hr-bot", "agent", Some("confidential:hr")).await;
    let r = app
        .upload(&admin, "path=hr/comp.md", &hr_doc("confidential:hr", ""))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    hr_desk_scope(&app, &admin, &agent).await;
    let ch = app
        .channel(&agent, "lobby", "public", Some("internal"))
        .await;
    let path = format!("/api/v1/channels/{ch}/messages");
    let post = |body: &'static str| {
        app.post(
            &path,
            &agent.token,
            json!({"body": body, "label": "internal"}),
        )
    };
    let retrieve = |ceiling: Option<&'static str>| {
        let mut body = json!({"query": "salary bands senior engineers", "k": 3});
        if let Some(c) = ceiling {
            body["max_label"] = json!(c);
        }
        app.post("/api/v1/retrieve", &agent.token, body)
    };
    let r = retrieve(Some("cosmic")).await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "a bad max_label: {:?}",
        r.json
    );
    let r = retrieve(None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    assert!(
        r.json.to_string().contains("6 percent"),
        "the HR chunk came back: {:?}",
        r.json
    );
    // Paraphrasing it uncited into an internal channel, claiming internal.
    let r = post("Senior bands go up six percent in April").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.json);
    // The mark is spent by that attempt; retrieving within the channel's
    // label gets nothing from HR and leaves the agent free to post.
    let r = retrieve(Some("internal")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    assert!(!r.json.to_string().contains("6 percent"), "{:?}", r.json);
    let r = post("Lunch is at noon").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    app.stop().await;
}

/// Finding 6 (case 28), messages: the server counted only what an agent
/// retrieved. An agent cleared for HR that reads the HR room (a page, one
/// message, a thread or a search) and then repeats it uncited in an internal
/// channel, claiming `internal`, is refused; its next act spends the mark, so
/// the agent still speaks in both rooms; and it cannot take channel messages
/// from the socket, where the server could not count them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_06_a_post_carries_at_least_what_the_agent_read_in_messages() {
    let app = start().await;
    let admin = app.user("admin", "admin", Some(ALL_DEPARTMENTS)).await;
    let agent = app.user("hr-bot", "agent", Some("restricted:hr")).await;
    let hr_room = app
        .channel(&admin, "hr-room", "public", Some("restricted:hr"))
        .await;
    let band = app
        .say(&admin, &hr_room, "Staff band is 171 thousand")
        .await;
    let band_id = band["id"].as_str().unwrap().to_string();
    assert_eq!(band["label"], "restricted:hr", "{band:?}");
    let lobby = app
        .channel(&agent, "lobby", "public", Some("internal"))
        .await;
    let lobby_path = format!("/api/v1/channels/{lobby}/messages");
    let post = |body: &'static str| {
        app.post(
            &lobby_path,
            &agent.token,
            json!({"body": body, "label": "internal"}),
        )
    };
    let reads = [
        format!("/api/v1/channels/{hr_room}/messages"),
        format!("/api/v1/messages/{band_id}"),
        format!("/api/v1/messages/{band_id}/thread"),
        "/api/v1/search?q=band".to_string(),
    ];
    for read in &reads {
        let r = app.get(read, &agent.token).await;
        assert_eq!(r.status, StatusCode::OK, "{read}: {:?}", r.json);
        assert!(
            r.json.to_string().contains("171 thousand"),
            "{read}: {:?}",
            r.json
        );
        let leak = post("Staff band is 171 thousand").await;
        assert_eq!(
            leak.status,
            StatusCode::FORBIDDEN,
            "after {read} the HR message went to the lobby: {:?}",
            leak.json
        );
        // That attempt spent the mark: the agent speaks again.
        let r = post("Lunch is at noon").await;
        assert_eq!(r.status, StatusCode::CREATED, "after {read}: {:?}", r.json);
    }
    // Reading the room and reacting there is a turn too; a lower post after
    // it is the agent's own again.
    let r = app.join(&agent.token, &hr_room).await;
    assert!(r.status.is_success(), "{:?}", r.json);
    let r = app
        .get(&format!("/api/v1/messages/{band_id}"), &agent.token)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/messages/{band_id}/reactions/eyes"),
            Some(&agent.token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.json);
    let r = post("The canteen opens at eight").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    // A person who read the room carries no mark.
    let r = app.join(&admin.token, &lobby).await;
    assert!(r.status.is_success(), "{:?}", r.json);
    let r = app
        .get(
            &format!("/api/v1/channels/{hr_room}/messages"),
            &admin.token,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .post(
            &lobby_path,
            &admin.token,
            json!({"body": "Welcome to the lobby", "label": "internal"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    // The socket would hand the agent messages uncounted: it is refused.
    let mut ws = app.ws(&agent).await;
    ws.subscribe(&hr_room, None).await;
    let e = ws.expect("error").await;
    assert_eq!(e["code"], "forbidden", "{e:?}");
    app.say(&admin, &hr_room, "Second band note").await;
    let frames = ws.drain(std::time::Duration::from_millis(300)).await;
    assert!(
        !frames.iter().any(|f| f.to_string().contains("Second band")),
        "{frames:?}"
    );
    app.stop().await;
}

/// Finding 6, memory: an agent wrote its own memory's labels, so it could
/// label HR notes `public` for any admin to read. Readers now see memory at
/// the labels the server knows: a note at least its message's current label
/// (the agent's clearance when unknown), the summary at least the agent's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_06_memory_labels_are_the_servers() {
    let app = start().await;
    let operator = app.user("root", "admin", Some(ALL_DEPARTMENTS)).await;
    let admin = app.user("admin", "admin", Some("restricted")).await;
    let hr_agent = spawn_one(&app, &operator, "hr", "restricted:hr").await;
    let token = mint(&app, &operator, &hr_agent).await.json["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let hr_room = app
        .channel(&operator, "hr-room", "public", Some("restricted:hr"))
        .await;
    let band = app
        .say(&operator, &hr_room, "Staff band is 171 thousand")
        .await;
    // The agent itself writes its memory with labels that would show all of it.
    let r = app.put(&format!("/api/v1/agents/{hr_agent}/memory"),
        &token,
        json!({
            "recent": [
                {"channel_id": hr_room, "message_id": band["id"], "author": "root", "text": "Staff band is 171 thousand", "label": "public"},
                {"channel_id": "c9", "message_id": "no-such-message", "author": "x", "text": "Layoffs list is final", "label": "public"}
            ],
            "summary": "Salary table discussed",
            "summary_label": "public"
        }),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.json);
    let seen = app
        .get(&format!("/api/v1/agents/{hr_agent}/memory"), &admin.token)
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{:?}", seen.json);
    let text = seen.json.to_string();
    for secret in ["171 thousand", "Layoffs", "Salary table"] {
        assert!(!text.contains(secret), "{secret} shown: {text}");
    }
    let cleared = app
        .get(
            &format!("/api/v1/agents/{hr_agent}/memory"),
            &operator.token,
        )
        .await;
    assert!(cleared.json.to_string().contains("171 thousand"));
    app.stop().await;
}

/// Bad settings for the new knobs are refused at start with the key named.
#[test]
fn finding_14_15_bad_limit_and_metrics_settings_are_refused() {
    let mut s = warroom::config::Settings::default();
    s.server.metrics_token = Some("short".into());
    let e = s.validate().unwrap_err().to_string();
    assert!(e.contains("server.metrics_token"), "{e}");
    let mut s = warroom::config::Settings::default();
    s.limits.requests_per_second = 0.0;
    let e = s.validate().unwrap_err().to_string();
    assert!(e.contains("limits.requests_per_second"), "{e}");
    let mut s = warroom::config::Settings::default();
    s.limits.ws_frame_burst = 0.0;
    let e = s.validate().unwrap_err().to_string();
    assert!(e.contains("limits.ws_frames_per_second"), "{e}");
}

/// Finding 9: workers ran on an admin's password, so a leaked worker config
/// was a leaked admin. A worker account (role `worker`) lists agents, issues
/// tokens for agents within its clearance and streams the activity feed of
/// what it may read, and does nothing else; deactivating it kills the agent
/// tokens it issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_09_a_worker_account_runs_agents_and_nothing_else() {
    let app = start().await;
    let admin = app.user("root", "admin", Some(ALL_DEPARTMENTS)).await;
    let sales_agent = spawn_one(&app, &admin, "sales", "confidential:sales").await;
    let hr_agent = spawn_one(&app, &admin, "hr", "restricted:hr").await;
    let member = app.user("mia", "member", None).await;
    let ch = app.channel(&member, "floor", "public", None).await;
    // Created like any account, by an admin, within the admin's clearance.
    let r = app
        .post(
            "/api/v1/users",
            &admin.token,
            json!({"handle": "runner", "role": "worker", "clearance": "confidential:sales",
                   "password": "a-long-random-worker-key-0123456789"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    let login = app
        .login("runner", "a-long-random-worker-key-0123456789")
        .await;
    assert_eq!(login.status, StatusCode::OK, "{:?}", login.json);
    let worker = User {
        id: r.json["id"].as_str().unwrap().to_string(),
        handle: "runner".into(),
        token: login.json["access_token"].as_str().unwrap().to_string(),
        refresh: login.json["refresh_token"].as_str().unwrap().to_string(),
    };
    // What it is for.
    let r = app.get("/api/v1/agents/runtime", &worker.token).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    assert_eq!(
        r.json["agents"].as_array().map(Vec::len),
        Some(2),
        "{:?}",
        r.json
    );
    let r = mint(&app, &worker, &sales_agent).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    let agent_token = r.json["access_token"].as_str().unwrap().to_string();
    let r = mint(&app, &worker, &hr_agent).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.json);
    assert_eq!(r.code(), "clearance_exceeded");
    // Nothing else: no reading, posting, retrieving or administering.
    for (method, path, body) in [
        (Method::GET, "/api/v1/channels".to_string(), None),
        (Method::GET, format!("/api/v1/channels/{ch}/messages"), None),
        (
            Method::POST,
            format!("/api/v1/channels/{ch}/join"),
            Some(json!({})),
        ),
        (
            Method::POST,
            "/api/v1/retrieve".to_string(),
            Some(json!({"query": "pipeline", "k": 3})),
        ),
        (Method::GET, "/api/v1/users".to_string(), None),
        (
            Method::POST,
            "/api/v1/agents".to_string(),
            Some(json!({"template": "sales-analyst", "count": 1})),
        ),
        (
            Method::GET,
            format!("/api/v1/agents/{sales_agent}/memory"),
            None,
        ),
        (Method::GET, "/api/v1/search?q=pipeline".to_string(), None),
    ] {
        let r = app
            .call(method.clone(), &path, Some(&worker.token), body)
            .await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {:?}",
            r.json
        );
    }
    // On the socket: the activity feed of public channels within its
    // clearance, and no channel subscription.
    let mut ws = app.ws(&worker).await;
    ws.subscribe(&ch, None).await;
    let refused = ws.expect("error").await;
    assert!(
        matches!(refused["code"].as_str(), Some("forbidden" | "not_found")),
        "{refused}"
    );
    ws.send(json!({"type": "agent_activity", "interests": ["pipeline"]}))
        .await;
    ws.expect("activity_subscribed").await;
    app.say(&member, &ch, "the pipeline review moved to Friday")
        .await;
    let activity = ws.expect("activity").await;
    assert_eq!(
        activity["items"][0]["channel_id"],
        ch.as_str(),
        "{activity}"
    );
    // The agent acts under the worker's token, audited with both names.
    let r = app.join(&agent_token, &ch).await;
    assert!(r.status.is_success(), "{:?}", r.json);
    let audit = app.get("/api/v1/audit?limit=100", &admin.token).await;
    assert!(
        audit
            .json
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "agent.act" && e["detail"]["minted_by"] == worker.id.as_str()),
        "{:?}",
        audit.json
    );
    // Revoked (deactivated): its logins, its tokens and the agent tokens it issued stop.
    let r = app
        .patch(
            &format!("/api/v1/users/{}", worker.id),
            &admin.token,
            json!({"active": false}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    let r = app.get("/api/v1/agents/runtime", &worker.token).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.json);
    let r = app.get("/api/v1/channels", &agent_token).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.json);
    let r = app
        .login("runner", "a-long-random-worker-key-0123456789")
        .await;
    assert_ne!(r.status, StatusCode::OK, "{:?}", r.json);
    app.stop().await;
}
