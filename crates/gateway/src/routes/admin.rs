//! `/admin/…`: API keys (create, list, show, update, revoke), spend, the
//! response cache (delete an entry, purge, stats) and live evaluation's
//! stored samples.
//! Guarded by the admin token (`policy::auth`). A key is shown in full once,
//! in the answer to its creation; the store keeps only its SHA-256.

use crate::config::cache::CacheScope;
use crate::dialect::collect::unix_now;
use crate::dialect::extract::OpenAiJson;
use crate::error::ApiError;
use crate::policy::keys::{generate_key, hash_key, hint_of, CacheIsolation, KeyRecord};
use crate::policy::limits::{budget_period, nanos_to_usd, spend_counter, Limits, Scope};
use crate::state::AppState;
use crate::store::{unix_ms, StoreError};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    id: Option<String>,
    user: Option<String>,
    models: Option<Vec<String>>,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    metadata: BTreeMap<String, Value>,
    #[serde(default)]
    cache_isolation: CacheIsolation,
    cache_scope: Option<CacheScope>,
}

/// Fields to change; absent fields stay as they are (`null` clears `user` / `models`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyUpdate {
    #[serde(default, with = "double_option")]
    user: Option<Option<String>>,
    #[serde(default, with = "double_option")]
    models: Option<Option<Vec<String>>>,
    limits: Option<Limits>,
    metadata: Option<BTreeMap<String, Value>>,
    cache_isolation: Option<CacheIsolation>,
    #[serde(default, with = "double_option")]
    cache_scope: Option<Option<CacheScope>>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Unavailable(m) => ApiError::Unavailable(m),
        StoreError::Internal(m) => ApiError::Internal(m),
    }
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
}

fn view(k: &KeyRecord, from_config: bool) -> Value {
    json!({
        "id": k.id,
        "object": "api_key",
        "hint": k.hint,
        "user": k.user,
        "models": k.models,
        "limits": k.limits,
        "metadata": k.metadata,
        "cache_isolation": k.cache_isolation,
        "cache_scope": k.cache_scope,
        "created": k.created,
        "revoked": k.revoked,
        "source": if from_config { "config" } else { "admin" },
    })
}

async fn find(state: &AppState, id: &str) -> Result<(KeyRecord, bool), ApiError> {
    let policy = state.policy();
    if let Some(k) = policy.settings.config_keys.iter().find(|k| k.id == id) {
        return Ok((k.clone(), true));
    }
    match policy.store.key_by_id(id).await.map_err(store_error)? {
        Some(k) => Ok((k, false)),
        None => Err(ApiError::KeyNotFound(id.to_string())),
    }
}

fn check(limits: &Limits) -> Result<(), ApiError> {
    limits.validate().map_err(|m| ApiError::invalid(format!("limits: {m}"), "limits"))
}

