//! `warroom bench chat`: WebSocket fan-out and durable posting, measured on
//! loopback against the real server, and in the same run against a bare
//! tokio-tungstenite broadcast relay (no storage, no auth) as the reference.
//!
//! Fan-out: N subscribers on one channel, M publishers. Each publisher posts,
//! then waits until all N subscribers have its message before posting again,
//! so the figure is the fan-out rate the system sustains. Latency
//! (post-to-delivery per subscriber) is then measured at a fixed rate of half
//! what the slower of the two sustained, the same for both. Durable posting: K concurrent HTTP
//! publishers with no subscribers, end to end; then the storage path alone
//! (authorized posts handed straight to the writer). The reference commits
//! one post per transaction (no group commit) on the same storage settings.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tokio::sync::{watch, Notify};
use tokio_tungstenite::tungstenite::Message;

use warroom::config::Settings;

/// Options of `warroom bench chat`.
#[derive(clap::Args, Debug, Clone)]
pub struct ChatBenchArgs {
    /// WebSocket subscribers on the channel.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Concurrent publishers in the fan-out phase.
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Seconds of fan-out per system.
    #[arg(long, default_value_t = 8.0)]
    pub seconds: f64,
    /// Concurrent HTTP publishers in the durable-posting phase.
    #[arg(long, default_value_t = 64)]
    pub durable_publishers: usize,
    /// Seconds of durable posting.
    #[arg(long, default_value_t = 5.0)]
    pub durable_seconds: f64,
    /// Write the results here as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Benchmark against this database instead of a fresh SQLite file.
    #[arg(long)]
    pub database_url: Option<String>,
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

const MAX_MESSAGES: usize = 4_000_000;

/// Counts deliveries per message and wakes its publisher when all arrived.
struct Tracker {
    counts: Vec<AtomicU32>,
    wake: Vec<Notify>,
    next: AtomicUsize,
    subscribers: u32,
    epoch: Instant,
}

impl Tracker {
    fn new(subscribers: usize, publishers: usize) -> Arc<Self> {
        Arc::new(Self {
            counts: (0..MAX_MESSAGES).map(|_| AtomicU32::new(0)).collect(),
            wake: (0..publishers).map(|_| Notify::new()).collect(),
            next: AtomicUsize::new(0),
            subscribers: subscribers as u32,
            epoch: Instant::now(),
        })
    }

    fn nanos(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// The body a publisher sends: `t:<index>:<publisher>:<sent-at-nanos>`.
    fn stamp(&self, publisher: usize) -> Option<(usize, String)> {
        let idx = self.next.fetch_add(1, Ordering::Relaxed);
        (idx < MAX_MESSAGES).then(|| (idx, format!("t:{idx}:{publisher}:{}", self.nanos())))
    }

    /// Record a received frame; returns its latency in microseconds.
    fn receive(&self, frame: &str) -> Option<u32> {
        let at = frame.find("\"body\":\"t:")? + 10;
        let mut parts = frame[at..].split(['"', ':']);
        let idx: usize = parts.next()?.parse().ok()?;
        let publisher: usize = parts.next()?.parse().ok()?;
        let sent: u64 = parts.next()?.parse().ok()?;
        let latency = (self.nanos().saturating_sub(sent) / 1000) as u32;
        let n = self.counts.get(idx)?.fetch_add(1, Ordering::Relaxed) + 1;
        if n == self.subscribers {
            self.wake.get(publisher)?.notify_one();
        }
        Some(latency)
    }
}

/// Read frames until told to stop; returns latencies (µs) of timed frames.
async fn subscriber(
    mut ws: WsStream,
    tracker: Arc<Tracker>,
    mut stop: watch::Receiver<bool>,
) -> Vec<u32> {
    let mut lat = Vec::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if let Some(l) = tracker.receive(t.as_str()) {
                        lat.push(l);
                    }
                }
                Some(Ok(_)) => {}
                _ => break,
            }
        }
    }
    lat
}

