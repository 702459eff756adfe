//! `/v1/embeddings` over real sockets with the in-process MiniLM and remote
//! embedding models (the mock provider): a route falls back from a failing
//! remote to the embedded model, `dimensions` reaches a remote model, keys
//! and rate limits apply, and the price per million input tokens is charged.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{away_from_minute_boundary, http, mock_provider, switchyard, tiny_model};
use serde_json::{json, Value};

fn minilm() -> std::path::PathBuf {
    let dir = gateway::config::default_model_path(gateway::config::DEFAULT_EMBEDDING_DIR);
    assert!(dir.exists(), "{} missing: run scripts/setup-models.sh", dir.display());
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_and_local_embedding_models_with_routes_keys_and_prices() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let ok = mock_provider(dir.path(), &[]);
    let failing = mock_provider(dir.path(), &["--fail-every", "1"]);
    let config = format!(
        r#"
[state]
path = "{state}/state.jsonl"
[[keys]]
id = "k"
key_env = "SY_EMB_KEY"
rpm = 5
[embeddings]
name = "minilm"
path = "{minilm}"
[prices.minilm]
input_per_million = 1000000
output_per_million = 0
[[backends]]
name = "remote"
kind = "openai"
base_url = "http://127.0.0.1:{ok}/v1"
[[backends.models]]
name = "remote-embed"
upstream = "text-embedding-3-small"
capabilities = ["embeddings"]
[[backends]]
name = "broken"
kind = "openai"
base_url = "http://127.0.0.1:{failing}/v1"
[[backends.models]]
name = "broken-embed"
capabilities = ["embeddings"]
[[routes]]
name = "embed"
models = ["broken-embed", "minilm"]
"#,
        state = dir.path().display(),
        minilm = minilm().display(),
        ok = ok.port,
        failing = failing.port,
    );
    let gw = switchyard(dir.path(), &model, &config, &[("SY_EMB_KEY", "sy-emb")]);
    away_from_minute_boundary(std::time::Duration::from_secs(20));
    let auth = [("authorization", "Bearer sy-emb")];
    let post = |body: Value| {
        let port = gw.port;
        async move { http(port, "POST", "/v1/embeddings", &auth, Some(&body.to_string())).await }
    };
    // The remote model: its vectors, `dimensions` passed on, its usage charged.
    let r = post(json!({"model": "remote-embed", "input": ["abc", "defgh"], "dimensions": 4})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][1]["embedding"].as_array().unwrap().len(), 4);
    assert_eq!(v["usage"]["prompt_tokens"], 4, "the upstream's own usage");
    // A route: the broken remote fails, the embedded model answers; priced at $1 per token.
    let r = post(json!({"model": "embed", "input": "Hello world"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 384);
    assert_eq!(v["usage"]["prompt_tokens"], 4);
    assert_eq!(r.header("x-switchyard-cost-usd"), Some("4.000000000"));
    assert!(r.header("x-ratelimit-remaining-requests").is_some());
    // A chat model is not an embedding model, and the other way round.
    let r = post(json!({"model": "tiny", "input": "x"})).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let chat = json!({"model": "minilm", "messages": [{"role": "user", "content": "x"}]});
    let r = http(gw.port, "POST", "/v1/chat/completions", &auth, Some(&chat.to_string())).await;
    assert_eq!(r.status, 400, "{}", r.body);
    // Without a key: 401; past the key's 5 requests a minute: 429.
    assert_eq!(
        http(gw.port, "POST", "/v1/embeddings", &[], Some(&json!({"model": "minilm", "input": "x"}).to_string()))
            .await
            .status,
        401
    );
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(post(json!({"model": "minilm", "input": "x"})).await.status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let models = http(gw.port, "GET", "/v1/models", &auth, None).await.json();
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    for id in ["minilm", "remote-embed", "embed"] {
        assert!(ids.contains(&id), "{id} not in {ids:?}");
    }
}
