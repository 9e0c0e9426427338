//! The cost of attention, measured and counted: attention alone timed against n on the CPU
//! and on the GPU's two kernels (flash: O(n) memory; naive: the n × n score matrix), log-log
//! slopes fitted, the whole forward pass split into linear layers vs attention by FLOPs, and
//! the KV cache of real architectures against context length (sliding windows and MLA included).

use crate::backends::cpu::ops::{causal_attention, ATTN_QUERY_TILE};
use crate::model::arch::AttnShape;
use crate::model::config::Config;
use crate::util::Clock;

/// One measurement of attention alone.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CostRow {
    pub n: usize,
    /// "cpu", "flash" or "naive".
    pub kernel: String,
    /// Best of the timed repetitions, milliseconds.
    pub ms: f64,
    /// Memory the kernel writes beyond its inputs and output: the LSE, plus the score tile
    /// (CPU) or the whole score matrix for the heads of one pass (naive).
    pub scratch_bytes: usize,
}

/// Sequence lengths of a sweep: powers of two from 128 up to `max_n`.
pub fn sweep_sizes(max_n: usize) -> Vec<usize> {
    std::iter::successors(Some(128usize), |n| Some(n * 2)).take_while(|n| *n <= max_n.max(128)).collect()
}

/// Deterministic values in [−0.5, 0.5) (the benchmarks' q, k, v).
pub fn fill(len: usize, seed: u32) -> Vec<f32> {
    (0..len).map(|i| (((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed)) >> 8) as f32 / (1u32 << 24) as f32 - 0.5).collect()
}

/// The shape of one layer's attention in `c`, at length `n`, without a window.
pub fn shape(c: &Config, n: usize) -> AttnShape {
    AttnShape { n, past: 0, n_head: c.n_head, n_kv: c.n_head_kv, head_dim: c.head_dim, window: None, ..Default::default() }
}

/// CPU attention alone: best of `reps` runs (after one warm-up when `reps` > 1).
pub fn cpu_row(s: AttnShape, reps: usize) -> CostRow {
    let (q, k, v) = (fill(s.n * s.n_head * s.head_dim, 1), fill(s.n * s.n_kv * s.head_dim, 2), fill(s.n * s.n_kv * s.head_dim, 3));
    let (mut o, mut lse) = (vec![0f32; s.n * s.n_head * s.head_dim], vec![0f32; s.n_head * s.n]);
    let mut best = f64::INFINITY;
    for rep in 0..reps.max(1) + usize::from(reps > 1) {
        let clock = Clock::start();
        causal_attention(s, &q, &k, &v, &mut o, &mut lse);
        if rep > 0 || reps <= 1 {
            best = best.min(clock.ms());
        }
    }
    // One score tile per worker thread (one thread in the browser).
    let threads = crate::backends::cpu::parallel::threads();
    CostRow { n: s.n, kernel: "cpu".into(), ms: best, scratch_bytes: s.n_head * s.n * 4 + threads * ATTN_QUERY_TILE.min(s.n) * s.n * 4 }
}

/// GPU attention alone (flash or naive), timed from submission to the end of a 4-byte
/// readback: best of `reps` after one warm-up (which also builds the pipelines).
pub async fn gpu_row(ctx: &crate::backends::gpu::context::GpuContext, s: AttnShape, flash: bool, reps: usize) -> Result<CostRow, String> {
    use crate::backends::gpu::ops;
    let (q, k, v) = (ctx.upload("q", &fill(s.n * s.n_head * s.head_dim, 1)), ctx.upload("k", &fill(s.n * s.n_kv * s.head_dim, 2)), ctx.upload("v", &fill(s.n * s.n_kv * s.head_dim, 3)));
    let (o, lse) = (ctx.scratch("o", s.n * s.n_head * s.head_dim), ctx.scratch("lse", s.n_head * s.n));
    let s_bytes = if flash { 0 } else { ops::naive_scratch_bytes(ctx, s) };
    let scores = (!flash).then(|| ctx.device.create_buffer(&wgpu::BufferDescriptor { label: Some("S"), size: s_bytes as u64, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false }));
    let mut best = f64::INFINITY;
    for rep in 0..=reps.max(1) {
        let mut enc = ctx.encoder("cost of attention");
        match &scores {
            None => ops::flash_attention(ctx, &mut enc, s, &q, &k, &v, &o, &lse),
            Some(sc) => ops::naive_attention(ctx, &mut enc, s, &q, &k, &v, &o, &lse, sc),
        }
        let staged = ctx.stage_ranges(&mut enc, &[(&lse, 0, 1)]);
        let clock = Clock::start();
        ctx.queue.submit([enc.finish()]);
        ctx.read_staged_async(staged).await.map_err(|e| e.to_string())?;
        if rep > 0 {
            best = best.min(clock.ms());
        }
    }
    Ok(CostRow { n: s.n, kernel: if flash { "flash" } else { "naive" }.into(), ms: best, scratch_bytes: s.n_head * s.n * 4 + s_bytes })
}

