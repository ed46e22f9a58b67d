//! Sessions and policy loading under attack (SECURITY-CASES 18, 29 and 30):
//! concurrent refreshes of one token, login throttling that cannot lock
//! someone else out, logout closing the caller's sockets, and a permissive
//! policy set refused at load and at reload.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use common::{Resp, TestApp, User, WsEvent, PASSWORD};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

const WRONG: &str = "not the password at all";

/// A loopback address other than 127.0.0.1 (Linux routes all of 127/8 to lo),
/// so a test can log in from several real client addresses.
fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// Log in over a connection whose source address is `from`, optionally
/// sending an `X-Forwarded-For` header.
async fn login_from(
    app: &TestApp,
    from: IpAddr,
    forwarded_for: Option<&str>,
    handle: &str,
    password: &str,
) -> Resp {
    let mut connector = HttpConnector::new();
    connector.set_local_address(Some(from));
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(format!("{}/api/v1/auth/login", app.base))
        .header("content-type", "application/json");
    if let Some(f) = forwarded_for {
        req = req.header("x-forwarded-for", f);
    }
    let body = json!({"handle": handle, "password": password}).to_string();
    let resp = client
        .request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .expect("login request sent");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Resp {
        status,
        json,
        headers,
    }
}

/// Fail from `from` until the throttle answers; returns that answer.
async fn fail_until_throttled(
    app: &TestApp,
    from: IpAddr,
    xff: Option<&str>,
    handle: &str,
) -> Resp {
    for _ in 0..30 {
        let r = login_from(app, from, xff, handle, WRONG).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            return r;
        }
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.json);
    }
    panic!("30 failed logins for {handle} from {from} were never throttled");
}

fn assert_throttled(r: &Resp) {
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.json);
    assert_eq!(r.code(), "rate_limited", "{:?}", r.json);
    let wait: u64 = r
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a numeric Retry-After header");
    assert!(wait >= 1, "{wait}");
}

async fn refresh(app: &TestApp, token: &str) -> Resp {
    app.call(
        Method::POST,
        "/api/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": token})),
    )
    .await
}

/// Finding 8: two refreshes racing with one token used to let the winner's
/// successor survive the loser's family revocation (about one round in ten
/// on SQLite). Every round fires a few refreshes at once; at most one wins,
/// and afterwards nothing of the family works: the loser saw reuse and
/// revoked the whole family, successor included. The successor is tried
/// first, since presenting the raced token again would revoke it anyway.
async fn finding_08_concurrent_refresh_leaves_no_live_token_in_a_reused_family(app: &TestApp) {
    for round in 0..60usize {
        // A fresh account per round: the race, not the login throttle, is under test.
        let token = app
            .user(&format!("rita-{round}"), "member", None)
            .await
            .refresh;
        let racers = 2 + round % 3;
        let results =
            futures_util::future::join_all((0..racers).map(|_| refresh(app, &token))).await;
        for r in &results {
            assert!(
                r.status == StatusCode::OK || r.status == StatusCode::UNAUTHORIZED,
                "round {round}: {:?}",
                r.json
            );
        }
        let won: Vec<&Resp> = results
            .iter()
            .filter(|r| r.status == StatusCode::OK)
            .collect();
        assert!(won.len() <= 1, "round {round}: {} refreshes won", won.len());
        for w in won {
            let successor = w.json["refresh_token"].as_str().unwrap();
            assert_eq!(
                refresh(app, successor).await.status,
                StatusCode::UNAUTHORIZED,
                "round {round}: the winner's successor must die with its family"
            );
            let access = w.json["access_token"].as_str().unwrap();
            assert_eq!(
                app.get("/api/v1/me", access).await.status,
                StatusCode::UNAUTHORIZED,
                "round {round}: so must the access token of the revoked session"
            );
        }
        assert_eq!(
            refresh(app, &token).await.status,
            StatusCode::UNAUTHORIZED,
            "round {round}: the raced token is spent"
        );
    }
}

/// Finding 9: fifteen failed logins from one address used to lock the
/// operator out everywhere. Now the failing address is throttled (with a
/// machine-readable 429 and Retry-After, even for the right password), and
/// the account's owner logs in from another address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_09_failed_logins_from_one_address_do_not_lock_out_another() {
    let app = TestApp::start(common::Backend::Sqlite, |_| {}).await;
    app.user("operator", "admin", None).await;
    let (attacker, owner) = (loopback(2), loopback(3));
    let r = fail_until_throttled(&app, attacker, None, "operator").await;
    assert_throttled(&r);
    // The throttled address learns nothing, not even from the right password.
    assert_throttled(&login_from(&app, attacker, None, "operator", PASSWORD).await);
    // Rotating a forged X-Forwarded-For does not help: the peer is not a trusted proxy.
    for i in 0..3 {
        let forged = format!("198.51.100.{i}");
        assert_throttled(&login_from(&app, attacker, Some(&forged), "operator", WRONG).await);
    }
    // The owner, elsewhere, is not locked out.
    let ok = login_from(&app, owner, None, "operator", PASSWORD).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.json);
    // And the owner's success does not unthrottle the attacker.
    assert_throttled(&login_from(&app, attacker, None, "operator", PASSWORD).await);
    app.stop().await;
}

