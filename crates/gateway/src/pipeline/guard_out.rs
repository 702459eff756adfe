//! Step 10, guard out: the output guardrails of the route and key over
//! the answer as it streams (and tool-call arguments once complete).
//! Last in the list, so its wrapper is the innermost: the cache records
//! the guarded answer, never the raw one. Text passes a hold-back window
//! (`guardrails::stream`): a value split across any number of chunks is
//! redacted whole; `block` ends the answer with `content_filter` (after
//! the text released before the value), the stream closing normally.
//! `warn` and `log` are logged and counted (a stream's headers are gone by
//! then). Log-probs keep their count but not their text (it could hold
//! what was redacted).

use super::guard_in::{delta, is_empty_delta};
use super::{Call, Ctx, Flow, Step};
use crate::error::ApiError;
use crate::guardrails::pii::{find, non_overlapping, Finding};
use crate::guardrails::redact::Redactor;
use crate::guardrails::stream::{HoldBack, Release, Scan};
use crate::guardrails::{key_id, GuardKind, GuardrailConfig, Guardrails, Mode, Stage};
use backend_api::{FinishReason, GenerationEvent, GenerationStream, ToolCallDelta};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Instant;

pub struct GuardOut;

/// Tool calls one answer may carry (an upstream's index is not trusted
/// with an allocation).
const MAX_TOOL_CALLS: usize = 128;

#[async_trait::async_trait]
impl Step for GuardOut {
    async fn before(&self, ctx: &mut Ctx, call: &mut Call) -> Result<Flow, ApiError> {
        let Some(rails) = ctx.state.guardrails() else { return Ok(Flow::Continue) };
        let guards = rails.applicable(Stage::Output, &call.model, key_id(&ctx.principal));
        if !guards.is_empty() {
            // The text is checked and rewritten: no byte-for-byte relay.
            ctx.needs_text = true;
            call.output_guards = Some(Arc::new(guards));
        }
        Ok(Flow::Continue)
    }

    fn after(&self, ctx: &Ctx, call: &Call, stream: GenerationStream) -> GenerationStream {
        match (&call.output_guards, ctx.state.guardrails()) {
            (Some(g), Some(rails)) => {
                let seed = call.restore.as_deref().map(Vec::as_slice).unwrap_or_default();
                guarded(g.clone(), rails.clone(), Redactor::seeded(seed), stream)
            }
            _ => stream,
        }
    }
}

/// The output guardrails as one scan of the held text.
struct OutputScan {
    guards: Arc<Vec<GuardrailConfig>>,
    rails: Arc<Guardrails>,
    redactor: Redactor,
    /// Findings of the last scan to redact.
    last: Vec<Finding>,
    /// Values already counted as warnings (a held value is scanned again
    /// with each chunk).
    warned: Vec<String>,
}

impl OutputScan {
    /// Findings to redact (and to hold), or the guard that blocks. `last`:
    /// the text is complete; until then a finding that touches its end may
    /// still grow into something else (a longer number that fails Luhn), so
    /// it is held, not acted on.
    fn findings(&mut self, text: &str, last: bool) -> Result<Vec<Finding>, String> {
        let mut redact: Vec<Finding> = Vec::new();
        for g in self.guards.iter() {
            let t = Instant::now();
            let found = find(text, &g.entities);
            self.rails.metrics.timed(&g.name, t.elapsed().as_secs_f64());
            for f in found {
                if !last && f.end == text.len() {
                    redact.push(f);
                    continue;
                }
                match g.mode_of(f.entity) {
                    Mode::Block => {
                        self.rails.metrics.found(GuardKind::Pii, Stage::Output, Mode::Block, 1);
                        tracing::info!(guard = %g.name, entity = f.entity.name(), "output guardrail blocked the answer");
                        return Err(g.name.clone());
                    }
                    Mode::Redact => redact.push(f),
                    mode @ (Mode::Warn | Mode::Log) => {
                        let value = format!("{}:{}", g.name, &text[f.start..f.end]);
                        if !self.warned.contains(&value) {
                            self.warned.push(value);
                            self.rails.metrics.found(GuardKind::Pii, Stage::Output, mode, 1);
                            tracing::info!(guard = %g.name, entity = f.entity.name(), mode = mode.as_str(), "output guardrail finding");
                        }
                    }
                }
            }
        }
        Ok(non_overlapping(redact))
    }
}

impl Scan for OutputScan {
    fn scan(&mut self, text: &str, last: bool) -> Result<Vec<(usize, usize)>, String> {
        self.last = self.findings(text, last)?;
        Ok(self.last.iter().map(|f| (f.start, f.end)).collect())
    }

