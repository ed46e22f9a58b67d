//! A llama-architecture decoder for quantized GGUF weights, written for fast
//! single-stream CPU decoding. It computes what candle's `quantized_llama`
//! computes (checked token for token), but: the KV cache is allocated once
//! per generation and written in place instead of concatenated per token;
//! keys are stored transposed; grouped-query attention reshapes the queries
//! instead of copying keys and values per head; q/k/v and gate/up are each
//! one fused matrix product; RoPE is one pass over q and k; and only the last
//! position is normalised and projected to logits.
//!
//! Weights are prepared for candle's fastest CPU kernels: Q4_1/Q5_x, which
//! candle multiplies with a scalar loop, become Q8_0 (re-quantizing 4-bit
//! values to 8 bits loses almost nothing); and on CPUs with VNNI, matrices
//! whose input width is not a multiple of 256 (576 for SmolLM2) get zero
//! columns up to the next multiple, which lets candle use its repacked VNNI
//! kernels (about twice as fast, despite the padding).

use std::io::{Read, Seek};
use std::sync::Arc;

use candle_core::quantized::{ggml_file, gguf_file, GgmlDType, QMatMul, QTensor};
use candle_core::{
    bail, CpuStorage, CustomOp1, DType, Device, Layout, Module, Result, Shape, Tensor, D,
};
use candle_transformers::quantized_nn::RmsNorm;

/// Input widths candle's repacked x86 kernels need a multiple of.
const REPACK_K: usize = 256;

/// The loaded weights; immutable, shared by every generation.
pub(super) struct Model {
    embed: QMatMul,
    layers: Vec<Layer>,
    norm: RmsNorm,
    output: QMatMul,
    dim: usize,
    /// Width of the prefill projections' input (equal to `dim` when
    /// padding does not pay).
    padded: usize,
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    inv_freq: Arc<[f32]>,
    /// Longest sequence the model was trained for.
    pub(super) context: usize,
}

struct Layer {
    attn_norm: RmsNorm,
    ffn_norm: RmsNorm,
    down: QMatMul,
    ffn: usize,
    /// Used for single-token steps.
    decode: Projections,
    /// Zero-padded copies for multi-token steps, when padding pays.
    prefill: Option<Projections>,
}

/// The matrices that read the model width.
struct Projections {
    /// Rows: q heads, then k heads, then v heads.
    qkv: QMatMul,
    wo: QMatMul,
    /// Rows: gate, then up.
    gate_up: QMatMul,
}

/// Keys and values of one generation, per layer, filled up to `len`.
/// Keys are stored transposed, `(1, kv heads, head dim, capacity)`, so
/// `q·kᵀ` reads them row by row; values are `(1, kv heads, capacity, head dim)`.
pub(super) struct Cache {
    k: Vec<Tensor>,
    v: Vec<Tensor>,
    len: usize,
    capacity: usize,
}

/// Quantizations candle has no SIMD dot product for on x86.
fn slow_on_cpu(dtype: GgmlDType) -> bool {
    matches!(dtype, GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1)
}

/// Whether candle will pick its repacked VNNI kernels for Q8_0 (mirrors
/// its run-time CPU check, including its override variable).
fn repacked_q8_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let forced_avx2 = std::env::var("MISTRALRS_FORCE_AVX2").as_deref() == Ok("1");
        !forced_avx2
            && ((is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni"))
                || (is_x86_feature_detected!("avxvnni") && is_x86_feature_detected!("avx2")))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One matrix whose rows are the rows of `parts` in order, with input
/// width `k`. Byte-exact when the parts share a fast quantization and no
/// padding is needed; otherwise re-quantized to Q8_0.
fn prepare(parts: Vec<QTensor>, k: usize) -> Result<QTensor> {
    let dtype = parts[0].dtype();
    let mut rows = 0;
    let mut exact = !slow_on_cpu(dtype);
    for p in &parts {
        let (r, c) = p.shape().dims2()?;
        rows += r;
        exact &= p.dtype() == dtype && c == k;
    }
    if exact {
        let mut raw = Vec::new();
        for p in &parts {
            raw.extend_from_slice(&p.data()?);
        }
        return ggml_file::qtensor_from_ggml(dtype, &raw, vec![rows, k], &Device::Cpu);
    }
    let dense = parts
        .iter()
        .map(|p| {
            let d = p.dequantize(&Device::Cpu)?;
            let cols = d.dim(1)?;
            d.pad_with_zeros(1, 0, k - cols)
        })
        .collect::<Result<Vec<_>>>()?;
    QTensor::quantize(&Tensor::cat(&dense, 0)?, GgmlDType::Q8_0)
}

fn md<'a>(ct: &'a gguf_file::Content, key: &str) -> Result<&'a gguf_file::Value> {
    match ct.metadata.get(key) {
        Some(v) => Ok(v),
        None => bail!("GGUF metadata lacks {key}"),
    }
}

