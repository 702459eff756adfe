//! The paged KV cache, in two halves that never meet except through block
//! ids: `BlockPool` is pure bookkeeping (ids, reference counts, the free
//! list in eviction order, the prefix-cache index) and `KvStore` holds the
//! tensors. Sequences own a block table (`Vec<BlockId>`); position `p` of a
//! sequence lives in slot `p % block_size` of block `table[p / block_size]`.
//!
//! Automatic prefix caching: every full block is named by a hash chained
//! from its parent's (`block_hash`), rooted in an optional salt so tenants
//! can be kept apart. A finished sequence's full blocks stay in the pool,
//! reusable by any later sequence whose tokens start the same way, until
//! the pool needs them back (least recently used first).

mod block_pool;
mod store;

pub use block_pool::{block_hash, root_hash, BlockId, BlockPool};
pub use store::KvStore;

/// Tokens per block: small enough that prefix reuse is fine-grained, large
/// enough that block-table walks in attention stay cheap.
pub const BLOCK_SIZE: usize = 16;
