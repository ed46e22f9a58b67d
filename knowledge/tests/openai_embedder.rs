//! The OpenAI-compatible embedder against a scripted local `/v1/embeddings` server, over
//! real HTTP: batching, ordering by `index`, normalisation, auth header, and refusal of
//! responses with the wrong shape.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use warroom_knowledge::embed::{Embedder, OpenAiEmbedder, OpenAiSettings};

#[derive(Default)]
struct Seen {
    batches: Vec<usize>,
    auth: Vec<String>,
}

async fn serve(dim: usize) -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    async fn embeddings(
        State((seen, dim)): State<(Arc<Mutex<Seen>>, usize)>,
        headers: HeaderMap,
        Json(req): Json<Value>,
    ) -> Json<Value> {
        let inputs: Vec<String> = serde_json::from_value(req["input"].clone()).unwrap();
        {
            let mut s = seen.lock().unwrap();
            s.batches.push(inputs.len());
            s.auth.push(
                headers
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default(),
            );
        }
        // Answer in reverse order: the client must sort by index. Vector i is 2*e_(len % dim).
        let data: Vec<Value> = inputs
            .iter()
            .enumerate()
            .rev()
            .map(|(i, t)| {
                let mut v = vec![0.0f32; dim];
                v[t.len() % dim] = 2.0;
                json!({"object": "embedding", "index": i, "embedding": v})
            })
            .collect();
        Json(
            json!({"object": "list", "data": data, "model": req["model"], "usage": {"prompt_tokens": 1, "total_tokens": 1}}),
        )
    }
    let app = Router::new()
        .route("/v1/embeddings", post(embeddings))
        .with_state((seen.clone(), dim));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), seen)
}

fn settings(base_url: String, dim: usize) -> OpenAiSettings {
    OpenAiSettings {
        base_url,
        model: "test-embed".into(),
        api_key: Some("sk-test".into()),
        dim,
        batch: 3,
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn openai_embedder_batches_orders_and_normalises() {
    let (url, seen) = serve(8).await;
    let e = OpenAiEmbedder::new(settings(url, 8)).unwrap();
    let texts: Vec<String> = ["a", "bb", "ccc", "dddd", "eeeee", "ffffff", "g"]
        .map(String::from)
        .to_vec();
    let v = e.embed(&texts).await.unwrap();
    assert_eq!(v.len(), 7);
    for (t, vec) in texts.iter().zip(&v) {
        assert_eq!(vec[t.len() % 8], 1.0, "in input order and unit length: {t}");
    }
    let s = seen.lock().unwrap();
    assert_eq!(s.batches, vec![3, 3, 1]);
    assert!(s.auth.iter().all(|a| a == "Bearer sk-test"));
}

#[tokio::test]
async fn openai_embedder_refuses_wrong_dimension_and_unreachable_server() {
    let (url, _) = serve(8).await;
    let e = OpenAiEmbedder::new(settings(url, 16)).unwrap();
    let err = e.embed(&["x".to_string()]).await.unwrap_err();
    assert!(err.to_string().contains("dimension"), "{err}");
    let e = OpenAiEmbedder::new(settings("http://127.0.0.1:9/v1".into(), 8)).unwrap();
    assert!(e.embed(&["x".to_string()]).await.is_err());
}
