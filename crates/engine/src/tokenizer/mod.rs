//! Tokenizer built from a GGUF file's own metadata (`tokenizer.ggml.*`), so
//! any GGUF works without a separate tokenizer.json. Token ids equal
//! llama.cpp's (tests/data/reference holds its recorded answers).
//!
//! - `bpe`: byte-level BPE (`tokenizer.ggml.model = "gpt2"`: SmolLM, Qwen, Llama 3).
//! - `spm`: SentencePiece-style (`"llama"`: Llama 2, Mistral, Gemma, Phi-3).
//! - `pretokenize`: the split regexes named by `tokenizer.ggml.pre` (BPE).
//! - `specials`: control and user-defined tokens written in the text.
//! - `stream`: incremental decoding that only emits whole UTF-8 characters.

mod bpe;
pub use bpe::byte_chars;
mod pretokenize;
mod specials;
mod spm;
mod stream;

pub use stream::StreamDecoder;

use bpe::BytePairEncoder;
use pretokenize::PreTokenizer;
use specials::{Fragment, Specials};
use spm::SentencePiece;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TokenizerError {
    #[error("unsupported tokenizer model '{0}' (byte-level BPE 'gpt2' and SentencePiece 'llama' are supported)")]
    UnsupportedModel(String),
    #[error("tokenizer metadata is invalid: {0}")]
    InvalidMetadata(String),
}

/// GGUF `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
const TOKEN_TYPE_UNKNOWN: i32 = 2;
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// The tokenizer metadata a GGUF file carries, already extracted.
#[derive(Debug, Clone, Default)]
pub struct TokenizerSpec {
    pub model: String,
    pub pre: Option<String>,
    pub tokens: Vec<String>,
    pub token_types: Vec<i32>,
    /// SentencePiece merge scores (`tokenizer.ggml.scores`).
    pub scores: Vec<f32>,
    pub merges: Vec<String>,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub unk_id: Option<u32>,
    /// Extra end-of-generation ids (`tokenizer.ggml.eot_token_id`, `eom_token_id`).
    pub extra_eog_ids: Vec<u32>,
    pub add_bos: bool,
    pub add_eos: bool,
    /// SentencePiece: a space before text that follows the start or a special token.
    pub add_space_prefix: bool,
}

enum Model {
    Bpe { bpe: BytePairEncoder, pre: PreTokenizer },
    Spm { spm: SentencePiece, add_space_prefix: bool },
}

pub struct Tokenizer {
    model: Model,
    /// Control and user-defined tokens, matched verbatim in text.
    specials: Specials,
    /// Control (and unknown) tokens: no text of their own.
    is_control: Vec<bool>,
    /// User-defined tokens: their text as written, never merged or escaped.
    is_user_defined: Vec<bool>,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    eog_ids: Vec<u32>,
    add_bos: bool,
    add_eos: bool,
}