    fn rewrite(&mut self, text: &str, spans: &[(usize, usize)]) -> String {
        let chosen: Vec<Finding> = self.last.iter().copied().filter(|f| spans.contains(&(f.start, f.end))).collect();
        if !chosen.is_empty() {
            self.rails.metrics.found(GuardKind::Pii, Stage::Output, Mode::Redact, chosen.len() as u64);
        }
        self.redactor.redact(text, &chosen)
    }
}

struct Guarded {
    hold: HoldBack,
    scan: OutputScan,
    /// Tool calls gathered whole: (id, name, arguments).
    calls: Vec<(Option<String>, Option<String>, String)>,
    prompt_tokens: u32,
    cached_tokens: u32,
    generated: u32,
    blocked: bool,
}

impl Guarded {
    /// The gathered tool calls, arguments checked; `Err` when one blocks.
    fn calls(&mut self) -> Result<Vec<Result<GenerationEvent, backend_api::BackendError>>, String> {
        let mut out = Vec::new();
        for (i, (id, name, args)) in std::mem::take(&mut self.calls).into_iter().enumerate() {
            let found = self.scan.findings(&args, true)?;
            if !found.is_empty() {
                self.scan.rails.metrics.found(GuardKind::Pii, Stage::Output, Mode::Redact, found.len() as u64);
            }
            let arguments = self.scan.redactor.redact(&args, &found);
            out.push(Ok(GenerationEvent::ToolCall(ToolCallDelta { index: i as u32, id, name, arguments })));
        }
        Ok(out)
    }

    fn content_filter(&self) -> Result<GenerationEvent, backend_api::BackendError> {
        Ok(GenerationEvent::Finished {
            reason: FinishReason::ContentFilter,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.generated,
            cached_tokens: self.cached_tokens,
        })
    }

    fn on(
        &mut self,
        event: Result<GenerationEvent, backend_api::BackendError>,
    ) -> Vec<Result<GenerationEvent, backend_api::BackendError>> {
        if self.blocked {
            return Vec::new();
        }
        match event {
            Ok(GenerationEvent::Started { prompt_tokens, cached_tokens, model, verbatim: _ }) => {
                self.prompt_tokens = prompt_tokens;
                self.cached_tokens = cached_tokens;
                vec![Ok(GenerationEvent::Started { prompt_tokens, cached_tokens, model, verbatim: false })]
            }
            Ok(GenerationEvent::Delta { text, mut tokens }) => {
                self.generated += (tokens.len() as u32).max(u32::from(!text.is_empty()));
                for t in tokens.iter_mut() {
                    t.text.clear();
                    t.bytes.clear();
                    t.top_logprobs.clear();
                }
                match self.hold.feed(&text, false, &mut self.scan) {
                    Release::Text(t) => vec![delta(t, tokens)],
                    Release::Blocked(_) => {
                        self.blocked = true;
                        vec![self.content_filter()]
                    }
                }
            }
            Ok(GenerationEvent::ToolCall(d)) => {
                let i = d.index as usize;
                if i >= MAX_TOOL_CALLS {
                    tracing::warn!(index = i, "a tool call index past {MAX_TOOL_CALLS}: dropped");
                    return Vec::new();
                }
                while self.calls.len() <= i {
                    self.calls.push((None, None, String::new()));
                }
                let c = &mut self.calls[i];
                c.0 = d.id.or(c.0.take());
                c.1 = d.name.or(c.1.take());
                c.2.push_str(&d.arguments);
                Vec::new()
            }
            Ok(finished @ GenerationEvent::Finished { .. }) => {
                let rest = self.hold.feed("", true, &mut self.scan);
                let calls = self.calls();
                match (rest, calls) {
                    (Release::Text(t), Ok(calls)) => {
                        let mut out = vec![delta(t, Vec::new())];
                        out.extend(calls);
                        out.push(Ok(finished));
                        out
                    }
                    _ => {
                        self.blocked = true;
                        vec![self.content_filter()]
                    }
                }
            }
            // Re-rendered from the checked text, never relayed.
            Ok(GenerationEvent::Upstream { .. }) => Vec::new(),
            // An upstream's error message may quote what it generated.
            Err(e) => {
                tracing::warn!(error = %e, "the backend failed mid-answer");
                vec![Err(backend_api::BackendError::Unavailable(
                    "the backend failed mid-answer (details withheld: output guardrails apply)".into(),
                ))]
            }
            other => vec![other],
        }
    }
}

