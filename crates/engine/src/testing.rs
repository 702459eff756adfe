//! A tiny llama GGUF with random weights, written on demand, so tests of
//! everything above the engine run in milliseconds without the download.
//! Its tokenizer is real byte-level BPE (all 256 bytes plus a few merges and
//! ChatML control tokens), so any text round-trips.

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::path::Path;

/// The default model as `scripts/setup-models.sh` installs it, for tests
/// that run the real model; the error says how to get it.
pub fn default_model() -> Result<std::path::PathBuf, String> {
    installed_model("SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// Another file `scripts/setup-models.sh` installs (e.g. `gemma-3-270m-q4_k_m.gguf`).
pub fn installed_model(name: &str) -> Result<std::path::PathBuf, String> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models").join(name);
    if p.exists() {
        Ok(p)
    } else {
        Err(format!("{} is missing: run scripts/setup-models.sh (the test command does)", p.display()))
    }
}

/// Shape of the tiny model.
pub const TINY_CONTEXT: u32 = 512;
const N_EMBD: usize = 64;
const N_FF: usize = 128;
const N_LAYER: usize = 2;
const N_HEAD: usize = 4;
const N_HEAD_KV: usize = 2;

/// The tiny vocabulary: ChatML control tokens, every byte, a few merges.
/// Returns (tokens, token types, merges).
pub fn tiny_vocabulary() -> (Vec<String>, Vec<i32>, Vec<String>) {
    let specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
    let merges = ["h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "Ġwor l", "Ġworl d"];
    let mut tokens: Vec<String> = specials.iter().map(|s| s.to_string()).collect();
    tokens.extend(crate::tokenizer::byte_chars().iter().map(|c| c.to_string()));
    tokens.extend(merges.iter().map(|m| m.replace(' ', "")));
    let types = (0..tokens.len()).map(|i| if i < specials.len() { 3 } else { 1 }).collect();
    (tokens, types, merges.iter().map(|m| m.to_string()).collect())
}

/// Writes the tiny model to `path`. Weights come from a fixed seed.
pub fn write_tiny_gguf(path: &Path) -> Result<(), String> {
    let (tokens, types, merges) = tiny_vocabulary();
    let types: Vec<Value> = types.into_iter().map(Value::I32).collect();
    let vocab = tokens.len();
    let head_dim = N_EMBD / N_HEAD;
    let str_arr = |v: Vec<String>| Value::Array(v.into_iter().map(Value::String).collect());
    let metadata: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("llama".into())),
        ("general.name", Value::String("tiny-random-llama".into())),
        ("llama.block_count", Value::U32(N_LAYER as u32)),
        ("llama.context_length", Value::U32(TINY_CONTEXT)),
        ("llama.embedding_length", Value::U32(N_EMBD as u32)),
        ("llama.feed_forward_length", Value::U32(N_FF as u32)),
        ("llama.attention.head_count", Value::U32(N_HEAD as u32)),
        ("llama.attention.head_count_kv", Value::U32(N_HEAD_KV as u32)),
        ("llama.rope.freq_base", Value::F32(10_000.0)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ("llama.vocab_size", Value::U32(vocab as u32)),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("smollm".into())),
        ("tokenizer.ggml.tokens", str_arr(tokens)),
        ("tokenizer.ggml.token_type", Value::Array(types)),
        ("tokenizer.ggml.merges", str_arr(merges)),
        ("tokenizer.ggml.bos_token_id", Value::U32(1)),
        ("tokenizer.ggml.eos_token_id", Value::U32(2)),
        ("tokenizer.ggml.add_bos_token", Value::Bool(false)),
    ];
    let dev = Device::Cpu;
    let mut seed = 0x5EEDu64;
    let mut rand_tensor = |shape: &[usize], scale: f32| -> Result<Tensor, String> {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                ((seed % 20_001) as f32 / 10_000.0 - 1.0) * scale
            })
            .collect();
        Tensor::from_vec(data, shape, &dev).map_err(|e| e.to_string())
    };
    let q = |t: Tensor, dtype: GgmlDType| QTensor::quantize(&t, dtype).map_err(|e| e.to_string());
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    tensors.push(("token_embd.weight".into(), q(rand_tensor(&[vocab, N_EMBD], 1.0)?, GgmlDType::Q8_0)?));
    tensors.push((
        "output_norm.weight".into(),
        q(Tensor::ones(N_EMBD, candle_core::DType::F32, &dev).map_err(|e| e.to_string())?, GgmlDType::F32)?,
    ));
    for l in 0..N_LAYER {
        let ones = || Tensor::ones(N_EMBD, candle_core::DType::F32, &dev).map_err(|e| e.to_string());
        let name = |s: &str| format!("blk.{l}.{s}.weight");
        tensors.push((name("attn_norm"), q(ones()?, GgmlDType::F32)?));
        tensors.push((name("ffn_norm"), q(ones()?, GgmlDType::F32)?));
        // Q4_1 like the default model, so the re-quantizing path is exercised.
        for (s, rows, cols) in [
            ("attn_q", N_EMBD, N_EMBD),
            ("attn_k", N_HEAD_KV * head_dim, N_EMBD),
            ("attn_v", N_HEAD_KV * head_dim, N_EMBD),
            ("attn_output", N_EMBD, N_EMBD),
            ("ffn_gate", N_FF, N_EMBD),
            ("ffn_up", N_FF, N_EMBD),
            ("ffn_down", N_EMBD, N_FF),
        ] {
            tensors.push((name(s), q(rand_tensor(&[rows, cols], 0.3)?, GgmlDType::Q4_1)?));
        }
    }
    let mut file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut file, &md, &ts).map_err(|e| e.to_string())
}
