//! Reads a GGUF file: model hyper-parameters, tokenizer metadata, chat
//! template and the quantized tensors.

use crate::tokenizer::TokenizerSpec;
use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::QTensor;
use candle_core::Device;
use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum GgufError {
    #[error("cannot open {path}: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("not a readable GGUF file: {0}")]
    Format(String),
    #[error("GGUF metadata key '{0}' is missing")]
    MissingKey(String),
    #[error("GGUF metadata key '{key}' has the wrong type: {message}")]
    BadKey { key: String, message: String },
    #[error("unsupported architecture '{0}' (supported: llama, mistral, granite, qwen2, qwen3, gemma2, gemma3, phi3)")]
    UnsupportedArchitecture(String),
    #[error("tensor '{name}': {message}")]
    Tensor { name: String, message: String },
    #[error("tensor '{name}' is stored as {kind}, which is not supported (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and Q8_K are)")]
    UnsupportedType { name: String, kind: String },
}

/// An open GGUF file: metadata parsed, tensors read on demand.
pub struct GgufFile {
    content: Content,
    reader: BufReader<File>,
    pub name: Option<String>,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self, GgufError> {
        let file = File::open(path).map_err(|source| GgufError::Open { path: path.display().to_string(), source })?;
        let mut reader = BufReader::new(file);
        let content = match Content::read(&mut reader) {
            Ok(c) => c,
            // Name the tensor and its type, which candle's message does not.
            Err(e) => return Err(unsupported_tensor(path).unwrap_or_else(|| GgufError::Format(e.to_string()))),
        };
        let name = content.metadata.get("general.name").and_then(|v| v.to_string().ok()).cloned();
        Ok(GgufFile { content, reader, name })
    }

    pub(crate) fn get(&self, key: &str) -> Result<&Value, GgufError> {
        self.content.metadata.get(key).ok_or_else(|| GgufError::MissingKey(key.to_string()))
    }

    pub(crate) fn bad(key: &str, e: impl std::fmt::Display) -> GgufError {
        GgufError::BadKey { key: key.to_string(), message: e.to_string() }
    }

    pub(crate) fn usize_key(&self, key: &str) -> Result<usize, GgufError> {
        let v = self.get(key)?;
        let n = match v {
            Value::U64(_) | Value::I64(_) => v.to_u64().map_err(|e| Self::bad(key, e))?,
            _ => u64::from(v.to_u32().map_err(|e| Self::bad(key, e))?),
        };
        usize::try_from(n).map_err(|e| Self::bad(key, e))
    }

    pub(crate) fn f32_key(&self, key: &str) -> Result<f32, GgufError> {
        self.get(key)?.to_f32().map_err(|e| Self::bad(key, e))
    }

    pub(crate) fn string_key(&self, key: &str) -> Result<&str, GgufError> {
        self.get(key)?.to_string().map(String::as_str).map_err(|e| Self::bad(key, e))
    }

    pub(crate) fn opt_u32(&self, key: &str) -> Option<u32> {
        self.content.metadata.get(key).and_then(|v| v.to_u32().ok())
    }

