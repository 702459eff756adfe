//! `switchyard bench cache`: the response cache on this machine.
//!
//! - `--pairs FILE`: the semantic tier's answer quality on a labelled set
//!   of question pairs (`tests/data/cache_pairs.jsonl`): every question is
//!   embedded with the in-process MiniLM; for each threshold, a pair is
//!   "served" when its similarity reaches it (and, with the guard, when the
//!   guard passes it). Reported: precision, recall of the true duplicates,
//!   wrong-hit rate among served hits, with and without the guard, and per
//!   kind of pair at one threshold.
//! - `--entries N`: semantic lookup latency (embedding excluded) with N
//!   entries in one partition, index build time and memory.
//! - `--rate R`: an exact hit through the whole gateway over loopback HTTP
//!   at R requests/s (open loop, latency from each request's scheduled
//!   time), the backend a stub that is never reached after the first
//!   request.

use crate::bench_gateway::percentile;
use anyhow::{Context, Result};
use clap::Args;
use gateway::cache::entry::{Entry, Finish};
use gateway::cache::guard;
use gateway::cache::semantic::{normalize, Item, SemanticIndex};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Args)]
pub struct CacheBench {
    /// Labelled pairs (JSON lines: a, b, duplicate, kind).
    #[arg(long, value_name = "FILE")]
    pairs: Option<PathBuf>,
    /// Thresholds to report (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "0.70,0.75,0.80,0.85,0.90,0.95")]
    thresholds: Vec<f32>,
    /// The threshold of the per-kind table.
    #[arg(long, default_value_t = 0.80)]
    kind_threshold: f32,
    /// Also list, at the per-kind threshold, the duplicates the guard refused and the look-alikes it served.
    #[arg(long)]
    show: bool,
    /// Entries in the semantic lookup measurement (0: skip it).
    #[arg(long, default_value_t = 0)]
    entries: usize,
    /// Requests/s of the exact-hit measurement through the gateway (0: skip it).
    #[arg(long, default_value_t = 0)]
    rate: u32,
    /// Seconds of the exact-hit measurement.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The sentence-transformers folder (default: the installed all-MiniLM-L6-v2).
    #[arg(long, value_name = "DIR", default_value_os_t = gateway::config::default_model_path(gateway::config::DEFAULT_EMBEDDING_DIR))]
    model: PathBuf,
}

pub fn run(args: &CacheBench) -> Result<()> {
    let rt = tokio::runtime::Handle::current();
    if let Some(p) = &args.pairs {
        rt.block_on(pairs(args, p))?;
    }
    if args.entries > 0 {
        rt.block_on(embedding_latency(&args.model))?;
        lookup(args.entries)?;
    }
    if args.rate > 0 {
        rt.block_on(through_gateway(args.rate, args.seconds))?;
    }
    Ok(())
}

struct Pair {
    a: String,
    b: String,
    duplicate: bool,
    kind: String,
}

#[derive(Default, Clone, Copy)]
struct Tally {
    served_dup: usize,
    served_wrong: usize,
}

impl Tally {
    fn line(&self, dups: usize) -> String {
        let served = self.served_dup + self.served_wrong;
        let precision = if served == 0 { 1.0 } else { self.served_dup as f64 / served as f64 };
        format!(
            "{} | {:.1}% | {:.1}% | {:.2}%",
            served,
            precision * 100.0,
            self.served_dup as f64 / dups.max(1) as f64 * 100.0,
            (1.0 - precision) * 100.0
        )
    }
}