impl Tokenizer {
    pub fn from_spec(spec: &TokenizerSpec) -> Result<Self, TokenizerError> {
        let vocab_size = spec.tokens.len();
        if vocab_size == 0 {
            return Err(TokenizerError::InvalidMetadata("empty token list".into()));
        }
        if !spec.token_types.is_empty() && spec.token_types.len() != vocab_size {
            return Err(TokenizerError::InvalidMetadata(format!(
                "{} token types for {} tokens",
                spec.token_types.len(),
                vocab_size
            )));
        }
        let model = match spec.model.as_str() {
            "gpt2" => Model::Bpe {
                bpe: BytePairEncoder::new(&spec.tokens, &spec.merges)?,
                pre: PreTokenizer::for_name(spec.pre.as_deref()),
            },
            "llama" => Model::Spm {
                spm: SentencePiece::new(&spec.tokens, &spec.scores, spec.unk_id)?,
                add_space_prefix: spec.add_space_prefix,
            },
            other => return Err(TokenizerError::UnsupportedModel(other.to_string())),
        };
        let mut is_control = vec![false; vocab_size];
        let mut is_user_defined = vec![false; vocab_size];
        let mut specials = Vec::new();
        for (id, ty) in spec.token_types.iter().enumerate() {
            match *ty {
                TOKEN_TYPE_CONTROL | TOKEN_TYPE_UNKNOWN => is_control[id] = true,
                TOKEN_TYPE_USER_DEFINED => is_user_defined[id] = true,
                _ => continue,
            }
            specials.push((spec.tokens[id].clone(), id as u32));
        }
        for id in spec.bos_id.iter().chain(&spec.eos_id).chain(&spec.unk_id).chain(&spec.extra_eog_ids) {
            if *id as usize >= vocab_size {
                return Err(TokenizerError::InvalidMetadata(format!("special token id {id} out of range")));
            }
        }
        // End-of-generation: the declared eos plus the well-known end-of-turn
        // control tokens (as llama.cpp does), so chat models stop at their turn end.
        let mut eog_ids: Vec<u32> = spec.eos_id.into_iter().chain(spec.extra_eog_ids.iter().copied()).collect();
        for (text, id) in &specials {
            if is_control[*id as usize]
                && matches!(
                    text.as_str(),
                    "<|im_end|>" | "<|eot_id|>" | "<|endoftext|>" | "<|end|>" | "<end_of_turn>" | "<|eom_id|>"
                )
                && !eog_ids.contains(id)
            {
                eog_ids.push(*id);
            }
        }
        Ok(Tokenizer {
            model,
            specials: Specials::new(specials),
            is_control,
            is_user_defined,
            bos_id: spec.bos_id,
            eos_id: spec.eos_id,
            eog_ids,
            add_bos: spec.add_bos,
            add_eos: spec.add_eos,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.is_control.len()
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// Whether `encode` puts BOS first.
    pub fn adds_bos(&self) -> bool {
        self.add_bos && self.bos_id.is_some()
    }

    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }

    pub fn is_end_of_generation(&self, id: u32) -> bool {
        self.eog_ids.contains(&id)
    }

    pub fn end_of_generation_ids(&self) -> &[u32] {
        &self.eog_ids
    }

    /// The vocabulary kind, as GGUF names it (`gpt2`, `llama`).
    pub fn kind(&self) -> &'static str {
        match self.model {
            Model::Bpe { .. } => "gpt2",
            Model::Spm { .. } => "llama",
        }
    }

    pub fn token_text(&self, id: u32) -> Option<&str> {
        match &self.model {
            Model::Bpe { bpe, .. } => bpe.token(id),
            Model::Spm { spm, .. } => spm.token(id),
        }
    }

    pub fn token_id(&self, text: &str) -> Option<u32> {
        match &self.model {
            Model::Bpe { bpe, .. } => bpe.id(text),
            Model::Spm { spm, .. } => spm.id(text),
        }
    }

    /// Encodes text as llama.cpp tokenizes a prompt: special tokens written
    /// in the text (`<|im_start|>`) become their single ids; BOS (and EOS)
    /// are added when the file asks for them.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 2);
        if self.add_bos {
            ids.extend(self.bos_id);
        }
        // SentencePiece puts a space before text at the start or after a special token.
        let mut after_special = true;
        for fragment in self.specials.partition(text) {
            match fragment {
                Fragment::Token(id) => {
                    ids.push(id);
                    after_special = true;
                }
                Fragment::Text(t) => {
                    self.encode_ordinary(t, after_special, &mut ids);
                    after_special = false;
                }
            }
        }
        if self.add_eos {
            ids.extend(self.eos_id);
        }
        ids
    }

    fn encode_ordinary(&self, text: &str, after_special: bool, out: &mut Vec<u32>) {
        match &self.model {
            Model::Bpe { bpe, pre } => {
                for piece in pre.split(text) {
                    bpe.encode_piece(piece.as_bytes(), out);
                }
            }
            Model::Spm { spm, add_space_prefix } if *add_space_prefix && after_special => {
                spm.encode(&format!(" {text}"), out)
            }
            Model::Spm { spm, .. } => spm.encode(text, out),
        }
    }

