//! The cost of attention, measured and counted: attention alone timed against n on the CPU
//! and on the GPU's two kernels (flash: O(n) memory; naive: the n × n score matrix), log-log
//! slopes fitted, the whole forward pass split into linear layers vs attention by FLOPs, and
//! the KV cache of real architectures against context length.

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
    AttnShape { n, past: 0, n_head: c.n_head, n_kv: c.n_head_kv, head_dim: c.head_dim, window: None }
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

/// An architecture's KV cache: layers × KV heads × head size × 2 (K and V) values per token.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KvArch {
    pub name: String,
    pub kind: String,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
}

impl KvArch {
    /// Bytes per token at `bytes_per_value` (2 for f16/bf16).
    pub fn bytes_per_token(&self, bytes_per_value: usize) -> usize {
        2 * self.n_layer * self.n_kv_head * self.head_dim * bytes_per_value
    }
    pub fn from_dims(name: &str, c: &Dims) -> KvArch {
        KvArch { name: name.to_string(), kind: kind(c.n_head, c.n_head_kv).into(), n_layer: c.n_layer, n_head: c.n_head, n_kv_head: c.n_head_kv, head_dim: c.head_dim }
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

/// Published shapes (their config.json): Llama-2-7B (MHA), Llama-3-8B (GQA), Falcon-7B (MQA).
pub fn known_archs() -> Vec<KvArch> {
    let a = |name: &str, n_layer, n_head, n_kv_head, head_dim| KvArch { name: name.into(), kind: kind(n_head, n_kv_head).into(), n_layer, n_head, n_kv_head, head_dim };
    vec![a("Llama-2-7B", 32, 32, 32, 128), a("Llama-3-8B", 32, 32, 8, 128), a("Falcon-7B", 32, 71, 1, 64)]
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

    #[test]
    fn kv_cache_of_known_architectures() {
        // Llama-2-7B in f16: 2 × 32 × 32 × 128 × 2 B = 512 KiB per token; 4096 tokens = 2 GiB.
        let k = known_archs();
        assert_eq!(k[0].bytes_per_token(2), 512 * 1024);
        assert_eq!(k[0].bytes_per_token(2) * 4096, 2 << 30);
        assert_eq!((k[0].kind.as_str(), k[1].kind.as_str(), k[2].kind.as_str()), ("MHA", "GQA", "MQA"));
        assert_eq!(k[1].bytes_per_token(2), 128 * 1024);
        assert_eq!(k[2].bytes_per_token(2), 2 * 32 * 64 * 2);
    }

    #[test]
    fn cpu_row_times_real_work_and_counts_its_scratch() {
        let s = AttnShape { n: 128, past: 0, n_head: 3, n_kv: 1, head_dim: 16, window: None };
        let r = cpu_row(s, 1);
        assert_eq!((r.n, r.kernel.as_str()), (128, "cpu"));
        assert!(r.ms.is_finite() && r.ms >= 0.0);
        assert!(r.scratch_bytes >= 3 * 128 * 4 + 64 * 128 * 4);
    }
}
