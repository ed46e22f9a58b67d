//! Reading a GGUF model file: finding it on disk, its metadata, and the
//! tokenizer built from the metadata.

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

use super::{END_OF_TEXT, IM_END, IM_START, SMOLLM2_GGUF};
use crate::brain::BrainError;

/// The `.gguf` file at `path`, or in the directory `path`.
pub(super) fn gguf_path(path: &Path) -> Result<PathBuf, BrainError> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    let preferred = path.join(SMOLLM2_GGUF);
    if preferred.is_file() {
        return Ok(preferred);
    }
    let found = std::fs::read_dir(path)
        .map_err(|e| BrainError::Unavailable(format!("model directory {}: {e}", path.display())))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
        .min();
    found.ok_or_else(|| {
        BrainError::Unavailable(format!(
            "no .gguf model in {}; run `warroom models fetch` or pass the file",
            path.display()
        ))
    })
}

pub(super) fn metadata_u32(content: &gguf_file::Content, key: &str) -> Option<u32> {
    content.metadata.get(key).and_then(|v| v.to_u32().ok())
}

/// GPT-2 byte-level BPE from `tokenizer.ggml.*`, with the ChatML markers as
/// special tokens. Digits are split one by one, as SmolLM2's tokenizer does.
pub(super) fn tokenizer_from_gguf(content: &gguf_file::Content) -> Result<Tokenizer, String> {
    let strings = |key: &str| -> Result<Vec<String>, String> {
        let values = content
            .metadata
            .get(key)
            .ok_or_else(|| format!("GGUF metadata lacks {key}"))?
            .to_vec()
            .map_err(|e| format!("{key}: {e}"))?;
        values
            .iter()
            .map(|v| v.to_string().cloned().map_err(|e| format!("{key}: {e}")))
            .collect()
    };
    let kind = content
        .metadata
        .get("tokenizer.ggml.model")
        .and_then(|v| v.to_string().ok())
        .map(String::as_str);
    if kind != Some("gpt2") {
        return Err(format!(
            "tokenizer {kind:?} is not supported (need gpt2 byte-level BPE)"
        ));
    }
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges = strings("tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| format!("malformed merge {m:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| format!("BPE: {e}"))?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
        Digits::new(true).into(),
        ByteLevel::new(false, true, true).into(),
    ])));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    let specials: Vec<AddedToken> = [END_OF_TEXT, IM_START, IM_END]
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect();
    tokenizer.add_special_tokens(&specials);
    for t in [IM_START, IM_END] {
        if tokenizer.token_to_id(t).is_none() {
            return Err(format!("vocabulary lacks the ChatML token {t}"));
        }
    }
    Ok(tokenizer)
}