/// Figures of one fan-out run.
#[derive(Debug, Clone, Copy)]
struct FanOut {
    deliveries_per_s: f64,
    posts_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    lost: u64,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn collect(
    tracker: &Tracker,
    subs: Vec<tokio::task::JoinHandle<Vec<u32>>>,
    stop: watch::Sender<bool>,
    elapsed: f64,
    posts: usize,
) -> FanOut {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = stop.send(true);
    let mut all = Vec::new();
    for s in subs {
        all.extend(s.await.unwrap_or_default());
    }
    all.sort_unstable();
    let expected = posts as u64 * tracker.subscribers as u64;
    FanOut {
        deliveries_per_s: all.len() as f64 / elapsed,
        posts_per_s: posts as f64 / elapsed,
        p50_ms: percentile(&all, 0.50),
        p99_ms: percentile(&all, 0.99),
        lost: expected.saturating_sub(all.len() as u64),
    }
}

fn bar(msg: &str, secs: f64) -> ProgressBar {
    let pb = ProgressBar::new((secs * 10.0) as u64);
    pb.set_style(
        ProgressStyle::with_template("{msg:38} [{bar:30}] {elapsed}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_message(msg.to_string());
    pb
}

async fn tick(pb: &ProgressBar, until: Instant) {
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
        pb.inc(1);
    }
    pb.finish();
}

async fn http(
    client: &HttpClient,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = client
        .request(req.body(Full::new(Bytes::from(body.to_string())))?)
        .await?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    ))
}

struct Product {
    running: warroom::startup::Running,
    base: String,
    client: HttpClient,
    _data: tempfile::TempDir,
}

impl Product {
    async fn start(args: &ChatBenchArgs) -> anyhow::Result<Self> {
        let data = tempfile::tempdir()?;
        let mut s = Settings::default();
        s.server.bind = "127.0.0.1:0".into();
        s.storage.data_dir = data.path().to_path_buf();
        s.storage.database_url = args.database_url.clone();
        s.storage.max_connections = 8;
        // The benchmark measures the platform, not the per-user abuse limits.
        s.limits.posts_per_second = 1e9;
        s.limits.post_burst = 1e9;
        s.auth.login_per_ip_per_minute = 1_000_000;
        s.auth.login_per_handle_per_minute = 1_000_000;
        let running = warroom::startup::start(s)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let base = format!("http://{}", running.addr);
        Ok(Self {
            running,
            base,
            client: Client::builder(TokioExecutor::new()).build_http(),
            _data: data,
        })
    }

