//! `json_schema` answers of remote models over real sockets: checked against
//! the schema before they are returned; an invalid one is the model's
//! failure, so a route falls back to a model that gets it right, and the
//! check can be turned off per backend.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{http, mock_requests, setup_mocks, MockBackend};
use serde_json::json;

const WORDS: &str = "[[backends.models]]\nname = \"words\"\nupstream = \"m\"\n";
const UNCHECKED: &str = "validate = false\n[[backends.models]]\nname = \"unchecked\"\nupstream = \"m\"\n";
const ECHO: &str = "[[backends.models]]\nname = \"echo\"\nupstream = \"m\"\n";
const ROUTES: &str = "[[routes]]\nname = \"json-route\"\nmodels = [\"words\", \"echo\"]\nretries = 0\n";

fn ask(model: &str, content: &str, stream: bool) -> String {
    let schema = json!({"type": "object", "properties": {"n": {"type": "integer", "maximum": 3}},
                        "required": ["n"], "additionalProperties": false});
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": content}],
           "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": schema, "strict": true}}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_answers_are_failures_and_a_route_falls_back() {
    let s = setup_mocks(
        &[
            MockBackend { name: "words-b", args: &["--reply", "this is not JSON", "--finish", "stop"], toml: WORDS },
            MockBackend {
                name: "unchecked-b",
                args: &["--reply", "this is not JSON", "--finish", "stop"],
                toml: UNCHECKED,
            },
            MockBackend { name: "echo-b", args: &["--echo", "--finish", "stop"], toml: ECHO },
        ],
        ROUTES,
    );
    let port = s.gateway.port;
    let post = |body: String| async move { http(port, "POST", "/v1/chat/completions", &[], Some(&body)).await };
    // Asked directly, the invalid answer never reaches the client.
    let r = post(ask("words", r#"{"n": 2}"#, false)).await;
    assert!(r.status >= 500, "{} {}", r.status, r.body);
    assert!(r.body.contains("outside the response_format schema") && !r.body.contains("this is"), "{}", r.body);
    // The route falls back to the model whose answer is valid, whole and streamed.
    for stream in [false, true] {
        let r = post(ask("json-route", r#"{"n": 2}"#, stream)).await;
        assert_eq!((r.status, r.header("x-switchyard-model")), (200, Some("echo")), "{}", r.body);
        let text: String = if stream {
            r.sse_data()
                .iter()
                .filter(|d| *d != "[DONE]")
                .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_string))
                .collect()
        } else {
            r.json()["choices"][0]["message"]["content"].as_str().unwrap().to_string()
        };
        assert_eq!(text, r#"{"n": 2}"#);
    }
    // A valid JSON answer that breaks the schema is a failure too.
    let r = post(ask("echo", r#"{"n": 7}"#, false)).await;
    assert!(r.status >= 500 && r.body.contains("/n"), "{} {}", r.status, r.body);
    // With `validate = false` the answer is returned as it came.
    let r = post(ask("unchecked", r#"{"n": 2}"#, false)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["choices"][0]["message"]["content"].as_str().unwrap().starts_with("this is"), "{}", r.body);
    // Once directly, once per routed request (no retry: `retries = 0`).
    assert_eq!(mock_requests(s.mocks[0].port).await, 3);
}
