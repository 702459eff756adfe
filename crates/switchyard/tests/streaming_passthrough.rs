//! Streams from an OpenAI-compatible upstream reach the client byte for
//! byte: every `data:` payload the mock provider sent, in order, unchanged
//! (its ids, its model id, a field the gateway does not model), the usage
//! chunk only when the client asked for it; through a route too, which
//! names the model it chose in `x-switchyard-model`.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{http, setup_mocks, MockBackend};
use serde_json::{json, Value};

async fn sent_by_mock(port: u16) -> Vec<String> {
    let v = http(port, "GET", "/mock/last", &[], None).await.json();
    v.as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect()
}

fn is_usage_only(payload: &str) -> bool {
    serde_json::from_str::<Value>(payload)
        .is_ok_and(|v| v["choices"].as_array().is_some_and(|c| c.is_empty()) && !v["usage"].is_null())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_chunks_are_relayed_unchanged() {
    let s = setup_mocks(
        &[
            MockBackend {
                name: "up",
                args: &["--token-interval-ms", "5"],
                toml: "[[backends.models]]\nname = \"relay-model\"\nupstream = \"upstream-id\"\n",
            },
            MockBackend {
                name: "rendered",
                args: &[],
                toml: "passthrough = false\n[[backends.models]]\nname = \"own-name\"\nupstream = \"upstream-id\"\n",
            },
        ],
        "[[routes]]\nname = \"relayed\"\nmodels = [\"relay-model\"]\n",
    );
    let (port, mock) = (s.gateway.port, s.mocks[0].port);
    let messages = json!([{"role": "user", "content": "héllo ✓ there"}]);
    for (model, include_usage) in [("relay-model", false), ("relay-model", true), ("relayed", false)] {
        let mut body = json!({"model": model, "messages": messages, "max_tokens": 5, "stream": true});
        if include_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        let r = http(port, "POST", "/v1/chat/completions", &[], Some(&body.to_string())).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let got = r.sse_data();
        let sent = sent_by_mock(mock).await;
        // The gateway always asks for usage; the client sees it only if it asked.
        let expected: Vec<String> = sent.into_iter().filter(|p| include_usage || !is_usage_only(p)).collect();
        assert_eq!(got, expected, "{model}, include_usage = {include_usage}");
        assert!(got.iter().any(|p| p.contains("\"system_fingerprint\":\"fp_mock\"")), "{got:?}");
        assert!(got[1].contains("\"model\":\"upstream-id\""), "{got:?}");
        if model == "relayed" {
            assert_eq!(r.header("x-switchyard-model"), Some("relay-model"));
        }
    }

    // Text completions likewise.
    let body = json!({"model": "relay-model", "prompt": "once upon", "max_tokens": 3, "stream": true,
        "stream_options": {"include_usage": true}});
    let r = http(port, "POST", "/v1/completions", &[], Some(&body.to_string())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.sse_data(), sent_by_mock(mock).await);

    // Several prompts in one request are several upstream streams: rendered
    // by the gateway with their own indexes, not relayed.
    let body = json!({"model": "relay-model", "prompt": ["a", "b"], "max_tokens": 2, "stream": true});
    let r = http(port, "POST", "/v1/completions", &[], Some(&body.to_string())).await;
    let indexes: Vec<u64> = r
        .sse_data()
        .iter()
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok()?["choices"][0]["index"].as_u64())
        .collect();
    assert!(indexes.contains(&0) && indexes.contains(&1), "{indexes:?}");

    // `passthrough = false`: the gateway renders the chunks, with its own names.
    let body = json!({"model": "own-name", "messages": messages, "max_tokens": 3, "stream": true});
    let r = http(port, "POST", "/v1/chat/completions", &[], Some(&body.to_string())).await;
    let chunks: Vec<Value> =
        r.sse_data().iter().filter(|d| *d != "[DONE]").map(|d| serde_json::from_str(d).unwrap()).collect();
    assert!(
        !chunks.is_empty() && chunks.iter().all(|c| c["model"] == "own-name" && c["system_fingerprint"].is_null()),
        "{chunks:?}"
    );
}