/// Least-squares slope of log y against log x (the exponent of a power law), if two or more
/// points are positive.
pub fn log_log_slope(points: &[(f64, f64)]) -> Option<f64> {
    let p: Vec<(f64, f64)> = points.iter().filter(|(x, y)| *x > 0.0 && *y > 0.0).map(|(x, y)| (x.ln(), y.ln())).collect();
    if p.len() < 2 {
        return None;
    }
    let m = p.len() as f64;
    let (sx, sy) = (p.iter().map(|q| q.0).sum::<f64>() / m, p.iter().map(|q| q.1).sum::<f64>() / m);
    let sxx: f64 = p.iter().map(|q| (q.0 - sx).powi(2)).sum();
    (sxx > 0.0).then(|| p.iter().map(|q| (q.0 - sx) * (q.1 - sy)).sum::<f64>() / sxx)
}

/// The sizes the FLOP and KV-cache counts need (sent to the page with the model's summary).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Dims {
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// Per layer: the sliding window (`None`: global).
    pub layer_window: Vec<Option<usize>>,
}

impl Dims {
    pub fn of(c: &Config) -> Dims {
        Dims { n_layer: c.n_layer, n_embd: c.n_embd, n_ff: c.n_ff, n_head: c.n_head, n_head_kv: c.n_head_kv, head_dim: c.head_dim, layer_window: c.layer_window.clone() }
    }
}

/// FLOPs of one forward pass over n tokens: (linear layers, attention). Linear: Q, K, V, O
/// and the gated FFN, 2 FLOPs per weight per token; attention: q·k and p·v over the causal
/// triangle (n(n+1)/2 pairs per head, 2·head_dim FLOPs each, twice), all layers. The output
/// projection to the vocabulary (last position only) is left out.
pub fn forward_flops(c: &Dims, n: usize) -> (f64, f64) {
    let (d, hd) = (c.n_embd as f64, c.head_dim as f64);
    let per_layer = d * (c.n_head as f64 * hd) * 2.0 + d * (c.n_head_kv as f64 * hd) * 2.0 + 3.0 * d * c.n_ff as f64;
    let linear = 2.0 * n as f64 * per_layer * c.n_layer as f64;
    // Per layer, the causal (query, key) pairs; local layers see at most `w` keys.
    let pairs: f64 = (0..c.n_layer).map(|l| window_pairs(n, c.layer_window.get(l).copied().flatten())).sum::<f64>() / c.n_layer.max(1) as f64;
    let attention = 4.0 * hd * pairs * c.n_head as f64 * c.n_layer as f64;
    (linear, attention)
}

pub use crate::model::arch::causal_pairs as window_pairs;

/// The smallest n at which attention takes more FLOPs than the linear layers (up to 2²⁴
/// tokens). Attention's FLOPs per token never fall as n grows and the linear layers' are
/// constant, so the answer is found by bisection.
pub fn attention_dominates_at(c: &Dims) -> Option<usize> {
    let more = |n: usize| {
        let (lin, att) = forward_flops(c, n);
        att > lin
    };
    let (mut lo, mut hi) = (1usize, 1usize << 24);
    if !more(hi) {
        return None;
    }
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if more(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Some(lo)
}

/// An architecture's KV cache. Per token and layer a standard layer keeps K and V of every
/// KV head (2 × KV heads × head size values); an MLA layer (DeepSeek-V2/V3) keeps one
/// compressed latent plus the decoupled RoPE key, shared by all heads. A local
/// (sliding-window) layer keeps at most the last `window` tokens; a global layer keeps all.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KvArch {
    pub name: String,
    /// "MHA", "GQA", "MQA" or "MLA".
    pub kind: String,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    /// MLA: (kv_lora_rank, qk_rope_head_dim), the values cached per token and layer in place
    /// of K and V.
    pub mla: Option<(usize, usize)>,
    /// Per layer: the sliding window (`None`: global). Missing layers are global.
    pub layer_window: Vec<Option<usize>>,
    /// Where the figures come from (a published config.json, or the loaded file).
    pub source: String,
}

