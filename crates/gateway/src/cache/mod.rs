//! The response cache: answers kept by exact request (L1 in process, L2 in
//! Redis) and by meaning (L3, `semantic`), served in any dialect as a
//! replay of the answer's events (`entry`). The pipeline's `cache` step
//! decides what may be looked up and stored; this module holds the tiers.
//!
//! Lookup: L1, then L2 (filling L1), then L3: the question is embedded
//! (the in-process MiniLM), the nearest questions of the request's
//! partition above the threshold are checked by the wrong-hit guard
//! (`guard`), and the first that passes is served (filling L1 and L2 under
//! the new request's key). Storing: L1 and L3 at once (visible to the next
//! lookup as soon as the answer ended), L2 and the journal in the
//! background. The journal (`journal`: a Redis Stream, or a file without
//! Redis) carries entries, deletions and purges to every replica and to
//! this one's next start.

pub mod entry;
pub mod guard;
pub mod journal;
pub mod key;
mod memory;
pub mod metrics;
mod redis_tier;
pub mod semantic;

use crate::config::cache::{threshold_ok, CacheSettings};
use crate::error::ApiError;
use axum::http::HeaderMap;
use backend_api::{EmbedInput, EmbedRequest, EmbeddingBackend};
use entry::Entry;
use journal::{FileJournal, Purge, Record};
use key::Fingerprint;
use metrics::{CacheMetrics, EMBED, L1, L2, L3};
use semantic::{Item, SemanticIndex};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `hit-exact | hit-semantic | miss | skip`.
pub const CACHE_HEADER: &str = "x-switchyard-cache";
/// The entry served, or the id a stored miss gets.
pub const ENTRY_HEADER: &str = "x-switchyard-cache-entry";
/// A semantic hit's cosine similarity.
pub const SIMILARITY_HEADER: &str = "x-switchyard-cache-similarity";

/// A request's own controls: `Cache-Control: no-cache / no-store` and the
/// body's `cache` object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Directives {
    pub no_cache: bool,
    pub no_store: bool,
    pub ttl: Option<Duration>,
    pub threshold: Option<f32>,
    pub namespace: Option<String>,
}

impl Directives {
    pub fn from_request(headers: &HeaderMap, body: Option<&protocol::CacheOptions>) -> Result<Self, ApiError> {
        let mut d = Directives::default();
        for v in headers.get_all(axum::http::header::CACHE_CONTROL) {
            for part in v.to_str().unwrap_or("").split(',') {
                match part.trim().to_ascii_lowercase().as_str() {
                    "no-cache" => d.no_cache = true,
                    "no-store" => d.no_store = true,
                    _ => {}
                }
            }
        }
        let Some(b) = body else { return Ok(d) };
        d.no_cache |= b.no_cache;
        d.no_store |= b.no_store;
        if let Some(t) = b.ttl {
            if t == 0 {
                return Err(ApiError::invalid("'cache.ttl' must be at least 1 second.", "cache.ttl"));
            }
            d.ttl = Some(Duration::from_secs(t));
        }
        if let Some(t) = b.threshold {
            if !threshold_ok(t) {
                return Err(ApiError::invalid("'cache.threshold' must be between 0 and 1.", "cache.threshold"));
            }
            d.threshold = Some(t);
        }
        if let Some(n) = &b.namespace {
            if n.is_empty() || n.len() > 128 {
                return Err(ApiError::invalid("'cache.namespace' must be 1 to 128 characters.", "cache.namespace"));
            }
            d.namespace = Some(n.clone());
        }
        Ok(d)
    }
}

/// What a lookup found.
pub enum Found {
    Exact(Arc<Entry>, &'static str),
    Semantic(Arc<Entry>, f32),
    /// Nothing; the question's embedding (when it was computed) goes with
    /// the answer when it is stored.
    Nothing(Option<Vec<f32>>),
}

struct Semantic {
    index: SemanticIndex,
    embedder: Arc<dyn EmbeddingBackend>,
    model: String,
}

pub struct Cache {
    pub settings: CacheSettings,
    memory: memory::Memory,
    redis: Option<redis_tier::RedisTier>,
    semantic: Option<Semantic>,
    journal: Option<FileJournal>,
    pub metrics: CacheMetrics,
}

/// The embedding model's vectors (all-MiniLM-L6-v2).
const DIMENSIONS: usize = 384;

/// Questions longer than this have no semantic side: the embedder reads
/// only their start (two long texts that share it would look identical),
/// and the guard's word matching grows with the product of the lengths.
pub const MAX_SEMANTIC_QUESTION_BYTES: usize = 2048;

impl Cache {
    /// The tiers the settings ask for. `embedder`: the in-process model
    /// (name, backend) for the semantic tier; without it there is none.
    /// `redis`: the URL and key prefix of the shared tier, if any. A file
    /// journal is read back here.
    pub fn new(
        settings: CacheSettings,
        embedder: Option<(String, Arc<dyn EmbeddingBackend>)>,
        redis: Option<(String, String)>,
    ) -> Result<Arc<Cache>, String> {
        let semantic = match embedder {
            Some((model, embedder)) if settings.semantic_enabled => {
                let dim = embedder.dimensions(&model).map_or(DIMENSIONS, |d| d as usize);
                let index = SemanticIndex::new(dim, semantic::DEFAULT_EXACT_BELOW, settings.max_semantic_entries);
                Some(Semantic { index, embedder, model })
            }
            Some(_) => None,
            None => {
                if settings.semantic_enabled {
                    tracing::warn!("cache: no in-process embedding model, the semantic tier is off");
                }
                None
            }
        };
        let redis = match redis {
            Some((url, prefix)) => Some(redis_tier::RedisTier::new(&url, &prefix)?),
            None => None,
        };
        let mut cache = Cache {
            memory: memory::Memory::new(settings.l1_max_bytes),
            redis,
            semantic,
            journal: None,
            metrics: CacheMetrics::default(),
            settings,
        };
        if let (Some(path), None) = (cache.settings.journal.clone(), &cache.redis) {
            let now = crate::store::unix_ms();
            let live = |r: &Record| !matches!(r, Record::Put { entry, .. } if entry.expired(now));
            let (journal, records) =
                FileJournal::open(&path, live).map_err(|e| format!("cache.journal {}: {e}", path.display()))?;
            let n = records.len();
            for r in records {
                cache.apply(r);
            }
            tracing::info!(path = %path.display(), records = n, "cache journal read");
            cache.journal = Some(journal);
        }
        Ok(Arc::new(cache))
    }

