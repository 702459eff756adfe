//! `Embedder`: the BERT weights and the tokenizer of one sentence-transformers
//! model directory, with the two things the actor needs: tokenize under the
//! length rule, and one padded forward pass over a batch of token rows.

use super::bert::{Bert, BertConfig};
use super::EmbeddingError;
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;
use tokenizers::Tokenizer;

/// A loaded embedding model. `spawn` it to serve requests; call `embed_batch`
/// directly only for tests and probes (it blocks on the forward pass).
pub struct Embedder {
    bert: Bert,
    tokenizer: Arc<Tokenizer>,
    name: String,
    dimensions: usize,
    max_tokens: usize,
}

/// `sentence_bert_config.json`: the window sentence-transformers serves.
#[derive(Deserialize)]
struct SentenceConfig {
    max_seq_length: usize,
}

/// `1_Pooling/config.json`: only mean pooling is implemented.
#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, EmbeddingError> {
    let text = std::fs::read_to_string(path).map_err(|e| EmbeddingError::Load(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| EmbeddingError::Load(format!("{}: {e}", path.display())))
}

impl Embedder {
    /// Loads `config.json`, `model.safetensors`, `tokenizer.json` and the
    /// sentence-transformers settings from a model directory. The name
    /// served is the directory's name.
    pub fn load(dir: &Path) -> Result<Embedder, EmbeddingError> {
        let config: BertConfig = read_json(&dir.join("config.json"))?;
        let pooling = dir.join("1_Pooling/config.json");
        if pooling.exists() && !read_json::<PoolingConfig>(&pooling)?.pooling_mode_mean_tokens {
            return Err(EmbeddingError::Load(format!("{}: only mean pooling is supported", pooling.display())));
        }
        let sentence = dir.join("sentence_bert_config.json");
        let window = if sentence.exists() {
            read_json::<SentenceConfig>(&sentence)?.max_seq_length
        } else {
            config.max_position_embeddings
        };
        let max_tokens = window.min(config.max_position_embeddings).max(2);

        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json")).map_err(EmbeddingError::tokenizer)?;
        // The file pads to 128 and truncates at 128; we pad per batch and
        // apply our own limit, so both are switched off.
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(EmbeddingError::tokenizer)?;

        let weights = dir.join("model.safetensors");
        let bytes = std::fs::read(&weights).map_err(|e| EmbeddingError::Load(format!("{}: {e}", weights.display())))?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu)?;
        let bert = Bert::load(vb, &config)?;
        let name = dir.file_name().map_or_else(|| "embedding".to_string(), |n| n.to_string_lossy().into_owned());
        Ok(Embedder { bert, tokenizer: Arc::new(tokenizer), name, dimensions: config.hidden_size, max_tokens })
    }

    pub fn model_name(&self) -> &str {
        &self.name
    }

    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// The most tokens one input may have, [CLS] and [SEP] included.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    pub(crate) fn tokenizer(&self) -> Arc<Tokenizer> {
        self.tokenizer.clone()
    }

    /// Tokens of `text` with [CLS] and [SEP], before any truncation.
    pub fn count_tokens(&self, text: &str) -> usize {
        count_tokens(&self.tokenizer, text)
    }

    /// Token ids of every input under the length rule (see the module docs).
    pub fn tokenize(&self, inputs: &[String], truncate: bool) -> Result<Vec<Vec<u32>>, EmbeddingError> {
        tokenize(&self.tokenizer, self.max_tokens, inputs, truncate)
    }

    /// One forward pass over `rows` (see `bert`: no padding outside
    /// attention), then mean pooling over each row's own tokens and L2
    /// normalisation.
    pub fn embed_batch(&self, rows: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbeddingError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        if rows.iter().any(|r| r.is_empty()) {
            return Err(EmbeddingError::Forward("an input has no tokens".into()));
        }
        let mut out = self.bert.pooled(rows)?.to_vec2::<f32>()?;
        out.iter_mut().for_each(|v| normalize(v));
        Ok(out)
    }
}

/// L2 normalisation as `torch.nn.functional.normalize` does it (norm
/// clamped at 1e-12, so a zero vector stays zero).
fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

pub(crate) fn count_tokens(tokenizer: &Tokenizer, text: &str) -> usize {
    // A BERT normalizer and pre-tokenizer cannot fail on a &str; should one
    // ever, the character count (+2) is an upper bound, safe for limits.
    tokenizer.encode_fast(text, true).map_or(text.chars().count() + 2, |e| e.len())
}

pub(crate) fn tokenize(
    tokenizer: &Tokenizer,
    max: usize,
    inputs: &[String],
    truncate: bool,
) -> Result<Vec<Vec<u32>>, EmbeddingError> {
    inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let ids = tokenizer.encode_fast(text.as_str(), true).map_err(EmbeddingError::tokenizer)?.get_ids().to_vec();
            fit_length(ids, index, max, truncate)
        })
        .collect()
}

/// The length rule for one input's row ([CLS] and [SEP] included): at
/// most `max` tokens; a longer one is refused naming `index`, or, when
/// `truncate`, keeps [CLS] and the first max-2 word pieces and ends with
/// [SEP] (the row's last token), as sentence-transformers does.
pub(crate) fn fit_length(
    mut ids: Vec<u32>,
    index: usize,
    max: usize,
    truncate: bool,
) -> Result<Vec<u32>, EmbeddingError> {
    if ids.len() > max {
        if !truncate {
            return Err(EmbeddingError::TooLong { index, tokens: ids.len(), max });
        }
        let sep = ids[ids.len() - 1];
        ids.truncate(max - 1);
        ids.push(sep);
    }
    Ok(ids)
}
