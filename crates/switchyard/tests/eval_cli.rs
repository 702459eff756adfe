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
    let html = dir.join(format!("{model}.html"));
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
        "--html",
        html.to_str().unwrap(),
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
    let html = dir.join("gate.html");
    let (code, text) = eval(&[
        "compare",
        base.to_str().unwrap(),
        dir.join("flaky.json").to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{text}");
    assert!(std::fs::read_to_string(&html).unwrap().contains("gate: FAIL"));
    // The run's report: bars per scorer and tag, the failed cases first.
    let report = std::fs::read_to_string(dir.join("flaky.html")).unwrap();
    assert!(report.contains("Pass rate per scorer") && report.contains("Pass rate per tag"), "{}", &report[..500]);
    let first_case = report.find("<tr class=").unwrap();
    assert!(report[first_case..].starts_with("<tr class=fail>"), "failures first");
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
    assert!(text.contains("bad.jsonl:1") && text.contains("regex parse error"), "{text}");
    // A scorer's needs are checked too, with the case named.
    std::fs::write(&suite, r#"{"id": "a", "prompt": "x", "scorers": [{"type": "contains"}]}"#).unwrap();
    let (code, text) = eval(&["run", suite.to_str().unwrap(), "--model", "m", "--url", "http://127.0.0.1:9/v1"]);
    assert_ne!(code, 0);
    assert!(text.contains("bad.jsonl:1 (a)") && text.contains("needs a 'value'"), "{text}");
    let yaml = dir.path().join("bad.yaml");
    std::fs::write(&yaml, "cases:\n  - id: a\n    prompt: x\n    typo: 1\n").unwrap();
    let (code, text) = eval(&["run", yaml.to_str().unwrap(), "--model", "m", "--url", "http://127.0.0.1:9/v1"]);
    assert_ne!(code, 0);
    assert!(text.contains("bad.yaml") && text.contains("typo"), "{text}");
    // An error deep in a YAML suite names its line.
    std::fs::write(
        &yaml,
        "- id: a\n  prompt: x\n  expected: y\n- id: b\n  prompt: x\n  scorers:\n    - {type: regex, pattern: \"(\"}\n",
    )
    .unwrap();
    let (code, text) = eval(&["run", yaml.to_str().unwrap(), "--model", "m", "--url", "http://127.0.0.1:9/v1"]);
    assert_ne!(code, 0);
    assert!(text.contains("regex parse error") && text.contains("line 7"), "{text}");
}

/// A YAML suite (suite-wide defaults, per-case scorers) against a config
/// served in-process: embedding similarity with the in-process MiniLM, a
/// cost threshold at the config's price, and a warm re-run (a new port,
/// the same answers) that makes no model call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_yaml_suite_runs_against_a_config_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let echo = common::mock_provider(dir.path(), &["--echo", "--finish", "stop"]);
    let config = dir.path().join("switchyard.toml");
    std::fs::write(
        &config,
        format!(
            "models = []\n[prices.echo]\ninput_per_million = 1000\noutput_per_million = 1000\n\
             [[backends]]\nname = \"b\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{}/v1\"\n\
             [[backends.models]]\nname = \"echo\"\nupstream = \"m\"\n",
            echo.port
        ),
    )
    .unwrap();
    let suite = dir.path().join("suite.yaml");
    std::fs::write(
        &suite,
        r#"
repeats: 2
scorers:
  - type: similarity
    threshold: 0.8
cases:
  - id: paris
    prompt: The capital of France is Paris.
    expected: Paris is the capital city of France.
    tags: [geo]
  - id: bananas
    prompt: Bananas grow in bunches.
    expected: The stock market fell sharply on Tuesday.
  - id: number
    messages:
      - {role: system, content: Be brief.}
      - {role: user, content: "42"}
    expected: 42
    repeats: 1
    scorers:
      - {type: exact}
      - {type: cost, max_usd: 0.5}
      - {type: cost, max_usd: 0.0000001}
"#,
    )
    .unwrap();
    let minilm = gateway::config::default_model_path(gateway::config::DEFAULT_EMBEDDING_DIR);
    let run = |out: &str| {
        let out = dir.path().join(out);
        let (code, text) = eval(&[
            "run",
            suite.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--model",
            "echo",
            "--embedding-model",
            minilm.to_str().unwrap(),
            "--cache",
            dir.path().join("cache").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{text}");
        let results: serde_json::Value = serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap();
        (results, text)
    };
    let (first, text) = run("first.json");
    assert_eq!(first["model_calls"], json!(5), "2 + 2 repeats + 1: {text}");
    let cases = first["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    let verdict = |id: &str, scorer: &str| -> serde_json::Value {
        cases.iter().find(|c| c["id"] == json!(id)).unwrap()["scores"][scorer].clone()
    };
    assert_eq!(verdict("paris", "similarity")["pass"], json!(true), "{first}");
    assert!(verdict("paris", "similarity")["score"].as_f64().unwrap() > 0.8);
    assert_eq!(verdict("bananas", "similarity")["pass"], json!(false), "{first}");
    assert!(verdict("bananas", "similarity")["score"].as_f64().unwrap() < 0.5);
    assert_eq!(verdict("number", "exact")["pass"], json!(true), "{first}");
    assert_eq!(verdict("number", "cost")["pass"], json!(true), "{first}");
    assert_eq!(verdict("number", "cost#2")["pass"], json!(false), "{first}");
    assert!(verdict("number", "cost")["detail"].as_str().unwrap().starts_with('$'));
    assert_eq!(mock_requests(echo.port).await, 5);
    let (again, _) = run("again.json");
    assert_eq!(again["model_calls"], json!(0));
    assert_eq!(mock_requests(echo.port).await, 5, "the in-process server's port changed; the answers did not");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_judge_grades_retries_and_pairs_both_orders() {
    let judge = |name: &str| format!("[[backends.models]]\nname = \"{name}\"\nupstream = \"m\"\n");
    let (good, bad, first) = (judge("judge-good"), judge("judge-bad"), judge("judge-first"));
    let s = setup_mocks(
        &[
            MockBackend { name: "good-b", args: &["--echo", "--finish", "stop"], toml: GOOD },
            MockBackend {
                name: "jg-b",
                args: &["--reply", r#"{"score": 9, "reason": "right"}"#, "--finish", "stop"],
                toml: &good,
            },
            MockBackend {
                name: "jb-b",
                args: &["--reply", "Sure! I would give it 9/10.", "--finish", "stop"],
                toml: &bad,
            },
            // Always prefers the first answer shown: pure position bias.
            MockBackend { name: "jf-b", args: &["--reply", r#"{"winner": "A"}"#, "--finish", "stop"], toml: &first },
        ],
        "",
    );
    let dir = s.dir.path();
    let scorers = json!([
        {"type": "judge", "model": "judge-good", "rubric": "Is it right?"},
        {"type": "judge", "model": "judge-bad", "rubric": "Is it right?"},
        {"type": "judge", "model": "judge-first", "rubric": "Which is better?", "pairwise": true}
    ]);
    let lines: Vec<String> = (0..3)
        .map(|i| json!({"id": format!("q{i}"), "prompt": format!("question {i}"), "expected": "an answer", "scorers": scorers}).to_string())
        .collect();
    std::fs::write(dir.join("suite.jsonl"), lines.join("\n")).unwrap();
    let port = s.gateway.port;
    let url = format!("http://127.0.0.1:{port}/v1");
    let args = |out: &str| {
        let v: Vec<String> = vec![
            "run".into(),
            dir.join("suite.jsonl").display().to_string(),
            "--url".into(),
            url.clone(),
            "--model".into(),
            "good".into(),
            "--out".into(),
            dir.join(out).display().to_string(),
            "--cache".into(),
            dir.join("cache").display().to_string(),
            "--judge-input-per-million".into(),
            "1".into(),
        ];
        v
    };
    let run = |out: &str| {
        let owned = args(out);
        eval(&owned.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (code, text) = run("judged.json");
    assert_eq!(code, 0, "{text}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("judged.json")).unwrap()).unwrap();
    for case in v["cases"].as_array().unwrap() {
        let s = &case["scores"];
        assert_eq!((s["judge"]["pass"].as_bool(), s["judge"]["score"].as_f64()), (Some(true), Some(0.9)), "{case}");
        assert_eq!(s["judge#1"]["pass"], false);
        assert!(s["judge#1"]["detail"].as_str().unwrap().contains("no verdict in 3 tries"), "{case}");
        // Won where it stood first, lost where second: a tie, not a win.
        assert_eq!(s["judge_pairwise"]["score"].as_f64(), Some(0.5), "{case}");
    }
    assert!(v["judge"]["prompt_tokens"].as_u64().unwrap() > 0 && v["judge"]["cost_usd"].as_f64().unwrap() > 0.0, "{v}");
    // The unparsable judge was asked three times per case; the pairwise one twice.
    assert_eq!(mock_requests(s.mocks[2].port).await, 9);
    assert_eq!(mock_requests(s.mocks[3].port).await, 6);
    // A warm re-run: no call to the model or to any judge.
    let (code, text) = run("again.json");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("(0 model calls)"), "{text}");
    assert_eq!(mock_requests(s.mocks[2].port).await, 9);
}
