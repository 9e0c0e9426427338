//! Heads compared: what each head does on a text (attention to the first token, to the
//! previous token, to itself, row entropy), how alike two heads are (Jensen–Shannon distance
//! between their rows), the induction diagnostic on a repeated random sequence, and head
//! knock-outs (ablation) with their effect on the next-token distribution.
//!
//! Rows are query positions i ≥ 1, averaged (row 0 can only look at itself).

use crate::backends::{Backend, ForwardOptions, LogitsFor};
use crate::model::capture::AttentionTrace;
use crate::model::Model;

use super::explain::entropy;
use super::report::{log_sum_exp, top_k, ReportError};

/// `[layer][head]` scores.
pub type Grid = Vec<Vec<f32>>;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct HeadScores {
    pub ids: Vec<u32>,
    pub tokens: Vec<String>,
    /// Mean p(i → 0).
    pub first_token: Grid,
    /// Mean p(i → i−1).
    pub previous_token: Grid,
    /// Mean p(i → i).
    #[serde(rename = "self")]
    pub self_: Grid,
    /// Mean row entropy, nats.
    pub entropy: Grid,
    /// (heads, heads), layer-major "L.H" order: mean over rows i ≥ 1 of the JS distance.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub js_distance: Option<Vec<Vec<f32>>>,
}

/// Every head's rows (row i: keys 0..=i), layer-major.
fn all_rows(t: &AttentionTrace) -> Vec<Vec<Vec<f32>>> {
    (0..t.n_layer).flat_map(|l| (0..t.n_head).map(move |h| (l, h))).map(|(l, h)| t.head_rows(l, h).expect("layer and head exist")).collect()
}

fn grid(t: &AttentionTrace, rows: &[Vec<Vec<f32>>], f: impl Fn(&[f32], usize) -> f64) -> Grid {
    let n = t.n_tokens;
    (0..t.n_layer)
        .map(|l| {
            (0..t.n_head)
                .map(|h| {
                    let r = &rows[l * t.n_head + h];
                    if n < 2 {
                        return 0.0;
                    }
                    ((1..n).map(|i| f(&r[i], i)).sum::<f64>() / (n - 1) as f64) as f32
                })
                .collect()
        })
        .collect()
}

/// Jensen–Shannon distance (√ of the divergence, natural log) of two distributions.
pub fn js_distance(p: &[f32], q: &[f32]) -> f32 {
    let kl = |a: &[f32], m: &[f64]| a.iter().zip(m).filter(|(x, _)| **x > 0.0).map(|(x, m)| *x as f64 * (*x as f64 / m).ln()).sum::<f64>();
    let m: Vec<f64> = p.iter().zip(q).map(|(a, b)| 0.5 * (*a as f64 + *b as f64)).collect();
    (0.5 * kl(p, &m) + 0.5 * kl(q, &m)).max(0.0).sqrt() as f32
}

/// The pattern scores of every head, and with `similarity` the JS-distance matrix.
pub fn head_scores(t: &AttentionTrace, similarity: bool) -> HeadScores {
    let rows = all_rows(t);
    let js = similarity.then(|| {
        let heads = rows.len();
        let n = t.n_tokens;
        let mut d = vec![vec![0f32; heads]; heads];
        for a in 0..heads {
            for b in a + 1..heads {
                let v = if n < 2 { 0.0 } else { (1..n).map(|i| js_distance(&rows[a][i], &rows[b][i]) as f64).sum::<f64>() / (n - 1) as f64 } as f32;
                d[a][b] = v;
                d[b][a] = v;
            }
        }
        d
    });
    HeadScores {
        ids: vec![],
        tokens: vec![],
        first_token: grid(t, &rows, |r, _| r[0] as f64),
        previous_token: grid(t, &rows, |r, i| r[i - 1] as f64),
        self_: grid(t, &rows, |r, i| r[i] as f64),
        entropy: grid(t, &rows, |r, _| entropy(r) as f64),
        js_distance: js,
    }
}

/// Tokenizes, runs with capture, scores.
pub fn heads_text(model: &Model, backend: &dyn Backend, text: &str, similarity: bool) -> Result<HeadScores, ReportError> {
    let ids = model.tokenizer.encode(text);
    let out = backend.forward(model, &ids, &ForwardOptions { logits_for: LogitsFor::Last, ..Default::default() })?;
    let mut s = head_scores(out.trace.as_ref().expect("capture was requested"), similarity);
    s.tokens = ids.iter().map(|&id| model.tokenizer.token_text(id)).collect();
    s.ids = ids;
    Ok(s)
}

