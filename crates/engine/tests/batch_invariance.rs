//! A greedy request yields the same tokens alone or batched with others of
//! different lengths arriving at different times (real model).

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use backend_api::{Backend, GenerationEvent, Prompt, SamplingParams, StopParams, ValidatedRequest};
use engine::{EngineConfig, EngineHandle, LocalModel, WeightFormat};
use futures::StreamExt;
use std::time::Duration;

fn engine() -> EngineHandle {
    let p = engine::testing::default_model().unwrap();
    // A small step budget forces chunked prefill of the longer prompts; no
    // prefix cache, so the batched runs really recompute every prompt.
    let config =
        EngineConfig { max_num_seqs: 32, max_num_batched_tokens: 64, prefix_caching: false, ..Default::default() };
    LocalModel::load(&p, WeightFormat::Fast, Some(2048)).unwrap().spawn("m", config).unwrap()
}

fn request(i: usize) -> ValidatedRequest {
    let words = ["river", "mountain", "engine", "garden", "violin", "harbor", "lantern", "meadow"];
    let body: Vec<&str> = (0..(3 + i * 7)).map(|j| words[(i + j) % words.len()]).collect();
    ValidatedRequest {
        request_id: format!("r{i}"),
        model: "m".into(),
        prompt: Prompt::Text(format!("Story {i}: {}.", body.join(" "))),
        sampling: SamplingParams::greedy(),
        stop: StopParams { max_tokens: Some(12 + i as u32 % 5), ignore_eos: true, ..Default::default() },
        logprobs: None,
        cache_salt: None,
        tools: None,
        demands: Default::default(),
    }
}

async fn run(engine: &EngineHandle, req: ValidatedRequest) -> Vec<u32> {
    let mut stream = engine.generate(req).await.unwrap();
    let mut ids = Vec::new();
    while let Some(ev) = stream.next().await {
        if let GenerationEvent::Delta { tokens, .. } = ev.unwrap() {
            ids.extend(tokens.iter().map(|t| t.id));
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greedy_tokens_are_the_same_alone_and_in_a_batch_of_16() {
    let engine = engine();
    let mut alone = Vec::new();
    for i in 0..16 {
        alone.push(run(&engine, request(i)).await);
    }
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let engine = engine.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(15 * i as u64)).await;
                run(&engine, request(i)).await
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let together = task.await.unwrap();
        assert!(!together.is_empty());
        assert_eq!(together, alone[i], "request {i} changed when batched");
    }
    let stats = engine.stats();
    assert!(stats.peak_running >= 4, "requests never overlapped: {stats:?}");
}
