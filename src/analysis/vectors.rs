//! The vectors themselves. A word through the layers: one token picked in each of two texts,
//! the cosine similarity of their residual-stream vectors after the embedding and after every
//! block (the "bare-bone token" that context makes richer: "bank" by a river and at a bank
//! start as the same vector and drift apart), and the tokens each vector is nearest to through
//! the logit lens. Queries and keys as points: one head's queries and keys of every token,
//! projected together onto their two principal axes (PCA, computed here), with each query's
//! strongest links.

use crate::analysis::lens::{lens_of, lens_options};
use crate::backends::{Backend, EngineError, ForwardOutput};
use crate::model::capture::AttentionTrace;
use crate::model::Model;

/// Nearest tokens kept per vector and layer.
pub const NEAREST: usize = 5;

/// cos(a, b) in f64 (0 when either is all zeros).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += x as f64 * y as f64;
        aa += x as f64 * x as f64;
        bb += y as f64 * y as f64;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        (ab / (aa.sqrt() * bb.sqrt())) as f32
    }
}

/// The position of `word` among `tokens` (each token's text, spaces and case aside): the
/// last token that is the word, else the last that contains it.
pub fn find_word(tokens: &[String], word: &str) -> Option<usize> {
    let clean = |t: &str| t.replace(['Ġ', '▁'], " ").trim().to_lowercase();
    let w = clean(word);
    if w.is_empty() {
        return None;
    }
    let texts: Vec<String> = tokens.iter().map(|t| clean(t)).collect();
    texts.iter().rposition(|t| *t == w).or_else(|| texts.iter().rposition(|t| !t.is_empty() && (t.contains(&w) || w.contains(t.as_str()) && t.len() >= 3)))
}

/// One text's side: its tokens, the position picked, that position's vector norm per layer and
/// its nearest tokens through the lens per block.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WordSide {
    pub ids: Vec<u32>,
    pub tokens: Vec<String>,
    pub at: usize,
    /// ‖x‖ after the embedding, then after each block (`n_layer + 1`).
    pub norms: Vec<f32>,
    /// Per block: the [`NEAREST`] likeliest next tokens through the final norm and unembedding
    /// (id, text, probability).
    pub nearest: Vec<Vec<(u32, String, f32)>>,
}

/// `attnlab vectors --json`: a word through the layers of two texts.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WordVectors {
    pub a: WordSide,
    pub b: WordSide,
    /// cos of the two vectors after the embedding, then after each block (`n_layer + 1`).
    pub cosine: Vec<f32>,
}

/// The pass that keeps the residual stream at `at`.
pub fn side_options(at: usize) -> crate::backends::ForwardOptions {
    lens_options(&[at])
}

/// One side from its pass (kept at `at` only, [`side_options`]).
pub fn side_of(model: &Model, ids: &[u32], at: usize, out: &ForwardOutput) -> WordSide {
    let lens = lens_of(model, ids, &out.lens, &[at]);
    let tok = &model.tokenizer;
    WordSide {
        ids: ids.to_vec(),
        tokens: ids.iter().map(|&id| tok.token_text(id)).collect(),
        at,
        norms: out.residual.iter().map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt()).collect(),
        nearest: lens.layers.iter().map(|l| l.top_ids[0].iter().zip(&l.top_probs[0]).map(|(&id, &p)| (id, tok.token_text(id), p)).take(NEAREST).collect()).collect(),
    }
}

/// The two sides compared, layer by layer (both passes kept at one position each).
pub fn compare_sides(model: &Model, (a_ids, a_at, a_out): (&[u32], usize, &ForwardOutput), (b_ids, b_at, b_out): (&[u32], usize, &ForwardOutput)) -> WordVectors {
    let cosine = a_out.residual.iter().zip(&b_out.residual).map(|(x, y)| cosine(x, y)).collect();
    WordVectors { a: side_of(model, a_ids, a_at, a_out), b: side_of(model, b_ids, b_at, b_out), cosine }
}

/// Checks a pick: a position inside its text.
pub fn check_at(ids: &[u32], at: usize, which: &str) -> Result<(), EngineError> {
    if ids.is_empty() {
        return Err(EngineError::EmptyInput);
    }
    if at >= ids.len() {
        return Err(EngineError::Unsupported(format!("the {which} text has {} tokens: pick one of 0 to {}", ids.len(), ids.len() - 1)));
    }
    Ok(())
}

