//! The response cache across real `switchyard serve` processes: two
//! replicas on one `redis-server` (an exact and a semantic entry written
//! through one are hits on the other), a replica restarted (it reads the
//! journal back), an entry deleted by id, another tenant never served,
//! Redis stopped mid-run (requests served uncached); and, without Redis,
//! the file journal keeping entries across a restart, the per-request
//! controls, and hits costing nothing.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{free_port, http, redis_server, switchyard, tiny_model, Proc, Response};
use std::path::Path;
use std::time::{Duration, Instant};

const KEY_A: &str = "sy-cache-test-key-a";
const KEY_B: &str = "sy-cache-test-key-b";
const ADMIN: &str = "sy-cache-test-admin";
const ENV: [(&str, &str); 3] = [("SY_KEY_A", KEY_A), ("SY_KEY_B", KEY_B), ("SY_ADMIN", ADMIN)];

fn config(dir: &Path, name: &str, cache: &str) -> String {
    format!(
        "[auth]\nadmin_token_env = \"SY_ADMIN\"\n[state]\npath = \"{}\"\n\
         [[keys]]\nid = \"a\"\nkey_env = \"SY_KEY_A\"\n[[keys]]\nid = \"b\"\nkey_env = \"SY_KEY_B\"\n\
         [prices.tiny]\ninput_per_million = 1000\noutput_per_million = 2000\n\
         [cache]\n{cache}\n",
        dir.join(format!("state-{name}.jsonl")).display()
    )
}

