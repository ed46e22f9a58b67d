//! The audit log and durability under attack and faults: finding 11 (a
//! rewritable audit log) and SECURITY-CASES 20 (`kill -9` during sustained
//! posting) and 22 (audit log tampering). The command-line tests run the real
//! `warroom` binary; the kill test starts `warroom serve` as a child process
//! and SIGKILLs it mid-stream.

#[path = "../../server/tests/common/mod.rs"]
mod common;

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{TestApp, User};
use http_body_util::{BodyExt, Full};
use hyper::{Method, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use warroom::storage::entities::{audit, message};

const PASSWORD: &str = "a long enough password";

fn warroom(data: &std::path::Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    common::warroom_cli(data, args, stdin)
}

fn create_user(data: &Path, handle: &str, role: &str) {
    common::cli_create_user(data, handle, role, PASSWORD);
}

/// `warroom audit verify`: (success, stdout, stderr).
fn verify(data: &Path) -> (bool, String, String) {
    let out = warroom(data, &["audit", "verify"], None);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The SQLite database of a data directory, opened behind the server's back.
async fn database(data: &Path) -> sea_orm::DatabaseConnection {
    let url = format!("sqlite://{}?mode=rw", data.join("warroom.db").display());
    sea_orm::Database::connect(url)
        .await
        .expect("database opens")
}

/// The unkeyed hash the audit log used before finding 11: SHA-256 over the
/// length-prefixed previous hash and fields. Anyone with database access can
/// compute it.
fn plain_hash(prev: &str, r: &audit::Model) -> String {
    let at = r.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut h = Sha256::new();
    for part in [
        prev,
        at.as_str(),
        r.actor_id.as_deref().unwrap_or(""),
        &r.action,
        &r.target,
        &r.outcome,
        &r.detail,
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Rewrite record `id`'s outcome and recompute every hash from it on, as an
/// attacker with write access to the database would.
async fn rewrite_with_recomputed_hashes(data: &Path, id: i64) {
    let db = database(data).await;
    let rows = audit::Entity::find()
        .order_by_asc(audit::Column::Id)
        .all(&db)
        .await
        .expect("audit rows");
    let mut prev = String::new();
    for mut r in rows {
        if r.id == id {
            r.outcome = "denied".into();
        }
        if r.id >= id {
            let hash = plain_hash(&prev, &r);
            db.execute_unprepared(&format!(
                "UPDATE audit_log SET outcome = '{}', prev_hash = '{prev}', hash = '{hash}' WHERE id = {}",
                r.outcome, r.id
            ))
            .await
            .expect("row rewritten");
            r.hash = hash;
        }
        prev = r.hash;
    }
    db.close().await.expect("database closed");
}

/// Delete the newest `n` audit records.
async fn truncate_tail(data: &Path, n: u32) {
    let db = database(data).await;
    db.execute_unprepared(&format!(
        "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log ORDER BY id DESC LIMIT {n})"
    ))
    .await
    .expect("tail deleted");
    db.close().await.expect("database closed");
}

/// Three users created with the command line: three audit records.
fn three_users() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for h in ["alpha", "bravo", "charlie"] {
        create_user(dir.path(), h, "member");
    }
    let (ok, out, err) = verify(dir.path());
    assert!(ok, "{err}");
    assert!(out.contains("audit chain intact: 3 records"), "{out}");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_11_rewritten_audit_row_is_detected() {
    let dir = three_users();
    rewrite_with_recomputed_hashes(dir.path(), 2).await;
    let (ok, _, err) = verify(dir.path());
    assert!(
        !ok,
        "a rewritten record with recomputed hashes passed: {err}"
    );
    assert!(err.contains("broken at record 2"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_11_truncated_audit_tail_is_detected() {
    let dir = three_users();
    truncate_tail(dir.path(), 1).await;
    let (ok, _, err) = verify(dir.path());
    assert!(!ok, "a cut-off tail passed: {err}");
    assert!(
        err.contains("truncated") && err.contains("covers record 3"),
        "{err}"
    );
}

/// Start a server on SQLite in `data` (kept after the server stops), with
/// the instant loopback embedder for retrieval.
async fn start_in(data: &Path) -> TestApp {
    let data = data.to_path_buf();
    TestApp::with_loopback_embedder(move |s| s.storage.data_dir = data).await
}

/// An admin invites a member into a private channel; returns both and the channel.
async fn invite_into_private(app: &TestApp) -> (User, User, String) {
    let admin = app.user("admin", "admin", None).await;
    let member = app.user("mia", "member", None).await;
    let private = app
        .channel(&admin, "board", "private", Some("internal"))
        .await;
    let r = app
        .post(
            &format!("/api/v1/channels/{private}/invite"),
            &admin.token,
            json!({"user_id": member.id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.json);
    (admin, member, private)
}

/// SECURITY-CASES 22 on records the running server wrote (logins, a denial, an
/// invitation) and anchored at shutdown: a row rewritten with recomputed plain
/// hashes and a cut-off tail are both reported, with a non-zero exit code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_22_audit_verify_reports_rewrite_and_truncation() {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = start_in(dir.path()).await;
    let (_, member, private) = invite_into_private(&app).await;
    let r = app
        .post(
            &format!("/api/v1/channels/{private}/archive"),
            &member.token,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.json);
    for _ in 0..3 {
        assert_eq!(
            app.login("mia", "wrong password").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    app.stop().await;
    let (ok, out, err) = verify(dir.path());
    assert!(ok, "{err}");
    let head = audit::Entity::find()
        .order_by_desc(audit::Column::Id)
        .one(&database(dir.path()).await)
        .await
        .expect("audit rows")
        .expect("records were written")
        .id;
    assert!(head >= 4, "{out}");
    assert!(
        out.contains(&format!("checkpoint at record {head} verified")),
        "the shutdown anchors the whole log: {out}"
    );

    rewrite_with_recomputed_hashes(dir.path(), 2).await;
    truncate_tail(dir.path(), 2).await;
    let (ok, _, err) = verify(dir.path());
    assert!(!ok, "tampering passed: {err}");
    assert!(
        err.contains("broken at record 2"),
        "rewrite not reported: {err}"
    );
    assert!(
        err.contains(&format!(
            "truncated: a signed checkpoint covers record {head}"
        )),
        "truncation not reported: {err}"
    );
}

/// Retrieval's audit record is part of its guarantee (SECURITY-CASES 1): when
/// the record cannot be written, the caller gets an error and no chunks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_11_retrieval_fails_closed_when_audit_cannot_be_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = start_in(dir.path()).await;
    let admin = app.user("admin", "admin", None).await;
    let agent = app
        .user("sales-bot", "agent", Some("confidential:sales"))
        .await;
    let doc = "---\ntitle: Pipeline\ndepartment: sales\nlabel: internal\n---\n## Renewals\n\n\
               The renewal for the harbour account is worth 300 thousand and closes in May.\n";
    let r = app.upload(&admin, "path=sales/pipeline.md", doc).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    let r = app
        .post(
            "/api/v1/scopes",
            &admin.token,
            json!({"name": "sales-only", "departments": ["sales"], "max_label": "confidential"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    let r = app
        .assign_scope(&admin, &agent.id, Some("sales-only"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    let query = json!({"query": "harbour account renewal", "k": 3});
    let r = app
        .post("/api/v1/retrieve", &agent.token, query.clone())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    assert!(!r.json["chunks"].as_array().expect("chunks").is_empty());

    // The audit log cannot be written (a full disk, a failing database).
    let db = &app.running.app.db;
    db.execute_unprepared(
        "CREATE TRIGGER audit_unwritable BEFORE INSERT ON audit_log \
         BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
    )
    .await
    .expect("trigger created");
    let r = app
        .post("/api/v1/retrieve", &agent.token, query.clone())
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.json);
    assert_eq!(r.code(), "audit_unavailable");
    assert!(
        r.json.get("chunks").is_none(),
        "results leaked: {:?}",
        r.json
    );

    db.execute_unprepared("DROP TRIGGER audit_unwritable")
        .await
        .expect("trigger dropped");
    let r = app.post("/api/v1/retrieve", &agent.token, query).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_11_invites_are_audited() {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = start_in(dir.path()).await;
    let (admin, member, private) = invite_into_private(&app).await;
    let log = app.get("/api/v1/audit?limit=100", &admin.token).await.json;
    let entry = log
        .as_array()
        .expect("audit entries")
        .iter()
        .find(|e| e["action"] == "channel.invite" && e["outcome"] == "ok")
        .unwrap_or_else(|| panic!("no audit entry for the invitation: {log:?}"));
    assert_eq!(entry["actor_id"], admin.id.as_str());
    assert_eq!(entry["target"], format!("channel:{private}"));
    assert_eq!(entry["detail"]["invitee"], member.id.as_str());
    assert_eq!(entry["detail"]["added"], true);
    app.stop().await;
}

// ---- SECURITY-CASES 20 --------------------------------------------------------------------

/// A `warroom serve` child process; killed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// Start `warroom serve` on `data` on a free port; returns once it listens.
    fn start(data: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_warroom"))
            .arg("serve")
            .env("WARROOM_STORAGE__DATA_DIR", data)
            .env("WARROOM_SERVER__BIND", "127.0.0.1:0")
            .env("WARROOM_LOG", "error")
            // Posting limits have their own test; here they would only slow the load.
            .env("WARROOM_LIMITS__POSTS_PER_SECOND", "100000")
            .env("WARROOM_LIMITS__POST_BURST", "100000")
            .env("WARROOM_LIMITS__REQUESTS_PER_SECOND", "100000")
            .env("WARROOM_LIMITS__REQUEST_BURST", "100000")
            .env("WARROOM_AUTH__LOGIN_PER_IP_PER_MINUTE", "10000")
            .env_remove("WARROOM_STORAGE__DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("warroom serve starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        // Read the address, then keep draining so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Some(url) = line.split("listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("warroom serve prints its address");
        Server { child, base }
    }

    /// SIGKILL: no shutdown, no flush, no checkpoint.
    fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL sent");
        self.child.wait().expect("the server is gone");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// One request; `Err` when no answer arrived (connection refused or reset, timeout).
async fn http(
    client: &HttpClient,
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Value,
) -> Result<(StatusCode, Value), String> {
    let mut b = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let req = b
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
    let answer = async {
        let resp = client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    };
    tokio::time::timeout(Duration::from_secs(5), answer)
        .await
        .map_err(|_| "timed out".to_string())?
}

async fn login(client: &HttpClient, base: &str, handle: &str) -> String {
    let (status, body) = http(
        client,
        Method::POST,
        &format!("{base}/api/v1/auth/login"),
        None,
        json!({"handle": handle, "password": PASSWORD}),
    )
    .await
    .expect("login answered");
    assert_eq!(status, StatusCode::OK, "login {handle}: {body:?}");
    body["access_token"]
        .as_str()
        .expect("access token")
        .to_string()
}

/// What one client saw: its acknowledged posts (key → message id and whether
/// the answer was a deduplicated retry), and the keys it had to send again.
#[derive(Default)]
struct Seen {
    acked: HashMap<String, (String, StatusCode)>,
    retried: HashSet<String>,
}

/// Post numbered messages until `stop`, resending an unacknowledged post with
/// the same idempotency key until it is acknowledged, whatever the server does.
async fn client(
    i: usize,
    token: String,
    channel: String,
    base: tokio::sync::watch::Receiver<Option<String>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Seen {
    let http_client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let mut seen = Seen::default();
    let mut n = 0;
    let mut unacked: Option<String> = None;
    let mut base = base;
    loop {
        let key = match unacked.take() {
            Some(k) => {
                seen.retried.insert(k.clone());
                k
            }
            None if stop.load(std::sync::atomic::Ordering::Relaxed) => return seen,
            None => {
                n += 1;
                format!("c{i}-m{n}")
            }
        };
        let url = loop {
            if let Some(b) = base.borrow_and_update().clone() {
                break format!("{b}/api/v1/channels/{channel}/messages");
            }
            if base.changed().await.is_err() {
                return seen;
            }
        };
        let body = json!({"body": format!("durable post {key}"), "idempotency_key": key});
        match http(&http_client, Method::POST, &url, Some(&token), body).await {
            Ok((status, m)) if status == StatusCode::CREATED || status == StatusCode::OK => {
                let id = m["id"].as_str().expect("message id").to_string();
                seen.acked.insert(key, (id, status));
            }
            Ok((status, m)) => {
                assert!(
                    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS,
                    "post {key} refused: {status} {m:?}"
                );
                unacked = Some(key);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => {
                unacked = Some(key);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// SECURITY-CASES 20: clients post with idempotency keys while the server is
/// SIGKILLed and restarted on the same data directory; each resends what was
/// not acknowledged with the same key. Every acknowledged message is stored
/// exactly once, retried ones are not duplicated, and the audit log still
/// verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_20_kill_9_during_sustained_posting_loses_nothing_acknowledged() {
    const CLIENTS: usize = 4;
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().to_path_buf();
    create_user(&data, "root", "admin");
    let server = Server::start(&data);
    let http_client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let root = login(&http_client, &server.base, "root").await;
    let (status, ch) = http(
        &http_client,
        Method::POST,
        &format!("{}/api/v1/channels", server.base),
        Some(&root),
        json!({"name": "durable", "visibility": "public", "label": "internal"}),
    )
    .await
    .expect("channel created");
    assert_eq!(status, StatusCode::CREATED, "{ch:?}");
    let channel = ch["id"].as_str().expect("channel id").to_string();
    let mut tokens = vec![root];
    for i in 1..CLIENTS {
        let handle = format!("poster{i}");
        let (status, body) = http(
            &http_client,
            Method::POST,
            &format!("{}/api/v1/users", server.base),
            Some(&tokens[0]),
            json!({"handle": handle, "role": "member", "password": PASSWORD}),
        )
        .await
        .expect("user created");
        assert_eq!(status, StatusCode::CREATED, "{body:?}");
        let token = login(&http_client, &server.base, &handle).await;
        let (status, body) = http(
            &http_client,
            Method::POST,
            &format!("{}/api/v1/channels/{channel}/join", server.base),
            Some(&token),
            json!({}),
        )
        .await
        .expect("joined");
        assert!(status.is_success(), "{body:?}");
        tokens.push(token);
    }

    let (base_tx, base_rx) = tokio::sync::watch::channel(Some(server.base.clone()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tasks: Vec<_> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, token)| {
            tokio::spawn(client(
                i,
                token,
                channel.clone(),
                base_rx.clone(),
                stop.clone(),
            ))
        })
        .collect();

    // Sustained posting, then kill -9 mid-stream and restart on the same data.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    base_tx.send_replace(None);
    server.kill_9();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let server = Server::start(&data);
    base_tx.send_replace(Some(server.base.clone()));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(
            tokio::time::timeout(Duration::from_secs(20), t)
                .await
                .expect("every client finishes: its last post is acknowledged")
                .expect("client task"),
        );
    }

    let db = database(&data).await;
    let stored = message::Entity::find()
        .filter(message::Column::ChannelId.eq(channel.as_str()))
        .all(&db)
        .await
        .expect("messages");
    let mut by_body: HashMap<&str, Vec<&message::Model>> = HashMap::new();
    for m in &stored {
        by_body.entry(m.body.as_str()).or_default().push(m);
    }
    let mut acked = 0;
    let mut retried = 0;
    let mut deduplicated = 0;
    for s in &seen {
        for (key, (id, status)) in &s.acked {
            acked += 1;
            let copies = by_body
                .get(format!("durable post {key}").as_str())
                .map(Vec::as_slice)
                .unwrap_or_default();
            assert_eq!(
                copies.len(),
                1,
                "acknowledged {key} stored {} times",
                copies.len()
            );
            assert_eq!(&copies[0].id, id, "{key} acknowledged as another message");
            if s.retried.contains(key) {
                retried += 1;
                deduplicated += usize::from(*status == StatusCode::OK);
            }
        }
    }
    assert_eq!(
        stored.len(),
        acked,
        "every stored message was acknowledged once, no duplicates"
    );
    assert!(acked > 50, "sustained posting: only {acked} posts");
    assert!(
        retried >= 1,
        "the kill interrupted no post; the test proves nothing"
    );
    eprintln!(
        "case 20: {acked} acknowledged, {retried} resent after the kill, {deduplicated} of them already stored ({:?})",
        started.elapsed()
    );
    drop(db);

    // The audit log survived the kill too.
    drop(server);
    let (ok, _, err) = verify(&data);
    assert!(ok, "{err}");
}
