//! The paged KV cache under load (real model): a budget smaller than the
//! work forces preemption, which changes no answer and fails no request;
//! prefix-cache hits are reported and change no answer; salts isolate.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use backend_api::{Backend, GenerationEvent, Prompt, SamplingParams, StopParams, ValidatedRequest};
use engine::kv_cache::BLOCK_SIZE;
use engine::{EngineConfig, EngineHandle, LocalModel, WeightFormat};
use futures::StreamExt;

fn engine(config: EngineConfig) -> EngineHandle {
    let p = engine::testing::default_model().unwrap();
    LocalModel::load(&p, WeightFormat::Fast, Some(2048)).unwrap().spawn("m", config).unwrap()
}

/// Bytes of `n` KV blocks of the default model.
fn blocks(n: usize) -> usize {
    blocks_of(&engine::testing::default_model().unwrap(), n)
}

fn blocks_of(path: &std::path::Path, n: usize) -> usize {
    let m = LocalModel::load(path, WeightFormat::Native, Some(64)).unwrap();
    n * m.model.kv_block_bytes()
}

fn request(prompt: String, max_tokens: u32, salt: Option<&str>) -> ValidatedRequest {
    ValidatedRequest {
        request_id: "r".into(),
        model: "m".into(),
        prompt: Prompt::Text(prompt),
        sampling: SamplingParams::greedy(),
        stop: StopParams { max_tokens: Some(max_tokens), ignore_eos: true, ..Default::default() },
        logprobs: None,
        cache_salt: salt.map(str::to_string),
        tools: None,
        demands: Default::default(),
    }
}

struct Outcome {
    ids: Vec<u32>,
    prompt_tokens: u32,
    cached_tokens: u32,
}

async fn run(engine: &EngineHandle, req: ValidatedRequest) -> Outcome {
    let mut stream = engine.generate(req).await.unwrap();
    let mut out = Outcome { ids: Vec::new(), prompt_tokens: 0, cached_tokens: u32::MAX };
    while let Some(ev) = stream.next().await {
        match ev.unwrap() {
            GenerationEvent::Delta { tokens, .. } => out.ids.extend(tokens.iter().map(|t| t.id)),
            GenerationEvent::Finished { prompt_tokens, cached_tokens, .. } => {
                out.prompt_tokens = prompt_tokens;
                out.cached_tokens = cached_tokens;
            }
            _ => {}
        }
    }
    out
}