async fn pairs(args: &CacheBench, path: &PathBuf) -> Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut pairs = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).with_context(|| format!("line {}", i + 1))?;
        let s = |k: &str| v[k].as_str().map(str::to_string).with_context(|| format!("line {}: '{k}'", i + 1));
        let duplicate = v["duplicate"].as_bool().with_context(|| format!("line {}: 'duplicate'", i + 1))?;
        pairs.push(Pair { a: s("a")?, b: s("b")?, duplicate, kind: s("kind")? });
    }
    let model = engine::embedding::Embedder::load(&args.model)
        .with_context(|| format!("loading {}", args.model.display()))?
        .spawn(engine::embedding::BatchConfig::default())?
        .truncating(true);
    let mut texts = Vec::new();
    for p in &pairs {
        texts.push(p.a.clone());
        texts.push(p.b.clone());
    }
    let t = Instant::now();
    let mut vectors = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(32) {
        let out = model.embed(chunk.to_vec(), false).await?;
        vectors.extend(out.vectors.into_iter().map(normalize));
    }
    let embed_ms = t.elapsed().as_secs_f64() * 1000.0 / texts.len() as f64;
    let sims: Vec<f32> =
        (0..pairs.len()).map(|i| gateway::cache::semantic::dot(&vectors[2 * i], &vectors[2 * i + 1])).collect();
    let t = Instant::now();
    let verdicts: Vec<Result<(), guard::Rejection>> = pairs.iter().map(|p| guard::verify(&p.a, &p.b)).collect();
    let guard_us = t.elapsed().as_secs_f64() * 1e6 / pairs.len() as f64;
    let dups = pairs.iter().filter(|p| p.duplicate).count();
    println!(
        "pairs: {} ({} duplicates, {} look-alikes) from {}; embedding {:.2} ms per question (batches of 32); guard {:.1} µs per pair",
        pairs.len(),
        dups,
        pairs.len() - dups,
        path.display(),
        embed_ms,
        guard_us
    );
    println!();
    println!("| threshold | served (no guard) | precision | recall | wrong hits | served (guard) | precision | recall | wrong hits |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for &th in &args.thresholds {
        let (mut plain, mut guarded) = (Tally::default(), Tally::default());
        for (i, p) in pairs.iter().enumerate() {
            if sims[i] < th {
                continue;
            }
            let bump = |t: &mut Tally| if p.duplicate { t.served_dup += 1 } else { t.served_wrong += 1 };
            bump(&mut plain);
            if verdicts[i].is_ok() {
                bump(&mut guarded);
            }
        }
        println!("| {th:.2} | {} | {} |", plain.line(dups), guarded.line(dups));
    }
    println!();
    println!(
        "per kind at threshold {:.2} (served with the guard / pairs; a look-alike served is a wrong hit):",
        args.kind_threshold
    );
    println!();
    println!("| kind | duplicate | pairs | median similarity | served without guard | served with guard | guard's reasons (rejections) |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let mut kinds: Vec<(&str, bool)> = pairs.iter().map(|p| (p.kind.as_str(), p.duplicate)).collect();
    kinds.sort();
    kinds.dedup();
    for (kind, dup) in kinds {
        let idx: Vec<usize> = (0..pairs.len()).filter(|&i| pairs[i].kind == kind).collect();
        let mut s: Vec<f32> = idx.iter().map(|&i| sims[i]).collect();
        s.sort_by(f32::total_cmp);
        let above: Vec<usize> = idx.iter().copied().filter(|&i| sims[i] >= args.kind_threshold).collect();
        let served = above.iter().filter(|&&i| verdicts[i].is_ok()).count();
        let mut reasons = std::collections::BTreeMap::new();
        for &i in &idx {
            if let Err(r) = verdicts[i] {
                *reasons.entry(r.as_str()).or_insert(0) += 1;
            }
        }
        println!(
            "| {kind} | {dup} | {} | {:.3} | {} | {served} | {:?} |",
            idx.len(),
            s.get(s.len() / 2).copied().unwrap_or(0.0),
            above.len(),
            reasons
        );
    }
    if args.show {
        println!();
        for (i, p) in pairs.iter().enumerate() {
            let wrong = !p.duplicate && sims[i] >= args.kind_threshold && verdicts[i].is_ok();
            let refused = p.duplicate && verdicts[i].is_err();
            if wrong || refused {
                let what = if wrong { "SERVED look-alike".to_string() } else { format!("refused ({:?})", verdicts[i]) };
                println!("{what} {:.3} [{}] {} || {}", sims[i], p.kind, p.a, p.b);
            }
        }
    }
    Ok(())
}

