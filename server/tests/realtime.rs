//! Realtime: members-only delivery (SECURITY-CASES 13), resume without gaps
//! or duplicates, explicit resync (21), origin and token checks at upgrade
//! (14), frame limits (15), slow consumers.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{Backend, TestApp, User, Ws, WsEvent};
use futures_util::SinkExt;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const QUIET: Duration = Duration::from_millis(400);

fn seqs(events: &[Value], channel: &str) -> Vec<i64> {
    events
        .iter()
        .filter(|e| e["channel_id"] == channel && e["seq"].is_i64())
        .map(|e| e["seq"].as_i64().unwrap())
        .collect()
}

async fn private_channel_events_reach_members_only(app: &TestApp) {
    let owner = app.user("owner", "member", None).await;
    let member = app.user("member", "member", None).await;
    let outsider = app.user("outsider", "member", None).await;
    let ch = app.channel(&owner, "secret-plans", "private", None).await;
    app.post(
        &format!("/api/v1/channels/{ch}/invite"),
        &owner.token,
        json!({"user_id": member.id}),
    )
    .await;

    let mut m = app.ws(&member).await;
    m.subscribe(&ch, Some(0)).await;
    m.expect("subscribed").await;
    let mut o = app.ws(&outsider).await;
    o.subscribe(&ch, Some(0)).await;
    let refused = o.expect("error").await;
    assert_eq!(
        refused["code"], "not_found",
        "a non-member learns nothing, not even that it exists"
    );

    let msg = app.say(&owner, &ch, "the plan is secret").await;
    let id = msg["id"].as_str().unwrap();
    app.call(
        Method::PATCH,
        &format!("/api/v1/messages/{id}"),
        Some(&owner.token),
        Some(json!({"body": "the plan changed"})),
    )
    .await;
    app.call(
        Method::PUT,
        &format!("/api/v1/messages/{id}/reactions/eyes"),
        Some(&owner.token),
        None,
    )
    .await;
    app.call(
        Method::DELETE,
        &format!("/api/v1/messages/{id}"),
        Some(&owner.token),
        None,
    )
    .await;

    let latest = app.last_seq(&owner, &ch).await;
    let got = m.until_seq(&ch, latest).await;
    let kinds: Vec<&str> = got.iter().filter_map(|e| e["type"].as_str()).collect();
    for k in [
        "message.created",
        "message.edited",
        "reaction.added",
        "message.deleted",
    ] {
        assert!(kinds.contains(&k), "member should get {k}: {kinds:?}");
    }
    let leaked = o.drain(QUIET).await;
    assert!(
        leaked.iter().all(|e| e["channel_id"] != ch.as_str()),
        "outsider received {leaked:?}"
    );
    let text = serde_json::to_string(&leaked).unwrap();
    assert!(!text.contains("secret") && !text.contains("plan"), "{text}");
}

/// Apply a channel's events to a model of its messages: id -> (body, deleted, reactions).
/// body, deleted, and (user, emoji) reactions.
type MessageState = (String, bool, BTreeSet<(String, String)>);

#[derive(Default, Debug, PartialEq)]
struct Model {
    msgs: BTreeMap<String, MessageState>,
}

impl Model {
    fn apply(&mut self, e: &Value) {
        match e["type"].as_str().unwrap_or("") {
            "message.created" | "message.edited" => {
                let m = &e["message"];
                let entry = self
                    .msgs
                    .entry(m["id"].as_str().unwrap().into())
                    .or_default();
                entry.0 = m["body"].as_str().unwrap().into();
                entry.1 = m["deleted"].as_bool().unwrap();
            }
            "message.deleted" => {
                let entry = self
                    .msgs
                    .entry(e["message_id"].as_str().unwrap().into())
                    .or_default();
                entry.0.clear();
                entry.1 = true;
                entry.2.clear();
            }
            "reaction.added" => {
                let entry = self
                    .msgs
                    .entry(e["message_id"].as_str().unwrap().into())
                    .or_default();
                entry.2.insert((
                    e["user_id"].as_str().unwrap().into(),
                    e["emoji"].as_str().unwrap().into(),
                ));
            }
            "reaction.removed" => {
                let entry = self
                    .msgs
                    .entry(e["message_id"].as_str().unwrap().into())
                    .or_default();
                entry.2.remove(&(
                    e["user_id"].as_str().unwrap().into(),
                    e["emoji"].as_str().unwrap().into(),
                ));
            }
            _ => {}
        }
    }

