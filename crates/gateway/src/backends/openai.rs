//! An OpenAI-compatible server as a `Backend`: the validated request is
//! sent as `/chat/completions` or `/completions`, always streamed (with
//! `stream_options.include_usage`), and the server's chunks become
//! generation events as they arrive, nothing buffered. The same backend
//! speaks Anthropic's Messages API (`/messages`: system turns into
//! `system`, turns of one role merged, `stop` as `stop_sequences`; the
//! named stream events read back, `max_tokens` stop reason as `length`). Usage is the
//! server's own; a server that sends none is counted (the prompt as
//! below, one completion token per content chunk).
//!
//! Prompts are counted before the request is sent (limits and budgets
//! reserve them) with OpenAI's own tokenizer (`tiktoken`) for the models
//! OpenAI names (gpt-4o, gpt-4.1, o1, gpt-3.5-turbo, …: 3 tokens per
//! message plus its role and content, 3 to prime the reply, as OpenAI
//! counts chat prompts), and with `estimate_prompt_tokens` otherwise.

use super::config::{BackendConfig, Dialect, RemoteModel};
use super::sse::SseLines;
use super::translate::{anthropic_body, request_body};
use axum::body::Bytes;
use backend_api::{
    estimate_prompt_tokens, Backend, BackendError, FinishReason, GeneratedToken, GenerationEvent, GenerationStream,
    ModelInfo, OutputConstraint, Prompt, TokenAlternative, ToolCallDelta, ValidatedRequest,
};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tiktoken_rs::CoreBPE;
use tokio::time::Instant;

pub struct OpenAiBackend {
    config: BackendConfig,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// Model name → OpenAI's tokenizer, for the upstream ids it knows.
    tokenizers: HashMap<String, &'static CoreBPE>,
}

/// TLS for https base URLs: the system's certificate authorities plus the
/// backend's `ca_file`, rustls on ring, TLS 1.2 and 1.3.
fn tls_config(config: &BackendConfig) -> Result<rustls::ClientConfig, String> {
    client_tls(&config.name, &config.extra_roots, config.base_url.starts_with("https://"))
}