async fn ask(port: u16, key: &str, question: &str, extra: &[(&str, &str)]) -> Response {
    let body = serde_json::json!({"model": "tiny", "messages": [{"role": "user", "content": question}],
        "max_tokens": 6, "temperature": 0})
    .to_string();
    let mut headers = vec![("authorization", format!("Bearer {key}"))];
    headers.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = http(port, "POST", "/v1/chat/completions", &headers, Some(&body)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r
}

fn cache_of(r: &Response) -> (String, String) {
    (
        r.header("x-switchyard-cache").unwrap_or("").to_string(),
        r.header("x-switchyard-cache-entry").unwrap_or("").to_string(),
    )
}

/// Asks until the answer is `want` (another replica's entry arrives through
/// the journal within a few polls); bounded.
async fn ask_until(port: u16, key: &str, question: &str, want: &str) -> Response {
    let start = Instant::now();
    loop {
        // no-store: a miss while waiting must not store an entry of its own.
        let r = ask(port, key, question, &[("cache-control", "no-store")]).await;
        if cache_of(&r).0 == want {
            return r;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "never '{want}' for '{question}': {:?}", r.headers);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn serve(dir: &Path, model: &Path, name: &str, cache: &str) -> Proc {
    std::fs::create_dir_all(dir).unwrap();
    switchyard(dir, model, &config(dir, name, cache), &ENV)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_exact_and_semantic_entries_through_redis() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let redis_port = free_port();
    let mut redis = redis_server(dir.path(), redis_port);
    let cache = format!("redis_url = \"redis://127.0.0.1:{redis_port}\"");
    let a = serve(dir.path(), &model, "a", &cache);
    let mut b = serve(dir.path(), &model, "b", &cache);

    let q = "What is the capital of France?";
    let first = ask(a.port, KEY_A, q, &[]).await;
    let (state, id) = cache_of(&first);
    assert_eq!(state, "miss");
    assert!(id.starts_with("ce-"), "a stored miss names its entry: {:?}", first.headers);
    let answer = first.json()["choices"][0]["message"]["content"].clone();

    // Exact: the same request on the other replica.
    let on_b = ask_until(b.port, KEY_A, q, "hit-exact").await;
    assert_eq!(cache_of(&on_b).1, id);
    assert_eq!(on_b.json()["choices"][0]["message"]["content"], answer);
    assert_eq!(on_b.json()["usage"]["completion_tokens"], first.json()["usage"]["completion_tokens"]);

    // Semantic: reworded, on both replicas (B has it from the journal).
    for (port, reworded) in
        [(a.port, "what is the capital of france"), (b.port, "Hi! What's the capital of France, please?")]
    {
        let r = ask_until(port, KEY_A, reworded, "hit-semantic").await;
        assert_eq!(cache_of(&r).1, id);
        let sim: f32 = r.header("x-switchyard-cache-similarity").unwrap().parse().unwrap();
        assert!((0.0..=1.0).contains(&sim), "{sim}");
        assert_eq!(r.json()["choices"][0]["message"]["content"], answer);
    }
    // A look-alike that asks for something else is not served the answer.
    let other = ask(b.port, KEY_A, "What is the capital of Spain?", &[("cache-control", "no-store")]).await;
    assert_eq!(cache_of(&other).0, "miss");
    // Another tenant (key b, the default scope is the key) never gets key a's entry.
    let tenant = ask(b.port, KEY_B, q, &[("cache-control", "no-store")]).await;
    assert_eq!(cache_of(&tenant).0, "miss");

    // A restarted replica catches up from the journal: the semantic entry is back.
    b.kill();
    let b = serve(dir.path(), &model, "b", &cache);
    let r = ask_until(b.port, KEY_A, "WHAT IS THE CAPITAL OF FRANCE", "hit-semantic").await;
    assert_eq!(cache_of(&r).1, id);

    // Deleted by id through replica A: a miss on both.
    let del = http(
        a.port,
        "DELETE",
        &format!("/admin/cache/entries/{id}"),
        &[("authorization", &format!("Bearer {ADMIN}"))],
        None,
    )
    .await;
    assert_eq!(del.status, 200, "{}", del.body);
    for port in [a.port, b.port] {
        let r = ask_until(port, KEY_A, q, "miss").await;
        assert_ne!(cache_of(&r).1, id);
    }

    // Redis stopped mid-run: requests are still answered (uncached where
    // Redis was needed), within the tier's time limit, never an error.
    redis.kill();
    for i in 0..4 {
        let t = Instant::now();
        let r = ask(a.port, KEY_A, &format!("Question number {i} while Redis is down"), &[]).await;
        assert!(t.elapsed() < Duration::from_secs(10));
        assert_eq!(cache_of(&r).0, "miss");
    }
    // The in-process tier still answers.
    let r = ask(a.port, KEY_A, "Question number 3 while Redis is down", &[]).await;
    assert_eq!(cache_of(&r).0, "hit-exact");
    let metrics = http(a.port, "GET", "/metrics", &[], None).await;
    assert!(metrics.body.contains("llm_cache_errors_total{tier=\"redis\"}"), "{}", metrics.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controls_accounting_and_the_file_journal() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let journal = dir.path().join("cache.journal");
    let cache = format!("journal = \"{}\"", journal.display());
    let mut s = serve(dir.path(), &model, "one", &cache);
    let q = "How many legs does a spider have?";

    let miss = ask(s.port, KEY_A, q, &[]).await;
    assert_eq!(cache_of(&miss).0, "miss");
    assert_ne!(miss.header("x-switchyard-cost-usd"), Some("0.000000000"), "a miss is charged");
    let hit = ask(s.port, KEY_A, q, &[]).await;
    assert_eq!(cache_of(&hit).0, "hit-exact");
    assert_eq!(hit.header("x-switchyard-cost-usd"), Some("0.000000000"), "a hit is free by default");
    assert_eq!(hit.json()["usage"], miss.json()["usage"], "a hit reports the answer's usage");

    // Cache-Control: no-cache skips the lookup; the body's no_store stores nothing.
    let r = ask(s.port, KEY_A, q, &[("cache-control", "no-cache, no-store")]).await;
    assert_eq!(cache_of(&r).0, "skip");
    let body = serde_json::json!({"model": "tiny", "messages": [{"role": "user", "content": "Never stored"}],
        "max_tokens": 4, "temperature": 0, "cache": {"no_store": true}})
    .to_string();
    let auth = format!("Bearer {KEY_A}");
    for _ in 0..2 {
        let r = http(s.port, "POST", "/v1/chat/completions", &[("authorization", &auth)], Some(&body)).await;
        assert_eq!(cache_of(&r).0, "miss");
        assert_eq!(r.header("x-switchyard-cache-entry"), None);
    }
    // A namespace is a partition of its own.
    let ns = serde_json::json!({"model": "tiny", "messages": [{"role": "user", "content": q}],
        "max_tokens": 6, "temperature": 0, "cache": {"namespace": "team-x"}})
    .to_string();
    let r = http(s.port, "POST", "/v1/chat/completions", &[("authorization", &auth)], Some(&ns)).await;
    assert_eq!(cache_of(&r).0, "miss");
    // Sampled without a seed: not cached; with a seed: cached.
    for (sampling, want) in [
        (serde_json::json!({"temperature": 0.8}), "skip"),
        (serde_json::json!({"temperature": 0.8, "seed": 7}), "miss"),
    ] {
        let mut b = serde_json::json!({"model": "tiny", "messages": [{"role": "user", "content": q}], "max_tokens": 6});
        b.as_object_mut().unwrap().extend(sampling.as_object().unwrap().clone());
        let r = http(s.port, "POST", "/v1/chat/completions", &[("authorization", &auth)], Some(&b.to_string())).await;
        assert_eq!(cache_of(&r).0, want, "{b}");
    }
    // A bad control is a 400 naming it.
    let bad =
        serde_json::json!({"model": "tiny", "messages": [{"role": "user", "content": q}], "cache": {"threshold": 2}})
            .to_string();
    let r = http(s.port, "POST", "/v1/chat/completions", &[("authorization", &auth)], Some(&bad)).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "cache.threshold");

    // Stats and metrics.
    let admin = format!("Bearer {ADMIN}");
    let stats = http(s.port, "GET", "/admin/cache/stats", &[("authorization", &admin)], None).await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    assert!(stats.json()["hits"].as_f64().unwrap() >= 1.0, "{}", stats.body);
    let metrics = http(s.port, "GET", "/metrics", &[], None).await.body;
    assert!(metrics.contains("llm_cache_hits_total{cache_level=\"memory\"} 1"), "{metrics}");
    assert!(metrics.contains("llm_cache_saved_dollars"), "{metrics}");

    // The journal keeps the entries across a restart.
    s.kill();
    let s = serve(dir.path(), &model, "one", &cache);
    let r = ask(s.port, KEY_A, q, &[]).await;
    assert_eq!(cache_of(&r).0, "hit-exact");
    let r = ask(s.port, KEY_A, "how many legs does a spider have", &[]).await;
    assert_eq!(cache_of(&r).0, "hit-semantic");

    // Purge by tenant: key a's entries are gone.
    let p =
        http(s.port, "POST", "/admin/cache/purge", &[("authorization", &admin)], Some("{\"tenant\": \"key:a\"}")).await;
    assert_eq!(p.status, 200, "{}", p.body);
    let r = ask(s.port, KEY_A, q, &[("cache-control", "no-store")]).await;
    assert_eq!(cache_of(&r).0, "miss");
}