/// The semantic lookup's other half: one question embedded, alone (as a
/// lookup does), 300 times.
async fn embedding_latency(dir: &std::path::Path) -> Result<()> {
    let model = engine::embedding::Embedder::load(dir)
        .with_context(|| format!("loading {}", dir.display()))?
        .spawn(engine::embedding::BatchConfig::default())?
        .truncating(true);
    let mut lat = Vec::new();
    for i in 0..300 {
        let q = format!("How do I renew passport number {i} before my trip to Lisbon next month?");
        let t = Instant::now();
        model.embed(vec![q], true).await?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    lat.sort_by(f64::total_cmp);
    let p = |q: f64| percentile(&lat, q);
    println!("embedding one question (~17 tokens), alone: p50 {:.2} ms, p99 {:.2} ms", p(0.5), p(0.99));
    Ok(())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn random_unit(state: &mut u64, dim: usize) -> Vec<f32> {
    normalize(
        (0..dim)
            .map(|_| {
                *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((*state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect(),
    )
}

fn entry(i: usize) -> Arc<Entry> {
    Arc::new(Entry {
        id: format!("ce-{i:032}"),
        model: "smollm2-135m-instruct".into(),
        served_by: None,
        tenant: "key:bench".into(),
        namespace: None,
        created_ms: 0,
        expires_ms: u64::MAX,
        text: "A cached answer of about two hundred bytes, which is what a short chat reply weighs: \
               a few sentences, some numbers, maybe a list. Longer answers weigh more."
            .into(),
        tool_calls: Vec::new(),
        finish: Finish::Stop,
        prompt_tokens: 30,
        completion_tokens: 40,
    })
}

fn lookup(n: usize) -> Result<()> {
    const DIM: usize = 384;
    let mut seed = 7u64;
    let before = rss_kib();
    let index = SemanticIndex::new(DIM, gateway::cache::semantic::DEFAULT_EXACT_BELOW, usize::MAX);
    let mut stored = Vec::with_capacity(1000);
    let t = Instant::now();
    for i in 0..n {
        let v = random_unit(&mut seed, DIM);
        if i % (n / 1000).max(1) == 0 && stored.len() < 1000 {
            stored.push(v.clone());
        }
        index.insert("p", &v, Item { question: format!("question number {i} asked by someone"), entry: entry(i) });
        // As the server's maintenance would: the graph is built once the
        // partition outgrows the exact scan, later entries go straight in.
        if i + 1 == gateway::cache::semantic::DEFAULT_EXACT_BELOW {
            index.maintain();
        }
    }
    index.maintain();
    let build = t.elapsed();
    let after = rss_kib();
    // Queries: a stored vector plus noise (a paraphrase-like neighbour at ~0.9), and fresh ones (misses).
    let mut found = 0;
    let mut lat = Vec::new();
    for (i, v) in stored.iter().enumerate() {
        let noise = random_unit(&mut seed, DIM);
        let q = normalize(v.iter().zip(&noise).map(|(a, b)| a + 0.45 * b).collect());
        let t = Instant::now();
        let hits = index.search("p", &q, 0.8, 4);
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        found +=
            usize::from(hits.first().is_some_and(|c| c.item.entry.id == format!("ce-{:032}", i * (n / 1000).max(1))));
        let miss = random_unit(&mut seed, DIM);
        let t = Instant::now();
        let _ = index.search("p", &miss, 0.8, 4);
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    lat.sort_by(f64::total_cmp);
    let p = |q: f64| percentile(&lat, q);
    let (entries, bytes) = index.size();
    println!(
        "| {n} entries | build {:.1} s | lookup p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} lookups, half misses) | nearest found {}/{} | RSS +{:.0} MiB ({:.0} MiB per 100k) | index's own estimate {:.0} MiB ({entries} entries) |",
        build.as_secs_f64(),
        p(0.5),
        p(0.99),
        p(1.0),
        lat.len(),
        found,
        stored.len(),
        (after.saturating_sub(before)) as f64 / 1024.0,
        (after.saturating_sub(before)) as f64 / 1024.0 * 100_000.0 / n as f64,
        bytes as f64 / (1 << 20) as f64
    );
    Ok(())
}

const MODEL: &str = "instant";

async fn through_gateway(rate: u32, seconds: u64) -> Result<()> {
    let toml = "models = []\n[embeddings]\nenabled = false\n[cache]\n[cache.semantic]\nenabled = false\n";
    let cfg = gateway::Config::from_toml(toml)?;
    let policy = gateway::server::build_policy(&cfg, false)?;
    let mut state = gateway::AppState::with_policy(cfg.body_limit_bytes, policy);
    state.add_backend(Arc::new(crate::bench_gateway::InstantBackend));
    let cache_settings = cfg.cache.clone().context("the [cache] table")?;
    state.set_cache(gateway::cache::Cache::new(cache_settings, None, None).map_err(anyhow::Error::msg)?);
    let listener = gateway::server::bind("127.0.0.1:0".parse()?).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(gateway::server::serve(listener, state, std::future::pending()));
    let body = serde_json::json!({"model": MODEL, "max_tokens": 16, "temperature": 0,
        "messages": [{"role": "user", "content": "What does an exact cache hit cost?"}]})
    .to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    // The first request stores the answer; every later one is an L1 hit.
    let mut warm = tokio::net::TcpStream::connect(addr).await?;
    let (status, head) = exchange(&mut warm, &request).await?;
    anyhow::ensure!(status == 200, "warm-up status {status}");
    let (status, head2) = exchange(&mut warm, &request).await?;
    anyhow::ensure!(status == 200 && head2.contains("hit-exact"), "second request not a hit: {head}\n{head2}");
    let connections = 8usize;
    let per_conn = Duration::from_secs_f64(connections as f64 / rate as f64);
    let total = (rate as u64 * seconds) as usize / connections;
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            let mut lat = Vec::with_capacity(total);
            let offset = per_conn.mul_f64(c as f64 / connections as f64);
            for i in 0..total {
                let at = start + offset + per_conn * i as u32;
                tokio::time::sleep_until(at).await;
                // From the write: the timer wakes up to a millisecond late,
                // which is the client's lag, not the gateway's latency (the
                // lag is reported apart, to show the rate was kept).
                let sent = tokio::time::Instant::now();
                let (status, head) = exchange(&mut s, &request).await?;
                anyhow::ensure!(status == 200 && head.contains("hit-exact"), "not a hit: {head}");
                lat.push(((tokio::time::Instant::now() - sent).as_secs_f64() * 1e3, (sent - at).as_secs_f64() * 1e3));
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let started = std::time::Instant::now();
    let mut both = Vec::new();
    for t in tasks {
        both.extend(t.await??);
    }
    let wall = started.elapsed().as_secs_f64();
    let (mut lat, mut lag): (Vec<f64>, Vec<f64>) = both.into_iter().unzip();
    lat.sort_by(f64::total_cmp);
    lag.sort_by(f64::total_cmp);
    let p = |v: &[f64], q: f64| percentile(v, q);
    println!(
        "exact L1 hit through the gateway, {rate} requests/s for {seconds} s over {connections} keep-alive connections: {} requests in {wall:.1} s, p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms (client's lag behind schedule: p50 {:.3} ms, p99 {:.3} ms)",
        lat.len(),
        p(&lat, 0.5),
        p(&lat, 0.99),
        p(&lat, 0.999),
        p(&lat, 1.0),
        p(&lag, 0.5),
        p(&lag, 0.99)
    );
    Ok(())
}

/// One HTTP/1.1 request and its whole response: (status, headers).
async fn exchange(s: &mut tokio::net::TcpStream, request: &str) -> Result<(u16, String)> {
    s.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .context("no content-length")?;
        while buf.len() < end + 4 + len {
            let n = s.read(&mut chunk).await?;
            anyhow::ensure!(n > 0, "connection closed");
            buf.extend_from_slice(&chunk[..n]);
        }
        let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        return Ok((status, head));
    }
}
