//! SECURITY-CASES 24, the agent activity feed: an operator's feed carries
//! only messages the operator may read (clearance, private channels, DMs),
//! every item names its channel and label, and nothing on the wire is
//! derived from the text except the ids of the interest words the operator
//! registered.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{TestApp, User, Ws, WsEvent};
use hyper::StatusCode;
use serde_json::{json, Value};
use warroom_agent_runtime::platform::{fnv1a, Platform, MAX_INTERESTS};
use warroom_agent_runtime::remote::{Operator, RemoteAdapter};

/// The fields an activity item may have; anything else is a new side channel.
const ITEM_FIELDS: &[&str] = &[
    "channel_id",
    "seq",
    "message_id",
    "author_id",
    "author_is_agent",
    "thread_root",
    "thread_author_id",
    "label",
    "mentions",
    "interests",
];

async fn start() -> TestApp {
    TestApp::start(common::Backend::Sqlite, |_| {}).await
}

/// Subscribe `ws` to the activity feed with `interests`.
async fn subscribe_activity(ws: &mut Ws, interests: &[&str]) {
    ws.send(json!({"type": "agent_activity", "interests": interests}))
        .await;
    let ack = ws.expect("activity_subscribed").await;
    assert_eq!(ack["type"], "activity_subscribed");
}

/// The raw `activity` frames and their items, up to and including the item
/// for message `last` (within 10 s).
async fn activity_until(ws: &mut Ws, last: &str) -> (Vec<Value>, Vec<Value>) {
    let mut frames = Vec::new();
    let mut items = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match ws.next_within(left).await {
            WsEvent::Json(v) if v["type"] == "activity" => {
                let batch = v["items"].as_array().cloned().unwrap_or_default();
                frames.push(v);
                let done = batch.iter().any(|i| i["message_id"] == last);
                items.extend(batch);
                if done {
                    return (frames, items);
                }
            }
            WsEvent::Json(_) => continue,
            other => panic!("waiting for the activity item of {last}: {other:?} after {items:?}"),
        }
    }
}

