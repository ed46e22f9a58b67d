//! The insights job over the API: agents state facts of different
//! departments in threads; the job finds the cross-department risk and
//! opportunity, drops the matter another department says is resolved,
//! stores versioned digests, exports them, and shows each reader only what
//! their clearance allows (SECURITY-CASES 10). Embeddings come from the
//! instant loopback endpoint.

mod common;

use common::{TestApp, User};
use hyper::{Method, StatusCode};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{json, Value};

const HR_SECRET: &str = "route replay prototype built by the 2026 intern cohort";

fn corpus() -> Vec<(&'static str, String)> {
    let doc = |dept: &str, label: &str, body: &str| {
        format!("---\ntitle: {dept} notes\ndepartment: {dept}\nlabel: {label}\n---\n## Notes\n\n{body}\n")
    };
    vec![
        ("support/tickets.md", doc("support", "internal", "Halvorsen Cold Chain reported GPS drift of 300 metres since firmware 4.2 shipped. The knowledge base gained 38 articles.")),
        ("engineering/postmortem.md", doc("engineering", "internal", "Firmware 4.2 replaced the antenna driver with a low-power version in October. The build farm moved to new racks.")),
        ("sales/pipeline.md", doc("sales", "internal", "Halvorsen Cold Chain renews in March with $2.1M of annual recurring revenue. The sales offsite is in Lisbon.")),
        ("hr/interns.md", doc("hr", "confidential", &format!("The intern showcase demonstrated a {HR_SECRET}. Interns finish in August."))),
        ("product/requests.md", doc("product", "internal", "Route replay is the most requested feature from the customer advisory board this year. The roadmap review is on Friday.")),
        ("operations/outage.md", doc("operations", "internal", "The Reno warehouse had a scanner outage on the 3rd and orders could not ship that day.")),
        ("finance/close.md", doc("finance", "internal", "All Reno orders shipped on the 4th through the backup scanners; no customer was affected.")),
    ]
}

async fn start() -> TestApp {
    TestApp::with_loopback_embedder(|s| s.insights.schedule = false).await
}

struct Agent {
    token: String,
}