impl KvArch {
    /// Values one layer caches per token: 2 × KV heads × head size, or latent + RoPE key (MLA).
    pub fn values_per_token_layer(&self) -> usize {
        match self.mla {
            Some((latent, rope)) => latent + rope,
            None => 2 * self.n_kv_head * self.head_dim,
        }
    }
    /// Bytes one token adds while every layer keeps it (the context within every window), at
    /// `bytes_per_value` (2 for f16/bf16). Past a window, use [`KvArch::bytes_at`].
    pub fn bytes_per_token(&self, bytes_per_value: usize) -> usize {
        self.n_layer * self.values_per_token_layer() * bytes_per_value
    }
    /// The window of layer `l` (`None`: global).
    pub fn window(&self, l: usize) -> Option<usize> {
        self.layer_window.get(l).copied().flatten()
    }
    /// Layers with a sliding window, and their distinct windows (ascending).
    pub fn local_layers(&self) -> (usize, Vec<usize>) {
        let mut w: Vec<usize> = (0..self.n_layer).filter_map(|l| self.window(l)).collect();
        let count = w.len();
        w.sort_unstable();
        w.dedup();
        (count, w)
    }
    /// Bytes of the cache holding `n_tokens` tokens: a global layer keeps all n, a local layer
    /// min(n, window).
    pub fn bytes_at(&self, n_tokens: usize, bytes_per_value: usize) -> u64 {
        let kept: u64 = (0..self.n_layer).map(|l| n_tokens.min(self.window(l).unwrap_or(usize::MAX)) as u64).sum();
        kept * (self.values_per_token_layer() * bytes_per_value) as u64
    }
    /// What [`KvArch::bytes_at`] would say if every layer kept every token (windows ignored).
    pub fn bytes_at_without_windows(&self, n_tokens: usize, bytes_per_value: usize) -> u64 {
        n_tokens as u64 * self.bytes_per_token(bytes_per_value) as u64
    }
    /// The loaded model's cache, its per-layer windows included.
    pub fn from_dims(name: &str, c: &Dims) -> KvArch {
        KvArch {
            name: name.to_string(),
            kind: kind(c.n_head, c.n_head_kv).into(),
            n_layer: c.n_layer,
            n_head: c.n_head,
            n_kv_head: c.n_head_kv,
            head_dim: c.head_dim,
            mla: None,
            layer_window: c.layer_window.clone(),
            source: "the loaded file's hyper-parameters".into(),
        }
    }
}

fn kind(n_head: usize, n_kv: usize) -> &'static str {
    if n_kv == 1 {
        "MQA"
    } else if n_kv == n_head {
        "MHA"
    } else {
        "GQA"
    }
}