/// A word through the layers: token `a_at` of `a_ids` against token `b_at` of `b_ids`.
pub fn word_vectors(b: &impl Backend, model: &Model, (a_ids, a_at): (&[u32], usize), (b_ids, b_at): (&[u32], usize)) -> Result<WordVectors, EngineError> {
    check_at(a_ids, a_at, "first")?;
    check_at(b_ids, b_at, "second")?;
    let a_out = b.forward(model, a_ids, &side_options(a_at))?;
    let b_out = b.forward(model, b_ids, &side_options(b_at))?;
    Ok(compare_sides(model, (a_ids, a_at, &a_out), (b_ids, b_at, &b_out)))
}

/// Points projected onto their first two principal axes: (coordinates, the share of the
/// variance each axis holds). The axes come from the covariance by power iteration with
/// deflation (f64); each axis's sign is fixed so that its largest component is positive.
pub fn pca2(points: &[Vec<f32>]) -> (Vec<[f32; 2]>, [f32; 2]) {
    let n = points.len();
    let d = points.first().map_or(0, |p| p.len());
    if n == 0 || d == 0 {
        return (vec![[0.0; 2]; n], [0.0; 2]);
    }
    let mean: Vec<f64> = (0..d).map(|j| points.iter().map(|p| p[j] as f64).sum::<f64>() / n as f64).collect();
    let centred: Vec<Vec<f64>> = points.iter().map(|p| p.iter().zip(&mean).map(|(&x, m)| x as f64 - m).collect()).collect();
    let mut cov = vec![0.0f64; d * d];
    for p in &centred {
        for i in 0..d {
            for j in i..d {
                cov[i * d + j] += p[i] * p[j];
            }
        }
    }
    for i in 0..d {
        for j in 0..i {
            cov[i * d + j] = cov[j * d + i];
        }
    }
    let total: f64 = (0..d).map(|i| cov[i * d + i]).sum();
    let mut axes: Vec<Vec<f64>> = vec![];
    let mut shares = [0.0f32; 2];
    for (k, share) in shares.iter_mut().enumerate() {
        // Power iteration from a start not orthogonal to any axis in practice.
        let mut v: Vec<f64> = (0..d).map(|i| 1.0 + (i as f64 * 0.618 + k as f64).sin() * 0.5).collect();
        let mut lambda = 0.0;
        for _ in 0..500 {
            let mut w: Vec<f64> = (0..d).map(|i| (0..d).map(|j| cov[i * d + j] * v[j]).sum()).collect();
            for a in &axes {
                let dot: f64 = w.iter().zip(a).map(|(x, y)| x * y).sum();
                w.iter_mut().zip(a).for_each(|(x, y)| *x -= dot * y);
            }
            let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm < 1e-300 {
                break;
            }
            let next: Vec<f64> = w.iter().map(|x| x / norm).collect();
            let moved = next.iter().zip(&v).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            v = next;
            lambda = norm;
            if moved < 1e-12 {
                break;
            }
        }
        let big = v.iter().cloned().fold(0.0f64, |m, x| if x.abs() > m.abs() { x } else { m });
        if big < 0.0 {
            v.iter_mut().for_each(|x| *x = -*x);
        }
        *share = if total > 0.0 { (lambda / total) as f32 } else { 0.0 };
        axes.push(v);
    }
    let coords = centred.iter().map(|p| [0, 1].map(|k| axes[k].iter().zip(p).map(|(a, x)| a * x).sum::<f64>() as f32)).collect();
    (coords, shares)
}

/// One head's queries and keys as points (`attnlab qk --json`, the page's "Queries and keys").
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QkPoints {
    pub layer: usize,
    pub head: usize,
    pub tokens: Vec<String>,
    /// Each token's query and key (after RoPE, as the scores use them) on the two axes.
    pub queries: Vec<[f32; 2]>,
    pub keys: Vec<[f32; 2]>,
    /// Share of the variance of all 2n points on each axis.
    pub explained: [f32; 2],
    /// The strongest links: (query, key, attention weight), each query's two largest keys.
    pub links: Vec<(usize, usize, f32)>,
}

