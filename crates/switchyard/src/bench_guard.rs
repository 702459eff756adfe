//! `switchyard bench guardrails`: the PII guardrail's quality and speed.
//!
//! - `--pii FILE`: labelled texts (JSON lines: text, spans with byte
//!   offsets and a type): per entity type, recall (a labelled value found
//!   as that type, overlapping it) and precision (a finding that overlaps a
//!   labelled value of its type), over positives and hard negatives.
//! - Always: the time to scan text of 1, 4 and 16 KB for every type
//!   (p50 / p99 per KB over many runs).

use crate::bench_gateway::percentile;
use anyhow::{Context, Result};
use clap::Args;
use gateway::guardrails::injection;
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
    /// Train the injection head on these labelled texts (JSON lines: text, label 1 = attack)…
    #[arg(long, value_name = "FILE")]
    train_injection: Option<PathBuf>,
    /// …and write it here (the gateway ships crates/gateway/src/guardrails/injection_head.json).
    #[arg(long, value_name = "FILE", requires = "train_injection")]
    write: Option<PathBuf>,
    /// …and the n-gram head here (crates/gateway/src/guardrails/injection_ngrams.json).
    #[arg(long, value_name = "FILE", requires = "train_injection")]
    write_ngrams: Option<PathBuf>,
    /// Measure the injection detector on these labelled texts (with the shipped head).
    #[arg(long, value_name = "FILE")]
    injection: Option<PathBuf>,
    /// The sentence-transformers folder (default: the installed all-MiniLM-L6-v2).
    #[arg(long, value_name = "DIR", default_value_os_t = gateway::config::default_model_path(gateway::config::DEFAULT_EMBEDDING_DIR))]
    model: PathBuf,
}

pub fn run(args: &GuardBench) -> Result<()> {
    if let Some(p) = &args.pii {
        quality(p, args.show)?;
    }
    let rt = tokio::runtime::Handle::current();
    if let Some(p) = &args.train_injection {
        rt.block_on(train(args, p))?;
    }
    if let Some(p) = &args.injection {
        rt.block_on(injection(args, p))?;
    }
    latency(args.runs);
    Ok(())
}

fn labelled(path: &PathBuf) -> Result<Vec<(String, bool, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {} (scripts/injection-dataset.sh)", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).with_context(|| format!("line {}", i + 1))?;
        let t = v["text"].as_str().with_context(|| format!("line {}: text", i + 1))?;
        let label = v["label"].as_u64().with_context(|| format!("line {}: label", i + 1))? == 1;
        out.push((t.to_string(), label, v["source"].as_str().unwrap_or("").to_string()));
    }
    Ok(out)
}

async fn embed_all(args: &GuardBench, texts: &[String]) -> Result<Vec<Vec<f32>>> {
    let model = engine::embedding::Embedder::load(&args.model)
        .with_context(|| format!("loading {}", args.model.display()))?
        .spawn(engine::embedding::BatchConfig::default())?;
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(16) {
        let normalized: Vec<String> = chunk.iter().map(|t| injection::normalize(t)).collect();
        out.extend(model.embed(normalized, true).await?.vectors);
    }
    Ok(out)
}

