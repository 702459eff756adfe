//! Checking text that arrives in pieces: a bounded hold-back window.
//!
//! New text joins what is held back; the guard runs over the held text; the
//! part that no later text can change any more is released, redacted. A
//! cut never falls inside a finding, nor inside a run of non-space
//! characters that reaches the end of what arrived (a secret, an address or
//! a placeholder still arriving), nor within the last `window` bytes. So a
//! value split across any number of chunks is seen whole, and the delay a
//! client sees is bounded by the window (a run of non-space characters is
//! released once it passes `4 × window`).

/// What `HoldBack::feed` decided.
#[derive(Debug, PartialEq)]
pub enum Release {
    /// Text the client may have now (possibly empty).
    Text(String),
    /// A finding whose mode is `block`: nothing more goes out.
    Blocked(String),
}

pub struct HoldBack {
    held: String,
    window: usize,
}

/// Decides, for the held text, where findings are and what to do with
/// them: `Err(reason)` blocks; `Ok(spans)` lists the byte spans that are
/// findings (to redact, or to keep whole).
pub trait Scan {
    /// `last`: nothing more will come (a finding that touches the end of a
    /// text still arriving may yet grow into something else).
    fn scan(&mut self, text: &str, last: bool) -> Result<Vec<(usize, usize)>, String>;
    /// The held text up to `cut`, with the findings in it rewritten.
    fn rewrite(&mut self, text: &str, spans: &[(usize, usize)]) -> String;
}

impl HoldBack {
    pub fn new(window: usize) -> Self {
        HoldBack { held: String::new(), window: window.max(1) }
    }

    /// Adds `text`; `last`: nothing more will come (release everything).
    pub fn feed(&mut self, text: &str, last: bool, scan: &mut impl Scan) -> Release {
        self.held.push_str(text);
        let spans = match scan.scan(&self.held, last) {
            Ok(s) => s,
            Err(reason) => {
                self.held.clear();
                return Release::Blocked(reason);
            }
        };
        let cut = if last { self.held.len() } else { self.cut(&spans) };
        let before: Vec<(usize, usize)> = spans.iter().copied().filter(|(_, e)| *e <= cut).collect();
        let released = scan.rewrite(&self.held[..cut], &before);
        self.held.drain(..cut);
        Release::Text(released)
    }

    fn cut(&self, spans: &[(usize, usize)]) -> usize {
        let h = &self.held;
        let mut cut = h.len().saturating_sub(self.window);
        while !h.is_char_boundary(cut) {
            cut -= 1;
        }
        // Not inside a run of non-space characters that reaches the end.
        let run_start = h.char_indices().rev().find(|(_, c)| c.is_whitespace()).map_or(0, |(i, c)| i + c.len_utf8());
        if run_start < cut && h.len() - run_start <= 4 * self.window {
            cut = run_start;
        }
        // Not inside a finding.
        for (s, e) in spans {
            if *s < cut && cut < *e {
                cut = *s;
            }
        }
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guardrails::pii::{find, Entity, ALL};
    use crate::guardrails::redact::Redactor;

    struct Redacting(Redactor, bool);

    impl Scan for Redacting {
        fn scan(&mut self, text: &str, last: bool) -> Result<Vec<(usize, usize)>, String> {
            let f = find(text, &ALL);
            if self.1 && f.iter().any(|f| f.entity == Entity::CreditCard && (last || f.end < text.len())) {
                return Err("credit_card".into());
            }
            Ok(f.iter().map(|f| (f.start, f.end)).collect())
        }
        fn rewrite(&mut self, text: &str, spans: &[(usize, usize)]) -> String {
            let findings: Vec<_> = find(text, &ALL).into_iter().filter(|f| spans.contains(&(f.start, f.end))).collect();
            self.0.redact(text, &findings)
        }
    }

    fn run(chunks: &[&str], block: bool) -> (String, bool) {
        let mut h = HoldBack::new(96);
        let mut s = Redacting(Redactor::default(), block);
        let mut out = String::new();
        for (i, c) in chunks.iter().enumerate() {
            match h.feed(c, i + 1 == chunks.len(), &mut s) {
                Release::Text(t) => out.push_str(&t),
                Release::Blocked(_) => return (out, true),
            }
        }
        (out, false)
    }

    #[test]
    fn a_value_split_at_every_boundary_is_redacted() {
        let text = "Write to jane@example.com, card 4111 1111 1111 1111, key sk-abcdefghijklmnopqrstuvwx1234 thanks";
        let want = "Write to [EMAIL_1], card [CREDIT_CARD_1], key [SECRET_1] thanks";
        for i in 1..text.len() {
            for j in i..text.len() {
                let (a, b, c) = (&text[..i], &text[i..j], &text[j..]);
                assert_eq!(run(&[a, b, c], false).0, want, "split at {i}, {j}");
            }
        }
        // One byte at a time.
        let bytes: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert_eq!(run(&refs, false).0, want);
    }

    #[test]
    fn a_block_releases_nothing_of_the_value() {
        let text = "Sure, the number is 4111 1111 1111 1111 as requested.";
        for i in 1..text.len() {
            let (out, blocked) = run(&[&text[..i], &text[i..]], true);
            assert!(blocked);
            assert!(!out.replace(' ', "").contains("411111"), "{out}");
        }
    }
}