    async fn fetch(app: &TestApp, u: &User, ch: &str) -> Model {
        let mut model = Model::default();
        let mut after = 0;
        loop {
            let page = app
                .get(
                    &format!("/api/v1/channels/{ch}/messages?after_seq={after}&limit=100"),
                    &u.token,
                )
                .await;
            let items = page.json.as_array().unwrap().clone();
            if items.is_empty() {
                break;
            }
            for m in &items {
                let reactions = m["reactions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|r| {
                        let emoji = r["emoji"].as_str().unwrap().to_string();
                        r["user_ids"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(move |u| (u.as_str().unwrap().to_string(), emoji.clone()))
                    })
                    .collect();
                model.msgs.insert(
                    m["id"].as_str().unwrap().into(),
                    (
                        m["body"].as_str().unwrap().into(),
                        m["deleted"].as_bool().unwrap(),
                        reactions,
                    ),
                );
                after = m["seq"].as_i64().unwrap();
            }
        }
        model
    }
}

/// Posts, edits, reactions and deletions by `u`, `n` rounds.
async fn churn(app: &TestApp, u: &User, ch: &str, n: usize, tag: &str) {
    for i in 0..n {
        let m = app.say(u, ch, &format!("{tag} message {i}")).await;
        let id = m["id"].as_str().unwrap().to_string();
        if i % 3 == 0 {
            app.call(
                Method::PATCH,
                &format!("/api/v1/messages/{id}"),
                Some(&u.token),
                Some(json!({"body": format!("{tag} edited {i}")})),
            )
            .await;
        }
        if i % 4 == 0 {
            app.call(
                Method::PUT,
                &format!("/api/v1/messages/{id}/reactions/tada"),
                Some(&u.token),
                None,
            )
            .await;
        }
        if i % 5 == 1 {
            app.call(
                Method::DELETE,
                &format!("/api/v1/messages/{id}"),
                Some(&u.token),
                None,
            )
            .await;
        }
    }
}

async fn resume_after_disconnect_has_no_gaps_or_duplicates(app: &TestApp) {
    let owner = app.user("owner", "member", None).await;
    let reader = app.user("reader", "member", None).await;
    let ch = app.channel(&owner, "busy", "public", None).await;
    app.post(
        &format!("/api/v1/channels/{ch}/join"),
        &reader.token,
        json!({}),
    )
    .await;

    let mut model = Model::default();
    let mut seen: Vec<i64> = Vec::new();
    let mut ws = app.ws(&reader).await;
    ws.subscribe(&ch, Some(0)).await;
    churn(app, &owner, &ch, 6, "first").await;
    let first_latest = app.last_seq(&owner, &ch).await;
    let got = ws.until_seq(&ch, first_latest).await;
    got.iter().for_each(|e| model.apply(e));
    seen.extend(seqs(&got, &ch));
    drop(ws);

    // While the reader is away: more of everything.
    churn(app, &owner, &ch, 12, "away").await;
    let last = *seen.last().unwrap();
    let mut ws = app.ws(&reader).await;
    ws.subscribe(&ch, Some(last)).await;
    // ...and posting keeps going during the resume itself.
    churn(app, &owner, &ch, 6, "during").await;
    let during_latest = app.last_seq(&owner, &ch).await;
    let got = ws.until_seq(&ch, during_latest).await;
    assert!(got.iter().any(|e| e["type"] == "subscribed"), "{got:?}");
    got.iter().for_each(|e| model.apply(e));
    seen.extend(seqs(&got, &ch));

    let latest = app.last_seq(&owner, &ch).await;
    let expected: Vec<i64> = (1..=latest).collect();
    let joined_seq = 1; // the reader's own join event precedes everything it saw from seq 0
    let mut got_seqs = seen.clone();
    if got_seqs.first() != Some(&joined_seq) {
        got_seqs.insert(0, joined_seq);
    }
    assert_eq!(got_seqs, expected, "every sequence exactly once, in order");
    assert_eq!(
        model,
        Model::fetch(app, &reader, &ch).await,
        "replayed state equals a fresh fetch"
    );
}

async fn client_behind_kept_history_gets_explicit_resync(app: &TestApp) {
    // replay_max is 5 for this app (see the test below that starts it).
    let owner = app.user("owner", "member", None).await;
    let ch = app.channel(&owner, "fast", "public", None).await;
    let mut ws = app.ws(&owner).await;
    ws.subscribe(&ch, Some(0)).await;
    ws.expect("subscribed").await;
    drop(ws);
    churn(app, &owner, &ch, 10, "burst").await;
    let mut ws = app.ws(&owner).await;
    ws.subscribe(&ch, Some(0)).await;
    let r = ws.expect("resync").await;
    assert_eq!(r["reason"], "too_far_behind");
    let latest = r["latest_seq"].as_i64().unwrap();
    // Refetch, then live events continue from latest with no gap.
    let mut model = Model::fetch(app, &owner, &ch).await;
    let m = app.say(&owner, &ch, "after resync").await;
    let ev = ws.expect("message.created").await;
    assert_eq!(ev["seq"].as_i64().unwrap(), latest + 1);
    assert_eq!(ev["message"]["id"], m["id"]);
    model.apply(&ev);
    assert_eq!(model, Model::fetch(app, &owner, &ch).await);
    // A client claiming a future sequence is told to resync too.
    ws.subscribe(&ch, Some(latest + 100)).await;
    assert_eq!(ws.expect("resync").await["reason"], "ahead_of_server");
}

