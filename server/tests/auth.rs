//! Authentication: login, refresh rotation with reuse detection, logout,
//! deactivation, token validation (SECURITY-CASES 17-19).

mod common;

use std::time::Duration;

use base64::Engine;
use common::{TestApp, WsEvent, PASSWORD};
use hyper::{Method, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

async fn login_refresh_logout_and_reuse_detection(app: &TestApp) {
    let u = app.user("alice", "member", None).await;
    assert_eq!(
        app.get("/api/v1/me", &u.token).await.json["handle"],
        "alice"
    );
    let r = app.login("alice", "wrong password!!").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "unauthenticated");

    // Rotation: each refresh token works once and yields a new pair.
    let r1 = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": u.refresh})),
        )
        .await;
    assert_eq!(r1.status, StatusCode::OK, "{:?}", r1.json);
    let second = r1.json["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(second, u.refresh);
    assert!(r1.json["expires_in"].as_u64().unwrap() <= 900);
    assert_eq!(
        app.get("/api/v1/me", r1.json["access_token"].as_str().unwrap())
            .await
            .status,
        StatusCode::OK
    );

    // Reuse of the first token: refused, and the whole family is revoked.
    let reuse = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": u.refresh})),
        )
        .await;
    assert_eq!(reuse.status, StatusCode::UNAUTHORIZED);
    let after = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": second})),
        )
        .await;
    assert_eq!(
        after.status,
        StatusCode::UNAUTHORIZED,
        "reuse must revoke the family"
    );

    // Logout revokes the session's refresh token.
    let s = app.login("alice", PASSWORD).await;
    let (access, refresh) = (
        s.json["access_token"].as_str().unwrap(),
        s.json["refresh_token"].as_str().unwrap(),
    );
    let out = app
        .call(
            Method::POST,
            "/api/v1/auth/logout",
            Some(access),
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let bogus = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": "nope"})),
        )
        .await;
    assert_eq!(bogus.status, StatusCode::UNAUTHORIZED);
}