fn md_usize(ct: &gguf_file::Content, key: &str) -> Result<usize> {
    Ok(md(ct, key)?.to_u32()? as usize)
}

impl Model {
    /// Reads a llama-architecture model from GGUF.
    pub(super) fn load<R: Read + Seek>(ct: &gguf_file::Content, r: &mut R) -> Result<Self> {
        let arch = md(ct, "general.architecture")?.to_string()?;
        if arch != "llama" {
            bail!("architecture {arch:?} is not supported (need llama)");
        }
        if md_usize(ct, "llama.expert_count").unwrap_or(0) > 1 {
            bail!("mixture-of-experts models are not supported");
        }
        let n_head = md_usize(ct, "llama.attention.head_count")?;
        let n_kv_head = md_usize(ct, "llama.attention.head_count_kv")?;
        let n_layer = md_usize(ct, "llama.block_count")?;
        let dim = md_usize(ct, "llama.embedding_length")?;
        let head_dim = dim / n_head.max(1);
        if n_head == 0
            || n_kv_head == 0
            || n_head % n_kv_head != 0
            || head_dim * n_head != dim
            || head_dim % 2 != 0
        {
            bail!("unsupported head layout: {n_head} heads, {n_kv_head} kv heads, width {dim}");
        }
        if md_usize(ct, "llama.rope.dimension_count").is_ok_and(|d| d != head_dim) {
            bail!("partial rotary embeddings are not supported");
        }
        let eps = md(ct, "llama.attention.layer_norm_rms_epsilon")?.to_f32()? as f64;
        let base = md(ct, "llama.rope.freq_base")
            .and_then(|v| v.to_f32())
            .unwrap_or(10_000.0);
        let context = md_usize(ct, "llama.context_length").unwrap_or(2048);
        let inv_freq: Arc<[f32]> = (0..head_dim / 2)
            .map(|i| 1.0 / base.powf(2.0 * i as f32 / head_dim as f32))
            .collect();
        let padded = if dim % REPACK_K != 0 && repacked_q8_available() {
            dim.div_ceil(REPACK_K) * REPACK_K
        } else {
            dim
        };

        let cpu = Device::Cpu;
        let mut t = |name: &str| ct.tensor(r, name, &cpu);
        // The output matrix is never padded: it is only applied to one
        // position, and at its size (vocab rows) memory bandwidth decides.
        let embed = Arc::new(prepare(vec![t("token_embd.weight")?], dim)?);
        let output = match t("output.weight") {
            Ok(w) => Arc::new(prepare(vec![w], dim)?),
            Err(_) => embed.clone(),
        };
        let norm = RmsNorm::from_qtensor(t("output_norm.weight")?, eps)?;
        let mut layers = Vec::with_capacity(n_layer);
        for i in 0..n_layer {
            let name = |part: &str| format!("blk.{i}.{part}.weight");
            let mut projections = |k: usize| -> Result<Projections> {
                let qkv = vec![
                    t(&name("attn_q"))?,
                    t(&name("attn_k"))?,
                    t(&name("attn_v"))?,
                ];
                let gate_up = vec![t(&name("ffn_gate"))?, t(&name("ffn_up"))?];
                Ok(Projections {
                    qkv: QMatMul::from_qtensor(prepare(qkv, k)?)?,
                    wo: QMatMul::from_qtensor(prepare(vec![t(&name("attn_output"))?], k)?)?,
                    gate_up: QMatMul::from_qtensor(prepare(gate_up, k)?)?,
                })
            };
            let decode = projections(dim)?;
            let prefill = if padded != dim {
                Some(projections(padded)?)
            } else {
                None
            };
            let down = t(&name("ffn_down"))?;
            let ffn = down.shape().dims2()?.1;
            layers.push(Layer {
                attn_norm: RmsNorm::from_qtensor(t(&name("attn_norm"))?, eps)?,
                ffn_norm: RmsNorm::from_qtensor(t(&name("ffn_norm"))?, eps)?,
                down: QMatMul::from_qtensor(prepare(vec![down], ffn)?)?,
                ffn,
                decode,
                prefill,
            });
        }
        Ok(Self {
            embed: QMatMul::from_arc(embed)?,
            layers,
            norm,
            output: QMatMul::from_arc(output)?,
            dim,
            padded,
            n_head,
            n_kv_head,
            head_dim,
            inv_freq,
            context,
        })
    }

