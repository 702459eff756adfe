//! Personal data and secrets in text: each entity type a compiled pattern
//! (the `regex` crate: linear time, no backtracking) and, where the type
//! has one, its checksum or validity rule, so that order numbers, versions,
//! dates and numbers that fail the checksum are not taken for PII:
//!
//! - e-mail addresses;
//! - phone numbers: E.164 (`+` and 8 to 15 digits, separators allowed) and
//!   the common national formats `(555) 123-4567`, `555-123-4567`,
//!   `555.123.4567`, `020 7946 0958`;
//! - US SSNs `AAA-GG-SSSS` (area not 000, 666 or 900–999, group not 00,
//!   serial not 0000);
//! - payment cards: 13 to 19 digits, spaces or dashes between groups, Luhn;
//! - IBANs: country, check digits, 11 to 30 letters or digits, mod 97 = 1;
//! - IPv4 and IPv6 addresses (parsed by the standard library);
//! - secrets: known key prefixes (OpenAI, Anthropic, AWS, GitHub, Slack,
//!   Google, Stripe, private-key headers) and long random-looking tokens
//!   (≥ 32 characters, letters and digits mixed, ≥ 4 bits of entropy per
//!   character).

use regex::Regex;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    Email,
    Phone,
    UsSsn,
    CreditCard,
    Iban,
    IpAddress,
    Secret,
}

pub const ALL: [Entity; 7] =
    [Entity::Email, Entity::Phone, Entity::UsSsn, Entity::CreditCard, Entity::Iban, Entity::IpAddress, Entity::Secret];

impl Entity {
    /// The placeholder's type name: `[EMAIL_1]`.
    pub fn tag(self) -> &'static str {
        match self {
            Entity::Email => "EMAIL",
            Entity::Phone => "PHONE",
            Entity::UsSsn => "US_SSN",
            Entity::CreditCard => "CREDIT_CARD",
            Entity::Iban => "IBAN",
            Entity::IpAddress => "IP_ADDRESS",
            Entity::Secret => "SECRET",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Entity::Email => "email",
            Entity::Phone => "phone",
            Entity::UsSsn => "us_ssn",
            Entity::CreditCard => "credit_card",
            Entity::Iban => "iban",
            Entity::IpAddress => "ip_address",
            Entity::Secret => "secret",
        }
    }

    pub fn parse(s: &str) -> Option<Entity> {
        ALL.into_iter().find(|e| e.name() == s)
    }
}

/// One entity found: byte offsets into the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    pub start: usize,
    pub end: usize,
    pub entity: Entity,
}

/// The longest text one finding can span (bounds a stream's hold-back;
/// secrets without a prefix are bounded by the whitespace rule instead).
pub const MAX_SPAN: usize = 96;

struct Patterns {
    email: Regex,
    phone: Regex,
    phone_context: Regex,
    ssn: Regex,
    card: Regex,
    iban: Regex,
    ipv4: Regex,
    ipv6: Regex,
    secret_prefixed: Regex,
    secret_generic: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        // The patterns are constants: a failure to compile is a bug the tests catch.
        let re = |p: &str| Regex::new(p).unwrap_or_else(|e| bad_pattern(p, &e));
        Patterns {
            email: re(r"[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}"),
            phone: re(concat!(
                r"\+[1-9](?:[ .\-]?\(?\d\)?){7,14}|\(\d{3}\)[ .\-]?\d{3}[ .\-]\d{4}|\b\d{3}[.\-]\d{3}[.\-]\d{4}\b",
                r"|\b0\d{2,4}[ \-]\d{3,4}[ \-]\d{3,4}\b|\(0\d{1,4}\)[ .\-]?\d{2,4}[ .\-]?\d{3,7}\b|\b0\d{2,4}[ \-]\d{5,8}\b"
            )),
            // A bare number right after a word that says it is one ("Tel.:", "call", "angerufen").
            phone_context: re(concat!(
                r"(?i)(?:\b(?:tel|t\u{e9}l|phone|mobile|cell|call|called|callback|rufnummer|telefon|telefoon|",
                r"tel\u{e9}fono|t\u{e9}l\u{e9}phone|whatsapp|fax|appel\u{e9}|angerufen|chiamato|chiamare|belde)\b|\bT\s*:)",
                r"[^\d\n+(]{0,24}(\+?\d[\d \-]{6,16}\d)"
            )),
            ssn: re(r"\b(\d{3})[- ](\d{2})[- ](\d{4})\b"),
            card: re(r"\b\d(?:[ \-]?\d){12,18}\b"),
            iban: re(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b"),
            ipv4: re(r"\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b"),
            ipv6: re(r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:%[0-9A-Za-z]+)?"),
            secret_prefixed: re(concat!(
                r"\b(?:sk-ant-[A-Za-z0-9_\-]{20,256}|sk-(?:proj-)?[A-Za-z0-9_\-]{20,256}|(?:AKIA|ASIA)[0-9A-Z]{16}",
                r"|gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255}|xox[abposr]-[A-Za-z0-9\-]{10,255}",
                r"|AIza[0-9A-Za-z_\-]{35}|(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,255}|glpat-[A-Za-z0-9_\-]{20}",
                r"|sy-[0-9a-f]{32,128})|-----BEGIN [A-Z ]*PRIVATE KEY-----"
            )),
            // A key=value pair is two tokens: '=' only as base64 padding. Bounded
            // length: a huge blob is several findings, so a stream's hold-back
            // (and each rescan of it) stays bounded too.
            secret_generic: re(r"[A-Za-z0-9_\-+/]{32,512}={0,2}"),
        }
    })
}