/// Finding 9: successful logins used to count toward the throttle, so a
/// worker that logs in often locked its operator out. They count no more,
/// and a success clears its address's failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_09_successful_logins_do_not_count_and_clear_failures() {
    let app = TestApp::start(common::Backend::Sqlite, |_| {}).await;
    app.user("worker-operator", "admin", None).await;
    let here = loopback(4);
    for i in 0..25 {
        let r = login_from(&app, here, None, "worker-operator", PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK, "login {i}: {:?}", r.json);
    }
    // Typos between successes never add up to a lock-out.
    for round in 0..3 {
        for _ in 0..8 {
            let r = login_from(&app, here, None, "worker-operator", WRONG).await;
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "round {round}: {:?}",
                r.json
            );
        }
        let r = login_from(&app, here, None, "worker-operator", PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK, "round {round}: {:?}", r.json);
    }
    app.stop().await;
}

/// Finding 9: the per-address limit on all attempts still applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_09_the_per_address_limit_still_applies() {
    let app = TestApp::start(common::Backend::Sqlite, |s| {
        s.auth.login_per_ip_per_minute = 5;
    })
    .await;
    let spray = loopback(5);
    for i in 0..5 {
        let r = login_from(&app, spray, None, &format!("nobody-{i}"), WRONG).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.json);
    }
    assert_throttled(&login_from(&app, spray, None, "nobody-5", WRONG).await);
    app.stop().await;
}

// finding-09-trusted-proxy: begin
/// Finding 9 behind a reverse proxy: when the TCP peer is a configured
/// trusted proxy, the client address is the last untrusted hop of its
/// X-Forwarded-For, so clients behind one proxy do not share a throttle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_09_a_trusted_proxy_names_the_client_address() {
    let proxy = loopback(6);
    let app = TestApp::start(common::Backend::Sqlite, |s| {
        s.auth.trusted_proxies = vec![proxy];
    })
    .await;
    app.user("owner", "member", None).await;
    // The attacker's own hop is what counts, whatever it prepends.
    let attacker = "10.9.9.9, 203.0.113.66";
    let r = fail_until_throttled(&app, proxy, Some(attacker), "owner").await;
    assert_throttled(&r);
    assert_throttled(
        &login_from(
            &app,
            proxy,
            Some("1.2.3.4, 203.0.113.66"),
            "owner",
            PASSWORD,
        )
        .await,
    );
    let ok = login_from(&app, proxy, Some("203.0.113.7"), "owner", PASSWORD).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.json);
    app.stop().await;
}
// finding-09-trusted-proxy: end

/// Wait for the socket to close; no frame before the close may contain `never`.
async fn closes_without(ws: &mut common::Ws, never: &str) -> (Option<u16>, String) {
    loop {
        match ws.next_within(Duration::from_secs(5)).await {
            WsEvent::Json(v) => assert!(
                !v.to_string().contains(never),
                "a logged-out socket received {v}"
            ),
            WsEvent::Closed(code, reason) => return (code, reason),
            WsEvent::Timeout => panic!("the socket stayed open 5 s after logout"),
        }
    }
}

async fn logout(app: &TestApp, u: &User, body: Option<Value>) -> Resp {
    app.call(Method::POST, "/api/v1/auth/logout", Some(&u.token), body)
        .await
}

/// Finding 10: a socket kept receiving channel messages after its user
/// logged out. Logging out a session now closes that session's sockets with
/// the revoked close code, its access token stops working, and the user's
/// other sessions stay open until they log out everywhere.
async fn finding_10_logout_closes_the_callers_sockets(app: &TestApp) {
    let lou = app.user("lou", "member", None).await;
    let max = app.user("max", "member", None).await;
    let ch = app.channel(&lou, "after-hours", "public", None).await;
    let r = app
        .post(
            &format!("/api/v1/channels/{ch}/join"),
            &max.token,
            json!({}),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.json);
    let second = app.login("lou", PASSWORD).await;
    let laptop = User {
        token: second.json["access_token"].as_str().unwrap().into(),
        refresh: second.json["refresh_token"].as_str().unwrap().into(),
        ..lou.clone()
    };
    let mut phone_ws = app.ws(&lou).await;
    phone_ws.subscribe(&ch, None).await;
    phone_ws.expect("subscribed").await;
    let mut laptop_ws = app.ws(&laptop).await;
    laptop_ws.subscribe(&ch, None).await;
    laptop_ws.expect("subscribed").await;

    let out = logout(app, &lou, Some(json!({"refresh_token": lou.refresh}))).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{:?}", out.json);
    app.say(&max, &ch, "said after the phone logged out").await;
    let (code, reason) = closes_without(&mut phone_ws, "said after the phone logged out").await;
    assert_eq!(code, Some(4003), "{reason}");
    assert!(reason.contains("logged out"), "{reason}");
    // The session's access token is dead: no REST, no new socket.
    assert_eq!(
        app.get("/api/v1/me", &lou.token).await.status,
        StatusCode::UNAUTHORIZED
    );
    let url = format!("ws://{}/api/v1/ws?access_token={}", app.addr, lou.token);
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
    // The laptop's session is another session: still open, still receiving.
    let frames = laptop_ws.drain(Duration::from_millis(500)).await;
    assert!(
        frames
            .iter()
            .any(|f| f.to_string().contains("said after the phone logged out")),
        "{frames:?}"
    );

    // Logging out everywhere (no refresh token) closes the rest.
    let out = logout(app, &laptop, None).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{:?}", out.json);
    app.say(&max, &ch, "said after logging out everywhere")
        .await;
    let (code, reason) = closes_without(&mut laptop_ws, "said after logging out everywhere").await;
    assert_eq!(code, Some(4003), "{reason}");
    assert_eq!(
        refresh(app, &laptop.refresh).await.status,
        StatusCode::UNAUTHORIZED
    );
}