    /// An empty cache for up to `capacity` positions.
    pub(super) fn cache(&self, capacity: usize) -> Result<Cache> {
        let (nkv, hd) = (self.n_kv_head, self.head_dim);
        let zeros = |shape: (usize, usize, usize, usize)| {
            (0..self.layers.len())
                .map(|_| Tensor::zeros(shape, DType::F32, &Device::Cpu))
                .collect::<Result<Vec<_>>>()
        };
        Ok(Cache {
            k: zeros((1, nkv, hd, capacity))?,
            v: zeros((1, nkv, capacity, hd))?,
            len: 0,
            capacity,
        })
    }

    /// Runs `ids` after the cached positions; returns the logits of the
    /// next token, shape `(vocab,)`.
    pub(super) fn forward(&self, ids: &[u32], cache: &mut Cache) -> Result<Tensor> {
        let (seq, pos) = (ids.len(), cache.len);
        if seq == 0 || pos + seq > cache.capacity {
            bail!(
                "{seq} tokens after {pos} do not fit a cache of {}",
                cache.capacity
            );
        }
        let (nh, nkv, hd) = (self.n_head, self.n_kv_head, self.head_dim);
        let n_rep = nh / nkv;
        let total = pos + seq;
        let rope = Rope {
            pos,
            inv_freq: self.inv_freq.clone(),
            head_dim: hd,
            q_heads: nh,
            rotated_heads: nh + nkv,
            q_scale: 1.0 / (hd as f32).sqrt(),
        };
        let mask = if seq > 1 {
            Some(causal_mask(seq, pos)?)
        } else {
            None
        };
        let mut h = self
            .embed
            .embedding(&Tensor::new(ids, &Device::Cpu)?)?
            .unsqueeze(0)?;
        for (l, layer) in self.layers.iter().enumerate() {
            let (proj, pad) = match &layer.prefill {
                Some(wide) if seq > 1 => (wide, self.padded - self.dim),
                _ => (&layer.decode, 0),
            };
            let pad = |x: Tensor| {
                if pad == 0 {
                    Ok(x)
                } else {
                    x.pad_with_zeros(D::Minus1, 0, pad)
                }
            };
            let x = pad(layer.attn_norm.forward(&h)?)?;
            let qkv = proj.qkv.forward(&x)?.apply_op1_no_bwd(&rope)?;
            let q = qkv.narrow(2, 0, nh * hd)?;
            let k = qkv
                .narrow(2, nh * hd, nkv * hd)?
                .reshape((1, seq, nkv, hd))?;
            let v = qkv
                .narrow(2, (nh + nkv) * hd, nkv * hd)?
                .reshape((1, seq, nkv, hd))?;
            cache.k[l].slice_set(&k.permute((0, 2, 3, 1))?.contiguous()?, 3, pos)?;
            cache.v[l].slice_set(&v.transpose(1, 2)?.contiguous()?, 2, pos)?;
            let keys = cache.k[l].narrow(3, 0, total)?;
            let values = cache.v[l].narrow(2, 0, total)?;
            // Queries grouped by the kv head they share: (1, kv heads, n_rep * seq, head dim).
            let q =
                q.reshape((1, seq, nh, hd))?
                    .transpose(1, 2)?
                    .reshape((1, nkv, n_rep * seq, hd))?;
            let mut att = q.matmul(&keys)?;
            if let Some(mask) = &mask {
                att = att
                    .reshape((1, nkv, n_rep, seq, total))?
                    .broadcast_add(mask)?
                    .reshape((1, nkv, n_rep * seq, total))?;
            }
            let y = softmax_last_dim(&att)?
                .matmul(&values)?
                .reshape((1, nh, seq, hd))?
                .transpose(1, 2)?
                .reshape((1, seq, nh * hd))?;
            h = (proj.wo.forward(&pad(y)?)? + h)?;

            let x = pad(layer.ffn_norm.forward(&h)?)?;
            let gu = proj.gate_up.forward(&x)?;
            let act =
                (gu.narrow(2, 0, layer.ffn)?.silu()? * gu.narrow(2, layer.ffn, layer.ffn)?)?;
            h = (layer.down.forward(&act)? + h)?;
        }
        cache.len = total;
        let last = self.norm.forward(&h.narrow(1, seq - 1, 1)?)?;
        self.output.forward(&last)?.flatten_all()
    }
}