#[allow(clippy::panic)]
fn bad_pattern(p: &str, e: &regex::Error) -> Regex {
    panic!("the constant pattern {p} does not compile: {e}")
}

/// The entities of `wanted` in `text`, in order, not overlapping (an
/// earlier start wins, then a longer match).
pub fn find(text: &str, wanted: &[Entity]) -> Vec<Finding> {
    let p = patterns();
    let mut out: Vec<Finding> = Vec::new();
    let mut add = |start: usize, end: usize, entity: Entity| out.push(Finding { start, end, entity });
    let on = |e: Entity| wanted.contains(&e);
    if on(Entity::Secret) {
        for m in p.secret_prefixed.find_iter(text) {
            add(m.start(), m.end(), Entity::Secret);
        }
        for m in p.secret_generic.find_iter(text) {
            // Subresource-integrity digests are public.
            let digest = ["sha256-", "sha384-", "sha512-"].iter().any(|d| m.as_str().starts_with(d));
            if !digest && looks_random(m.as_str()) {
                add(m.start(), m.end(), Entity::Secret);
            }
        }
    }
    if on(Entity::Email) {
        for m in p.email.find_iter(text) {
            add(m.start(), m.end(), Entity::Email);
        }
    }
    if on(Entity::Iban) {
        for m in p.iban.find_iter(text) {
            if iban_valid(m.as_str()) {
                add(m.start(), m.end(), Entity::Iban);
            }
        }
    }
    if on(Entity::CreditCard) {
        for m in p.card.find_iter(text) {
            let digits: Vec<u8> = m.as_str().bytes().filter(u8::is_ascii_digit).map(|b| b - b'0').collect();
            if (13..=19).contains(&digits.len()) && luhn(&digits) && !glued(text, m.start(), m.end()) {
                add(m.start(), m.end(), Entity::CreditCard);
            }
        }
    }
    if on(Entity::UsSsn) {
        for c in p.ssn.captures_iter(text) {
            let (Some(all), Some(a), Some(g), Some(s)) = (c.get(0), c.get(1), c.get(2), c.get(3)) else { continue };
            if ssn_valid(a.as_str(), g.as_str(), s.as_str()) && !glued(text, all.start(), all.end()) {
                add(all.start(), all.end(), Entity::UsSsn);
            }
        }
    }
    if on(Entity::Phone) {
        let ok = |start: usize, end: usize| {
            let digits = text[start..end].bytes().filter(u8::is_ascii_digit).count();
            (8..=15).contains(&digits) && !glued(text, start, end) && !in_group_run(text, start, end)
        };
        for m in p.phone.find_iter(text) {
            if ok(m.start(), m.end()) {
                add(m.start(), m.end(), Entity::Phone);
            }
        }
        for c in p.phone_context.captures_iter(text) {
            if let Some(m) = c.get(1) {
                let end = text[..m.end()].trim_end_matches([' ', '.', '-']).len();
                if ok(m.start(), end) && !date_like(&text[m.start()..end]) {
                    add(m.start(), end, Entity::Phone);
                }
            }
        }
    }
    if on(Entity::IpAddress) {
        for m in p.ipv4.find_iter(text) {
            // "version 1.2.3.4.5" or "10.0.0.1.2" is not an address.
            let after = text[m.end()..].chars().next();
            let before = text[..m.start()].chars().next_back();
            if after.is_none_or(|c| !(c == '.' || c.is_ascii_digit()) || text[m.end()..].starts_with(". "))
                && before.is_none_or(|c| c != '.')
            {
                add(m.start(), m.end(), Entity::IpAddress);
            }
        }
        for m in p.ipv6.find_iter(text) {
            let s = m.as_str();
            let addr = s.split('%').next().unwrap_or(s);
            let hex = addr.bytes().filter(u8::is_ascii_hexdigit).count();
            // Not "std::vec" (glued to letters) nor a time "10:30:00" (does not parse).
            if (hex >= 4 || addr == "::1")
                && !glued(text, m.start(), m.end())
                && addr.parse::<std::net::Ipv6Addr>().is_ok()
            {
                add(m.start(), m.end(), Entity::IpAddress);
            }
        }
    }
    non_overlapping(out)
}

/// `findings` in order, an overlapped one dropped (an earlier start wins,
/// then a longer match).
pub fn non_overlapping(mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut kept: Vec<Finding> = Vec::with_capacity(findings.len());
    for f in findings {
        if kept.last().is_none_or(|k| f.start >= k.end) {
            kept.push(f);
        }
    }
    kept
}

