//! A per-kernel profile of one GPU forward pass (`attnlab bench gpu`): every dispatch's pass
//! timed with GPU timestamps, grouped by kernel (matrix multiplications by weight kind, all
//! layers together), with achieved GFLOP/s and GB/s where the dispatch says its work.

use super::context::Timed;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProfileRow {
    pub kernel: String,
    pub calls: usize,
    pub total_ms: f64,
    /// Of the profiled GPU time.
    pub share: f64,
    pub gflop_per_s: Option<f64>,
    pub gb_per_s: Option<f64>,
}

/// "blk.12.attn_q.weight" → "matmul attn_q"; other labels as they are.
pub fn kernel_of(label: &str) -> String {
    let rest = match label.strip_prefix("blk.") {
        Some(r) => r.split_once('.').map(|(_, t)| t).unwrap_or(r),
        None => label,
    };
    match rest.strip_suffix(".weight") {
        Some(w) => format!("matmul {w}"),
        None => rest.to_string(),
    }
}

/// Groups timed dispatches by kernel, largest total first.
pub fn summarise(timed: &[Timed]) -> Vec<ProfileRow> {
    let total: f64 = timed.iter().map(|t| t.ms).sum();
    let mut rows: Vec<(String, usize, f64, f64, f64)> = vec![];
    for t in timed {
        let k = kernel_of(&t.label);
        match rows.iter_mut().find(|r| r.0 == k) {
            Some(r) => {
                r.1 += 1;
                r.2 += t.ms;
                r.3 += t.work.flops;
                r.4 += t.work.bytes;
            }
            None => rows.push((k, 1, t.ms, t.work.flops, t.work.bytes)),
        }
    }
    rows.sort_by(|a, b| b.2.total_cmp(&a.2));
    let rate = |x: f64, ms: f64| (x > 0.0 && ms > 0.0).then(|| x / (ms * 1e-3) / 1e9);
    rows.into_iter().map(|(kernel, calls, ms, flops, bytes)| ProfileRow { kernel, calls, total_ms: ms, share: if total > 0.0 { ms / total } else { 0.0 }, gflop_per_s: rate(flops, ms), gb_per_s: rate(bytes, ms) }).collect()
}

#[cfg(test)]
mod tests {
    use super::super::context::{Timed, Work};
    use super::*;

    #[test]
    fn profile_groups_by_kernel_and_computes_rates() {
        assert_eq!(kernel_of("blk.12.attn_q.weight"), "matmul attn_q");
        assert_eq!(kernel_of("output.weight"), "matmul output");
        assert_eq!(kernel_of("flash attention"), "flash attention");
        let t = |label: &str, ms: f64, flops: f64| Timed { label: label.into(), work: Work { flops, bytes: flops / 2.0 }, ms };
        let rows = summarise(&[t("blk.0.ffn_up.weight", 2.0, 4e9), t("blk.1.ffn_up.weight", 2.0, 4e9), t("rmsnorm", 1.0, 0.0)]);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].kernel.as_str(), rows[0].calls), ("matmul ffn_up", 2));
        assert!((rows[0].total_ms - 4.0).abs() < 1e-12 && (rows[0].share - 0.8).abs() < 1e-12);
        assert!((rows[0].gflop_per_s.unwrap() - 2000.0).abs() < 1e-9 && (rows[0].gb_per_s.unwrap() - 1000.0).abs() < 1e-9);
        assert_eq!((rows[1].gflop_per_s, rows[1].gb_per_s), (None, None));
    }
}
