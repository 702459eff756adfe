//! The in-process embedder against the real all-MiniLM-L6-v2 (skipped, with
//! a message, when models/all-MiniLM-L6-v2 is missing): known properties,
//! the length rule, batch invariance, micro-batching through the handle,
//! and sentence-transformers' own vectors (tests/data/embeddings_reference.json).

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use engine::embedding::{BatchConfig, Embedder, EmbedderHandle, EmbeddingError};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The model, or None (with a message) when it is not installed.
fn load() -> Option<Embedder> {
    let dir = root().join("models/all-MiniLM-L6-v2");
    if !dir.join("model.safetensors").exists() {
        eprintln!("skipping: {} is missing (run scripts/setup-models.sh)", dir.display());
        return None;
    }
    Some(Embedder::load(&dir).unwrap())
}

fn spawn(cfg: BatchConfig) -> Option<EmbedderHandle> {
    Some(load()?.spawn(cfg).unwrap())
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

fn strings(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|s| s.to_string()).collect()
}

/// A sentence of about `words` words (one or two tokens each).
fn long_text(words: usize, seed: usize) -> String {
    let pool = ["river", "mountain", "engine", "garden", "violin", "harbor", "lantern", "meadow", "quietly"];
    (0..words).map(|i| pool[(i * 7 + seed) % pool.len()]).collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn vectors_are_unit_length_and_similar_sentences_are_close() {
    let Some(h) = spawn(BatchConfig::default()) else { return };
    assert_eq!((h.dimensions(), h.max_tokens(), h.model_name()), (384, 256, "all-MiniLM-L6-v2"));
    let texts = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.", ""];
    let out = h.embed(strings(&texts), false).await.unwrap();
    assert_eq!(out.vectors.len(), 4);
    for v in &out.vectors {
        assert_eq!(v.len(), 384);
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    let bread = cosine(&out.vectors[0], &out.vectors[1]);
    let baby = cosine(&out.vectors[0], &out.vectors[2]);
    assert!(bread > 0.6, "food vs bread: {bread}");
    assert!(baby < bread - 0.3, "food vs baby: {baby}, vs bread {bread}");
    assert_eq!(out.tokens[3], 2, "an empty string is [CLS] [SEP]");
}

#[tokio::test]
async fn tokens_are_counted_with_cls_and_sep() {
    let Some(h) = spawn(BatchConfig::default()) else { return };
    assert_eq!(h.count_tokens("Hello world"), 4);
    assert_eq!(h.count_tokens(""), 2);
    let out = h.embed(strings(&["Hello world", "embeddings"]), false).await.unwrap();
    assert_eq!(out.tokens, vec![4, 6]);
    assert!(h.embed(Vec::new(), false).await.unwrap().vectors.is_empty());
}

#[tokio::test]
async fn too_long_inputs_are_refused_with_their_index_or_truncated() {
    let Some(h) = spawn(BatchConfig::default()) else { return };
    let long = long_text(400, 0);
    let tokens = h.count_tokens(&long);
    assert!(tokens > 256);
    let inputs = vec!["short".to_string(), long.clone()];
    match h.embed(inputs.clone(), false).await {
        Err(EmbeddingError::TooLong { index: 1, tokens: t, max: 256 }) => assert_eq!(t, tokens),
        other => panic!("expected TooLong for input 1, got {other:?}"),
    }
    let out = h.embed(inputs, true).await.unwrap();
    assert_eq!(out.tokens[1], 256);
    // Only the first 254 word pieces count: a different tail changes nothing.
    let other_tail = format!("{long} {}", long_text(50, 3));
    let same = h.embed(vec![other_tail], true).await.unwrap();
    assert!(cosine(&out.vectors[1], &same.vectors[0]) > 0.99999);
    // Exactly 256 tokens is allowed.
    let words = (0..254).map(|_| "river").collect::<Vec<_>>().join(" ");
    assert_eq!(h.embed(vec![words], false).await.unwrap().tokens, vec![256]);
}

#[test]
fn a_vector_does_not_depend_on_its_batch() {
    let Some(m) = load() else { return };
    let texts = strings(&["A man is eating food.", &long_text(120, 1), "Hi", &long_text(40, 2)]);
    let rows = m.tokenize(&texts, false).unwrap();
    let batch: Vec<&[u32]> = rows.iter().map(|r| r.as_slice()).collect();
    let together = m.embed_batch(&batch).unwrap();
    for (row, v) in rows.iter().zip(&together) {
        let alone = m.embed_batch(&[row.as_slice()]).unwrap();
        let c = cosine(&alone[0], v);
        assert!(c >= 0.99999, "{} tokens: cosine {c} alone vs padded batch", row.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_forward_passes_and_get_their_own_answers() {
    let Some(h) = spawn(BatchConfig { max_wait: Duration::from_millis(20), ..Default::default() }) else { return };
    let texts: Vec<String> = (0..16).map(|i| format!("Request {i}: {}", long_text(3 + i * 2, i))).collect();
    let mut alone = Vec::new();
    for t in &texts {
        alone.push(h.embed(vec![t.clone()], false).await.unwrap().vectors.remove(0));
    }
    let before = h.stats();
    let answers = futures::future::join_all(texts.iter().map(|t| {
        let h = h.clone();
        let t = t.clone();
        tokio::spawn(async move { h.embed(vec![t], false).await })
    }))
    .await;
    let after = h.stats();
    let passes = after.forward_passes - before.forward_passes;
    assert!(passes < 16, "16 concurrent requests took {passes} forward passes");
    for (i, a) in answers.into_iter().enumerate() {
        let v = &a.unwrap().unwrap().vectors[0];
        let c = cosine(v, &alone[i]);
        assert!(c >= 0.99999, "request {i}: cosine {c} against its own vector");
    }
}

#[tokio::test]
async fn a_full_queue_refuses_and_a_gone_caller_is_skipped() {
    let Some(h) = spawn(BatchConfig { queue_capacity: 1, max_batch_inputs: 1, ..Default::default() }) else { return };
    let text = long_text(200, 0);
    let results = futures::future::join_all((0..20).map(|_| h.embed(vec![text.clone()], false))).await;
    let refused = results.iter().filter(|r| matches!(r, Err(EmbeddingError::Overloaded))).count();
    assert!(refused >= 1 && results.iter().any(|r| r.is_ok()), "{refused} of 20 refused");
    assert_eq!(h.stats().overloaded, refused as u64);

    let Some(h) = spawn(BatchConfig { max_wait: Duration::from_millis(300), ..Default::default() }) else { return };
    // A lone client waits for no window.
    let started = std::time::Instant::now();
    h.embed(vec!["alone".into()], false).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(250), "{:?}", started.elapsed());
    // Queued behind a long pass, then abandoned before its turn.
    let busy = {
        let h = h.clone();
        tokio::spawn(async move { h.embed((0..32).map(|i| long_text(200, i)).collect(), false).await })
    };
    // Until the actor is serving it (a fixed sleep raced a loaded machine:
    // "gone" could join busy's window and be answered at once).
    let waiting = std::time::Instant::now();
    while h.stats().requests < 2 {
        assert!(waiting.elapsed() < Duration::from_secs(10), "the long pass never started");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Polled once (which queues it) and dropped at once: a timeout here
    // raced a starved test thread, whose timer fired only after the pass.
    let gone = futures::FutureExt::now_or_never(h.embed(vec!["gone".into()], false));
    assert!(gone.is_none(), "answered while a long pass was running");
    busy.await.unwrap().unwrap();
    h.embed(vec!["kept".into()], false).await.unwrap();
    let s = h.stats();
    assert_eq!((s.requests, s.skipped_requests, s.inputs), (4, 1, 34));
}

#[derive(Deserialize)]
struct Reference {
    items: Vec<ReferenceItem>,
}

#[derive(Deserialize)]
struct ReferenceItem {
    text: String,
    embedding: Vec<f32>,
    tokens: u32,
}

#[tokio::test]
async fn matches_sentence_transformers() {
    let Some(h) = spawn(BatchConfig::default()) else { return };
    let path = root().join("tests/data/embeddings_reference.json");
    let reference: Reference = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let texts: Vec<String> = reference.items.iter().map(|i| i.text.clone()).collect();
    let out = h.embed(texts, false).await.unwrap();
    for (item, (v, tokens)) in reference.items.iter().zip(out.vectors.iter().zip(&out.tokens)) {
        assert_eq!(*tokens, item.tokens, "tokens of {:?}", item.text);
        let c = cosine(v, &item.embedding);
        assert!(c >= 0.999, "{:?}: cosine {c}", item.text);
    }
}