/// A number that runs on into letters or other digits ("ORD-4111…X", a
/// hash) is part of something else.
fn glued(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    let sticky = |c: char| c.is_ascii_alphanumeric() || c == '_';
    before.is_some_and(sticky) || after.is_some_and(sticky)
}

/// "2024-08-14", "20240814": a date, not a number to call.
fn date_like(s: &str) -> bool {
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    let shape = s.len() == 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-';
    (shape || (s.len() == 8 && digits.len() == 8)) && (digits.starts_with("19") || digits.starts_with("20"))
}

/// Digits that are part of a longer run of groups (an account number, a
/// UUID): a group of letters or digits just before, or more digits or a
/// dash-joined group just after.
fn in_group_run(text: &str, start: usize, end: usize) -> bool {
    if text[..start].ends_with('-') || text[end..].starts_with('-') {
        return true;
    }
    let before = text[..start].strip_suffix(' ').and_then(|b| b.rsplit(' ').next());
    let grouped_before = before.is_some_and(|t| {
        (1..=4).contains(&t.len())
            && t.chars().all(|c| c.is_ascii_alphanumeric())
            && t.chars().any(|c| c.is_ascii_digit())
    });
    let digits_after = text[end..].strip_prefix(' ').is_some_and(|a| a.starts_with(|c: char| c.is_ascii_digit()));
    grouped_before || digits_after
}

pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(*d);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

pub fn iban_valid(s: &str) -> bool {
    let compact: Vec<u8> = s.bytes().filter(|b| *b != b' ').collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut rem = 0u32;
    for b in tail.iter().chain(head) {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

fn ssn_valid(area: &str, group: &str, serial: &str) -> bool {
    let a: u32 = area.parse().unwrap_or(0);
    a != 0 && a != 666 && a < 900 && group != "00" && serial != "0000"
}

/// Shannon entropy of the characters, in bits per character.
fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts.iter().filter(|c| **c > 0).map(|c| f64::from(*c) / n).map(|p| -p * p.log2()).sum()
}

/// A long token that reads as random: letters and digits mixed, high
/// entropy, not a word or a path.
fn looks_random(s: &str) -> bool {
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    let letters = s.bytes().filter(u8::is_ascii_alphabetic).count();
    let upper = s.bytes().filter(u8::is_ascii_uppercase).count();
    let lower = s.bytes().filter(u8::is_ascii_lowercase).count();
    let classes = usize::from(digits > 0) + usize::from(upper > 0) + usize::from(lower > 0);
    // Random text of this length spreads over most of its alphabet; words,
    // identifiers and hex digests do not.
    let spread = 0.85 * (s.len().min(64) as f64).log2();
    digits > 0 && letters * 4 >= s.len() && classes >= 2 && entropy(s) >= spread.min(4.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(Entity, String)> {
        find(text, &ALL).into_iter().map(|f| (f.entity, text[f.start..f.end].to_string())).collect()
    }

    #[test]
    fn finds_each_type_with_its_rule() {
        let text = "Mail jane.doe@example.co.uk or call +44 20 7946 0958 / (555) 123-4567. \
                    SSN 123-45-6789, card 4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 7654 32, \
                    host 192.168.1.20 or 2001:db8::8a2e:370:7334, key sk-proj-abcdefghijklmnopqrstuvwxyz012345.";
        let found = kinds(text);
        let want = [
            (Entity::Email, "jane.doe@example.co.uk"),
            (Entity::Phone, "+44 20 7946 0958"),
            (Entity::Phone, "(555) 123-4567"),
            (Entity::UsSsn, "123-45-6789"),
            (Entity::CreditCard, "4111 1111 1111 1111"),
            (Entity::Iban, "GB82 WEST 1234 5698 7654 32"),
            (Entity::IpAddress, "192.168.1.20"),
            (Entity::IpAddress, "2001:db8::8a2e:370:7334"),
            (Entity::Secret, "sk-proj-abcdefghijklmnopqrstuvwxyz012345"),
        ];
        assert_eq!(found, want.map(|(e, s)| (e, s.to_string())).to_vec());
    }

    #[test]
    fn hard_negatives_are_not_pii() {
        for text in [
            "Order 4111 1111 1111 1112 shipped", // fails Luhn
            "SSN-like 000-12-3456 and 666-12-3456 and 900-12-3456 and 123-00-4567 and 123-45-0000",
            "IBAN GB82 WEST 1234 5698 7654 33",       // fails mod 97
            "version 1.2.3.4.5 and build 10.0.19045", // not an address
            "on 2024-01-15 at 10:30:00",              // a date and a time
            "order ORD-2024-000123 and invoice INV-20931",
            "the sha is da39a3ee5e6b4b0d3255bfef95601890afd80709", // hex only: one class
            "call me at 12 o'clock about ticket 123456789",
        ] {
            assert_eq!(kinds(text), vec![], "{text}");
        }
    }

    #[test]
    fn checksums() {
        assert!(luhn(&[4, 5, 3, 2, 0, 1, 5, 1, 1, 2, 8, 3, 0, 3, 6, 6]));
        assert!(iban_valid("DE89370400440532013000"));
        assert!(!iban_valid("DE89370400440532013001"));
    }
}
