//! L3: questions by meaning. Each partition (model, tenant, namespace,
//! system prompt, earlier turns and every sampling field: see `key`) holds
//! the unit-length embeddings of its questions. A small partition is
//! searched exactly (a dot product per entry, vectorised, over a flat
//! array); one that grows past `exact_below` entries moves its vectors into
//! an HNSW graph (`hnsw_rs`, whose distance is the exact 1 − cosine), which
//! then holds the only copy.
//!
//! Removal marks a slot dead. `maintain` (a background task, every few
//! seconds) drops expired entries, builds the graph of a partition that
//! outgrew the exact scan and rebuilds one that is half dead, each built
//! outside the lock from a snapshot and swapped in: a lookup or a store
//! never waits for a graph to be built.

use super::entry::Entry;
use hnsw_rs::prelude::{Distance, Hnsw};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

/// Entries a partition holds before it gets a graph (measured: see BENCHMARKS.md).
pub const DEFAULT_EXACT_BELOW: usize = 4096;
/// Neighbours fetched from the graph per lookup, and its search breadth.
const GRAPH_K: usize = 8;
const GRAPH_EF: usize = 64;

/// One indexed question and the answer it had.
#[derive(Clone)]
pub struct Item {
    pub question: String,
    pub entry: Arc<Entry>,
}

/// A nearby question with its cosine similarity.
pub struct Candidate {
    pub similarity: f32,
    pub item: Item,
}

pub struct SemanticIndex {
    inner: RwLock<Inner>,
    exact_below: usize,
    max_entries: usize,
    dim: usize,
}

#[derive(Default)]
struct Inner {
    partitions: HashMap<String, Partition>,
    /// The ids of live entries.
    ids: HashSet<String>,
    live: usize,
}

struct Partition {
    items: Vec<Option<Item>>,
    /// The vectors, slot after slot, while the partition has no graph.
    vectors: Vec<f32>,
    graph: Option<Hnsw<'static, f32, Cosine>>,
    dead: usize,
}

impl Partition {
    fn empty() -> Self {
        Partition { items: Vec::new(), vectors: Vec::new(), graph: None, dead: 0 }
    }

    fn needs_rebuild(&self, exact_below: usize) -> bool {
        let grown = self.graph.is_none() && self.items.len() >= exact_below;
        let half_dead = !self.items.is_empty() && self.dead * 2 >= self.items.len();
        grown || half_dead
    }
}

/// 1 − cosine of unit vectors, never below 0 (rounding).
#[derive(Clone, Copy, Default)]
pub struct Cosine;

impl Distance<f32> for Cosine {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
}

/// Dot product in 16 independent lanes, which the compiler vectorises
/// (one running sum would have to be added in order).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `v` scaled to unit length (a zero vector stays zero).
pub fn normalize(mut v: Vec<f32>) -> Vec<f32> {
    let n = dot(&v, &v).sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

fn new_graph(capacity: usize) -> Hnsw<'static, f32, Cosine> {
    Hnsw::new(16, capacity.max(1024), 16, 100, Cosine)
}

impl Partition {
    fn vector(&self, slot: usize, dim: usize) -> &[f32] {
        &self.vectors[slot * dim..(slot + 1) * dim]
    }

    fn live(&self) -> usize {
        self.items.len() - self.dead
    }

    /// Each slot's vector, from the flat array or the graph.
    fn all_vectors(&self, dim: usize) -> Vec<Option<Vec<f32>>> {
        match &self.graph {
            None => (0..self.items.len()).map(|slot| Some(self.vector(slot, dim).to_vec())).collect(),
            Some(g) => {
                let mut out = vec![None; self.items.len()];
                for point in g.get_point_indexation() {
                    if let Some(v) = out.get_mut(point.get_origin_id()) {
                        *v = Some(point.get_v().to_vec());
                    }
                }
                out
            }
        }
    }

    /// The live slots' items and vectors, in slot order.
    fn live_pairs(&self, dim: usize) -> Vec<(Item, Vec<f32>)> {
        self.items.iter().zip(self.all_vectors(dim)).filter_map(|(item, v)| Some((item.clone()?, v?))).collect()
    }

    /// A partition of `pairs` with no dead slots; a large one with a graph
    /// (and no flat array).
    fn build(pairs: Vec<(Item, Vec<f32>)>, dim: usize, exact_below: usize) -> Partition {
        let mut p = Partition::empty();
        if pairs.len() >= exact_below {
            let g = new_graph(pairs.len() * 2);
            for (slot, (_, v)) in pairs.iter().enumerate() {
                g.insert_slice((v.as_slice(), slot));
            }
            p.graph = Some(g);
        } else {
            p.vectors.reserve(pairs.len() * dim);
            for (_, v) in &pairs {
                p.vectors.extend_from_slice(v);
            }
        }
        p.items = pairs.into_iter().map(|(it, _)| Some(it)).collect();
        p
    }

