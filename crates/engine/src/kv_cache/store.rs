//! Tensor storage for the paged KV cache: per layer, one key and one value
//! buffer laid out `[block][slot][kv_width]`, so a block's positions are
//! contiguous and attention walks a block table one run at a time.

use super::BlockId;

pub struct KvStore {
    block_size: usize,
    kv_width: usize,
    num_blocks: usize,
    /// Per layer: (keys, values).
    layers: Vec<(Vec<f32>, Vec<f32>)>,
}

impl KvStore {
    /// Bytes one block takes across all layers (keys and values, f32).
    pub fn block_bytes(n_layer: usize, block_size: usize, kv_width: usize) -> usize {
        2 * n_layer * block_size * kv_width * std::mem::size_of::<f32>()
    }

    /// Zeroed storage; the allocator maps the pages lazily, so a large
    /// budget costs memory only as blocks are first written.
    pub fn new(n_layer: usize, block_size: usize, kv_width: usize, num_blocks: usize) -> Self {
        let len = num_blocks * block_size * kv_width;
        KvStore {
            block_size,
            kv_width,
            num_blocks,
            layers: (0..n_layer).map(|_| (vec![0.0; len], vec![0.0; len])).collect(),
        }
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    pub fn num_blocks(&self) -> usize {
        self.num_blocks
    }

    /// Whether `table` is usable for positions `0..positions`.
    pub fn covers(&self, table: &[BlockId], positions: usize) -> bool {
        table.len() * self.block_size >= positions && table.iter().all(|&b| (b as usize) < self.num_blocks)
    }

    fn offset(&self, table: &[BlockId], pos: usize) -> Option<usize> {
        let block = *table.get(pos / self.block_size)? as usize;
        (block < self.num_blocks).then(|| (block * self.block_size + pos % self.block_size) * self.kv_width)
    }

    /// Stores one position's key and value in one layer.
    pub(crate) fn write(&mut self, layer: usize, table: &[BlockId], pos: usize, k: &[f32], v: &[f32]) {
        let (Some(off), w) = (self.offset(table, pos), self.kv_width) else { return };
        if let Some((ks, vs)) = self.layers.get_mut(layer) {
            ks[off..off + w].copy_from_slice(&k[..w]);
            vs[off..off + w].copy_from_slice(&v[..w]);
        }
    }

    /// The keys and values of positions `0..n` of one layer, as contiguous
    /// runs (one per block), in position order.
    pub(crate) fn runs<'a>(
        &'a self,
        layer: usize,
        table: &'a [BlockId],
        n: usize,
    ) -> impl Iterator<Item = (&'a [f32], &'a [f32])> + 'a {
        let (bs, w) = (self.block_size, self.kv_width);
        let (ks, vs) = self.layers.get(layer).map_or((&[][..], &[][..]), |(k, v)| (k.as_slice(), v.as_slice()));
        table.iter().enumerate().take(n.div_ceil(bs)).map(move |(i, &b)| {
            let len = (n - i * bs).min(bs) * w;
            let start = b as usize * bs * w;
            (&ks[start..start + len], &vs[start..start + len])
        })
    }
}
