//! Pre-tokenization: the regex splits named by `tokenizer.ggml.pre`, applied
//! in sequence as llama.cpp does (each regex splits the pieces of the last,
//! keeping both matches and the text between them).

use fancy_regex::Regex;

const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const DIGITS: &str = r"\p{N}";

#[derive(Debug)]
pub(crate) struct PreTokenizer {
    name: String,
    stages: Vec<Regex>,
}

impl PreTokenizer {
    /// The split for a `tokenizer.ggml.pre` name; unknown names fall back to GPT-2's.
    pub(crate) fn for_name(name: Option<&str>) -> Self {
        let name = name.unwrap_or("default");
        let patterns: &[&str] = match name {
            // SmolLM / StarCoder: every digit on its own, then GPT-2's split.
            "smollm" | "starcoder" | "refact" => &[DIGITS, GPT2],
            "llama3" | "llama-bpe" | "llama-v3" | "falcon3" | "dbrx" | "smaug-bpe" => &[LLAMA3],
            "qwen2" | "deepseek-r1-qwen" => &[QWEN2],
            "gpt2" | "default" | "gpt-2" => &[GPT2],
            other => {
                tracing::warn!(pre = other, "unknown pre-tokenizer; using GPT-2's split");
                &[GPT2]
            }
        };
        let stages = patterns.iter().filter_map(|p| Regex::new(p).ok()).collect();
        PreTokenizer { name: name.to_string(), stages }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn split<'a>(&self, text: &'a str) -> Vec<&'a str> {
        let mut pieces = vec![text];
        for re in &self.stages {
            let mut next = Vec::with_capacity(pieces.len() * 2);
            for piece in pieces {
                split_keep(re, piece, &mut next);
            }
            pieces = next;
        }
        pieces
    }
}

/// Splits `text` into regex matches and the gaps between them, in order.
fn split_keep<'a>(re: &Regex, text: &'a str, out: &mut Vec<&'a str>) {
    let mut last = 0;
    for m in re.find_iter(text) {
        // A regex error here means backtracking blew its limit on hostile
        // input; keep the rest of the text as one piece rather than fail.
        let Ok(m) = m else { break };
        if m.start() > last {
            out.push(&text[last..m.start()]);
        }
        if m.end() > m.start() {
            out.push(m.as_str());
        }
        last = m.end();
    }
    if last < text.len() {
        out.push(&text[last..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smollm_splits_digits_and_words() {
        let p = PreTokenizer::for_name(Some("smollm"));
        assert_eq!(p.split("Hello world 123!"), vec!["Hello", " world", " ", "1", "2", "3", "!"]);
    }

    #[test]
    fn whitespace_before_word_stays_with_word() {
        let p = PreTokenizer::for_name(Some("gpt2"));
        assert_eq!(p.split("a   b"), vec!["a", "  ", " b"]);
        assert_eq!(p.split("it's"), vec!["it", "'s"]);
    }

    #[test]
    fn every_stage_covers_the_text() {
        for name in ["smollm", "llama3", "qwen2", "gpt2", "something-new"] {
            let p = PreTokenizer::for_name(Some(name));
            let text = "Mixed: 日本 3.14 don't\n\n  spaces\t🚀";
            assert_eq!(p.split(text).concat(), text, "{name}");
        }
    }
}
