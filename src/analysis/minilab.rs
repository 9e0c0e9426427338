//! The from-scratch mini-lab: attention on a toy vocabulary of 10 words with d = 8, every
//! step a small matrix — X, Q, K, V, QKᵀ, ÷√d, mask, softmax, ·V — for one or two heads.
//! Embeddings and W_Q, W_K, W_V come from a seeded generator, so a seed names a lab.

/// The toy vocabulary.
pub const VOCAB: [&str; 10] = ["the", "cat", "dog", "sat", "on", "mat", "ran", "to", "a", "home"];
/// Model width.
pub const D: usize = 8;

pub type Mat = Vec<Vec<f32>>;

/// A lab's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Lab {
    pub seed: u64,
    /// (10, D): one row per vocabulary word.
    pub embed: Mat,
    /// (D, D) each: `q = x · W_Q` (x a row vector).
    pub wq: Mat,
    pub wk: Mat,
    pub wv: Mat,
}

/// Values in [-1, 1) from a 64-bit xorshift seeded by `seed` (never zero).
fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn mat(v: &[f32], rows: usize, cols: usize) -> Mat {
    (0..rows).map(|r| v[r * cols..(r + 1) * cols].to_vec()).collect()
}

impl Lab {
    pub fn new(seed: u64) -> Lab {
        let v = values(seed, 10 * D + 3 * D * D);
        let (e, w) = v.split_at(10 * D);
        Lab { seed, embed: mat(e, 10, D), wq: mat(&w[..D * D], D, D), wk: mat(&w[D * D..2 * D * D], D, D), wv: mat(&w[2 * D * D..], D, D) }
    }
}

/// One head's steps, for a sequence of n tokens (head width dh = D / heads).
#[derive(Debug, Clone, PartialEq)]
pub struct HeadSteps {
    /// The dimensions of Q, K, V this head uses.
    pub dims: std::ops::Range<usize>,
    pub q: Mat,      // (n, dh)
    pub k: Mat,      // (n, dh)
    pub v: Mat,      // (n, dh)
    pub qk: Mat,     // (n, n): q_i · k_j
    pub scaled: Mat, // (n, n): ÷ √dh
    /// (n, n): the scaled scores with the future set to −∞ (when the mask is on).
    pub masked: Mat,
    pub probs: Mat, // (n, n): row softmax
    pub out: Mat,   // (n, dh): probs · V
}

/// All steps: X (n, D), Q/K/V (n, D) and each head's part.
#[derive(Debug, Clone, PartialEq)]
pub struct Steps {
    pub x: Mat,
    pub q: Mat,
    pub k: Mat,
    pub v: Mat,
    pub heads: Vec<HeadSteps>,
}

fn matmul(a: &Mat, b: &Mat) -> Mat {
    a.iter().map(|row| (0..b[0].len()).map(|j| row.iter().zip(b).map(|(x, br)| x * br[j]).sum()).collect()).collect()
}

/// How the future is hidden from a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mask {
    /// Future scores set to −∞: they get exactly 0 weight.
    #[default]
    Causal,
    /// A common bug: future scores set to 0 instead of −∞. Each future key then keeps the
    /// weight e⁰ / Σ — the future leaks.
    Zero,
    /// No mask: every key, future ones too.
    None,
}

/// Runs the lab on `tokens` (vocabulary indices) with `heads` (1 or 2) heads.
pub fn run(lab: &Lab, tokens: &[usize], mask: Mask, heads: usize) -> Steps {
    let heads = heads.clamp(1, D);
    let x: Mat = tokens.iter().map(|&t| lab.embed[t.min(9)].clone()).collect();
    let (q, k, v) = (matmul(&x, &lab.wq), matmul(&x, &lab.wk), matmul(&x, &lab.wv));
    let dh = D / heads;
    let n = tokens.len();
    let heads = (0..heads)
        .map(|h| {
            let dims = h * dh..(h + 1) * dh;
            let part = |m: &Mat| -> Mat { m.iter().map(|r| r[dims.clone()].to_vec()).collect() };
            let (qh, kh, vh) = (part(&q), part(&k), part(&v));
            let qk: Mat = qh.iter().map(|qi| kh.iter().map(|kj| qi.iter().zip(kj).map(|(a, b)| a * b).sum()).collect()).collect();
            let scaled: Mat = qk.iter().map(|r| r.iter().map(|s| s / (dh as f32).sqrt()).collect()).collect();
            let masked: Mat = scaled
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    r.iter()
                        .enumerate()
                        .map(|(j, &s)| match mask {
                            Mask::Causal if j > i => f32::NEG_INFINITY,
                            Mask::Zero if j > i => 0.0,
                            _ => s,
                        })
                        .collect()
                })
                .collect();
            let probs: Mat = masked
                .iter()
                .map(|r| {
                    let m = r.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                    let e: Vec<f32> = r.iter().map(|s| (s - m).exp()).collect();
                    let z: f32 = e.iter().sum();
                    e.iter().map(|x| x / z).collect()
                })
                .collect();
            let out: Mat = (0..n).map(|i| (0..dh).map(|c| (0..n).map(|j| probs[i][j] * vh[j][c]).sum()).collect()).collect();
            HeadSteps { dims, q: qh, k: kh, v: vh, qk, scaled, masked, probs, out }
        })
        .collect();
    Steps { x, q, k, v, heads }
}