    pub fn tokenizer_spec(&self) -> Result<TokenizerSpec, GgufError> {
        let strings = |key: &str| -> Result<Vec<String>, GgufError> {
            let values = self.get(key)?.to_vec().map_err(|e| Self::bad(key, e))?;
            values.iter().map(|v| v.to_string().cloned().map_err(|e| Self::bad(key, e))).collect()
        };
        let token_types = match self.content.metadata.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()
                .map_err(|e| Self::bad("tokenizer.ggml.token_type", e))?
                .iter()
                .map(|t| t.to_i32().map_err(|e| Self::bad("tokenizer.ggml.token_type", e)))
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let model = self.string_key("tokenizer.ggml.model")?.to_string();
        // SentencePiece files may leave these out; llama.cpp's defaults then apply.
        let spm = model == "llama";
        let flag = |key: &str, default: bool| {
            self.content.metadata.get(key).and_then(|v| v.to_bool().ok()).unwrap_or(default)
        };
        let scores = match self.content.metadata.get("tokenizer.ggml.scores") {
            Some(v) => v
                .to_vec()
                .map_err(|e| Self::bad("tokenizer.ggml.scores", e))?
                .iter()
                .map(|s| s.to_f32().map_err(|e| Self::bad("tokenizer.ggml.scores", e)))
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let id_or = |key: &str, default: u32| self.opt_u32(key).or(spm.then_some(default));
        Ok(TokenizerSpec {
            pre: self.string_key("tokenizer.ggml.pre").ok().map(str::to_string),
            tokens: strings("tokenizer.ggml.tokens")?,
            token_types,
            scores,
            merges: if self.content.metadata.contains_key("tokenizer.ggml.merges") {
                strings("tokenizer.ggml.merges")?
            } else {
                Vec::new()
            },
            bos_id: id_or("tokenizer.ggml.bos_token_id", 1),
            eos_id: id_or("tokenizer.ggml.eos_token_id", 2),
            unk_id: id_or("tokenizer.ggml.unknown_token_id", 0),
            extra_eog_ids: ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"]
                .iter()
                .filter_map(|k| self.opt_u32(k))
                .collect(),
            add_bos: flag("tokenizer.ggml.add_bos_token", spm),
            add_eos: flag("tokenizer.ggml.add_eos_token", false),
            add_space_prefix: flag("tokenizer.ggml.add_space_prefix", spm),
            model,
        })
    }

    pub fn chat_template(&self) -> Option<String> {
        self.string_key("tokenizer.chat_template").ok().map(str::to_string)
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    pub fn tensor(&mut self, name: &str) -> Result<QTensor, GgufError> {
        self.content
            .tensor(&mut self.reader, name, &Device::Cpu)
            .map_err(|e| GgufError::Tensor { name: name.to_string(), message: e.to_string() })
    }

    /// The tensor's shape as GGUF lists it (innermost dimension first is
    /// candle's reversed order: rows × columns for a matrix).
    pub fn tensor_dims(&self, name: &str) -> Option<Vec<usize>> {
        self.content.tensor_infos.get(name).map(|t| t.shape.dims().to_vec())
    }

    /// The storage type of each tensor, counted (for the model card).
    pub fn tensor_types(&self) -> Vec<(GgmlDType, usize)> {
        let mut counts: Vec<(GgmlDType, usize)> = Vec::new();
        for info in self.content.tensor_infos.values() {
            match counts.iter_mut().find(|(t, _)| *t == info.ggml_dtype) {
                Some((_, n)) => *n += 1,
                None => counts.push((info.ggml_dtype, 1)),
            }
        }
        counts
    }

    /// The file type llama.cpp's quantizer wrote (`general.file_type`), by
    /// name; else the most common tensor type.
    pub fn quantization(&self) -> String {
        let named = match self.opt_u32("general.file_type") {
            Some(0) => "F32",
            Some(1) => "F16",
            Some(2) => "Q4_0",
            Some(3) => "Q4_1",
            Some(7) => "Q8_0",
            Some(8) => "Q5_0",
            Some(9) => "Q5_1",
            Some(10) => "Q2_K",
            Some(11) => "Q3_K_S",
            Some(12) => "Q3_K_M",
            Some(13) => "Q3_K_L",
            Some(14) => "Q4_K_S",
            Some(15) => "Q4_K_M",
            Some(16) => "Q5_K_S",
            Some(17) => "Q5_K_M",
            Some(18) => "Q6_K",
            Some(32) => "BF16",
            _ => "",
        };
        if !named.is_empty() {
            return named.to_string();
        }
        let most = self.tensor_types().into_iter().max_by_key(|(_, n)| *n);
        most.map(|(t, _)| format!("{t:?}")).unwrap_or_default()
    }

    /// Parameters stored in the file (every tensor's elements).
    pub fn parameter_count(&self) -> usize {
        self.content.tensor_infos.values().map(|t| t.shape.elem_count()).sum()
    }

    pub fn metadata(&self) -> &HashMap<String, Value> {
        &self.content.metadata
    }
}

/// GGML tensor types candle reads (`GgmlDType`), by their GGUF id.
const READ_TYPES: &[u32] = &[0, 1, 2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 30];

/// The name of a GGML type id we cannot read.
fn type_name(id: u32) -> String {
    let known = [
        (16, "IQ2_XXS"),
        (17, "IQ2_XS"),
        (18, "IQ3_XXS"),
        (19, "IQ1_S"),
        (20, "IQ4_NL"),
        (21, "IQ3_S"),
        (22, "IQ2_S"),
        (23, "IQ4_XS"),
        (24, "I8"),
        (25, "I16"),
        (26, "I32"),
        (27, "I64"),
        (28, "F64"),
        (29, "IQ1_M"),
        (34, "TQ1_0"),
        (35, "TQ2_0"),
        (39, "MXFP4"),
    ];
    known.iter().find(|(k, _)| *k == id).map_or_else(|| format!("GGML type {id}"), |(_, n)| n.to_string())
}

/// Reads `n` bytes; lengths come from the file, so absurd ones are refused
/// rather than allocated.
fn bytes(r: &mut impl std::io::Read, n: usize) -> Option<Vec<u8>> {
    if n > 1 << 30 {
        return None;
    }
    let mut b = vec![0u8; n];
    r.read_exact(&mut b).ok()?;
    Some(b)
}

fn le_u64(r: &mut impl std::io::Read, n: usize) -> Option<u64> {
    let mut b = [0u8; 8];
    r.read_exact(b.get_mut(..n)?).ok()?;
    Some(u64::from_le_bytes(b))
}

/// Skips one metadata value of GGUF type `ty`.
fn skip_value(r: &mut impl std::io::Read, ty: u64, depth: usize) -> Option<()> {
    // Widths of u8, i8, u16, i16, u32, i32, f32, bool, -, -, u64, i64, f64.
    const FIXED: [usize; 13] = [1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8];
    match ty {
        8 => {
            let n = le_u64(r, 8)?;
            std::io::copy(&mut std::io::Read::take(&mut *r, n), &mut std::io::sink()).ok()?;
        }
        9 if depth < 4 => {
            let (elem, n) = (le_u64(r, 4)?, le_u64(r, 8)?);
            for _ in 0..n {
                skip_value(r, elem, depth + 1)?;
            }
        }
        t => {
            let w = *FIXED.get(usize::try_from(t).ok()?).filter(|w| **w > 0)?;
            le_u64(r, w)?;
        }
    }
    Some(())
}

/// Walks the GGUF header (v2/v3) to the first tensor of a type we cannot
/// read: candle refuses such a file naming only the type's number.
fn unsupported_tensor(path: &Path) -> Option<GgufError> {
    let mut r = BufReader::new(File::open(path).ok()?);
    if le_u64(&mut r, 4)? != 0x4655_4747 || le_u64(&mut r, 4)? < 2 {
        return None;
    }
    let (n_tensors, n_kv) = (le_u64(&mut r, 8)?, le_u64(&mut r, 8)?);
    for _ in 0..n_kv {
        let key_len = le_u64(&mut r, 8)?;
        bytes(&mut r, usize::try_from(key_len).ok()?)?;
        let ty = le_u64(&mut r, 4)?;
        skip_value(&mut r, ty, 0)?;
    }
    for _ in 0..n_tensors {
        let name_len = le_u64(&mut r, 8)?;
        let name = String::from_utf8_lossy(&bytes(&mut r, usize::try_from(name_len).ok()?)?).into_owned();
        let n_dims = le_u64(&mut r, 4)?;
        for _ in 0..n_dims.min(8) {
            le_u64(&mut r, 8)?;
        }
        let ty = le_u64(&mut r, 4)? as u32;
        le_u64(&mut r, 8)?;
        if !READ_TYPES.contains(&ty) {
            return Some(GgufError::UnsupportedType { name, kind: type_name(ty) });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tensor_of_an_unreadable_type_is_named_with_its_type() {
        // GGUF v3: one metadata string, then one tensor stored as IQ4_XS (23).
        let mut f = Vec::new();
        f.extend_from_slice(b"GGUF");
        f.extend_from_slice(&3u32.to_le_bytes());
        f.extend_from_slice(&1u64.to_le_bytes());
        f.extend_from_slice(&1u64.to_le_bytes());
        let key = b"general.architecture";
        f.extend_from_slice(&(key.len() as u64).to_le_bytes());
        f.extend_from_slice(key);
        f.extend_from_slice(&8u32.to_le_bytes());
        f.extend_from_slice(&5u64.to_le_bytes());
        f.extend_from_slice(b"llama");
        let name = b"blk.0.ffn_down.weight";
        f.extend_from_slice(&(name.len() as u64).to_le_bytes());
        f.extend_from_slice(name);
        f.extend_from_slice(&2u32.to_le_bytes());
        f.extend_from_slice(&256u64.to_le_bytes());
        f.extend_from_slice(&4u64.to_le_bytes());
        f.extend_from_slice(&23u32.to_le_bytes());
        f.extend_from_slice(&0u64.to_le_bytes());
        let dir = tempfile::tempdir().ok();
        let Some(path) = dir.as_ref().map(|d| d.path().join("iq4.gguf")) else { return };
        assert!(std::fs::write(&path, &f).is_ok());
        let err = GgufFile::open(&path).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("'blk.0.ffn_down.weight' is stored as IQ4_XS"), "{err}");
    }
}
