//! Step 5, guard in: the input guardrails of the route and key, in order,
//! over the text of user turns, tool results (the indirect path) and raw
//! prompts; system prompts and the assistant's own turns are not checked.
//! `block` answers 400 (`guardrail_blocked`, the guard's name, never the
//! matched text); `redact` replaces values by typed placeholders before
//! anything else sees the request (the cache included); `warn` adds
//! `x-switchyard-guardrail: NAME=warn`; `log` logs. A reversible
//! guardrail's values are put back into the answer (after: a hold-back
//! window, so a placeholder split across chunks is restored whole).

use super::{Call, Ctx, Flow, Step};
use crate::error::ApiError;
use crate::guardrails::pii::{find, Finding};
use crate::guardrails::redact::{longest, restore, Redactor};
use crate::guardrails::stream::{HoldBack, Release, Scan};
use crate::guardrails::{key_id, GuardKind, GuardrailConfig, Guardrails, Mode, Stage, GUARDRAIL_HEADER};
use axum::http::HeaderValue;
use backend_api::{ContentPart, GenerationEvent, GenerationStream, Prompt, Role};
use std::sync::Arc;
use std::time::Instant;

pub struct GuardIn;

/// What the input guardrails did to one text.
struct Outcome {
    warned: Vec<String>,
}

/// Runs `guards` over `text` (rewritten in place when redacted).
async fn check(
    state: &crate::state::AppState,
    rails: &Guardrails,
    guards: &[GuardrailConfig],
    text: &mut String,
    redactor: &mut Redactor,
    out: &mut Outcome,
    request_id: &str,
) -> Result<(), ApiError> {
    for g in guards {
        let t = Instant::now();
        if g.kind == GuardKind::Moderation {
            let hits = moderation(state, g, text).await;
            rails.metrics.timed(&g.name, t.elapsed().as_secs_f64());
            if !hits.is_empty() {
                tracing::info!(guard = %g.name, categories = ?hits, "moderation flagged the input");
                note(rails, g, g.mode, "moderation", out)?;
            }
            continue;
        }
        if g.kind == GuardKind::Injection {
            let found = injection(rails, g, text, request_id).await;
            rails.metrics.timed(&g.name, t.elapsed().as_secs_f64());
            if let Some(how) = found {
                note(rails, g, g.mode, how, out)?;
            }
            continue;
        }
        let findings = find(text, &g.entities);
        rails.metrics.timed(&g.name, t.elapsed().as_secs_f64());
        if findings.is_empty() {
            continue;
        }
        if let Some(f) = findings.iter().find(|f| g.mode_of(f.entity) == Mode::Block) {
            note(rails, g, Mode::Block, f.entity.name(), out)?;
        }
        let redact: Vec<Finding> = findings.iter().copied().filter(|f| g.mode_of(f.entity) == Mode::Redact).collect();
        for f in findings.iter().filter(|f| g.mode_of(f.entity) < Mode::Redact) {
            note(rails, g, g.mode_of(f.entity), f.entity.name(), out)?;
        }
        if !redact.is_empty() {
            rails.metrics.found(g.kind, Stage::Input, Mode::Redact, redact.len() as u64);
            *text = redactor.redact(text, &redact);
        }
    }
    Ok(())
}