    /// The items and vectors of the slots from `start` on (all live: used
    /// when nothing was removed since `start` was the length).
    fn pairs_from(&self, start: usize, dim: usize) -> Vec<(Item, Vec<f32>)> {
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; self.items.len().saturating_sub(start)];
        match &self.graph {
            None => {
                for (k, v) in vectors.iter_mut().enumerate() {
                    *v = Some(self.vector(start + k, dim).to_vec());
                }
            }
            Some(g) => {
                for point in g.get_point_indexation() {
                    let id = point.get_origin_id();
                    if id >= start {
                        if let Some(v) = vectors.get_mut(id - start) {
                            *v = Some(point.get_v().to_vec());
                        }
                    }
                }
            }
        }
        self.items[start.min(self.items.len())..]
            .iter()
            .zip(vectors)
            .filter_map(|(item, v)| Some((item.clone()?, v?)))
            .collect()
    }

    /// Appends one entry (to the graph when there is one).
    fn push(&mut self, item: Item, vector: &[f32]) {
        let slot = self.items.len();
        self.items.push(Some(item));
        match &self.graph {
            Some(g) => g.insert_slice((vector, slot)),
            None => self.vectors.extend_from_slice(vector),
        }
    }
}

impl SemanticIndex {
    pub fn new(dim: usize, exact_below: usize, max_entries: usize) -> Self {
        SemanticIndex { inner: RwLock::new(Inner::default()), exact_below: exact_below.max(1), max_entries, dim }
    }

    /// Adds an entry (a unit vector of the index's size); false when the
    /// index is full or the vector has the wrong size.
    pub fn insert(&self, partition: &str, vector: &[f32], item: Item) -> bool {
        if vector.len() != self.dim {
            return false;
        }
        let Ok(mut inner) = self.inner.write() else { return false };
        if inner.ids.contains(&item.entry.id) {
            return true;
        }
        if inner.live >= self.max_entries {
            return false;
        }
        let id = item.entry.id.clone();
        inner.partitions.entry(partition.to_string()).or_insert_with(Partition::empty).push(item, vector);
        inner.ids.insert(id);
        inner.live += 1;
        true
    }

    /// The entries nearest to `vector` in `partition`, most similar first,
    /// at least `min_similarity`, unexpired.
    pub fn search(&self, partition: &str, vector: &[f32], min_similarity: f32, limit: usize) -> Vec<Candidate> {
        let Ok(inner) = self.inner.read() else { return Vec::new() };
        let Some(p) = inner.partitions.get(partition) else { return Vec::new() };
        if vector.len() != self.dim {
            return Vec::new();
        }
        let now = crate::store::unix_ms();
        let mut found: Vec<(f32, usize)> = match &p.graph {
            // The graph's distance is 1 − cosine, computed exactly.
            Some(g) => g
                .search(vector, GRAPH_K.max(limit), GRAPH_EF)
                .into_iter()
                .filter(|n| n.d_id < p.items.len())
                .map(|n| (1.0 - n.distance, n.d_id))
                .collect(),
            None => (0..p.items.len()).map(|slot| (dot(vector, p.vector(slot, self.dim)), slot)).collect(),
        };
        found.retain(|(s, slot)| {
            *s >= min_similarity && p.items[*slot].as_ref().is_some_and(|it| !it.entry.expired(now))
        });
        found.sort_by(|a, b| b.0.total_cmp(&a.0));
        found.truncate(limit);
        found
            .into_iter()
            .filter_map(|(similarity, slot)| p.items[slot].clone().map(|item| Candidate { similarity, item }))
            .collect()
    }

    /// Removes every entry `matches` selects; returns how many.
    pub fn remove_if(&self, matches: impl Fn(&Entry) -> bool) -> usize {
        let Ok(mut inner) = self.inner.write() else { return 0 };
        let mut gone = Vec::new();
        for p in inner.partitions.values_mut() {
            for item in p.items.iter_mut() {
                if item.as_ref().is_some_and(|it| matches(&it.entry)) {
                    if let Some(it) = item.take() {
                        gone.push(it.entry.id.clone());
                    }
                    p.dead += 1;
                }
            }
        }
        for id in &gone {
            inner.ids.remove(id);
        }
        inner.live -= gone.len();
        gone.len()
    }

    /// Drops expired entries; builds or rebuilds the graphs that need it,
    /// each from a snapshot taken under the read lock, built without a
    /// lock, and swapped in if the partition only grew meanwhile (entries
    /// added since are appended to the new one); a partition that lost
    /// entries meanwhile waits for the next round.
    pub fn maintain(&self) {
        let now = crate::store::unix_ms();
        self.remove_if(|e| e.expired(now));
        let names: Vec<String> = match self.inner.read() {
            Ok(inner) => inner
                .partitions
                .iter()
                .filter(|(_, p)| p.needs_rebuild(self.exact_below))
                .map(|(n, _)| n.clone())
                .collect(),
            Err(_) => return,
        };
        for name in names {
            let snapshot = match self.inner.read() {
                Ok(inner) => inner.partitions.get(&name).map(|p| (p.items.len(), p.dead, p.live_pairs(self.dim))),
                Err(_) => return,
            };
            let Some((len, dead, pairs)) = snapshot else { continue };
            let mut built = Partition::build(pairs, self.dim, self.exact_below);
            let Ok(mut inner) = self.inner.write() else { return };
            let Some(p) = inner.partitions.get_mut(&name) else { continue };
            if p.dead != dead || p.items.len() < len {
                continue;
            }
            for (item, v) in p.pairs_from(len, self.dim) {
                built.push(item, &v);
            }
            *p = built;
        }
        if let Ok(mut inner) = self.inner.write() {
            inner.partitions.retain(|_, p| p.live() > 0);
        }
    }

