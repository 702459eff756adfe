//! The decoder every family runs (see `config.rs` for what differs), over
//! a ragged batch: the tokens of every scheduled sequence are stacked into
//! one matrix, so each projection and MLP reads its weights once per step
//! for the whole batch; attention runs per token over its own sequence's
//! KV cache, at its own positions, within its layer's window.
//!
//! Which optional pieces a layer has (Q/K/V biases, per-head Q/K norms,
//! post-norms, fused QKV or gate|up) follows from the tensors the file
//! holds, so a family differs only in its `Variant`.

use super::config::{Activation, ModelConfig};
use super::linear::{Linear, WeightFormat};
use super::ops::{
    add_scaled, block_scores, geglu, rms_norm, rms_norm_heads, softcap, softmax_in_place, swiglu, weighted_sum,
    RopeTable,
};
use crate::gguf::GgufFile;
use crate::kv_cache::{BlockId, KvStore, BLOCK_SIZE};
use crate::EngineError;
use candle_core::Device;
use wide::f32x8;

struct Layer {
    attn_norm: Vec<f32>,
    qkv: Linear,
    /// Per-head RMS norms of queries and keys (Qwen 3, Gemma 3).
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    o: Linear,
    /// Norms of the attention and MLP outputs before the residual (Gemma).
    post_attn_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    gate_up: Linear,
    down: Linear,
    post_ffn_norm: Option<Vec<f32>>,
    /// Index into `Decoder::ropes`.
    rope: usize,
}

pub struct Decoder {
    cfg: ModelConfig,
    embed: TokenEmbeddings,
    layers: Vec<Layer>,
    norm: Vec<f32>,
    lm_head: Linear,
    /// One table per distinct (base, scale) among the layers.
    ropes: Vec<RopeTable>,
}

/// The token-embedding table: f32 with `Native` weights (the reference),
/// bfloat16 with `Fast` ones (half the memory: 56 MB instead of 113 for
/// this model; perplexity in BENCHMARKS.md).
enum TokenEmbeddings {
    F32(Vec<f32>),
    Bf16(Vec<u16>),
}

impl TokenEmbeddings {
    /// Appends token `tok`'s row (`d` wide) to `x`.
    fn push_row(&self, tok: usize, d: usize, x: &mut Vec<f32>) {
        match self {
            TokenEmbeddings::F32(t) => x.extend_from_slice(&t[tok * d..(tok + 1) * d]),
            TokenEmbeddings::Bf16(t) => x.extend(t[tok * d..(tok + 1) * d].iter().map(|b| super::bf16::from_bf16(*b))),
        }
    }
}

/// One sequence's share of a step: `tokens` sit at positions `start..`,
/// after the `start` positions already in its blocks. Logits come back
/// only where asked for (the last prefill chunk and decode steps), for the
/// last token.
pub struct BatchItem<'a> {
    pub tokens: &'a [u32],
    pub start: usize,
    /// The sequence's block table; it must cover `start + tokens.len()`.
    pub blocks: &'a [BlockId],
    pub want_logits: bool,
    /// Positions below this are prompt, the rest generated. The two take
    /// different kernels (each batch-invariant); deciding by position means
    /// a sequence recomputed after preemption gets the very same values.
    pub prompt_end: usize,
}

impl BatchItem<'_> {
    fn is_prompt(&self, pos: usize) -> bool {
        pos < self.prompt_end
    }
}

/// The logits of one step: a row of `vocab` values for each batch item
/// that asked for them.
pub struct StepLogits {
    values: Vec<f32>,
    vocab: usize,
    /// Per batch item, its row in `values`.
    row_of: Vec<Option<usize>>,
}

impl StepLogits {
    /// The logits of batch item `item`, if it asked for them.
    pub fn row(&self, item: usize) -> Option<&[f32]> {
        self.values.get(self.span(item)?)
    }

    /// The same, mutable (samplers adjust logits in place).
    pub fn row_mut(&mut self, item: usize) -> Option<&mut [f32]> {
        let span = self.span(item)?;
        self.values.get_mut(span)
    }

    fn span(&self, item: usize) -> Option<std::ops::Range<usize>> {
        let r = self.row_of.get(item).copied().flatten()?;
        Some(r * self.vocab..(r + 1) * self.vocab)
    }
}

