//! Batch invariance rests on this: each of the engine's kernels gives a row
//! the same bits whatever rows share the matmul, on the model's shapes,
//! across every tiling remainder. (candle's f32 GEMM does not, which is
//! why the engine has its own kernels.)

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use engine::model::bf16::Bf16Matrix;
use engine::model::dense::DenseMatrix;
use engine::model::q8::{self, Q8Matrix};
use engine::model::RowMatmul;

fn data(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn rows_are_independent(label: &str, mm: &dyn Fn(&[f32]) -> Vec<f32>, n: usize, k: usize) {
    let all = data(600 * k, 1);
    let reference = mm(&all[7 * k..8 * k]);
    assert_eq!(reference.len(), n);
    for m in [2usize, 3, 5, 8, 15, 16, 17, 31, 64, 129, 512] {
        let start = 7usize.saturating_sub(m / 2).min(600 - m);
        let out = mm(&all[start * k..(start + m) * k]);
        let row = &out[(7 - start) * n..(8 - start) * n];
        assert!(row == reference.as_slice(), "{label}: row 7 changed when computed among {m} rows");
    }
}

const SHAPES: [(usize, usize); 4] = [(960, 576), (576, 576), (3072, 576), (576, 1536)];

#[test]
fn int8_decode_kernel_rows_do_not_depend_on_the_batch() {
    for (n, k) in SHAPES {
        let q = Q8Matrix::quantize(&data(n * k, 2), k).unwrap();
        rows_are_independent("q8", &|x| q.matmul(x), n, k);
    }
}

#[test]
fn the_decode_kernel_this_process_picked_rows_do_not_depend_on_the_batch() {
    // AVX-512 VNNI panels where the CPU has them (CI also runs this file
    // with `SWITCHYARD_KERNELS=avx2`, which takes the AVX2 tiles).
    for (n, k) in SHAPES {
        let q = q8::decode_matrix(&data(n * k, 5), k).unwrap();
        rows_are_independent("decode", &|x| q.matmul(x), n, k);
    }
}

#[test]
fn dense_prompt_kernel_rows_do_not_depend_on_the_batch() {
    for (n, k) in SHAPES {
        let w = DenseMatrix::pack(&data(n * k, 3), k);
        rows_are_independent("dense", &|x| w.matmul(x), n, k);
    }
}

#[test]
fn bf16_prompt_kernel_rows_do_not_depend_on_the_batch() {
    // The path this process picked (`SWITCHYARD_KERNELS` forces the
    // fallback; CI runs this file both ways).
    for (n, k) in SHAPES {
        let w = Bf16Matrix::pack(&data(n * k, 4), k);
        rows_are_independent("bf16", &|x| w.matmul(x), n, k);
    }
}
