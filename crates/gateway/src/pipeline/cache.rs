//! Step 6, the response cache (`crate::cache`): after admission (a hit is
//! still a request against the key's rate limits) and as the innermost
//! wrapper (so an answer the deadline cut never reaches it complete).
//!
//! Before: a cacheable request (one choice, no log-probs, greedy or seeded
//! unless the route caches sampled answers) is looked up unless the
//! client said `no-cache`; a hit answers on its own, charged as the config
//! says (free by default). After: a miss's answer is recorded and stored
//! once it ends with `stop`, a stop string, `length` or tool calls; a
//! blocked, failed or abandoned answer is not.

use super::{Call, Ctx, Flow, Step};
use crate::cache::entry::{Entry, Recording};
use crate::cache::key::{fingerprint, Fingerprint, Tenant};
use crate::cache::{Cache, Found, CACHE_HEADER, ENTRY_HEADER, SIMILARITY_HEADER};
use crate::config::cache::CacheScope;
use crate::error::ApiError;
use crate::policy::Principal;
use axum::http::HeaderValue;
use backend_api::{GenerationStream, ValidatedRequest};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;

pub struct CacheStep;

/// A miss to store when its answer ends.
pub struct Pending {
    cache: Arc<Cache>,
    fp: Fingerprint,
    vector: Option<Vec<f32>>,
    id: String,
    model: String,
    tenant: String,
    namespace: Option<String>,
    ttl: Duration,
}

fn header(ctx: &mut Ctx, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::try_from(value) {
        ctx.headers.insert(name, v);
    }
}

/// Whose answers a request may share (see `CacheScope`). Only a user the
/// server bound to the key counts: a user id the client names in its body
/// (Anthropic's `metadata.user_id`) could be anyone's.
fn tenant(ctx: &Ctx, scope: CacheScope) -> String {
    let (key_scope, user) = match &ctx.principal {
        Principal::Key(k) => (k.cache_scope.unwrap_or(scope), k.user.clone()),
        _ => (scope, None),
    };
    let key_id = match &ctx.principal {
        Principal::Key(k) => format!("key:{}", k.id),
        _ => "anonymous".to_string(),
    };
    match (key_scope, user) {
        (CacheScope::Global, _) => "global".into(),
        (CacheScope::User, Some(u)) => format!("user:{u}"),
        // A key without a user is its own user.
        (CacheScope::User, None) | (CacheScope::Key, _) => key_id,
    }
}

/// Why a request is neither looked up nor stored, if it is not.
fn not_cacheable(r: &ValidatedRequest, sampled_ok: bool) -> Option<&'static str> {
    if r.logprobs.is_some() {
        return Some("log-probs");
    }
    if r.sampling.temperature > 0.0 && r.sampling.seed.is_none() && !sampled_ok {
        return Some("sampled without a seed");
    }
    None
}