    /// Starts the background work: following the Redis journal (from its
    /// start) and maintaining the semantic index (expiry, graphs) every few seconds.
    pub fn start(self: &Arc<Self>) {
        if self.redis.is_some() {
            tokio::spawn(follow(Arc::downgrade(self)));
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let Some(c) = weak.upgrade() else { return };
                if c.semantic.is_none() {
                    return;
                }
                // Graph building is CPU work: off the runtime's workers.
                let done = tokio::task::spawn_blocking(move || {
                    if let Some(s) = &c.semantic {
                        s.index.maintain();
                    }
                })
                .await;
                if let Err(e) = done {
                    tracing::error!(error = %e, "cache: semantic index maintenance failed");
                }
            }
        });
    }

    pub fn has_semantic(&self) -> bool {
        self.semantic.is_some()
    }

    /// Looks `fp` up in every tier; `threshold`: the similarity a semantic
    /// candidate needs (None: no semantic lookup).
    pub async fn lookup(&self, fp: &Fingerprint, threshold: Option<f32>, request_id: &str) -> Found {
        let t = Instant::now();
        let hit = self.memory.get(&fp.exact);
        self.metrics.lookup(L1, t.elapsed().as_secs_f64());
        if let Some(e) = hit {
            return Found::Exact(e, L1);
        }
        if let Some(r) = &self.redis {
            let t = Instant::now();
            let got = r.get(&fp.exact).await;
            self.metrics.lookup(L2, t.elapsed().as_secs_f64());
            match got {
                Ok(Some(e)) => {
                    let e = Arc::new(e);
                    self.memory.put(fp.exact.clone(), e.clone());
                    return Found::Exact(e, L2);
                }
                Ok(None) => {}
                Err(_) => self.metrics.error(L2),
            }
        }
        let (Some(s), Some(partition), Some(threshold)) = (&self.semantic, &fp.partition, threshold) else {
            return Found::Nothing(None);
        };
        if fp.text.len() > MAX_SEMANTIC_QUESTION_BYTES {
            return Found::Nothing(None);
        }
        let Some(vector) = self.embed(s, &fp.text, request_id).await else { return Found::Nothing(None) };
        let t = Instant::now();
        let candidates = s.index.search(partition, &vector, threshold, 4);
        let mut found = None;
        for c in candidates {
            if self.settings.guard {
                if let Err(why) = guard::verify(&c.item.question, &fp.text) {
                    self.metrics.rejected(why.as_str());
                    continue;
                }
            }
            found = Some(c);
            break;
        }
        self.metrics.lookup(L3, t.elapsed().as_secs_f64());
        match found {
            Some(c) => {
                let e = c.item.entry;
                self.memory.put(fp.exact.clone(), e.clone());
                if let Some(r) = &self.redis {
                    if r.put(&fp.exact, &e).await.is_err() {
                        self.metrics.error(L2);
                    }
                }
                Found::Semantic(e, c.similarity)
            }
            None => Found::Nothing(Some(vector)),
        }
    }

    async fn embed(&self, s: &Semantic, text: &str, request_id: &str) -> Option<Vec<f32>> {
        let t = Instant::now();
        let req = EmbedRequest {
            request_id: request_id.to_string(),
            model: s.model.clone(),
            inputs: vec![EmbedInput::Text(text.to_string())],
            dimensions: None,
        };
        let out = s.embedder.embed(req).await;
        self.metrics.lookup(EMBED, t.elapsed().as_secs_f64());
        match out {
            Ok(mut e) if !e.vectors.is_empty() => Some(semantic::normalize(e.vectors.swap_remove(0))),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(error = %e, "cache: the question could not be embedded");
                self.metrics.error(EMBED);
                None
            }
        }
    }

    /// Stores an answer: L1 and L3 now, L2 and the journal in the background.
    pub fn store(self: &Arc<Self>, fp: &Fingerprint, vector: Option<Vec<f32>>, entry: Entry) {
        // Without a vector the entry has no semantic side: its question
        // (the user's words) is not kept either.
        let question = if vector.is_some() { fp.text.clone() } else { String::new() };
        let record = Record::Put {
            exact: fp.exact.clone(),
            partition: fp.partition.clone(),
            question,
            vector: vector.unwrap_or_default(),
            entry: Box::new(entry),
        };
        self.apply(record.clone());
        self.metrics.stored();
        if let Some(j) = &self.journal {
            j.append(&record);
        }
        if self.redis.is_some() {
            let me = self.clone();
            tokio::spawn(async move {
                let Some(r) = &me.redis else { return };
                let Record::Put { exact, entry, .. } = &record else { return };
                let put = r.put(exact, entry).await;
                let appended = if put.is_ok() { r.append(&record).await } else { put };
                if appended.is_err() {
                    me.metrics.error(L2);
                }
            });
        }
    }

    /// Applies a journal record to this replica's L1 and L3.
    fn apply(&self, record: Record) {
        match record {
            Record::Put { exact, partition, question, vector, entry } => {
                if entry.expired(crate::store::unix_ms()) {
                    return;
                }
                let entry: Arc<Entry> = Arc::from(entry);
                self.memory.put(exact, entry.clone());
                if let (Some(s), Some(p), false) = (&self.semantic, partition, vector.is_empty()) {
                    if !s.index.insert(&p, &vector, Item { question, entry }) {
                        tracing::debug!("cache: the semantic index is full or the vector has another size");
                    }
                }
            }
            Record::Delete { id } => self.forget(move |e| e.id == id),
            Record::Purge(p) => self.forget(move |e| p.matches(e)),
        }
    }

    fn forget(&self, matches: impl Fn(&Entry) -> bool + Clone + Send + Sync + 'static) {
        self.memory.remove_if(matches.clone());
        if let Some(s) = &self.semantic {
            s.index.remove_if(matches);
        }
    }

    /// Deletes an entry everywhere (every replica through the journal).
    pub async fn delete(&self, id: &str) -> Result<(), ApiError> {
        let record = Record::Delete { id: id.to_string() };
        self.apply(record.clone());
        self.publish(&record).await?;
        if let Some(r) = &self.redis {
            r.delete(id).await.map_err(|_| redis_down())?;
        }
        Ok(())
    }

    /// Removes every entry the purge selects; returns how many L2 held.
    pub async fn purge(&self, purge: Purge) -> Result<u64, ApiError> {
        let record = Record::Purge(purge.clone());
        self.apply(record.clone());
        self.publish(&record).await?;
        match &self.redis {
            Some(r) => r.purge(move |e| purge.matches(e)).await.map_err(|_| redis_down()),
            None => Ok(0),
        }
    }

    async fn publish(&self, record: &Record) -> Result<(), ApiError> {
        if let Some(j) = &self.journal {
            j.append(record);
        }
        if let Some(r) = &self.redis {
            r.append(record).await.map_err(|_| redis_down())?;
        }
        Ok(())
    }

    /// Entries and bytes per tier (also set as gauges for the scrape).
    pub fn sizes(&self) -> Vec<(&'static str, u64, u64)> {
        let mut out = Vec::new();
        let (n, b) = self.memory.size();
        out.push((L1, n, b));
        if let Some(s) = &self.semantic {
            let (n, b) = s.index.size();
            out.push((L3, n, b));
        }
        for (tier, n, b) in &out {
            self.metrics.size(tier, *n, *b);
        }
        out
    }

    pub fn tiers(&self) -> Vec<&'static str> {
        let mut t = vec![L1];
        if self.redis.is_some() {
            t.push(L2);
        }
        if self.semantic.is_some() {
            t.push(L3);
        }
        t
    }
}

fn redis_down() -> ApiError {
    ApiError::Unavailable("the cache's Redis could not be reached: the change was made on this replica only".into())
}

/// Follows the Redis journal from its start: entries, deletions and purges
/// of every replica (this one's included; applying is idempotent).
async fn follow(cache: std::sync::Weak<Cache>) {
    let mut last = "0".to_string();
    loop {
        let Some(c) = cache.upgrade() else { return };
        let Some(r) = &c.redis else { return };
        let pause = match r.read(&last, 512).await {
            Ok((records, next)) => {
                let n = records.len();
                for rec in records {
                    c.apply(rec);
                }
                if let Some(id) = next {
                    last = id;
                }
                if n == 512 {
                    Duration::ZERO
                } else {
                    Duration::from_millis(50)
                }
            }
            Err(_) => {
                c.metrics.error(L2);
                Duration::from_secs(1)
            }
        };
        drop(c);
        tokio::time::sleep(pause).await;
    }
}
