//! Tokenizer built from a GGUF file's own metadata (`tokenizer.ggml.*`), so
//! any llama-family GGUF works without a separate tokenizer.json.
//!
//! - `bpe`: byte-level BPE (`tokenizer.ggml.model = "gpt2"`).
//! - `pretokenize`: the split regexes named by `tokenizer.ggml.pre`.
//! - `stream`: incremental decoding that only emits whole UTF-8 characters.

mod bpe;
pub use bpe::byte_chars;
mod pretokenize;
mod stream;

pub use stream::StreamDecoder;

use bpe::BytePairEncoder;
use pretokenize::PreTokenizer;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TokenizerError {
    #[error("unsupported tokenizer model '{0}' (only byte-level BPE, 'gpt2', is supported)")]
    UnsupportedModel(String),
    #[error("tokenizer metadata is invalid: {0}")]
    InvalidMetadata(String),
}

/// GGUF `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// The tokenizer metadata a GGUF file carries, already extracted.
#[derive(Debug, Clone, Default)]
pub struct TokenizerSpec {
    pub model: String,
    pub pre: Option<String>,
    pub tokens: Vec<String>,
    pub token_types: Vec<i32>,
    pub merges: Vec<String>,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    /// Extra end-of-generation ids (`tokenizer.ggml.eot_token_id`, `eom_token_id`).
    pub extra_eog_ids: Vec<u32>,
    pub add_bos: bool,
}

pub struct Tokenizer {
    bpe: BytePairEncoder,
    pre: PreTokenizer,
    /// Special tokens matched verbatim in text, longest first.
    specials: Vec<(String, u32)>,
    is_special: Vec<bool>,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    eog_ids: Vec<u32>,
    add_bos: bool,
}

impl Tokenizer {
    pub fn from_spec(spec: &TokenizerSpec) -> Result<Self, TokenizerError> {
        if spec.model != "gpt2" {
            return Err(TokenizerError::UnsupportedModel(spec.model.clone()));
        }
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
        let mut is_special = vec![false; vocab_size];
        let mut specials = Vec::new();
        for (id, ty) in spec.token_types.iter().enumerate() {
            if *ty == TOKEN_TYPE_CONTROL || *ty == TOKEN_TYPE_USER_DEFINED {
                is_special[id] = true;
                if !spec.tokens[id].is_empty() {
                    specials.push((spec.tokens[id].clone(), id as u32));
                }
            }
        }
        specials.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        let bpe = BytePairEncoder::new(&spec.tokens, &spec.merges)?;
        let pre = PreTokenizer::for_name(spec.pre.as_deref());
        for id in spec.bos_id.iter().chain(spec.eos_id.iter()).chain(spec.extra_eog_ids.iter()) {
            if *id as usize >= vocab_size {
                return Err(TokenizerError::InvalidMetadata(format!("special token id {id} out of range")));
            }
        }
        // End-of-generation: the declared eos plus the well-known end-of-turn
        // control tokens (as llama.cpp does), so chat models stop at their turn end.
        let mut eog_ids: Vec<u32> = spec.eos_id.into_iter().chain(spec.extra_eog_ids.iter().copied()).collect();
        for (text, id) in &specials {
            if matches!(
                text.as_str(),
                "<|im_end|>" | "<|eot_id|>" | "<|endoftext|>" | "<|end|>" | "<end_of_turn>" | "<|eom_id|>"
            ) && !eog_ids.contains(id)
            {
                eog_ids.push(*id);
            }
        }
        Ok(Tokenizer {
            bpe,
            pre,
            specials,
            is_special,
            bos_id: spec.bos_id,
            eos_id: spec.eos_id,
            eog_ids,
            add_bos: spec.add_bos,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.is_special.len()
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
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

    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.bpe.token(id)
    }

    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.bpe.id(text)
    }

    /// Encodes text. Special tokens written in the text (`<|im_start|>`) become
    /// their single ids; the BOS token is prepended when the model asks for it.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 2);
        if self.add_bos {
            if let Some(bos) = self.bos_id {
                ids.push(bos);
            }
        }
        // Next occurrence of each special token, refreshed only once passed,
        // so the text is scanned once per special token, not once per match.
        let find_from = |s: &str, from: usize| text[from..].find(s).map(|p| p + from);
        let mut next: Vec<Option<usize>> = self.specials.iter().map(|(s, _)| find_from(s, 0)).collect();
        let mut pos = 0;
        loop {
            // Earliest match; the longest special wins at equal positions (sorted longest first).
            let best = next.iter().enumerate().filter_map(|(i, p)| p.map(|p| (p, i))).min();
            let Some((start, i)) = best else {
                self.encode_ordinary(&text[pos..], &mut ids);
                break;
            };
            let (special, id) = &self.specials[i];
            self.encode_ordinary(&text[pos..start], &mut ids);
            ids.push(*id);
            pos = start + special.len();
            for (j, p) in next.iter_mut().enumerate() {
                if p.is_some_and(|p| p < pos) {
                    *p = find_from(&self.specials[j].0, pos);
                }
            }
        }
        ids
    }

    fn encode_ordinary(&self, text: &str, out: &mut Vec<u32>) {
        for piece in self.pre.split(text) {
            self.bpe.encode_piece(piece.as_bytes(), out);
        }
    }

    /// A control token's text (`<|im_end|>`); `None` for ordinary tokens.
    pub fn special_text(&self, id: u32) -> Option<&str> {
        match self.is_special.get(id as usize) {
            Some(true) => self.bpe.token(id),
            _ => None,
        }
    }

    /// The raw bytes of one token; control tokens render as nothing.
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        if self.is_special.get(id as usize).copied().unwrap_or(false) {
            return Vec::new();
        }
        self.bpe.decode_token(id)
    }

    /// Decodes ids to text, skipping control tokens; invalid UTF-8 becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|id| self.token_bytes(*id)).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer").field("vocab_size", &self.vocab_size()).field("pre", &self.pre.name()).finish()
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
        add_bos: false,
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
        let spec = TokenizerSpec { model: "llama".into(), ..tiny_spec() };
        assert!(matches!(Tokenizer::from_spec(&spec), Err(TokenizerError::UnsupportedModel(_))));
    }
}
