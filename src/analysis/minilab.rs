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

/// Runs the lab on `tokens` (vocabulary indices) with `heads` (1 or 2) heads.
pub fn run(lab: &Lab, tokens: &[usize], causal: bool, heads: usize) -> Steps {
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
            let masked: Mat = scaled.iter().enumerate().map(|(i, r)| r.iter().enumerate().map(|(j, &s)| if causal && j > i { f32::NEG_INFINITY } else { s }).collect()).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_names_a_lab_and_the_steps_equal_a_hand_computation() {
        let lab = Lab::new(7);
        assert_eq!(lab, Lab::new(7));
        assert_ne!(lab.wq, Lab::new(8).wq);
        let tokens = [0, 1, 3, 4, 5]; // the cat sat on mat
        let s = run(&lab, &tokens, true, 1);
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
        let s = run(&lab, &[2, 6, 7, 8, 9], true, 2);
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
        let open = run(&lab, &[2, 6, 7, 8, 9], false, 1);
        assert!(open.heads[0].probs[0][4] > 0.0, "without the mask the first token sees the last");
    }
}