#[async_trait::async_trait]
impl Step for CacheStep {
    async fn before(&self, ctx: &mut Ctx, call: &mut Call) -> Result<Flow, ApiError> {
        let Some(cache) = ctx.state.cache().cloned() else { return Ok(Flow::Continue) };
        let policy = cache.settings.policy_for(&call.model).clone();
        let d = call.cache.clone();
        let skip = !policy.enabled
            || call.requests.len() != 1
            || (d.no_cache && d.no_store)
            || call.requests.first().and_then(|r| not_cacheable(r, policy.sampled)).is_some();
        let Some(request) = call.requests.first().filter(|_| !skip) else {
            cache.metrics.skip();
            header(ctx, CACHE_HEADER, "skip");
            return Ok(Flow::Continue);
        };
        let tenant = tenant(ctx, policy.scope);
        // The output guardrails that apply shape the stored answer: a request
        // under other guardrails must not get it.
        let guards = ctx.state.guardrails().map(|r| {
            let key = crate::guardrails::key_id(&ctx.principal);
            format!("{:?}", r.applicable(crate::guardrails::Stage::Output, &call.model, key))
        });
        let fp = fingerprint(
            &call.model,
            &Tenant { scope: &tenant, namespace: d.namespace.as_deref(), guards: guards.as_deref() },
            request,
            cache.settings.text,
        );
        let mut vector = None;
        if !d.no_cache {
            // A request may ask for a stricter match, never a looser one.
            let threshold = policy.semantic.then(|| d.threshold.map_or(policy.threshold, |t| t.max(policy.threshold)));
            match cache.lookup(&fp, threshold, &ctx.request_id).await {
                Found::Exact(e, tier) => return Ok(hit(ctx, call, &cache, e, tier, None)),
                Found::Semantic(e, similarity) => {
                    return Ok(hit(ctx, call, &cache, e, crate::cache::metrics::L3, Some(similarity)))
                }
                Found::Nothing(v) => vector = v,
            }
            cache.metrics.miss();
        } else {
            cache.metrics.skip();
        }
        header(ctx, CACHE_HEADER, if d.no_cache { "skip" } else { "miss" });
        if !d.no_store {
            let id = format!("ce-{}", uuid::Uuid::new_v4().simple());
            header(ctx, ENTRY_HEADER, &id);
            let ttl = d.ttl.map_or(policy.ttl, |t| t.min(policy.ttl));
            call.pending = Some(Arc::new(Pending {
                cache,
                fp,
                vector,
                id,
                model: call.model.clone(),
                tenant,
                namespace: d.namespace,
                ttl,
            }));
        }
        Ok(Flow::Continue)
    }

    fn after(&self, _ctx: &Ctx, call: &Call, stream: GenerationStream) -> GenerationStream {
        match &call.pending {
            Some(p) => record(p.clone(), stream),
            None => stream,
        }
    }
}

fn hit(ctx: &mut Ctx, call: &mut Call, cache: &Cache, e: Arc<Entry>, tier: &'static str, sim: Option<f32>) -> Flow {
    cache.metrics.hit(tier);
    header(ctx, CACHE_HEADER, if sim.is_some() { "hit-semantic" } else { "hit-exact" });
    header(ctx, ENTRY_HEADER, &e.id);
    if let Some(s) = sim {
        header(ctx, SIMILARITY_HEADER, &format!("{s:.3}"));
    }
    let priced = e.served_by.as_deref().unwrap_or(&e.model);
    let prices = &ctx.state.policy().settings.prices;
    cache.metrics.saved(prices.cost_nanos(priced, u64::from(e.prompt_tokens), u64::from(e.completion_tokens)));
    if let Some(m) = &call.meter {
        m.cached(cache.settings.charge_hits);
    }
    Flow::Answer(vec![e.replay()])
}

/// Passes the stream through, storing its answer when it ends well.
fn record(p: Arc<Pending>, stream: GenerationStream) -> GenerationStream {
    let state = (stream, Recording::default(), p);
    futures::stream::unfold(state, |(mut stream, mut rec, p)| async move {
        let event = stream.next().await?;
        if let Ok(ev) = &event {
            if let Some((finish, prompt_tokens, completion_tokens)) = rec.see(ev) {
                let now = crate::store::unix_ms();
                let entry = Entry {
                    id: p.id.clone(),
                    model: p.model.clone(),
                    served_by: rec.served_by.clone(),
                    tenant: p.tenant.clone(),
                    namespace: p.namespace.clone(),
                    created_ms: now,
                    expires_ms: now + p.ttl.as_millis() as u64,
                    text: std::mem::take(&mut rec.text),
                    tool_calls: std::mem::take(&mut rec.calls),
                    finish,
                    prompt_tokens,
                    completion_tokens,
                };
                p.cache.store(&p.fp, p.vector.clone(), entry);
            }
        }
        Some((event, (stream, rec, p)))
    })
    .boxed()
}
