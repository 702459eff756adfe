//! `EngineHandle`: the cheap, clonable way into an engine actor. It renders
//! and tokenizes prompts on the caller's task (so errors such as an
//! over-long prompt come back before any stream starts), then hands the
//! request to the actor thread.

use crate::chat_template::ChatTemplate;
use crate::constraint::tools::{CallParser, Parsed};
use crate::constraint::{grammar, Constraint, Grammars};
use crate::sampler::Sampler;
use crate::scheduler::{EngineConfig, Scheduler};
use crate::sequence::EngineRequest;
use crate::stats::{EngineStats, HistogramSnapshot, StatsSnapshot};
use crate::tokenizer::Tokenizer;
use crate::{EngineError, LocalModel};
use backend_api::{
    Backend, BackendError, FinishReason, GenerationEvent, GenerationStream, ModelInfo, Prompt, ToolChoice, Tools,
    ValidatedRequest,
};
use futures::StreamExt;
use std::sync::Arc;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio_stream::wrappers::UnboundedReceiverStream;

#[derive(Clone)]
pub struct EngineHandle {
    inner: Arc<Inner>,
}

struct Inner {
    model_id: String,
    tokenizer: Arc<Tokenizer>,
    template: ChatTemplate,
    context_length: usize,
    details: protocol::ModelDetails,
    requests: UnboundedSender<EngineRequest>,
    stats: Arc<EngineStats>,
    /// `None` when the vocabulary could not be read for grammars (then
    /// `response_format` and tools are refused).
    grammars: Option<Arc<Grammars>>,
}

impl LocalModel {
    /// Starts the engine actor on its own thread and returns its handle.
    pub fn spawn(self, model_id: &str, config: EngineConfig) -> Result<EngineHandle, EngineError> {
        if config.max_num_seqs == 0 || config.max_num_batched_tokens == 0 {
            return Err(EngineError::Config("max_num_seqs and max_num_batched_tokens must be at least 1".into()));
        }
        let (tx, rx) = unbounded_channel();
        let LocalModel { model, tokenizer, template, context_length, details, .. } = self;
        let block_bytes = model.kv_block_bytes();
        let capacity = config.num_blocks(block_bytes) * crate::kv_cache::BLOCK_SIZE;
        if capacity == 0 {
            return Err(EngineError::Config(format!(
                "a KV cache of {} bytes holds no block ({block_bytes} bytes each)",
                config.kv_cache_bytes
            )));
        }
        // One sequence must always fit in the pool on its own, or the
        // scheduler could neither run it nor make room by preempting.
        let context_length = if capacity < context_length {
            tracing::warn!(
                context_length,
                capacity,
                "the KV cache holds fewer positions than the context window; serving a window of {capacity}"
            );
            capacity
        } else {
            context_length
        };
        let grammars = match Grammars::new(&tokenizer) {
            Ok(g) => Some(Arc::new(g)),
            Err(e) => {
                tracing::warn!(error = %e, "constrained decoding is off: response_format and tools will be refused");
                None
            }
        };
        let stats = Arc::new(EngineStats::default());
        let scheduler = Scheduler::new(model, tokenizer.clone(), config, context_length, stats.clone());
        std::thread::Builder::new()
            .name(format!("engine-{model_id}"))
            .spawn(move || scheduler.run(rx))
            .map_err(|e| EngineError::Spawn(e.to_string()))?;
        Ok(EngineHandle {
            inner: Arc::new(Inner {
                model_id: model_id.to_string(),
                tokenizer,
                template,
                context_length,
                details,
                requests: tx,
                stats,
                grammars,
            }),
        })
    }
}

impl EngineHandle {
    pub fn model_id(&self) -> &str {
        &self.inner.model_id
    }

    pub fn context_length(&self) -> usize {
        self.inner.context_length
    }

    /// Live engine counters (running / waiting sequences, tokens, cancellations).
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// Time-to-first-token and inter-token latency histograms.
    pub fn latency(&self) -> (HistogramSnapshot, HistogramSnapshot) {
        (self.inner.stats.time_to_first_token.snapshot(), self.inner.stats.inter_token_latency.snapshot())
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.inner.tokenizer
    }

    /// The prompt as the model will see it: template applied (with the
    /// tools offered, unless `tool_choice` is `none`), tokenized.
    pub fn prompt_tokens(&self, prompt: &Prompt, tools: Option<&Tools>) -> Result<Vec<u32>, BackendError> {
        let text = match prompt {
            Prompt::Text(t) => t.clone(),
            Prompt::Chat(turns) => {
                let defs = tools.filter(|t| t.choice != ToolChoice::None).map(|t| t.defs.as_slice());
                self.inner
                    .template
                    .render(turns, defs)
                    .map_err(|e| BackendError::invalid(e.to_string(), Some("messages")))?
            }
        };
        Ok(self.inner.tokenizer.encode(&text))
    }

    /// The grammar compiler of this model (for benchmarks and tests).
    pub fn grammars(&self) -> Option<Arc<Grammars>> {
        self.inner.grammars.clone()
    }

    /// Compiles the request's grammar off the engine thread; a grammar
    /// that cannot be enforced is the client's error, naming why.
    async fn constraint(&self, spec: &grammar::GrammarSpec) -> Result<Constraint, BackendError> {
        let param = spec.param;
        let Some(grammars) = self.inner.grammars.clone() else {
            return Err(BackendError::invalid(
                format!("model '{}' cannot constrain its output here", self.inner.model_id),
                Some(param),
            ));
        };
        let lark = spec.lark.clone();
        let compiled = tokio::task::spawn_blocking(move || grammars.compile(&lark))
            .await
            .map_err(|e| BackendError::Internal(format!("grammar compilation stopped: {e}")))?;
        compiled.map_err(|e| BackendError::invalid(format!("{param}: the schema cannot be enforced: {e}"), Some(param)))
    }
}