/// A TLS client trusting the system's authorities and `extra` (for
/// backends, and for anything else the gateway calls, like webhooks).
pub(crate) fn client_tls(
    name: &str,
    extra: &[rustls::pki_types::CertificateDer<'static>],
    https: bool,
) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::warn!(client = %name, error = %e, "reading the system's certificate authorities");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    let (extra, bad) = roots.add_parsable_certificates(extra.iter().cloned());
    if https {
        tracing::debug!(client = %name, system = added, ignored, ca_file = extra, bad, "TLS roots");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("{name}: TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// An error with its causes ("client error (connect): invalid peer
/// certificate: UnknownIssuer"): the client's own message names none.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// The Messages API version this translation speaks.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Error bodies are read up to this size.
const MAX_ERROR_BODY: usize = 64 * 1024;

impl OpenAiBackend {
    pub fn new(config: BackendConfig) -> Result<Self, String> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.timeouts.connect));
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let tls = HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(&config)?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new()).build(tls);
        let tokenizers = config
            .models
            .iter()
            .filter_map(|m| {
                let t = tiktoken_rs::tokenizer::get_tokenizer(&m.upstream)?;
                Some((m.name.clone(), tiktoken_rs::bpe_for_tokenizer(t).ok()?))
            })
            .collect();
        Ok(OpenAiBackend { config, client, tokenizers })
    }

    /// The answer, validated first when it must meet a JSON Schema.
    async fn checked(
        &self,
        stream: GenerationStream,
        request: &ValidatedRequest,
    ) -> Result<GenerationStream, BackendError> {
        match &request.demands.output {
            Some(OutputConstraint::JsonSchema { schema, .. }) if self.config.validate => {
                super::schema_check::checked(stream, schema, &request.model).await
            }
            _ => Ok(stream),
        }
    }

    pub(super) fn config(&self) -> &BackendConfig {
        &self.config
    }

    pub(super) fn count(&self, model: &str, prompt: &Prompt) -> u32 {
        let Some(bpe) = self.tokenizers.get(model) else { return estimate_prompt_tokens(prompt) };
        let n = |s: &str| bpe.encode_ordinary(s).len();
        let tokens = match prompt {
            Prompt::Text(t) => n(t),
            Prompt::Chat(turns) => {
                let calls = |t: &backend_api::ChatTurn| -> usize {
                    t.tool_calls.iter().map(|c| 3 + n(&c.name) + n(&c.arguments)).sum()
                };
                turns.iter().map(|t| 3 + n(t.role.as_str()) + n(&t.text()) + calls(t)).sum::<usize>() + 3
            }
        };
        tokens as u32
    }

    /// The prompt and the tools offered with it (their JSON, as an estimate).
    fn count_request(&self, r: &ValidatedRequest) -> u32 {
        let tools = r.tools.as_ref().map_or(0, |t| {
            let json: usize = t
                .defs
                .iter()
                .map(|d| d.name.len() + d.description.as_ref().map_or(0, String::len) + d.parameters.to_string().len())
                .sum();
            json.div_ceil(4) as u32
        });
        self.count(&r.model, &r.prompt) + tools
    }

    fn model(&self, name: &str) -> Option<&RemoteModel> {
        self.config.models.iter().find(|m| m.name == name)
    }

    pub(super) fn unavailable(&self, what: impl std::fmt::Display) -> BackendError {
        BackendError::Unavailable(format!("backend '{}': {what}", self.config.name))
    }

    /// Maps an upstream error response to ours, keeping its message.
    pub(super) fn upstream_error(
        &self,
        status: u16,
        retry_after: Option<Duration>,
        body: &[u8],
        model: &str,
    ) -> BackendError {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let message = v
            .pointer("/error/message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| clip(&String::from_utf8_lossy(body), 200).to_string());
        match status {
            400 | 422 => BackendError::InvalidRequest {
                message,
                param: v.pointer("/error/param").and_then(Value::as_str).map(str::to_string),
                code: v.pointer("/error/code").and_then(Value::as_str).map(str::to_string),
            },
            404 => BackendError::ModelNotFound(model.to_string()),
            429 => BackendError::Overloaded {
                message: format!("backend '{}' is rate limiting: {message}", self.config.name),
                retry_after,
            },
            503 if retry_after.is_some() => BackendError::Overloaded {
                message: format!("backend '{}' is overloaded: HTTP 503: {message}", self.config.name),
                retry_after,
            },
            _ => self.unavailable(format!("HTTP {status}: {message}")),
        }
    }
}

impl OpenAiBackend {
    /// The dialect's credentials and version headers.
    fn authenticated(&self, mut req: hyper::http::request::Builder) -> hyper::http::request::Builder {
        match (&self.config.api_key, self.config.dialect) {
            (Some(key), Dialect::OpenAi) => req = req.header("authorization", format!("Bearer {key}")),
            (Some(key), Dialect::Anthropic) => req = req.header("x-api-key", key.as_str()),
            (None, _) => {}
        }
        if self.config.dialect == Dialect::Anthropic {
            req = req.header("anthropic-version", ANTHROPIC_VERSION);
        }
        req
    }

