//! Block bookkeeping: which blocks are in use (and by how many sequences),
//! which are free and in what eviction order, and which hold a cached
//! prefix. No tensors here, so every rule is unit-testable.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};

pub type BlockId = u32;

/// Hash of a full block: the parent block's hash (or the root) and the
/// block's token ids. Equal hashes mean "same tokens after the same
/// prefix"; `BlockPool::lookup` also compares the tokens and the parent, so
/// a hash collision alone can never serve another prefix's keys and values.
pub fn block_hash(parent: u64, tokens: &[u32]) -> u64 {
    let mut h = DefaultHasher::new();
    parent.hash(&mut h);
    tokens.hash(&mut h);
    h.finish()
}

/// The chain's root. A salt (per tenant, per API key) gives its sequences
/// a cache of their own: no block is shared across different salts.
pub fn root_hash(salt: Option<&str>) -> u64 {
    let mut h = DefaultHasher::new();
    "switchyard-prefix-root".hash(&mut h);
    salt.hash(&mut h);
    h.finish()
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct CacheKey {
    hash: u64,
    parent: u64,
    tokens: Box<[u32]>,
}

#[derive(Debug, Default)]
struct Block {
    refs: u32,
    /// Position in the free list while `refs == 0`.
    free_stamp: u64,
    /// Set once the block is full and registered in the prefix cache.
    key: Option<CacheKey>,
}

#[derive(Debug)]
pub struct BlockPool {
    blocks: Vec<Block>,
    /// Unreferenced blocks by release time: the first is evicted first.
    free: BTreeMap<u64, BlockId>,
    /// Prefix-cache index: block hash → the block holding it.
    cached: HashMap<u64, BlockId>,
    clock: u64,
}

impl BlockPool {
    pub fn new(num_blocks: usize) -> Self {
        let mut pool = BlockPool { blocks: Vec::new(), free: BTreeMap::new(), cached: HashMap::new(), clock: 0 };
        for id in 0..num_blocks {
            pool.blocks.push(Block::default());
            pool.push_free(id as BlockId);
        }
        pool
    }

    pub fn total(&self) -> usize {
        self.blocks.len()
    }

    /// Blocks that `allocate` can hand out (free, cached or not).
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Blocks referenced by at least one sequence.
    pub fn used(&self) -> usize {
        self.total() - self.available()
    }

    /// Blocks registered in the prefix cache (in use or not).
    pub fn cached(&self) -> usize {
        self.cached.len()
    }

    pub fn refs(&self, id: BlockId) -> u32 {
        self.blocks.get(id as usize).map_or(0, |b| b.refs)
    }

    fn push_free(&mut self, id: BlockId) {
        self.clock += 1;
        if let Some(b) = self.blocks.get_mut(id as usize) {
            b.free_stamp = self.clock;
        }
        self.free.insert(self.clock, id);
    }

    /// Takes the least recently released block; if it held a cached prefix
    /// block, that entry is evicted. `None` when every block is in use.
    pub fn allocate(&mut self) -> Option<BlockId> {
        let (_, id) = self.free.pop_first()?;
        let block = self.blocks.get_mut(id as usize)?;
        if let Some(key) = block.key.take() {
            if self.cached.get(&key.hash) == Some(&id) {
                self.cached.remove(&key.hash);
            }
        }
        block.refs = 1;
        Some(id)
    }

    /// Drops one reference; a block nobody references becomes free (and,
    /// if cached, stays findable until it is evicted).
    pub fn release(&mut self, id: BlockId) {
        let Some(block) = self.blocks.get_mut(id as usize) else { return };
        if block.refs == 0 {
            return;
        }
        block.refs -= 1;
        if block.refs == 0 {
            self.push_free(id);
        }
    }

    /// Releases a sequence's whole table, last block first: its tail is the
    /// part least likely to be shared, so it is evicted before the head.
    pub fn release_all(&mut self, table: &[BlockId]) {
        for &id in table.iter().rev() {
            self.release(id);
        }
    }

    /// The cached block holding `tokens` after `parent`, if any. The caller
    /// takes a reference with `acquire` before using it.
    pub fn lookup(&self, hash: u64, parent: u64, tokens: &[u32]) -> Option<BlockId> {
        let id = *self.cached.get(&hash)?;
        let key = self.blocks.get(id as usize)?.key.as_ref()?;
        (key.parent == parent && *key.tokens == *tokens).then_some(id)
    }

    /// Takes one more reference on a block (a prefix-cache hit).
    pub fn acquire(&mut self, id: BlockId) {
        let Some(block) = self.blocks.get_mut(id as usize) else { return };
        if block.refs == 0 {
            self.free.remove(&block.free_stamp);
        }
        block.refs += 1;
    }

    /// Registers a full block under its hash. Returns false when another
    /// block already holds that prefix (this one then stays private).
    pub fn register(&mut self, id: BlockId, hash: u64, parent: u64, tokens: &[u32]) -> bool {
        if self.cached.contains_key(&hash) {
            return false;
        }
        let Some(block) = self.blocks.get_mut(id as usize) else { return false };
        if block.key.is_some() {
            return false;
        }
        block.key = Some(CacheKey { hash, parent, tokens: tokens.into() });
        self.cached.insert(hash, id);
        true
    }

    /// Every bookkeeping invariant; used by tests after each operation.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (i, b) in self.blocks.iter().enumerate() {
            let listed = self.free.get(&b.free_stamp) == Some(&(i as BlockId));
            if (b.refs == 0) != listed {
                return Err(format!("block {i}: refs {} but free-listed {listed}", b.refs));
            }
            if let Some(k) = &b.key {
                if self.cached.get(&k.hash) != Some(&(i as BlockId)) {
                    return Err(format!("block {i}: has a key the index does not point back from"));
                }
            }
        }
        if self.free.len() != self.blocks.iter().filter(|b| b.refs == 0).count() {
            return Err("the free list has duplicates or stale entries".into());
        }
        for (hash, &id) in &self.cached {
            if self.blocks.get(id as usize).and_then(|b| b.key.as_ref()).map(|k| k.hash) != Some(*hash) {
                return Err(format!("index entry {hash:x} points at block {id} without that key"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(pool: &BlockPool) {
        assert_eq!(pool.check_invariants(), Ok(()));
    }

    #[test]
    fn allocates_until_empty_and_frees_on_release() {
        let mut pool = BlockPool::new(3);
        let ids: Vec<_> = (0..3).filter_map(|_| pool.allocate()).collect();
        assert_eq!(ids.len(), 3);
        assert_eq!(pool.allocate(), None);
        assert_eq!((pool.used(), pool.available()), (3, 0));
        ok(&pool);
        pool.release_all(&ids);
        assert_eq!((pool.used(), pool.available()), (0, 3));
        ok(&pool);
    }

    #[test]
    fn shared_blocks_free_only_with_the_last_reference() {
        let mut pool = BlockPool::new(2);
        let a = pool.allocate().unwrap();
        let tokens = [1, 2, 3];
        let h = block_hash(root_hash(None), &tokens);
        assert!(pool.register(a, h, root_hash(None), &tokens));
        let hit = pool.lookup(h, root_hash(None), &tokens).unwrap();
        pool.acquire(hit);
        assert_eq!(pool.refs(a), 2);
        pool.release(a);
        assert_eq!(pool.available(), 1, "still referenced once");
        pool.release(a);
        assert_eq!(pool.available(), 2);
        pool.release(a); // an extra release is ignored, not an underflow
        assert_eq!(pool.refs(a), 0);
        ok(&pool);
    }

    #[test]
    fn a_free_cached_block_is_reused_until_evicted() {
        let mut pool = BlockPool::new(2);
        let root = root_hash(None);
        let a = pool.allocate().unwrap();
        let h = block_hash(root, &[7, 8]);
        pool.register(a, h, root, &[7, 8]);
        pool.release(a);
        assert_eq!(pool.lookup(h, root, &[7, 8]), Some(a), "cached after release");
        pool.acquire(a);
        assert_eq!(pool.available(), 1);
        pool.release(a);
        // Two allocations: the never-used block first, then the cached one (evicted).
        let b = pool.allocate().unwrap();
        assert_ne!(b, a);
        assert_eq!(pool.allocate(), Some(a));
        assert_eq!(pool.lookup(h, root, &[7, 8]), None, "evicted");
        assert_eq!(pool.cached(), 0);
        ok(&pool);
    }

    #[test]
    fn eviction_is_least_recently_released_first() {
        let mut pool = BlockPool::new(4);
        let root = root_hash(None);
        let ids: Vec<_> = (0..4).filter_map(|_| pool.allocate()).collect();
        for (i, &id) in ids.iter().enumerate() {
            let t = [i as u32];
            pool.register(id, block_hash(root, &t), root, &t);
        }
        // Release order: 2, 0, 3, 1 → eviction order the same.
        for &i in &[2, 0, 3, 1] {
            pool.release(ids[i]);
        }
        // Touching block 0 (a hit, then released) makes it most recent.
        pool.acquire(ids[0]);
        pool.release(ids[0]);
        let order: Vec<_> = (0..4).filter_map(|_| pool.allocate()).collect();
        assert_eq!(order, vec![ids[2], ids[3], ids[1], ids[0]]);
        ok(&pool);
    }

    #[test]
    fn release_all_evicts_a_sequence_tail_first() {
        let mut pool = BlockPool::new(3);
        let table: Vec<_> = (0..3).filter_map(|_| pool.allocate()).collect();
        pool.release_all(&table);
        assert_eq!(pool.allocate(), Some(table[2]));
        assert_eq!(pool.allocate(), Some(table[1]));
    }

    #[test]
    fn hashes_chain_through_parents_and_salts() {
        let root = root_hash(None);
        let a1 = block_hash(root, &[1, 2]);
        let a2 = block_hash(a1, &[3, 4]);
        let b1 = block_hash(root, &[9, 9]);
        assert_ne!(block_hash(b1, &[3, 4]), a2, "same block after a different prefix");
        assert_eq!(block_hash(block_hash(root, &[1, 2]), &[3, 4]), a2, "deterministic");
        assert_ne!(root_hash(Some("tenant-a")), root_hash(Some("tenant-b")));
        assert_ne!(root_hash(Some("")), root, "an empty salt is still a salt");
    }

    #[test]
    fn lookup_checks_tokens_and_parent_not_just_the_hash() {
        let mut pool = BlockPool::new(1);
        let a = pool.allocate().unwrap();
        // Pretend two different contents collided on hash 42.
        pool.register(a, 42, 1, &[5, 6]);
        assert_eq!(pool.lookup(42, 1, &[5, 6]), Some(a));
        assert_eq!(pool.lookup(42, 1, &[5, 7]), None);
        assert_eq!(pool.lookup(42, 2, &[5, 6]), None);
    }

    #[test]
    fn a_duplicate_prefix_stays_private() {
        let mut pool = BlockPool::new(2);
        let (a, b) = (pool.allocate().unwrap(), pool.allocate().unwrap());
        assert!(pool.register(a, 5, 0, &[1]));
        assert!(!pool.register(b, 5, 0, &[1]));
        pool.release(b);
        assert_eq!(pool.allocate(), Some(b));
        assert_eq!(pool.lookup(5, 0, &[1]), Some(a), "evicting the private copy leaves the cached one");
        ok(&pool);
    }

    /// Random operations against a simple model of who holds what.
    #[test]
    fn invariants_hold_under_random_operations() {
        use rand::{rngs::StdRng, Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(7);
        let mut pool = BlockPool::new(16);
        let mut held: Vec<BlockId> = Vec::new();
        for step in 0..5_000u32 {
            match rng.random_range(0..4) {
                0 | 1 => {
                    if let Some(id) = pool.allocate() {
                        if rng.random_bool(0.5) {
                            let t = [step];
                            pool.register(id, block_hash(0, &t), 0, &t);
                        }
                        held.push(id);
                    } else {
                        assert_eq!(pool.available(), 0, "allocation fails only when nothing is free");
                    }
                }
                2 if !held.is_empty() => {
                    let i = rng.random_range(0..held.len());
                    pool.release(held.swap_remove(i));
                }
                _ if !held.is_empty() => {
                    let id = held[rng.random_range(0..held.len())];
                    pool.acquire(id);
                    held.push(id);
                }
                _ => {}
            }
            ok(&pool);
            let distinct: std::collections::HashSet<_> = held.iter().collect();
            assert_eq!(pool.used(), distinct.len());
            for id in &distinct {
                assert_eq!(pool.refs(**id) as usize, held.iter().filter(|h| h == id).count());
            }
        }
    }
}
