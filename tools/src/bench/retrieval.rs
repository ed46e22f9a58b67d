//! `warroom bench retrieval`: embedding and ingest throughput, and scoped query latency and
//! recall at large sizes, each beside an exact brute-force scan as the reference.
//!
//! - Embedding: the local all-MiniLM-L6-v2 over the sample company's chunks (or synthetic
//!   text when the samples are not found), word pieces per second.
//! - Ingest: chunking, embedding, BM25 and indexing into qdrant-edge, chunks per second.
//! - Size sweep: synthetic clustered 384-d vectors with department and label payloads,
//!   HNSW built by qdrant-edge, queried under a scope filter (two of eight departments,
//!   at most `confidential`); the same queries run as an exact scan over the same points,
//!   giving the speed ratio and recall@10 against exact.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use serde_json::json;
use warroom_knowledge::chunker::{self, ChunkOptions, TokenCounter};
use warroom_knowledge::document;
use warroom_knowledge::embed::{Embedder, MiniLm};
use warroom_knowledge::models;
use warroom_knowledge::sparse::{self, SparseVector};
use warroom_knowledge::store::edge::EdgeOptions;
use warroom_knowledge::store::{
    ChunkFilter, ChunkPayload, ChunkPoint, EdgeStore, ExactStore, VectorStore,
};

/// Options of `warroom bench retrieval`.
#[derive(clap::Args, Debug, Clone)]
pub struct RetrievalBenchArgs {
    /// Corpus sizes (chunks) for the latency and recall sweep.
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    pub sizes: Vec<usize>,
    /// Queries per size.
    #[arg(long, default_value_t = 200)]
    pub queries: usize,
    /// Sample documents to embed for the throughput figures.
    #[arg(long, default_value = "samples/company")]
    pub corpus: PathBuf,
    /// Write the results here as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Where the benchmark's vector stores live (default: a temporary directory).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

const DIM: usize = 384;
const DEPTS: [&str; 8] = [
    "sales",
    "marketing",
    "engineering",
    "operations",
    "finance",
    "hr",
    "legal",
    "support",
];

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{{bar:40}} {{pos}}/{{len}} {what} {{elapsed_precise}} eta {{eta}}"
        ))
        .expect("static template"),
    );
    b
}