async fn pruned_history_forces_resync(app: &TestApp) {
    let owner = app.user("owner", "member", None).await;
    let ch = app.channel(&owner, "pruned", "public", None).await;
    churn(app, &owner, &ch, 8, "old").await;
    let a = &app.running.app;
    warroom::retention::prune(&a.db, a.settings.limits.events_kept_per_channel)
        .await
        .unwrap();
    let mut ws = app.ws(&owner).await;
    ws.subscribe(&ch, Some(1)).await;
    assert_eq!(ws.expect("resync").await["reason"], "history_pruned");
}

async fn upgrade_checks_origin_and_token(app: &TestApp) {
    let u = app.user("wsuser", "member", None).await;
    let url = format!("ws://{}/api/v1/ws?access_token={}", app.addr, u.token);
    let mut req = url.clone().into_client_request().unwrap();
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), StatusCode::FORBIDDEN)
        }
        other => panic!("foreign origin must be refused before the upgrade: {other:?}"),
    }
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("origin", format!("http://{}", app.addr).parse().unwrap());
    assert!(
        tokio_tungstenite::connect_async(req).await.is_ok(),
        "same origin is fine"
    );
    let no_token = format!("ws://{}/api/v1/ws", app.addr);
    match tokio_tungstenite::connect_async(no_token).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED)
        }
        other => panic!("no token must be 401: {other:?}"),
    }
    let mut req = format!("ws://{}/api/v1/ws", app.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", u.token).parse().unwrap(),
    );
    assert!(
        tokio_tungstenite::connect_async(req).await.is_ok(),
        "bearer header works too"
    );
}

async fn oversized_frame_closes_with_1009(app: &TestApp) {
    let u = app.user("big", "member", None).await;
    let mut ws = app.ws(&u).await;
    let huge = "x".repeat(2 * 1024 * 1024);
    let _ = ws.stream.send(Message::Text(huge.into())).await;
    let mut code = None;
    for _ in 0..5 {
        match ws.next_within(Duration::from_secs(5)).await {
            WsEvent::Closed(c, _) => {
                code = c;
                break;
            }
            WsEvent::Json(_) => continue,
            WsEvent::Timeout => break,
        }
    }
    assert_eq!(
        code,
        Some(1009),
        "a 2 MiB frame closes the socket with 1009"
    );
    // The server keeps serving.
    let mut again = app.ws(&u).await;
    again.send(json!({"type": "ping"})).await;
    assert_eq!(again.expect("pong").await["type"], "pong");
    assert_eq!(app.get("/api/v1/me", &u.token).await.status, StatusCode::OK);
}

async fn invalid_frames_get_errors_not_crashes(app: &TestApp) {
    let u = app.user("noisy", "member", None).await;
    let mut ws = app.ws(&u).await;
    ws.stream
        .send(Message::Text("{not json".into()))
        .await
        .unwrap();
    assert_eq!(ws.expect("error").await["code"], "invalid_input");
    ws.send(json!({"type": "subscribe", "channel_id": "../../etc"}))
        .await;
    assert_eq!(ws.expect("error").await["code"], "invalid_input");
    ws.send(json!({"type": "subscribe", "channel_id": "00000000-0000-0000-0000-000000000000"}))
        .await;
    assert_eq!(ws.expect("error").await["code"], "not_found");
    ws.send(json!({"type": "ping"})).await;
    ws.expect("pong").await;
}

async fn typing_and_membership_notices(app: &TestApp) {
    let a = app.user("typer", "member", None).await;
    let b = app.user("watcher", "member", None).await;
    let ch = app.channel(&a, "team", "private", None).await;
    let mut wb = app.ws(&b).await;
    app.post(
        &format!("/api/v1/channels/{ch}/invite"),
        &a.token,
        json!({"user_id": b.id}),
    )
    .await;
    let added = wb.expect("channel.added").await;
    assert_eq!(added["channel"]["id"], ch.as_str());
    wb.subscribe(&ch, None).await;
    wb.expect("subscribed").await;
    let mut wa = app.ws(&a).await;
    wa.subscribe(&ch, None).await;
    wa.expect("subscribed").await;
    wa.send(json!({"type": "typing", "channel_id": ch})).await;
    let t = wb.expect("typing").await;
    assert_eq!(t["handle"], "typer");
    app.post(&format!("/api/v1/channels/{ch}/leave"), &b.token, json!({}))
        .await;
    let left = wa.expect("member.left").await;
    assert_eq!(left["user_id"], b.id.as_str());
}

