//! What the CPU offers our kernels, decided once per process by run-time
//! feature detection, and what `SWITCHYARD_KERNELS` lets them use:
//! unset (the best the CPU has), `avx2` (the fallback a CPU without
//! AVX-512 runs; CI runs the engine's tests both ways), `portable` (no
//! SIMD in our kernels), `f32` (the previous prompt weights, an f32
//! copy: twice the memory) or `no-vnni` (decode rows on the AVX2 int8
//! tiles though the CPU has AVX-512 VNNI); the last two are kept to
//! measure against in one sitting.

/// Instruction sets the kernels may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// AVX2 and FMA.
    pub avx2: bool,
    /// AVX-512F with BF16 dot products (`vdpbf16ps`).
    pub avx512_bf16: bool,
    /// AVX-512F and BW with VNNI byte dot products (`vpdpbusd`).
    pub avx512_vnni: bool,
}

/// What `SWITCHYARD_KERNELS` asks for (read once).
pub fn asked() -> &'static str {
    static ASKED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ASKED.get_or_init(|| std::env::var("SWITCHYARD_KERNELS").unwrap_or_default())
}

/// The features this process's kernels use.
pub fn features() -> Features {
    static FEATURES: std::sync::OnceLock<Features> = std::sync::OnceLock::new();
    *FEATURES.get_or_init(|| detect(asked()))
}

/// `SWITCHYARD_KERNELS=f32`: prompt rows through an f32 copy of every weight.
pub fn f32_prompt_weights() -> bool {
    asked() == "f32"
}

/// The CPU's features, less what `asked` rules out.
pub fn detect(asked: &str) -> Features {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = asked != "portable" && is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        let avx512 = avx2 && !matches!(asked, "avx2") && is_x86_feature_detected!("avx512f");
        Features {
            avx2,
            avx512_bf16: avx512 && is_x86_feature_detected!("avx512bf16"),
            avx512_vnni: avx512
                && asked != "no-vnni"
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vnni"),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = asked;
        Features { avx2: false, avx512_bf16: false, avx512_vnni: false }
    }
}
