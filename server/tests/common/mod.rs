//! Test helpers: start the real server on port 0 with a temporary data
//! directory (SQLite) or a fresh PostgreSQL schema, and talk to it over real
//! HTTP and WebSocket connections.
#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use warroom::config::Settings;
use warroom::startup::{self, Running};

/// Which database a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generate one `#[tokio::test]` per backend for each named `async fn(&TestApp)`.
/// PostgreSQL runs when `WARROOM_TEST_DATABASE_URL` is set.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => { $(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::common::TestApp::start($crate::common::Backend::Sqlite, |_| {}).await;
                super::$name(&app).await;
                app.stop().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if !$crate::common::postgres_enabled() {
                    eprintln!("WARROOM_TEST_DATABASE_URL not set: PostgreSQL variant skipped");
                    return;
                }
                let app = $crate::common::TestApp::start($crate::common::Backend::Postgres, |_| {}).await;
                super::$name(&app).await;
                app.stop().await;
            }
        }
    )* };
}

/// True when PostgreSQL tests should run.
pub fn postgres_enabled() -> bool {
    std::env::var("WARROOM_TEST_DATABASE_URL").is_ok_and(|v| !v.is_empty())
}

/// Drops a test's PostgreSQL schema even when the test panics.
struct SchemaGuard {
    url: String,
    schema: String,
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(warroom::storage::drop_postgres_schema(&url, &schema))
        })
        .join();
    }
}

/// A running server and what a test needs to reach it.
pub struct TestApp {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub running: Running,
    pub backend: Backend,
    pub data_dir: std::path::PathBuf,
    _data: tempfile::TempDir,
    _schema: Option<SchemaGuard>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

/// A logged-in user.
#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub handle: String,
    pub token: String,
    pub refresh: String,
}

/// An HTTP response: status and parsed JSON (Null when the body is empty).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub json: Value,
    pub headers: hyper::HeaderMap,
}

impl Resp {
    /// The error code of an error response.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

pub const PASSWORD: &str = "correct horse battery staple";

/// The `/metrics` bearer token test servers are started with.
pub const METRICS_TOKEN: &str = "test-metrics-token-0123456789";

/// A clearance covering every built-in department: what an operator account
/// that runs agent workers needs, since nobody mints a token for an agent
/// cleared beyond themselves.
pub const ALL_DEPARTMENTS: &str =
    "restricted:engineering,finance,hr,legal,marketing,operations,sales,support";

impl TestApp {
    /// Start a server; `tune` adjusts settings before start.
    pub async fn start(backend: Backend, tune: impl FnOnce(&mut Settings)) -> TestApp {
        let data = tempfile::tempdir().expect("temp dir");
        let mut settings = Settings::default();
        settings.server.bind = "127.0.0.1:0".into();
        settings.storage.data_dir = data.path().to_path_buf();
        settings.log = Some("warn".into());
        // Tests log in many times from one address.
        settings.auth.login_per_ip_per_minute = 10_000;
        // Posting limits have their own test; elsewhere they would only slow tests down.
        settings.limits.posts_per_second = 10_000.0;
        settings.limits.post_burst = 10_000.0;
        settings.limits.requests_per_second = 100_000.0;
        settings.limits.request_burst = 100_000.0;
        settings.limits.ws_frames_per_second = 100_000.0;
        settings.limits.ws_frame_burst = 100_000.0;
        settings.server.metrics_token = Some(METRICS_TOKEN.into());
        let mut guard = None;
        if backend == Backend::Postgres {
            let url = std::env::var("WARROOM_TEST_DATABASE_URL").expect("postgres url");
            let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
            settings.storage.database_url = Some(url.clone());
            settings.storage.postgres_schema = Some(schema.clone());
            settings.storage.max_connections = 4;
            guard = Some(SchemaGuard { url, schema });
        }
        tune(&mut settings);
        let running = startup::start(settings).await.expect("server starts");
        let addr = running.addr;
        TestApp {
            base: format!("http://{addr}"),
            addr,
            running,
            backend,
            data_dir: data.path().to_path_buf(),
            _data: data,
            _schema: guard,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// A SQLite server whose embeddings come from the instant loopback
    /// endpoint (no model needed); `tune` adjusts settings further.
    pub async fn with_loopback_embedder(
        tune: impl FnOnce(&mut Settings) + Send + 'static,
    ) -> TestApp {
        let url = warroom_tools::loopback_embed::start()
            .await
            .expect("loopback embedder");
        TestApp::start(Backend::Sqlite, move |s| {
            s.knowledge.embedder = warroom::choice::EmbedderKind::Openai;
            s.knowledge.openai_base_url = url;
            s.knowledge.openai_model = "loopback".into();
            s.knowledge.openai_dim = warroom_tools::loopback_embed::DIM;
            tune(s);
        })
        .await
    }

    /// Stop the server.
    pub async fn stop(self) {
        let TestApp {
            running,
            _schema,
            _data,
            ..
        } = self;
        running.stop().await;
        drop(_schema);
    }

    /// Send a request with a raw body.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Resp {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            b = b.header("content-type", ct);
        }
        let req = b.body(Full::new(Bytes::from(body))).unwrap();
        let resp = self.client.request(req).await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Resp {
            status,
            json,
            headers,
        }
    }