on_both_backends!(
    finding_08_concurrent_refresh_leaves_no_live_token_in_a_reused_family,
    finding_10_logout_closes_the_callers_sockets,
);

const PERMIT_EVERYTHING: &str = "permit(principal, action, resource);";

/// A copy of the shipped `policies/` directory.
fn shipped_policies() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    dir
}

fn settings_with(policy_dir: PathBuf, data: &Path) -> warroom::config::Settings {
    let mut s = warroom::config::Settings::default();
    s.server.bind = "127.0.0.1:0".into();
    s.server.policy_dir = Some(policy_dir);
    s.storage.data_dir = data.to_path_buf();
    s.log = Some("warn".into());
    s
}

/// Finding 12: the shipped policies plus a blanket permit are valid Cedar,
/// and used to load. The server now refuses to start with them and says
/// which forbidden request the set would permit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_12_a_permissive_policy_set_is_refused_at_load() {
    let dir = shipped_policies();
    std::fs::write(dir.path().join("zz-open.cedar"), PERMIT_EVERYTHING).unwrap();
    let data = tempfile::tempdir().unwrap();
    let err = warroom::startup::start(settings_with(dir.path().to_path_buf(), data.path()))
        .await
        .err()
        .expect("a set that permits what the barriers forbid must not load");
    let msg = err.to_string();
    assert!(msg.contains("must deny"), "{msg}");
    assert!(msg.contains("private channel"), "names the request: {msg}");
}

/// Finding 12 at reload: the permissive set is refused with 422, the audit
/// log records why, and the last good set stays in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_12_a_permissive_policy_set_is_refused_at_reload() {
    let dir = shipped_policies();
    let policy_dir = dir.path().to_path_buf();
    let app = TestApp::start(common::Backend::Sqlite, |s| {
        s.server.policy_dir = Some(policy_dir)
    })
    .await;
    let admin = app.user("admin", "admin", None).await;
    let insider = app.user("insider", "member", None).await;
    let outsider = app.user("outsider", "member", None).await;
    let private = app.channel(&insider, "board", "private", None).await;
    app.say(&insider, &private, "the board minutes").await;
    let peek = format!("/api/v1/channels/{private}/messages");
    assert_eq!(
        app.get(&peek, &outsider.token).await.status,
        StatusCode::NOT_FOUND
    );

    std::fs::write(dir.path().join("zz-open.cedar"), PERMIT_EVERYTHING).unwrap();
    let r = app
        .post("/api/v1/admin/policies/reload", &admin.token, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.json);
    assert_eq!(r.code(), "invalid_policies");
    let msg = r.json["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("must deny") && msg.contains("private channel"),
        "{msg}"
    );

    // Never fail open: the outsider still sees nothing of the private channel.
    assert_eq!(
        app.get(&peek, &outsider.token).await.status,
        StatusCode::NOT_FOUND
    );
    let audit = app.get("/api/v1/audit?limit=20", &admin.token).await.json;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "policy.reload"
                && e["outcome"] == "rejected"
                && e["detail"].to_string().contains("private channel")),
        "{audit:?}"
    );
    // Removing the blanket permit makes the set acceptable again; the audit
    // names the hash of the set now active.
    std::fs::remove_file(dir.path().join("zz-open.cedar")).unwrap();
    let r = app
        .post("/api/v1/admin/policies/reload", &admin.token, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    let audit = app.get("/api/v1/audit?limit=5", &admin.token).await.json;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "policy.reload"
                && e["outcome"] == "ok"
                && e["detail"]["sha256"]
                    .as_str()
                    .is_some_and(|h| h.len() == 64)),
        "{audit:?}"
    );
    app.stop().await;
}
