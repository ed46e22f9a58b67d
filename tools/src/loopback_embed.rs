//! A loopback OpenAI-compatible embeddings endpoint that answers instantly
//! with hashed bag-of-words vectors (384 dimensions, normalized). Benchmarks
//! and load tests use it to measure the platform rather than the model, as
//! production runs models on separate inference servers. Texts sharing words
//! get similar vectors, so retrieval still finds related chunks.

use std::net::SocketAddr;

use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// Dimensions of the vectors.
pub const DIM: usize = 384;

/// The vector for one text.
pub fn embed(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; DIM];
    for w in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
    {
        let h = warroom_agent_runtime::platform::fnv1a(w.to_lowercase().as_bytes());
        let sign = if h & 1 == 0 { 1.0 } else { -1.0 };
        v[(h >> 1) as usize % DIM] += sign;
        v[(h >> 20) as usize % DIM] += sign * 0.5;
    }
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    } else {
        v[0] = 1.0;
    }
    v
}

async fn embeddings(Json(req): Json<Value>) -> Json<Value> {
    let inputs: Vec<String> = match &req["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => vec![],
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": embed(t)}))
        .collect();
    Json(json!({
        "object": "list",
        "data": data,
        "model": req["model"].as_str().unwrap_or("loopback"),
        "usage": {"prompt_tokens": 0, "total_tokens": 0}
    }))
}

/// Serve on 127.0.0.1 (a free port); returns the base URL including `/v1`.
pub async fn start() -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    let app = Router::new().route("/v1/embeddings", post(embeddings));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}/v1"))
}

/// Point `settings` at a freshly started loopback endpoint.
pub async fn use_in(settings: &mut warroom::config::Settings) -> std::io::Result<()> {
    let url = start().await?;
    let k = &mut settings.knowledge;
    k.embedder = warroom::choice::EmbedderKind::Openai;
    k.openai_base_url = url;
    k.openai_model = "loopback".into();
    k.openai_dim = DIM;
    Ok(())
}