async fn agent(app: &TestApp, admin: &User, dept: &str, channels: &[&str]) -> Agent {
    let r = app
        .post(
            "/api/v1/agents",
            &admin.token,
            json!({"template": format!("{}-analyst", if dept == "product" { "marketing" } else { dept }),
                   "count": 1, "scope": format!("dept-{dept}"), "channels": channels}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    let id = r.json["agents"][0]["id"].as_str().unwrap().to_string();
    let t = app
        .call(
            Method::POST,
            &format!("/api/v1/agents/{id}/token"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(t.status, StatusCode::OK, "{:?}", t.json);
    Agent {
        token: t.json["access_token"].as_str().unwrap().to_string(),
    }
}

/// The chunk of `path` (each test document is one chunk).
async fn chunk_of(app: &TestApp, path: &str) -> String {
    use warroom::storage::entities::{chunk, document};
    let docs = document::Entity::find()
        .all(&app.running.app.db)
        .await
        .unwrap();
    let doc = docs.iter().find(|d| d.path == path).expect("document");
    let chunks = chunk::Entity::find()
        .all(&app.running.app.db)
        .await
        .unwrap();
    chunks
        .iter()
        .find(|c| c.document_id == doc.id)
        .expect("chunk")
        .id
        .clone()
}

async fn say(
    app: &TestApp,
    a: &Agent,
    channel: &str,
    root: Option<&str>,
    quote: &str,
    chunk: &str,
    label: &str,
) -> String {
    let r = app
        .post(
            &format!("/api/v1/channels/{channel}/messages"),
            &a.token,
            json!({"body": format!("From our files: \"{quote}\""), "thread_root": root,
                   "citations": [chunk], "label": label, "brain": "extractive"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    r.json["id"].as_str().unwrap().to_string()
}

/// The corpus, department scopes, two war rooms and two rounds of talk: a
/// cross-department risk (support, engineering, sales), a settled outage
/// (operations, finance) and a confidential opportunity (product, hr).
/// Returns the ids of #war-room and #war-room-confidential.
async fn seed_talk(app: &TestApp, admin: &User) -> (String, String) {
    for (path, body) in corpus() {
        let r = app
            .raw(
                Method::POST,
                &format!("/api/v1/documents?path={path}"),
                Some(&admin.token),
                Some("application/octet-stream"),
                body.into_bytes(),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{path}: {:?}", r.json);
    }
    for d in [
        "support",
        "engineering",
        "sales",
        "hr",
        "product",
        "operations",
        "finance",
    ] {
        let r = app
            .post(
                "/api/v1/scopes",
                &admin.token,
                json!({"name": format!("dept-{d}"), "departments": [d], "max_label": "confidential"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    }
    let room = app
        .channel(admin, "war-room", "public", Some("internal"))
        .await;
    let conf = app
        .channel(
            admin,
            "war-room-confidential",
            "public",
            Some("confidential"),
        )
        .await;
    let q = |s: &str| s.to_string();
    let facts = [
        (
            "support",
            q("Halvorsen Cold Chain reported GPS drift of 300 metres since firmware 4.2 shipped."),
            "support/tickets.md",
        ),
        (
            "engineering",
            q("Firmware 4.2 replaced the antenna driver with a low-power version in October."),
            "engineering/postmortem.md",
        ),
        (
            "sales",
            q("Halvorsen Cold Chain renews in March with $2.1M of annual recurring revenue."),
            "sales/pipeline.md",
        ),
    ];
    // Two rounds by different agents: the risk is corroborated.
    for _ in 0..2 {
        let mut root = None;
        for (dept, quote, path) in &facts {
            let a = agent(app, admin, dept, &["war-room"]).await;
            let chunk = chunk_of(app, path).await;
            let id = say(app, &a, &room, root.as_deref(), quote, &chunk, "internal").await;
            root.get_or_insert(id);
        }
        // The resolved matter: operations' outage, finance says no one was hurt.
        let ops = agent(app, admin, "operations", &["war-room"]).await;
        let fin = agent(app, admin, "finance", &["war-room"]).await;
        let r = say(app, &ops, &room, None, "The Reno warehouse had a scanner outage on the 3rd and orders could not ship that day.", &chunk_of(app, "operations/outage.md").await, "internal").await;
        say(app, &fin, &room, Some(&r), "All Reno orders shipped on the 4th through the backup scanners; no customer was affected.", &chunk_of(app, "finance/close.md").await, "internal").await;
        // The confidential opportunity: product's most requested feature, HR's interns built it.
        let prod = agent(app, admin, "product", &["war-room-confidential"]).await;
        let hr = agent(app, admin, "hr", &["war-room-confidential"]).await;
        let r = say(app, &prod, &conf, None, "Route replay is the most requested feature from the customer advisory board this year.", &chunk_of(app, "product/requests.md").await, "internal").await;
        say(
            app,
            &hr,
            &conf,
            Some(&r),
            &format!("The intern showcase demonstrated a {HR_SECRET}."),
            &chunk_of(app, "hr/interns.md").await,
            "confidential",
        )
        .await;
    }

    (room, conf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_find_cross_department_insights_and_redact_by_clearance() {
    let app = start().await;
    let admin = app
        .user("admin", "admin", Some(common::ALL_DEPARTMENTS))
        .await;
    let member = app.user("mia", "member", None).await;
    let lead_internal = app.user("lou", "leader", Some("internal")).await;
    let lead_conf = app.user("lena", "leader", Some("confidential")).await;
    let (room, _conf) = seed_talk(&app, &admin).await;

    // Only leaders and admins run and read; bad input is refused.
    let r = app
        .post("/api/v1/insights/run", &member.token, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app.get("/api/v1/insights/digests", &member.token).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .get("/api/v1/insights/digests?limit=0", &member.token)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "permission before input");
    let r = app
        .get("/api/v1/insights/digests?limit=0", &admin.token)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.json);
    let r = app
        .post(
            "/api/v1/insights/run",
            &admin.token,
            json!({"from": "2026-11-30T00:00:00Z", "to": "2026-11-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.json);
    let r = app
        .post("/api/v1/insights/run", &admin.token, json!({"since": 1}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.json);
    let (digests, _) = app.running.app.insights.stored_counts().await.unwrap();
    assert_eq!(digests, 0, "refused runs store nothing");

    let r = app
        .post("/api/v1/insights/run", &lead_internal.token, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    let id = r.json["id"].as_str().unwrap().to_string();
    assert_eq!(r.json["version"], 1);

    // Admin (cleared for everything) sees the whole digest.
    let full = app
        .get(&format!("/api/v1/insights/digests/{id}"), &admin.token)
        .await;
    assert_eq!(full.status, StatusCode::OK);
    let d = &full.json;
    assert_eq!(d["label"], "confidential", "{d}");
    assert_eq!(d["redacted"], false);
    let insights = d["insights"].as_array().unwrap();
    let risk = insights
        .iter()
        .find(|i| i["kind"] == "risk")
        .unwrap_or_else(|| panic!("a risk: {d:#}"));
    let text = risk.to_string();
    for term in ["GPS drift", "antenna", "March"] {
        assert!(text.contains(term), "{term} missing from {risk:#}");
    }
    let depts: Vec<&str> = risk["departments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(depts.len() >= 2, "{depts:?}");
    for e in risk["evidence"].as_array().unwrap() {
        assert!(e["link"]
            .as_str()
            .unwrap()
            .starts_with(&format!("#/c/{room}/m/")));
        for c in e["citations"].as_array().unwrap() {
            assert!(c["quote"].as_str().unwrap().len() > 10);
            assert!(c["document_path"].as_str().unwrap().contains('/'));
        }
    }
    let opp = insights
        .iter()
        .find(|i| i["kind"] == "opportunity")
        .unwrap_or_else(|| panic!("an opportunity: {d:#}"));
    assert_eq!(opp["label"], "confidential");
    assert!(opp.to_string().contains("route replay prototype"));
    assert!(
        !d.to_string().to_lowercase().contains("scanner outage"),
        "the resolved outage is not reported: {d:#}"
    );
    assert!(d["stats"]["dismissed_as_resolved"].as_u64().unwrap() >= 1);
    assert!(d["charts"]["activity_svg"]
        .as_str()
        .unwrap()
        .starts_with("<svg"));

    // SECURITY-CASES 10: a leader cleared for internal gets it redacted, in every form.
    let red = app
        .get(
            &format!("/api/v1/insights/digests/{id}"),
            &lead_internal.token,
        )
        .await;
    assert_eq!(red.status, StatusCode::OK);
    assert_eq!(red.json["redacted"], true);
    assert_eq!(red.json["label"], "internal");
    assert!(!red.json.to_string().contains(HR_SECRET), "{:#}", red.json);
    assert!(!red.json.to_string().contains("war-room-confidential"));
    let kinds: Vec<&str> = red.json["insights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"opportunity"),
        "the redacted insight keeps its place"
    );
    for format in ["md", "html", "json"] {
        let r = app
            .raw(
                Method::GET,
                &format!("/api/v1/insights/digests/{id}/export?format={format}"),
                Some(&lead_internal.token),
                None,
                vec![],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        let body = match &r.json {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        assert!(!body.contains(HR_SECRET), "{format} leaks");
        assert!(
            body.contains("GPS drift"),
            "{format} keeps the internal risk"
        );
        if format == "html" {
            assert!(body.contains("<svg") && !body.contains("<script"));
            let csp = r.headers["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("default-src 'none'"), "{csp}");
        }
    }
    let conf_view = app
        .get(&format!("/api/v1/insights/digests/{id}"), &lead_conf.token)
        .await;
    assert!(
        conf_view.json.to_string().contains(HR_SECRET),
        "cleared leaders see it"
    );
    let list = app
        .get("/api/v1/insights/digests", &lead_internal.token)
        .await;
    assert_eq!(list.json["digests"][0]["redacted"], true);

    // Bad ids and formats.
    let r = app
        .get("/api/v1/insights/digests/not%20an%20id", &admin.token)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .get(
            &format!("/api/v1/insights/digests/{}", uuid::Uuid::now_v7()),
            &admin.token,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .get(
            &format!("/api/v1/insights/digests/{id}/export?format=pdf"),
            &admin.token,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // A second run of the same period is a new version; the insights persist.
    let period = &d["period"];
    let r = app
        .post(
            "/api/v1/insights/run",
            &admin.token,
            json!({"from": period["from"], "to": period["to"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    assert_eq!(r.json["version"], 2);
    let again: Vec<&Value> = r.json["insights"].as_array().unwrap().iter().collect();
    assert!(again.iter().all(|i| i["trend"] == "steady"), "{again:?}");

    // Messages were embedded when posted or by the job; none is left without a vector.
    let (_, vectors) = app.running.app.insights.stored_counts().await.unwrap();
    let messages = warroom::storage::entities::message::Entity::find()
        .count(&app.running.app.db)
        .await
        .unwrap();
    assert_eq!(vectors, messages);
    app.stop().await;
}

/// An app whose insights job is judged by the chat model at `url`, with the
/// talk of [`seed_talk`], and the digest of one run as its admin reads it.
async fn digest_judged_by(url: String, model: &str, timeout_secs: Option<u64>) -> (TestApp, Value) {
    let model = model.to_string();
    let app = TestApp::with_loopback_embedder(move |s| {
        s.insights.schedule = false;
        s.agents.brain = warroom::choice::Brain::Openai;
        s.agents.openai_base_url = Some(url);
        s.agents.openai_model = model;
        if let Some(t) = timeout_secs {
            s.agents.openai_timeout_secs = t;
        }
    })
    .await;
    let admin = app
        .user("admin", "admin", Some(common::ALL_DEPARTMENTS))
        .await;
    seed_talk(&app, &admin).await;
    let r = app
        .post("/api/v1/insights/run", &admin.token, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    let id = r.json["id"].as_str().unwrap().to_string();
    let d = app
        .get(&format!("/api/v1/insights/digests/{id}"), &admin.token)
        .await
        .json;
    (app, d)
}

/// A scripted OpenAI-compatible chat endpoint for the model judge: it reads
/// the facts of each candidate and answers as a model would, in JSON.
async fn judging_model() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::{routing::post, Json, Router};
    let prompts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = prompts.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move |Json(body): Json<Value>| {
            let seen = seen.clone();
            async move {
                let user = body["messages"][1]["content"].as_str().unwrap_or("").to_string();
                // The judge asks for JSON mode and caps the answer in the
                // field every compatible server reads; a request without
                // them is recorded as such and fails the prompt assertion.
                if body["response_format"]["type"] != "json_object" || body["max_tokens"] != 300 {
                    seen.lock().unwrap().push(format!("request without JSON mode or max_tokens: {body}"));
                } else {
                    seen.lock().unwrap().push(user.clone());
                }
                // Judge by the finding's own facts; the nearby ones are context.
                let own = user.split("Nearby facts").next().unwrap_or("").to_string();
                let answer = if own.contains("Reno") {
                    json!({"verdict": "settled", "headline": "", "why": "", "reason": "finance says every order shipped"})
                } else if own.contains("GPS drift") || own.contains("Halvorsen") {
                    json!({"verdict": "risk", "headline": "Halvorsen's March renewal meets firmware 4.2's GPS drift",
                           "why": "Support sees drift, engineering changed the antenna driver, sales has the renewal in March. Fix the driver before the renewal talks.",
                           "reason": "a defect reaches a renewing account"})
                } else {
                    json!({"verdict": "nothing", "headline": "", "why": "", "reason": "routine"})
                };
                Json(json!({
                    "id": "judge-1", "object": "chat.completion", "created": 0, "model": "judge",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.to_string()}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), prompts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_chat_model_judges_and_words_each_candidate() {
    let (chat_url, prompts) = judging_model().await;
    let (_app, full) = digest_judged_by(chat_url, "judge", None).await;
    let d = &full;
    let insights = d["insights"].as_array().unwrap();
    // The model's verdicts decide: only the risk it recognised is reported,
    // with its headline and why; what it called settled or nothing is not.
    assert_eq!(insights.len(), 1, "{d:#}");
    let risk = &insights[0];
    assert_eq!(risk["kind"], "risk");
    assert_eq!(
        risk["title"],
        "Halvorsen's March renewal meets firmware 4.2's GPS drift"
    );
    assert!(risk["why"]
        .as_str()
        .unwrap()
        .starts_with("Support sees drift"));
    assert!(risk["confidence_reason"]
        .as_str()
        .unwrap()
        .contains("(model)"));
    assert_eq!(d["summarizer"], "openai");
    assert!(d["stats"]["dismissed_as_resolved"].as_u64().unwrap() >= 1);
    // Every candidate was judged by the model; none fell back.
    assert!(
        d["stats"]["model_judged"].as_u64().unwrap() >= 2,
        "{:#}",
        d["stats"]
    );
    assert_eq!(d["stats"]["model_unusable"], 0);
    // The judge saw each candidate's facts as quoted data, and the facts of
    // other departments near them.
    let prompts = prompts.lock().unwrap();
    assert!(!prompts.is_empty());
    assert!(
        prompts
            .iter()
            .all(|p| p.starts_with("Facts of the finding:\n> [")),
        "{prompts:?}"
    );
    assert!(prompts
        .iter()
        .any(|p| p.contains("Nearby facts from other departments")));
}

/// Whether a message has a stored vector.
async fn has_vector(app: &TestApp, message_id: &str) -> bool {
    use sea_orm::ConnectionTrait;
    let db = &app.running.app.db;
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            "SELECT message_id FROM message_vectors WHERE message_id = $1"
        }
        _ => "SELECT message_id FROM message_vectors WHERE message_id = ?",
    };
    db.query_one_raw(sea_orm::Statement::from_sql_and_values(
        backend,
        sql,
        [message_id.into()],
    ))
    .await
    .unwrap()
    .is_some()
}

/// Finding 13: digests froze labels when written, so a later
/// reclassification did not redact them; DM bodies were embedded. Now a
/// stored digest is redacted at read time from the current labels of its
/// evidence, and direct messages are never embedded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_13_digests_redact_from_current_labels_and_dms_are_not_embedded() {
    let app = start().await;
    let admin = app
        .user("admin", "admin", Some(common::ALL_DEPARTMENTS))
        .await;
    let lead_internal = app.user("lou", "leader", Some("internal")).await;
    let (room, _conf) = seed_talk(&app, &admin).await;
    let r = app
        .post("/api/v1/insights/run", &admin.token, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    let id = r.json["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/insights/digests/{id}");
    let before = app.get(&path, &lead_internal.token).await;
    assert!(
        before.json.to_string().contains("GPS drift"),
        "the internal risk is readable at first: {:#}",
        before.json
    );
    // Support's document becomes confidential: its quotes follow, and so does
    // the stored digest, without a new run.
    let docs = app
        .get("/api/v1/documents?department=support", &admin.token)
        .await;
    let doc = docs.json[0]["id"].as_str().unwrap().to_string();
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/documents/{doc}/label"),
            Some(&admin.token),
            Some(json!({"label": "confidential"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    let after = app.get(&path, &lead_internal.token).await;
    assert_eq!(after.status, StatusCode::OK);
    assert!(
        !after.json.to_string().contains("GPS drift"),
        "reclassified evidence still shown: {:#}",
        after.json
    );
    assert_eq!(after.json["redacted"], true);
    for format in ["md", "html", "json"] {
        let r = app
            .get(
                &format!("{path}/export?format={format}"),
                &lead_internal.token,
            )
            .await;
        assert!(!r.json.to_string().contains("GPS drift"), "{format} export");
    }
    // A cleared reader still sees it.
    let full = app.get(&path, &admin.token).await;
    assert!(full.json.to_string().contains("GPS drift"));

    // Direct messages are not embedded; a channel message posted after is.
    let sam = app.user("sam", "member", None).await;
    let dm = app
        .post("/api/v1/dms", &admin.token, json!({"user_id": sam.id}))
        .await;
    assert!(dm.status.is_success(), "{:?}", dm.json);
    let dm_id = dm.json["id"].as_str().unwrap().to_string();
    let secret = app
        .say(&admin, &dm_id, "Between us: the reorg lands in May.")
        .await;
    let public = app
        .say(&admin, &room, "Reminder: the all-hands is on Thursday.")
        .await;
    let public_id = public["id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !has_vector(&app, public_id).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the channel message was never embedded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        !has_vector(&app, secret["id"].as_str().unwrap()).await,
        "a direct message was embedded"
    );
    app.stop().await;
}

/// The model judge against a real llama.cpp server (`WARROOM_TEST_LLAMA_URL`,
/// the API base with `/v1`; `scripts/test.sh` starts one when
/// llama-cpp-python is installed): every candidate goes to the model in JSON
/// mode, the job finishes and writes its digest whatever a small model makes
/// of it, and the digest says how many answers were usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_llama_cpp_server_judges_the_candidates() {
    let Some(url) = std::env::var("WARROOM_TEST_LLAMA_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("WARROOM_TEST_LLAMA_URL not set: the real llama.cpp judge test is skipped");
        return;
    };
    let (app, d) = digest_judged_by(url, "local", Some(120)).await;
    eprintln!("real model judge: {:#}", d["stats"]);
    assert_eq!(d["summarizer"], "openai");
    let asked = d["stats"]["model_judged"].as_u64().unwrap()
        + d["stats"]["model_unusable"].as_u64().unwrap();
    assert!(
        asked >= 2,
        "every candidate goes to the model: {:#}",
        d["stats"]
    );
    for i in d["insights"].as_array().unwrap() {
        assert!(i["title"].as_str().unwrap().chars().count() < 100, "{i:#}");
        assert!(!i["evidence"].as_array().unwrap().is_empty(), "{i:#}");
    }
    app.stop().await;
}