/// Queries and keys of head `(layer, head)` of a captured pass, projected together.
pub fn qk_points(t: &AttentionTrace, tokens: &[String], layer: usize, head: usize) -> Result<QkPoints, crate::model::capture::AnalysisError> {
    use crate::model::capture::AnalysisError;
    let (hd, q_row, kv_row) = (t.head_dim, t.n_head * t.head_dim, t.n_head_kv * t.head_dim);
    if head >= t.n_head {
        return Err(AnalysisError::BadHead(head, t.n_head));
    }
    let kv = head / (t.n_head / t.n_head_kv);
    let lt = t.layers.get(layer).ok_or(AnalysisError::BadLayer(layer, t.n_layer))?;
    let n = t.n_tokens;
    let q: Vec<Vec<f32>> = (0..n).map(|i| lt.q[i * q_row + head * hd..i * q_row + (head + 1) * hd].to_vec()).collect();
    let k: Vec<Vec<f32>> = (0..n).map(|i| lt.k[i * kv_row + kv * hd..i * kv_row + (kv + 1) * hd].to_vec()).collect();
    let (coords, explained) = pca2(&q.iter().chain(&k).cloned().collect::<Vec<_>>());
    let mut links = vec![];
    for i in 0..n {
        let row = t.row(layer, head, i)?;
        let mut order: Vec<usize> = (0..row.len()).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        links.extend(order.into_iter().take(2).filter(|&j| row[j] > 0.0).map(|j| (i, j, row[j])));
    }
    Ok(QkPoints { layer, head, tokens: tokens.to_vec(), queries: coords[..n].to_vec(), keys: coords[n..].to_vec(), explained, links })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_is_one_for_a_vector_and_its_multiple_and_zero_across() {
        assert!((cosine(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]) - 1.0).abs() < 1e-7);
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 5.0]), 0.0);
        assert!((cosine(&[1.0, 0.0], &[-1.0, 0.0]) + 1.0).abs() < 1e-7);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }

    #[test]
    fn a_word_is_found_whole_then_inside_a_token() {
        let toks: Vec<String> = ["She", "Ġsat", "Ġon", "Ġthe", "Ġbank", "Ġof", "Ġthe", "Ġbanks"].map(String::from).to_vec();
        assert_eq!(find_word(&toks, "bank"), Some(4));
        assert_eq!(find_word(&toks, " The"), Some(6));
        assert_eq!(find_word(&toks, "ban"), Some(7), "inside a token, the last one");
        assert_eq!(find_word(&toks, "river"), None);
        assert_eq!(find_word(&toks, "  "), None);
    }

    /// Three points by hand: (0,0,0), (2,0,0), (0,1,0) — mean (2/3, 1/3, 0); covariance (not
    /// divided) [[8/3, −2/3, 0], [−2/3, 2/3, 0], [0, 0, 0]]: eigenvalues (10 ± √52)/6 =
    /// 2.8685, 0.4648 (shares 0.8606, 0.1394); the first axis (0.9571, −0.2898, 0).
    #[test]
    fn pca_of_three_points_matches_the_hand_computation() {
        let pts = vec![vec![0.0, 0.0, 0.0], vec![2.0, 0.0, 0.0], vec![0.0, 1.0, 0.0]];
        let (c, share) = pca2(&pts);
        let l1 = (10.0 + 52f64.sqrt()) / 6.0;
        let total = 8.0 / 3.0 + 2.0 / 3.0;
        assert!((share[0] as f64 - l1 / total).abs() < 1e-6 && (share[1] as f64 - (1.0 - l1 / total)).abs() < 1e-6, "{share:?}");
        // The first axis: (a, b) ∝ (2/3 − (10 − √52)/6·…) — check it as an eigenvector instead.
        let axis = {
            let (a, b) = (8.0 / 3.0 - l1, -2.0 / 3.0);
            let n = (a * a + b * b).sqrt();
            // (C − λI)v = 0 with row (8/3 − λ, −2/3): v ∝ (2/3, 8/3 − λ).
            let v = (-b / n, a / n);
            if v.0 < 0.0 { (-v.0, -v.1) } else { v }
        };
        for (p, cc) in pts.iter().zip(&c) {
            let want = (p[0] as f64 - 2.0 / 3.0) * axis.0 + (p[1] as f64 - 1.0 / 3.0) * axis.1;
            assert!((cc[0] as f64 - want).abs() < 1e-5, "{cc:?} vs {want}");
        }
        // The coordinates are centred and the two axes uncorrelated.
        let (s0, s1, s01) = c.iter().fold((0.0, 0.0, 0.0), |(a, b, ab), p| (a + p[0], b + p[1], ab + p[0] * p[1]));
        assert!(s0.abs() < 1e-5 && s1.abs() < 1e-5 && s01.abs() < 1e-5);
    }
}
