//! SentencePiece-style vocabularies (`tokenizer.ggml.model = "llama"`:
//! Llama 2, TinyLlama, Mistral, Gemma, Phi-3), encoded as llama.cpp does:
//! spaces become `▁`, the text starts as one symbol per UTF-8 character,
//! and the adjacent pair whose concatenation is the highest-scoring token
//! merges first (leftmost on ties) until no pair is a token. A symbol left
//! that is no token falls back to its bytes (`<0xXX>`), else `<unk>`.

use super::TokenizerError;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

/// `▁`, SentencePiece's visible space.
const SPACE: &str = "\u{2581}";

pub(crate) struct SentencePiece {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
    scores: Vec<f32>,
    byte_ids: [Option<u32>; 256],
    /// Byte tokens (`<0x41>`) decode to their byte.
    byte_of: HashMap<u32, u8>,
    unk_id: Option<u32>,
}

/// A queued merge; the heap pops the highest score, then the leftmost.
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    len: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score.total_cmp(&other.score).then_with(|| other.left.cmp(&self.left))
    }
}

/// One symbol of the text being merged: a byte range and its neighbours.
#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

impl SentencePiece {
    pub(crate) fn new(tokens: &[String], scores: &[f32], unk_id: Option<u32>) -> Result<Self, TokenizerError> {
        if !scores.is_empty() && scores.len() != tokens.len() {
            return Err(TokenizerError::InvalidMetadata(format!(
                "{} scores for {} tokens",
                scores.len(),
                tokens.len()
            )));
        }
        let mut ids = HashMap::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            // The first of two equal texts wins, as in llama.cpp's map.
            ids.entry(t.clone()).or_insert(i as u32);
        }
        let mut byte_ids = [None; 256];
        let mut byte_of = HashMap::with_capacity(256);
        for b in 0..=255u8 {
            if let Some(&id) = ids.get(&format!("<0x{b:02X}>")) {
                byte_ids[b as usize] = Some(id);
                byte_of.insert(id, b);
            }
        }
        let scores = if scores.is_empty() { vec![0.0; tokens.len()] } else { scores.to_vec() };
        Ok(SentencePiece { tokens: tokens.to_vec(), ids, scores, byte_ids, byte_of, unk_id })
    }

    pub(crate) fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    pub(crate) fn id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// Encodes one stretch of ordinary text (no special tokens in it).
    pub(crate) fn encode(&self, text: &str, out: &mut Vec<u32>) {
        let text = text.replace(' ', SPACE);
        let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
        for (i, (start, c)) in text.char_indices().enumerate() {
            symbols.push(Symbol { start, len: c.len_utf8(), prev: i.checked_sub(1), next: Some(i + 1) });
        }
        let Some(last) = symbols.last_mut() else { return };
        last.next = None;
        let mut heap = BinaryHeap::new();
        let push = |heap: &mut BinaryHeap<Bigram>, symbols: &[Symbol], left: Option<usize>, right: Option<usize>| {
            let (Some(l), Some(r)) = (left, right) else { return };
            let (a, b) = (symbols[l], symbols[r]);
            let piece = &text[a.start..b.start + b.len];
            if let Some(&id) = self.ids.get(piece) {
                heap.push(Bigram { score: self.scores[id as usize], left: l, right: r, len: piece.len() });
            }
        };
        for i in 1..symbols.len() {
            push(&mut heap, &symbols, Some(i - 1), Some(i));
        }
        while let Some(bigram) = heap.pop() {
            let (l, r) = (symbols[bigram.left], symbols[bigram.right]);
            // Stale: one side merged since this pair was queued.
            if l.len == 0 || r.len == 0 || l.len + r.len != bigram.len || l.next != Some(bigram.right) {
                continue;
            }
            symbols[bigram.left].len += r.len;
            symbols[bigram.right].len = 0;
            symbols[bigram.left].next = r.next;
            if let Some(n) = r.next {
                symbols[n].prev = Some(bigram.left);
            }
            push(&mut heap, &symbols, l.prev, Some(bigram.left));
            push(&mut heap, &symbols, Some(bigram.left), r.next);
        }
        let mut at = Some(0);
        while let Some(i) = at {
            let s = symbols[i];
            let piece = &text[s.start..s.start + s.len];
            match self.ids.get(piece) {
                Some(&id) => out.push(id),
                None => {
                    for b in piece.bytes() {
                        if let Some(id) = self.byte_ids[b as usize].or(self.unk_id) {
                            out.push(id);
                        }
                    }
                }
            }
            at = s.next;
        }
    }

    /// The bytes an ordinary token stands for: `▁` back to spaces, byte
    /// tokens to their byte.
    pub(crate) fn decode_token(&self, id: u32) -> Vec<u8> {
        if let Some(b) = self.byte_of.get(&id) {
            return vec![*b];
        }
        self.token(id).map(|t| t.replace(SPACE, " ").into_bytes()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(entries: &[(&str, f32)]) -> SentencePiece {
        let mut tokens: Vec<String> = vec!["<unk>".into()];
        let mut scores = vec![0.0];
        for b in 0..=255u8 {
            tokens.push(format!("<0x{b:02X}>"));
            scores.push(0.0);
        }
        for (t, s) in entries {
            tokens.push((*t).into());
            scores.push(*s);
        }
        match SentencePiece::new(&tokens, &scores, Some(0)) {
            Ok(v) => v,
            Err(e) => unreachable!("{e}"),
        }
    }

    fn pieces(v: &SentencePiece, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        v.encode(text, &mut out);
        out.iter().filter_map(|i| v.token(*i).map(str::to_string)).collect()
    }

    #[test]
    fn highest_score_merges_first_and_spaces_become_the_marker() {
        let v = vocab(&[("a", -1.0), ("b", -1.0), ("ab", -2.0), ("bb", -1.5), ("▁", -1.0), ("▁a", -0.5)]);
        // "bb" outranks "ab": a + bb, not ab + b.
        assert_eq!(pieces(&v, "abb"), vec!["a", "bb"]);
        assert_eq!(pieces(&v, " ab"), vec!["▁a", "b"]);
    }

    #[test]
    fn ties_merge_leftmost_and_unknown_characters_fall_back_to_bytes() {
        let v = vocab(&[("a", -1.0), ("aa", -1.0)]);
        assert_eq!(pieces(&v, "aaa"), vec!["aa", "a"]);
        assert_eq!(pieces(&v, "é"), vec!["<0xC3>", "<0xA9>"]);
        let mut out = Vec::new();
        v.encode("aé", &mut out);
        let bytes: Vec<u8> = out.iter().flat_map(|i| v.decode_token(*i)).collect();
        assert_eq!(String::from_utf8_lossy(&bytes), "aé");
    }
}