/// Engine stats once its last step has ended: a client sees `Finished`
/// just before the actor returns that step's blocks.
async fn settled(e: &EngineHandle) -> engine::stats::StatsSnapshot {
    for _ in 0..200 {
        let s = e.stats();
        if s.running == 0 && s.kv_blocks_used == 0 {
            return s;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    e.stats()
}

fn story(i: usize, words: usize) -> String {
    let vocab = ["river", "mountain", "engine", "garden", "violin", "harbor", "lantern", "meadow", "copper"];
    let body: Vec<&str> = (0..words).map(|j| vocab[(i * 5 + j * 3) % vocab.len()]).collect();
    format!("Story {i}: {}.", body.join(" "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_work_than_the_kv_budget_completes_through_preemption_unchanged() {
    const N: usize = 8;
    const GEN: u32 = 40;
    let roomy = engine(EngineConfig { prefix_caching: false, ..Default::default() });
    let mut alone = Vec::new();
    for i in 0..N {
        alone.push(run(&roomy, request(story(i, 12 + 2 * i), GEN, None)).await.ids);
    }
    drop(roomy);
    // 24 blocks = 384 positions for 8 sequences of ~70 positions each.
    let tight = engine(EngineConfig { kv_cache_bytes: blocks(24), prefix_caching: false, ..Default::default() });
    assert_eq!(tight.stats().kv_blocks_total, 24);
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let e = tight.clone();
            tokio::spawn(async move { run(&e, request(story(i, 12 + 2 * i), GEN, None)).await.ids })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        let ids = t.await.unwrap();
        assert_eq!(ids.len(), GEN as usize, "request {i} did not complete");
        assert_eq!(ids, alone[i], "request {i} changed under preemption");
    }
    let s = settled(&tight).await;
    assert!(s.preemptions > 0, "the budget never forced a preemption: {s:?}");
    assert_eq!(s.kv_blocks_used, 0, "blocks leaked: {s:?}");
    assert!(s.peak_running >= 2, "requests never overlapped: {s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_prefix_is_served_from_the_cache_with_the_same_answer() {
    let e = engine(EngineConfig::default());
    let shared = story(1, 60);
    let first = run(&e, request(format!("{shared} Question one?"), 8, None)).await;
    assert_eq!(first.cached_tokens, 0, "cold cache");
    let again = run(&e, request(format!("{shared} Question one?"), 8, None)).await;
    let full_blocks = (again.prompt_tokens as usize - 1) / BLOCK_SIZE * BLOCK_SIZE;
    assert_eq!(again.cached_tokens as usize, full_blocks, "every full block but the last token's");
    assert_eq!(again.ids, first.ids, "a cache hit changed the answer");

    // Another question after the same prefix reuses the shared blocks.
    let other = run(&e, request(format!("{shared} Another thing entirely?"), 8, None)).await;
    assert!(other.cached_tokens as usize >= BLOCK_SIZE, "no reuse of the shared prefix");
    assert!(other.cached_tokens < other.prompt_tokens);

    // A salted request shares nothing with unsalted ones, then hits its own.
    let salted = run(&e, request(format!("{shared} Question one?"), 8, Some("tenant-a"))).await;
    assert_eq!(salted.cached_tokens, 0, "a salt must isolate the cache");
    assert_eq!(salted.ids, first.ids);
    let salted_again = run(&e, request(format!("{shared} Question one?"), 8, Some("tenant-a"))).await;
    assert_eq!(salted_again.cached_tokens as usize, full_blocks);

    let s = settled(&e).await;
    assert_eq!(s.prefix_hit_tokens, u64::from(again.cached_tokens + other.cached_tokens + salted_again.cached_tokens));
    assert_eq!(s.kv_blocks_used, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_prefix_caching_nothing_is_reused() {
    let e = engine(EngineConfig { prefix_caching: false, ..Default::default() });
    let prompt = story(2, 60);
    run(&e, request(prompt.clone(), 4, None)).await;
    let again = run(&e, request(prompt, 4, None)).await;
    assert_eq!(again.cached_tokens, 0);
    assert_eq!(e.stats().prefix_hit_tokens, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_context_window_shrinks_to_what_the_kv_budget_holds() {
    let e = engine(EngineConfig { kv_cache_bytes: blocks(4), ..Default::default() });
    assert_eq!(e.context_length(), 4 * BLOCK_SIZE);
    let err = e.generate(request(story(3, 200), 4, None)).await.err().expect("an over-long prompt is refused");
    assert!(err.to_string().contains("context length"), "{err}");
}

/// The tiny random model, with a pool that holds one full-context
/// sequence and little more: twelve concurrent requests must all finish,
/// unchanged, through repeated preemption (with and without the prefix
/// cache, which lets a preempted sequence resume from its own blocks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_for_one_sequence_serves_twelve_through_preemption() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    engine::testing::write_tiny_gguf(&path).unwrap();
    let spawn = |config: EngineConfig| {
        LocalModel::load(&path, WeightFormat::Fast, Some(96)).unwrap().spawn("m", config).unwrap()
    };
    let prompt = |i: usize| format!("{} {i}", "hello world".repeat(2 + i % 5));
    let roomy = spawn(EngineConfig { prefix_caching: false, ..Default::default() });
    let mut alone = Vec::new();
    for i in 0..12 {
        alone.push(run(&roomy, request(prompt(i), 24 + i as u32 % 7, None)).await.ids);
    }
    for prefix_caching in [false, true] {
        // 7 blocks = 112 positions: one sequence of the 96-position window, plus a little.
        let tight = spawn(EngineConfig { kv_cache_bytes: blocks_of(&path, 7), prefix_caching, ..Default::default() });
        let tasks: Vec<_> = (0..12)
            .map(|i| {
                let e = tight.clone();
                let req = request(prompt(i), 24 + i as u32 % 7, None);
                tokio::spawn(async move { run(&e, req).await.ids })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap(), alone[i], "request {i} (prefix caching {prefix_caching})");
        }
        let s = settled(&tight).await;
        assert!(s.preemptions > 0, "no preemption with prefix caching {prefix_caching}: {s:?}");
        assert_eq!((s.kv_blocks_used, s.running, s.waiting), (0, 0, 0), "{s:?}");
    }
}