/// Additive mask `(seq, pos + seq)`: query `i` (at `pos + i`) sees keys up to itself.
fn causal_mask(seq: usize, pos: usize) -> Result<Tensor> {
    let total = pos + seq;
    let mask: Vec<f32> = (0..seq)
        .flat_map(|i| (0..total).map(move |j| if j > pos + i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(mask, (seq, total), &Device::Cpu)
}

fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let e = x.broadcast_sub(&x.max_keepdim(D::Minus1)?)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// Interleaved rotary embedding (GGUF llama layout) applied in one pass to
/// the q and k heads of a fused `(1, seq, heads * head_dim)` projection;
/// q heads are also scaled by `1/sqrt(head_dim)`. v heads pass through.
struct Rope {
    pos: usize,
    inv_freq: Arc<[f32]>,
    head_dim: usize,
    q_heads: usize,
    rotated_heads: usize,
    q_scale: f32,
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "fused-rope"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("fused-rope needs a contiguous input");
        };
        let src = &storage.as_slice::<f32>()?[start..end];
        let (_, seq, width) = layout.shape().dims3()?;
        let hd = self.head_dim;
        let mut dst = src.to_vec();
        for s in 0..seq {
            let p = (self.pos + s) as f32;
            let (sin, cos): (Vec<f32>, Vec<f32>) =
                self.inv_freq.iter().map(|f| (p * f).sin_cos()).unzip();
            let row = &mut dst[s * width..(s + 1) * width];
            for (head, x) in row
                .chunks_exact_mut(hd)
                .take(self.rotated_heads)
                .enumerate()
            {
                let scale = if head < self.q_heads {
                    self.q_scale
                } else {
                    1.0
                };
                for (i, pair) in x.chunks_exact_mut(2).enumerate() {
                    let (a, b) = (pair[0], pair[1]);
                    pair[0] = (a * cos[i] - b * sin[i]) * scale;
                    pair[1] = (a * sin[i] + b * cos[i]) * scale;
                }
            }
        }
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::gguf_file;

    use crate::brain::local::{chatml, LocalBrain, SMOLLM2, SMOLLM2_GGUF};

    /// Our decoder against candle's `quantized_llama` on the real model (when
    /// installed): same next token at every step of a short greedy run, and
    /// logits within quantization noise.
    #[test]
    fn decoder_agrees_with_candle_quantized_llama() {
        use candle_core::{Device, Tensor, D};
        use candle_transformers::models::quantized_llama::ModelWeights;
        use warroom_knowledge::models::{default_models_dir, is_present, model_dir};

        let models = default_models_dir();
        if !is_present(&models, &SMOLLM2) {
            eprintln!(
                "skipping: {} not installed in {}",
                SMOLLM2.name,
                models.display()
            );
            return;
        }
        let path = model_dir(&models, &SMOLLM2).join(SMOLLM2_GGUF);
        let brain = LocalBrain::load(&path, 1).expect("our decoder loads");
        let mut file = std::fs::File::open(&path).expect("open");
        let content = gguf_file::Content::read(&mut file).expect("gguf");
        let mut reference =
            ModelWeights::from_gguf(content, &mut file, &Device::Cpu).expect("candle loads");

        let prompt = chatml(
            "You are Ada, an engineer.",
            "When does firmware 2.4 ship? Be brief.",
        );
        let mut ids = brain.encode(&prompt).expect("encode");
        let mut cache = brain.inner.cache(ids.len() + 8).expect("cache");
        let mut ours = brain.inner.prefill(&ids, &mut cache).expect("prefill");
        let input = Tensor::new(ids.as_slice(), &Device::Cpu).and_then(|t| t.unsqueeze(0));
        let mut theirs = reference
            .forward(&input.expect("input"), 0)
            .expect("forward");
        for step in 0..8 {
            let theirs_1d = theirs.flatten_all().expect("flatten");
            let top = |t: &Tensor| t.argmax(D::Minus1).and_then(|i| i.to_scalar::<u32>());
            let next = top(&theirs_1d).expect("argmax");
            assert_eq!(top(&ours).expect("argmax"), next, "step {step}");
            let diff = (&ours - &theirs_1d)
                .and_then(|d| d.abs())
                .and_then(|d| d.mean_all())
                .and_then(|d| d.to_scalar::<f32>())
                .expect("diff");
            assert!(diff < 1.0, "step {step}: mean logit difference {diff}");
            ours = brain.inner.forward(&[next], &mut cache).expect("step");
            let input = Tensor::new(&[next], &Device::Cpu).and_then(|t| t.unsqueeze(0));
            theirs = reference
                .forward(&input.expect("input"), ids.len())
                .expect("step");
            ids.push(next);
        }
    }
}
