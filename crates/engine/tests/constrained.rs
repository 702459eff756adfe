//! Constrained decoding on the real model: answers under `response_format`
//! and tools are valid by construction, alone and batched (greedy answers
//! do not change with company), and schemas that cannot be enforced are
//! refused up front.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use backend_api::{
    Backend, BackendError, ChatTurn, FinishReason, GenerationEvent, OutputConstraint, Prompt, Role, SamplingParams,
    StopParams, ToolChoice, ToolDef, Tools, ValidatedRequest,
};
use engine::{EngineConfig, EngineHandle, LocalModel, WeightFormat};
use futures::StreamExt;
use serde_json::{json, Value};

fn engine() -> EngineHandle {
    let p = engine::testing::default_model().unwrap();
    LocalModel::load(&p, WeightFormat::Fast, Some(2048)).unwrap().spawn("m", EngineConfig::default()).unwrap()
}

fn request(question: &str, output: Option<OutputConstraint>, tools: Option<Tools>) -> ValidatedRequest {
    ValidatedRequest {
        request_id: "r".into(),
        model: "m".into(),
        prompt: Prompt::Chat(vec![ChatTurn::new(Role::User, question)]),
        sampling: SamplingParams::greedy(),
        stop: StopParams { max_tokens: Some(120), ..Default::default() },
        logprobs: None,
        cache_salt: None,
        tools,
        demands: backend_api::Demands { output, ..Default::default() },
    }
}

#[derive(Debug, Default)]
struct Answer {
    text: String,
    calls: Vec<(String, String, String)>,
    finish: Option<FinishReason>,
    completion_tokens: u32,
}

async fn run(engine: &EngineHandle, req: ValidatedRequest) -> Result<Answer, BackendError> {
    let mut stream = engine.generate(req).await?;
    let mut a = Answer::default();
    while let Some(ev) = stream.next().await {
        match ev? {
            GenerationEvent::Delta { text, .. } => a.text.push_str(&text),
            GenerationEvent::ToolCall(d) => {
                if let (Some(id), Some(name)) = (d.id, d.name) {
                    assert_eq!(d.index as usize, a.calls.len());
                    a.calls.push((id, name, String::new()));
                }
                a.calls[d.index as usize].2.push_str(&d.arguments);
            }
            GenerationEvent::Finished { reason, completion_tokens, .. } => {
                a.finish = Some(reason);
                a.completion_tokens = completion_tokens;
            }
            _ => {}
        }
    }
    Ok(a)
}

fn schema(name: &str, schema: Value) -> Option<OutputConstraint> {
    Some(OutputConstraint::JsonSchema { name: name.into(), schema, strict: true })
}

fn assert_valid(schema: &Value, text: &str) {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    let validator = jsonschema::validator_for(schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{text}: {errors:?}");
}

fn person() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 20},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
            "role": {"enum": ["admin", "user", "guest"]},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 10}, "maxItems": 3}
        },
        "required": ["name", "age", "role", "tags"],
        "additionalProperties": false
    })
}

