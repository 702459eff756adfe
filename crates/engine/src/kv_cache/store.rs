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
    layers: Vec<(Zeroed, Zeroed)>,
}

/// Zeroed f32 storage in an anonymous mapping of its own, so its pages
/// cost memory only when first written. (A zeroed `Vec` does not promise
/// that: an allocator that reuses pages freed while the weights were
/// converted zeroes them, and they count at once — ~160 MB of a 1 GiB
/// pool here.) Falls back to the heap if the mapping fails.
enum Zeroed {
    Mapped(memmap2::MmapMut, usize),
    Heap(Vec<f32>),
}

impl Zeroed {
    fn new(len: usize) -> Self {
        match memmap2::MmapMut::map_anon((len * std::mem::size_of::<f32>()).max(1)) {
            Ok(map) => Zeroed::Mapped(map, len),
            Err(e) => {
                tracing::warn!(error = %e, "KV cache: anonymous mapping failed, using the heap");
                Zeroed::Heap(vec![0.0; len])
            }
        }
    }
}

impl std::ops::Deref for Zeroed {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            // SAFETY: the mapping is page-aligned, at least `len` f32s long,
            // zero-initialised, and lives as long as `self`; any bits are
            // a valid f32.
            Zeroed::Mapped(map, len) => unsafe { std::slice::from_raw_parts(map.as_ptr().cast::<f32>(), *len) },
            Zeroed::Heap(v) => v,
        }
    }
}

impl std::ops::DerefMut for Zeroed {
    fn deref_mut(&mut self) -> &mut [f32] {
        match self {
            // SAFETY: as in `deref`, and `&mut self` makes this the only view.
            Zeroed::Mapped(map, len) => unsafe { std::slice::from_raw_parts_mut(map.as_mut_ptr().cast::<f32>(), *len) },
            Zeroed::Heap(v) => v,
        }
    }
}

impl KvStore {
    /// Bytes one block takes across all layers (keys and values, f32).
    pub fn block_bytes(n_layer: usize, block_size: usize, kv_width: usize) -> usize {
        2 * n_layer * block_size * kv_width * std::mem::size_of::<f32>()
    }

    /// Zeroed storage whose pages are mapped lazily (`Zeroed`), so a large
    /// budget costs memory only as blocks are first written.
    pub fn new(n_layer: usize, block_size: usize, kv_width: usize, num_blocks: usize) -> Self {
        let len = num_blocks * block_size * kv_width;
        KvStore {
            block_size,
            kv_width,
            num_blocks,
            layers: (0..n_layer).map(|_| (Zeroed::new(len), Zeroed::new(len))).collect(),
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
        let (ks, vs) = self.layers.get(layer).map_or((&[][..], &[][..]), |(k, v)| (&k[..], &v[..]));
        table.iter().enumerate().take(n.div_ceil(bs)).map(move |(i, &b)| {
            let len = (n - i * bs).min(bs) * w;
            let start = b as usize * bs * w;
            (&ks[start..start + bs * w], &vs[start..start + len])
        })
    }
}