/// The confirmed report's setting: an admin cleared only for `internal`, an
/// HR leader, and two public channels, one internal and one `restricted:hr`.
async fn internal_admin_and_hr_rooms(app: &TestApp) -> (User, User, String, String) {
    let ops = app.user("ops", "admin", Some("internal")).await;
    let hr = app.user("hana", "leader", Some("restricted:hr")).await;
    let general = app
        .channel(&hr, "general", "public", Some("internal"))
        .await;
    let hr_cases = app
        .channel(&hr, "hr-cases", "public", Some("restricted:hr"))
        .await;
    (ops, hr, general, hr_cases)
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_01_activity_feed_hides_messages_above_the_subscribers_clearance() {
    let app = start().await;
    // The confirmed report: an admin cleared only for `internal`.
    let (ops, hr, general, hr_cases) = internal_admin_and_hr_rooms(&app).await;
    let mut ws = app.ws(&ops).await;
    subscribe_activity(&mut ws, &[]).await;

    let hidden = app
        .say(&hr, &hr_cases, "Dismissal of the night shift lead")
        .await;
    let visible = app.say(&hr, &general, "Lunch is at noon today").await;
    let (frames, items) = activity_until(&mut ws, &id(&visible)).await;

    let raw = serde_json::to_string(&frames).expect("json");
    assert!(
        !raw.contains(&hr_cases) && !raw.contains(&id(&hidden)),
        "the restricted channel reached an internal-cleared admin: {raw}"
    );
    let item = items
        .iter()
        .find(|i| i["message_id"] == id(&visible))
        .expect("the readable message arrives");
    assert_eq!(item["channel_id"], general.as_str());
    assert_eq!(item["label"], "internal", "every item carries its label");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_01_activity_feed_hides_private_channels_and_dms_from_non_members() {
    let app = start().await;
    // Cleared for everything: only membership keeps these messages from it.
    let ops = app
        .user("ops", "admin", Some(common::ALL_DEPARTMENTS))
        .await;
    let owner = app.user("olga", "member", None).await;
    let alice = app.user("alice", "member", None).await;
    let bob = app.user("bob", "member", None).await;
    let carol = app.user("carol", "member", None).await;
    let board = app
        .channel(&owner, "board", "private", Some("internal"))
        .await;
    let general = app
        .channel(&carol, "general", "public", Some("internal"))
        .await;
    let dm = app
        .post("/api/v1/dms", &alice.token, json!({"user_id": bob.id}))
        .await;
    assert_eq!(dm.status, StatusCode::CREATED, "{:?}", dm.json);
    let dm = id(&dm.json);
    let mut ws = app.ws(&ops).await;
    subscribe_activity(&mut ws, &["acquisition", "merger"]).await;

    let in_board = app
        .say(&owner, &board, "The acquisition closes on Friday")
        .await;
    let in_dm = app.say(&alice, &dm, "Keep the merger between us").await;
    let visible = app.say(&carol, &general, "The merger rumour is old").await;
    let (frames, items) = activity_until(&mut ws, &id(&visible)).await;

    let raw = serde_json::to_string(&frames).expect("json");
    for (what, secret) in [
        ("private channel", board.as_str()),
        ("direct conversation", dm.as_str()),
        ("private message", &id(&in_board)),
        ("direct message", &id(&in_dm)),
        ("author of the private message", owner.id.as_str()),
        ("author of the direct message", alice.id.as_str()),
    ] {
        assert!(
            !raw.contains(secret),
            "the {what} reached an admin who is not a member: {raw}"
        );
    }
    assert_eq!(items.len(), 1, "only the public message: {items:?}");
    assert_eq!(items[0]["interests"], json!([1]), "{items:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_01_activity_feed_carries_no_text_digest() {
    let app = start().await;
    let ops = app.user("ops", "admin", None).await;
    let carol = app.user("carol", "member", None).await;
    let general = app
        .channel(&carol, "general", "public", Some("internal"))
        .await;
    let mut ws = app.ws(&ops).await;
    subscribe_activity(&mut ws, &["forecast", "salary", "Margin"]).await;

    let text = "The Margin on the forecast looks thin; the forecast slips";
    let msg = app.say(&carol, &general, text).await;
    let (frames, items) = activity_until(&mut ws, &id(&msg)).await;

    let item = items
        .iter()
        .find(|i| i["message_id"] == id(&msg))
        .expect("the message arrives");
    let fields: BTreeSet<&str> = item
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    let unexpected: Vec<&&str> = fields.iter().filter(|f| !ITEM_FIELDS.contains(f)).collect();
    assert!(
        unexpected.is_empty(),
        "fields beyond the metadata: {unexpected:?}"
    );
    // Only the ids of the registered words, in the order they occur.
    assert_eq!(item["interests"], json!([2, 0]));
    // No hash of any word (the old feed sent 32-bit FNV-1a of each) and no word.
    let raw = serde_json::to_string(&frames).expect("json");
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        if word.len() < 4 {
            continue;
        }
        let lower = word.to_lowercase();
        for h in [
            fnv1a(lower.as_bytes()) as u32,
            fnv1a(word.as_bytes()) as u32,
        ] {
            assert!(
                !raw.contains(&h.to_string()),
                "a digest of {word:?} is on the wire: {raw}"
            );
        }
        assert!(
            !raw.to_lowercase().contains(&lower),
            "{word:?} is on the wire"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_01_activity_feed_refuses_an_oversized_interest_vocabulary_clearly() {
    let app = start().await;
    let ops = app.user("ops", "admin", None).await;
    let mut ws = app.ws(&ops).await;
    let words: Vec<String> = (0..=MAX_INTERESTS).map(|i| format!("word{i}")).collect();
    ws.send(json!({"type": "agent_activity", "interests": words}))
        .await;
    let err = ws.expect("error").await;
    assert_eq!(err["code"], "invalid_input", "{err:?}");
    let message = err["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("at most {MAX_INTERESTS}")),
        "the error says what to do: {message}"
    );
    // The refused subscription left nothing behind; a valid one works.
    subscribe_activity(&mut ws, &["forecast"]).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_01_remote_workers_receive_interest_ids_for_readable_messages_only() {
    let app = start().await;
    let (ops, hr, general, hr_cases) = internal_admin_and_hr_rooms(&app).await;
    let operator = Operator::Password {
        handle: ops.handle.clone(),
        password: common::PASSWORD.into(),
    };
    let worker = RemoteAdapter::new(&app.base, operator).expect("adapter");
    let vocabulary = vec!["salary".to_string(), "budget".to_string()];
    let mut feed = worker.activity(&vocabulary).await.expect("feed");

    app.say(&hr, &hr_cases, "The salary bands for 2027").await;
    let visible = app
        .say(&hr, &general, "The budget and the salary talk")
        .await;
    let first = tokio::time::timeout(Duration::from_secs(10), feed.recv())
        .await
        .expect("an item within 10 s")
        .expect("the feed is open");
    assert_eq!(
        first.message_id,
        id(&visible),
        "the restricted message came first"
    );
    assert_eq!(first.channel_id, general);
    assert_eq!(first.label.to_string(), "internal");
    assert_eq!(first.interests, vec![1, 0]);
    app.stop().await;
}