/// Logistic regression, full-batch gradient descent, classes weighted to
/// balance, a little L2.
async fn train(args: &GuardBench, path: &PathBuf) -> Result<()> {
    let rows = labelled(path)?;
    let texts: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let t = Instant::now();
    let x = embed_all(args, &texts).await?;
    let y: Vec<f32> = rows.iter().map(|r| if r.1 { 1.0 } else { 0.0 }).collect();
    let dim = x.first().map_or(0, Vec::len);
    let pos = y.iter().filter(|v| **v > 0.5).count().max(1) as f32;
    let neg = (y.len() as f32 - pos).max(1.0);
    let weight = |label: f32| if label > 0.5 { y.len() as f32 / (2.0 * pos) } else { y.len() as f32 / (2.0 * neg) };
    let mut head = injection::Head { w: vec![0.0; dim], b: 0.0 };
    let (rate, l2) = (2.0f32, 1e-4f32);
    for _ in 0..3000 {
        let mut gw = vec![0.0f32; dim];
        let mut gb = 0.0f32;
        for (xi, yi) in x.iter().zip(&y) {
            let err = (head.score(xi) - yi) * weight(*yi);
            for (g, v) in gw.iter_mut().zip(xi) {
                *g += err * v;
            }
            gb += err;
        }
        let n = x.len() as f32;
        for (w, g) in head.w.iter_mut().zip(&gw) {
            *w -= rate * (g / n + l2 * *w);
        }
        head.b -= rate * gb / n;
    }
    let correct = x.iter().zip(&y).filter(|(xi, yi)| (head.score(xi) >= 0.5) == (**yi > 0.5)).count();
    println!(
        "trained on {} texts ({} attacks) in {:.1} s: training accuracy {:.3}",
        x.len(),
        pos,
        t.elapsed().as_secs_f64(),
        correct as f64 / x.len() as f64
    );
    if let Some(out) = &args.write {
        std::fs::write(out, serde_json::to_string(&head)?)?;
        println!("head written to {}", out.display());
    }
    // The n-gram head: the same loss over sparse hashed features.
    let feats: Vec<Vec<(usize, f32)>> = rows.iter().map(|r| injection::ngram_features(&r.0)).collect();
    let mut ng = injection::NgramHead { w: vec![0.0; injection::NGRAM_BUCKETS], b: 0.0 };
    let (rate, l2) = (4.0f32, 1e-5f32);
    for _ in 0..400 {
        let mut gw = vec![0.0f32; injection::NGRAM_BUCKETS];
        let mut gb = 0.0f32;
        for (f, yi) in feats.iter().zip(&y) {
            let err = (ng.score_features(f) - yi) * weight(*yi);
            for (i, v) in f {
                gw[*i] += err * v;
            }
            gb += err;
        }
        let n = feats.len() as f32;
        for (w, g) in ng.w.iter_mut().zip(&gw) {
            *w -= rate * (g / n + l2 * *w);
        }
        ng.b -= rate * gb / n;
    }
    let correct = feats.iter().zip(&y).filter(|(f, yi)| (ng.score_features(f) >= 0.5) == (**yi > 0.5)).count();
    println!("n-gram head: training accuracy {:.3}", correct as f64 / feats.len() as f64);
    if let Some(out) = &args.write_ngrams {
        let rounded: Vec<f32> = ng.w.iter().map(|w| (w * 1e4).round() / 1e4).collect();
        std::fs::write(out, serde_json::to_string(&injection::NgramHead { w: rounded, b: ng.b })?)?;
        println!("n-gram head written to {}", out.display());
    }
    Ok(())
}