/// Chunk texts from the sample corpus, or synthetic text when it is missing.
fn sample_chunks(dir: &std::path::Path, counter: &dyn TokenCounter) -> Vec<String> {
    let mut texts = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&p) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "md") {
                let Ok(bytes) = std::fs::read(&path) else {
                    continue;
                };
                let Ok(doc) = document::parse(&path.to_string_lossy(), &bytes, &Default::default())
                else {
                    continue;
                };
                for c in chunker::chunk(&doc, &ChunkOptions::default(), counter) {
                    texts.push(c.embed_text(&doc.title));
                }
            }
        }
    }
    if texts.is_empty() {
        let words = [
            "revenue", "supplier", "delay", "contract", "renewal", "budget", "churn", "hiring",
            "defect", "launch",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let n = rng.gen_range(20..180);
            texts.push(
                (0..n)
                    .map(|_| words[rng.gen_range(0..words.len())])
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
    }
    texts
}

/// Clustered unit vectors: real embeddings are far from uniform (uniform random vectors in
/// 384 dimensions have no near neighbours to find). 2,048 topic centres; each point is a
/// centre plus noise about half its length.
struct Synth {
    centers: Vec<Vec<f32>>,
    rng: rand::rngs::StdRng,
}

impl Synth {
    fn new(seed: u64) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let centers = (0..2048)
            .map(|_| unit((0..DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect()))
            .collect();
        Self { centers, rng }
    }

    fn vector(&mut self) -> Vec<f32> {
        let c = &self.centers[self.rng.gen_range(0..self.centers.len())];
        unit(
            c.iter()
                .map(|x| x + self.rng.gen_range(-0.045f32..0.045))
                .collect(),
        )
    }
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
    v
}

fn scope_filter() -> ChunkFilter {
    ChunkFilter {
        departments: Some(vec!["sales".into(), "finance".into()]),
        ..ChunkFilter::clearance(2, vec!["sales".into(), "finance".into()])
    }
}

pub async fn run(args: RetrievalBenchArgs) -> anyhow::Result<()> {
    let work = match &args.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            tempfile::tempdir_in(d)?
        }
        None => tempfile::tempdir()?,
    };

    // ---- embedding and ingest throughput ------------------------------------------------
    let model_dir = tokio::task::spawn_blocking(|| {
        models::ensure(&models::default_models_dir(), &models::MINILM)
    })
    .await??;
    let model = Arc::new(MiniLm::load(&model_dir)?);
    let texts = sample_chunks(&args.corpus, model.as_ref());
    let tokens: usize = model.token_lengths(&texts)?.iter().sum();
    let _ = model.embed(&texts[..texts.len().min(16)]).await?; // warm-up
    let t = Instant::now();
    let vectors = model.embed(&texts).await?;
    let embed_secs = t.elapsed().as_secs_f64();
    let embed_tokens_per_s = tokens as f64 / embed_secs;
    let embed_chunks_per_s = texts.len() as f64 / embed_secs;
    // Reference: one text per forward pass (no batching), on a sample.
    let sample = &texts[..texts.len().min(48)];
    let sample_tokens: usize = model.token_lengths(sample)?.iter().sum();
    let t = Instant::now();
    for s in sample {
        model.embed(std::slice::from_ref(s)).await?;
    }
    let unbatched_tokens_per_s = sample_tokens as f64 / t.elapsed().as_secs_f64();
    println!(
        "embedding: {} chunks, {tokens} word pieces in {embed_secs:.2} s = {embed_tokens_per_s:.0} tokens/s ({embed_chunks_per_s:.1} chunks/s); one-at-a-time reference {unbatched_tokens_per_s:.0} tokens/s; ratio {:.2}",
        texts.len(),
        embed_tokens_per_s / unbatched_tokens_per_s
    );
    // Indexing alone (vectors in hand): BM25 plus qdrant-edge upsert.
    let store = EdgeStore::open(&work.path().join("ingest"), DIM, Default::default())?;
    let t = Instant::now();
    let points: Vec<ChunkPoint> = texts
        .iter()
        .zip(&vectors)
        .map(|(text, v)| ChunkPoint {
            dense: v.clone(),
            sparse: sparse::document(text),
            payload: ChunkPayload {
                chunk_id: uuid::Uuid::new_v4(),
                document_id: "bench".into(),
                collection: "company".into(),
                department: "sales".into(),
                tags: vec![],
                level: 1,
                compartments: vec![],
            },
        })
        .collect();
    store.upsert(points).await?;
    let index_secs = t.elapsed().as_secs_f64();
    let ingest_chunks_per_s = texts.len() as f64 / (embed_secs + index_secs);
    println!(
        "ingest: embed + BM25 + index {} chunks in {:.2} s = {ingest_chunks_per_s:.1} chunks/s (indexing alone {:.0} chunks/s)",
        texts.len(),
        embed_secs + index_secs,
        texts.len() as f64 / index_secs
    );
    drop(store);

    // ---- size sweep ---------------------------------------------------------------------
    let mut runs = Vec::new();
    for &size in &args.sizes {
        let mut synth = Synth::new(size as u64);
        let edge = EdgeStore::open(
            &work.path().join(format!("n{size}")),
            DIM,
            EdgeOptions {
                flush_each_write: false,
                ..Default::default()
            },
        )?;
        let exact = ExactStore::new();
        let b = bar(size as u64, "chunks indexed");
        let t = Instant::now();
        let mut rng = rand::rngs::StdRng::seed_from_u64(size as u64 ^ 0x5eed);
        let mut done = 0;
        while done < size {
            let n = (size - done).min(2000);
            let batch: Vec<ChunkPoint> = (0..n)
                .map(|_| {
                    let dept = DEPTS[rng.gen_range(0..DEPTS.len())];
                    let level = rng.gen_range(0..4);
                    ChunkPoint {
                        dense: synth.vector(),
                        sparse: SparseVector::default(),
                        payload: ChunkPayload {
                            chunk_id: uuid::Uuid::new_v4(),
                            document_id: format!("doc-{}", rng.gen_range(0..size / 20 + 1)),
                            collection: "company".into(),
                            department: dept.into(),
                            tags: vec![],
                            level,
                            compartments: if level == 3 {
                                vec![dept.to_string()]
                            } else {
                                vec![]
                            },
                        },
                    }
                })
                .collect();
            exact.upsert(batch.clone()).await?;
            edge.upsert(batch).await?;
            done += n;
            b.set_position(done as u64);
        }
        b.finish_and_clear();
        let load_secs = t.elapsed().as_secs_f64();
        let t = Instant::now();
        println!("n = {size}: loaded in {load_secs:.1} s; building HNSW ...");
        edge.optimize().await?;
        let build_secs = t.elapsed().as_secs_f64();
        let filter = scope_filter();
        let permitted = exact.count(&filter).await?;
        let mut lat = Vec::new();
        let mut exact_lat = Vec::new();
        let mut recall_sum = 0.0;
        let qs: Vec<Vec<f32>> = (0..args.queries).map(|_| synth.vector()).collect();
        // Warm-up.
        for q in qs.iter().take(5) {
            edge.search_dense(q, &filter, 10).await?;
        }
        for q in &qs {
            let t = Instant::now();
            let got = edge.search_dense(q, &filter, 10).await?;
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
            let t = Instant::now();
            let truth = exact.search_dense(q, &filter, 10).await?;
            exact_lat.push(t.elapsed().as_secs_f64() * 1000.0);
            let truth: std::collections::HashSet<_> = truth.iter().map(|h| h.chunk_id).collect();
            let found = got.iter().filter(|h| truth.contains(&h.chunk_id)).count();
            recall_sum += found as f64 / truth.len().max(1) as f64;
        }
        lat.sort_by(f64::total_cmp);
        exact_lat.sort_by(f64::total_cmp);
        let (p50, p99) = (pct(&lat, 0.5), pct(&lat, 0.99));
        let exact_p50 = pct(&exact_lat, 0.5);
        let recall = recall_sum / qs.len() as f64;
        println!(
            "n = {size}: scope admits {permitted} chunks; HNSW build {build_secs:.1} s; p50 {p50:.2} ms, p99 {p99:.2} ms; exact scan p50 {exact_p50:.2} ms; speedup {:.1}x; recall@10 vs exact {recall:.3}",
            exact_p50 / p50
        );
        runs.push(json!({
            "chunks": size,
            "p50_ms": p50,
            "p99_ms": p99,
            "recall_at_10": recall,
            "exact_p50_ms": exact_p50,
            "speedup": exact_p50 / p50,
            "load_seconds": load_secs,
            "hnsw_build_seconds": build_secs,
            "scope_admits": permitted,
        }));
        drop(edge);
        drop(exact);
        let _ = std::fs::remove_dir_all(work.path().join(format!("n{size}")));
    }
    let out = json!({
        "embed_tokens_per_s": embed_tokens_per_s,
        "embed_chunks_per_s": embed_chunks_per_s,
        "embed_unbatched_tokens_per_s": unbatched_tokens_per_s,
        "ingest_chunks_per_s": ingest_chunks_per_s,
        "embed_corpus_chunks": texts.len(),
        "runs": runs,
    });
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&out)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