    async fn user(&self, handle: &str) -> anyhow::Result<String> {
        let req = warroom::users::users_create_request(
            handle.into(),
            "member".into(),
            None,
            None,
            None,
            Some("benchmark password".into()),
        );
        let new = warroom::users::new_user_from(req)
            .await
            .map_err(warroom::ops::api)?;
        self.running
            .app
            .directory
            .create(new)
            .await
            .map_err(warroom::ops::api)?;
        let (status, body) = http(
            &self.client,
            "POST",
            &format!("{}/api/v1/auth/login", self.base),
            None,
            json!({"handle": handle, "password": "benchmark password"}),
        )
        .await?;
        anyhow::ensure!(status == 200, "login failed: {body}");
        Ok(body["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    async fn join(&self, token: &str, channel: &str) -> anyhow::Result<()> {
        let url = format!("{}/api/v1/channels/{channel}/join", self.base);
        let (status, body) = http(&self.client, "POST", &url, Some(token), json!({})).await?;
        anyhow::ensure!(status == 200, "join failed: {body}");
        Ok(())
    }

    /// The principal behind a handle.
    async fn principal(&self, handle: &str) -> anyhow::Result<Arc<warroom::principal::Principal>> {
        let app = &self.running.app;
        let row = app
            .directory
            .row_by_handle(handle)
            .await?
            .context("bench user")?;
        app.directory
            .get(&warroom::ids::UserId::from_trusted(row.id))
            .await?
            .context("bench user")
    }

    /// `n` channels owned by `token`'s user, named `prefix-0`...
    async fn channels(&self, token: &str, prefix: &str, n: usize) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        for c in 0..n {
            out.push(self.channel(token, &format!("{prefix}-{c}")).await?);
        }
        Ok(out)
    }

    async fn channel(&self, token: &str, name: &str) -> anyhow::Result<String> {
        let (status, body) = http(
            &self.client,
            "POST",
            &format!("{}/api/v1/channels", self.base),
            Some(token),
            json!({"name": name, "visibility": "public"}),
        )
        .await?;
        anyhow::ensure!(status == 201, "create channel failed: {body}");
        Ok(body["id"].as_str().unwrap_or_default().to_string())
    }
}

/// How publishers send: as fast as full delivery allows, or on a fixed schedule.
#[derive(Clone, Copy, Debug)]
enum Pace {
    /// Each publisher waits until all subscribers have its message.
    Saturate,
    /// Publishers together post this many messages per second.
    Rate(f64),
}

impl Pace {
    async fn wait(
        self,
        tracker: &Tracker,
        publisher: usize,
        publishers: usize,
        next: &mut tokio::time::Instant,
    ) {
        match self {
            Pace::Saturate => {
                let _ = tokio::time::timeout(
                    Duration::from_secs(2),
                    tracker.wake[publisher].notified(),
                )
                .await;
            }
            Pace::Rate(r) => {
                *next += Duration::from_secs_f64(publishers as f64 / r);
                tokio::time::sleep_until(*next).await;
            }
        }
    }
}

async fn product_fanout(args: &ChatBenchArgs, pace: Pace) -> anyhow::Result<(FanOut, f64)> {
    let p = Product::start(args).await?;
    let owner = p.user("bench-owner").await?;
    let reader = p.user("bench-reader").await?;
    let ch = p.channel(&owner, "bench").await?;
    p.join(&reader, &ch).await?;
    let tracker = Tracker::new(args.subscribers, args.publishers);
    let (stop_tx, stop_rx) = watch::channel(false);
    let pb = ProgressBar::new(args.subscribers as u64);
    pb.set_message("warroom: connecting subscribers");
    let mut subs = Vec::new();
    for _ in 0..args.subscribers {
        let url = format!("ws://{}/api/v1/ws?access_token={reader}", p.running.addr);
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .context("subscriber connect")?;
        ws.send(Message::Text(
            json!({"type": "subscribe", "channel_id": ch})
                .to_string()
                .into(),
        ))
        .await?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.as_str().contains("\"subscribed\"") => break,
                Some(Ok(_)) => continue,
                other => anyhow::bail!("subscriber did not get subscribed: {other:?}"),
            }
        }
        subs.push(tokio::spawn(subscriber(
            ws,
            tracker.clone(),
            stop_rx.clone(),
        )));
        pb.inc(1);
    }
    pb.finish_and_clear();
    let mut pubs = Vec::new();
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(args.seconds);
    for i in 0..args.publishers {
        let token = p.user(&format!("bench-pub-{i}")).await?;
        p.join(&token, &ch).await?;
        let (tracker, client, url) = (
            tracker.clone(),
            p.client.clone(),
            format!("{}/api/v1/channels/{ch}/messages", p.base),
        );
        let publishers = args.publishers;
        pubs.push(tokio::spawn(async move {
            let mut n = 0usize;
            let mut next = tokio::time::Instant::now();
            while Instant::now() < until {
                let Some((_, body)) = tracker.stamp(i) else {
                    break;
                };
                if let Ok((201, _)) =
                    http(&client, "POST", &url, Some(&token), json!({"body": body})).await
                {
                    n += 1;
                }
                pace.wait(&tracker, i, publishers, &mut next).await;
            }
            n
        }));
    }
    let pb = bar(&format!("warroom: fan-out ({pace:?})"), args.seconds);
    tick(&pb, until).await;
    let mut posts = 0;
    for h in pubs {
        posts += h.await.unwrap_or(0);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let fan = collect(&tracker, subs, stop_tx, elapsed, posts).await;
    let batch = mean_batch(&p.running.app);
    p.running.stop().await;
    Ok((fan, batch))
}