/// Why attention divides by √d, measured: `trials` queries, each against `n` keys, every
/// component drawn independently with mean 0 and variance 1 (Box–Muller over SplitMix64).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ScaleStudy {
    pub d: usize,
    pub n: usize,
    /// Standard deviation of the raw scores q·k (theory: √d).
    pub spread: f64,
    /// Standard deviation of q·k / √d (theory: 1, whatever d).
    pub spread_scaled: f64,
    /// Mean over queries of the largest softmax weight without and with ÷√d (1/n: even;
    /// 1: everything on one key).
    pub top_weight: f64,
    pub top_weight_scaled: f64,
    /// Mean over queries of the size (Frobenius norm) of the softmax's Jacobian
    /// diag(p) − p·pᵀ without and with ÷√d: how much a change in the scores still moves the
    /// weights — it vanishes as the softmax saturates.
    pub gradient: f64,
    pub gradient_scaled: f64,
}

/// The ÷√d study at one `d` and `n` (see [`ScaleStudy`]).
pub fn scale_study(d: usize, n: usize, trials: usize, seed: u64) -> ScaleStudy {
    let (d, n, trials) = (d.max(1), n.max(2), trials.max(1));
    let mut rng = crate::analysis::position::Rng::new(seed);
    let mut normal = move || {
        let (u1, u2) = (rng.uniform().max(1e-300), rng.uniform());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let (mut sum2, mut count) = (0.0, 0usize);
    let (mut top, mut top_s, mut grad, mut grad_s) = (0.0, 0.0, 0.0, 0.0);
    let mut scores = vec![0.0; n];
    for _ in 0..trials {
        let q: Vec<f64> = (0..d).map(|_| normal()).collect();
        for s in scores.iter_mut() {
            *s = q.iter().map(|qc| qc * normal()).sum();
            sum2 += *s * *s;
            count += 1;
        }
        for (scale, top, grad) in [(1.0, &mut top, &mut grad), (1.0 / (d as f64).sqrt(), &mut top_s, &mut grad_s)] {
            let p = softmax(&scores.iter().map(|s| s * scale).collect::<Vec<_>>());
            *top += p.iter().cloned().fold(0.0, f64::max);
            *grad += jacobian_norm(&p);
        }
    }
    // Scores have mean 0 by construction: the spread is the root mean square.
    let spread = (sum2 / count as f64).sqrt();
    let t = trials as f64;
    ScaleStudy { d, n, spread, spread_scaled: spread / (d as f64).sqrt(), top_weight: top / t, top_weight_scaled: top_s / t, gradient: grad / t, gradient_scaled: grad_s / t }
}

fn softmax(s: &[f64]) -> Vec<f64> {
    let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|x| x / z).collect()
}