fn vec_f32(file: &mut GgufFile, name: &str) -> Result<Vec<f32>, EngineError> {
    let t = file.tensor(name)?;
    t.dequantize(&Device::Cpu)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| EngineError::Model(format!("{name}: {e}")))
}

fn opt_vec_f32(file: &mut GgufFile, name: &str) -> Result<Option<Vec<f32>>, EngineError> {
    if file.has_tensor(name) {
        vec_f32(file, name).map(Some)
    } else {
        Ok(None)
    }
}

/// A norm's weights, checked against the width it normalises.
fn norm(file: &mut GgufFile, name: &str, width: usize) -> Result<Option<Vec<f32>>, EngineError> {
    let w = opt_vec_f32(file, name)?;
    match &w {
        Some(v) if v.len() != width => {
            Err(EngineError::Model(format!("{name} has {} values, expected {width}", v.len())))
        }
        _ => Ok(w),
    }
}

fn required(w: Option<Vec<f32>>, name: &str) -> Result<Vec<f32>, EngineError> {
    w.ok_or_else(|| EngineError::Model(format!("tensor '{name}' is missing")))
}

impl Decoder {
    pub fn load(
        file: &mut GgufFile,
        cfg: ModelConfig,
        format: WeightFormat,
        max_positions: usize,
    ) -> Result<Self, EngineError> {
        let (d, hd) = (cfg.n_embd, cfg.head_dim);
        let embed = vec_f32(file, "token_embd.weight")?;
        if embed.len() != cfg.vocab_size * d {
            return Err(EngineError::Model(format!(
                "token_embd.weight has {} values, expected {} x {}",
                embed.len(),
                cfg.vocab_size,
                d
            )));
        }
        // `SWITCHYARD_KERNELS=f32` keeps everything as before, to compare.
        let embed = match format {
            WeightFormat::Fast if !super::cpu::f32_prompt_weights() => {
                TokenEmbeddings::Bf16(embed.iter().map(|v| super::bf16::to_bf16(*v)).collect())
            }
            _ => TokenEmbeddings::F32(embed),
        };
        // Llama 3.1's `rope_freqs` and Phi-3's LongRoPE short factors divide the frequencies.
        let freq_factors = match opt_vec_f32(file, "rope_freqs.weight")? {
            Some(f) => Some(f),
            None => opt_vec_f32(file, "rope_factors_short.weight")?,
        };
        if let Some(f) = &freq_factors {
            if f.len() != hd / 2 {
                return Err(EngineError::Model(format!("rope frequency factors: {} values, expected {}", f.len(), hd / 2)));
            }
        }
        let mut ropes: Vec<RopeTable> = Vec::new();
        let mut rope_keys: Vec<(f32, f32)> = Vec::new();
        let (q_w, kv_w) = (cfg.q_width(), cfg.kv_width());
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for (i, attn) in cfg.variant.layers.iter().enumerate() {
            let name = |s: &str| format!("blk.{i}.{s}");
            let rope = match rope_keys.iter().position(|k| *k == (attn.rope_theta, attn.rope_scale)) {
                Some(r) => r,
                None => {
                    rope_keys.push((attn.rope_theta, attn.rope_scale));
                    ropes.push(RopeTable::new(hd, max_positions, attn.rope_theta, attn.rope_scale, freq_factors.as_deref()));
                    ropes.len() - 1
                }
            };
            let bias = |file: &mut GgufFile, parts: &[&str]| -> Result<Option<Vec<f32>>, EngineError> {
                let mut all = Vec::new();
                for p in parts {
                    match opt_vec_f32(file, &name(&format!("{p}.bias")))? {
                        Some(b) => all.extend(b),
                        None => return Ok(None),
                    }
                }
                Ok(Some(all))
            };
            // Phi-3 stores q|k|v as one tensor; the others as three.
            let (qkv, qkv_bias) = if file.has_tensor(&name("attn_qkv.weight")) {
                (Linear::stacked(vec![file.tensor(&name("attn_qkv.weight"))?], format)?, bias(file, &["attn_qkv"])?)
            } else {
                let parts = vec![
                    file.tensor(&name("attn_q.weight"))?,
                    file.tensor(&name("attn_k.weight"))?,
                    file.tensor(&name("attn_v.weight"))?,
                ];
                (Linear::stacked(parts, format)?, bias(file, &["attn_q", "attn_k", "attn_v"])?)
            };
            // Phi-3 stores gate|up as one `ffn_up` of twice the rows.
            let gate_up = if file.has_tensor(&name("ffn_gate.weight")) {
                Linear::stacked(vec![file.tensor(&name("ffn_gate.weight"))?, file.tensor(&name("ffn_up.weight"))?], format)?
            } else {
                Linear::stacked(vec![file.tensor(&name("ffn_up.weight"))?], format)?
            };
            let o = Linear::stacked(vec![file.tensor(&name("attn_output.weight"))?], format)?;
            let down = Linear::stacked(vec![file.tensor(&name("ffn_down.weight"))?], format)?;
            let shapes = [
                ("attn_q/k/v", qkv.out_dim(), q_w + 2 * kv_w, qkv.in_dim(), d),
                ("attn_output", o.out_dim(), d, o.in_dim(), q_w),
                ("ffn_gate/up", gate_up.out_dim(), 2 * cfg.n_ff, gate_up.in_dim(), d),
                ("ffn_down", down.out_dim(), d, down.in_dim(), cfg.n_ff),
            ];
            for (what, out, want_out, inp, want_in) in shapes {
                if out != want_out || inp != want_in {
                    return Err(EngineError::Model(format!(
                        "blk.{i}.{what}: {out} x {inp}, but the metadata implies {want_out} x {want_in}"
                    )));
                }
            }
            let qkv = match qkv_bias {
                Some(b) => qkv.with_bias(b)?,
                None => qkv,
            };
            layers.push(Layer {
                attn_norm: required(norm(file, &name("attn_norm.weight"), d)?, &name("attn_norm.weight"))?,
                qkv,
                q_norm: norm(file, &name("attn_q_norm.weight"), hd)?,
                k_norm: norm(file, &name("attn_k_norm.weight"), hd)?,
                o,
                post_attn_norm: norm(file, &name("post_attention_norm.weight"), d)?,
                ffn_norm: required(norm(file, &name("ffn_norm.weight"), d)?, &name("ffn_norm.weight"))?,
                gate_up,
                down,
                post_ffn_norm: norm(file, &name("post_ffw_norm.weight"), d)?,
                rope,
            });
        }
        // Many small models tie the output projection to the embeddings.
        let head_name = if file.has_tensor("output.weight") { "output.weight" } else { "token_embd.weight" };
        let lm_head = Linear::stacked(vec![file.tensor(head_name)?], format)?;
        if lm_head.in_dim() != d {
            return Err(EngineError::Model(format!("{head_name}: input width {}, expected {d}", lm_head.in_dim())));
        }
        let norm = required(norm(file, "output_norm.weight", d)?, "output_norm.weight")?;
        Ok(Decoder { cfg, embed, layers, norm, lm_head, ropes })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Width of one token's K (or V) across all KV heads.
    pub fn kv_width(&self) -> usize {
        self.cfg.kv_width()
    }

    /// Bytes of KV cache one block of `BLOCK_SIZE` positions takes.
    pub fn kv_block_bytes(&self) -> usize {
        KvStore::block_bytes(self.cfg.n_layer, BLOCK_SIZE, self.kv_width())
    }

    pub fn new_kv_store(&self, num_blocks: usize) -> KvStore {
        KvStore::new(self.cfg.n_layer, BLOCK_SIZE, self.kv_width(), num_blocks)
    }

    /// A store and block table for one sequence of up to `positions`, for
    /// benchmarks and tests that drive the model without the scheduler.
    pub fn kv_for_one(&self, positions: usize) -> (KvStore, Vec<BlockId>) {
        let blocks = positions.div_ceil(BLOCK_SIZE);
        (self.new_kv_store(blocks), (0..blocks as BlockId).collect())
    }

    /// Runs one step over the batch; returns the logits of each item's last
    /// token where it asked (`want_logits`).
    pub fn forward(&self, kv: &mut KvStore, batch: &[BatchItem<'_>]) -> Result<StepLogits, EngineError> {
        let cfg = &self.cfg;
        let variant = &cfg.variant;
        let d = cfg.n_embd;
        let max_positions = self.ropes.first().map_or(0, RopeTable::max_positions);
        // Position and owner of every row of the stacked batch.
        let mut rows: Vec<(usize, usize)> = Vec::new();
        for (i, item) in batch.iter().enumerate() {
            let end = item.start + item.tokens.len();
            if end > max_positions {
                return Err(EngineError::Model(format!("position {end} beyond the context window")));
            }
            if !kv.covers(item.blocks, end) {
                return Err(EngineError::Model(format!("block table does not cover position {end}")));
            }
            rows.extend((item.start..end).map(|p| (i, p)));
        }
        let prompt_rows: Vec<bool> = rows.iter().map(|&(i, p)| batch[i].is_prompt(p)).collect();
        let mut x = Vec::with_capacity(rows.len() * d);
        for item in batch.iter() {
            for &tok in item.tokens {
                let tok = tok as usize;
                if tok >= cfg.vocab_size {
                    return Err(EngineError::Model(format!("token id {tok} out of vocabulary")));
                }
                self.embed.push_row(tok, d, &mut x);
            }
        }
        if variant.embed_scale != 1.0 {
            x.iter_mut().for_each(|v| *v *= variant.embed_scale);
        }
        let mut h = vec![0.0; x.len()];
        let (q_w, kv_w) = (cfg.q_width(), self.kv_width());
        let style = variant.rope;
        for (l, layer) in self.layers.iter().enumerate() {
            rms_norm(&x, &layer.attn_norm, cfg.rms_eps, &mut h);
            let mut qkv = layer.qkv.forward(&h, &prompt_rows)?;
            let rope = &self.ropes[layer.rope];
            let mut queries = Vec::with_capacity(rows.len() * q_w);
            for (row, &(item, pos)) in qkv.chunks_exact_mut(q_w + 2 * kv_w).zip(&rows) {
                let (q, k_v) = row.split_at_mut(q_w);
                let (k, v) = k_v.split_at_mut(kv_w);
                if let Some(w) = &layer.q_norm {
                    rms_norm_heads(q, w, cfg.rms_eps);
                }
                if let Some(w) = &layer.k_norm {
                    rms_norm_heads(k, w, cfg.rms_eps);
                }
                rope.apply(q, pos, style);
                rope.apply(k, pos, style);
                queries.extend_from_slice(q);
                kv.write(l, batch[item].blocks, pos, k, v);
            }
            let attn = self.attention(kv, l, &queries, &rows, batch);
            let mut out = layer.o.forward(&attn, &prompt_rows)?;
            if let Some(w) = &layer.post_attn_norm {
                // Into the scratch rows, then swapped: no copy of `out`.
                rms_norm(&out, w, cfg.rms_eps, &mut h);
                std::mem::swap(&mut out, &mut h);
            }
            add_scaled(&mut x, &out, variant.residual_scale);
            rms_norm(&x, &layer.ffn_norm, cfg.rms_eps, &mut h);
            let gate_up = layer.gate_up.forward(&h, &prompt_rows)?;
            let act = match variant.activation {
                Activation::Silu => swiglu(&gate_up, cfg.n_ff),
                Activation::GeluTanh => geglu(&gate_up, cfg.n_ff),
            };
            let mut out = layer.down.forward(&act, &prompt_rows)?;
            if let Some(w) = &layer.post_ffn_norm {
                rms_norm(&out, w, cfg.rms_eps, &mut h);
                std::mem::swap(&mut out, &mut h);
            }
            add_scaled(&mut x, &out, variant.residual_scale);
        }
        // Final norm and vocabulary projection only for the rows that sample.
        let mut last_rows = Vec::new();
        let mut last_prompt = Vec::new();
        let mut row_of = Vec::with_capacity(batch.len());
        let mut row_end = 0;
        for item in batch.iter() {
            row_end += item.tokens.len();
            if item.want_logits && !item.tokens.is_empty() {
                row_of.push(Some(last_prompt.len()));
                last_rows.extend_from_slice(&x[(row_end - 1) * d..row_end * d]);
                last_prompt.push(item.is_prompt(item.start + item.tokens.len() - 1));
            } else {
                row_of.push(None);
            }
        }
        let vocab = self.lm_head.out_dim();
        if last_rows.is_empty() {
            return Ok(StepLogits { values: Vec::new(), vocab, row_of });
        }
        let mut normed = vec![0.0; last_rows.len()];
        rms_norm(&last_rows, &self.norm, cfg.rms_eps, &mut normed);
        // One matrix for all rows, handed out by reference: a copy per row
        // was ~3 MB of copying and page faults per step at 16 sequences.
        let mut values = self.lm_head.forward(&normed, &last_prompt)?;
        if variant.logit_scale != 1.0 {
            values.iter_mut().for_each(|v| *v *= variant.logit_scale);
        }
        if let Some(c) = variant.final_softcap {
            softcap(&mut values, c);
        }
        Ok(StepLogits { values, vocab, row_of })
    }

    /// Causal attention of every row over its own sequence's blocks (which
    /// already hold this step's keys and values), in parallel over rows.
    /// A sliding-window layer starts at the first block its window
    /// reaches and masks the positions of that block before the window;
    /// the blocks before stay (a prefix-cache hit needs them for the
    /// global layers, and they are the same blocks).
    fn attention(
        &self,
        kv: &KvStore,
        layer: usize,
        queries: &[f32],
        rows: &[(usize, usize)],
        batch: &[BatchItem<'_>],
    ) -> Vec<f32> {
        let cfg = &self.cfg;
        let (hd, kv_w, q_w) = (cfg.head_dim, self.kv_width(), cfg.q_width());
        let group = cfg.n_head / cfg.n_head_kv;
        let scale = cfg.variant.attn_scale;
        let softcap_at = cfg.variant.attn_softcap;
        let window = cfg.variant.layers[layer].window;
        let mut attn = vec![0.0f32; rows.len() * q_w];
        // Always in parallel: a row's cost grows with its context, not its width.
        super::parallel::rows_mut(&mut attn, q_w, true, |r, dst| {
            let (item, pos) = rows[r];
            let q = &queries[r * q_w..(r + 1) * q_w];
            let n_ctx = pos + 1;
            let first = window.map_or(0, |w| n_ctx.saturating_sub(w));
            let first_block = first / BLOCK_SIZE;
            let skipped = first_block * BLOCK_SIZE;
            let blocks = batch[item].blocks;
            let mut scores = vec![0.0f32; (n_ctx - skipped).next_multiple_of(BLOCK_SIZE)];
            let seen = n_ctx - skipped;
            for h in 0..cfg.n_head {
                let qh = &q[h * hd..(h + 1) * hd];
                let kv_off = (h / group) * hd;
                let runs = kv.runs(layer, blocks, n_ctx).skip(first_block);
                for ((keys, _), s) in runs.zip(scores.chunks_exact_mut(BLOCK_SIZE)) {
                    block_scores(qh, &keys[kv_off * BLOCK_SIZE..(kv_off + hd) * BLOCK_SIZE], scale, s);
                }
                if let Some(c) = softcap_at {
                    softcap(&mut scores[..seen], c);
                }
                scores[..first - skipped].fill(f32::NEG_INFINITY);
                softmax_in_place(&mut scores[..seen]);
                let out = &mut dst[h * hd..(h + 1) * hd];
                let runs =
                    kv.runs(layer, blocks, n_ctx).skip(first_block).map(|(_, v)| v).zip(scores.chunks(BLOCK_SIZE));
                match hd / 8 {
                    32 => head_output::<32>(runs, kv_w, kv_off, out),
                    16 => head_output::<16>(runs, kv_w, kv_off, out),
                    8 => head_output::<8>(runs, kv_w, kv_off, out),
                    4 => head_output::<4>(runs, kv_w, kv_off, out),
                    2 => head_output::<2>(runs, kv_w, kv_off, out),
                    _ => head_output::<1>(runs, kv_w, kv_off, out),
                }
            }
        });
        attn
    }
}

/// One head's attention output, `8 × N` wide: probability-weighted values
/// of every block, accumulated in registers.
fn head_output<'a, const N: usize>(
    runs: impl Iterator<Item = (&'a [f32], &'a [f32])>,
    stride: usize,
    off: usize,
    out: &mut [f32],
) {
    let mut acc = [f32x8::ZERO; N];
    for (values, p) in runs {
        weighted_sum(&mut acc, values, stride, off, p);
    }
    for (o, a) in out.chunks_exact_mut(8).zip(&acc) {
        o.copy_from_slice(&a.to_array());
    }
}