pub async fn create_key(
    State(state): State<AppState>,
    OpenAiJson(body): OpenAiJson<NewKey>,
) -> Result<Response, ApiError> {
    check(&body.limits)?;
    let id = body.id.unwrap_or_else(|| format!("key-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]));
    if !valid_id(&id) {
        return Err(ApiError::invalid("'id' must be 1–64 characters of letters, digits and - _ . @", "id"));
    }
    if find(&state, &id).await.is_ok() {
        return Err(ApiError::Conflict(format!("A key with id '{id}' already exists.")));
    }
    let key = generate_key();
    let record = KeyRecord {
        id,
        hash: hash_key(&key),
        hint: hint_of(&key),
        user: body.user,
        models: body.models,
        limits: body.limits,
        metadata: body.metadata,
        cache_isolation: body.cache_isolation,
        cache_scope: body.cache_scope,
        created: unix_now(),
        revoked: false,
    };
    state.policy().store.put_key(&record).await.map_err(store_error)?;
    tracing::info!(key_id = %record.id, user = ?record.user, "API key created");
    let mut v = view(&record, false);
    v["key"] = json!(key);
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

pub async fn list_keys(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let policy = state.policy();
    let mut data: Vec<Value> = policy.settings.config_keys.iter().map(|k| view(k, true)).collect();
    data.extend(policy.store.list_keys().await.map_err(store_error)?.iter().map(|k| view(k, false)));
    Ok(Json(json!({ "object": "list", "data": data })))
}

pub async fn show_key(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let (k, from_config) = find(&state, &id).await?;
    let mut v = view(&k, from_config);
    v["spend"] = spend_view(&state, Scope::Key, &k.id, &k.limits).await?;
    Ok(Json(v))
}

pub async fn update_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OpenAiJson(body): OpenAiJson<KeyUpdate>,
) -> Result<Json<Value>, ApiError> {
    let (mut k, from_config) = find(&state, &id).await?;
    if from_config {
        return Err(ApiError::Conflict(format!("Key '{id}' is defined in the config file; change it there.")));
    }
    if let Some(l) = body.limits {
        check(&l)?;
        k.limits = l;
    }
    if let Some(u) = body.user {
        k.user = u;
    }
    if let Some(m) = body.models {
        k.models = m;
    }
    if let Some(m) = body.metadata {
        k.metadata = m;
    }
    if let Some(c) = body.cache_isolation {
        k.cache_isolation = c;
    }
    if let Some(c) = body.cache_scope {
        k.cache_scope = c;
    }
    state.policy().store.put_key(&k).await.map_err(store_error)?;
    state.policy().forget_key(&k.hash);
    Ok(Json(view(&k, false)))
}

pub async fn revoke_key(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let (mut k, from_config) = find(&state, &id).await?;
    if from_config {
        return Err(ApiError::Conflict(format!("Key '{id}' is defined in the config file; remove it there.")));
    }
    k.revoked = true;
    state.policy().store.put_key(&k).await.map_err(store_error)?;
    state.policy().forget_key(&k.hash);
    tracing::info!(key_id = %k.id, "API key revoked");
    Ok(Json(view(&k, false)))
}

pub async fn user_spend(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let limits = state.policy().user_limits(&id).cloned().unwrap_or_default();
    let spend = spend_view(&state, Scope::User, &id, &limits).await?;
    Ok(Json(json!({ "object": "user", "id": id, "limits": limits, "spend": spend })))
}

/// Spend in the current budget period (settled, plus what requests in
/// flight have reserved), the budget and what remains.
async fn spend_view(state: &AppState, scope: Scope, id: &str, limits: &Limits) -> Result<Value, ApiError> {
    let Some(b) = &limits.budget else {
        return Ok(json!({ "period": null, "spent_usd": null, "budget_usd": null, "remaining_usd": null }));
    };
    let period = budget_period(b.period, unix_ms());
    let spent = state.policy().store.read(&spend_counter(scope, id), &period).await.map_err(store_error)?;
    let budget = crate::policy::limits::usd_to_nanos(b.usd);
    Ok(json!({
        "period": b.period,
        "spent_usd": nanos_to_usd(spent),
        "budget_usd": b.usd,
        "remaining_usd": nanos_to_usd(budget.saturating_sub(spent)),
    }))
}

/// Every backend with its models (capabilities, aliases, and each one's
/// circuit, requests in flight and latency average), its queue counters,
/// and the circuits of every model that has served.
pub async fn backends(State(state): State<AppState>) -> Json<Value> {
    use std::sync::atomic::Ordering::Relaxed;
    let queues: std::collections::HashMap<String, Value> = state
        .queues()
        .iter()
        .map(|q| {
            let s = &q.stats;
            let v = json!({"in_flight": s.in_flight.load(Relaxed), "waiting": s.waiting.load(Relaxed),
                "rejected_full": s.rejected_full.load(Relaxed), "timed_out": s.timed_out.load(Relaxed)});
            (backend_api::Backend::name(q.as_ref()).to_string(), v)
        })
        .collect();
    let health = state.health().snapshot();
    let health_of = |model: &str| {
        let h = health.iter().find(|h| h.model == model);
        json!({
            "circuit": h.map_or("closed", |h| h.circuit.as_str()),
            "in_flight": h.map_or(0, |h| h.in_flight),
            "latency_ms": h.and_then(|h| h.latency_ewma_s).map(|s| (s * 1e6).round() / 1e3),
        })
    };
    let circuits: Vec<Value> = health
        .iter()
        .map(|h| {
            json!({"model": h.model, "circuit": h.circuit.as_str(), "recent_failures": h.failures,
                "recent_attempts": h.attempts})
        })
        .collect();
    let data: Vec<Value> = state
        .backends()
        .into_iter()
        .map(|(name, models)| {
            let models: Vec<Value> = models
                .iter()
                .map(|m| {
                    let mut v = json!({"id": m.id, "context_length": m.context_length, "owned_by": m.owned_by,
                        "health": health_of(&m.id)});
                    if let Some(card) = state.card(&m.id) {
                        v["capabilities"] = json!(card.capabilities.names());
                        v["aliases"] = json!(card.aliases);
                        v["max_output_tokens"] = json!(card.max_output_tokens);
                        v["weight"] = json!(card.weight);
                    }
                    v
                })
                .collect();
            json!({"name": name, "models": models, "queue": queues.get(&name)})
        })
        .collect();
    Json(json!({"object": "list", "data": data, "circuits": circuits}))
}

fn the_live_eval(state: &AppState) -> Result<&std::sync::Arc<crate::eval::live::LiveEval>, ApiError> {
    state.live_eval().ok_or_else(|| ApiError::RouteNotFound("No live evaluation is configured ([[live_eval]]).".into()))
}

/// `GET /admin/evals`: the live evaluations.
pub async fn list_evals(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let evals = the_live_eval(&state)?.describe();
    Ok(Json(json!({"object": "list", "data": evals})))
}

/// Samples returned when `limit` is not given.
const SAMPLES_PAGE: usize = 100;

/// `GET /admin/evals/{name}/samples?limit=N`: the newest scored samples
/// (question, answer, score, verdict), newest first.
pub async fn eval_samples(
    State(state): State<AppState>,
    Path(name): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Json<Value>, ApiError> {
    let live = the_live_eval(&state)?;
    if !live.has(&name) {
        return Err(ApiError::RouteNotFound(format!("No live evaluation named '{name}'.")));
    }
    let mut limit = SAMPLES_PAGE;
    for (k, v) in query.as_deref().unwrap_or_default().split('&').filter_map(|kv| kv.split_once('=')) {
        match k {
            "limit" => {
                limit =
                    v.parse().ok().filter(|n| (1..=crate::store::EVAL_SAMPLES_KEPT).contains(n)).ok_or_else(|| {
                        ApiError::invalid(
                            format!("'limit' must be a number from 1 to {}.", crate::store::EVAL_SAMPLES_KEPT),
                            "limit",
                        )
                    })?
            }
            other => return Err(ApiError::invalid(format!("Unknown query parameter '{other}'."), None)),
        }
    }
    let samples = live.samples(&name, limit).await.map_err(store_error)?;
    Ok(Json(json!({"object": "list", "eval": name, "data": samples})))
}

fn the_cache(state: &AppState) -> Result<&std::sync::Arc<crate::cache::Cache>, ApiError> {
    state.cache().ok_or_else(|| ApiError::RouteNotFound("The response cache is not configured ([cache]).".into()))
}

/// `DELETE /admin/cache/entries/{id}`: a wrong answer reported by a user
/// stops being served (on every replica).
pub async fn delete_cache_entry(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !valid_id(&id) {
        return Err(ApiError::invalid(format!("'{id}' is not a cache entry id."), "id"));
    }
    the_cache(&state)?.delete(&id).await?;
    tracing::info!(entry = %id, "cache entry deleted");
    Ok(Json(json!({"id": id, "object": "cache.entry", "deleted": true})))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeBody {
    model: Option<String>,
    tenant: Option<String>,
    namespace: Option<String>,
}

/// `POST /admin/cache/purge` with any of `model`, `tenant` (`key:ID`,
/// `user:ID`, `global`), `namespace`; an empty body purges everything.
pub async fn purge_cache(State(state): State<AppState>, body: axum::body::Bytes) -> Result<Json<Value>, ApiError> {
    let b: PurgeBody = if body.iter().all(u8::is_ascii_whitespace) {
        PurgeBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid(format!("Invalid purge body: {e}"), None))?
    };
    let purge = crate::cache::journal::Purge { model: b.model, tenant: b.tenant, namespace: b.namespace };
    let shared = the_cache(&state)?.purge(purge.clone()).await?;
    tracing::info!(?purge, shared_entries = shared, "cache purged");
    Ok(Json(json!({"object": "cache.purge", "purged": true, "shared_entries_removed": shared})))
}

/// `GET /admin/cache/stats`: entries and bytes per tier (this replica), hits and misses.
pub async fn cache_stats(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let cache = the_cache(&state)?;
    let tiers: Vec<Value> = cache
        .sizes()
        .into_iter()
        .map(|(tier, entries, bytes)| json!({"tier": tier, "entries": entries, "bytes": bytes}))
        .collect();
    let mut metrics = String::new();
    cache.metrics.render(&mut metrics).map_err(|e| ApiError::Internal(e.to_string()))?;
    let counter = |name: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    Ok(Json(json!({
        "object": "cache.stats",
        "tiers": cache.tiers(),
        "sizes": tiers,
        "hits": counter("llm_cache_hits_total"),
        "misses": counter("llm_cache_misses_total"),
        "skips": counter("llm_cache_skips_total"),
        "stored": counter("llm_cache_stored_total"),
        "saved_dollars": counter("llm_cache_saved_dollars"),
    })))
}
