//! Per-sequence KV storage: for each layer, the keys and values of every
//! position so far, one `kv_width`-wide row per position.

pub struct SeqKv {
    layers: Vec<(Vec<f32>, Vec<f32>)>,
    /// Positions whose K/V are complete in every layer.
    len: usize,
}

impl SeqKv {
    pub fn new(n_layer: usize) -> Self {
        SeqKv { layers: (0..n_layer).map(|_| (Vec::new(), Vec::new())).collect(), len: 0 }
    }

    /// Positions cached (complete in every layer).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one position's K and V to one layer during a forward pass.
    pub(crate) fn append(&mut self, layer: usize, k: &[f32], v: &[f32]) {
        if let Some((ks, vs)) = self.layers.get_mut(layer) {
            ks.extend_from_slice(k);
            vs.extend_from_slice(v);
        }
    }

    /// Marks `n` appended positions as complete once every layer has them.
    pub(crate) fn commit(&mut self, n: usize) {
        self.len += n;
    }

    /// Keys and values of one layer (including this step's appended rows).
    pub(crate) fn layer(&self, layer: usize) -> (&[f32], &[f32]) {
        self.layers.get(layer).map_or((&[][..], &[][..]), |(k, v)| (k.as_slice(), v.as_slice()))
    }
}
