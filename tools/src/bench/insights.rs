//! `warroom bench insights`: the insights job's time and peak memory on a
//! week of synthetic transcripts. For each size, a fresh SQLite database gets
//! a synthetic company (documents and chunks in eight departments), agents,
//! channels and N messages spread over seven days: threads of replies, each
//! message quoting one or two document sentences with citations and carrying
//! a 384-dimension vector (as if embedded at post time). Then the job runs
//! over the week, exactly as `warroom insights run` does. Reported beside the
//! job: a plain scan reading the same rows (the floor any job pays) and the
//! target rate (1,000,000 messages in 10 minutes), as ratios.

use std::path::PathBuf;
use std::time::Instant;

use chrono::{Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::{ConnectionTrait, Value};
use serde_json::{json, Value as Json};

use warroom::insights::vectors::Quantized;
use warroom::storage::sql::stmt;

/// Options of `warroom bench insights`.
#[derive(clap::Args, Debug, Clone)]
pub struct InsightsBenchArgs {
    /// Messages, one run per value.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    pub messages: Vec<usize>,
    /// Write the results here as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

const DEPTS: &[&str] = &[
    "engineering",
    "finance",
    "hr",
    "legal",
    "marketing",
    "operations",
    "sales",
    "support",
];
const TARGET_PER_S: f64 = 1_000_000.0 / 600.0;
const DIM: usize = 384;

/// Peak resident set size since the last reset, bytes.
fn peak_rss() -> u64 {
    crate::bench::agents::proc_status_bytes("VmHWM:")
}

/// Reset the peak to the current size (Linux: `5` to clear_refs).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Run the benchmark.
pub async fn run(args: InsightsBenchArgs) -> anyhow::Result<()> {
    if args.messages.is_empty() || args.messages.iter().any(|n| *n < 100 || *n > 5_000_000) {
        anyhow::bail!("--messages takes sizes from 100 to 5000000, e.g. 10000,100000");
    }
    let mut runs: Vec<Json> = Vec::new();
    for &n in &args.messages {
        let r = one_run(n).await?;
        println!(
            "messages {:>9}: job {:>7.1} s = {:>8.0} msg/s (scan alone {:>8.0} msg/s, job/scan {:.2}; target {:.0} msg/s, ratio {:.2}), peak rss {} MiB, {} insights",
            n,
            r["seconds"].as_f64().unwrap_or(0.0),
            r["messages_per_s"].as_f64().unwrap_or(0.0),
            r["scan_messages_per_s"].as_f64().unwrap_or(0.0),
            r["job_vs_scan"].as_f64().unwrap_or(0.0),
            TARGET_PER_S,
            r["vs_target"].as_f64().unwrap_or(0.0),
            r["peak_rss_bytes"].as_u64().unwrap_or(0) >> 20,
            r["insights"],
        );
        runs.push(r);
    }
    if let Some(path) = &args.json {
        let out = json!({
            "benchmark": "insights",
            "machine": {"cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)},
            "build": if cfg!(debug_assertions) { "debug" } else { "release" },
            "target": {"messages": 1_000_000, "seconds": 600, "messages_per_s": TARGET_PER_S},
            "runs": runs,
        });
        std::fs::write(path, serde_json::to_string_pretty(&out)?)?;
        println!("written to {}", path.display());
    }
    Ok(())
}

async fn one_run(n: usize) -> anyhow::Result<Json> {
    let dir = tempfile::tempdir()?;
    let mut settings = warroom::config::Settings::default();
    settings.storage.data_dir = dir.path().to_path_buf();
    settings.insights.schedule = false;
    settings.insights.embed_on_post = false;
    let app = warroom::app::AppState::build(settings)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let bar = indicatif::ProgressBar::new(n as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "  writing {pos}/{len} synthetic messages {bar:30}",
        )
        .expect("static template"),
    );
    let period_to = Utc::now();
    generate(&app, n, period_to, &bar).await?;
    bar.finish_and_clear();
    let period = warroom::insights::Period::ending(period_to + Duration::seconds(1), 7);

    // The floor: reading the same rows the job reads.
    let scan_started = Instant::now();
    let backend = app.db.get_database_backend();
    let rows = app
        .db
        .query_all_raw(stmt(
            backend,
            "SELECT m.id, m.body, v.vector, c.chunk_id FROM messages m \
             LEFT JOIN message_vectors v ON v.message_id = m.id \
             LEFT JOIN message_citations c ON c.message_id = m.id \
             WHERE m.created_at >= $1 AND m.created_at < $2",
            vec![period.from.into(), period.to.into()],
        ))
        .await?;
    let scanned = rows.len();
    drop(rows);
    let scan_s = scan_started.elapsed().as_secs_f64();

    reset_peak();
    let started = Instant::now();
    let digest = app
        .insights
        .run(
            period,
            warroom::insights::Trigger::Cli,
            warroom::authz::Actor::Server,
            &|_| {},
        )
        .await
        .map_err(warroom::ops::api)?;
    let seconds = started.elapsed().as_secs_f64();
    let peak = peak_rss();
    let per_s = n as f64 / seconds;
    let scan_per_s = scanned.max(1) as f64 / scan_s.max(1e-9);
    Ok(json!({
        "messages": n,
        "seconds": (seconds * 100.0).round() / 100.0,
        "messages_per_s": per_s.round(),
        "peak_rss_bytes": peak,
        "scan_seconds": (scan_s * 100.0).round() / 100.0,
        "scan_messages_per_s": scan_per_s.round(),
        "job_vs_scan": ((per_s / scan_per_s) * 1000.0).round() / 1000.0,
        "vs_target": ((per_s / TARGET_PER_S) * 1000.0).round() / 1000.0,
        "insights": digest.insights.len(),
        "facts": digest.stats.facts,
        "messages_read": digest.stats.messages,
    }))
}

/// One synthetic fact: a sentence of a chunk, and where its vector points.
struct SynFact {
    chunk: usize,
    sentence: String,
    base: Vec<f32>,
}

async fn exec(app: &warroom::app::App, sql: &str, values: Vec<Value>) -> anyhow::Result<()> {
    app.db
        .execute_raw(stmt(app.db.get_database_backend(), sql, values))
        .await?;
    Ok(())
}

fn insert_sql(table: &str, cols: &[&str], rows: usize) -> String {
    format!(
        "INSERT INTO {table} ({}) VALUES {}",
        cols.join(", "),
        warroom::storage::sql::placeholders(rows, cols.len())
    )
}

async fn generate(
    app: &warroom::app::App,
    n: usize,
    period_to: chrono::DateTime<Utc>,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(42);
    let now = Utc::now();
    // People and agents: 25 agents per department.
    let mut authors: Vec<(String, usize)> = Vec::new();
    for (d, dept) in DEPTS.iter().enumerate() {
        for k in 0..25 {
            let id = uuid::Uuid::now_v7().to_string();
            exec(
                app,
                "INSERT INTO users (id, handle, display_name, kind, role, department, clearance, password_hash, active, created_at) \
                 VALUES ($1, $2, $3, 'agent', 'agent', $4, $5, NULL, $6, $7)",
                vec![
                    id.clone().into(),
                    format!("{dept}-agent-{k}").into(),
                    format!("{dept} agent {k}").into(),
                    dept.to_string().into(),
                    format!("confidential:{dept}").into(),
                    true.into(),
                    now.into(),
                ],
            )
            .await?;
            authors.push((id, d));
        }
    }
    // Channels: a shared war-room and one per department.
    let mut channels = Vec::new();
    for name in
        std::iter::once("war-room".to_string()).chain(DEPTS.iter().map(|d| format!("dept-{d}")))
    {
        let id = uuid::Uuid::now_v7().to_string();
        exec(
            app,
            "INSERT INTO channels (id, name, visibility, label, topic, created_by, archived, last_seq, history_floor, dm_key, created_at) \
             VALUES ($1, $2, 'public', 'internal', '', $3, $4, 0, 0, NULL, $5)",
            vec![id.clone().into(), name.into(), authors[0].0.clone().into(), false.into(), now.into()],
        )
        .await?;
        channels.push(id);
    }
    // Documents: 12 per department, 4 chunks of 4 sentences.
    let mut facts: Vec<SynFact> = Vec::new();
    let mut chunk_ids: Vec<String> = Vec::new();
    let mut chunk_dept: Vec<usize> = Vec::new();
    let names = [
        "Halden", "Corvix", "Mirela", "Tansy", "Orvo", "Quell", "Brisa", "Noor",
    ];
    for (d, dept) in DEPTS.iter().enumerate() {
        for doc in 0..12 {
            let doc_id = uuid::Uuid::now_v7().to_string();
            let mut body = String::new();
            let mut chunk_texts = Vec::new();
            for c in 0..4 {
                let mut text = String::new();
                for s in 0..4 {
                    let sentence = format!(
                        "The {dept} review {doc}.{c}.{s} found that {} account {} moved by {}% before {} {}.",
                        names[(doc + s) % names.len()],
                        rng.gen_range(100..999),
                        rng.gen_range(2..60),
                        ["March", "June", "September", "December"][s],
                        2026 + (c % 2)
                    );
                    text.push_str(&sentence);
                    text.push(' ');
                    let mut base: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect();
                    // Facts of the same document point roughly the same way.
                    for (i, b) in base.iter_mut().enumerate() {
                        *b += ((doc * 31 + d * 7 + i) % 13) as f32 / 13.0;
                    }
                    facts.push(SynFact {
                        chunk: chunk_ids.len() + c,
                        sentence,
                        base,
                    });
                }
                body.push_str(&text);
                body.push('\n');
                chunk_texts.push(text);
            }
            exec(
                app,
                "INSERT INTO documents (id, collection, path, title, format, department, label, level, tags, doc_date, content_hash, bytes, chunk_count, body, created_by, created_at, updated_at) \
                 VALUES ($1, 'company', $2, $3, 'markdown', $4, 'internal', 1, '[]', NULL, $5, $6, 4, $7, NULL, $8, $9)",
                vec![
                    doc_id.clone().into(),
                    format!("{dept}/review-{doc}.md").into(),
                    format!("{dept} review {doc}").into(),
                    dept.to_string().into(),
                    format!("{d}-{doc}").into(),
                    (body.len() as i64).into(),
                    body.into(),
                    now.into(),
                    now.into(),
                ],
            )
            .await?;
            for (c, text) in chunk_texts.into_iter().enumerate() {
                let id = uuid::Uuid::now_v7().to_string();
                exec(
                    app,
                    "INSERT INTO chunks (id, document_id, ord, heading_path, text, tokens) VALUES ($1, $2, $3, '', $4, 60)",
                    vec![id.clone().into(), doc_id.clone().into(), (c as i64).into(), text.into()],
                )
                .await?;
                chunk_ids.push(id);
                chunk_dept.push(d);
            }
        }
    }
    // Messages: threads of 1-6 messages, in the war-room and department rooms.
    let span = Duration::days(7).num_milliseconds() - 60_000;
    let mut seq = vec![0i64; channels.len()];
    let mut written = 0usize;
    let batch = 2000usize;
    let model = "synthetic-384";
    while written < n {
        let mut msgs: Vec<Value> = Vec::new();
        let mut vecs: Vec<Value> = Vec::new();
        let mut cites: Vec<Value> = Vec::new();
        let (mut nm, mut nv, mut nc) = (0, 0, 0);
        while nm < batch && written + nm < n {
            let ch = if rng.gen_bool(0.5) {
                0
            } else {
                rng.gen_range(1..channels.len())
            };
            let len = rng.gen_range(1..=6).min(n - written - nm);
            let at = period_to - Duration::milliseconds(span)
                + Duration::milliseconds(((written + nm) as i64 * span) / n as i64);
            let mut root: Option<String> = None;
            for _ in 0..len {
                let (author, dept) = authors[rng.gen_range(0..authors.len())].clone();
                let dept = if ch == 0 { dept } else { ch - 1 };
                // Quote a fact of the author's department.
                let f = loop {
                    let f = rng.gen_range(0..facts.len());
                    if chunk_dept[facts[f].chunk] == dept {
                        break f;
                    }
                };
                let fact = &facts[f];
                let body = format!(
                    "From {} : \"{}\" (source: review)",
                    DEPTS[dept], fact.sentence
                );
                let v: Vec<f32> = fact
                    .base
                    .iter()
                    .map(|b| b + rng.gen_range(-0.3..0.3))
                    .collect();
                let id = uuid::Uuid::now_v7().to_string();
                seq[ch] += 1;
                msgs.extend([
                    id.clone().into(),
                    channels[ch].clone().into(),
                    seq[ch].into(),
                    author.into(),
                    root.clone().into(),
                    body.into(),
                    "internal".to_string().into(),
                    false.into(),
                    at.into(),
                    "extractive".to_string().into(),
                ]);
                vecs.extend([
                    id.clone().into(),
                    model.to_string().into(),
                    Quantized::from_f32(&v).encode().into(),
                    at.into(),
                ]);
                cites.extend([
                    id.clone().into(),
                    chunk_ids[fact.chunk].clone().into(),
                    "doc".to_string().into(),
                ]);
                nv += 1;
                nc += 1;
                nm += 1;
                if root.is_none() {
                    root = Some(id);
                }
            }
        }
        let txn = warroom::storage::begin_write(&app.db).await?;
        let backend = app.db.get_database_backend();
        for (table, cols, values, rows) in [
            (
                "messages",
                &[
                    "id",
                    "channel_id",
                    "seq",
                    "author_id",
                    "thread_root",
                    "body",
                    "label",
                    "deleted",
                    "created_at",
                    "brain",
                ][..],
                msgs,
                nm,
            ),
            (
                "message_vectors",
                &["message_id", "model", "vector", "created_at"][..],
                vecs,
                nv,
            ),
            (
                "message_citations",
                &["message_id", "chunk_id", "document_id"][..],
                cites,
                nc,
            ),
        ] {
            // At most ~30,000 bound values per statement.
            let per = (30_000 / cols.len()).min(rows);
            let mut values = values.into_iter();
            let mut left = rows;
            while left > 0 {
                let take = per.min(left);
                let part: Vec<Value> = values.by_ref().take(take * cols.len()).collect();
                txn.execute_raw(stmt(backend, &insert_sql(table, cols, take), part))
                    .await?;
                left -= take;
            }
        }
        txn.commit().await?;
        written += nm;
        bar.set_position(written as u64);
    }
    for (ch, id) in channels.iter().enumerate() {
        exec(
            app,
            "UPDATE channels SET last_seq = $1 WHERE id = $2",
            vec![seq[ch].into(), id.clone().into()],
        )
        .await?;
    }
    Ok(())
}