fn weather_tools(choice: ToolChoice, parallel: bool) -> Option<Tools> {
    Some(Tools {
        defs: vec![
            ToolDef {
                name: "get_weather".into(),
                description: Some("Current weather in a city".into()),
                parameters: json!({"type": "object", "properties": {"city": {"type": "string", "maxLength": 30},
                    "unit": {"enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"], "additionalProperties": false}),
                strict: true,
            },
            ToolDef {
                name: "get_time".into(),
                description: Some("Current time in a timezone".into()),
                parameters: json!({"type": "object", "properties": {"timezone": {"type": "string", "maxLength": 30}},
                    "required": ["timezone"], "additionalProperties": false}),
                strict: true,
            },
        ],
        choice,
        parallel,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_answers_follow_their_schema() {
    let e = engine();
    let a = run(&e, request("Describe a user of a web shop.", schema("person", person()), None)).await.unwrap();
    assert_valid(&person(), &a.text);
    assert_eq!(a.finish, Some(FinishReason::Stop));
    let q = "Return a JSON object with the keys city and country for Paris.";
    let a = run(&e, request(q, Some(OutputConstraint::JsonObject), None)).await.unwrap();
    assert!(serde_json::from_str::<Value>(&a.text).unwrap().is_object(), "{}", a.text);
    assert_eq!(a.finish, Some(FinishReason::Stop));
    // Raw completions too.
    let mut r = request("", schema("person", person()), None);
    r.prompt = Prompt::Text("A user record as JSON:".into());
    assert_valid(&person(), &run(&e, r).await.unwrap().text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_are_generated_in_every_required_form() {
    let e = engine();
    let params = |name: &str| {
        weather_tools(ToolChoice::Auto, false).unwrap().defs.into_iter().find(|d| d.name == name).unwrap().parameters
    };
    // Required: some listed function, valid arguments.
    let a = run(&e, request("What is the weather in Paris?", None, weather_tools(ToolChoice::Required, false)))
        .await
        .unwrap();
    assert_eq!(a.finish, Some(FinishReason::ToolCalls));
    assert!(a.text.is_empty(), "{:?}", a.text);
    assert_eq!(a.calls.len(), 1);
    let (id, name, args) = &a.calls[0];
    assert!(id.starts_with("call_"));
    assert_valid(&params(name), args);
    // Named: that function.
    let a = run(&e, request("Weather please.", None, weather_tools(ToolChoice::Named("get_time".into()), true)))
        .await
        .unwrap();
    assert_eq!(a.calls.iter().map(|c| c.1.as_str()).collect::<Vec<_>>(), ["get_time"]);
    assert_valid(&params("get_time"), &a.calls[0].2);
    // Auto: text or calls, and either way well formed.
    let a = run(&e, request("Hello! How are you?", None, weather_tools(ToolChoice::Auto, true))).await.unwrap();
    assert!(a.calls.is_empty() != a.text.is_empty(), "{a:?}");
    for (_, name, args) in &a.calls {
        assert_valid(&params(name), args);
    }
    // None: plain text, no tools offered.
    let a = run(&e, request("Hello!", None, weather_tools(ToolChoice::None, true))).await.unwrap();
    assert!(a.calls.is_empty() && !a.text.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_turn_reads_the_tool_result() {
    let e = engine();
    let mut call = ChatTurn::new(Role::Assistant, "");
    call.tool_calls = vec![backend_api::ToolCall {
        id: "call_1".into(),
        name: "get_weather".into(),
        arguments: r#"{"city": "Paris", "unit": "celsius"}"#.into(),
    }];
    let mut result = ChatTurn::new(Role::Tool, "21 degrees and sunny");
    result.tool_call_id = Some("call_1".into());
    let mut r = request("", None, weather_tools(ToolChoice::Auto, false));
    r.prompt = Prompt::Chat(vec![ChatTurn::new(Role::User, "What is the weather in Paris?"), call, result]);
    let prompt = e.prompt_tokens(&r.prompt, r.tools.as_ref()).unwrap();
    let text = e.tokenizer().decode(&prompt);
    assert!(text.contains("<tool_response>\n21 degrees and sunny\n</tool_response>"), "{text}");
    let a = run(&e, r).await.unwrap();
    assert!(a.finish.is_some() && (a.calls.is_empty() || a.finish == Some(FinishReason::ToolCalls)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_that_cannot_be_enforced_are_refused() {
    let e = engine();
    let bad = json!({"type": "object", "properties": {"a": {"type": "string"}}, "patternProperties": {"^x(?=y)": {}}});
    let err = run(&e, request("x", schema("bad", bad), None)).await.err().unwrap();
    match err {
        BackendError::InvalidRequest { message, param, .. } => {
            assert_eq!(param.as_deref(), Some("response_format"));
            assert!(message.contains("cannot be enforced"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let not = json!({"type": "object", "not": {"required": ["a"]}});
    let err = run(&e, request("x", schema("not", not), None)).await.err().unwrap();
    assert!(matches!(&err, BackendError::InvalidRequest { message, .. } if message.contains("not")), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constrained_answers_do_not_change_in_a_batch() {
    let e = engine();
    let reqs: Vec<ValidatedRequest> = (0..6)
        .map(|i| match i % 3 {
            0 => request(&format!("Describe user number {i}."), schema("person", person()), None),
            1 => request(&format!("Weather in city {i}?"), None, weather_tools(ToolChoice::Required, true)),
            _ => request(&format!("Tell me a fact about the number {i}."), None, None),
        })
        .collect();
    let reqs: Vec<ValidatedRequest> = reqs
        .into_iter()
        .map(|mut r| {
            // Equality is the point here, not complete answers.
            r.stop.max_tokens = Some(40);
            r
        })
        .collect();
    let mut alone = Vec::new();
    for r in &reqs {
        let a = run(&e, r.clone()).await.unwrap();
        alone.push((a.text, a.calls.into_iter().map(|c| (c.1, c.2)).collect::<Vec<_>>(), a.completion_tokens));
    }
    let together = futures::future::join_all(reqs.iter().map(|r| run(&e, r.clone()))).await;
    for (i, a) in together.into_iter().enumerate() {
        let a = a.unwrap();
        let a = (a.text, a.calls.into_iter().map(|c| (c.1, c.2)).collect::<Vec<_>>(), a.completion_tokens);
        assert_eq!(a, alone[i], "request {i} changed when batched");
    }
}