    /// POSTs `body` to `path`, waiting for the response head within the
    /// first-byte timeout; a non-2xx answer is the upstream's error (its
    /// message kept, `Retry-After` read). Returns the response and the
    /// deadline of the whole answer (the total timeout).
    pub(super) async fn post(
        &self,
        path: &str,
        body: &Value,
        accept: &str,
        model: &str,
    ) -> Result<(hyper::Response<hyper::body::Incoming>, Instant), BackendError> {
        let t = self.config.timeouts;
        let deadline = Instant::now() + t.total;
        let req = self.authenticated(
            hyper::Request::post(format!("{}{path}", self.config.base_url))
                .header("content-type", "application/json")
                .header("accept", accept),
        );
        let req = req.body(Full::new(Bytes::from(body.to_string()))).map_err(|e| self.unavailable(e))?;
        let resp = match tokio::time::timeout(t.first_byte.min(t.total), self.client.request(req)).await {
            Err(_) => return Err(self.unavailable(format!("no response within {} ms", t.first_byte.as_millis()))),
            Ok(Err(e)) => return Err(self.unavailable(format!("request failed: {}", with_causes(&e)))),
            Ok(Ok(r)) => r,
        };
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let retry_after = retry_after(resp.headers());
            let limited = http_body_util::Limited::new(resp.into_body(), MAX_ERROR_BODY);
            let body = match tokio::time::timeout_at(deadline, limited.collect()).await {
                Ok(Ok(b)) => b.to_bytes(),
                _ => Bytes::new(),
            };
            return Err(self.upstream_error(status, retry_after, &body, model));
        }
        Ok((resp, deadline))
    }

    /// A whole answer's body, at most `limit` bytes, by `deadline`.
    pub(super) async fn read_whole(
        &self,
        resp: hyper::Response<hyper::body::Incoming>,
        limit: usize,
        deadline: Instant,
    ) -> Result<Bytes, BackendError> {
        let limited = http_body_util::Limited::new(resp.into_body(), limit);
        match tokio::time::timeout_at(deadline, limited.collect()).await {
            Err(_) => Err(self.unavailable("the answer took longer than the total timeout")),
            Ok(Err(e)) => Err(self.unavailable(format!("reading the answer: {e}"))),
            Ok(Ok(b)) => Ok(b.to_bytes()),
        }
    }

    /// An active health check: the server lists its models (2xx) within
    /// the connect and first-byte timeouts.
    pub async fn probe(&self) -> Result<(), String> {
        let req = self.authenticated(hyper::Request::get(format!("{}/models", self.config.base_url)));
        let req = req.body(Full::new(Bytes::new())).map_err(|e| e.to_string())?;
        let t = self.config.timeouts;
        match tokio::time::timeout(t.connect + t.first_byte, self.client.request(req)).await {
            Err(_) => Err("no answer in time".into()),
            Ok(Err(e)) => Err(format!("request failed: {}", with_causes(&e))),
            Ok(Ok(r)) if r.status().is_success() => Ok(()),
            Ok(Ok(r)) => Err(format!("HTTP {}", r.status().as_u16())),
        }
    }
}

/// Token log-probabilities of one streamed choice: OpenAI's chat shape
/// (`content: [{token, logprob, bytes, top_logprobs}]`) or the completions
/// shape (`tokens`, `token_logprobs`, `top_logprobs: [{token: logprob}]`).
pub(super) fn upstream_logprobs(v: &Value) -> Vec<GeneratedToken> {
    let bytes = |t: &Value, text: &str| {
        t.get("bytes")
            .and_then(Value::as_array)
            .map(|b| b.iter().filter_map(|x| x.as_u64().and_then(|x| u8::try_from(x).ok())).collect())
            .unwrap_or_else(|| text.as_bytes().to_vec())
    };
    if let Some(content) = v.get("content").and_then(Value::as_array) {
        return content
            .iter()
            .filter_map(|t| {
                let text = t.get("token")?.as_str()?.to_string();
                let top = t.get("top_logprobs").and_then(Value::as_array).map_or(Vec::new(), |alts| {
                    alts.iter()
                        .filter_map(|a| {
                            let text = a.get("token")?.as_str()?.to_string();
                            let logprob = a.get("logprob")?.as_f64()? as f32;
                            Some(TokenAlternative { id: 0, bytes: bytes(a, &text), text, logprob })
                        })
                        .collect()
                });
                Some(GeneratedToken {
                    id: 0,
                    bytes: bytes(t, &text),
                    logprob: t.get("logprob").and_then(Value::as_f64).map(|l| l as f32),
                    text,
                    top_logprobs: top,
                })
            })
            .collect();
    }
    let (Some(tokens), Some(lps)) =
        (v.get("tokens").and_then(Value::as_array), v.get("token_logprobs").and_then(Value::as_array))
    else {
        return Vec::new();
    };
    let tops = v.get("top_logprobs").and_then(Value::as_array);
    tokens
        .iter()
        .zip(lps)
        .enumerate()
        .filter_map(|(i, (t, lp))| {
            let text = t.as_str()?.to_string();
            let top = tops.and_then(|a| a.get(i)).and_then(Value::as_object).map_or(Vec::new(), |m| {
                m.iter()
                    .filter_map(|(k, l)| {
                        Some(TokenAlternative {
                            id: 0,
                            text: k.clone(),
                            bytes: k.as_bytes().to_vec(),
                            logprob: l.as_f64()? as f32,
                        })
                    })
                    .collect()
            });
            Some(GeneratedToken {
                id: 0,
                bytes: text.as_bytes().to_vec(),
                text,
                logprob: lp.as_f64().map(|l| l as f32),
                top_logprobs: top,
            })
        })
        .collect()
}

