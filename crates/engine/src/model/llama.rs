//! Llama-family decoder over a ragged batch: the tokens of every scheduled
//! sequence are stacked into one matrix, so each projection and MLP reads
//! its weights once per step for the whole batch; attention runs per token
//! over its own sequence's KV cache, at its own positions.

use super::linear::{Linear, WeightFormat};
use super::ops::{add_in_place, block_scores, rms_norm, softmax_in_place, swiglu, weighted_sum, RopeTable};
use crate::gguf::{GgufFile, LlamaConfig};
use crate::kv_cache::{BlockId, KvStore, BLOCK_SIZE};
use crate::EngineError;
use candle_core::Device;
use wide::f32x8;

struct Layer {
    attn_norm: Vec<f32>,
    qkv: Linear,
    o: Linear,
    ffn_norm: Vec<f32>,
    gate_up: Linear,
    down: Linear,
}

pub struct Llama {
    cfg: LlamaConfig,
    embed: TokenEmbeddings,
    layers: Vec<Layer>,
    norm: Vec<f32>,
    lm_head: Linear,
    rope: RopeTable,
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

impl Llama {
    pub fn load(
        file: &mut GgufFile,
        cfg: LlamaConfig,
        format: WeightFormat,
        max_positions: usize,
    ) -> Result<Self, EngineError> {
        // Attention keeps a head's output in registers, 8 lanes at a time.
        if ![8, 16, 32, 64, 128].contains(&cfg.head_dim) {
            return Err(EngineError::Model(format!(
                "head dimension {} is not supported (8, 16, 32, 64 or 128)",
                cfg.head_dim
            )));
        }
        let embed = vec_f32(file, "token_embd.weight")?;
        if embed.len() != cfg.vocab_size * cfg.n_embd {
            return Err(EngineError::Model(format!(
                "token_embd.weight has {} values, expected {} x {}",
                embed.len(),
                cfg.vocab_size,
                cfg.n_embd
            )));
        }
        // `SWITCHYARD_KERNELS=f32` keeps everything as before, to compare.
        let embed = match format {
            WeightFormat::Fast if !super::cpu::f32_prompt_weights() => {
                TokenEmbeddings::Bf16(embed.iter().map(|v| super::bf16::to_bf16(*v)).collect())
            }
            _ => TokenEmbeddings::F32(embed),
        };
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let mut t = |s: &str| file.tensor(&format!("blk.{i}.{s}.weight"));
            let qkv = Linear::stacked(vec![t("attn_q")?, t("attn_k")?, t("attn_v")?], format)?;
            let o = Linear::stacked(vec![t("attn_output")?], format)?;
            let gate_up = Linear::stacked(vec![t("ffn_gate")?, t("ffn_up")?], format)?;
            let down = Linear::stacked(vec![t("ffn_down")?], format)?;
            let want_qkv = (cfg.n_head + 2 * cfg.n_head_kv) * cfg.head_dim;
            if qkv.out_dim() != want_qkv
                || gate_up.out_dim() != 2 * cfg.n_ff
                || o.out_dim() != cfg.n_embd
                || down.out_dim() != cfg.n_embd
            {
                return Err(EngineError::Model(format!("layer {i}: projection shapes do not match the config")));
            }
            layers.push(Layer {
                attn_norm: vec_f32(file, &format!("blk.{i}.attn_norm.weight"))?,
                qkv,
                o,
                ffn_norm: vec_f32(file, &format!("blk.{i}.ffn_norm.weight"))?,
                gate_up,
                down,
            });
        }
        // Many small models tie the output projection to the embeddings.
        let head_name = if file.has_tensor("output.weight") { "output.weight" } else { "token_embd.weight" };
        let lm_head = Linear::stacked(vec![file.tensor(head_name)?], format)?;
        let norm = vec_f32(file, "output_norm.weight")?;
        let rope = RopeTable::new(cfg.head_dim, max_positions, cfg.rope_theta);
        Ok(Llama { cfg, embed, layers, norm, lm_head, rope })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// Width of one token's K (or V) across all KV heads.
    pub fn kv_width(&self) -> usize {
        self.cfg.n_head_kv * self.cfg.head_dim
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
        let (d, hd) = (cfg.n_embd, cfg.head_dim);
        // Position and owner of every row of the stacked batch.
        let mut rows: Vec<(usize, usize)> = Vec::new();
        for (i, item) in batch.iter().enumerate() {
            let end = item.start + item.tokens.len();
            if end > self.rope.max_positions() {
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
        let mut h = vec![0.0; x.len()];
        let (q_w, kv_w) = (cfg.n_head * hd, self.kv_width());
        for (l, layer) in self.layers.iter().enumerate() {
            rms_norm(&x, &layer.attn_norm, cfg.rms_eps, &mut h);
            let mut qkv = layer.qkv.forward(&h, &prompt_rows)?;
            let mut queries = Vec::with_capacity(rows.len() * q_w);
            for (row, &(item, pos)) in qkv.chunks_exact_mut(q_w + 2 * kv_w).zip(&rows) {
                let (q, k_v) = row.split_at_mut(q_w);
                let (k, v) = k_v.split_at_mut(kv_w);
                self.rope.apply(q, pos);
                self.rope.apply(k, pos);
                queries.extend_from_slice(q);
                kv.write(l, batch[item].blocks, pos, k, v);
            }
            let attn = self.attention(kv, l, &queries, &rows, batch);
            add_in_place(&mut x, &layer.o.forward(&attn, &prompt_rows)?);
            rms_norm(&x, &layer.ffn_norm, cfg.rms_eps, &mut h);
            let act = swiglu(&layer.gate_up.forward(&h, &prompt_rows)?, cfg.n_ff);
            add_in_place(&mut x, &layer.down.forward(&act, &prompt_rows)?);
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
        let values = self.lm_head.forward(&normed, &last_prompt)?;
        Ok(StepLogits { values, vocab, row_of })
    }

    /// Causal attention of every row over its own sequence's blocks (which
    /// already hold this step's keys and values), in parallel over rows.
    fn attention(
        &self,
        kv: &KvStore,
        layer: usize,
        queries: &[f32],
        rows: &[(usize, usize)],
        batch: &[BatchItem<'_>],
    ) -> Vec<f32> {
        let cfg = &self.cfg;
        let (hd, kv_w) = (cfg.head_dim, self.kv_width());
        let group = cfg.n_head / cfg.n_head_kv;
        let scale = 1.0 / (hd as f32).sqrt();
        let mut attn = vec![0.0f32; rows.len() * cfg.n_embd];
        // Always in parallel: a row's cost grows with its context, not its width.
        super::parallel::rows_mut(&mut attn, cfg.n_embd, true, |r, dst| {
            let (item, pos) = rows[r];
            let q = &queries[r * cfg.n_head * hd..(r + 1) * cfg.n_head * hd];
            let n_ctx = pos + 1;
            let blocks = batch[item].blocks;
            let mut scores = vec![0.0f32; n_ctx.next_multiple_of(BLOCK_SIZE)];
            for h in 0..cfg.n_head {
                let qh = &q[h * hd..(h + 1) * hd];
                let kv_off = (h / group) * hd;
                for ((keys, _), s) in kv.runs(layer, blocks, n_ctx).zip(scores.chunks_exact_mut(BLOCK_SIZE)) {
                    block_scores(qh, &keys[kv_off * BLOCK_SIZE..(kv_off + hd) * BLOCK_SIZE], scale, s);
                }
                softmax_in_place(&mut scores[..n_ctx]);
                let out = &mut dst[h * hd..(h + 1) * hd];
                let runs = kv.runs(layer, blocks, n_ctx).map(|(_, v)| v).zip(scores.chunks(BLOCK_SIZE));
                match hd / 8 {
                    8 => head_output::<8>(runs, kv_w, kv_off, out),
                    16 => head_output::<16>(runs, kv_w, kv_off, out),
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