fn guarded(
    guards: Arc<Vec<GuardrailConfig>>,
    rails: Arc<Guardrails>,
    redactor: Redactor,
    stream: GenerationStream,
) -> GenerationStream {
    let window = guards.iter().map(|g| g.window).max().unwrap_or(crate::guardrails::pii::MAX_SPAN);
    let mut g = Guarded {
        hold: HoldBack::new(window),
        scan: OutputScan { guards, rails, redactor, last: Vec::new(), warned: Vec::new() },
        calls: Vec::new(),
        prompt_tokens: 0,
        cached_tokens: 0,
        generated: 0,
        blocked: false,
    };
    rewrite(stream, move |event| g.on(event))
}

type Event = Result<GenerationEvent, backend_api::BackendError>;

/// Maps each event of `stream` to any number of events; the stream ends
/// after the first `Finished` that comes out (the backend's stream is then
/// dropped, which cancels a generation a guard blocked).
pub(super) fn rewrite(
    stream: GenerationStream,
    f: impl FnMut(Event) -> Vec<Event> + Send + 'static,
) -> GenerationStream {
    let state = (Some(stream), std::collections::VecDeque::new(), f);
    futures::stream::unfold(state, |(mut inner, mut queue, mut f)| async move {
        loop {
            if let Some(e) = queue.pop_front() {
                if matches!(e, Ok(GenerationEvent::Finished { .. })) {
                    inner = None;
                    queue.clear();
                }
                return Some((e, (inner, queue, f)));
            }
            let next = inner.as_mut()?.next().await;
            match next {
                Some(e) => queue.extend(f(e).into_iter().filter(|e| !is_empty_delta(e))),
                None => return None,
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guardrails::pii::ALL;
    use crate::guardrails::{Detector, GuardKind};

    fn rails(mode: Mode) -> (Arc<Vec<GuardrailConfig>>, Arc<Guardrails>) {
        let g = GuardrailConfig {
            name: "pii-out".into(),
            kind: GuardKind::Pii,
            detector: Detector::Ngrams,
            threshold: 0.5,
            model: None,
            categories: Vec::new(),
            stage: Stage::Output,
            mode,
            models: None,
            keys: None,
            entities: ALL.to_vec(),
            entity_modes: Default::default(),
            reversible: false,
            window: crate::guardrails::pii::MAX_SPAN,
        };
        (Arc::new(vec![g.clone()]), Arc::new(Guardrails::new(vec![g], None)))
    }

    fn call(index: u32, id: Option<&str>, args: &str) -> Event {
        Ok(GenerationEvent::ToolCall(ToolCallDelta {
            index,
            id: id.map(str::to_string),
            name: id.map(|_| "send_mail".to_string()),
            arguments: args.into(),
        }))
    }

    fn finished(reason: FinishReason) -> Event {
        Ok(GenerationEvent::Finished { reason, prompt_tokens: 5, completion_tokens: 9, cached_tokens: 0 })
    }

    #[tokio::test]
    async fn tool_call_arguments_are_checked_once_complete() {
        let events = vec![
            Ok(GenerationEvent::Started { prompt_tokens: 5, cached_tokens: 0, model: None, verbatim: false }),
            call(0, Some("c1"), "{\"to\": \"jane.do"),
            call(0, None, "e@example.com\", \"body\": \"hi\"}"),
            finished(FinishReason::ToolCalls),
        ];
        let (guards, r) = rails(Mode::Redact);
        let out: Vec<Event> =
            guarded(guards, r, Redactor::default(), futures::stream::iter(events).boxed()).collect().await;
        let args: String = out
            .iter()
            .filter_map(|e| match e {
                Ok(GenerationEvent::ToolCall(d)) => Some(d.arguments.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(args, "{\"to\": \"[EMAIL_1]\", \"body\": \"hi\"}");
        assert!(matches!(out.last(), Some(Ok(GenerationEvent::Finished { reason: FinishReason::ToolCalls, .. }))));
        // A block ends the answer with content_filter instead.
        let (guards, r) = rails(Mode::Block);
        let events =
            vec![call(0, Some("c1"), "{\"card\": \"4111 1111 1111 1111\"}"), finished(FinishReason::ToolCalls)];
        let out: Vec<Event> =
            guarded(guards, r, Redactor::default(), futures::stream::iter(events).boxed()).collect().await;
        assert!(matches!(out.as_slice(), [Ok(GenerationEvent::Finished { reason: FinishReason::ContentFilter, .. })]));
    }
}