    /// Whether an entry with this id is indexed.
    pub fn contains(&self, id: &str) -> bool {
        self.inner.read().is_ok_and(|i| i.ids.contains(id))
    }

    /// (entries, approximate bytes: vectors, graph links, questions and answers).
    pub fn size(&self) -> (u64, u64) {
        let Ok(inner) = self.inner.read() else { return (0, 0) };
        let mut bytes = 0u64;
        for p in inner.partitions.values() {
            bytes += (p.vectors.len() * 4) as u64;
            if p.graph.is_some() {
                // Each vector and about 2 × 16 links per point.
                bytes += (p.items.len() * (self.dim * 4 + 32 * 8 + 64)) as u64;
            }
            for it in p.items.iter().flatten() {
                bytes += (it.question.len() + 64) as u64 + u64::from(it.entry.weight());
            }
        }
        (inner.live as u64, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::entry::Finish;

    fn entry(id: &str, tenant: &str) -> Arc<Entry> {
        Arc::new(Entry {
            id: id.into(),
            model: "m".into(),
            served_by: None,
            tenant: tenant.into(),
            namespace: None,
            created_ms: 0,
            expires_ms: u64::MAX,
            text: format!("answer {id}"),
            tool_calls: Vec::new(),
            finish: Finish::Stop,
            prompt_tokens: 1,
            completion_tokens: 1,
        })
    }

    fn unit(seed: u64, dim: usize) -> Vec<f32> {
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let v = (0..dim)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((x >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect();
        normalize(v)
    }

    #[test]
    fn finds_the_nearest_in_its_partition_only() {
        let idx = SemanticIndex::new(32, 4096, 100);
        for i in 0..20 {
            let it = Item { question: format!("q{i}"), entry: entry(&format!("e{i}"), "global") };
            assert!(idx.insert("p1", &unit(i, 32), it));
        }
        let hits = idx.search("p1", &unit(7, 32), 0.99, 3);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].item.entry.id, "e7");
        assert!(idx.search("p2", &unit(7, 32), 0.0, 3).is_empty());
        assert_eq!(idx.remove_if(|e| e.id == "e7"), 1);
        assert!(idx.search("p1", &unit(7, 32), 0.99, 3).is_empty());
        assert!(!idx.contains("e7") && idx.contains("e8"));
    }

    #[test]
    fn a_large_partition_is_searched_through_its_graph_and_compacts() {
        let idx = SemanticIndex::new(32, 64, 10_000);
        for i in 0..500 {
            idx.insert("p", &unit(i, 32), Item { question: String::new(), entry: entry(&format!("e{i}"), "g") });
        }
        // The graph is built by maintenance, off the storing path.
        idx.maintain();
        let mut found = 0;
        for i in (0..500).step_by(10) {
            let hits = idx.search("p", &unit(i, 32), 0.99, 1);
            found += usize::from(hits.first().is_some_and(|c| c.item.entry.id == format!("e{i}")));
        }
        assert!(found >= 48, "graph recall {found}/50");
        assert_eq!(idx.remove_if(|e| e.id.len() == 2 || e.id.ends_with('1')), 10 + 49);
        idx.maintain();
        assert_eq!(idx.size().0, 500 - 59);
        assert!(idx.search("p", &unit(1, 32), 0.99, 1).is_empty());
        let hits = idx.search("p", &unit(333, 32), 0.99, 1);
        assert_eq!(hits.first().map(|c| c.item.entry.id.clone()), Some("e333".into()));
        // Over half dead: the sweep rebuilds the graph from its own vectors.
        let even = |e: &Entry| e.id[1..].parse::<u32>().is_ok_and(|n| n % 2 == 0);
        idx.remove_if(even);
        idx.maintain();
        let left = idx.size().0;
        assert!(left < 250, "{left}");
        let hits = idx.search("p", &unit(333, 32), 0.99, 1);
        assert_eq!(hits.first().map(|c| c.item.entry.id.clone()), Some("e333".into()));
        assert!(idx.search("p", &unit(334, 32), 0.99, 1).is_empty());
        // A full index takes no more.
        let small = SemanticIndex::new(32, 64, 1);
        assert!(small.insert("p", &unit(1, 32), Item { question: String::new(), entry: entry("a", "g") }));
        assert!(!small.insert("p", &unit(2, 32), Item { question: String::new(), entry: entry("b", "g") }));
    }
}