fn mean_batch(app: &warroom::app::AppState) -> f64 {
    let h = &app.metrics.write_batch_size;
    if h.get_sample_count() == 0 {
        0.0
    } else {
        h.get_sample_sum() / h.get_sample_count() as f64
    }
}

/// The reference: a bare broadcast relay over tokio-tungstenite.
async fn relay_server(listener: tokio::net::TcpListener) {
    let (tx, _) = tokio::sync::broadcast::channel::<Message>(8192);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            let (mut sink, mut stream) = ws.split();
            let mut rx = tx.subscribe();
            let writer = tokio::spawn(async move {
                loop {
                    match rx.recv().await {
                        Ok(m) => {
                            if sink.send(m).await.is_err() {
                                break;
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => break,
                    }
                }
            });
            while let Some(Ok(m)) = stream.next().await {
                if m.is_text() {
                    let _ = tx.send(m);
                }
            }
            writer.abort();
        });
    }
}

/// A frame shaped like the product's `message.created` event.
fn relay_frame(body: &str) -> String {
    json!({"type": "message.created", "channel_id": "01a20cec-327f-734f-9afe-16f1bf4b9a00", "seq": 1,
        "message": {"id": "01a20cec-32f7-77d9-9c3d-c1acfa8fe219", "channel_id": "01a20cec-327f-734f-9afe-16f1bf4b9a00", "seq": 1,
        "author": {"id": "01a20cec-2673-714b-8170-617697fd1abb", "handle": "bench-pub", "display_name": "bench-pub", "kind": "human", "department": null},
        "thread_root": null, "body": body, "body_html": format!("<p>{body}</p>"), "label": "internal",
        "created_at": "2026-11-24T09:38:55.863717837Z", "edited_at": null, "deleted": false, "reactions": [], "reply_count": 0}})
    .to_string()
}