/// At most `max` bytes of `s`, cut at a character boundary (upstream text
/// in error messages may be any UTF-8).
pub(super) fn clip(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// An upstream's `Retry-After`, in seconds only (the HTTP-date form is
/// rare from APIs and is ignored).
fn retry_after(headers: &hyper::HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(86_400.0)))
}

/// The finish reason an upstream names.
pub(super) fn finish_reason(name: &str) -> FinishReason {
    match name {
        "length" | "max_tokens" => FinishReason::Length,
        "tool_calls" | "function_call" | "tool_use" => FinishReason::ToolCalls,
        "content_filter" | "refusal" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

/// The tool-call pieces of an OpenAI chunk's `delta.tool_calls` (or, whole,
/// `message.tool_calls`, whose entries carry no `index`).
pub(super) fn tool_call_deltas(calls: &Value) -> Vec<ToolCallDelta> {
    let Some(calls) = calls.as_array() else { return Vec::new() };
    calls
        .iter()
        .enumerate()
        .map(|(i, c)| ToolCallDelta {
            index: c.get("index").and_then(Value::as_u64).map_or(i as u32, |x| x as u32),
            id: c.get("id").and_then(Value::as_str).map(str::to_string),
            name: c.pointer("/function/name").and_then(Value::as_str).map(str::to_string),
            arguments: c.pointer("/function/arguments").and_then(Value::as_str).unwrap_or_default().to_string(),
        })
        .collect()
}

/// What the stream has seen so far.
struct Reading {
    body: hyper::body::Incoming,
    lines: SseLines,
    pending: VecDeque<Result<GenerationEvent, BackendError>>,
    estimate: u32,
    usage: Option<(u32, u32, u32)>,
    finish: Option<FinishReason>,
    chunks: u32,
    deadline: Instant,
    over: bool,
    backend: String,
    dialect: Dialect,
    /// Anthropic: content block index → the tool call it carries (its index among the calls).
    tool_blocks: Vec<(u64, u32)>,
    /// The request's stop strings.
    stops: Vec<String>,
}

impl Reading {
    fn fail(&mut self, what: String) {
        self.pending.push_back(Err(BackendError::Unavailable(format!("backend '{}': {what}", self.backend))));
        self.over = true;
    }

    fn finished(&mut self) {
        let (prompt, mut completion, cached) = self.usage.unwrap_or((self.estimate, self.chunks, 0));
        if completion == 0 {
            // A stream that reported its prompt but not its completion.
            completion = self.chunks;
        }
        self.pending.push_back(Ok(GenerationEvent::Finished {
            reason: self.finish.unwrap_or(FinishReason::Stop),
            prompt_tokens: prompt,
            completion_tokens: completion,
            cached_tokens: cached,
        }));
        self.over = true;
    }

    /// One Messages API stream event (its `type` is in the data too).
    fn anthropic_event(&mut self, v: &Value) {
        let n = |p: &str| v.pointer(p).and_then(Value::as_u64).map(|n| n as u32);
        match v.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                let (prompt, cached) = (n("/message/usage/input_tokens"), n("/message/usage/cache_read_input_tokens"));
                self.usage = Some((prompt.unwrap_or(self.estimate), 0, cached.unwrap_or(0)));
            }
            Some("content_block_start")
                if v.pointer("/content_block/type").and_then(Value::as_str) == Some("tool_use") =>
            {
                let index = self.tool_blocks.len() as u32;
                self.tool_blocks.push((v.get("index").and_then(Value::as_u64).unwrap_or(0), index));
                let field =
                    |f: &str| v.pointer(&format!("/content_block/{f}")).and_then(Value::as_str).map(str::to_string);
                let delta = ToolCallDelta { index, id: field("id"), name: field("name"), arguments: String::new() };
                self.pending.push_back(Ok(GenerationEvent::ToolCall(delta)));
            }
            Some("content_block_delta") => {
                if let Some(text) = v.pointer("/delta/text").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                    self.chunks += 1;
                    self.pending.push_back(Ok(GenerationEvent::Delta { text: text.to_string(), tokens: Vec::new() }));
                }
                if let Some(json) = v.pointer("/delta/partial_json").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                    let block = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                    if let Some((_, index)) = self.tool_blocks.iter().find(|(b, _)| *b == block) {
                        self.chunks += 1;
                        let delta = ToolCallDelta { index: *index, id: None, name: None, arguments: json.to_string() };
                        self.pending.push_back(Ok(GenerationEvent::ToolCall(delta)));
                    }
                }
            }
            Some("message_delta") => {
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    // Which of the request's stop strings matched, when the API says.
                    let sequence = v.pointer("/delta/stop_sequence").and_then(Value::as_str);
                    let index = sequence.and_then(|q| self.stops.iter().position(|s| s == q));
                    self.finish = Some(match (r, index.and_then(|i| u8::try_from(i).ok())) {
                        ("stop_sequence", Some(i)) => FinishReason::StopString(i),
                        _ => finish_reason(r),
                    });
                }
                if let (Some(out), Some(u)) = (n("/usage/output_tokens"), self.usage.as_mut()) {
                    u.1 = out;
                }
            }
            Some("message_stop") => self.finished(),
            Some("error") => {
                let message = v.pointer("/error/message").and_then(Value::as_str).unwrap_or("error event").to_string();
                self.fail(format!("failed mid-stream: {message}"));
            }
            _ => {}
        }
    }

    fn payload(&mut self, data: &str) {
        if self.dialect == Dialect::Anthropic {
            match serde_json::from_str::<Value>(data) {
                Ok(v) => return self.anthropic_event(&v),
                Err(_) => return self.fail(format!("unreadable stream event: {}", clip(data, 200))),
            }
        }
        if data == "[DONE]" {
            return self.finished();
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return self.fail(format!("unreadable stream chunk: {}", clip(data, 200)));
        };
        if v.get("error").is_some() {
            let message = v.pointer("/error/message").and_then(Value::as_str).unwrap_or("error event").to_string();
            return self.fail(format!("failed mid-stream: {message}"));
        }
        let usage_only = v.get("usage").is_some_and(|u| !u.is_null())
            && v.get("choices").and_then(Value::as_array).is_none_or(|c| c.is_empty());
        let finishes = v.pointer("/choices/0/finish_reason").is_some_and(|f| !f.is_null());
        self.pending.push_back(Ok(GenerationEvent::Upstream { data: data.to_string(), usage_only, finishes }));
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            let n = |p: &str| u.pointer(p).and_then(Value::as_u64).unwrap_or(0) as u32;
            self.usage =
                Some((n("/prompt_tokens"), n("/completion_tokens"), n("/prompt_tokens_details/cached_tokens")));
        }
        let Some(choice) = v.pointer("/choices/0") else { return };
        let text = choice.pointer("/delta/content").or_else(|| choice.get("text")).and_then(Value::as_str);
        let tokens = choice.get("logprobs").map(upstream_logprobs).unwrap_or_default();
        if text.is_some_and(|t| !t.is_empty()) || !tokens.is_empty() {
            self.chunks += 1;
            let text = text.unwrap_or_default().to_string();
            self.pending.push_back(Ok(GenerationEvent::Delta { text, tokens }));
        }
        if let Some(calls) = choice.pointer("/delta/tool_calls") {
            for d in tool_call_deltas(calls) {
                self.chunks += 1;
                self.pending.push_back(Ok(GenerationEvent::ToolCall(d)));
            }
        }
        if let Some(r) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(finish_reason(r));
        }
    }

    async fn next(mut self) -> Option<(Result<GenerationEvent, BackendError>, Self)> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some((e, self));
            }
            if self.over {
                return None;
            }
            match tokio::time::timeout_at(self.deadline, self.body.frame()).await {
                Err(_) => self.fail("the response took longer than the total timeout".into()),
                Ok(None) => self.fail("the stream ended before the generation finished".into()),
                Ok(Some(Err(e))) => self.fail(format!("reading the stream: {e}")),
                Ok(Some(Ok(frame))) => {
                    if let Some(bytes) = frame.data_ref() {
                        for data in self.lines.push(bytes) {
                            self.payload(&data);
                            if self.over {
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl Backend for OpenAiBackend {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn models(&self) -> Vec<ModelInfo> {
        self.config
            .models
            .iter()
            .map(|m| ModelInfo {
                id: m.name.clone(),
                context_length: m.context_length,
                owned_by: self.config.name.clone(),
                details: None,
            })
            .collect()
    }

    fn count_prompt_tokens(&self, request: &ValidatedRequest) -> Result<u32, BackendError> {
        Ok(self.count_request(request))
    }

    async fn generate(&self, request: ValidatedRequest) -> Result<GenerationStream, BackendError> {
        let model = self.model(&request.model).ok_or_else(|| BackendError::ModelNotFound(request.model.clone()))?;
        if self.config.dialect == Dialect::Anthropic {
            if request.logprobs.is_some() {
                return Err(BackendError::invalid("the Messages API returns no logprobs", Some("logprobs")));
            }
            if request.demands.output.is_some() {
                return Err(BackendError::invalid("the Messages API has no JSON mode", Some("response_format")));
            }
        }
        let (path, body) = match self.config.dialect {
            Dialect::OpenAi => request_body(&request, &model.upstream),
            Dialect::Anthropic => ("/messages", anthropic_body(&request, &model.upstream)),
        };
        let streams = self.config.dialect == Dialect::Anthropic || request.demands.stream;
        let accept = if streams { "text/event-stream" } else { "application/json" };
        let (resp, deadline) = self.post(path, &body, accept, &request.model).await?;
        let estimate = self.count_request(&request);
        let is_sse = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if self.config.dialect == Dialect::OpenAi && !is_sse {
            let body = self.read_whole(resp, super::whole::MAX_ANSWER_BODY, deadline).await?;
            let stream = super::whole::answer_stream(&body, estimate, &self.config.name)?;
            return self.checked(stream, &request).await;
        }
        let mut reading = Reading {
            body: resp.into_body(),
            lines: SseLines::default(),
            pending: VecDeque::new(),
            estimate,
            usage: None,
            finish: None,
            chunks: 0,
            deadline,
            over: false,
            backend: self.config.name.clone(),
            dialect: self.config.dialect,
            tool_blocks: Vec::new(),
            stops: request.stop.stop.clone(),
        };
        // The exact prompt size comes with the usage at the end.
        reading.pending.push_back(Ok(GenerationEvent::Started {
            prompt_tokens: estimate,
            cached_tokens: 0,
            model: None,
            verbatim: self.config.dialect == Dialect::OpenAi && self.config.passthrough,
        }));
        let stream: GenerationStream = Box::pin(futures::stream::unfold(reading, Reading::next));
        self.checked(stream, &request).await
    }

    /// A remote model is assumed ready; its health is the circuit breaker's
    /// and the probes' business (a remote outage must not fail `/ready`).
    async fn ready(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::config::{RemoteModel, Timeouts};
    use backend_api::ChatTurn;
    use serde_json::json;
    use std::time::Duration;

    #[tokio::test]
    async fn openai_models_are_counted_with_openai_s_tokenizer() {
        let model = |name: &str, upstream: &str| RemoteModel {
            name: name.into(),
            upstream: upstream.into(),
            context_length: 8192,
            card: crate::registry::ModelCard::local(name, 8192),
            price: None,
        };
        let t = Duration::from_secs(1);
        let b = OpenAiBackend::new(BackendConfig {
            name: "openai".into(),
            dialect: Dialect::OpenAi,
            base_url: "http://127.0.0.1:9".into(),
            api_key: None,
            extra_roots: Vec::new(),
            timeouts: Timeouts { connect: t, first_byte: t, total: t },
            queue: None,
            health_check_interval: None,
            passthrough: true,
            validate: true,
            models: vec![model("fast", "gpt-4o-mini"), model("other", "some-org/some-model")],
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let chat = Prompt::Chat(vec![ChatTurn::new(backend_api::Role::User, "hello world")]);
        // 3 per message + "user" (1) + "hello world" (2) + 3 priming the reply.
        assert_eq!(b.count("fast", &chat), 9);
        assert_eq!(b.count("fast", &Prompt::Text("hello world".into())), 2);
        assert_eq!(b.count("other", &chat), estimate_prompt_tokens(&chat));
    }

    #[test]
    fn upstream_text_is_clipped_at_a_character_boundary() {
        // 199 ASCII bytes, then a 2-byte character across byte 200: slicing at 200 panicked.
        let garbage = format!("{}é{}", "x".repeat(199), "ü".repeat(300));
        assert_eq!(clip(&garbage, 200).len(), 199);
        assert_eq!(clip("héllo", 200), "héllo");
        assert_eq!(clip("日本語", 4), "日");
    }

    #[test]
    fn tool_call_pieces_are_read_streamed_and_whole() {
        let streamed =
            json!([{"index": 1, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\""}}]);
        let d = tool_call_deltas(&streamed);
        assert_eq!(
            (d[0].index, d[0].id.as_deref(), d[0].name.as_deref(), d[0].arguments.as_str()),
            (1, Some("call_1"), Some("f"), "{\"a\"")
        );
        let whole = json!([{"id": "a", "function": {"name": "f", "arguments": "{}"}}, {"id": "b", "function": {"name": "g", "arguments": "{}"}}]);
        assert_eq!(tool_call_deltas(&whole).iter().map(|d| d.index).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(finish_reason("tool_calls"), FinishReason::ToolCalls);
        assert_eq!(finish_reason("max_tokens"), FinishReason::Length);
    }

    #[test]
    fn upstream_logprobs_are_read_in_both_shapes() {
        let chat = json!({"content": [{"token": "Hi", "logprob": -0.25, "bytes": [72, 105],
            "top_logprobs": [{"token": "Hi", "logprob": -0.25}, {"token": "Hey", "logprob": -1.5}]}]});
        let t = upstream_logprobs(&chat);
        assert_eq!(t.len(), 1);
        assert_eq!((t[0].text.as_str(), t[0].logprob, t[0].bytes.as_slice()), ("Hi", Some(-0.25), &b"Hi"[..]));
        assert_eq!(t[0].top_logprobs.iter().map(|a| a.logprob).collect::<Vec<_>>(), [-0.25, -1.5]);
        let text = json!({"tokens": [" a", " b"], "token_logprobs": [-0.5, -2.0], "top_logprobs": [{" a": -0.5}, {}]});
        let t = upstream_logprobs(&text);
        assert_eq!(t.iter().map(|t| t.logprob).collect::<Vec<_>>(), [Some(-0.5), Some(-2.0)]);
        assert_eq!(t[0].top_logprobs.len(), 1);
        assert!(upstream_logprobs(&json!(null)).is_empty());
    }
}
