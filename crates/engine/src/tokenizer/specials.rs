//! Special and user-defined tokens written in the text become their single
//! ids before the text is encoded, exactly as llama.cpp partitions it:
//! tokens are taken longest first, and each one's occurrences left to
//! right in what no longer token has claimed. (Earliest-match-first gives
//! other ids where two such tokens overlap.)

use aho_corasick::AhoCorasick;

/// A stretch of the input: ordinary text, or one special token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fragment<'a> {
    Text(&'a str),
    Token(u32),
}

pub(crate) struct Specials {
    matcher: Option<AhoCorasick>,
    /// Per pattern, longest first (the matcher's pattern order): its id.
    ids: Vec<u32>,
}

impl Specials {
    /// `tokens` are (text, id) pairs; empty texts never match.
    pub(crate) fn new(mut tokens: Vec<(String, u32)>) -> Self {
        tokens.retain(|(t, _)| !t.is_empty());
        // Longest first; equal lengths by id, so the order is deterministic.
        tokens.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        let matcher = if tokens.is_empty() {
            None
        } else {
            AhoCorasick::new(tokens.iter().map(|(t, _)| t.as_str())).ok()
        };
        Specials { matcher, ids: tokens.iter().map(|(_, id)| *id).collect() }
    }

    /// The text cut into ordinary stretches and special tokens, in order.
    pub(crate) fn partition<'a>(&self, text: &'a str) -> Vec<Fragment<'a>> {
        let Some(matcher) = &self.matcher else {
            return if text.is_empty() { Vec::new() } else { vec![Fragment::Text(text)] };
        };
        let mut found: Vec<(usize, usize, usize)> =
            matcher.find_overlapping_iter(text).map(|m| (m.pattern().as_usize(), m.start(), m.end())).collect();
        if found.is_empty() {
            return if text.is_empty() { Vec::new() } else { vec![Fragment::Text(text)] };
        }
        found.sort_unstable();
        let mut taken = vec![false; text.len()];
        let mut chosen: Vec<(usize, usize, u32)> = Vec::new();
        for (rank, start, end) in found {
            if taken[start..end].iter().any(|t| *t) {
                continue;
            }
            taken[start..end].iter_mut().for_each(|t| *t = true);
            chosen.push((start, end, self.ids[rank]));
        }
        chosen.sort_unstable();
        let mut out = Vec::with_capacity(2 * chosen.len() + 1);
        let mut pos = 0;
        for (start, end, id) in chosen {
            if start > pos {
                out.push(Fragment::Text(&text[pos..start]));
            }
            out.push(Fragment::Token(id));
            pos = end;
        }
        if pos < text.len() {
            out.push(Fragment::Text(&text[pos..]));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_token_claims_first_even_when_it_starts_later() {
        let s = Specials::new(vec![("ab".into(), 1), ("bcd".into(), 2)]);
        assert_eq!(s.partition("xabcd"), vec![Fragment::Text("xa"), Fragment::Token(2)]);
        assert_eq!(s.partition("abab"), vec![Fragment::Token(1), Fragment::Token(1)]);
        assert_eq!(s.partition(""), vec![]);
        let nl = Specials::new(vec![("\n".into(), 7), ("\n\n".into(), 8)]);
        assert_eq!(nl.partition("a\n\n\nb"), vec![
            Fragment::Text("a"),
            Fragment::Token(8),
            Fragment::Token(7),
            Fragment::Text("b")
        ]);
    }
}
