//! BERT encoder forward over a ragged batch, on candle tensors: every row's
//! real tokens are stacked into one `(tokens, hidden)` matrix, so the
//! projections, the MLP and the layer norms (nearly all the work) never
//! touch padding; only attention is laid out padded `(rows, heads, len, d)`
//! with a key mask. Compared with candle-transformers' `BertModel` (which
//! this matches, see tests/embedding.rs) it also runs Q, K and V as one
//! matmul, folds 1/sqrt(d) into the query weights, uses the fused softmax
//! and pools with one matmul.

use crate::model::bf16::prompt_matrix;
use crate::model::RowMatmul;
use candle_core::{CpuStorage, Device, Module, Storage, Tensor};
use candle_nn::{layer_norm, LayerNorm, VarBuilder};
use serde::Deserialize;

/// The fields of a Hugging Face BERT `config.json` this forward reads.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub hidden_act: String,
    #[serde(default = "absolute")]
    pub position_embedding_type: String,
}

fn absolute() -> String {
    "absolute".into()
}

/// `x · wᵀ + b` on the engine's prompt kernel (bf16 weights; the f32
/// `dense` one with `SWITCHYARD_KERNELS=f32`).
struct Linear {
    w: Box<dyn RowMatmul>,
    b: Tensor,
}

impl Linear {
    /// From `(out, in)` weights and `out` biases.
    fn new(w: &Tensor, b: Tensor) -> candle_core::Result<Self> {
        let k = w.dim(1)?;
        Ok(Linear { w: prompt_matrix(&w.flatten_all()?.to_vec1::<f32>()?, k), b })
    }

    fn load(vb: &VarBuilder, inp: usize, out: usize) -> candle_core::Result<Self> {
        Linear::new(&vb.get((out, inp), "weight")?, vb.get(out, "bias")?)
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let m = x.dim(0)?;
        let x = x.contiguous()?;
        let (storage, layout) = x.storage_and_layout();
        let (Storage::Cpu(CpuStorage::F32(data)), Some((start, end))) = (&*storage, layout.contiguous_offsets()) else {
            candle_core::bail!("dense matmul: expected contiguous f32 on the CPU");
        };
        let y = self.w.matmul(&data[start..end]);
        Tensor::from_vec(y, (m, self.w.dims().0), &Device::Cpu)?.broadcast_add(&self.b)
    }
}

struct Layer {
    /// Query (pre-scaled), key and value projections side by side.
    qkv: Linear,
    out: Linear,
    attn_norm: LayerNorm,
    up: Linear,
    down: Linear,
    mlp_norm: LayerNorm,
}

pub(crate) struct Bert {
    word: Tensor,
    /// Position embeddings plus the (only) token type 0 embedding.
    position: Tensor,
    norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    hidden: usize,
}