/// Published shapes, each with the config.json it comes from: Llama-2-7B (MHA) and the same
/// model converted to MQA (one K/V head: 32× smaller), Llama-3-8B (GQA), Falcon-7B (MQA),
/// Gemma 3 270M (MQA; 15 of 18 layers local, window 512) and DeepSeek-V2/V3 (MLA).
pub fn known_archs() -> Vec<KvArch> {
    let a = |name: &str, n_layer, n_head, n_kv_head, head_dim, source: &str| KvArch { name: name.into(), kind: kind(n_head, n_kv_head).into(), n_layer, n_head, n_kv_head, head_dim, mla: None, layer_window: Vec::new(), source: source.into() };
    // MLA: 128 query heads (and num_key_value_heads 128, rebuilt from the latent), head size
    // 128 (qk_nope_head_dim, v_head_dim); the cache holds 512 latent + 64 RoPE-key values.
    let mla = |name: &str, n_layer, source: &str| KvArch { kind: "MLA".into(), mla: Some((512, 64)), ..a(name, n_layer, 128, 128, 128, source) };
    let gemma_windows = (0..18).map(|l| (l % crate::model::gemma3::GLOBAL_EVERY != crate::model::gemma3::GLOBAL_EVERY - 1).then_some(512)).collect();
    vec![
        a("Llama-2-7B", 32, 32, 32, 128, "meta-llama/Llama-2-7b-hf config.json: 32 layers, 32 heads = 32 KV heads, hidden 4096"),
        a("Llama-2-7B converted to MQA", 32, 32, 1, 128, "meta-llama/Llama-2-7b-hf config.json with its 32 K/V heads merged into 1 (a conversion, not a released model)"),
        a("Llama-3-8B", 32, 32, 8, 128, "meta-llama/Meta-Llama-3-8B config.json: 32 layers, 32 heads, 8 KV heads, hidden 4096"),
        a("Falcon-7B", 32, 71, 1, 64, "tiiuae/falcon-7b config.json: 32 layers, 71 heads, multi_query, hidden 4544"),
        KvArch { layer_window: gemma_windows, ..a("Gemma-3-270M", 18, 4, 1, 256, "google/gemma-3-270m config.json: 18 layers, 4 heads, 1 KV head, head_dim 256, sliding_window 512, 5 of every 6 layers local") },
        mla("DeepSeek-V2", 60, "deepseek-ai/DeepSeek-V2 config.json: kv_lora_rank 512, qk_rope_head_dim 64, 60 layers"),
        mla("DeepSeek-V3", 61, "deepseek-ai/DeepSeek-V3 config.json: kv_lora_rank 512, qk_rope_head_dim 64, 61 layers"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slopes_of_power_laws() {
        let pts: Vec<(f64, f64)> = [128.0, 256.0, 512.0, 1024.0].iter().map(|&n: &f64| (n, 3e-4 * n * n)).collect();
        assert!((log_log_slope(&pts).unwrap() - 2.0).abs() < 1e-9);
        let lin: Vec<(f64, f64)> = [128.0, 256.0, 4096.0].iter().map(|&n: &f64| (n, 7.0 * n)).collect();
        assert!((log_log_slope(&lin).unwrap() - 1.0).abs() < 1e-9);
        assert_eq!(log_log_slope(&[(1.0, 1.0)]), None);
        assert_eq!(sweep_sizes(1000), vec![128, 256, 512]);
        assert_eq!(sweep_sizes(1), vec![128]);
    }

    #[test]
    fn window_pairs_closed_form_is_the_sum() {
        for (n, w) in [(1, None), (10, None), (10, Some(4)), (4, Some(10)), (513, Some(512)), (1000, Some(1))] {
            let sum: f64 = (0..n).map(|i| (i + 1).min(w.unwrap_or(usize::MAX)) as f64).sum();
            assert_eq!(window_pairs(n, w), sum, "n {n}, w {w:?}");
        }
        assert_eq!(window_pairs(1 << 24, None), (1u64 << 24) as f64 * ((1u64 << 24) as f64 + 1.0) / 2.0);
    }

    fn arch(name: &str) -> KvArch {
        known_archs().into_iter().find(|a| a.name == name).unwrap_or_else(|| panic!("no {name} in known_archs"))
    }

    #[test]
    fn kv_cache_of_known_architectures() {
        // Llama-2-7B in f16: 2 × 32 × 32 × 128 × 2 B = 512 KiB per token; 4096 tokens = 2 GiB.
        let (l2, l3, falcon) = (arch("Llama-2-7B"), arch("Llama-3-8B"), arch("Falcon-7B"));
        assert_eq!(l2.bytes_per_token(2), 512 * 1024);
        assert_eq!(l2.bytes_at(4096, 2), 2 << 30);
        assert_eq!((l2.kind.as_str(), l3.kind.as_str(), falcon.kind.as_str()), ("MHA", "GQA", "MQA"));
        assert_eq!(l3.bytes_per_token(2), 128 * 1024);
        assert_eq!(falcon.bytes_per_token(2), 2 * 32 * 64 * 2);
        assert!(known_archs().iter().all(|a| a.source.contains("config.json")), "every published row cites its config");
    }

    /// Gemma-3-270M's shape (google/gemma-3-270m config.json): 18 layers, 1 KV head of 256,
    /// every sixth layer global, the others a 512-token window.
    fn gemma3_270m_dims() -> Dims {
        Dims { n_layer: 18, n_embd: 640, n_ff: 2048, n_head: 4, n_head_kv: 1, head_dim: 256, layer_window: (0..18).map(|l| (l % 6 != 5).then_some(512)).collect() }
    }

    #[test]
    fn kv_cache_of_gemma3_local_layers_keeps_only_the_window() {
        let g = KvArch::from_dims("Gemma", &gemma3_270m_dims());
        assert_eq!(g.local_layers(), (15, vec![512]));
        // 3 global layers keep 32 768 tokens, 15 local ones 512; 2 × 1 × 256 values each, f16.
        let kv_values = 2 * 256;
        let at = g.bytes_at(32_768, 2);
        assert_eq!(at, (3 * 32_768 + 15 * 512) * kv_values * 2);
        assert_eq!(at, 108_527_616, "103.5 MiB");
        let ignoring = g.bytes_at_without_windows(32_768, 2);
        assert_eq!(ignoring, 18 * 32_768 * kv_values * 2);
        assert_eq!(ignoring, 603_979_776, "576 MiB");
        // 18 · 32768 / (3 · 32768 + 15 · 512) = 589 824 / 105 984 ≈ 5.565.
        let ratio = ignoring as f64 / at as f64;
        assert!((ratio - 5.565).abs() < 0.001, "ratio {ratio}");
        // The published row is the same cache.
        let known = arch("Gemma-3-270M");
        assert_eq!((known.bytes_at(32_768, 2), known.bytes_per_token(2), known.kind.as_str()), (at, g.bytes_per_token(2), "MQA"));
    }

    #[test]
    fn kv_cache_below_the_window_keeps_every_token() {
        let g = KvArch::from_dims("Gemma", &gemma3_270m_dims());
        for n in [0, 1, 100, 511, 512] {
            assert_eq!(g.bytes_at(n, 2), g.bytes_at_without_windows(n, 2), "n {n}");
            assert_eq!(g.bytes_at(n, 2), (n * g.bytes_per_token(2)) as u64, "n {n}");
        }
        // One token past the window, only the 3 global layers grow.
        assert_eq!(g.bytes_at(513, 2) - g.bytes_at(512, 2), (3 * 2 * 256 * 2) as u64);
        assert!(g.bytes_at(513, 2) < g.bytes_at_without_windows(513, 2));
        // Without windows, bytes_at is bytes_per_token × n.
        let l2 = arch("Llama-2-7B");
        assert_eq!(l2.bytes_at(10_000_000, 4), l2.bytes_at_without_windows(10_000_000, 4));
    }

    #[test]
    fn mqa_llama2_is_32_times_smaller_than_mha_llama2() {
        let (mha, mqa) = (arch("Llama-2-7B"), arch("Llama-2-7B converted to MQA"));
        assert_eq!((mha.kind.as_str(), mqa.kind.as_str()), ("MHA", "MQA"));
        assert_eq!((mqa.n_layer, mqa.n_head, mqa.n_kv_head, mqa.head_dim), (32, 32, 1, 128));
        assert_eq!(mha.bytes_per_token(2), 32 * mqa.bytes_per_token(2));
        assert_eq!(mqa.bytes_per_token(2), 16 * 1024);
        assert_eq!(mha.bytes_at(32_768, 2), 32 * mqa.bytes_at(32_768, 2));
    }

    #[test]
    fn mla_caches_one_latent_and_a_rope_key_per_token_and_layer() {
        for (name, layers) in [("DeepSeek-V2", 60), ("DeepSeek-V3", 61)] {
            let d = arch(name);
            assert_eq!((d.kind.as_str(), d.n_layer, d.mla), ("MLA", layers, Some((512, 64))));
            assert_eq!(d.values_per_token_layer(), 512 + 64);
            assert_eq!(d.bytes_per_token(1), (512 + 64) * layers, "{name}: values per token");
            assert_eq!(d.bytes_at(4096, 2), 4096 * ((512 + 64) * layers * 2) as u64);
        }
        // DeepSeek-V3 in f16: 70 272 B per token, about 7.5× less than Llama-2-7B's 512 KiB.
        assert_eq!(arch("DeepSeek-V3").bytes_per_token(2), 70_272);
    }

    #[test]
    fn cpu_row_times_real_work_and_counts_its_scratch() {
        let s = AttnShape { n: 128, past: 0, n_head: 3, n_kv: 1, head_dim: 16, window: None, ..Default::default() };
        let r = cpu_row(s, 1);
        assert_eq!((r.n, r.kernel.as_str()), (128, "cpu"));
        assert!(r.ms.is_finite() && r.ms >= 0.0);
        assert!(r.scratch_bytes >= 3 * 128 * 4 + 64 * 128 * 4);
    }
}
