//! Typed placeholders: `[EMAIL_1]`, `[CREDIT_CARD_2]`, … where N counts
//! the distinct values of a type within one request (the same address
//! twice is `[EMAIL_1]` twice). The map back to the values lives with the
//! request only (for reversible redaction), never in a store or a log.

use super::pii::{Entity, Finding};
use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct Redactor {
    numbers: HashMap<(Entity, String), usize>,
    counts: HashMap<Entity, usize>,
    /// Placeholder → the value it stands for.
    pub originals: Vec<(String, String)>,
}

impl Redactor {
    /// A redactor that goes on from `originals` (an input redaction of the
    /// same request): the same value keeps its placeholder, a new one gets
    /// the next number, so restoring the caller's values never puts one of
    /// them in place of another value.
    pub fn seeded(originals: &[(String, String)]) -> Self {
        let mut r = Redactor::default();
        for (p, v) in originals {
            let inner = p.trim_start_matches('[').trim_end_matches(']');
            let Some((tag, n)) = inner.rsplit_once('_') else { continue };
            let (Some(entity), Ok(n)) = (super::pii::ALL.into_iter().find(|e| e.tag() == tag), n.parse::<usize>())
            else {
                continue;
            };
            r.numbers.insert((entity, v.clone()), n);
            let c = r.counts.entry(entity).or_insert(0);
            *c = (*c).max(n);
        }
        r
    }

    pub fn placeholder(&mut self, entity: Entity, value: &str) -> String {
        let key = (entity, value.to_string());
        let n = match self.numbers.get(&key) {
            Some(n) => *n,
            None => {
                let c = self.counts.entry(entity).or_insert(0);
                *c += 1;
                self.numbers.insert(key, *c);
                let p = format!("[{}_{}]", entity.tag(), *c);
                self.originals.push((p, value.to_string()));
                *c
            }
        };
        format!("[{}_{n}]", entity.tag())
    }

    /// `text` with each finding (sorted, not overlapping) replaced.
    pub fn redact(&mut self, text: &str, findings: &[Finding]) -> String {
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for f in findings {
            if f.start < at || f.end > text.len() {
                continue;
            }
            out.push_str(&text[at..f.start]);
            out.push_str(&self.placeholder(f.entity, &text[f.start..f.end]));
            at = f.end;
        }
        out.push_str(&text[at..]);
        out
    }
}

/// `text` with every placeholder of `originals` put back.
pub fn restore(text: &str, originals: &[(String, String)]) -> String {
    let mut out = text.to_string();
    for (p, v) in originals {
        if out.contains(p.as_str()) {
            out = out.replace(p.as_str(), v);
        }
    }
    out
}

/// The longest placeholder of a map (a stream's hold-back for restoring).
pub fn longest(originals: &[(String, String)]) -> usize {
    originals.iter().map(|(p, _)| p.len()).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guardrails::pii::{find, ALL};

    #[test]
    fn distinct_values_get_their_own_numbers_and_come_back() {
        let text = "a@x.io, b@x.io, a@x.io and 4111 1111 1111 1111";
        let mut r = Redactor::default();
        let red = r.redact(text, &find(text, &ALL));
        assert_eq!(red, "[EMAIL_1], [EMAIL_2], [EMAIL_1] and [CREDIT_CARD_1]");
        assert_eq!(restore(&red, &r.originals), text);
        assert_eq!(longest(&r.originals), "[CREDIT_CARD_1]".len());
        // Going on from an input redaction: the caller's value keeps its
        // placeholder, another address gets the next number.
        let mut out = Redactor::seeded(&r.originals);
        let answer = "write to billing@corp.com or a@x.io";
        assert_eq!(out.redact(answer, &find(answer, &ALL)), "write to [EMAIL_3] or [EMAIL_1]");
    }
}
