//! The engine behind a [`LocalBrain`](super::LocalBrain): the loaded model
//! and tokenizer, chunked prefill, the seeded sampling loop and greedy
//! decoding for benchmarks.

use std::path::PathBuf;
use std::sync::Mutex;

use candle_core::{Tensor, D};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use tokenizers::Tokenizer;

use super::llama;
use crate::brain::BrainError;

/// Sampling: temperature, then the top-k tokens, then the nucleus (top-p).
const TEMPERATURE: f64 = 0.7;
const TOP_K: usize = 40;
const TOP_P: f64 = 0.9;
/// Penalty on tokens among the last `REPEAT_LAST_N` generated ones (small
/// models loop without it).
const REPEAT_PENALTY: f32 = 1.1;
const REPEAT_LAST_N: usize = 64;
/// Prompt tokens per forward pass during prefill.
const PREFILL_CHUNK: usize = 128;

/// The loaded model and tokenizer; immutable (each generation has its own
/// KV cache).
pub(super) struct Engine {
    pub(super) model: llama::Model,
    pub(super) tokenizer: Tokenizer,
    /// Tokens that end a generation.
    pub(super) stops: Vec<u32>,
    /// Prompt plus reply, at most.
    pub(super) context: usize,
    /// One generation at a time.
    pub(super) gate: Mutex<()>,
    pub(super) path: PathBuf,
}

fn failed(what: &str) -> impl Fn(candle_core::Error) -> BrainError + '_ {
    move |e| BrainError::Failed(format!("{what}: {e}"))
}

impl Engine {
    pub(super) fn encode(&self, text: &str) -> Result<Vec<u32>, BrainError> {
        self.tokenizer
            .encode(text, false)
            .map(|enc| enc.get_ids().to_vec())
            .map_err(|e| BrainError::Failed(format!("tokenize: {e}")))
    }

    pub(super) fn decode(&self, ids: &[u32]) -> Result<String, BrainError> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| BrainError::Failed(format!("detokenize: {e}")))
    }

    pub(super) fn cache(&self, capacity: usize) -> Result<llama::Cache, BrainError> {
        self.model.cache(capacity).map_err(failed("KV cache"))
    }

    /// Runs the prompt in chunks (attention then skips most of the masked
    /// half of the square, and temporaries stay small); returns the logits of
    /// the token after it.
    pub(super) fn prefill(
        &self,
        ids: &[u32],
        cache: &mut llama::Cache,
    ) -> Result<Tensor, BrainError> {
        let mut logits = None;
        for part in ids.chunks(PREFILL_CHUNK) {
            logits = Some(self.forward(part, cache)?);
        }
        logits.ok_or(BrainError::NothingToSay)
    }

    /// Logits of the token after `ids`, which follow the cached positions.
    pub(super) fn forward(
        &self,
        ids: &[u32],
        cache: &mut llama::Cache,
    ) -> Result<Tensor, BrainError> {
        self.model.forward(ids, cache).map_err(failed("forward"))
    }

    /// Samples up to `max_tokens` tokens after the prompt; stops at a stop token.
    pub(super) fn generate(
        &self,
        prompt: &[u32],
        max_tokens: usize,
        seed: u64,
    ) -> Result<Vec<u32>, BrainError> {
        if prompt.is_empty() {
            return Err(BrainError::NothingToSay);
        }
        let max_tokens = max_tokens.min(self.context.saturating_sub(prompt.len()));
        if max_tokens == 0 {
            return Err(BrainError::Failed(format!(
                "prompt of {} tokens leaves no room in the {}-token context",
                prompt.len(),
                self.context
            )));
        }
        let _one_at_a_time = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        let mut cache = self.cache(prompt.len() + max_tokens)?;
        let mut sampler = LogitsProcessor::from_sampling(
            seed,
            Sampling::TopKThenTopP {
                k: TOP_K,
                p: TOP_P,
                temperature: TEMPERATURE,
            },
        );
        let mut logits = self.prefill(prompt, &mut cache)?;
        let mut out: Vec<u32> = Vec::with_capacity(max_tokens);
        loop {
            let recent = &out[out.len().saturating_sub(REPEAT_LAST_N)..];
            let logits_now =
                candle_transformers::utils::apply_repeat_penalty(&logits, REPEAT_PENALTY, recent)
                    .map_err(failed("repeat penalty"))?;
            let next = sampler.sample(&logits_now).map_err(failed("sample"))?;
            if self.stops.contains(&next) {
                break;
            }
            out.push(next);
            if out.len() >= max_tokens {
                break;
            }
            logits = self.forward(&[next], &mut cache)?;
        }
        Ok(out)
    }

    /// Greedy decoding of exactly `n` tokens after the cached ones.
    pub(super) fn greedy_decode(
        &self,
        cache: &mut llama::Cache,
        mut logits: Tensor,
        n: usize,
    ) -> Result<(), BrainError> {
        for _ in 0..n {
            let next = logits
                .argmax(D::Minus1)
                .and_then(|t| t.to_scalar::<u32>())
                .map_err(failed("argmax"))?;
            logits = self.forward(&[next], cache)?;
        }
        Ok(())
    }

    /// `n` token ids of ordinary English text, for benchmarks.
    pub(super) fn synthetic_prompt(&self, n: usize) -> Result<Vec<u32>, BrainError> {
        const TEXT: &str = "The quarterly review found that the supplier shipped the sensor \
            modules two weeks late, which pushed the firmware release and raised support tickets \
            from customers in three regions. Finance expects the delay to cost about four percent \
            of the margin unless operations finds a second source before the next build. ";
        let unit = self.encode(TEXT)?;
        Ok(unit.iter().copied().cycle().take(n).collect())
    }
}