impl Bert {
    pub fn load(vb: VarBuilder, cfg: &BertConfig) -> candle_core::Result<Self> {
        if cfg.hidden_act != "gelu"
            || cfg.position_embedding_type != "absolute"
            || cfg.num_attention_heads == 0
            || !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads)
        {
            candle_core::bail!("only BERT with exact GELU, absolute positions and whole heads is supported");
        }
        // Checkpoints saved from a task model nest the encoder under `bert.`.
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") { vb.pp("bert") } else { vb };
        let (h, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
        let e = vb.pp("embeddings");
        let types = e.get((cfg.type_vocab_size, h), "token_type_embeddings.weight")?;
        let position = e
            .get((cfg.max_position_embeddings, h), "position_embeddings.weight")?
            .broadcast_add(&types.narrow(0, 0, 1)?)?;
        let scale = 1.0 / ((h / cfg.num_attention_heads) as f64).sqrt();
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let a = l.pp("attention.self");
            let get = |name: &str| -> candle_core::Result<(Tensor, Tensor)> {
                Ok((a.pp(name).get((h, h), "weight")?, a.pp(name).get(h, "bias")?))
            };
            let ((qw, qb), (kw, kb), (vw, vb)) = (get("query")?, get("key")?, get("value")?);
            let qkv =
                Linear::new(&Tensor::cat(&[(qw * scale)?, kw, vw], 0)?, Tensor::cat(&[(qb * scale)?, kb, vb], 0)?)?;
            layers.push(Layer {
                qkv,
                out: Linear::load(&l.pp("attention.output.dense"), h, h)?,
                attn_norm: layer_norm(h, eps, l.pp("attention.output.LayerNorm"))?,
                up: Linear::load(&l.pp("intermediate.dense"), h, cfg.intermediate_size)?,
                down: Linear::load(&l.pp("output.dense"), cfg.intermediate_size, h)?,
                mlp_norm: layer_norm(h, eps, l.pp("output.LayerNorm"))?,
            });
        }
        Ok(Bert {
            word: e.get((cfg.vocab_size, h), "word_embeddings.weight")?,
            position,
            norm: layer_norm(h, eps, e.pp("LayerNorm"))?,
            layers,
            heads: cfg.num_attention_heads,
            hidden: h,
        })
    }

    /// Mean-pooled (not yet normalised) hidden states, one row per input.
    pub fn pooled(&self, rows: &[&[u32]]) -> candle_core::Result<Tensor> {
        let dev = &Device::Cpu;
        let (n, len) = (rows.len(), rows.iter().map(|r| r.len()).max().unwrap_or(0));
        let total: usize = rows.iter().map(|r| r.len()).sum();
        let ids: Vec<u32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        let positions: Vec<u32> = rows.iter().flat_map(|r| 0..r.len() as u32).collect();
        // Padded slot (r, p) reads stacked row `gather`; stacked row t is
        // padded slot `scatter[t]`. Padding slots read row 0 (masked anyway).
        let mut gather = vec![0u32; n * len];
        let mut scatter = Vec::with_capacity(total);
        let mut mask = vec![f32::MIN; n * len];
        // Pooling matrix: row r averages its own stacked rows.
        let mut pool = vec![0f32; n * total];
        let mut t = 0;
        for (r, row) in rows.iter().enumerate() {
            for p in 0..row.len() {
                gather[r * len + p] = t as u32;
                scatter.push((r * len + p) as u32);
                mask[r * len + p] = 0.0;
                pool[r * total + t] = 1.0 / row.len() as f32;
                t += 1;
            }
        }
        let ragged = total != n * len;
        let gather = Tensor::from_vec(gather, n * len, dev)?;
        let scatter = Tensor::from_vec(scatter, total, dev)?;
        let mask = Tensor::from_vec(mask, (n, 1, 1, len), dev)?;

        let ids = Tensor::from_vec(ids, total, dev)?;
        let positions = Tensor::from_vec(positions, total, dev)?;
        let x = self.word.index_select(&ids, 0)?.add(&self.position.index_select(&positions, 0)?)?;
        let mut x = self.norm.forward(&x)?;
        let (heads, d) = (self.heads, self.hidden / self.heads);
        for l in &self.layers {
            let qkv = l.qkv.forward(&x)?;
            let qkv = if ragged { qkv.index_select(&gather, 0)? } else { qkv };
            let qkv = qkv.reshape((n, len, 3, heads, d))?;
            let part = |i| qkv.narrow(2, i, 1)?.squeeze(2)?.transpose(1, 2)?.contiguous();
            let (q, k, v) = (part(0)?, part(1)?, part(2)?);
            let scores = q.matmul(&k.t()?)?.broadcast_add(&mask)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = probs.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((n * len, self.hidden))?;
            let ctx = if ragged { ctx.index_select(&scatter, 0)? } else { ctx };
            let a = l.attn_norm.forward(&l.out.forward(&ctx)?.add(&x)?)?;
            let m = l.down.forward(&l.up.forward(&a)?.gelu_erf()?)?;
            x = l.mlp_norm.forward(&m.add(&a)?)?;
        }
        Tensor::from_vec(pool, (n, total), dev)?.matmul(&x)
    }
}
