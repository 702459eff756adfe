//! The model's own vocabulary as llguidance sees it: every token's bytes
//! (control tokens marked with llguidance's 0xFF prefix, so grammars can
//! never produce them as text), and all end-of-generation ids as its EOS.

use crate::tokenizer::Tokenizer;
use std::sync::Arc;
use toktrie::{TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};

struct Vocab {
    trie: TokTrie,
    tokenizer: Arc<Tokenizer>,
}

impl TokenizerEnv for Vocab {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        // Grammars hand over text they force (literals); ours is UTF-8
        // whenever they do, and the BOS the encoder may add is no text.
        let mut ids = self.tokenizer.encode(&String::from_utf8_lossy(s));
        if self.tokenizer.bos_id().is_some() && ids.first() == self.tokenizer.bos_id().as_ref() {
            ids.remove(0);
        }
        ids
    }
}

/// The token environment of `tokenizer`, built once per model.
pub(crate) fn tok_env(tokenizer: &Arc<Tokenizer>) -> Result<TokEnv, String> {
    let n = tokenizer.vocab_size();
    let words: Vec<Vec<u8>> = (0..n as u32)
        .map(|id| match tokenizer.special_text(id) {
            Some(text) => [&[TokTrie::SPECIAL_TOKEN_MARKER][..], text.as_bytes()].concat(),
            None => tokenizer.token_bytes(id),
        })
        .collect();
    let eos = tokenizer.end_of_generation_ids();
    let first = *eos.first().ok_or("the model has no end-of-generation token")?;
    let info = TokRxInfo::new(n as u32, first);
    let trie = TokTrie::from(&info, &words).with_eos_tokens(eos);
    Ok(Arc::new(Vocab { trie, tokenizer: tokenizer.clone() }))
}