fn b64(v: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn forged_and_expired_tokens_are_rejected(app: &TestApp) {
    let u = app.user("bob", "member", None).await;
    let good = json!({"sub": u.id, "iss": "warroom", "aud": "warroom-api", "exp": now() + 600, "iat": now(), "jti": "x"});

    // alg: none
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&good)
    );
    // HS256 signed with the server's public key (algorithm confusion)
    let keys = app.call(Method::GET, "/api/v1/auth/keys", None, None).await;
    let x = keys.json["x"].as_str().unwrap();
    let pk = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(x)
        .unwrap();
    let hs_raw = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &good,
        &EncodingKey::from_secret(&pk),
    )
    .unwrap();
    let hs_text = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &good,
        &EncodingKey::from_secret(x.as_bytes()),
    )
    .unwrap();
    // Correctly signed, but expired / wrong audience / wrong issuer / no exp
    let seed = hex::decode(
        std::fs::read_to_string(app.data_dir.join("jwt-ed25519.seed"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&seed);
    let key = EncodingKey::from_ed_der(&der);
    let sign = |claims: serde_json::Value| {
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &key).unwrap()
    };
    let valid = sign(good.clone());
    assert_eq!(
        app.get("/api/v1/me", &valid).await.status,
        StatusCode::OK,
        "control: a correctly signed token works"
    );
    let mut expired = good.clone();
    expired["exp"] = json!(now() - 120);
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("evil");
    let mut no_exp = good.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    let mut tampered = valid.clone();
    tampered.pop();
    tampered.push(if valid.ends_with('A') { 'B' } else { 'A' });

    for (what, token) in [
        ("alg none", none),
        ("HS256 with public key bytes", hs_raw),
        ("HS256 with public key text", hs_text),
        ("expired", sign(expired)),
        ("wrong aud", sign(wrong_aud)),
        ("wrong iss", sign(wrong_iss)),
        ("no exp", sign(no_exp)),
        ("tampered signature", tampered),
        ("garbage", "not.a.token".to_string()),
    ] {
        let r = app.get("/api/v1/me", &token).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{what} must be rejected"
        );
        assert_eq!(r.code(), "unauthenticated", "{what}");
    }
    let r = app.call(Method::GET, "/api/v1/me", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

async fn deactivated_user_loses_refresh_tokens_and_sockets(app: &TestApp) {
    let admin = app.user("root", "admin", None).await;
    let u = app.user("carol", "member", None).await;
    let ch = app.channel(&u, "carols", "public", None).await;
    let mut ws = app.ws(&u).await;
    ws.subscribe(&ch, None).await;
    ws.expect("subscribed").await;

    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{}", u.id),
            Some(&admin.token),
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    // The open socket closes within seconds, with a reason.
    let closed = loop {
        match ws.next_within(Duration::from_secs(5)).await {
            WsEvent::Json(_) => continue,
            other => break other,
        }
    };
    match closed {
        WsEvent::Closed(Some(code), reason) => {
            assert_eq!(code, 4003);
            assert!(reason.contains("deactivated"), "{reason}");
        }
        other => panic!("socket should close after deactivation, got {other:?}"),
    }
    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": u.refresh})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get("/api/v1/me", &u.token).await.status,
        StatusCode::UNAUTHORIZED,
        "access token stops working at once"
    );
    assert_eq!(
        app.login("carol", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    let req = format!("ws://{}/api/v1/ws?access_token={}", app.addr, u.token);
    assert!(
        tokio_tungstenite::connect_async(req).await.is_err(),
        "no new socket either"
    );
}

async fn unknown_users_cost_one_password_verification(app: &TestApp) {
    app.user("dave", "member", None).await;
    let before = app.metric("warroom_password_verifications_total").await;
    assert_eq!(
        app.login("nobody-here", "some password!").await.status,
        StatusCode::UNAUTHORIZED
    );
    let mid = app.metric("warroom_password_verifications_total").await;
    assert_eq!(
        mid - before,
        1.0,
        "unknown handle must run one argon2id verification (decoy)"
    );
    assert_eq!(
        app.login("dave", "wrong password!").await.status,
        StatusCode::UNAUTHORIZED
    );
    let after = app.metric("warroom_password_verifications_total").await;
    assert_eq!(after - mid, 1.0);
    // Both failures look the same to the client.
    let a = app.login("nobody-here", "x").await;
    let b = app.login("dave", "x").await;
    assert_eq!(a.json, b.json);
}

async fn login_is_rate_limited_per_handle(app: &TestApp) {
    app.user("erin", "member", None).await;
    let mut limited = None;
    for i in 0..15 {
        let r = app.login("erin", "wrong password!").await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((i, r));
            break;
        }
    }
    let (i, r) = limited.expect("login must be throttled");
    assert!(i >= 9, "first attempts are allowed");
    assert_eq!(r.code(), "rate_limited");
    assert!(r.headers.get("retry-after").is_some());
    // Throttling one handle does not lock out others.
    app.user("frank", "member", None).await;
}

async fn passwords_are_stored_as_argon2id(app: &TestApp) {
    let u = app.user("gina", "member", None).await;
    let row = app
        .running
        .app
        .directory
        .row_by_handle("gina")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.id, u.id);
    let hash = row.password_hash.unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains(PASSWORD));
}

on_both_backends!(
    login_refresh_logout_and_reuse_detection,
    forged_and_expired_tokens_are_rejected,
    deactivated_user_loses_refresh_tokens_and_sockets,
    unknown_users_cost_one_password_verification,
    login_is_rate_limited_per_handle,
    passwords_are_stored_as_argon2id,
);

#[tokio::test]
async fn access_tokens_longer_than_15_minutes_are_refused_by_config() {
    let mut s = warroom::config::Settings::default();
    s.auth.access_ttl_secs = 3600;
    assert!(s.validate().is_err());
}