/// A finding of `mode` (other than redact): blocks, warns or logs.
fn note(
    rails: &Guardrails,
    g: &GuardrailConfig,
    mode: Mode,
    what: &'static str,
    out: &mut Outcome,
) -> Result<(), ApiError> {
    rails.metrics.found(g.kind, Stage::Input, mode, 1);
    tracing::info!(guard = %g.name, what, mode = mode.as_str(), "input guardrail finding");
    match mode {
        Mode::Block => Err(ApiError::GuardrailBlocked { guard: g.name.clone(), what }),
        Mode::Warn if !out.warned.contains(&g.name) => {
            out.warned.push(g.name.clone());
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The categories of `g` the moderation model flags in `text`. A model
/// that cannot be reached lets the request through (logged and counted:
/// an outage of the classifier must not take the gateway down).
async fn moderation(state: &crate::state::AppState, g: &GuardrailConfig, text: &str) -> Vec<String> {
    let Some((model, m)) = state.moderator(g.model.as_deref()) else { return Vec::new() };
    match m.moderate(&model, vec![text.to_string()]).await {
        Ok(v) => v.first().map(|v| v.hits(&g.categories).into_iter().map(str::to_string).collect()).unwrap_or_default(),
        Err(e) => {
            tracing::warn!(guard = %g.name, error = %e, "moderation model unavailable: input not moderated");
            if let Some(r) = state.guardrails() {
                r.metrics.found(GuardKind::Moderation, Stage::Input, Mode::Log, 1);
            }
            Vec::new()
        }
    }
}

/// Whether `text` attempts an injection: the patterns (over the normalised
/// and decoded text), then the learned detector (hashed n-grams, or a head
/// over the text's embedding).
async fn injection(rails: &Guardrails, g: &GuardrailConfig, text: &str, request_id: &str) -> Option<&'static str> {
    use crate::guardrails::injection::{pattern_hit, NgramHead};
    if pattern_hit(text).is_some() {
        return Some("injection pattern");
    }
    if g.detector == crate::guardrails::Detector::Ngrams {
        let head = NgramHead::shipped()?;
        return (head.score(text) >= g.threshold).then_some("injection (learned detector)");
    }
    let (model, embedder) = rails.embedder.as_ref()?;
    let head = crate::guardrails::injection::Head::shipped()?;
    let req = backend_api::EmbedRequest {
        request_id: request_id.to_string(),
        model: model.clone(),
        inputs: vec![backend_api::EmbedInput::Text(crate::guardrails::injection::normalize(text))],
        dimensions: None,
    };
    let e = embedder.embed(req).await.ok()?;
    let v = e.vectors.first()?;
    (head.score(v) >= g.threshold).then_some("injection (learned detector)")
}

#[async_trait::async_trait]
impl Step for GuardIn {
    async fn before(&self, ctx: &mut Ctx, call: &mut Call) -> Result<Flow, ApiError> {
        let Some(rails) = ctx.state.guardrails().cloned() else { return Ok(Flow::Continue) };
        let guards = rails.applicable(Stage::Input, &call.model, key_id(&ctx.principal));
        if guards.is_empty() {
            return Ok(Flow::Continue);
        }
        let mut redactor = Redactor::default();
        let mut out = Outcome { warned: Vec::new() };
        for r in call.requests.iter_mut() {
            match &mut r.prompt {
                Prompt::Text(t) => {
                    check(&ctx.state, &rails, &guards, t, &mut redactor, &mut out, &ctx.request_id).await?
                }
                Prompt::Chat(turns) => {
                    for turn in turns.iter_mut().filter(|t| matches!(t.role, Role::User | Role::Tool)) {
                        for part in turn.content.iter_mut() {
                            if let ContentPart::Text(t) = part {
                                check(&ctx.state, &rails, &guards, t, &mut redactor, &mut out, &ctx.request_id).await?;
                            }
                        }
                    }
                }
            }
        }
        if !out.warned.is_empty() {
            let v = out.warned.iter().map(|n| format!("{n}=warn")).collect::<Vec<_>>().join(", ");
            if let Ok(v) = HeaderValue::try_from(v) {
                ctx.headers.insert(GUARDRAIL_HEADER, v);
            }
        }
        if guards.iter().any(|g| g.reversible) && !redactor.originals.is_empty() {
            ctx.needs_text = true;
            call.restore = Some(Arc::new(redactor.originals));
        }
        Ok(Flow::Continue)
    }

    fn after(&self, _ctx: &Ctx, call: &Call, stream: GenerationStream) -> GenerationStream {
        match &call.restore {
            Some(originals) => restoring(originals.clone(), stream),
            None => stream,
        }
    }
}

/// Puts placeholders back as the caller's values.
struct Restorer {
    originals: Arc<Vec<(String, String)>>,
}

impl Scan for Restorer {
    fn scan(&mut self, text: &str, _last: bool) -> Result<Vec<(usize, usize)>, String> {
        let mut spans = Vec::new();
        for (p, _) in self.originals.iter() {
            spans.extend(text.match_indices(p.as_str()).map(|(i, m)| (i, i + m.len())));
        }
        Ok(spans)
    }

    fn rewrite(&mut self, text: &str, _spans: &[(usize, usize)]) -> String {
        restore(text, &self.originals)
    }
}

fn restoring(originals: Arc<Vec<(String, String)>>, stream: GenerationStream) -> GenerationStream {
    let mut hold = HoldBack::new(longest(&originals).max(1));
    let mut r = Restorer { originals };
    // Tool calls are gathered whole (a placeholder may be split across
    // argument pieces) and given back, restored, before the end.
    let mut calls: Vec<backend_api::ToolCallDelta> = Vec::new();
    super::guard_out::rewrite(stream, move |event| match event {
        Ok(GenerationEvent::Delta { text, tokens }) => match hold.feed(&text, false, &mut r) {
            Release::Text(t) => vec![delta(t, tokens)],
            Release::Blocked(_) => Vec::new(),
        },
        Ok(GenerationEvent::ToolCall(d)) => {
            if let Some(c) = calls.iter_mut().find(|c| c.index == d.index) {
                c.id = c.id.take().or(d.id);
                c.name = c.name.take().or(d.name);
                c.arguments.push_str(&d.arguments);
            } else if calls.len() < 128 {
                calls.push(d);
            }
            Vec::new()
        }
        Ok(finished @ GenerationEvent::Finished { .. }) => {
            let mut out = match hold.feed("", true, &mut r) {
                Release::Text(t) => vec![delta(t, Vec::new())],
                Release::Blocked(_) => Vec::new(),
            };
            for mut c in std::mem::take(&mut calls) {
                c.arguments = restore(&c.arguments, &r.originals);
                out.push(Ok(GenerationEvent::ToolCall(c)));
            }
            out.push(Ok(finished));
            out
        }
        // The text is rewritten: an upstream's own bytes cannot go out.
        Ok(GenerationEvent::Upstream { .. }) => Vec::new(),
        other => vec![other],
    })
}

pub(super) fn delta(
    text: String,
    tokens: Vec<backend_api::GeneratedToken>,
) -> Result<GenerationEvent, backend_api::BackendError> {
    Ok(GenerationEvent::Delta { text, tokens })
}

pub(super) fn is_empty_delta(e: &Result<GenerationEvent, backend_api::BackendError>) -> bool {
    matches!(e, Ok(GenerationEvent::Delta { text, tokens }) if text.is_empty() && tokens.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use backend_api::{FinishReason, ToolCallDelta};
    use futures::StreamExt;

    #[tokio::test]
    async fn a_placeholder_split_across_tool_call_pieces_is_restored() {
        let piece = |id: Option<&str>, args: &str| {
            Ok(GenerationEvent::ToolCall(ToolCallDelta {
                index: 0,
                id: id.map(str::to_string),
                name: id.map(|_| "send".to_string()),
                arguments: args.into(),
            }))
        };
        let events = vec![
            piece(Some("c1"), "{\"to\": \"[EMA"),
            piece(None, "IL_1]\"}"),
            Ok(GenerationEvent::Finished {
                reason: FinishReason::ToolCalls,
                prompt_tokens: 1,
                completion_tokens: 2,
                cached_tokens: 0,
            }),
        ];
        let originals = Arc::new(vec![("[EMAIL_1]".to_string(), "a@x.io".to_string())]);
        let out: Vec<_> = restoring(originals, futures::stream::iter(events).boxed()).collect().await;
        let args: Vec<String> = out
            .iter()
            .filter_map(|e| match e {
                Ok(GenerationEvent::ToolCall(d)) => Some(d.arguments.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(args, vec!["{\"to\": \"a@x.io\"}".to_string()]);
        assert!(matches!(out.last(), Some(Ok(GenerationEvent::Finished { .. }))));
    }
}
