//! `switchyard bench guardrails`: the PII guardrail's quality and speed.
//!
//! - `--pii FILE`: labelled texts (JSON lines: text, spans with byte
//!   offsets and a type): per entity type, recall (a labelled value found
//!   as that type, overlapping it) and precision (a finding that overlaps a
//!   labelled value of its type), over positives and hard negatives.
//! - Always: the time to scan text of 1, 4 and 16 KB for every type
//!   (p50 / p99 per KB over many runs).

use anyhow::{Context, Result};
use clap::Args;
use gateway::guardrails::pii::{find, Entity, ALL};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct GuardBench {
    /// Labelled texts (tests/data/pii_eval.jsonl).
    #[arg(long, value_name = "FILE")]
    pii: Option<PathBuf>,
    /// Also list the misses and false findings.
    #[arg(long)]
    show: bool,
    /// Scans per size in the latency measurement.
    #[arg(long, default_value_t = 3000)]
    runs: usize,
}

pub fn run(args: &GuardBench) -> Result<()> {
    if let Some(p) = &args.pii {
        quality(p, args.show)?;
    }
    latency(args.runs);
    Ok(())
}

#[derive(Default)]
struct Count {
    labelled: usize,
    recalled: usize,
    found: usize,
    correct: usize,
}

fn quality(path: &PathBuf, show: bool) -> Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut counts: BTreeMap<&'static str, Count> = BTreeMap::new();
    let (mut texts, mut negatives, mut negatives_flagged) = (0, 0, 0);
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).with_context(|| format!("line {}", i + 1))?;
        let t = v["text"].as_str().with_context(|| format!("line {}: text", i + 1))?;
        let mut labels: Vec<(usize, usize, Entity)> = Vec::new();
        for s in v["spans"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let (Some(a), Some(b), Some(e)) =
                (s["start"].as_u64(), s["end"].as_u64(), s["type"].as_str().and_then(Entity::parse))
            else {
                anyhow::bail!("line {}: a span without start, end or a known type", i + 1);
            };
            labels.push((a as usize, b as usize, e));
        }
        texts += 1;
        let found = find(t, &ALL);
        let overlaps = |a: usize, b: usize, c: usize, d: usize| a < d && c < b;
        if labels.is_empty() {
            negatives += 1;
            negatives_flagged += usize::from(!found.is_empty());
        }
        for &(a, b, e) in &labels {
            let c = counts.entry(e.name()).or_default();
            c.labelled += 1;
            if found.iter().any(|f| f.entity == e && overlaps(a, b, f.start, f.end)) {
                c.recalled += 1;
            } else if show {
                println!("MISSED {}: {:?} in {:?}", e.name(), t.get(a..b).unwrap_or(""), t);
            }
        }
        for f in &found {
            let c = counts.entry(f.entity.name()).or_default();
            c.found += 1;
            if labels.iter().any(|&(a, b, e)| e == f.entity && overlaps(a, b, f.start, f.end)) {
                c.correct += 1;
            } else if show {
                println!("FALSE {}: {:?} in {:?}", f.entity.name(), &t[f.start..f.end], t);
            }
        }
    }
    println!(
        "{texts} texts from {} ({negatives} hard negatives, {negatives_flagged} of them with a finding)",
        path.display()
    );
    println!();
    println!("| type | labelled | recall | findings | precision |");
    println!("| --- | --- | --- | --- | --- |");
    for (name, c) in &counts {
        let ratio = |a: usize, b: usize| if b == 0 { "–".to_string() } else { format!("{:.3}", a as f64 / b as f64) };
        println!("| {name} | {} | {} | {} | {} |", c.labelled, ratio(c.recalled, c.labelled), c.found, ratio(c.correct, c.found));
    }
    Ok(())
}

/// Prose with a few values in it, repeated to `kb` KB.
fn sample(kb: usize) -> String {
    let para = "Hello team, the customer wrote from jane.doe@example.com about order ORD-2024-000123 \
                placed on 2024-01-15 at 10:30. They paid with 4111 1111 1111 1111 and asked us to call \
                +44 20 7946 0958; the server at 192.168.1.20 logged version 10.0.19045 of the client. ";
    let mut s = String::with_capacity(kb * 1024 + para.len());
    while s.len() < kb * 1024 {
        s.push_str(para);
    }
    s.truncate(kb * 1024);
    while !s.is_char_boundary(s.len()) {
        s.pop();
    }
    s
}

fn latency(runs: usize) {
    println!();
    println!("| text | scans | p50 µs | p99 µs | p99 µs per KB |");
    println!("| --- | --- | --- | --- | --- |");
    for kb in [1, 4, 16] {
        let text = sample(kb);
        let mut lat = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            let found = find(&text, &ALL);
            lat.push(t.elapsed().as_secs_f64() * 1e6);
            std::hint::black_box(found);
        }
        lat.sort_by(f64::total_cmp);
        let p = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize];
        println!("| {kb} KB | {runs} | {:.1} | {:.1} | {:.1} |", p(0.5), p(0.99), p(0.99) / kb as f64);
    }
}
