//! Tensor storage for the paged KV cache: per layer, one key and one value
//! buffer, one contiguous run per block. Values are `[block][slot][kv_width]`
//! (attention sums whole value rows); keys are transposed within a block,
//! `[block][kv_width][slot]`, so one query dimension times a block's keys
//! is a vector over its 16 positions and scores need no horizontal sums.

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
        let (Some(off), w, bs) = (self.offset(table, pos), self.kv_width, self.block_size) else { return };
        let (block_start, slot) = (off - (pos % bs) * w, pos % bs);
        if let Some((ks, vs)) = self.layers.get_mut(layer) {
            for (d, &kd) in k.iter().take(w).enumerate() {
                ks[block_start + d * bs + slot] = kd;
            }
            vs[off..off + w].copy_from_slice(&v[..w]);
        }
    }

    /// The keys (`[kv_width][slot]`, all slots) and values (`[slot][kv_width]`,
    /// the valid slots only) of positions `0..n` of one layer, one block at
    /// a time, in position order.
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
            (&ks[start..start + bs * w], &vs[start..start + len])
        })
    }
}
