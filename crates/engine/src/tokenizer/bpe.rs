//! Byte-level BPE (GPT-2 style): text bytes are mapped to printable
//! characters, then adjacent symbols are merged by merge rank.

use super::TokenizerError;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

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
    ///
    /// Merges the lowest-ranked adjacent pair first (leftmost on ties), as
    /// GPT-2 BPE does, with a heap and a linked list of symbols: O(n log n),
    /// so a hostile prompt of one 4 MB "word" cannot stall the server.
    pub(crate) fn encode_piece(&self, piece: &[u8], out: &mut Vec<u32>) {
        // A vocabulary without some byte cannot encode it; skip rather than panic.
        let mut ids: Vec<u32> = piece.iter().filter_map(|&b| self.byte_ids[b as usize]).collect();
        let n = ids.len();
        if n < 2 {
            out.extend_from_slice(&ids);
            return;
        }
        let mut next: Vec<usize> = (1..=n).collect(); // n = end
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect(); // usize::MAX = start
        let mut alive = vec![true; n];
        let mut heap = BinaryHeap::new();
        let push = |heap: &mut BinaryHeap<Reverse<(u32, usize, u32, u32)>>, ids: &[u32], i: usize, j: usize| {
            if let Some(&(rank, _)) = self.merges.get(&(ids[i], ids[j])) {
                heap.push(Reverse((rank, i, ids[i], ids[j])));
            }
        };
        for i in 0..n - 1 {
            push(&mut heap, &ids, i, i + 1);
        }
        while let Some(Reverse((rank, i, left, right))) = heap.pop() {
            let j = next[i];
            // Stale entry: a symbol changed since it was queued.
            if !alive[i] || j >= n || ids[i] != left || ids[j] != right {
                continue;
            }
            let Some(&(r, merged)) = self.merges.get(&(left, right)) else { continue };
            if r != rank {
                continue;
            }
            ids[i] = merged;
            alive[j] = false;
            next[i] = next[j];
            if next[j] < n {
                prev[next[j]] = i;
            }
            if prev[i] != usize::MAX {
                push(&mut heap, &ids, prev[i], i);
            }
            if next[i] < n {
                push(&mut heap, &ids, i, next[i]);
            }
        }
        let mut i = 0;
        while i < n {
            out.push(ids[i]);
            i = next[i];
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn encoder(merges: &[&str]) -> BytePairEncoder {
        let mut tokens: Vec<String> = byte_chars().iter().map(|c| c.to_string()).collect();
        tokens.extend(merges.iter().map(|m| m.replace(' ', "")));
        let merges: Vec<String> = merges.iter().map(|m| m.to_string()).collect();
        match BytePairEncoder::new(&tokens, &merges) {
            Ok(e) => e,
            Err(e) => unreachable!("{e}"),
        }
    }

    fn encode(e: &BytePairEncoder, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        e.encode_piece(text.as_bytes(), &mut out);
        out.iter().filter_map(|i| e.token(*i).map(str::to_string)).collect()
    }

    #[test]
    fn lowest_rank_merges_first_and_leftmost_on_ties() {
        let e = encoder(&["a a", "b b", "aa aa"]);
        assert_eq!(encode(&e, "aaaaa"), vec!["aaaa", "a"]);
        assert_eq!(encode(&e, "abba"), vec!["a", "bb", "a"]);
        let e = encoder(&["b c", "a b"]);
        assert_eq!(encode(&e, "abc"), vec!["a", "bc"]);
    }

    #[test]
    fn a_huge_single_word_encodes_quickly() {
        let e = encoder(&["a a", "aa aa", "aaaa aaaa"]);
        let text = "a".repeat(1 << 20);
        let t = std::time::Instant::now();
        let out = encode(&e, &text);
        assert_eq!(out.len(), (1 << 20) / 8);
        // Quadratic merging would take hours here; allow a generous bound.
        assert!(t.elapsed().as_secs() < 20, "{:?}", t.elapsed());
    }
}