/// The induction diagnostic's result.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Induction {
    pub period: usize,
    /// The 2P ids run: P ids, then the same P again.
    pub ids: Vec<u32>,
    /// `[layer][head]`: mean over i = P..2P−1 of p(i → i−P+1).
    pub induction: Grid,
}

/// P ids from 1000..=20000 drawn by a seeded xorshift (reported with the result).
pub fn random_ids(period: usize, seed: u64) -> Vec<u32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..period)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            1000 + (s % 19_001) as u32
        })
        .collect()
}

/// Runs `first` repeated twice and scores every head's attention to the token that followed
/// the previous occurrence of the current token.
pub fn induction(model: &Model, backend: &dyn Backend, first: &[u32]) -> Result<Induction, ReportError> {
    let p = first.len();
    let ids: Vec<u32> = first.iter().chain(first).copied().collect();
    let out = backend.forward(model, &ids, &ForwardOptions { logits_for: LogitsFor::Last, ..Default::default() })?;
    let t = out.trace.as_ref().expect("capture was requested");
    Ok(Induction { period: p, ids, induction: induction_grid(t, p) })
}

/// `[layer][head]` induction scores of a capture of a sequence repeated twice with period `p`.
pub fn induction_grid(t: &AttentionTrace, p: usize) -> Grid {
    (0..t.n_layer)
        .map(|l| {
            (0..t.n_head)
                .map(|h| {
                    let sum: f64 = (p..(2 * p).min(t.n_tokens)).map(|i| t.row(l, h, i).map(|r| r[i + 1 - p] as f64).unwrap_or(0.0)).sum();
                    (sum / p.max(1) as f64) as f32
                })
                .collect()
        })
        .collect()
}

/// `attnlab ablate --json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Ablation {
    pub ids: Vec<u32>,
    pub heads: Vec<String>,
    /// 64 `[id, logit]` at the last position with the heads knocked out.
    pub last_logits_top: Vec<(u32, f32)>,
    pub last_logits_top_before: Vec<(u32, f32)>,
    /// KL(before ‖ after) of the next-token distribution at the last position, nats.
    pub kl_last: f32,
    /// For each position i < n−1: log p(ids[i+1]) after minus before.
    pub delta_logprob: Vec<f32>,
}

/// Parses "L.H,L.H,L.*" into (layer, head) pairs.
pub fn parse_heads(s: &str, n_layer: usize, n_head: usize) -> Result<Vec<(usize, usize)>, ReportError> {
    let bad = || ReportError::BadHeads(s.to_string());
    let mut out = vec![];
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (l, h) = part.split_once('.').ok_or_else(bad)?;
        let l: usize = l.parse().map_err(|_| bad())?;
        if l >= n_layer {
            return Err(bad());
        }
        if h == "*" {
            out.extend((0..n_head).map(|h| (l, h)));
        } else {
            let h: usize = h.parse().map_err(|_| bad())?;
            if h >= n_head {
                return Err(bad());
            }
            out.push((l, h));
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// The forward pass with and without `heads` knocked out, compared.
pub fn ablate(model: &Model, backend: &dyn Backend, text: &str, heads: &[(usize, usize)]) -> Result<Ablation, ReportError> {
    let ids = model.tokenizer.encode(text);
    let opts = |ablate: Vec<(usize, usize)>| ForwardOptions { capture_attention: false, logits_for: LogitsFor::All, ablate, ..Default::default() };
    let before = backend.forward(model, &ids, &opts(vec![]))?;
    let after = backend.forward(model, &ids, &opts(heads.to_vec()))?;
    let n = ids.len();
    let logp = |l: &[f32], id: u32| l[id as usize] - log_sum_exp(l);
    let row = |o: &crate::backends::ForwardOutput, i: usize| o.logits.row(i).to_vec();
    let delta_logprob = (0..n.saturating_sub(1)).map(|i| logp(&row(&after, i), ids[i + 1]) - logp(&row(&before, i), ids[i + 1])).collect();
    let (lb, la) = (row(&before, n - 1), row(&after, n - 1));
    let (zb, za) = (log_sum_exp(&lb), log_sum_exp(&la));
    let kl_last = lb.iter().zip(&la).map(|(b, a)| {
        let pb = ((b - zb) as f64).exp();
        pb * ((b - zb) as f64 - (a - za) as f64)
    }).sum::<f64>() as f32;
    Ok(Ablation {
        heads: heads.iter().map(|(l, h)| format!("{l}.{h}")).collect(),
        last_logits_top: top_k(&la, 64),
        last_logits_top_before: top_k(&lb, 64),
        kl_last,
        delta_logprob,
        ids,
    })
}
