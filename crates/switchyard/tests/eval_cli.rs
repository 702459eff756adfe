//! `switchyard eval` end to end over real sockets: a 200-case suite run
//! against models behind a Switchyard; a warm re-run makes no model call
//! (the upstream's own request counter proves it); `eval compare` passes
//! an identical model and fails a degraded one (every fifth call fails),
//! with JUnit XML written for CI.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{mock_requests, setup_mocks, MockBackend};
use serde_json::json;
use std::path::Path;
use std::process::Command;

const GOOD: &str = "[[backends.models]]\nname = \"good\"\nupstream = \"m\"\n";
const TWIN: &str = "[[backends.models]]\nname = \"twin\"\nupstream = \"m\"\n";
const FLAKY: &str = "[[backends.models]]\nname = \"flaky\"\nupstream = \"m\"\n";

fn eval(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard")).arg("eval").args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

fn run(dir: &Path, port: u16, model: &str, out: &str) -> (i32, String) {
    let url = format!("http://127.0.0.1:{port}/v1");
    let suite = dir.join("suite.jsonl");
    let cache = dir.join("cache");
    let out = dir.join(out);
    let junit = dir.join(format!("{model}.xml"));
    eval(&[
        "run",
        suite.to_str().unwrap(),
        "--url",
        &url,
        "--model",
        model,
        "--concurrency",
        "8",
        "--out",
        out.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
        "--cache",
        cache.to_str().unwrap(),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suite_runs_caches_and_gates() {
    // The echo mocks answer each question with its own text, so `exact`
    // on that text passes; the flaky one fails every fifth request (500),
    // and the gateway is told not to retry it.
    let s = setup_mocks(
        &[
            MockBackend { name: "good-b", args: &["--echo", "--finish", "stop"], toml: GOOD },
            MockBackend { name: "twin-b", args: &["--echo", "--finish", "stop"], toml: TWIN },
            MockBackend { name: "flaky-b", args: &["--echo", "--finish", "stop", "--fail-every", "5"], toml: FLAKY },
        ],
        "",
    );
    let dir = s.dir.path();
    let lines: Vec<String> = (0..200)
        .map(|i| {
            let q = format!("item {i}: {}", i * 7);
            json!({"id": format!("c{i:03}"), "messages": [{"role": "user", "content": q}], "expected": q,
                   "tags": [if i % 2 == 0 { "even" } else { "odd" }]})
            .to_string()
        })
        .collect();
    std::fs::write(dir.join("suite.jsonl"), lines.join("\n")).unwrap();
    let port = s.gateway.port;

    let (code, text) = run(dir, port, "good", "base.json");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("scorer exact: 200/200 passed") && text.contains("200 model calls"), "{text}");
    assert_eq!(mock_requests(s.mocks[0].port).await, 200);
    // Warm: the same suite and model again makes no model call at all.
    let (code, text) = run(dir, port, "good", "again.json");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("(0 model calls)"), "{text}");
    assert_eq!(mock_requests(s.mocks[0].port).await, 200);
    let junit = std::fs::read_to_string(dir.join("good.xml")).unwrap();
    assert!(junit.contains("tests=\"200\" failures=\"0\""), "{}", &junit[..300]);

    // An identical model passes the gate.
    let (_, text) = run(dir, port, "twin", "twin.json");
    let base = dir.join("base.json");
    let (code, text2) = eval(&["compare", base.to_str().unwrap(), dir.join("twin.json").to_str().unwrap()]);
    assert_eq!(code, 0, "{text}\n{text2}");
    assert!(text2.contains("gate: pass"), "{text2}");
    // A degraded one (a fifth of its answers lost) fails it, naming the cases.
    let (code, text) = run(dir, port, "flaky", "flaky.json");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("scorer exact: 160/200 passed"), "{text}");
    let junit = std::fs::read_to_string(dir.join("flaky.xml")).unwrap();
    assert!(junit.contains("failures=\"40\"") && junit.contains("the model call failed"), "{}", &junit[..400]);
    let (code, text) = eval(&["compare", base.to_str().unwrap(), dir.join("flaky.json").to_str().unwrap()]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("REGRESSION") && text.contains("gate: FAIL") && text.contains("regressed: c"), "{text}");
    // The same drop under a bar it does not reach passes.
    let (code, text) =
        eval(&["compare", base.to_str().unwrap(), dir.join("flaky.json").to_str().unwrap(), "--max-drop", "0.5"]);
    assert_eq!(code, 0, "{text}");
}

#[test]
fn bad_suites_are_refused_before_any_call() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("bad.jsonl");
    std::fs::write(&suite, r#"{"id": "a", "prompt": "x", "scorers": [{"type": "regex", "pattern": "("}]}"#).unwrap();
    let (code, text) = eval(&["run", suite.to_str().unwrap(), "--model", "m", "--url", "http://127.0.0.1:9/v1"]);
    assert_ne!(code, 0);
    assert!(text.contains("bad.jsonl:1 (a)"), "{text}");
}