    /// Send JSON (or nothing) and parse the JSON answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        match body {
            Some(v) => {
                self.raw(
                    method,
                    path,
                    token,
                    Some("application/json"),
                    v.to_string().into_bytes(),
                )
                .await
            }
            None => self.raw(method, path, token, None, Vec::new()).await,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    /// Join `channel` with `token` (a person's or an agent's).
    pub async fn join(&self, token: &str, channel: &str) -> Resp {
        self.post(
            &format!("/api/v1/channels/{channel}/join"),
            token,
            json!({}),
        )
        .await
    }

    /// Assign `scope` to user `user_id` (`None` unassigns it), as `by`.
    pub async fn assign_scope(&self, by: &User, user_id: &str, scope: Option<&str>) -> Resp {
        self.put(
            &format!("/api/v1/users/{user_id}/scope"),
            &by.token,
            json!({ "scope": scope }),
        )
        .await
    }

    /// Upload a document's bytes as `u`; `query` holds `path=...` and any metadata.
    pub async fn upload(&self, u: &User, query: &str, body: &str) -> Resp {
        self.raw(
            Method::POST,
            &format!("/api/v1/documents?{query}"),
            Some(&u.token),
            Some("application/octet-stream"),
            body.as_bytes().to_vec(),
        )
        .await
    }

    /// Create a user directly (bypassing the API) and log in.
    pub async fn user(&self, handle: &str, role: &str, clearance: Option<&str>) -> User {
        let kind = if role == "agent" { "agent" } else { "human" };
        let req = warroom::api::users_routes::CreateUser {
            handle: handle.into(),
            display_name: None,
            role: role.into(),
            kind: Some(kind.into()),
            department: None,
            clearance: clearance.map(str::to_string),
            password: Some(PASSWORD.into()),
        };
        let new = warroom::users::new_user_from(req)
            .await
            .expect("valid user");
        let row = self
            .running
            .app
            .directory
            .create(new)
            .await
            .expect("user created");
        let r = self.login(handle, PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK, "login {handle}: {:?}", r.json);
        User {
            id: row.id,
            handle: handle.into(),
            token: r.json["access_token"].as_str().unwrap().into(),
            refresh: r.json["refresh_token"].as_str().unwrap().into(),
        }
    }

    pub async fn login(&self, handle: &str, password: &str) -> Resp {
        self.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"handle": handle, "password": password})),
        )
        .await
    }

    /// Create a channel as `u`; returns its id.
    pub async fn channel(
        &self,
        u: &User,
        name: &str,
        visibility: &str,
        label: Option<&str>,
    ) -> String {
        let r = self
            .post(
                "/api/v1/channels",
                &u.token,
                json!({"name": name, "visibility": visibility, "label": label}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "create channel {name}: {:?}",
            r.json
        );
        r.json["id"].as_str().unwrap().to_string()
    }

    /// Post `body` in a channel; returns the message JSON.
    pub async fn say(&self, u: &User, channel: &str, body: &str) -> Value {
        let r = self
            .post(
                &format!("/api/v1/channels/{channel}/messages"),
                &u.token,
                json!({"body": body}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "post: {:?}", r.json);
        r.json
    }

    /// A channel's current last sequence, as `u` sees it.
    pub async fn last_seq(&self, u: &User, channel: &str) -> i64 {
        let r = self
            .get(&format!("/api/v1/channels/{channel}"), &u.token)
            .await;
        r.json["last_seq"]
            .as_i64()
            .unwrap_or_else(|| panic!("channel {channel}: {:?}", r.json))
    }

    /// The value of a counter in `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        let r = self
            .raw(
                Method::GET,
                "/metrics",
                Some(METRICS_TOKEN),
                None,
                Vec::new(),
            )
            .await;
        let text = r.json.as_str().unwrap_or_default().to_string();
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|rest| rest.trim().parse::<f64>().ok())
            })
            .unwrap_or(0.0)
    }

    /// Open a WebSocket as `u`.
    pub async fn ws(&self, u: &User) -> Ws {
        let req = format!("ws://{}/api/v1/ws?access_token={}", self.addr, u.token)
            .into_client_request()
            .unwrap();
        let (stream, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("ws connects");
        let mut ws = Ws { stream };
        let ready = ws.next_json().await.expect("ready frame");
        assert_eq!(ready["type"], "ready");
        ws
    }
}