async fn injection(args: &GuardBench, path: &PathBuf) -> Result<()> {
    let rows = labelled(path)?;
    let head = injection::Head::shipped().context("no injection head shipped")?;
    let texts: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let x = embed_all(args, &texts).await?;
    let scores: Vec<f32> = x.iter().map(|v| head.score(v)).collect();
    let t = Instant::now();
    let patterns: Vec<bool> = texts.iter().map(|t| injection::pattern_hit(t).is_some()).collect();
    let pattern_us = t.elapsed().as_secs_f64() * 1e6 / texts.len() as f64;
    let attacks = rows.iter().filter(|r| r.1).count();
    let benign = rows.len() - attacks;
    println!(
        "{} texts from {} ({attacks} attacks, {benign} benign); patterns {:.0} µs per text",
        rows.len(),
        path.display(),
        pattern_us
    );
    println!();
    println!("| detector | threshold | recall (attacks) | false positives (benign) |");
    println!("| --- | --- | --- | --- |");
    let report = |name: &str, th: String, flag: &dyn Fn(usize) -> bool| {
        let tp = (0..rows.len()).filter(|&i| rows[i].1 && flag(i)).count();
        let fp = (0..rows.len()).filter(|&i| !rows[i].1 && flag(i)).count();
        println!(
            "| {name} | {th} | {:.1}% ({tp}/{attacks}) | {:.2}% ({fp}/{benign}) |",
            tp as f64 * 100.0 / attacks.max(1) as f64,
            fp as f64 * 100.0 / benign.max(1) as f64
        );
    };
    report("patterns", "–".into(), &|i| patterns[i]);
    let ng = injection::NgramHead::shipped().context("no n-gram head shipped")?;
    let t = Instant::now();
    let ng_scores: Vec<f32> = texts.iter().map(|t| ng.score(t)).collect();
    let ng_us = t.elapsed().as_secs_f64() * 1e6 / texts.len() as f64;
    for th in [0.5f32, 0.7, 0.8, 0.9] {
        report("n-gram head", format!("{th}"), &|i| ng_scores[i] >= th);
        report("patterns or n-gram head", format!("{th}"), &|i| patterns[i] || ng_scores[i] >= th);
    }
    println!("(n-gram head: {ng_us:.0} µs per text)");
    for th in [0.5f32, 0.7, 0.8, 0.9, 0.95] {
        report("learned head", format!("{th}"), &|i| scores[i] >= th);
        report("patterns or head", format!("{th}"), &|i| patterns[i] || scores[i] >= th);
    }
    println!();
    println!("false positives by source (patterns or head at 0.5):");
    let mut by: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        let e = by.entry(r.2.as_str()).or_default();
        e.0 += 1;
        e.1 += usize::from(patterns[i] || scores[i] >= 0.5);
    }
    for (src, (n, flagged)) in by {
        println!("- {src}: {flagged} flagged of {n}");
    }
    if args.show {
        for (i, r) in rows.iter().enumerate() {
            let flagged = patterns[i] || scores[i] >= 0.5;
            if flagged != r.1 {
                let what = if r.1 { "MISSED" } else { "FALSE" };
                println!("{what} {:.2} [{}] {}", scores[i], r.2, r.0.chars().take(160).collect::<String>());
            }
        }
    }
    // The fast detector on a 512-token message (patterns, normalisation, decoding, n-gram head).
    let long_text = "Please ignore none of this: it is an ordinary long message about planning a garden, \
                with beds of tomatoes, beans and herbs, a compost corner and a small pond. "
        .repeat(20);
    let mut fast = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let hit = injection::pattern_hit(&long_text).is_some() || ng.score(&long_text) >= 0.5;
        fast.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(hit);
    }
    fast.sort_by(f64::total_cmp);
    println!(
        "\npatterns + n-gram head on a ~512-token message: p50 {:.3} ms, p95 {:.3} ms",
        percentile(&fast, 0.5),
        percentile(&fast, 0.95)
    );
    // The whole detector on a 512-token message (patterns, normalisation, embedding, head).
    let model = engine::embedding::Embedder::load(&args.model)?.spawn(engine::embedding::BatchConfig::default())?;
    let long = "Please ignore none of this: it is an ordinary long message about planning a garden,                 with beds of tomatoes, beans and herbs, a compost corner and a small pond. "
        .repeat(20);
    let mut lat = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let _ = injection::pattern_hit(&long);
        let v = model.embed(vec![injection::normalize(&long)], true).await?;
        std::hint::black_box(head.score(&v.vectors[0]));
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    lat.sort_by(f64::total_cmp);
    println!(
        "\ndetector on a ~512-token message (the model reads its first 256 tokens): p50 {:.1} ms, p95 {:.1} ms",
        percentile(&lat, 0.5),
        percentile(&lat, 0.95)
    );
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
        println!(
            "| {name} | {} | {} | {} | {} |",
            c.labelled,
            ratio(c.recalled, c.labelled),
            c.found,
            ratio(c.correct, c.found)
        );
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
        let p = |q: f64| percentile(&lat, q);
        println!("| {kb} KB | {runs} | {:.1} | {:.1} | {:.1} |", p(0.5), p(0.99), p(0.99) / kb as f64);
    }
}