    /// A control token's text (`<|im_end|>`); `None` for text tokens.
    pub fn special_text(&self, id: u32) -> Option<&str> {
        match self.is_control.get(id as usize) {
            Some(true) => self.token_text(id),
            _ => None,
        }
    }

    /// The raw bytes of one token; control tokens render as nothing,
    /// user-defined ones as written.
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        let i = id as usize;
        if self.is_control.get(i).copied().unwrap_or(true) {
            return Vec::new();
        }
        if self.is_user_defined[i] {
            return self.token_text(id).unwrap_or("").as_bytes().to_vec();
        }
        match &self.model {
            Model::Bpe { bpe, .. } => bpe.decode_token(id),
            Model::Spm { spm, .. } => spm.decode_token(id),
        }
    }

    /// Decodes ids to text, skipping control tokens; invalid UTF-8 becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|id| self.token_bytes(*id)).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pre = match &self.model {
            Model::Bpe { pre, .. } => pre.name(),
            Model::Spm { .. } => "sentencepiece",
        };
        f.debug_struct("Tokenizer").field("vocab_size", &self.vocab_size()).field("pre", &pre).finish()
    }
}

/// The tiny test vocabulary as a spec.
#[cfg(test)]
pub(crate) fn tiny_spec() -> TokenizerSpec {
    let (tokens, token_types, merges) = crate::testing::tiny_vocabulary();
    TokenizerSpec {
        model: "gpt2".into(),
        pre: Some("smollm".into()),
        tokens,
        token_types,
        merges,
        bos_id: Some(1),
        eos_id: Some(2),
        extra_eog_ids: vec![],
        ..TokenizerSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok() -> Tokenizer {
        match Tokenizer::from_spec(&tiny_spec()) {
            Ok(t) => t,
            Err(e) => unreachable!("tiny spec must load: {e}"),
        }
    }

    #[test]
    fn merges_apply_by_rank() {
        let t = tok();
        let ids = t.encode("hello world");
        let texts: Vec<&str> = ids.iter().filter_map(|i| t.token_text(*i)).collect();
        assert_eq!(texts, vec!["hello", "Ġworld"]);
    }

    #[test]
    fn special_tokens_are_single_ids() {
        let t = tok();
        let ids = t.encode("<|im_start|>hello<|im_end|>");
        assert_eq!(ids.first(), Some(&1));
        assert_eq!(ids.last(), Some(&2));
        assert_eq!(ids.len(), 3);
    }

    #[test]
    fn adjacent_and_repeated_special_tokens() {
        let t = tok();
        let ids = t.encode("<|im_start|><|im_end|>hello<|im_start|><|im_start|>");
        assert_eq!(ids.len(), 5);
        assert_eq!((ids[0], ids[1], ids[3], ids[4]), (1, 2, 1, 1));
        let many = "<|im_start|>a".repeat(20_000);
        assert_eq!(t.encode(&many).iter().filter(|&&i| i == 1).count(), 20_000);
    }

    #[test]
    fn round_trips_unicode() {
        let t = tok();
        for s in ["héllo wörld", "日本語のテキスト", "emoji 🦀🚀 mix", "tabs\tand\nnewlines  ", "12345 digits", ""]
        {
            assert_eq!(t.decode(&t.encode(s)), s);
        }
    }

    #[test]
    fn control_tokens_decode_to_nothing() {
        let t = tok();
        assert_eq!(t.decode(&[1, 2]), "");
        assert!(t.is_end_of_generation(2));
        assert!(t.is_end_of_generation(0));
        assert!(!t.is_end_of_generation(1));
    }

    #[test]
    fn rejects_other_models() {
        let spec = TokenizerSpec { model: "t5".into(), ..tiny_spec() };
        assert!(matches!(Tokenizer::from_spec(&spec), Err(TokenizerError::UnsupportedModel(_))));
    }
}