/// ‖diag(p) − p·pᵀ‖_F.
fn jacobian_norm(p: &[f64]) -> f64 {
    let sq: f64 = p.iter().map(|x| x * x).sum();
    // Σ_ij (δ_ij p_i − p_i p_j)² = Σ_i p_i² − 2 Σ_i p_i³ + (Σ_i p_i²)².
    let cube: f64 = p.iter().map(|x| x * x * x).sum();
    (sq - 2.0 * cube + sq * sq).max(0.0).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_of_q_dot_k_grows_as_root_d_not_with_n() {
        for d in [4, 16, 64, 256, 512] {
            let s = scale_study(d, 32, 400, 3);
            // 12 800 scores: the root mean square is within ~1.3% of √d (one standard error).
            let rel = s.spread / (d as f64).sqrt() - 1.0;
            assert!(rel.abs() < 0.05, "d {d}: spread {} vs √d {}", s.spread, (d as f64).sqrt());
            assert!((s.spread_scaled - 1.0).abs() < 0.05);
        }
        // The same d with 4 or 256 keys per query: the same spread (it is a property of d).
        let (few, many) = (scale_study(128, 4, 3000, 5), scale_study(128, 256, 50, 6));
        assert!((few.spread / many.spread - 1.0).abs() < 0.05, "{} vs {}", few.spread, many.spread);
        // Without the scale a large d saturates the softmax onto one key and its gradient
        // vanishes; with it the weights stay spread and the gradient does not shrink with d.
        let (small, large) = (scale_study(4, 32, 300, 7), scale_study(512, 32, 300, 8));
        assert!(large.top_weight > 0.9 && large.top_weight > small.top_weight, "{large:?}");
        assert!(large.gradient < 0.5 * large.gradient_scaled && large.gradient < 0.5 * small.gradient, "{small:?} {large:?}");
        assert!((large.top_weight_scaled - small.top_weight_scaled).abs() < 0.1, "{small:?} {large:?}");
    }

    #[test]
    fn the_jacobian_norm_matches_the_matrix() {
        let p = [0.5, 0.3, 0.2];
        let direct: f64 = (0..3).flat_map(|i| (0..3).map(move |j| (i, j))).map(|(i, j)| {
            let v = if i == j { p[i] } else { 0.0 } - p[i] * p[j];
            v * v
        }).sum::<f64>().sqrt();
        assert!((jacobian_norm(&p) - direct).abs() < 1e-12);
        assert!(jacobian_norm(&[1.0, 0.0, 0.0]) < 1e-12, "a one-hot softmax has no gradient");
    }

    #[test]
    fn a_mask_of_zeros_leaks_exactly_e0_weights_onto_the_future() {
        let lab = Lab::new(4);
        let s = run(&lab, &[0, 1, 3, 4, 5], Mask::Zero, 1);
        let h = &s.heads[0];
        for i in 0..4 {
            // Softmax over the row as written: the past's scaled scores, then zeros.
            let z: f64 = h.masked[i].iter().map(|&x| (x as f64).exp()).sum();
            for j in i + 1..5 {
                assert_eq!(h.masked[i][j], 0.0);
                assert!((h.probs[i][j] as f64 - 1.0 / z).abs() < 1e-6, "row {i} key {j}: {} vs e⁰/Σ = {}", h.probs[i][j], 1.0 / z);
                assert!(h.probs[i][j] > 0.01, "the future gets real weight");
            }
        }
        let causal = run(&lab, &[0, 1, 3, 4, 5], Mask::Causal, 1);
        assert!(causal.heads[0].probs[0][1] == 0.0 && h.probs[0][1] > 0.0);
    }

    #[test]
    fn a_seed_names_a_lab_and_the_steps_equal_a_hand_computation() {
        let lab = Lab::new(7);
        assert_eq!(lab, Lab::new(7));
        assert_ne!(lab.wq, Lab::new(8).wq);
        let tokens = [0, 1, 3, 4, 5]; // the cat sat on mat
        let s = run(&lab, &tokens, Mask::Causal, 1);
        // By hand, element by element, in f64.
        let x = |i: usize, c: usize| lab.embed[tokens[i]][c] as f64;
        let proj = |w: &Mat, i: usize, c: usize| (0..D).map(|r| x(i, r) * w[r][c] as f64).sum::<f64>();
        for i in 0..5 {
            let row: Vec<f64> = (0..=i).map(|j| (0..D).map(|c| proj(&lab.wq, i, c) * proj(&lab.wk, j, c)).sum::<f64>() / (D as f64).sqrt()).collect();
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = row.iter().map(|s| (s - m).exp()).sum();
            for j in 0..5 {
                let p = if j <= i { (row[j] - m).exp() / z } else { 0.0 };
                assert!((s.heads[0].probs[i][j] as f64 - p).abs() < 1e-5, "p[{i}][{j}]");
            }
            for c in 0..D {
                let o: f64 = (0..=i).map(|j| (row[j] - m).exp() / z * proj(&lab.wv, j, c)).sum();
                assert!((s.heads[0].out[i][c] as f64 - o).abs() < 1e-5, "out[{i}][{c}]");
            }
        }
    }

    #[test]
    fn the_mask_zeroes_the_upper_triangle_and_two_heads_split_the_dims() {
        let lab = Lab::new(1);
        let s = run(&lab, &[2, 6, 7, 8, 9], Mask::Causal, 2);
        assert_eq!(s.heads.len(), 2);
        assert_eq!((s.heads[0].dims.clone(), s.heads[1].dims.clone()), (0..4, 4..8));
        for h in &s.heads {
            assert_eq!(h.q[0].len(), 4);
            for i in 0..5 {
                for j in i + 1..5 {
                    assert_eq!(h.probs[i][j], 0.0);
                    assert_eq!(h.masked[i][j], f32::NEG_INFINITY);
                }
                assert!((h.probs[i].iter().sum::<f32>() - 1.0).abs() < 1e-6);
            }
            // Head h's Q is the slice h·4.. of the full Q.
            assert_eq!(h.q[3], s.q[3][h.dims.clone()].to_vec());
        }
        let open = run(&lab, &[2, 6, 7, 8, 9], Mask::None, 1);
        assert!(open.heads[0].probs[0][4] > 0.0, "without the mask the first token sees the last");
    }
}