/// What the engine cannot do is refused, never silently ignored: a client
/// that sent an image must not get an answer about no image.
fn refuse_unsupported(request: &ValidatedRequest) -> Result<(), BackendError> {
    let model = &request.model;
    if let Prompt::Chat(turns) = &request.prompt {
        for (i, t) in turns.iter().enumerate() {
            if let Some(j) = t.first_media() {
                return Err(BackendError::invalid(
                    format!("messages[{i}].content[{j}]: model '{model}' reads text only, not images"),
                    Some(&format!("messages[{i}].content[{j}]")),
                ));
            }
        }
    }
    Ok(())
}

/// Cuts the answer's text into tool-call deltas (see `CallParser`); the
/// finish reason becomes `tool_calls` when the answer made calls.
fn parse_calls(stream: GenerationStream, calls_only: bool) -> GenerationStream {
    let mut parser = CallParser::new(calls_only);
    let mut convert =
        move |event: Result<GenerationEvent, BackendError>| -> Vec<Result<GenerationEvent, BackendError>> {
            match event {
                Ok(GenerationEvent::Delta { text, tokens }) => {
                    let mut out: Vec<_> = parser.push(&text).into_iter().map(to_event).collect();
                    // Log-probs go with the text; a call's tokens carry none
                    // (OpenAI gives none for tool calls either).
                    if let Some(Ok(GenerationEvent::Delta { tokens: t, .. })) = out.first_mut() {
                        *t = tokens;
                    }
                    out
                }
                Ok(GenerationEvent::Finished { reason, prompt_tokens, completion_tokens, cached_tokens }) => {
                    let mut out: Vec<_> = parser.finish().into_iter().map(to_event).collect();
                    let reason = if parser.calls() > 0 && reason == FinishReason::Stop {
                        FinishReason::ToolCalls
                    } else {
                        reason
                    };
                    out.push(Ok(GenerationEvent::Finished { reason, prompt_tokens, completion_tokens, cached_tokens }));
                    out
                }
                other => vec![other],
            }
        };
    stream.flat_map(move |e| futures::stream::iter(convert(e))).boxed()
}

fn to_event(p: Parsed) -> Result<GenerationEvent, BackendError> {
    Ok(match p {
        Parsed::Text(text) => GenerationEvent::Delta { text, tokens: Vec::new() },
        Parsed::Call(delta) => GenerationEvent::ToolCall(delta),
    })
}

#[async_trait::async_trait]
impl Backend for EngineHandle {
    fn name(&self) -> &str {
        "local"
    }

    fn models(&self) -> Vec<ModelInfo> {
        vec![ModelInfo {
            id: self.inner.model_id.clone(),
            context_length: self.inner.context_length as u32,
            owned_by: "switchyard".into(),
            details: Some(self.inner.details.clone()),
        }]
    }

    fn count_prompt_tokens(&self, request: &ValidatedRequest) -> Result<u32, BackendError> {
        Ok(self.prompt_tokens(&request.prompt, request.tools.as_ref())?.len() as u32)
    }

    async fn generate(&self, request: ValidatedRequest) -> Result<GenerationStream, BackendError> {
        let arrived = std::time::Instant::now();
        if request.model != self.inner.model_id {
            return Err(BackendError::ModelNotFound(request.model));
        }
        refuse_unsupported(&request)?;
        let prompt = self.prompt_tokens(&request.prompt, request.tools.as_ref())?;
        let ctx = self.inner.context_length;
        if prompt.is_empty() {
            return Err(BackendError::invalid("the prompt is empty", Some("prompt")));
        }
        if prompt.len() >= ctx {
            return Err(BackendError::InvalidRequest {
                message: format!(
                    "This model's maximum context length is {ctx} tokens. However, your prompt has {} tokens, leaving no room for a completion.",
                    prompt.len()
                ),
                param: Some("messages".into()),
                code: Some("context_length_exceeded".into()),
            });
        }
        let room = (ctx - prompt.len()) as u32;
        let max_new_tokens = match request.stop.max_tokens {
            Some(m) if m > room => {
                return Err(BackendError::InvalidRequest {
                    message: format!(
                        "This model's maximum context length is {ctx} tokens. However, you requested {} tokens ({} in the prompt, {m} for the completion). Please reduce the prompt or max_tokens.",
                        prompt.len() as u64 + u64::from(m),
                        prompt.len()
                    ),
                    param: Some("max_tokens".into()),
                    code: Some("context_length_exceeded".into()),
                })
            }
            Some(m) => m,
            None => room,
        };
        let spec = grammar::for_request(request.demands.output.as_ref(), request.tools.as_ref());
        let constraint = match &spec {
            Some(spec) => Some(self.constraint(spec).await?),
            None => None,
        };
        let (tx, rx) = unbounded_channel();
        let req = EngineRequest {
            prompt,
            sampler: Sampler::new(request.sampling),
            stop: request.stop,
            max_new_tokens,
            logprobs: request.logprobs,
            events: tx,
            arrived,
            cache_salt: request.cache_salt,
            constraint,
        };
        self.inner.requests.send(req).map_err(|_| BackendError::Unavailable("the engine has stopped".into()))?;
        let stream = UnboundedReceiverStream::new(rx).boxed();
        Ok(match spec {
            Some(spec) if spec.calls => parse_calls(stream, spec.calls_only),
            _ => stream,
        })
    }

    async fn ready(&self) -> bool {
        !self.inner.requests.is_closed()
    }
}