/// A WebSocket client.
pub struct Ws {
    pub stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

/// What the socket produced next.
#[derive(Debug)]
pub enum WsEvent {
    Json(Value),
    Closed(Option<u16>, String),
    Timeout,
}

impl Ws {
    pub async fn send(&mut self, v: Value) {
        self.stream
            .send(Message::Text(v.to_string().into()))
            .await
            .expect("ws send");
    }

    pub async fn subscribe(&mut self, channel: &str, last_seq: Option<i64>) {
        self.send(json!({"type": "subscribe", "channel_id": channel, "last_seq": last_seq}))
            .await;
    }

    /// The next frame within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> WsEvent {
        loop {
            match tokio::time::timeout(wait, self.stream.next()).await {
                Err(_) => return WsEvent::Timeout,
                Ok(None) => return WsEvent::Closed(None, String::new()),
                Ok(Some(Err(e))) => return WsEvent::Closed(None, e.to_string()),
                Ok(Some(Ok(Message::Text(t)))) => {
                    return WsEvent::Json(serde_json::from_str(t.as_str()).expect("json frame"))
                }
                Ok(Some(Ok(Message::Close(f)))) => {
                    return WsEvent::Closed(
                        f.as_ref().map(|f| u16::from(f.code)),
                        f.map(|f| f.reason.to_string()).unwrap_or_default(),
                    )
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// The next JSON frame (within 5 s).
    pub async fn next_json(&mut self) -> Option<Value> {
        match self.next_within(Duration::from_secs(5)).await {
            WsEvent::Json(v) => Some(v),
            _ => None,
        }
    }

    /// Skip frames until one of `kind` arrives (within 5 s).
    pub async fn expect(&mut self, kind: &str) -> Value {
        loop {
            match self.next_within(Duration::from_secs(5)).await {
                WsEvent::Json(v) if v["type"] == kind => return v,
                WsEvent::Json(_) => continue,
                other => panic!("waiting for {kind}: got {other:?}"),
            }
        }
    }

    /// Collect frames until one of `channel` with a sequence of at least
    /// `seq` arrives (within 10 s), then whatever follows within 200 ms.
    pub async fn until_seq(&mut self, channel: &str, seq: i64) -> Vec<Value> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                WsEvent::Json(v) => {
                    let done =
                        v["channel_id"] == channel && v["seq"].as_i64().is_some_and(|s| s >= seq);
                    out.push(v);
                    if done {
                        break;
                    }
                }
                other => panic!("waiting for seq {seq}: {other:?} after {out:?}"),
            }
        }
        out.extend(self.drain(Duration::from_millis(200)).await);
        out
    }

    /// Collect every JSON frame until `quiet` passes without one.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        while let WsEvent::Json(v) = self.next_within(quiet).await {
            out.push(v);
        }
        out
    }
}

/// Create a user with `warroom users create` on a data directory, the
/// password on standard input; panics with the CLI's error if it fails.
pub fn cli_create_user(data: &std::path::Path, handle: &str, role: &str, password: &str) {
    let out = warroom_cli(
        data,
        &[
            "users",
            "create",
            "--handle",
            handle,
            "--role",
            role,
            "--password-stdin",
        ],
        Some(&format!("{password}\n")),
    );
    assert!(
        out.status.success(),
        "users create {handle}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run the `warroom` binary on a data directory (SQLite, quiet logs), with
/// `stdin` as its standard input; returns its output.
pub fn warroom_cli(
    data: &std::path::Path,
    args: &[&str],
    stdin: Option<&str>,
) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    // The binary lives in the `warroom` package (cli/); only its tests have it.
    let Some(bin) = option_env!("CARGO_BIN_EXE_warroom") else {
        panic!("the warroom binary is built for the cli package's tests only");
    };
    let mut child = Command::new(bin)
        .args(args)
        .env("WARROOM_STORAGE__DATA_DIR", data)
        .env("WARROOM_LOG", "warn")
        .env_remove("WARROOM_STORAGE__DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the warroom binary runs");
    if let Some(input) = stdin {
        child
            .stdin
            .as_mut()
            .expect("stdin is piped")
            .write_all(input.as_bytes())
            .expect("stdin written");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("the warroom binary ends")
}