/// Presence: a channel's members with an open socket, only for those who may read it.
async fn presence_lists_connected_members(app: &TestApp) {
    let a = app.user("present", "member", None).await;
    let b = app.user("absent", "member", None).await;
    let outsider = app.user("nosy", "member", None).await;
    let ch = app.channel(&a, "desk", "private", None).await;
    app.post(
        &format!("/api/v1/channels/{ch}/invite"),
        &a.token,
        json!({"user_id": b.id}),
    )
    .await;
    let path = format!("/api/v1/channels/{ch}/presence");
    let online = |r: &common::Resp| r.json["online"].clone();
    assert_eq!(online(&app.get(&path, &a.token).await), json!([]));
    let wa = app.ws(&a).await;
    assert_eq!(online(&app.get(&path, &b.token).await), json!([a.id]));
    assert_eq!(
        app.get(&path, &outsider.token).await.status,
        StatusCode::NOT_FOUND
    );
    drop(wa);
    let mut gone = false;
    for _ in 0..50 {
        if online(&app.get(&path, &b.token).await) == json!([]) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "a closed socket leaves presence");
}

on_both_backends!(
    presence_lists_connected_members,
    private_channel_events_reach_members_only,
    resume_after_disconnect_has_no_gaps_or_duplicates,
    upgrade_checks_origin_and_token,
    oversized_frame_closes_with_1009,
    invalid_frames_get_errors_not_crashes,
    typing_and_membership_notices,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_behind_kept_history_gets_explicit_resync_sqlite() {
    let app = TestApp::start(Backend::Sqlite, |s| s.limits.replay_max = 5).await;
    client_behind_kept_history_gets_explicit_resync(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_behind_kept_history_gets_explicit_resync_postgres() {
    if !common::postgres_enabled() {
        return;
    }
    let app = TestApp::start(Backend::Postgres, |s| s.limits.replay_max = 5).await;
    client_behind_kept_history_gets_explicit_resync(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_history_forces_resync_sqlite() {
    let app = TestApp::start(Backend::Sqlite, |s| s.limits.events_kept_per_channel = 3).await;
    pruned_history_forces_resync(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_disconnected_with_reason_and_resumes() {
    let app = TestApp::start(Backend::Sqlite, |s| s.limits.ws_send_queue = 4).await;
    let owner = app.user("owner", "member", None).await;
    let slow = app.user("slow", "member", None).await;
    let ch = app.channel(&owner, "firehose", "public", None).await;
    app.post(
        &format!("/api/v1/channels/{ch}/join"),
        &slow.token,
        json!({}),
    )
    .await;
    let mut ws: Ws = app.ws(&slow).await;
    ws.subscribe(&ch, Some(0)).await;
    ws.expect("subscribed").await;
    // Flood without reading until the socket's buffers and the 4-event queue fill.
    let body = "y".repeat(7000);
    let mut closed_with = None;
    let mut last_seen = 0;
    let path = format!("/api/v1/channels/{ch}/messages");
    for round in 0..40 {
        let mut posts = Vec::new();
        for _ in 0..50 {
            posts.push(app.post(&path, &owner.token, json!({"body": body})));
        }
        for r in futures_util::future::join_all(posts).await {
            assert_eq!(r.status, StatusCode::CREATED);
        }
        if round % 10 == 9 && app.running.app.metrics.ws_slow_disconnects.get() > 0 {
            break;
        }
    }
    loop {
        match ws.next_within(Duration::from_secs(5)).await {
            WsEvent::Json(e) => {
                if let Some(s) = e["seq"].as_i64() {
                    last_seen = s;
                }
            }
            WsEvent::Closed(code, reason) => {
                closed_with = Some((code, reason));
                break;
            }
            WsEvent::Timeout => break,
        }
    }
    let (code, reason) = closed_with.expect("slow consumer must be disconnected");
    assert_eq!(code, Some(4008));
    assert!(reason.contains("resume"), "{reason}");
    // It resumes from where it was, without a gap.
    let mut ws = app.ws(&slow).await;
    ws.subscribe(&ch, Some(last_seen)).await;
    let got = ws.drain(Duration::from_millis(800)).await;
    let latest = app.last_seq(&owner, &ch).await;
    if got.iter().any(|e| e["type"] == "resync") {
        // Further behind than the replay window: told explicitly.
        return;
    }
    let s = seqs(&got, &ch);
    assert_eq!(s, ((last_seen + 1)..=latest).collect::<Vec<_>>());
    app.stop().await;
}