async fn relay_fanout(args: &ChatBenchArgs, pace: Pace) -> anyhow::Result<FanOut> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(relay_server(listener));
    let tracker = Tracker::new(args.subscribers, args.publishers);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut subs = Vec::new();
    for _ in 0..args.subscribers {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await?;
        subs.push(tokio::spawn(subscriber(
            ws,
            tracker.clone(),
            stop_rx.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(args.seconds);
    let mut pubs = Vec::new();
    for i in 0..args.publishers {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await?;
        let (mut sink, mut stream) = ws.split();
        tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
        let tracker = tracker.clone();
        let publishers = args.publishers;
        pubs.push(tokio::spawn(async move {
            let mut n = 0usize;
            let mut next = tokio::time::Instant::now();
            while Instant::now() < until {
                let Some((_, body)) = tracker.stamp(i) else {
                    break;
                };
                if sink
                    .send(Message::Text(relay_frame(&body).into()))
                    .await
                    .is_err()
                {
                    break;
                }
                n += 1;
                pace.wait(&tracker, i, publishers, &mut next).await;
            }
            n
        }));
    }
    let pb = bar(
        &format!("reference relay: fan-out ({pace:?})"),
        args.seconds,
    );
    tick(&pb, until).await;
    let mut posts = 0;
    for h in pubs {
        posts += h.await.unwrap_or(0);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let fan = collect(&tracker, subs, stop_tx, elapsed, posts).await;
    server.abort();
    Ok(fan)
}

async fn durable_posting(args: &ChatBenchArgs) -> anyhow::Result<(f64, f64)> {
    let p = Product::start(args).await?;
    let owner = p.user("durable-owner").await?;
    let channels = p.channels(&owner, "durable", 8).await?;
    let mut tokens = Vec::new();
    for i in 0..args.durable_publishers {
        let t = p.user(&format!("durable-{i}")).await?;
        let ch = &channels[i % channels.len()];
        p.join(&t, ch).await?;
        tokens.push(t);
    }
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(args.durable_seconds);
    let mut tasks = Vec::new();
    for (i, token) in tokens.into_iter().enumerate() {
        let (client, url) = (
            p.client.clone(),
            format!(
                "{}/api/v1/channels/{}/messages",
                p.base,
                channels[i % channels.len()]
            ),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            let mut k = 0usize;
            while Instant::now() < until {
                k += 1;
                let body = json!({"body": format!("durable post {k} from publisher {i}"), "idempotency_key": format!("p{i}-{k}")});
                if let Ok((201, _)) = http(&client, "POST", &url, Some(&token), body).await {
                    n += 1;
                }
            }
            n
        }));
    }
    let pb = bar("warroom: durable posting", args.durable_seconds);
    tick(&pb, until).await;
    let mut n = 0;
    for t in tasks {
        n += t.await.unwrap_or(0);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let rate = n as f64 / elapsed;
    let batch = mean_batch(&p.running.app);
    let busy = p.running.app.metrics.write_batch_seconds.get_sample_sum() / elapsed;
    println!("  (writer busy {:.0}% of the durable phase)", busy * 100.0);
    p.running.stop().await;
    Ok((rate, batch))
}

/// The storage path alone: authorized posts handed straight to the channel
/// writer by many tasks (no HTTP, no authentication), committed in groups.
async fn group_commit_only(args: &ChatBenchArgs) -> anyhow::Result<(f64, f64)> {
    let p = Product::start(args).await?;
    let owner = p.user("gc-owner").await?;
    let channels = p.channels(&owner, "gc", 8).await?;
    let author = p.principal("gc-owner").await?;
    let secs = args.durable_seconds;
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for i in 0..args.durable_publishers.max(1) * 4 {
        let (writer, author, channel) = (
            p.running.app.writer.clone(),
            author.clone(),
            channels[i % channels.len()].clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            while Instant::now() < until {
                let post = warroom::chat::writer::NewPost {
                    id: uuid::Uuid::now_v7().to_string(),
                    channel_id: channel.clone(),
                    author: author.clone(),
                    thread_root: None,
                    body: format!("group commit post {n} from task {i}"),
                    label: warroom::label::Label::level(warroom::label::Level::Internal),
                    idempotency_key: Some(format!("g{i}-{n}")),
                    mention_ids: Vec::new(),
                    citations: Vec::new(),
                    brain: None,
                    direct: false,
                };
                if writer.post(post).await.is_ok() {
                    n += 1;
                }
            }
            n
        }));
    }
    let pb = bar("warroom: group commit only", secs);
    tick(&pb, until).await;
    let mut n = 0;
    for t in tasks {
        n += t.await.unwrap_or(0);
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let batch = mean_batch(&p.running.app);
    p.running.stop().await;
    Ok((rate, batch))
}

/// Reference for durable posting: one transaction (one fsync) per post, on
/// the same storage settings, without HTTP.
async fn unbatched_reference(args: &ChatBenchArgs) -> anyhow::Result<f64> {
    use sea_orm::{ActiveModelTrait, Set};
    let p = Product::start(args).await?;
    let owner = p.user("unbatched-owner").await?;
    let ch = p.channel(&owner, "unbatched").await?;
    let author = p.principal("unbatched-owner").await?.id.to_string();
    let db = p.running.app.db.clone();
    let secs = args.durable_seconds.min(3.0);
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(secs);
    let pb = bar("reference: one commit per post", secs);
    let ticker = tokio::spawn({
        let pb = pb.clone();
        async move { tick(&pb, until).await }
    });
    let mut n: i64 = 0;
    while Instant::now() < until {
        n += 1;
        let txn = warroom::storage::begin_write(&db).await?;
        warroom::storage::entities::message::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            channel_id: Set(ch.clone()),
            seq: Set(1_000_000 + n),
            author_id: Set(author.clone()),
            thread_root: Set(None),
            body: Set(format!("unbatched post {n}")),
            label: Set("internal".into()),
            edited_at: Set(None),
            deleted: Set(false),
            idempotency_key: Set(None),
            created_at: Set(chrono::Utc::now()),
            brain: Set(None),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let _ = ticker.await;
    p.running.stop().await;
    Ok(rate)
}

/// Run the chat benchmark and print (and optionally save) the results.
pub async fn chat(args: ChatBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.subscribers >= 1 && args.publishers >= 1,
        "need at least one subscriber and one publisher"
    );
    let db = if args
        .database_url
        .as_deref()
        .is_some_and(|u| u.starts_with("postgres"))
    {
        "postgres"
    } else {
        "sqlite"
    };
    // Saturation: how many deliveries per second each system sustains.
    let reference = relay_fanout(&args, Pace::Saturate).await?;
    let (product, fan_batch) = product_fanout(&args, Pace::Saturate).await?;
    // Latency at an equal, fixed load: half of what the slower system sustained.
    let rate = 0.5 * product.posts_per_s.min(reference.posts_per_s);
    let reference_paced = relay_fanout(&args, Pace::Rate(rate)).await?;
    let (product_paced, _) = product_fanout(&args, Pace::Rate(rate)).await?;
    let (durable, durable_batch) = durable_posting(&args).await?;
    let (group_commit, group_batch) = group_commit_only(&args).await?;
    let unbatched = unbatched_reference(&args).await?;
    let ratio = product.deliveries_per_s / reference.deliveries_per_s;
    let result = json!({
        "subscribers": args.subscribers,
        "publishers": args.publishers,
        "seconds": args.seconds,
        "database": db,
        "deliveries_per_s": product.deliveries_per_s.round(),
        "reference_deliveries_per_s": reference.deliveries_per_s.round(),
        "ratio": (ratio * 1000.0).round() / 1000.0,
        "latency_posts_per_s": rate.round(),
        "p50_ms": product_paced.p50_ms,
        "p99_ms": product_paced.p99_ms,
        "reference_p50_ms": reference_paced.p50_ms,
        "reference_p99_ms": reference_paced.p99_ms,
        "saturated_p50_ms": product.p50_ms,
        "saturated_p99_ms": product.p99_ms,
        "reference_saturated_p50_ms": reference.p50_ms,
        "reference_saturated_p99_ms": reference.p99_ms,
        "paced_lost_deliveries": product_paced.lost,
        "fanout_posts_per_s": product.posts_per_s.round(),
        "lost_deliveries": product.lost,
        "reference_lost_deliveries": reference.lost,
        "fanout_mean_write_batch": fan_batch,
        "durable_publishers": args.durable_publishers,
        "durable_posts_per_s": durable.round(),
        "durable_mean_write_batch": (durable_batch * 10.0).round() / 10.0,
        "group_commit_posts_per_s": group_commit.round(),
        "group_commit_mean_batch": (group_batch * 10.0).round() / 10.0,
        "reference_unbatched_posts_per_s": unbatched.round(),
        "durable_ratio": ((durable / unbatched) * 100.0).round() / 100.0,
    });
    println!();
    println!(
        "chat benchmark ({db}, {} subscribers, {} publishers)",
        args.subscribers, args.publishers
    );
    println!(
        "  deliveries/s     warroom {:>10.0}   bare relay {:>10.0}   ratio {:.2}",
        product.deliveries_per_s, reference.deliveries_per_s, ratio
    );
    println!(
        "  latency p50/p99 at {rate:.0} posts/s  warroom {:>5.1}/{:<5.1} ms   bare relay {:>5.1}/{:<5.1} ms",
        product_paced.p50_ms, product_paced.p99_ms, reference_paced.p50_ms, reference_paced.p99_ms
    );
    println!(
        "  latency p50/p99 saturated       warroom {:>5.1}/{:<5.1} ms   bare relay {:>5.1}/{:<5.1} ms",
        product.p50_ms, product.p99_ms, reference.p50_ms, reference.p99_ms
    );
    println!("  durable posts/s  warroom {:>10.0}   one-commit-per-post {:>10.0}   ratio {:.1} (mean group commit {:.1})", durable, unbatched, durable / unbatched, durable_batch);
    println!(
        "  group commit only (no HTTP)  warroom {group_commit:>10.0} posts/s   one-commit-per-post {unbatched:>10.0}   ratio {:.1} (mean batch {group_batch:.1})",
        group_commit / unbatched
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&result)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("  results written to {}", path.display());
    }
    Ok(())
}
