//! Byte-level BPE (GPT-2 style): text bytes are mapped to printable
//! characters, then adjacent symbols are merged by merge rank.

use super::TokenizerError;
use std::collections::HashMap;

/// GPT-2's byte → printable char table: printable Latin-1 bytes map to
/// themselves, the rest to U+0100 onwards, so every byte is a visible char.
pub fn byte_chars() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let code = if printable {
            u32::from(b)
        } else {
            let c = next;
            next += 1;
            c
        };
        table[b as usize] = char::from_u32(code).unwrap_or('\u{FFFD}');
    }
    table
}

pub(crate) struct BytePairEncoder {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
    /// (left id, right id) → (rank, merged id).
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// Token id of each single byte.
    byte_ids: [Option<u32>; 256],
    /// Byte of each byte-char, for decoding.
    char_bytes: HashMap<char, u8>,
}

impl BytePairEncoder {
    pub(crate) fn new(tokens: &[String], merges: &[String]) -> Result<Self, TokenizerError> {
        let ids: HashMap<String, u32> = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let table = byte_chars();
        let mut byte_ids = [None; 256];
        let mut char_bytes = HashMap::with_capacity(256);
        for (b, c) in table.iter().enumerate() {
            byte_ids[b] = ids.get(&c.to_string()).copied();
            char_bytes.insert(*c, b as u8);
        }
        let mut merge_map = HashMap::with_capacity(merges.len());
        for (rank, m) in merges.iter().enumerate() {
            let Some((a, b)) = m.split_once(' ') else {
                return Err(TokenizerError::InvalidMetadata(format!("merge {rank} '{m}' has no space")));
            };
            let (Some(&ia), Some(&ib)) = (ids.get(a), ids.get(b)) else {
                continue; // merges of tokens outside the vocabulary can never fire
            };
            let Some(&merged) = ids.get(&format!("{a}{b}")) else {
                continue;
            };
            merge_map.entry((ia, ib)).or_insert((rank as u32, merged));
        }
        Ok(BytePairEncoder { tokens: tokens.to_vec(), ids, merges: merge_map, byte_ids, char_bytes })
    }

    pub(crate) fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    pub(crate) fn id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// Encodes one pre-tokenized piece, appending ids to `out`.
    pub(crate) fn encode_piece(&self, piece: &[u8], out: &mut Vec<u32>) {
        let mut symbols: Vec<u32> = Vec::with_capacity(piece.len());
        for &b in piece {
            match self.byte_ids[b as usize] {
                Some(id) => symbols.push(id),
                // A vocabulary without this byte cannot encode it; skip rather than panic.
                None => continue,
            }
        }
        // Repeatedly merge the lowest-ranked adjacent pair. Pieces are short
        // (a word), so the quadratic scan is cheaper than a heap.
        loop {
            let mut best: Option<(u32, usize, u32)> = None;
            for i in 0..symbols.len().saturating_sub(1) {
                if let Some(&(rank, merged)) = self.merges.get(&(symbols[i], symbols[i + 1])) {
                    if best.is_none_or(|(r, _, _)| rank < r) {
                        best = Some((rank, i, merged));
                    }
                }
            }
            let Some((_, i, merged)) = best else { break };
            symbols[i] = merged;
            symbols.remove(i + 1);
        }
        out.extend_from_slice(&symbols);
    }

    /// The bytes a token stands for.
    pub(crate) fn decode_token(&self, id: u32) -> Vec<u8> {
        let Some(text) = self.token(id) else {
            return Vec::new();
        };
        text.chars()
            .flat_map(|c| match self.char_bytes.get(&c) {
                Some(b) => vec![*b],
                // Not a byte-char (a user-defined token): its UTF-8 as is.
                None => c.to_string().into_bytes(),
            })
            .collect()
    }
}
